package event_test

import (
	"bufio"
	"bytes"
	stdjson "encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/leadpulse/leadpulse/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// ts parses an RFC 3339 time into Unix nanoseconds.
func ts(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixNano()
}

// toMsgpack transcodes a JSON text to msgpack, keeping the order of keys and
// any repeated keys, and writing integral numbers as msgpack integers (as a
// msgpack producer would). ok is false if encoding/json cannot read the text.
func toMsgpack(t testing.TB, js string) (b []byte, ok bool) {
	t.Helper()
	dec := stdjson.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	v, err := readJSON(dec)
	if err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := writeMsgpack(enc, v); err != nil {
		t.Fatalf("encode %s as msgpack: %v", js, err)
	}
	return buf.Bytes(), true
}

// jsonObject keeps the members of a JSON object in order, repeats included.
type jsonObject []struct {
	key string
	val any
}

func readJSON(dec *stdjson.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case stdjson.Delim('{'):
		var obj jsonObject
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, struct {
				key string
				val any
			}{k.(string), v})
		}
		_, err := dec.Token()
		return obj, err
	case stdjson.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	}
	return tok, nil
}

func writeMsgpack(enc *msgpack.Encoder, v any) error {
	switch v := v.(type) {
	case jsonObject:
		if err := enc.EncodeMapLen(len(v)); err != nil {
			return err
		}
		for _, m := range v {
			if err := enc.EncodeString(m.key); err != nil {
				return err
			}
			if err := writeMsgpack(enc, m.val); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if err := enc.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, x := range v {
			if err := writeMsgpack(enc, x); err != nil {
				return err
			}
		}
		return nil
	case stdjson.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return enc.EncodeInt(i)
		}
		if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return enc.EncodeUint(u)
		}
		f, _ := strconv.ParseFloat(string(v), 64) // out of range: ±Inf, which the decoder refuses as JSON does
		return enc.EncodeFloat64(f)
	}
	return enc.Encode(v) // string, bool, nil
}

// mustMsgpack is toMsgpack for texts that are valid JSON.
func mustMsgpack(t testing.TB, js string) []byte {
	t.Helper()
	b, ok := toMsgpack(t, js)
	if !ok {
		t.Fatalf("not valid JSON: %s", js)
	}
	return b
}

// mp builds msgpack by hand: fn writes the values.
func mp(t testing.TB, fn func(enc *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := fn(msgpack.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeAll decodes a JSON text four ways: as JSON by detection and forced,
// and transcoded to msgpack by detection and forced.
func decodeAll(t *testing.T, js string, fallback int64) map[string]func() (*event.Event, error) {
	t.Helper()
	m := mustMsgpack(t, js)
	return map[string]func() (*event.Event, error){
		"json/auto":    func() (*event.Event, error) { return event.Decode([]byte(js), event.Auto, fallback) },
		"json/forced":  func() (*event.Event, error) { return event.Decode([]byte(js), event.JSON, fallback) },
		"msgpack/auto": func() (*event.Event, error) { return event.Decode(m, event.Auto, fallback) },
		"msgpack/forced": func() (*event.Event, error) {
			return event.Decode(m, event.Msgpack, fallback)
		},
	}
}

func TestDecodeJSONAndMsgpackGiveTheSameEvent(t *testing.T) {
	at := ts(t, "2026-03-02T09:00:00Z")
	tests := []struct {
		name string
		json string
		want event.Event
	}{
		{
			name: "page",
			json: `{"type":"page","userId":"u1","anonymousId":"a1","name":"Pricing","messageId":"m1",
				"properties":{"path":"/pricing","url":"https://example.com/pricing?plan=pro","title":"Pricing"},
				"context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0","campaign":{"source":"newsletter"}},
				"timestamp":"2026-03-02T09:00:00Z"}`,
			want: event.Event{Type: "page", UserID: "u1", AnonymousID: "a1", Name: "Pricing", MessageID: "m1",
				Properties:   map[string]any{"path": "/pricing", "url": "https://example.com/pricing?plan=pro", "title": "Pricing"},
				Context:      map[string]any{"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "campaign": map[string]any{"source": "newsletter"}},
				RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
		{
			name: "track with numbers of every size",
			json: `{"type":"track","anonymousId":"a2","event":"Product Added","timestamp":"2026-03-02T09:00:00Z",
				"properties":{"price":19.99,"quantity":2,"delta":-3,"big":300,"huge":9007199254740993,
				"umax":18446744073709551615,"min":-9223372036854775808,"exp":1e21,"zero":0,"neg":-0.5}}`,
			want: event.Event{Type: "track", AnonymousID: "a2", Event: "Product Added", RawTimestamp: "2026-03-02T09:00:00Z", Time: at,
				Properties: map[string]any{"price": 19.99, "quantity": 2.0, "delta": -3.0, "big": 300.0,
					"huge": 9007199254740992.0, "umax": 18446744073709551615.0, "min": -9223372036854775808.0,
					"exp": 1e21, "zero": 0.0, "neg": -0.5}},
		},
		{
			name: "identify with nested traits",
			json: `{"type":"identify","userId":"u1","originalTimestamp":"2026-03-02T09:00:00Z",
				"traits":{"email":"ada@example.com","company_size":250,"tags":["a",1,true,null,{"k":[]}],"vip":false,"manager":null,"address":{}}}`,
			want: event.Event{Type: "identify", UserID: "u1", RawOriginalTimestamp: "2026-03-02T09:00:00Z", Time: at,
				Traits: map[string]any{"email": "ada@example.com", "company_size": 250.0,
					"tags": []any{"a", 1.0, true, nil, map[string]any{"k": []any{}}}, "vip": false, "manager": nil, "address": map[string]any{}}},
		},
		{
			name: "alias with previousId",
			json: `{"type":"alias","userId":"u1","previousId":"a-old","PreviousID":"a-prev","timestamp":"2026-03-02T09:00:00Z"}`,
			want: event.Event{Type: "alias", UserID: "u1", PreviousID: "a-prev", RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
		{
			name: "unknown fields are skipped",
			json: `{"type":"group","userId":"u5","sentAt":"2026-03-02T09:00:01Z","integrations":{"All":true,"x":[[1,{"a":[2]}]]},
				"version":2,"_metadata":null,"timestamp":"2026-03-02T09:00:00Z"}`,
			want: event.Event{Type: "group", UserID: "u5", RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
		{
			name: "names match case-insensitively and the last of a repeated field wins",
			json: `{"TYPE":"track","Type":"page","UserId":"u-first","userid":"u-last","TimeStamp":"2026-03-02T09:00:00Z"}`,
			want: event.Event{Type: "page", UserID: "u-last", RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
		{
			name: "null leaves a string field and clears a map",
			json: `{"type":"page","type":null,"userId":"u1","traits":{"a":1},"traits":null,"timestamp":"2026-03-02T09:00:00Z","name":null}`,
			want: event.Event{Type: "page", UserID: "u1", RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
		{
			name: "a repeated map field adds to the first",
			json: `{"type":"page","userId":"u1","properties":{"a":1,"b":1},"properties":{"b":2,"c":{"x":1}},"timestamp":"2026-03-02T09:00:00Z"}`,
			want: event.Event{Type: "page", UserID: "u1", RawTimestamp: "2026-03-02T09:00:00Z", Time: at,
				Properties: map[string]any{"a": 1.0, "b": 2.0, "c": map[string]any{"x": 1.0}}},
		},
		{
			name: "escapes and non-ASCII text",
			json: `{"type":"track","userId":"ü@example.com","event":"Line\nBreak \"quoted\" \u00e9 \ud83d\ude00","timestamp":"2026-03-02T09:00:00Z"}`,
			want: event.Event{Type: "track", UserID: "ü@example.com", Event: "Line\nBreak \"quoted\" é 😀", RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
		{
			name: "white space around the object",
			json: " \t\r\n{\"type\":\"screen\",\"userId\":\"u4\",\"name\":\"Home\",\"timestamp\":\"2026-03-02T09:00:00Z\"}\n",
			want: event.Event{Type: "screen", UserID: "u4", Name: "Home", RawTimestamp: "2026-03-02T09:00:00Z", Time: at},
		},
	}
	for _, tt := range tests {
		for how, decode := range decodeAll(t, tt.json, 0) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				got, err := decode()
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !reflect.DeepEqual(*got, tt.want) {
					t.Errorf("Decode\n got %#v\nwant %#v", *got, tt.want)
				}
			})
		}
	}
}

// TestDecodeMsgpackValueTypes pins that msgpack values come out with JSON's Go
// types whatever their msgpack encoding.
func TestDecodeMsgpackValueTypes(t *testing.T) {
	when := time.Date(2026, 3, 2, 9, 0, 0, 500, time.UTC)
	b := mp(t, func(e *msgpack.Encoder) error {
		return errors.Join(
			e.EncodeMapLen(4),
			e.EncodeString("type"), e.EncodeString("track"),
			e.EncodeString("userId"), e.EncodeBytes([]byte("u-bin")), // binary string field
			e.EncodeString("timestamp"), e.EncodeTime(when), // msgpack timestamp extension
			e.EncodeString("properties"), e.EncodeMapLen(13),
			e.EncodeString("i8"), e.EncodeInt8(-5),
			e.EncodeString("i16"), e.EncodeInt16(-300),
			e.EncodeString("i32"), e.EncodeInt32(70000),
			e.EncodeString("i64"), e.EncodeInt64(1<<40),
			e.EncodeString("u8"), e.EncodeUint8(200),
			e.EncodeString("u16"), e.EncodeUint16(300),
			e.EncodeString("u32"), e.EncodeUint32(1<<31),
			e.EncodeString("u64"), e.EncodeUint64(1<<63),
			e.EncodeString("f32"), e.EncodeFloat32(1.5),
			e.EncodeString("f64"), e.EncodeFloat64(0.1),
			e.EncodeString("bin"), e.EncodeBytes([]byte("abc")),
			e.EncodeString("at"), e.EncodeTime(when),
			e.EncodeString("list"), e.EncodeArrayLen(4), e.EncodeInt8(1), e.EncodeNil(), e.EncodeBool(true), e.EncodeBytes([]byte{}),
		)
	})
	got, err := event.Decode(b, event.Auto, 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := event.Event{Type: "track", UserID: "u-bin", RawTimestamp: "2026-03-02T09:00:00.0000005Z", Time: when.UnixNano(),
		Properties: map[string]any{"i8": -5.0, "i16": -300.0, "i32": 70000.0, "i64": float64(1 << 40),
			"u8": 200.0, "u16": 300.0, "u32": float64(1 << 31), "u64": float64(1 << 63), "f32": 1.5, "f64": 0.1,
			"bin": "abc", "at": "2026-03-02T09:00:00.0000005Z", "list": []any{1.0, nil, true, ""}}}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Decode\n got %#v\nwant %#v", *got, want)
	}
}

// TestDecodeInvalidUTF8 pins that free-form text that is not UTF-8 reads
// the same in both encodings: each bad byte becomes U+FFFD, as
// encoding/json does. (Ids and names are refused instead: TestBadUTF8.)
func TestDecodeInvalidUTF8(t *testing.T) {
	const bad = "x\xffy\xe2\x82z" // a stray byte and a cut-short rune
	const want = "x\uFFFDy\uFFFD\uFFFDz"
	js := `{"type":"page","userId":"u1","name":"` + bad + `","properties":{"` + bad + `":"` + bad + `"},"timestamp":"2026-03-02T09:00:00Z"}`
	m := mp(t, func(e *msgpack.Encoder) error {
		return errors.Join(e.EncodeMapLen(5),
			e.EncodeString("type"), e.EncodeString("page"),
			e.EncodeString("userId"), e.EncodeString("u1"), e.EncodeString("name"), e.EncodeString(bad),
			e.EncodeString("properties"), e.EncodeMapLen(1), e.EncodeString(bad), e.EncodeString(bad),
			e.EncodeString("timestamp"), e.EncodeString("2026-03-02T09:00:00Z"))
	})
	for name, b := range map[string][]byte{"json": []byte(js), "msgpack": m} {
		got, err := event.Decode(b, event.Auto, 0)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if got.Name != want || !reflect.DeepEqual(got.Properties, map[string]any{want: want}) {
			t.Errorf("%s: got name %q, properties %q; want %q", name, got.Name, got.Properties, want)
		}
	}
}

func TestContact(t *testing.T) {
	tests := []struct {
		name, fields, want string
	}{
		{"userId wins over anonymousId", `"userId":"u1","anonymousId":"a1"`, "u1"},
		{"anonymousId when no userId", `"anonymousId":"a1"`, "a1"},
		{"userId alone", `"userId":"u1"`, "u1"},
		{"empty userId falls to anonymousId", `"userId":"","anonymousId":"a1"`, "a1"},
		{"null userId falls to anonymousId", `"userId":null,"anonymousId":"a1"`, "a1"},
	}
	for _, tt := range tests {
		js := `{"type":"track","event":"x",` + tt.fields + `,"timestamp":"2026-03-02T09:00:00Z"}`
		for how, decode := range decodeAll(t, js, 0) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				e, err := decode()
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got := e.Contact(); got != tt.want {
					t.Errorf("Contact() = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestTime(t *testing.T) {
	record := ts(t, "2026-03-02T12:00:00Z") // the Kafka record time, live
	tests := []struct {
		name     string
		fields   string
		fallback int64
		want     string       // RFC 3339 of the resolved time, if it resolves
		reason   event.Reason // else the reason
		hint     string       // and a part of the message
	}{
		{name: "timestamp", fields: `"timestamp":"2026-03-02T09:00:00Z"`, want: "2026-03-02T09:00:00Z"},
		{name: "timestamp with offset and fraction", fields: `"timestamp":"2026-03-02T10:00:00.123456789+01:00"`, want: "2026-03-02T09:00:00.123456789Z"},
		{name: "timestamp wins over originalTimestamp", fields: `"timestamp":"2026-03-02T09:00:00Z","originalTimestamp":"2026-03-01T09:00:00Z"`, want: "2026-03-02T09:00:00Z"},
		{name: "timestamp wins over the record time", fields: `"timestamp":"2026-03-02T09:00:00Z"`, fallback: record, want: "2026-03-02T09:00:00Z"},
		{name: "originalTimestamp when no timestamp", fields: `"originalTimestamp":"2026-03-01T09:00:00Z"`, want: "2026-03-01T09:00:00Z"},
		{name: "originalTimestamp when timestamp is empty", fields: `"timestamp":"","originalTimestamp":"2026-03-01T09:00:00Z"`, want: "2026-03-01T09:00:00Z"},
		{name: "originalTimestamp wins over the record time", fields: `"originalTimestamp":"2026-03-01T09:00:00Z"`, fallback: record, want: "2026-03-01T09:00:00Z"},
		{name: "an unread originalTimestamp does not matter", fields: `"timestamp":"2026-03-02T09:00:00Z","originalTimestamp":"junk"`, want: "2026-03-02T09:00:00Z"},
		{name: "record time when no timestamp", fields: `"name":"Home"`, fallback: record, want: "2026-03-02T12:00:00Z"},
		{name: "no time and no record time", fields: `"name":"Home"`,
			reason: event.ReasonBadTime, hint: `has no time; set "timestamp"`},
		{name: "unreadable timestamp", fields: `"timestamp":"yesterday"`, fallback: record,
			reason: event.ReasonBadTime, hint: `timestamp "yesterday" is not RFC 3339; send e.g. "2026-03-02T09:00:00Z"`},
		{name: "unreadable timestamp does not fall back", fields: `"timestamp":"2026-03-02 09:00:00","originalTimestamp":"2026-03-01T09:00:00Z"`,
			reason: event.ReasonBadTime, hint: `timestamp "2026-03-02 09:00:00" is not RFC 3339`},
		{name: "unreadable originalTimestamp", fields: `"originalTimestamp":"02/03/2026"`, fallback: record,
			reason: event.ReasonBadTime, hint: `originalTimestamp "02/03/2026" is not RFC 3339`},
		{name: "epoch seconds are not RFC 3339", fields: `"timestamp":"1772442000"`,
			reason: event.ReasonBadTime, hint: `is not RFC 3339`},
		{name: "the Unix epoch is a placeholder", fields: `"timestamp":"1970-01-01T00:00:00Z"`, fallback: record,
			reason: event.ReasonBadTime, hint: "is the Unix epoch"},
		{name: "too late to hold", fields: `"timestamp":"9999-12-31T23:59:59Z"`,
			reason: event.ReasonBadTime, hint: "outside the years 1678–2262"},
		{name: "too early to hold", fields: `"originalTimestamp":"0001-01-01T00:00:00Z"`,
			reason: event.ReasonBadTime, hint: "outside the years 1678–2262"},
		{name: "before 1970 is fine", fields: `"timestamp":"1969-12-31T23:59:59Z"`, want: "1969-12-31T23:59:59Z"},
		{name: "wrong type of timestamp", fields: `"timestamp":1772442000`,
			reason: event.ReasonMalformed, hint: `field "timestamp" is a`},
	}
	for _, tt := range tests {
		js := `{"type":"page","userId":"u1",` + tt.fields + `}`
		for how, decode := range decodeAll(t, js, tt.fallback) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				e, err := decode()
				if tt.reason != "" {
					checkBad(t, e, err, tt.reason, tt.hint)
					return
				}
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got := e.Timestamp().Format(time.RFC3339Nano); got != tt.want {
					t.Errorf("time = %s, want %s", got, tt.want)
				}
				if e.Time != e.Timestamp().UnixNano() {
					t.Errorf("Time %d and Timestamp() %v disagree", e.Time, e.Timestamp())
				}
			})
		}
	}
}

// checkBad checks that Decode refused the input for reason, with a message
// that contains hint.
func checkBad(t *testing.T, e *event.Event, err error, reason event.Reason, hint string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Decode accepted it: %+v", *e)
	}
	if e != nil {
		t.Errorf("Decode returned an event with its error: %+v", *e)
	}
	var ee *event.Error
	if !errors.As(err, &ee) {
		t.Fatalf("error %T %v is not an *event.Error", err, err)
	}
	if ee.Reason != reason || event.ReasonOf(err) != reason {
		t.Errorf("Reason = %q, ReasonOf = %q, want %q (%v)", ee.Reason, event.ReasonOf(err), reason, err)
	}
	if wrapped := fmt.Errorf("line 7: %w", err); event.ReasonOf(wrapped) != reason {
		t.Errorf("ReasonOf(wrapped) = %q, want %q", event.ReasonOf(wrapped), reason)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, string(reason)+": ") {
		t.Errorf("message %q does not start with the reason", msg)
	}
	if !strings.Contains(msg, hint) {
		t.Errorf("message %q does not say %q", msg, hint)
	}
}

func TestBadInput(t *testing.T) {
	const ok = `"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"`
	tests := []struct {
		name   string
		in     string
		format event.Format
		reason event.Reason
		hint   string
	}{
		// JSON
		{"not JSON", "not json at all", event.Auto, event.ReasonMalformed, "not a JSON object (it starts with 'n'); each line or record must be one event object"},
		{"JSON array", `[{` + ok + `}]`, event.Auto, event.ReasonMalformed, "not an array or a bare value"},
		{"JSON string", `"page"`, event.Auto, event.ReasonMalformed, "not a JSON object"},
		{"JSON null", `null`, event.JSON, event.ReasonMalformed, "not a JSON object"},
		{"truncated JSON", `{` + ok + `,"properties":{"path":"/pri`, event.Auto, event.ReasonMalformed, "not valid JSON for an event; each line or record must be one complete JSON object"},
		{"two objects", `{` + ok + `}{` + ok + `}`, event.Auto, event.ReasonMalformed, "one complete JSON object"},
		{"trailing junk", `{` + ok + `} x`, event.Auto, event.ReasonMalformed, "one complete JSON object"},
		{"type is a number", `{"type":5,"userId":"u1"}`, event.Auto, event.ReasonMalformed, `field "type" is a JSON number; it must be a string`},
		{"userId is a number", `{"type":"page","userId":42}`, event.Auto, event.ReasonMalformed, `field "userId" is a JSON number; it must be a string`},
		{"properties is an array", `{` + ok + `,"properties":["path","/x"]}`, event.Auto, event.ReasonMalformed, `field "properties" is a JSON array; it must be an object`},
		{"traits is a string", `{` + ok + `,"traits":"vip"}`, event.Auto, event.ReasonMalformed, `field "traits" is a JSON string; it must be an object`},
		{"number out of range", `{` + ok + `,"properties":{"n":1e400}}`, event.Auto, event.ReasonMalformed, `field "properties.n" is a JSON number 1e400`},
		{"missing type", `{"userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`, event.Auto, event.ReasonNoType, `the event has no "type"; set it to one of track, page, screen, identify, group, alias`},
		{"empty type", `{"type":"","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`, event.Auto, event.ReasonNoType, `no "type"`},
		{"unknown type", `{"type":"click","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`, event.Auto, event.ReasonUnknownType, `type "click" is not one of track, page, screen, identify, group, alias`},
		{"type in the wrong case", `{"type":"Page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`, event.Auto, event.ReasonUnknownType, `type "Page"`},
		{"no contact", `{"type":"page","timestamp":"2026-03-02T09:00:00Z"}`, event.Auto, event.ReasonNoContact, `names no contact; set "userId" or "anonymousId"`},
		{"empty contact", `{"type":"page","userId":"","anonymousId":"","timestamp":"2026-03-02T09:00:00Z"}`, event.Auto, event.ReasonNoContact, "no contact"},
		{"unreadable timestamp", `{"type":"page","userId":"u1","timestamp":"yesterday"}`, event.Auto, event.ReasonBadTime, `timestamp "yesterday" is not RFC 3339`},
		{"unreadable originalTimestamp", `{"type":"page","userId":"u1","originalTimestamp":"soon"}`, event.Auto, event.ReasonBadTime, `originalTimestamp "soon" is not RFC 3339`},
		{"empty input", "", event.Auto, event.ReasonMalformed, "the record is empty"},
		{"empty input as JSON", "", event.JSON, event.ReasonMalformed, "the record is empty"},
		{"white space only", " \n\t ", event.Auto, event.ReasonMalformed, "the record is empty"},
		{"msgpack forced on JSON", `{` + ok + `}`, event.Msgpack, event.ReasonMalformed, "not a msgpack map (it starts with a msgpack integer, byte 0x7b)"},
		{"JSON forced on msgpack", "\x81\xa4type\xa4page", event.JSON, event.ReasonMalformed, "not a JSON object"},

		// msgpack
		{"empty input as msgpack", "", event.Msgpack, event.ReasonMalformed, "the record is empty"},
		{"msgpack array", "\x91\xa4page", event.Msgpack, event.ReasonMalformed, "not a msgpack map (it starts with a msgpack array"},
		{"msgpack nil", "\xc0", event.Msgpack, event.ReasonMalformed, "not a msgpack map (it starts with a msgpack nil"},
		{"truncated msgpack", "\x83\xa4type\xa4page\xa6userId\xa2u", event.Auto, event.ReasonMalformed, "the msgpack map is truncated; send the whole encoded event"},
		{"truncated msgpack header", "\xdf\x00\x00", event.Auto, event.ReasonMalformed, "truncated"},
		{"msgpack key not a string", "\x82\xa4type\xa4page\x05\x01", event.Auto, event.ReasonMalformed, "a key in the event map is a msgpack integer; map keys must be strings"},
		{"msgpack nested key not a string", "\x82\xa4type\xa4page\xaaproperties\x81\xc3\x01", event.Auto, event.ReasonMalformed, `a key in field "properties" is a msgpack boolean`},
		{"msgpack type is a number", "\x81\xa4type\x05", event.Auto, event.ReasonMalformed, `field "type" is a msgpack integer; it must be a string`},
		{"msgpack properties is an array", "\x81\xaaproperties\x90", event.Auto, event.ReasonMalformed, `field "properties" is a msgpack array; it must be a map`},
		{"msgpack bytes after the map", "\x81\xa4type\xa4page\x00\x01", event.Auto, event.ReasonMalformed, "2 bytes follow the msgpack event map"},
		{"msgpack never-used byte", "\x81\xaaproperties\x81\xa1a\xc1", event.Auto, event.ReasonMalformed, `field "properties.a" holds byte 0xc1, which is not a msgpack value`},
		{"msgpack unknown extension", "\x81\xaaproperties\x81\xa1a\xd4\x05\x00", event.Auto, event.ReasonMalformed, `field "properties.a" is a msgpack extension other than a timestamp`},
		{"msgpack NaN", "\x81\xaaproperties\x81\xa1a\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", event.Auto, event.ReasonMalformed, `field "properties.a" is NaN, which JSON cannot carry`},
		{"msgpack infinity", "\x81\xaaproperties\x81\xa1a\xca\x7f\x80\x00\x00", event.Auto, event.ReasonMalformed, `is +Inf, which JSON cannot carry`},
		{"msgpack garbage", "\x8f\xff\xfe\xfd", event.Auto, event.ReasonMalformed, "a key in the event map is a msgpack integer"},
		{"msgpack missing type", "\x81\xa6userId\xa2u1", event.Auto, event.ReasonNoType, `no "type"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := event.Decode([]byte(tt.in), tt.format, 0)
			checkBad(t, e, err, tt.reason, tt.hint)
		})
	}
}

// TestBadInputSameInMsgpack checks that each bad JSON object is refused for
// the same reason when it comes as msgpack.
func TestBadInputSameInMsgpack(t *testing.T) {
	for _, js := range []string{
		`{"type":5,"userId":"u1"}`,
		`{"type":"page","userId":"u1","properties":["a"],"timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","userId":"u1","properties":{"n":1e400},"timestamp":"2026-03-02T09:00:00Z"}`,
		`{"userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"click","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","userId":"u1","timestamp":"yesterday"}`,
		`{"type":"page","userId":"u1","originalTimestamp":"soon"}`,
		`{"type":"page","userId":"u1"}`,
	} {
		_, jerr := event.Decode([]byte(js), event.JSON, 0)
		_, merr := event.Decode(mustMsgpack(t, js), event.Msgpack, 0)
		if jerr == nil || event.ReasonOf(jerr) != event.ReasonOf(merr) {
			t.Errorf("%s:\n json:    %v\n msgpack: %v", js, jerr, merr)
		}
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := event.Decode([]byte(`{"type":"page","userId":"u1","timestamp":"yesterday"}`), event.Auto, 0)
	var pe *time.ParseError
	if !errors.As(err, &pe) {
		t.Errorf("errors.As(%v, *time.ParseError) = false; the parse error should be wrapped", err)
	}
	if event.ReasonOf(errors.New("other")) != "" || event.ReasonOf(nil) != "" {
		t.Error("ReasonOf of an error that is not bad input should be empty")
	}
	e := &event.Error{Reason: event.ReasonNoType, Msg: "m"}
	if e.Error() != "no_type: m" || e.Unwrap() != nil {
		t.Errorf("Error() = %q, Unwrap() = %v", e.Error(), e.Unwrap())
	}
}

// TestNesting pins the nesting limit: 10000 levels counting the event object,
// the same for JSON and msgpack, in a known field or a skipped one.
func TestNesting(t *testing.T) {
	nest := func(field string, depth int) string { // depth counts the event object and the field's object
		return `{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z","` + field + `":{"a":` +
			strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2) + `}}`
	}
	for _, field := range []string{"properties", "unknown"} {
		for _, tt := range []struct {
			depth int
			ok    bool
		}{{10000, true}, {10001, false}} {
			js := nest(field, tt.depth)
			for how, decode := range decodeAll(t, js, 0) {
				_, err := decode()
				if (err == nil) != tt.ok {
					t.Errorf("%s nested %d deep, %s: err = %v, want ok = %v", field, tt.depth, how, err, tt.ok)
				}
				if err != nil && event.ReasonOf(err) != event.ReasonMalformed {
					t.Errorf("%s nested %d deep, %s: reason %q", field, tt.depth, how, event.ReasonOf(err))
				}
			}
		}
	}
}

// TestMsgpackLengthsAreNotTrusted feeds msgpack that claims huge lengths in a
// few bytes: the decoder must refuse it without allocating what it claims.
func TestMsgpackLengthsAreNotTrusted(t *testing.T) {
	for name, in := range map[string]string{
		"map32 at the top":    "\xdf\xff\xff\xff\xff\xa4type",
		"map32 in properties": "\x82\xa4type\xa4page\xaaproperties\xdf\x7f\xff\xff\xff",
		"map16 in properties": "\x82\xa4type\xa4page\xaaproperties\xde\xff\xff\xa1a",
		"array32 in a value":  "\x81\xaaproperties\x81\xa1a\xdd\x7f\xff\xff\xff\x01",
		"array32 skipped":     "\x81\xa5extra\xdd\x7f\xff\xff\xff\x01",
		"str32 in a key":      "\x81\xdb\x7f\xff\xff\xffabc",
		"bin32 in a value":    "\x81\xaaproperties\x81\xa1a\xc6\x7f\xff\xff\xffabc",
		"ext32 in a value":    "\x81\xaaproperties\x81\xa1a\xc9\x7f\xff\xff\xff\xffabc",
		"bin32 in a key":      "\x83\xc60000", // found by FuzzDecode: 1 MiB for 6 bytes
		"str16 skipped":       "\x81\xa5extra\xda\xff\xffabc",
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, err := event.Decode([]byte(in), event.Auto, 0)
		runtime.ReadMemStats(&after)
		checkBad(t, e, err, event.ReasonMalformed, "")
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: allocated %d bytes for a %d-byte record", name, n, len(in))
		}
	}
}

func TestDetect(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want event.Format
	}{
		{`{"type":"page"}`, event.JSON},
		{"\n  {}", event.JSON},
		{"", event.JSON},
		{"[]", event.JSON},
		{"\x80", event.Msgpack},
		{"\x8f", event.Msgpack},
		{"\xde\x00\x10", event.Msgpack},
		{"\xdf\x00\x00\x00\x10", event.Msgpack},
		{"\x90", event.JSON},                 // msgpack array: not an event either way
		{" \x81\xa4type", event.JSON},        // white space is not skipped for msgpack
		{"\xef\xbb\xbf{}", event.JSON},       // a byte-order mark is not JSON
		{"\xdd\x00\x00\x00\x01", event.JSON}, // array32
	} {
		if got := event.Detect([]byte(tt.in)); got != tt.want {
			t.Errorf("Detect(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeIntoResets(t *testing.T) {
	var e event.Event
	full := `{"type":"identify","userId":"u1","anonymousId":"a1","event":"e","name":"n","messageId":"m",
		"properties":{"a":1},"traits":{"b":2},"context":{"c":3},"timestamp":"2026-03-02T09:00:00Z","originalTimestamp":"2026-03-02T08:00:00Z"}`
	for _, b := range [][]byte{[]byte(full), mustMsgpack(t, full)} {
		if err := event.DecodeInto(&e, b, event.Auto, 0); err != nil {
			t.Fatal(err)
		}
		if err := event.DecodeInto(&e, []byte(`{"type":"page","anonymousId":"a2"}`), event.Auto, 7); err != nil {
			t.Fatal(err)
		}
		want := event.Event{Type: "page", AnonymousID: "a2", Time: 7}
		if !reflect.DeepEqual(e, want) {
			t.Errorf("DecodeInto kept old fields:\n got %#v\nwant %#v", e, want)
		}
	}
}

// TestDecodeDoesNotKeepInput checks that the event does not alias the input
// buffer, which a Kafka client reuses.
func TestDecodeDoesNotKeepInput(t *testing.T) {
	js := `{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-02T09:00:00Z"}`
	for name, b := range map[string][]byte{"json": []byte(js), "msgpack": mustMsgpack(t, js)} {
		e, err := event.Decode(b, event.Auto, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 'X'
		}
		if e.UserID != "u1" || e.Type != "page" || e.Properties["path"] != "/pricing" {
			t.Errorf("%s: event changed with its input: %+v", name, *e)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for i, line := range fixtureLines(t) {
		e, err := event.Decode(line, event.Auto, 0)
		if err != nil {
			continue
		}
		for name, encode := range map[string]func(*event.Event) ([]byte, error){"json": event.EncodeJSON, "msgpack": event.EncodeMsgpack} {
			b, err := encode(e)
			if err != nil {
				t.Fatalf("line %d: encode %s: %v", i+1, name, err)
			}
			back, err := event.Decode(b, event.Auto, 0)
			if err != nil {
				t.Fatalf("line %d: decode %s: %v\n%q", i+1, name, err, b)
			}
			if !reflect.DeepEqual(back, omitEmpty(e)) {
				t.Errorf("line %d: %s round trip\n got %#v\nwant %#v", i+1, name, *back, *e)
			}
		}
	}
}

func TestFromMap(t *testing.T) {
	e, err := event.FromMap(map[string]any{
		"type": "page", "userId": "u1", "timestamp": "2026-03-02T09:00:00Z",
		"properties": map[string]any{"path": "/pricing", "n": 3, "tags": []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"path": "/pricing", "n": 3.0, "tags": []any{"a"}}
	if !reflect.DeepEqual(e.Properties, want) || e.Contact() != "u1" || e.Time != ts(t, "2026-03-02T09:00:00Z") {
		t.Errorf("FromMap = %#v", *e)
	}
	_, err = event.FromMap(map[string]any{"type": "page", "timestamp": "2026-03-02T09:00:00Z"})
	checkBad(t, nil, err, event.ReasonNoContact, "no contact")
	_, err = event.FromMap(map[string]any{"type": "page", "userId": "u1", "properties": map[string]any{"f": func() {}}})
	checkBad(t, nil, err, event.ReasonMalformed, "cannot be encoded as JSON")
}

func TestReasons(t *testing.T) {
	seen := map[event.Reason]bool{}
	for _, r := range event.Reasons {
		if r == "" || seen[r] || strings.ContainsAny(string(r), " \t\n") {
			t.Errorf("bad or repeated reason %q", r)
		}
		seen[r] = true
	}
	if len(event.Types) != 6 {
		t.Errorf("Types = %v", event.Types)
	}
	for _, typ := range event.Types {
		js := `{"type":"` + typ + `","userId":"u","timestamp":"2026-03-02T09:00:00Z"}`
		if _, err := event.Decode([]byte(js), event.Auto, 0); err != nil {
			t.Errorf("type %s: %v", typ, err)
		}
	}
}

// fixtureLines reads testdata/events.jsonl.
func fixtureLines(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// describe is one line of events.golden.
func describe(n int, e *event.Event, err error) string {
	if err != nil {
		return fmt.Sprintf("%d %v", n, err)
	}
	return fmt.Sprintf("%d ok %s contact=%s time=%s", n, e.Type, e.Contact(), e.Timestamp().Format(time.RFC3339Nano))
}

// TestFixtures decodes testdata/events.jsonl, valid and bad lines, against
// testdata/events.golden (go test -run TestFixtures -update rewrites it), and
// checks that each line that encoding/json can read gives the same result
// transcoded to msgpack.
func TestFixtures(t *testing.T) {
	var out bytes.Buffer
	for i, line := range fixtureLines(t) {
		e, err := event.Decode(line, event.Auto, 0)
		if err != nil && event.ReasonOf(err) == "" {
			t.Errorf("line %d: error is not an *event.Error: %v", i+1, err)
		}
		fmt.Fprintln(&out, describe(i+1, e, err))

		m, ok := toMsgpack(t, string(line))
		if !ok || bytes.TrimSpace(line)[0] != '{' {
			continue
		}
		me, merr := event.Decode(m, event.Auto, 0)
		switch {
		case err == nil && merr == nil:
			if !reflect.DeepEqual(e, me) {
				t.Errorf("line %d: msgpack\n got %#v\nwant %#v", i+1, *me, *e)
			}
		case event.ReasonOf(err) != event.ReasonOf(merr):
			t.Errorf("line %d: json: %v; msgpack: %v", i+1, err, merr)
		}
	}
	const golden = "testdata/events.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestFixtures -update to create it)", err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("output differs from %s (go test -run TestFixtures -update rewrites it):\n%s", golden, diffLines(string(want), got))
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "-%s\n+%s\n", wl, gl)
		}
	}
	return b.String()
}

// TestDecodeConcurrent decodes from several goroutines at once (run with
// -race): the msgpack decoders are pooled.
func TestDecodeConcurrent(t *testing.T) {
	var inputs [][]byte
	var want []*event.Event
	for _, line := range fixtureLines(t) {
		for _, b := range [][]byte{line, func() []byte { m, _ := toMsgpack(t, string(line)); return m }()} {
			if b == nil {
				continue
			}
			e, _ := event.Decode(b, event.Auto, 0)
			inputs, want = append(inputs, b), append(want, e)
		}
	}
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				k := (g*7 + i) % len(inputs)
				got, _ := event.Decode(inputs[k], event.Auto, 0)
				if !reflect.DeepEqual(got, want[k]) {
					t.Errorf("input %d: got %+v, want %+v", k, got, want[k])
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// A UTF-8 byte order mark before a JSON event (some editors and exports
// write one) is skipped, in every format a record is decoded with.
func TestDecodeSkipsByteOrderMark(t *testing.T) {
	const bom = "\xef\xbb\xbf"
	for _, in := range []string{
		bom + `{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
		"  " + bom + `{"type":"page","userId":"u1","timestamp":"2026-03-02T09:00:00Z"}`,
	} {
		if event.Detect([]byte(in)) != event.JSON {
			t.Errorf("Detect(%q) is not JSON", in)
		}
		for _, f := range []event.Format{event.Auto, event.JSON} {
			e, err := event.Decode([]byte(in), f, 0)
			if err != nil || e.UserID != "u1" {
				t.Errorf("Decode(%q, %v) = %v, %v", in, f, e, err)
			}
			var d event.Decoder
			if e, err := d.Decode([]byte(in), f, 0); err != nil || e.UserID != "u1" {
				t.Errorf("Decoder.Decode(%q, %v) = %v, %v", in, f, e, err)
			}
		}
	}
	// Only a mark at the start: one inside a value is the value's.
	e, err := event.Decode([]byte(`{"type":"page","userId":"`+bom+`u1","timestamp":"2026-03-02T09:00:00Z"}`), event.JSON, 0)
	if err != nil || e.UserID != bom+"u1" {
		t.Errorf("a mark inside a value: %v, %v", e, err)
	}
}
