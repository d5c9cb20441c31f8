package event_test

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/leadpulse/leadpulse/event"
)

// fuzzRecordTime is the record time FuzzDecode passes as the fallback.
const fuzzRecordTime = int64(1772442000123456789)

// FuzzDecode feeds arbitrary bytes to Decode with Auto format. Decode must not
// panic, and it either returns a resolved event (a known type, a contact, a
// nonzero time) or an *Error with a known Reason and a message. A decoded event
// must survive EncodeJSON and EncodeMsgpack unchanged (but for empty maps,
// which come back nil), and a record time must
// change nothing but the lack of a time.
//
// Seeds: testdata/fuzz/FuzzDecode (JSON and msgpack, valid and bad) and every
// line of testdata/events.jsonl as JSON and, where it is JSON, as msgpack.
//
//	go test -run XXX -fuzz FuzzDecode -fuzztime 60s ./event
func FuzzDecode(f *testing.F) {
	for _, line := range fixtureLines(f) {
		f.Add(line)
		if m, ok := toMsgpack(f, string(line)); ok {
			f.Add(m)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		e, err := event.Decode(b, event.Auto, 0)
		if !bytes.Equal(in, b) {
			t.Fatalf("Decode changed its input")
		}
		checkResult(t, e, err)

		// A record time only stands in for a missing time.
		e2, err2 := event.Decode(b, event.Auto, fuzzRecordTime)
		checkResult(t, e2, err2)
		switch {
		case err == nil:
			if err2 != nil || !reflect.DeepEqual(e, e2) {
				t.Fatalf("with a record time: %v, %+v; without: %+v", err2, e2, e)
			}
		case err2 == nil:
			if event.ReasonOf(err) != event.ReasonBadTime || e2.Time != fuzzRecordTime {
				t.Fatalf("a record time turned %v into %+v", err, e2)
			}
		case event.ReasonOf(err2) != event.ReasonOf(err) && event.ReasonOf(err) != event.ReasonBadTime:
			t.Fatalf("a record time changed the reason: %v, then %v", err, err2)
		}
		if err != nil {
			return
		}

		// What Decode accepts, the encoders write back as the same event.
		for name, encode := range map[string]func(*event.Event) ([]byte, error){"json": event.EncodeJSON, "msgpack": event.EncodeMsgpack} {
			enc, err := encode(e)
			if err != nil {
				t.Fatalf("Encode%s(%+v): %v", name, e, err)
			}
			back, err := event.Decode(enc, event.Auto, 0)
			if err != nil {
				t.Fatalf("%s round trip of %+v: %v\n%q", name, e, err, enc)
			}
			if !reflect.DeepEqual(back, omitEmpty(e)) {
				t.Fatalf("%s round trip\n got %#v\nwant %#v", name, back, e)
			}
		}
	})
}

// omitEmpty is e as its encoders write it: an empty Properties, Traits or
// Context map is left out (omitempty), so it comes back nil, which rules read
// the same way.
func omitEmpty(e *event.Event) *event.Event {
	c := *e
	for _, m := range []*map[string]any{&c.Properties, &c.Traits, &c.Context} {
		if len(*m) == 0 {
			*m = nil
		}
	}
	return &c
}

func checkResult(t *testing.T, e *event.Event, err error) {
	t.Helper()
	if err != nil {
		var ee *event.Error
		if !errors.As(err, &ee) {
			t.Fatalf("error %T is not an *event.Error: %v", err, err)
		}
		if !slices.Contains(event.Reasons, ee.Reason) || ee.Msg == "" {
			t.Fatalf("unknown reason or empty message: %#v", ee)
		}
		if e != nil {
			t.Fatalf("an event with an error: %+v, %v", e, err)
		}
		return
	}
	if e == nil || !slices.Contains(event.Types, e.Type) || e.Contact() == "" || e.Time == 0 {
		t.Fatalf("accepted an unresolved event: %+v", e)
	}
}

// FuzzDecodeJSONAsMsgpack checks SPEC §1's promise that a msgpack map with the
// same fields is the same event: whatever JSON object the fuzzer makes, its
// msgpack form (integral numbers as msgpack integers, keys in order) must
// decode to the same Event, or be refused for the same Reason.
func FuzzDecodeJSONAsMsgpack(f *testing.F) {
	for _, line := range fixtureLines(f) {
		f.Add(string(line))
	}
	f.Fuzz(func(t *testing.T, js string) {
		m, ok := toMsgpack(t, js)
		if !ok || len(m) == 0 || m[0] < 0x80 || m[0] > 0x8f && m[0] != 0xde && m[0] != 0xdf {
			return // encoding/json cannot read it, or it is not an object
		}
		je, jerr := event.Decode([]byte(js), event.JSON, 0)
		if event.ReasonOf(jerr) == event.ReasonBadUTF8 {
			// encoding/json, which made the msgpack form, wrote the invalid
			// text as U+FFFD: the msgpack form is another, valid, event.
			return
		}
		me, merr := event.Decode(m, event.Msgpack, 0)
		if event.ReasonOf(jerr) != event.ReasonOf(merr) {
			t.Fatalf("JSON: %v\nmsgpack: %v\n%q", jerr, merr, m)
		}
		if !reflect.DeepEqual(je, me) {
			t.Fatalf("JSON:    %#v\nmsgpack: %#v", je, me)
		}
	})
}
