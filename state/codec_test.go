package state

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// typical returns a contact shaped like one the B2B example rules build.
func typical() *Contact {
	c := New("u-42")
	c.Seq, c.Latest, c.Stage = 17, 1_772_442_000_000_000_000, "mql"
	c.Traits = map[string]any{"email": "ana@acme.io", "industry": "software", "company_size": 400.0, "region": "emea", "title": "VP Engineering"}
	c.Windows = []Window{
		{Name: "pricing_views_7d", T: []int64{1, 2, 3}},
		{Name: "docs_pages_7d", T: []int64{4, 5}, K: []string{"/docs/a", "/docs/b"}},
		{Name: "video_minutes_14d", T: []int64{6}, V: []float64{12.5}, Dropped: 2},
	}
	c.Points = []Points{{Rule: "pricing-page", Value: 29.5, AsOf: 3, LimT: []int64{1, 2, 3}, LimP: []float64{10, 10, 10}}, {Rule: "careers", Value: -15, AsOf: 2}}
	c.Triggers = []Trigger{{ID: "hot-lead", On: true, Last: 3, Fired: 1}, {ID: "guide-then-pricing", Last: NoTime, Steps: []int64{NoTime, 2}}}
	c.Timers = []Timer{{Trigger: "gone-quiet", Due: 99, Set: 17}}
	c.Caps = []Cap{{Action: "cart-reminder", T: []int64{5}}}
	for _, id := range []string{"m1", "m2", "m3"} {
		c.Seen.Add(id)
	}
	c.Pos = Position{Partition: 3, Offset: 1234}
	c.Applied = Position{Partition: 3, Offset: 1230}
	return c
}

// merged returns a user that absorbed two anonymous ids, and the retired
// tombstone of one of them.
func merged() (*Contact, *Contact) {
	u := typical()
	u.Merged = []string{"anon-1", "anon-2"}
	u.Known = true
	u.Pending = &PendingLink{Link: Position{Partition: 3, Offset: 77}, Time: 1_700_000_000_000_000_000,
		IDs: []string{"anon-3", "anon-4"}, Conflict: 2, Late: true,
		Then: []PendingLink{{Link: Position{Partition: 3, Offset: 80}, Time: 1_700_000_000_000_000_001, IDs: []string{"anon-5"}, Late: true}}}
	u.Forwarded = []Position{{Partition: 1, Offset: 9}, {Partition: 4, Offset: 120}}
	a := New("anon-1")
	a.MergedInto = "u-42"
	return u, a
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	u, a := merged()
	for _, c := range []*Contact{New("empty"), typical(), u, a} {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got.bound, c.bound = nil, nil
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", c.ID, got, c)
		}
	}
}

func TestDecodeVersions(t *testing.T) {
	// A blob from a later version with a field this version does not know
	// still decodes (the field is ignored), as long as its version is not
	// newer than Version.
	withExtra := map[string]any{"v": Version, "id": "u1", "q": 3, "t": 5, "future": []int{1, 2}}
	b, _ := msgpack.Marshal(withExtra)
	c, err := Decode(b)
	if err != nil || c.ID != "u1" || c.Seq != 3 || c.Latest != 5 {
		t.Fatalf("decode with an unknown key: %+v, %v", c, err)
	}

	newer, _ := msgpack.Marshal(map[string]any{"v": Version + 1, "id": "u1"})
	if _, err := Decode(newer); !errors.Is(err, ErrVersion) {
		t.Fatalf("newer blob: got %v, want ErrVersion", err)
	}

	for name, blob := range map[string][]byte{
		"garbage":    []byte{0xc1, 0x00},
		"not a map":  {0x93, 0x01, 0x02, 0x03},
		"no id":      mustMarshal(t, map[string]any{"x": 1}),
		"wrong type": mustMarshal(t, map[string]any{"v": 1, "id": 5}),
		"empty":      nil,
	} {
		if _, err := Decode(blob); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSeenIsBounded(t *testing.T) {
	var s Seen
	for i := 0; i < MaxSeenIDs+10; i++ {
		s.Add(string(rune('a'+i%26)) + string(rune(i)))
	}
	if len(s.H) != MaxSeenIDs {
		t.Fatalf("remembered %d ids, want %d", len(s.H), MaxSeenIDs)
	}
	first := string(rune('a')) + string(rune(0))
	last := string(rune('a'+(MaxSeenIDs+9)%26)) + string(rune(MaxSeenIDs+9))
	if s.SeenID(first) {
		t.Error("the oldest id is still remembered beyond the bound")
	}
	if !s.SeenID(last) {
		t.Error("the newest id is forgotten")
	}
}

// TestSeenCheck checks that Check is SeenID then Add: the same ring after
// the same ids, repeats reported, beyond the bound too.
func TestSeenCheck(t *testing.T) {
	var checked, added Seen
	for i := 0; i < 3*MaxSeenIDs; i++ {
		id := fmt.Sprintf("m-%d", i%(MaxSeenIDs+40)) // repeats, some forgotten by then
		want := added.SeenID(id)
		if !want {
			added.Add(id)
		}
		if got := checked.Check(id); got != want {
			t.Fatalf("id %d (%s): Check says seen %v, SeenID %v", i, id, got, want)
		}
	}
	if !reflect.DeepEqual(checked, added) {
		t.Error("Check and SeenID+Add left different rings")
	}
}

func TestBindKeepsSlotsByName(t *testing.T) {
	c := typical()
	n := &Names{
		Windows:  []string{"video_minutes_14d", "new_window"},
		Points:   []string{"careers"},
		Triggers: []string{"hot-lead"},
		Caps:     nil,
	}
	c.Bind(n)
	if len(c.Windows) != 2 || c.Windows[0].Name != "video_minutes_14d" || c.Windows[0].V[0] != 12.5 || c.Windows[1].Name != "new_window" || len(c.Windows[1].T) != 0 {
		t.Errorf("windows after bind: %+v", c.Windows)
	}
	if len(c.Points) != 1 || c.Points[0].Value != -15 {
		t.Errorf("points after bind: %+v", c.Points)
	}
	if len(c.Timers) != 0 {
		t.Errorf("timer of a removed trigger kept: %+v", c.Timers)
	}
	if len(c.Caps) != 0 {
		t.Errorf("caps after bind: %+v", c.Caps)
	}
	if !c.Bound(n) {
		t.Error("not bound")
	}
}

// legacyContact has Contact's fields and tags but not its hand-written codec:
// msgpack encodes it by reflection, as blobs were written before.
type legacyContact Contact

func TestDecodeReflectionWrittenBlob(t *testing.T) {
	c, _ := merged()
	b, err := msgpack.Marshal((*legacyContact)(c))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got.bound, c.bound = nil, nil
	if !reflect.DeepEqual(got, c) {
		t.Errorf("reflection-written blob:\n got %+v\nwant %+v", got, c)
	}
	// And the other way: the hand-written form reads back by reflection.
	fast, _ := Encode(c)
	var back legacyContact
	if err := msgpack.Unmarshal(fast, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != c.ID || len(back.Windows) != 3 || back.Windows[2].V[0] != 12.5 || back.Pos != c.Pos || back.Applied != c.Applied || back.Seen.H[2] != c.Seen.H[2] ||
		!reflect.DeepEqual(back.Merged, c.Merged) || !back.Known || !reflect.DeepEqual(back.Pending, c.Pending) ||
		!reflect.DeepEqual(back.Forwarded, c.Forwarded) {
		t.Errorf("hand-written blob read by reflection: %+v", back)
	}
}

func TestDecodeRejectsHugeLengths(t *testing.T) {
	// A map claiming 2^31 windows in a 20-byte blob must fail, not allocate.
	blob := []byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa1, 'w', 0xdd, 0x7f, 0xff, 0xff, 0xff}
	if _, err := Decode(blob); err == nil {
		t.Fatal("decoded a blob with an impossible length")
	}
}

// TestMergedFieldsAreOptional: a contact without identity fields writes no
// `mi`/`mt` keys (blobs of contacts that never merged keep their size), and
// a blob with them decodes in older code that ignores unknown keys.
func TestMergedFieldsAreOptional(t *testing.T) {
	plain, err := Encode(typical())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mi", "mt", "kn", "pl", "fw"} {
		if _, ok := m[k]; ok {
			t.Errorf("a contact that never merged writes key %q", k)
		}
	}
	u, a := merged()
	for _, c := range []*Contact{u, a} {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := msgpack.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.MergedInto != "" && m["mt"] != c.MergedInto:
			t.Errorf("tombstone: mt = %v, want %q", m["mt"], c.MergedInto)
		case len(c.Merged) > 0 && len(m["mi"].([]any)) != len(c.Merged):
			t.Errorf("user: mi = %v, want %v", m["mi"], c.Merged)
		}
	}
}

// TestAppliedPosition pins the per-contact position the scoring stage skips
// re-read records by: encoded only when set, absent in older blobs (which
// then cover nothing), and compared within one partition only.
func TestAppliedPosition(t *testing.T) {
	c := New("u1")
	plain, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	c.MarkApplied(Position{Partition: 2, Offset: 41})
	withPos, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(withPos) <= len(plain) {
		t.Errorf("a set Applied adds no bytes (%d vs %d): not encoded?", len(withPos), len(plain))
	}
	got, err := Decode(withPos)
	if err != nil {
		t.Fatal(err)
	}
	if got.Applied != (Position{Partition: 2, Offset: 42}) {
		t.Errorf("Applied after a round trip = %+v, want partition 2 offset 42 (the next offset)", got.Applied)
	}
	old, err := Decode(plain) // a blob written before the field existed
	if err != nil {
		t.Fatal(err)
	}
	if old.Applied != (Position{}) || old.Covers(Position{Partition: 0, Offset: 0}) {
		t.Errorf("a blob without Applied: %+v covers offset 0", old.Applied)
	}
	for _, tc := range []struct {
		name string
		pos  Position
		want bool
	}{
		{"the last applied record", Position{2, 41}, true},
		{"an earlier record", Position{2, 0}, true},
		{"the next record", Position{2, 42}, false},
		{"another partition, lower offset", Position{1, 3}, false},
		{"another partition, same offset", Position{0, 41}, false},
	} {
		if got := got.Covers(tc.pos); got != tc.want {
			t.Errorf("%s: Covers(%+v) = %v, want %v", tc.name, tc.pos, got, tc.want)
		}
	}
	if New("x").Covers(Position{}) {
		t.Error("a new contact covers partition 0 offset 0")
	}
}

// TestForwardSeen: a forward is applied once per source position, each
// source partition counted on its own, and a repeat (a forward produced
// again by a sender that crashed before committing) is recognised.
func TestForwardSeen(t *testing.T) {
	c := New("u1")
	for _, tc := range []struct {
		pos  Position
		seen bool
	}{
		{Position{1, 5}, false},
		{Position{1, 5}, true},
		{Position{1, 4}, true},
		{Position{2, 0}, false},
		{Position{1, 6}, false},
		{Position{2, 0}, true},
		{Position{1, 6}, true},
	} {
		if got := c.ForwardSeen(tc.pos); got != tc.seen {
			t.Errorf("ForwardSeen(%+v) = %v, want %v (state %v)", tc.pos, got, tc.seen, c.Forwarded)
		}
	}
	b, _ := Encode(c)
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.ForwardSeen(Position{1, 6}) || back.ForwardSeen(Position{2, 1}) {
		t.Errorf("forwarded positions lost in a round trip: %v", back.Forwarded)
	}
}

// TestEncoderForms: the hand-written writer produces the bytes
// msgpack.Encoder (compact ints) writes for each primitive, at every size
// boundary, so blobs are what they were before it existed and any msgpack
// reader reads them.
func TestEncoderForms(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	var cases []struct {
		name string
		fast func(*w)
		ref  func(*msgpack.Encoder) error
	}
	add := func(name string, fast func(*w), ref func(*msgpack.Encoder) error) {
		cases = append(cases, struct {
			name string
			fast func(*w)
			ref  func(*msgpack.Encoder) error
		}{name, fast, ref})
	}
	for _, n := range ints {
		add(fmt.Sprint("int ", n), func(x *w) { x.i64(n) }, func(e *msgpack.Encoder) error { return e.EncodeInt(n) })
		if n >= 0 {
			add(fmt.Sprint("uint ", n), func(x *w) { x.u64(uint64(n)) }, func(e *msgpack.Encoder) error { return e.EncodeUint(uint64(n)) })
		}
	}
	add("uint max", func(x *w) { x.u64(math.MaxUint64) }, func(e *msgpack.Encoder) error { return e.EncodeUint(math.MaxUint64) })
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := long(n)
		add(fmt.Sprint("string ", n), func(x *w) { x.str(s) }, func(e *msgpack.Encoder) error { return e.EncodeString(s) })
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		add(fmt.Sprint("map ", n), func(x *w) { x.mapLen(n) }, func(e *msgpack.Encoder) error { return e.EncodeMapLen(n) })
		add(fmt.Sprint("array ", n), func(x *w) { x.arrLen(n) }, func(e *msgpack.Encoder) error { return e.EncodeArrayLen(n) })
	}
	for _, f := range []float64{0, 1, -2.5, 1e300, math.Inf(-1)} {
		add(fmt.Sprint("float ", f), func(x *w) { x.f64(f) }, func(e *msgpack.Encoder) error { return e.EncodeFloat64(f) })
	}
	for _, v := range []any{nil, true, false, "s", 2.5, int64(-300), 7, []any{"a", 1.0}, map[string]any{"k": "v"}} {
		add(fmt.Sprintf("any %T %v", v, v), func(x *w) { x.any(v) }, func(e *msgpack.Encoder) error { return e.Encode(v) })
	}
	for _, c := range cases {
		var ref bytes.Buffer
		e := msgpack.NewEncoder(&ref)
		e.UseCompactInts(true)
		if err := c.ref(e); err != nil {
			t.Fatal(err)
		}
		var x w
		c.fast(&x)
		if x.err != nil || !bytes.Equal(x.b, ref.Bytes()) {
			t.Errorf("%s: % x (err %v), msgpack.Encoder writes % x", c.name, x.b, x.err, ref.Bytes())
		}
	}
}
