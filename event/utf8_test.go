package event_test

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/leadpulse/leadpulse/event"
)

// TestBadUTF8 (issue 10, item 5): ids and names that are not UTF-8 text are
// bad input with reason bad_utf8, in JSON and in msgpack, rather than
// rewritten to U+FFFD (which made different raw ids one contact). A real
// U+FFFD, raw or escaped, and a valid surrogate pair stay good.
func TestBadUTF8(t *testing.T) {
	const ts = `,"timestamp":"2026-03-02T09:00:00Z"`
	tests := []struct {
		name, js string
		bad      bool
	}{
		{"stray byte in userId", `{"type":"page","userId":"u` + "\xff" + `1"` + ts + `}`, true},
		{"cut-short rune in anonymousId", `{"type":"page","anonymousId":"a` + "\xe2\x82" + `"` + ts + `}`, true},
		{"lone high surrogate escape", `{"type":"page","userId":"u\ud800x"` + ts + `}`, true},
		{"lone low surrogate escape", `{"type":"page","userId":"u\udc00"` + ts + `}`, true},
		{"high surrogate at the end", `{"type":"page","userId":"u\ud83d"` + ts + `}`, true},
		{"event name", `{"type":"track","userId":"u1","event":"Sign` + "\xff" + `up"` + ts + `}`, true},
		{"previousId of an alias", `{"type":"alias","userId":"u1","previousId":"a` + "\xff" + `"` + ts + `}`, true},
		{"messageId", `{"type":"page","userId":"u1","messageId":"m` + "\xc0" + `"` + ts + `}`, true},
		{"key case-insensitive", `{"type":"page","USERID":"u` + "\xff" + `"` + ts + `}`, true},
		{"type", `{"type":"pa` + "\xff" + `ge","userId":"u1"` + ts + `}`, true},
		{"real U+FFFD raw", "{\"type\":\"page\",\"userId\":\"u\xef\xbf\xbd\"" + ts + "}", false},
		{"real U+FFFD escaped", `{"type":"page","userId":"u\ufffd"` + ts + `}`, false},
		{"surrogate pair", `{"type":"page","userId":"u\ud83d\ude00"` + ts + `}`, false},
		{"escaped backslash before u", `{"type":"page","userId":"u\\ud800"` + ts + `}`, false},
		{"bad byte elsewhere, U+FFFD in id", "{\"type\":\"page\",\"userId\":\"u\xef\xbf\xbd\",\"name\":\"\xff\"" + ts + "}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := event.Decode([]byte(tt.js), event.Auto, 0)
			if got := event.ReasonOf(err) == event.ReasonBadUTF8; got != tt.bad {
				t.Errorf("Decode(%q): %v; want bad_utf8 %v", tt.js, err, tt.bad)
			}
		})
	}
}

func TestBadUTF8Msgpack(t *testing.T) {
	enc := func(t *testing.T, key, id string) []byte {
		return mp(t, func(e *msgpack.Encoder) error {
			return errors.Join(e.EncodeMapLen(4),
				e.EncodeString("type"), e.EncodeString("track"),
				e.EncodeString("properties"), e.EncodeMapLen(1), e.EncodeString("p"), e.EncodeString("ok"),
				e.EncodeString(key), e.EncodeString(id),
				e.EncodeString("timestamp"), e.EncodeString("2026-03-02T09:00:00Z"))
		})
	}
	tests := []struct {
		key, id string
		bad     bool
	}{
		{"userId", "u\xff1", true},
		{"anonymousId", "a\xe2\x82", true},
		{"UserId", "u\xff", true},
		{"userId", "u\xef\xbf\xbd", false},
		{"userId", "u1", false},
	}
	for _, tt := range tests {
		b := enc(t, tt.key, tt.id)
		_, err := event.Decode(b, event.Msgpack, 0)
		if got := event.ReasonOf(err) == event.ReasonBadUTF8; got != tt.bad {
			t.Errorf("%s=%q: %v; want bad_utf8 %v", tt.key, tt.id, err, tt.bad)
		}
	}
	// A bad event name, with the id fine.
	b := mp(t, func(e *msgpack.Encoder) error {
		return errors.Join(e.EncodeMapLen(4),
			e.EncodeString("type"), e.EncodeString("track"), e.EncodeString("userId"), e.EncodeString("u1"),
			e.EncodeString("event"), e.EncodeString("Sign\xffup"), e.EncodeString("timestamp"), e.EncodeString("2026-03-02T09:00:00Z"))
	})
	if _, err := event.Decode(b, event.Auto, 0); event.ReasonOf(err) != event.ReasonBadUTF8 {
		t.Errorf("msgpack event name: %v, want bad_utf8", err)
	}
}
