package event

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"testing"
)

// TestDecoderMatchesDecode decodes the fixture lines one after another with
// one Decoder and requires each result to equal a fresh Decode: reused maps
// must not leak one event's fields into the next.
func TestDecoderMatchesDecode(t *testing.T) {
	data, err := os.ReadFile("testdata/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	extra := []string{
		`{"type":"page","userId":"u1","properties":{"a":1,"b":{"c":2}},"traits":{"x":"y"},"context":{"ip":"1.2.3.4"},"timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","userId":"u1","properties":{"z":true},"timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","userId":"u1","properties":null,"traits":{},"timestamp":"2026-03-02T09:00:00Z"}`,
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	for _, l := range extra {
		lines = append(lines, []byte(l))
	}
	lines = append(lines,
		[]byte(`{"type":"page","userId":"u1","context":5,"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","context":null,"properties":{"a":1},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","context":{"ip":"1.2.3.4","nested":{"x":[1,2]}},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","context":{"ip":`),
	)
	for _, skip := range []bool{false, true} {
		d := Decoder{SkipContext: skip}
		for i, line := range lines {
			want, wantErr := Decode(line, Auto, 7)
			if skip && want != nil {
				want.Context = nil // what SkipContext leaves out
			}
			got, gotErr := d.Decode(line, Auto, 7)
			if skip {
				var single Event
				singleErr := DecodeIntoSkipContext(&single, line, Auto, 7)
				if (singleErr == nil) != (gotErr == nil) || (singleErr == nil && !reflect.DeepEqual(&single, got)) {
					t.Errorf("line %d: DecodeIntoSkipContext gave %+v, %v; the Decoder %+v, %v", i+1, single, singleErr, got, gotErr)
				}
			}
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("line %d: Decode error %v, Decoder error %v", i+1, wantErr, gotErr)
			}
			if wantErr != nil {
				if wantErr.Error() != gotErr.Error() {
					t.Errorf("line %d: errors differ: %v / %v", i+1, wantErr, gotErr)
				}
				continue
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("line %d: Decoder gave\n %+v\nDecode gave\n %+v", i+1, got, want)
			}
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	line := []byte(`{"type":"page","anonymousId":"a-56eaa8c3","name":"Why alerts must be real-time","properties":{"path":"/blog/real-time-alerts","url":"https://www.example.com/blog/real-time-alerts","title":"Why alerts must be real-time","referrer":"https://news.ycombinator.com/"},"context":{"ip":"198.51.100.30","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15","locale":"en-GB"},"timestamp":"2026-01-05T09:00:00.123Z","messageId":"m-1"}`)
	b.Run("DecodeInto", func(b *testing.B) {
		b.ReportAllocs()
		var e Event
		for i := 0; i < b.N; i++ {
			if err := DecodeInto(&e, line, JSON, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decoder", func(b *testing.B) {
		b.ReportAllocs()
		var d Decoder
		for i := 0; i < b.N; i++ {
			if _, err := d.Decode(line, JSON, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecoderDecodeInto decodes the lines of TestDecoderMatchesDecode into
// events that are kept (as a batch, or a parked user's records, are) while
// later lines are decoded with the same Decoder, recycling some events as
// it goes: every kept event must still equal a fresh Decode of its line, so
// that no map a later event reuses is one an earlier event still holds.
func TestDecoderDecodeInto(t *testing.T) {
	lines := [][]byte{
		[]byte(`{"type":"page","userId":"u1","properties":{"a":1,"b":{"c":2}},"traits":{"x":"y"},"context":{"ip":"1.2.3.4"},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u2","properties":{"z":true},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"identify","userId":"u3","properties":null,"traits":{},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"identify","userId":"u4","traits":{"plan":"pro","company":{"name":"Acme"}},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","context":5,"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","Properties":{"case":"insensitive"},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","context":{"ip":"1.2.3.4","nested":{"x":[1,2]}},"properties":{"path":"/p"},"timestamp":"2026-03-02T09:00:00Z"}`),
		[]byte(`{"type":"page","userId":"u1","properties":{"a":`),
		[]byte("\x84\xa4type\xa5track\xa6userId\xa2u5\xa5event\xa1e\xaaproperties\x81\xa1k\xa1v"),
	}
	for _, skip := range []bool{false, true} {
		d := Decoder{SkipContext: skip, MaxSpare: 100}
		type kept struct {
			line int
			e    *Event
		}
		var all []kept
		for round := range 5 {
			for i, line := range lines {
				e := new(Event)
				err := d.DecodeInto(e, line, Auto, 7)
				var want Event
				wantErr := DecodeInto(&want, line, Auto, 7)
				if skip {
					wantErr = DecodeIntoSkipContext(&want, line, Auto, 7)
				}
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("round %d line %d: error %v, DecodeInto's %v", round, i, err, wantErr)
				}
				if err != nil {
					if !reflect.DeepEqual(e, &Event{}) {
						t.Errorf("line %d: event after an error %+v, want it reset", i, e)
					}
					continue
				}
				all = append(all, kept{i, e})
			}
			// Recycle every other kept event; the rest stay in use.
			var still []kept
			for j, k := range all {
				if j%2 == round%2 {
					d.Recycle(k.e)
					if !reflect.DeepEqual(k.e, &Event{}) {
						t.Errorf("recycled event not reset: %+v", k.e)
					}
					continue
				}
				still = append(still, k)
			}
			all = still
			for _, k := range all {
				want, _ := Decode(lines[k.line], Auto, 7)
				if skip {
					want.Context = nil
				}
				if !reflect.DeepEqual(want, k.e) {
					t.Fatalf("round %d: kept event of line %d changed:\n %+v\nwant\n %+v", round, k.line, k.e, want)
				}
			}
		}
		if len(d.spares) == 0 || len(d.spares) > 100 {
			t.Errorf("%d spare maps kept, want some and at most MaxSpare", len(d.spares))
		}
		d.Trim(2)
		if len(d.spares) != 2 {
			t.Errorf("%d spare maps after Trim(2)", len(d.spares))
		}
	}
}
