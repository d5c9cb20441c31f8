package event

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// ReasonBadUTF8 is bad input whose ids or names are not UTF-8 text: an
// invalid byte, or in JSON an escaped lone surrogate (`\ud800`). Both
// decoders would turn them into U+FFFD, so that different raw ids could
// become one contact (and different messageIds one repeat); such an event is
// refused instead.
const ReasonBadUTF8 Reason = "bad_utf8"

// checkedFields are the fields whose text must be valid UTF-8: the ids that
// key contacts and repeats, and the names rules compare.
var checkedFields = [...]string{"type", "userId", "anonymousId", "previousId", "event", "messageId"}

// checkUTF8 returns a bad_utf8 *Error when one of the checkedFields of the
// decoded e was not valid UTF-8 in b. It costs a scan of six strings for
// U+FFFD; only an event that holds one is read again.
func checkUTF8(e *Event, b []byte, f Format) error {
	// The six strings joined, as one text, on the stack unless they are long.
	var joined [256]byte
	text := append(append(append(append(append(append(joined[:0], e.Type...), e.UserID...), e.AnonymousID...), e.PreviousID...), e.Event...), e.MessageID...)
	if !bytes.ContainsRune(text, utf8.RuneError) {
		return nil
	}
	var field string
	if f == Msgpack {
		field = msgpackBadText(b)
	} else {
		field = jsonBadText(b)
	}
	if field == "" {
		return nil // a real U+FFFD, sent as such
	}
	return &Error{Reason: ReasonBadUTF8, Msg: fmt.Sprintf("field %q is not valid UTF-8 text (an invalid byte, or an escaped lone surrogate); send ids and names as UTF-8", field)}
}

// rawTexts holds the raw JSON tokens of the checked fields.
type rawTexts struct {
	Type        json.RawMessage `json:"type"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	PreviousID  json.RawMessage `json:"previousId"`
	Event       json.RawMessage `json:"event"`
	MessageID   json.RawMessage `json:"messageId"`
}

// jsonBadText returns the first checked field of the JSON object b whose
// string is not valid UTF-8, or "".
func jsonBadText(b []byte) string {
	var raw rawTexts
	if json.Unmarshal(bytes.TrimPrefix(bytes.TrimSpace(b), []byte("\xef\xbb\xbf")), &raw) != nil {
		return ""
	}
	for i, tok := range [...]json.RawMessage{raw.Type, raw.UserID, raw.AnonymousID, raw.PreviousID, raw.Event, raw.MessageID} {
		if !validJSONString(tok) {
			return checkedFields[i]
		}
	}
	return ""
}

// validJSONString reports whether a raw JSON string token holds only valid
// UTF-8 and no lone surrogate escape.
func validJSONString(tok []byte) bool {
	if !utf8.Valid(tok) {
		return false
	}
	pendingHigh := false // the last escape was a high surrogate
	for i := 0; i < len(tok); i++ {
		if tok[i] != '\\' || i+1 >= len(tok) {
			if pendingHigh {
				return false
			}
			continue
		}
		i++
		if tok[i] != 'u' || i+4 >= len(tok) {
			if pendingHigh {
				return false
			}
			continue
		}
		var v rune
		for _, c := range tok[i+1 : i+5] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= rune(c - '0')
			case c >= 'a' && c <= 'f':
				v |= rune(c-'a') + 10
			case c >= 'A' && c <= 'F':
				v |= rune(c-'A') + 10
			}
		}
		i += 4
		switch {
		case v >= 0xD800 && v < 0xDC00:
			if pendingHigh {
				return false
			}
			pendingHigh = true
		case v >= 0xDC00 && v < 0xE000:
			if !pendingHigh {
				return false
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return false
			}
		}
	}
	return !pendingHigh
}

// msgpackBadText returns the first checked field of the msgpack map b (as
// decodeMsgpack reads it: keys matched like JSON's) whose string is not
// valid UTF-8, or "".
func msgpackBadText(b []byte) string {
	m := msgpackDecoders.Get().(*msgpackDecoder)
	defer func() {
		m.b = nil
		m.r.Reset(nil)
		msgpackDecoders.Put(m)
	}()
	m.b = b
	m.r.Reset(b)
	m.d.Reset(&m.r)
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return ""
	}
	for range n {
		k, err := m.rawKey("")
		if err != nil {
			return ""
		}
		name := canonicalField(string(k))
		checked := false
		for _, f := range checkedFields {
			checked = checked || f == name
		}
		c, head, size, err := m.peek()
		if err != nil {
			return ""
		}
		if checked && isMsgpackText(c) && !utf8.Valid(m.b[len(m.b)-m.r.Len()+head:][:size]) {
			return name
		}
		if checked && (isMsgpackText(c) || c == msgpcode.Nil) {
			if m.d.Skip() != nil {
				return ""
			}
			continue
		}
		if m.skip("", k, 2) != nil {
			return ""
		}
	}
	return ""
}
