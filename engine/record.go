package engine

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/leadpulse/leadpulse/rules"
)

// appendRecord appends the action record as encoding/json's Marshal writes
// it, byte for byte: the same field order and omissions, the map's keys
// sorted, strings escaped as Marshal escapes them (HTML characters, U+2028
// and U+2029, invalid UTF-8 as U+FFFD) and numbers formatted as its float
// encoder does. Marshal reflects over the record and sorts the map through
// reflect values: a few microseconds an action, a few percent of a replay.
// A record that Marshal refuses (a NaN or infinite number) is left to it,
// for its error (ok false). TestAppendRecordMatchesMarshal and
// FuzzAppendRecord hold the two together.
func appendRecord(b []byte, r *rules.Record) (_ []byte, ok bool) {
	if !finite(r.Score) || !finite(r.Fit) || !finite(r.Engagement) {
		return b, false
	}
	for _, v := range r.Explain {
		if !finite(v) {
			return b, false
		}
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, r.Action)
	b = append(b, `,"trigger":`...)
	b = appendJSONString(b, r.Trigger)
	b = append(b, `,"contact":`...)
	b = appendJSONString(b, r.Contact)
	b = append(b, `,"at":`...)
	b = appendJSONString(b, r.At)
	b = append(b, `,"score":`...)
	b = appendJSONFloat(b, r.Score)
	b = append(b, `,"fit":`...)
	b = appendJSONFloat(b, r.Fit)
	b = append(b, `,"engagement":`...)
	b = appendJSONFloat(b, r.Engagement)
	b = append(b, `,"stage":`...)
	b = appendJSONString(b, r.Stage)
	if r.Message != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, r.Message)
	}
	if r.Sink != "" {
		b = append(b, `,"sink":`...)
		b = appendJSONString(b, r.Sink)
	}
	b = append(b, `,"explain":`...)
	if r.Explain == nil {
		b = append(b, "null"...)
	} else {
		var buf [16]string
		keys := buf[:0]
		for k := range r.Explain {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONFloat(b, r.Explain[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

// appendJSONFloat is encoding/json's float64 encoder (ES6 number format).
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoder with HTML escaping
// (Marshal's default).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// marshalRecord is what appendRecord does not do: Marshal, for its error.
func marshalRecord(b []byte, r *rules.Record) ([]byte, error) {
	m, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	return append(b, m...), nil
}
