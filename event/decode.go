package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json" // about 6x faster than encoding/json on Segment events (see BenchmarkDecode)
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Format is the encoding of a record value.
type Format int

// Formats of a record value. Auto looks at the first byte.
const (
	Auto Format = iota
	JSON
	Msgpack
)

// ContentTypeMsgpack is the record header value that marks a msgpack value.
const ContentTypeMsgpack = "application/msgpack"

// Detect tells JSON from msgpack by the first byte: a msgpack map starts with
// 0x80–0x8f, 0xde or 0xdf; anything else is taken for JSON (a JSON object
// starts with '{', possibly after white space). White space is not skipped for
// msgpack: its bytes are msgpack integers, so a value starting with them is not
// a msgpack map.
func Detect(b []byte) Format {
	if len(b) > 0 && isMsgpackMap(b[0]) {
		return Msgpack
	}
	return JSON
}

func isMsgpackMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

// Decode decodes one event and resolves it (see Event.Resolve). Any failure is
// an *Error. fallback is the record time in Unix nanoseconds, or 0.
//
// JSON and msgpack give the same Event for the same object: field names match
// as encoding/json matches them (exactly, else case-insensitively; a repeated
// field's last value wins), and the free-form values of Properties, Traits and
// Context have JSON's Go types whatever the encoding (every number is a
// float64, msgpack binary and msgpack timestamps are strings).
func Decode(b []byte, f Format, fallback int64) (*Event, error) {
	e := new(Event)
	if err := DecodeInto(e, b, f, fallback); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeInto is Decode into a caller-owned Event, which it resets first. The
// Event does not keep b.
func DecodeInto(e *Event, b []byte, f Format, fallback int64) error {
	*e = Event{}
	if f == Auto {
		f = Detect(b)
	}
	var err error
	if f == Msgpack {
		err = decodeMsgpack(e, b)
	} else {
		err = decodeJSON(e, b)
	}
	if err != nil {
		return err
	}
	return e.Resolve(fallback)
}

func decodeJSON(e *Event, b []byte) error {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return &Error{Reason: ReasonMalformed, Msg: "the record is empty; each line or record must be one JSON event object"}
	}
	if trimmed[0] != '{' {
		return &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("not a JSON object (it starts with %q); each line or record must be one event object {...}, not an array or a bare value", trimmed[0])}
	}
	err := json.Unmarshal(trimmed, e)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("field %q is a JSON %s; %s", te.Field, te.Value, wantType(te.Field)), Err: err}
	}
	return &Error{Reason: ReasonMalformed, Msg: "not valid JSON for an event; each line or record must be one complete JSON object", Err: err}
}

// wantType says what a field must be, for error messages.
func wantType(field string) string {
	switch canonicalField(field) {
	case "properties", "traits", "context":
		return "it must be an object"
	case "":
		return "it must be a JSON value that leadpulse can read (numbers within float64 range)"
	default:
		return "it must be a string"
	}
}

// fieldNames are the Event's encoded names, for case-insensitive matching.
var fieldNames = []string{"type", "userId", "anonymousId", "event", "name", "messageId",
	"properties", "traits", "context", "timestamp", "originalTimestamp"}

// canonicalField returns the Event field name that name matches as
// encoding/json would (exactly, else case-insensitively), or "".
func canonicalField(name string) string {
	for _, f := range fieldNames {
		if f == name {
			return f
		}
	}
	for _, f := range fieldNames {
		if strings.EqualFold(f, name) {
			return f
		}
	}
	return ""
}

// maxDepth bounds the nesting of values, as goccy/go-json does for JSON, so
// that a hostile record cannot exhaust the stack.
const maxDepth = 10000

// msgpackDecoder decodes a msgpack event by hand rather than by reflection:
// the library's map decoding preallocates whatever length a record claims (a
// 30-byte record could make it allocate gigabytes), its generic values come
// out as int8, uint16, []byte, time.Time…, where JSON gives float64 and string,
// and it ignores bytes after the value.
type msgpackDecoder struct {
	r bytes.Reader
	d *msgpack.Decoder
}

var msgpackDecoders = sync.Pool{New: func() any {
	m := new(msgpackDecoder)
	m.d = msgpack.NewDecoder(&m.r) // *bytes.Reader is an io.ByteScanner: no buffering, so r.Len() is what is left
	return m
}}

// errMsgpack is a msgpack field or value that an Event cannot hold.
type errMsgpack struct{ msg string }

func (e *errMsgpack) Error() string { return e.msg }

func decodeMsgpack(e *Event, b []byte) error {
	if len(b) == 0 {
		return &Error{Reason: ReasonMalformed, Msg: "the record is empty; each record must be one msgpack event map"}
	}
	if !isMsgpackMap(b[0]) {
		return &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("not a msgpack map (it starts with a msgpack %s, byte 0x%02x); each record must be one event map", msgpackKind(b[0]), b[0])}
	}
	m := msgpackDecoders.Get().(*msgpackDecoder)
	m.r.Reset(b)
	m.d.Reset(&m.r)
	err := m.event(e)
	left := m.r.Len()
	m.r.Reset(nil)
	msgpackDecoders.Put(m)
	if err != nil {
		var me *errMsgpack
		if errors.As(err, &me) {
			return &Error{Reason: ReasonMalformed, Msg: me.msg}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &Error{Reason: ReasonMalformed, Msg: "the msgpack map is truncated; send the whole encoded event", Err: err}
		}
		return &Error{Reason: ReasonMalformed, Msg: "not a valid msgpack map of an event", Err: err}
	}
	if left != 0 {
		return &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("%d bytes follow the msgpack event map; a record must hold exactly one event", left)}
	}
	return nil
}

func (m *msgpackDecoder) event(e *Event) error {
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := m.key("")
		if err != nil {
			return err
		}
		switch canonicalField(k) {
		case "type":
			err = m.str(&e.Type, k)
		case "userId":
			err = m.str(&e.UserID, k)
		case "anonymousId":
			err = m.str(&e.AnonymousID, k)
		case "event":
			err = m.str(&e.Event, k)
		case "name":
			err = m.str(&e.Name, k)
		case "messageId":
			err = m.str(&e.MessageID, k)
		case "timestamp":
			err = m.str(&e.RawTimestamp, k)
		case "originalTimestamp":
			err = m.str(&e.RawOriginalTimestamp, k)
		case "properties":
			err = m.obj(&e.Properties, k)
		case "traits":
			err = m.obj(&e.Traits, k)
		case "context":
			err = m.obj(&e.Context, k)
		default:
			err = m.skip(k, 0)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// key reads a map key, which must be a string.
func (m *msgpackDecoder) key(path string) (string, error) {
	c, err := m.d.PeekCode()
	if err != nil {
		return "", err
	}
	if !msgpcode.IsString(c) && !msgpcode.IsBin(c) {
		where := "the event map"
		if path != "" {
			where = fmt.Sprintf("field %q", path)
		}
		return "", &errMsgpack{fmt.Sprintf("a key in %s is a msgpack %s; map keys must be strings", where, msgpackKind(c))}
	}
	return m.d.DecodeString()
}

// str reads a string field. nil leaves it as it is, as JSON null does; a
// msgpack timestamp becomes RFC 3339 text.
func (m *msgpackDecoder) str(dst *string, name string) error {
	c, err := m.d.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case c == msgpcode.Nil:
		return m.d.DecodeNil()
	case msgpcode.IsString(c), msgpcode.IsBin(c):
		*dst, err = m.d.DecodeString()
		return err
	case msgpcode.IsExt(c):
		v, err := m.value(name, 0)
		if err != nil {
			return err
		}
		if s, ok := v.(string); ok {
			*dst = s
			return nil
		}
	}
	return &errMsgpack{fmt.Sprintf("field %q is a msgpack %s; it must be a string", name, msgpackKind(c))}
}

// obj reads a map field; nil sets it to nil, as JSON null does.
func (m *msgpackDecoder) obj(dst *map[string]any, name string) error {
	c, err := m.d.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case c == msgpcode.Nil:
		*dst = nil
		return m.d.DecodeNil()
	case isMsgpackMap(c):
		*dst, err = m.object(name, 1)
		return err
	}
	return &errMsgpack{fmt.Sprintf("field %q is a msgpack %s; it must be a map", name, msgpackKind(c))}
}

func (m *msgpackDecoder) object(path string, depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, &errMsgpack{fmt.Sprintf("field %q nests maps and arrays deeper than %d levels", path, maxDepth)}
	}
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	obj := make(map[string]any, min(n, m.r.Len()/2)) // a key and a value take at least 2 bytes
	for range n {
		k, err := m.key(path)
		if err != nil {
			return nil, err
		}
		v, err := m.value(path+"."+k, depth)
		if err != nil {
			return nil, err
		}
		obj[k] = v
	}
	return obj, nil
}

// value reads a free-form value with the Go type JSON would give it.
func (m *msgpackDecoder) value(path string, depth int) (any, error) {
	c, err := m.d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, m.d.DecodeNil()
	case c == msgpcode.True, c == msgpcode.False:
		return m.d.DecodeBool()
	case msgpcode.IsFixedNum(c), c >= msgpcode.Int8 && c <= msgpcode.Int64:
		i, err := m.d.DecodeInt64()
		return float64(i), err
	case c >= msgpcode.Uint8 && c <= msgpcode.Uint64:
		u, err := m.d.DecodeUint64()
		return float64(u), err
	case c == msgpcode.Float, c == msgpcode.Double:
		f, err := m.d.DecodeFloat64()
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return nil, &errMsgpack{fmt.Sprintf("field %q is %v, which JSON cannot carry; send a finite number or nil", path, f)}
		}
		return f, err
	case msgpcode.IsString(c), msgpcode.IsBin(c):
		return m.d.DecodeString()
	case isMsgpackMap(c):
		return m.object(path, depth+1)
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return m.array(path, depth+1)
	case msgpcode.IsExt(c):
		t, err := m.d.DecodeTime()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if err != nil {
			return nil, &errMsgpack{fmt.Sprintf("field %q is a msgpack extension other than a timestamp (%v); send strings, numbers, booleans, nil, arrays or maps", path, err)}
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	return nil, &errMsgpack{fmt.Sprintf("field %q holds byte 0x%02x, which is not a msgpack value", path, c)}
}

func (m *msgpackDecoder) array(path string, depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, &errMsgpack{fmt.Sprintf("field %q nests maps and arrays deeper than %d levels", path, maxDepth)}
	}
	n, err := m.d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	arr := make([]any, 0, min(n, m.r.Len())) // an element takes at least 1 byte
	for range n {
		v, err := m.value(path, depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	return arr, nil
}

// skip skips a value of a field the Event does not hold.
func (m *msgpackDecoder) skip(path string, depth int) error {
	if depth > maxDepth {
		return &errMsgpack{fmt.Sprintf("field %q nests maps and arrays deeper than %d levels", path, maxDepth)}
	}
	c, err := m.d.PeekCode()
	if err != nil {
		return err
	}
	n := 0
	switch {
	case isMsgpackMap(c):
		if n, err = m.d.DecodeMapLen(); err != nil {
			return err
		}
		n *= 2
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		if n, err = m.d.DecodeArrayLen(); err != nil {
			return err
		}
	default:
		return m.d.Skip() // a scalar, string or extension: not recursive
	}
	for range n {
		if err := m.skip(path, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// msgpackKind names the kind of msgpack value that starts with c.
func msgpackKind(c byte) string {
	switch {
	case c == msgpcode.Nil:
		return "nil"
	case c == msgpcode.True, c == msgpcode.False:
		return "boolean"
	case msgpcode.IsFixedNum(c), c >= msgpcode.Uint8 && c <= msgpcode.Int64:
		return "integer"
	case c == msgpcode.Float, c == msgpcode.Double:
		return "float"
	case msgpcode.IsString(c):
		return "string"
	case msgpcode.IsBin(c):
		return "binary"
	case isMsgpackMap(c):
		return "map"
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return "array"
	case msgpcode.IsExt(c):
		return "extension"
	}
	return "invalid value"
}

// FromMap builds an event from a generic map, as found in a rules file's
// tests: section. Values are converted through JSON so that they have the same
// types as decoded events.
func FromMap(m map[string]any) (*Event, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, &Error{Reason: ReasonMalformed, Msg: "the event cannot be encoded as JSON", Err: err}
	}
	return Decode(b, JSON, 0)
}

// EncodeJSON encodes an event as a JSON object (the timestamp as received).
func EncodeJSON(e *Event) ([]byte, error) { return json.Marshal(e) }

// EncodeMsgpack encodes an event as a msgpack map with SPEC §1 field names.
func EncodeMsgpack(e *Event) ([]byte, error) {
	b, err := msgpack.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event as msgpack: %w", err)
	}
	return b, nil
}
