package event_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/traffic"
)

// trickyJSON are records at the scanner's edges: each must decode exactly as
// the previous decoder (goccy/go-json into the struct) decoded it, whether
// the scanner reads it or leaves it to goccy/go-json.
var trickyJSON = []string{
	`{}`,
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	` {"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"} `,
	"\xef\xbb\xbf{\"type\":\"page\",\"userId\":\"u1\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"\v\f{\"type\":\"page\",\"userId\":\"u1\",\"timestamp\":\"2026-03-02T09:00:00Z\"}\u00a0",
	"{\"type\":\"page\",\f\"userId\":\"u1\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\n\t\"type\" : \"page\" ,\r\n \"userId\":\"u1\" , \"timestamp\":\"2026-03-02T09:00:00Z\"\n}",
	// Field names: exact, case-insensitive, Unicode folding, escaped, repeated.
	`{"TYPE":"page","userid":"u1","Timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","userid":"u2","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userid":"u2","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","userId":"u2","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","userId":null,"timestamp":"2026-03-02T09:00:00Z"}`,
	"{\"type\":\"page\",\"u\u017feRId\":\"u1\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\"type\":\"page\",\"userId\":\"u1\",\"\u212aey\":1,\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	`{"type":"page","user\u0049d":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1},"properties":{"b":2},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1},"properties":null,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1,"a":{"x":1},"a":{"y":2}},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","Properties":{"a":1},"properties":{"b":2},"timestamp":"2026-03-02T09:00:00Z"}`,
	// Names of the Event's Go fields, and its ignored field.
	`{"type":"page","userId":"u1","-":"x","Time":"y","time":[1],"UserID":"u2","RawTimestamp":"z","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","-":5,"Time":5,"timestamp":"2026-03-02T09:00:00Z"}`,
	// Field types.
	`{"type":null,"userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":5,"userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":true,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":["u1"],"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":{"a":1},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":[],"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":"x","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":5,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","traits":{},"context":{},"properties":{},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","traits":null,"context":null,"properties":null,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","context":[1],"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","context":"x","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","context":{"a":1e400},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","context":{"a":"\ud800"},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","context":{"a":nul},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","context":{"a":[1,]},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","sentAt":1e400,"integrations":{"All":true,"x":[null,{"y":"\u00e9"}]},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","extra":"\ud800","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","extra":"\x","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","extra":01,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","extra":-,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","extra":tru,"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","extra":truex,"timestamp":"2026-03-02T09:00:00Z"}`,
	// Strings.
	`{"type":"page","userId":"u\"1\\\/\b\f\n\r\t","name":"\u00e9\u20ac\ud83d\ude00\u0000","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"\ud83d","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"\ude00","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"\ud83d\u0041","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"\ud83d\ud83d","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"k":"\ud83d"},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"\ud83d":1},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"\uFFFD","timestamp":"2026-03-02T09:00:00Z"}`,
	"{\"type\":\"page\",\"userId\":\"\ufffd\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\"type\":\"page\",\"userId\":\"\xff\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\"type\":\"page\",\"userId\":\"u1\",\"properties\":{\"k\":\"\xc3\"},\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\"type\":\"page\",\"userId\":\"u1\",\"properties\":{\"\xc3\":1},\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\"type\":\"page\",\"userId\":\"u\x01\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	"{\"type\":\"page\",\"userId\":\"u\x7f\",\"timestamp\":\"2026-03-02T09:00:00Z\"}",
	`{"type":"page","userId":"u\u00","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u\uZZZZ","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u\u004A\u004a","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"pag\u0065","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"Page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"","anonymousId":"","timestamp":"2026-03-02T09:00:00Z"}`,
	// Numbers.
	`{"type":"page","userId":"u1","properties":{"a":-0,"b":0,"c":-0.0,"d":1E5,"e":1.0,"f":123456789012345678,"g":9007199254740993,"h":0.1,"i":1e-400,"j":-1e-400,"k":1023,"l":1024,"m":-1,"n":999999999999999,"o":1e308,"p":4.9e-324,"q":2.5e-324},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1e400},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":-1e400},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":01},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1.},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":.5},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1e},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":+1},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1.5x},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":NaN},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":[],"b":{},"c":[[]],"d":[{}],"e":[1,"x",true,false,null,{"f":[2]}]},"timestamp":"2026-03-02T09:00:00Z"}`,
	// Structure.
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}x`,
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}}`,
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"},`,
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"} {}`,
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z",}`,
	`{"type":"page",,"userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page" "userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type""page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":1,},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a" 1},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{a:1},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":[1 2]},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":[1,2}},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"a":{"b":1]},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page"`,
	`{"type":"page",`,
	`{"type":"pa`,
	`{"type`,
	`{`,
	`{"properties":{`,
	`{"properties":{"a":[`,
	`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"`,
	// Times.
	`{"type":"page","userId":"u1","timestamp":"not a time"}`,
	`{"type":"page","userId":"u1","timestamp":"","originalTimestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","timestamp":null,"originalTimestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1"}`,
	`{"type":"page","userId":"u1","timestamp":"1970-01-01T00:00:00Z"}`,
	`{"type":"alias","userId":"u1","previousId":"a1","timestamp":"2026-03-02T09:00:00Z"}`,
}

// deep returns an event whose properties nest n objects or arrays.
func deep(n int, open, close string) string {
	return `{"type":"page","userId":"u1","properties":{"a":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `},"timestamp":"2026-03-02T09:00:00Z"}`
}

// scanCorpus is every record the differential tests start from.
func scanCorpus(t testing.TB) [][]byte {
	var in [][]byte
	in = append(in, fixtureLines(t)...)
	for _, s := range trickyJSON {
		in = append(in, []byte(s))
	}
	for _, ev := range benchEvents {
		in = append(in, []byte(ev.json))
	}
	for _, n := range []int{512, 513} {
		in = append(in, []byte(deep(n, `{"a":`, `}`)), []byte(deep(n, `[`, `]`)))
	}
	in = append(in, []byte(strings.Replace(deep(700, `{"a":`, `}`), `"properties"`, `"extra"`, 1)))
	in = append(in, []byte(strings.Replace(deep(10001, `[`, `]`), `"properties"`, `"context"`, 1)))
	files, _ := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[1]), "[]byte(")
		if !ok {
			t.Fatalf("%s: not a []byte seed", name)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		in = append(in, []byte(s))
	}
	return in
}

// warm is decoded by a Decoder before each record, so that the record is
// decoded into its reused, non-empty maps.
var warm = []byte(`{"type":"page","userId":"w","properties":{"p":1,"q":[1]},"traits":{"t":"x"},"context":{"c":{"d":2}},"timestamp":"2026-03-02T09:00:00Z"}`)

// checkSameAsReference decodes b in every way the package offers and
// requires each result to be what the previous decoder gave: the same Event
// (numbers to the bit), or the same error.
func checkSameAsReference(t *testing.T, b []byte) {
	t.Helper()
	for _, f := range []event.Format{event.Auto, event.JSON} {
		for _, skip := range []bool{false, true} {
			for _, fallback := range []int64{0, fuzzRecordTime} {
				want, wantErr := event.RefDecode(b, f, fallback, skip)
				var got event.Event
				var gotErr error
				if skip {
					gotErr = event.DecodeIntoSkipContext(&got, b, f, fallback)
				} else {
					gotErr = event.DecodeInto(&got, b, f, fallback)
				}
				what := "DecodeInto"
				if skip {
					what = "DecodeIntoSkipContext"
				}
				sameResult(t, what, b, want, wantErr, &got, gotErr)
				if !skip {
					e, err := event.Decode(b, f, fallback)
					sameResult(t, "Decode", b, want, wantErr, e, err)
				}
				// A Decoder decodes into the maps of the event before, cleared,
				// which goccy/go-json fills rather than makes: its errors may
				// differ from Decode's (they did before the scanner).
				d := event.Decoder{SkipContext: skip}
				if _, err := d.Decode(warm, event.JSON, 0); err != nil {
					t.Fatal(err)
				}
				want = &event.Event{Properties: map[string]any{}, Traits: map[string]any{}, Context: map[string]any{}}
				if wantErr = event.RefDecodeInto(want, b, f, fallback, skip); wantErr != nil {
					want = nil
				}
				e, err := d.Decode(b, f, fallback)
				sameResult(t, "Decoder", b, want, wantErr, e, err)

				// A selection of keys changes only what the maps hold.
				for _, sel := range selections {
					want, wantErr := event.RefDecode(b, f, fallback, skip)
					var got event.Event
					var gotErr error
					if skip {
						d := event.Decoder{SkipContext: true, Select: sel}
						var e *event.Event
						if e, gotErr = d.Decode(b, f, fallback); e != nil {
							got = *e
						}
					} else {
						gotErr = event.DecodeIntoSelect(&got, b, f, fallback, sel)
					}
					sameSelected(t, "DecodeIntoSelect", b, want, wantErr, &got, gotErr, sel)

					d := event.Decoder{SkipContext: skip, Select: sel}
					if _, err := d.Decode(warm, event.JSON, 0); err != nil {
						t.Fatal(err)
					}
					want = &event.Event{Properties: map[string]any{}, Traits: map[string]any{}, Context: map[string]any{}}
					if wantErr = event.RefDecodeInto(want, b, f, fallback, skip); wantErr != nil {
						want = nil
					}
					e, err := d.Decode(b, f, fallback)
					sameSelected(t, "Decoder with Select", b, want, wantErr, e, err, sel)
				}
			}
		}
	}
}

// selections are the key selections the differential tests decode with:
// the names that the fixtures, trickyJSON and warm use, and none.
var selections = []event.Select{
	{
		Properties: event.OnlyKeys("a", "b", "k", "p", "path", "form", "price", "\u00e9", "f"),
		Traits:     event.OnlyKeys("t", "email", "x"),
		Context:    event.OnlyKeys("c", "ip", "a"),
	},
	{Properties: event.OnlyKeys(), Traits: event.OnlyKeys(), Context: event.OnlyKeys()},
	{Properties: event.OnlyKeys("é", "a")},
}

// sameSelected is sameResult for got decoded with sel and want decoded in
// full: got holds what want holds of the keys sel selects, as read through
// Property, Trait and ContextValue, and no map for an object whose keys are
// listed; the rest is the same.
func sameSelected(t *testing.T, what string, in []byte, want *event.Event, wantErr error, got *event.Event, gotErr error, sel event.Select) {
	t.Helper()
	if wantErr != nil || gotErr != nil {
		sameResult(t, what, in, want, wantErr, got, gotErr)
		return
	}
	w, g := *want, *got
	for _, x := range []struct {
		name        string
		keys        event.Keys
		wantM, gotM *map[string]any
		read        func(string) any
	}{
		{"properties", sel.Properties, &w.Properties, &g.Properties, got.Property},
		{"traits", sel.Traits, &w.Traits, &g.Traits, got.Trait},
		{"context", sel.Context, &w.Context, &g.Context, got.ContextValue},
	} {
		if x.keys.All() {
			continue
		}
		if *x.gotM != nil {
			t.Fatalf("%s(%q): %s kept as a map %v", what, in, x.name, *x.gotM)
		}
		for _, k := range append(x.keys.Names(), "not-selected") {
			v := (*x.wantM)[k]
			if k == "not-selected" {
				v = nil
			}
			if r := x.read(k); !sameValue(r, v) {
				t.Fatalf("%s(%q): %s %q is %#v, want %#v", what, in, x.name, k, r, v)
			}
		}
		*x.wantM = nil
	}
	event.ClearPicks(&g)
	sameResult(t, what, in, &w, nil, &g, nil)
}

func sameResult(t *testing.T, what string, in []byte, want *event.Event, wantErr error, got *event.Event, gotErr error) {
	t.Helper()
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%s(%q): error %v, the reference's %v", what, in, gotErr, wantErr)
	}
	if wantErr != nil {
		var we, ge *event.Error
		if !errors.As(wantErr, &we) || !errors.As(gotErr, &ge) || we.Reason != ge.Reason || we.Msg != ge.Msg || wantErr.Error() != gotErr.Error() {
			t.Fatalf("%s(%q): error\n %v\nthe reference's\n %v", what, in, gotErr, wantErr)
		}
		return
	}
	if !sameEvent(want, got) {
		t.Fatalf("%s(%q):\n got %#v\nwant %#v", what, in, *got, *want)
	}
}

// sameEvent is reflect.DeepEqual but for numbers, which must have the same
// bits (0 and -0 differ).
func sameEvent(a, b *event.Event) bool {
	if !sameValue(a.Properties, b.Properties) || !sameValue(a.Traits, b.Traits) || !sameValue(a.Context, b.Context) {
		return false
	}
	x, y := *a, *b
	x.Properties, x.Traits, x.Context = nil, nil, nil
	y.Properties, y.Traits, y.Context = nil, nil, nil
	return reflect.DeepEqual(x, y)
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestScannerReadsTypicalEvents checks that the fast path is the path: the
// events senders and the bench traffic send are read by the scanner itself,
// not left to goccy/go-json (which would still be right, but slow).
func TestScannerReadsTypicalEvents(t *testing.T) {
	var typical [][]byte
	for _, ev := range benchEvents {
		typical = append(typical, []byte(ev.json))
	}
	for i, line := range fixtureLines(t) {
		if _, err := event.RefDecode(line, event.JSON, 0, false); err == nil {
			typical = append(typical, line)
		} else if i == 0 {
			t.Fatalf("the first fixture is bad: %v", err)
		}
	}
	for _, mix := range []string{traffic.MixB2B, traffic.MixEcommerce} {
		g := traffic.New(traffic.Config{Contacts: 500, Mix: mix, Seed: 5})
		for range 400 {
			typical = append(typical, g.AppendJSON(nil))
		}
	}
	for _, b := range typical {
		for _, skip := range []bool{false, true} {
			if !event.Scanned(b, skip) {
				t.Errorf("the scanner leaves a typical event to goccy/go-json (skip context %v):\n%s", skip, b)
			}
		}
		checkSameAsReference(t, b)
	}
}

// FuzzScannerMatchesReference holds the decoder to the previous one
// (ref_test.go) on the fixtures, the FuzzDecode seeds, records at the
// scanner's edges (trickyJSON) and fuzzed records: the same Event, to the
// bit, or the same error, in every entry point.
//
//	go test -run XXX -fuzz FuzzScannerMatchesReference -fuzztime 5m ./event
func FuzzScannerMatchesReference(f *testing.F) {
	for _, b := range scanCorpus(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameAsReference(t, b)
	})
}

// TestSelectMsgpack: msgpack events decoded with a selection of keys are
// the events decoded in full with only those keys, or the same error.
func TestSelectMsgpack(t *testing.T) {
	n := 0
	for _, line := range scanCorpus(t) {
		m, ok := toMsgpack(t, string(line))
		if !ok {
			continue
		}
		n++
		for _, fallback := range []int64{0, fuzzRecordTime} {
			want, wantErr := event.Decode(m, event.Msgpack, fallback)
			for _, sel := range selections {
				var got event.Event
				gotErr := event.DecodeIntoSelect(&got, m, event.Msgpack, fallback, sel)
				sameSelected(t, "DecodeIntoSelect(msgpack)", m, want, wantErr, &got, gotErr, sel)
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d records as msgpack", n)
	}
}
