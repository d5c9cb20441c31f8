package state

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The byte-slice decoder (decode.go) must read every blob exactly as the
// msgpack.Decoder-based one it replaced (codec_ref_test.go): the same
// contact, and an error for the same blobs.

// checkSameDecode fails t when Decode and refDecode disagree on b.
func checkSameDecode(t *testing.T, b []byte) {
	t.Helper()
	got, gotErr := Decode(b)
	want, wantErr := refDecode(b)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("blob %x:\n decode error %v\nreference error %v", b, gotErr, wantErr)
	}
	if errors.Is(gotErr, ErrVersion) != errors.Is(wantErr, ErrVersion) {
		t.Fatalf("blob %x: ErrVersion differs: %v, reference %v", b, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	canonNaN(reflect.ValueOf(got).Elem())
	canonNaN(reflect.ValueOf(want).Elem())
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("blob %x:\n decoded  %#v\nreference %#v", b, got, want)
	}
}

// nanMark replaces NaN in both contacts compared: reflect.DeepEqual finds
// NaN unequal to itself.
const nanMark = -math.MaxFloat64

// canonNaN replaces every NaN reachable from v by nanMark.
func canonNaN(v reflect.Value) {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if math.IsNaN(v.Float()) && v.CanSet() {
			v.SetFloat(nanMark)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			canonNaN(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				canonNaN(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			canonNaN(v.Index(i))
		}
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		switch e.Kind() {
		case reflect.Float32, reflect.Float64:
			if math.IsNaN(e.Float()) && v.CanSet() {
				v.Set(reflect.ValueOf(nanMark))
			}
		default:
			canonNaN(e)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			e := iter.Value()
			if e.Kind() == reflect.Interface && !e.IsNil() {
				e = e.Elem()
			}
			switch e.Kind() {
			case reflect.Float32, reflect.Float64:
				if math.IsNaN(e.Float()) {
					v.SetMapIndex(iter.Key(), reflect.ValueOf(nanMark))
				}
			default:
				cp := reflect.New(e.Type()).Elem()
				cp.Set(e)
				canonNaN(cp)
				v.SetMapIndex(iter.Key(), cp)
			}
		}
	}
}

// diffSeeds are blobs of every shape the codec reads: this encoder's,
// msgpack's reflection encoder's (blobs written before the hand codec),
// generic maps (other integer widths, nil, bin strings, ext-wrapped maps,
// duplicate and unknown keys), traits of every form, and broken ones.
func diffSeeds(t testing.TB) [][]byte {
	var out [][]byte
	add := func(v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	u, a := merged()
	long := typical()
	long.ID = strings.Repeat("visitor-", 40)
	nested := typical()
	nested.Traits = map[string]any{
		"tags": []any{"a", 1.5, int8(-3)}, "addr": map[string]any{"city": "Lyon", "zip": 69000},
		"raw": []byte{1, 2}, "seen": time.Unix(1_700_000_000, 5).UTC(), "none": nil, "vip": true,
		"big": uint64(math.MaxUint64), "small": int64(math.MinInt64), "f32": float32(1.25), "nan": math.NaN(), "": "empty key",
	}
	emptyK := typical()
	emptyK.Windows[1].K = []string{}
	for _, c := range []*Contact{New("empty"), typical(), typicalContact("bench@example.com"), u, a, long, nested, emptyK} {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		add((*legacyContact)(c)) // reflection-written
	}
	add(map[string]any{"v": 1, "id": "u1", "q": uint8(3), "t": int16(-5), "future": []int{1, 2}})
	add(map[string]any{"id": "no-version", "q": uint64(math.MaxUint64), "t": int32(-7)})
	add(map[string]any{"v": Version + 1, "id": "u1"})
	add(map[string]any{"v": 1, "id": nil, "s": nil, "w": nil, "p": []any{nil}, "d": map[string]any{"h": []any{nil, 1}}})
	add(map[string]any{"v": 1, "id": []byte("bin-id"), "s": []byte("mql"), "tr": map[string]any{"k": []byte{}}})
	add(map[string]any{"v": 1, "id": "x", "w": []any{map[string]any{"n": "w", "t": []any{1.5}}}})                   // float where an int belongs
	add(map[string]any{"v": 1, "id": "x", "p": []any{map[string]any{"n": "p", "v": 7, "lp": []any{int8(1), 2.5}}}}) // ints where floats belong
	add(map[string]any{"v": 1, "id": "x", "w": []any{map[string]any{"n": "w", "t": []any{1}, "k": []any{}}}})       // empty, not nil
	add(map[string]any{"v": 1, "id": "x", "g": []any{map[string]any{"n": "g", "o": nil, "f": int8(-1)}}})
	add(map[string]any{"v": 1, "id": "x", "pl": map[string]any{"i": []any{}, "n": []any{map[string]any{"n": []any{map[string]any{}}}}}, "fw": []any{}, "mi": []any{}})
	add(map[string]any{"v": 1, "id": "x", "o": map[string]any{"p": 1}, "a": map[string]any{"o": 2, "z": 3}})
	add(map[string]any{"v": 1, "id": "x", "tr": map[string]any{"t": time.Unix(5, 0)}})
	// Duplicate keys: the last one counts.
	out = append(out,
		[]byte{0x84, 0xa2, 'i', 'd', 0xa1, 'a', 0xa1, 'w', 0x91, 0x81, 0xa1, 'n', 0xa1, 'x', 0xa1, 'w', 0x92, 0x80, 0x80, 0xa2, 'i', 'd', 0xa1, 'b'},
		// An ext header before a map (msgpack's DecodeMapLen steps over it).
		[]byte{0xd4, 0x01, 0x82, 0xa2, 'i', 'd', 0xa1, 'e', 0xa1, 'v', 0x01},
		[]byte{0xc7, 0x05, 0x01, 0x81, 0xa2, 'i', 'd', 0xa1, 'e'},
		// Broken: huge lengths, truncations, unknown codes.
		[]byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa1, 'w', 0xdd, 0x7f, 0xff, 0xff, 0xff},
		[]byte{0x81, 0xa2, 'i', 'd', 0xdb, 0xff, 0xff, 0xff, 0xff},
		[]byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa2, 't', 'r', 0x81, 0xa1, 'k', 0xc1},
		[]byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa2, 't', 'r', 0x81, 0xa1, 'k', 0xd4, 0x05, 0x00},
		[]byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa1, 'z', 0xc1},
		[]byte{0xc1, 0x00}, []byte{0x93, 0x01, 0x02, 0x03}, nil,
	)
	// Every prefix of a full blob is broken somewhere.
	full, _ := Encode(u)
	for n := 0; n < len(full); n += 7 {
		out = append(out, full[:n])
	}
	return out
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, b := range diffSeeds(t) {
		checkSameDecode(t, b)
	}
}

// FuzzDecodeMatchesReference: go test -run '^$' -fuzz FuzzDecodeMatchesReference ./state
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, b := range diffSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameDecode(t, b)
	})
}

// TestDecodedSlotsShareABlock: a decoded contact's per-rule arrays are one
// allocation, as a new contact's are, and Bind to the same names keeps it.
func TestDecodedSlotsShareABlock(t *testing.T) {
	b, err := Encode(typicalContact("u-1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	end := func(p any, n, size uintptr) uintptr { return reflect.ValueOf(p).Pointer() + n*size }
	w, p, g := c.Windows, c.Points, c.Triggers
	if got, want := reflect.ValueOf(p).Pointer(), end(w, uintptr(len(w)), reflect.TypeFor[Window]().Size()); got != want {
		t.Errorf("points at %#x, want right after the windows at %#x", got, want)
	}
	if got, want := reflect.ValueOf(g).Pointer(), end(p, uintptr(len(p)), reflect.TypeFor[Points]().Size()); got != want {
		t.Errorf("triggers at %#x, want right after the points at %#x", got, want)
	}
	if cap(w) != len(w) || cap(c.Windows[0].T) != len(c.Windows[0].T) || cap(c.Windows[2].K) != len(c.Windows[2].K) {
		t.Error("a decoded slice has room beyond its length: an append would write into its neighbour")
	}
	names := &Names{}
	for _, x := range c.Windows {
		names.Windows = append(names.Windows, x.Name)
	}
	for _, x := range c.Points {
		names.Points = append(names.Points, x.Rule)
	}
	for _, x := range c.Triggers {
		names.Triggers = append(names.Triggers, x.ID)
	}
	for _, x := range c.Caps {
		names.Caps = append(names.Caps, x.Action)
	}
	c.Bind(names)
	if &c.Windows[0] != &w[0] || &c.Points[0] != &p[0] {
		t.Error("Bind to the blob's own rules copied the decoded slots")
	}
	// Appending to one window's entries leaves the next one alone.
	next := append([]int64(nil), c.Windows[1].T...)
	c.Windows[0].T = append(c.Windows[0].T, 42)
	if !reflect.DeepEqual(c.Windows[1].T, next) {
		t.Error("an append to a window overwrote the next window's entries")
	}
}

// TestDecodeMsgpackInsideAValue: msgpack decodes a Contact inside another
// value through DecodeMsgpack, reading exactly the contact's bytes.
func TestDecodeMsgpackInsideAValue(t *testing.T) {
	u, _ := merged()
	type wrapper struct {
		C    *Contact
		Next string
	}
	b, err := msgpack.Marshal(wrapper{C: u, Next: "after"})
	if err != nil {
		t.Fatal(err)
	}
	var back wrapper
	if err := msgpack.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	u.bound = nil
	if back.Next != "after" || !reflect.DeepEqual(back.C, u) {
		t.Errorf("decoded %+v, next %q; want %+v", back.C, back.Next, u)
	}
	bad, err := msgpack.Marshal(map[string]any{"C": map[string]any{"id": 5}, "Next": "after"}) // an id of the wrong type
	if err != nil {
		t.Fatal(err)
	}
	if err := msgpack.Unmarshal(bad, &back); err == nil || !errors.Is(err, errCorrupt) {
		t.Errorf("a contact with a numeric id: error %v, want errCorrupt", err)
	}
}
