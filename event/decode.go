package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json" // 2.5-3x faster than encoding/json on Segment events, fewer allocations (see BenchmarkDecode)
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
// float64, msgpack binary and msgpack timestamps are strings). A UTF-8 byte
// order mark before a JSON object is skipped.
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
	return decodeInto(e, b, f, fallback, &options{})
}

// DecodeIntoSkipContext is DecodeInto that leaves a JSON event's `context`
// undecoded, as Decoder.SkipContext does, for rules that never read it.
func DecodeIntoSkipContext(e *Event, b []byte, f Format, fallback int64) error {
	*e = Event{}
	return decodeInto(e, b, f, fallback, &options{skipContext: true})
}

// DecodeIntoSelect is DecodeInto that keeps only the keys of properties,
// traits and context that sel selects (see Keys, Event.Property): it
// accepts and refuses exactly what DecodeInto does, with the same errors.
func DecodeIntoSelect(e *Event, b []byte, f Format, fallback int64, sel Select) error {
	*e = Event{}
	return decodeInto(e, b, f, fallback, &options{sel: sel})
}

// options are how decodeInto decodes.
type options struct {
	skipContext bool   // Decoder.SkipContext
	sel         Select // Decoder.Select
}

func decodeInto(e *Event, b []byte, f Format, fallback int64, o *options) error {
	if f == Auto {
		f = Detect(b)
	}
	if !o.sel.All() {
		e.picks.sel = o.sel // e is reset: zero otherwise
	}
	var err error
	scanned := false
	if f == Msgpack {
		if err = decodeMsgpack(e, b); err == nil {
			e.pick(&o.sel) // the msgpack reader builds every key
		}
	} else {
		scanned, err = decodeJSON(e, b, o)
	}
	// An empty object reads as an absent one: rules see null either way.
	for _, m := range []*map[string]any{&e.Properties, &e.Traits, &e.Context} {
		if len(*m) == 0 {
			*m = nil
		}
	}
	if err != nil {
		return err
	}
	// The scanner reads only valid UTF-8 without lone surrogates, so
	// checkUTF8 cannot refuse what it read.
	if !scanned {
		if err := checkUTF8(e, b, f); err != nil {
			return err
		}
	}
	return e.Resolve(fallback)
}

// skipObject stands for the `context` object when it is not wanted: the
// decoder only checks that it is an object (or null) and moves on.
type skipObject struct{}

// errNotObject is a `context` of the wrong type; decodeJSON then decodes
// the event again in full, for exactly DecodeInto's error.
var errNotObject = errors.New("context is not an object")

func (*skipObject) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && (b[0] == '{' || bytes.Equal(b, []byte("null"))) {
		return nil
	}
	return errNotObject
}

// withoutContext decodes an Event but its `context` (the shallower field
// wins over the embedded one).
type withoutContext struct {
	*Event
	Context skipObject `json:"context"`
}

// utf8BOM is the byte order mark some editors and exports put at the start
// of a UTF-8 text; JSON does not allow it, so decodeJSON skips it.
var utf8BOM = []byte("\xef\xbb\xbf")

// trimJSON returns the JSON text b without white space around it and a byte
// order mark before it.
func trimJSON(b []byte) []byte { return bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(b), utf8BOM)) }

// decodeJSON decodes the JSON event b into e; scanned says that the scanner
// read it (scan.go), rather than goccy/go-json.
func decodeJSON(e *Event, b []byte, o *options) (scanned bool, err error) {
	trimmed := trimJSON(b)
	if len(trimmed) == 0 {
		return false, &Error{Reason: ReasonMalformed, Msg: "the record is empty; each line or record must be one JSON event object"}
	}
	if trimmed[0] != '{' {
		return false, &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("not a JSON object (it starts with %q); each line or record must be one event object {...}, not an array or a bare value", trimmed[0])}
	}
	props, traits, context := e.Properties, e.Traits, e.Context // empty, or nil
	if scanJSON(e, trimmed, o) {
		return true, nil
	}
	// Not a record the scanner reads exactly as goccy/go-json does (bad
	// input, mostly): decode it with goccy/go-json, from where it started.
	for _, m := range [...]map[string]any{props, traits, context} {
		clear(m)
	}
	*e = Event{Properties: props, Traits: traits, Context: context}
	if o.skipContext {
		if err = json.Unmarshal(trimmed, &withoutContext{Event: e}); err != nil {
			// Bad input: decode it in full for exactly DecodeInto's error.
			*e = Event{}
			err = json.Unmarshal(trimmed, e)
		}
	} else {
		err = json.Unmarshal(trimmed, e)
	}
	if err == nil {
		e.pick(&o.sel) // goccy/go-json builds every key
		return false, nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return false, &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("field %q is a JSON %s; %s", te.Field, te.Value, wantType(te.Field)), Err: err}
	}
	return false, &Error{Reason: ReasonMalformed, Msg: "not valid JSON for an event; each line or record must be one complete JSON object", Err: err}
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
var fieldNames = []string{"type", "userId", "anonymousId", "previousId", "event", "name", "messageId",
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

// maxDepth bounds the nesting of maps and arrays, the event map being depth 1,
// as goccy/go-json bounds JSON's, so that a hostile record cannot exhaust the
// stack.
const maxDepth = 10000

// msgpackDecoder reads a msgpack event by hand rather than through the
// library's reflection: its map decoding preallocates whatever length a record
// claims (a 30-byte record could make it allocate gigabytes), its generic
// values come out as int8, uint16, []byte, time.Time… where JSON gives float64
// and string, and it ignores bytes after the value. The library still reads
// numbers, lengths and extensions; strings are taken from the record directly.
type msgpackDecoder struct {
	b []byte       // the record
	r bytes.Reader // over b; the library reads from it
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
	m.b = b
	m.r.Reset(b)
	m.d.Reset(&m.r)
	err := m.event(e)
	left := m.r.Len()
	m.b = nil
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
		k, err := m.rawKey("")
		if err != nil {
			return err
		}
		switch canonicalField(string(k)) {
		case "type":
			err = m.str(&e.Type, k)
		case "userId":
			err = m.str(&e.UserID, k)
		case "anonymousId":
			err = m.str(&e.AnonymousID, k)
		case "previousId":
			err = m.str(&e.PreviousID, k)
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
			err = m.skip("", k, 2)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// peek returns the code of the next value, and for a string, binary or
// extension the size of its header and the length it claims, having checked
// that the record holds that many bytes: the library would otherwise allocate
// up to 1 MiB for a claimed length that a 6-byte record lacks.
func (m *msgpackDecoder) peek() (c byte, head, n int, err error) {
	rest := m.b[len(m.b)-m.r.Len():]
	if len(rest) == 0 {
		return 0, 0, 0, io.ErrUnexpectedEOF
	}
	c = rest[0]
	switch {
	case msgpcode.IsFixedString(c):
		head, n = 1, int(c&msgpcode.FixedStrMask)
	case msgpcode.IsFixedExt(c):
		head, n = 2, 1<<(c-msgpcode.FixExt1)
	case c == msgpcode.Str8, c == msgpcode.Bin8:
		head = 2
	case c == msgpcode.Str16, c == msgpcode.Bin16:
		head = 3
	case c == msgpcode.Str32, c == msgpcode.Bin32:
		head = 5
	case c == msgpcode.Ext8:
		head = 3
	case c == msgpcode.Ext16:
		head = 4
	case c == msgpcode.Ext32:
		head = 6
	default:
		return c, 0, 0, nil
	}
	if len(rest) < head {
		return 0, 0, 0, io.ErrUnexpectedEOF
	}
	switch c {
	case msgpcode.Str8, msgpcode.Bin8, msgpcode.Ext8:
		n = int(rest[1])
	case msgpcode.Str16, msgpcode.Bin16, msgpcode.Ext16:
		n = int(binary.BigEndian.Uint16(rest[1:]))
	case msgpcode.Str32, msgpcode.Bin32, msgpcode.Ext32:
		n = int(binary.BigEndian.Uint32(rest[1:]))
	}
	if n > len(rest)-head {
		return 0, 0, 0, io.ErrUnexpectedEOF
	}
	return c, head, n, nil
}

func isMsgpackText(c byte) bool { return msgpcode.IsString(c) || msgpcode.IsBin(c) }

// raw returns the bytes of the string or binary value that peek reported, in
// place, and moves past it.
func (m *msgpackDecoder) raw(head, n int) []byte {
	off := len(m.b) - m.r.Len() + head
	_, _ = m.r.Seek(int64(head+n), io.SeekCurrent) // within b: checked by peek
	return m.b[off : off+n]
}

// rawKey reads a map key, which must be a string, in place.
func (m *msgpackDecoder) rawKey(path string) ([]byte, error) {
	c, head, n, err := m.peek()
	if err != nil {
		return nil, err
	}
	if !isMsgpackText(c) {
		where := "the event map"
		if path != "" {
			where = fmt.Sprintf("field %q", path)
		}
		return nil, &errMsgpack{fmt.Sprintf("a key in %s is a msgpack %s; map keys must be strings", where, msgpackKind(c))}
	}
	return m.raw(head, n), nil
}

// text makes a string as JSON would: each byte that is not UTF-8 becomes
// U+FFFD.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	s.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			s.WriteRune(utf8.RuneError)
		} else {
			s.Write(b[:size])
		}
		b = b[size:]
	}
	return s.String()
}

// join makes the dotted path of a field for messages.
func join(path string, key []byte) string {
	if path == "" {
		return text(key)
	}
	return path + "." + text(key)
}

// str reads a string field. nil leaves it as it is, as JSON null does; a
// msgpack timestamp becomes RFC 3339 text.
func (m *msgpackDecoder) str(dst *string, key []byte) error {
	c, head, n, err := m.peek()
	if err != nil {
		return err
	}
	switch {
	case c == msgpcode.Nil:
		return m.d.DecodeNil()
	case isMsgpackText(c):
		*dst = text(m.raw(head, n))
		return nil
	case msgpcode.IsExt(c):
		v, err := m.value("", key, 2)
		if err != nil {
			return err
		}
		if s, ok := v.(string); ok {
			*dst = s
			return nil
		}
	}
	return &errMsgpack{fmt.Sprintf("field %q is a msgpack %s; it must be a string", key, msgpackKind(c))}
}

// obj reads a map field at depth 2 (the event map is depth 1). As with JSON,
// nil sets it to nil and a repeated field adds to the map of the first.
func (m *msgpackDecoder) obj(dst *map[string]any, key []byte) error {
	c, _, _, err := m.peek()
	if err != nil {
		return err
	}
	switch {
	case c == msgpcode.Nil:
		*dst = nil
		return m.d.DecodeNil()
	case isMsgpackMap(c):
		*dst, err = m.object(*dst, string(key), 2)
		return err
	}
	return &errMsgpack{fmt.Sprintf("field %q is a msgpack %s; it must be a map", key, msgpackKind(c))}
}

// object reads the map at path and depth into obj, or a new map if obj is nil.
func (m *msgpackDecoder) object(obj map[string]any, path string, depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, errTooDeep(path)
	}
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if obj == nil {
		obj = make(map[string]any, min(n, m.r.Len()/2)) // a key and a value take at least 2 bytes
	}
	for range n {
		k, err := m.rawKey(path)
		if err != nil {
			return nil, err
		}
		v, err := m.value(path, k, depth+1)
		if err != nil {
			return nil, err
		}
		obj[text(k)] = v
	}
	return obj, nil
}

// value reads the free-form value of path.key with the Go type JSON would
// give it; depth is its depth if it is a map or an array. The path is built
// only for maps, arrays and errors.
func (m *msgpackDecoder) value(path string, key []byte, depth int) (any, error) {
	c, head, n, err := m.peek()
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
			return nil, &errMsgpack{fmt.Sprintf("field %q is %v, which JSON cannot carry; send a finite number or nil", join(path, key), f)}
		}
		return f, err
	case isMsgpackText(c):
		return text(m.raw(head, n)), nil
	case isMsgpackMap(c):
		return m.object(nil, join(path, key), depth)
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return m.array(join(path, key), depth)
	case msgpcode.IsExt(c):
		t, err := m.d.DecodeTime()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if err != nil {
			return nil, &errMsgpack{fmt.Sprintf("field %q is a msgpack extension other than a timestamp (%v); send strings, numbers, booleans, nil, arrays or maps", join(path, key), err)}
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	return nil, &errMsgpack{fmt.Sprintf("field %q holds byte 0x%02x, which is not a msgpack value", join(path, key), c)}
}

// array reads the array at path and depth.
func (m *msgpackDecoder) array(path string, depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, errTooDeep(path)
	}
	n, err := m.d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	arr := make([]any, 0, min(n, m.r.Len())) // an element takes at least 1 byte
	for range n {
		v, err := m.value(path, nil, depth+1) // elements share the array's path
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	return arr, nil
}

// skip skips the value of path.key, a field the Event does not hold; depth is
// as for value.
func (m *msgpackDecoder) skip(path string, key []byte, depth int) error {
	c, _, _, err := m.peek()
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
	if depth > maxDepth {
		return errTooDeep(join(path, key))
	}
	for range n {
		if err := m.skip(path, key, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func errTooDeep(path string) error {
	return &errMsgpack{fmt.Sprintf("field %q nests maps and arrays deeper than %d levels (counting the event map); flatten it", path, maxDepth)}
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

// Decoder decodes a stream of records into one Event that it reuses, with
// its Properties, Traits and Context maps cleared and refilled rather than
// allocated anew: about 40% less decoding time for a typical JSON event.
// The Event and its maps are valid until the next Decode; a caller that
// keeps anything of an event past that must copy it. Not safe for
// concurrent use.
type Decoder struct {
	// SkipContext leaves a JSON event's `context` undecoded (Context is
	// nil; a context that is not an object is still bad input, with
	// DecodeInto's error): about a third less decoding time and ten fewer
	// allocations for a typical event, for rules that never read `context`
	// (rules.Ruleset.ReadsContext).
	SkipContext bool

	// Select chooses the keys of properties, traits and context that an
	// Event keeps (see Keys): an object whose keys are listed has no map,
	// only the values of those keys (read with Event.Property, Trait and
	// ContextValue); the others are checked and skipped, so that the same
	// records are accepted and refused as with every key. For the B2B
	// example's rules (rules.Ruleset.Reads: 3 property names, every
	// trait, no context) a fifth fewer instructions a record than every
	// key (BenchmarkDecodeSelect, engine's BenchmarkDecodeRules). The zero
	// Select keeps every key.
	// SkipContext, when set, skips `context` as it says, whatever
	// Select.Context selects.
	Select Select

	// MaxSpare bounds the maps kept from recycled events (Recycle) for
	// DecodeInto: 0 keeps none.
	MaxSpare int

	e                         Event
	props, traits, contextMap map[string]any
	spares                    []map[string]any // cleared maps for DecodeInto
}

// maxSpareLen is the most entries a recycled map may have held to be kept:
// a map keeps its capacity when cleared, and an occasional event with
// hundreds of properties must not make every later event's map that large.
const maxSpareLen = 64

// DecodeInto decodes and resolves one record into e, a caller-owned Event,
// as DecodeInto does, filling maps kept from events recycled earlier
// (Recycle) rather than allocating new ones. Unlike Decode's Event, e and
// its maps stay valid across later calls: they are the caller's until it
// passes e to Recycle. On an error e is reset and its maps kept.
//
// Why: a caller that decodes a batch of records before applying them (the
// stream worker) keeps many events at once, so Decode's single reused
// Event does not fit; the maps return to the Decoder once each is applied.
func (d *Decoder) DecodeInto(e *Event, b []byte, f Format, fallback int64) error {
	// Maps for the objects whose keys are selected too: the scanner leaves
	// them empty, but goccy/go-json, which reads what the scanner does not,
	// fills them, and its errors depend on whether it was given a map.
	p, t := d.spare(), d.spare()
	var c map[string]any
	if !d.SkipContext {
		c = d.spare()
	}
	*e = Event{Properties: p, Traits: t, Context: c}
	err := decodeInto(e, b, f, fallback, &options{skipContext: d.SkipContext, sel: d.Select})
	// A map the event did not take (absent, null or empty: decodeInto
	// leaves the field nil) goes back.
	for _, m := range [...]struct{ given, got map[string]any }{{p, e.Properties}, {t, e.Traits}, {c, e.Context}} {
		if m.given != nil && m.got == nil {
			d.keep(m.given)
		}
	}
	if err != nil {
		d.Recycle(e)
	}
	return err
}

// Recycle keeps e's maps for later DecodeInto calls and resets e. Nothing
// may use e's maps afterwards; values read from them (strings, nested maps
// and arrays, which are never reused) stay valid.
func (d *Decoder) Recycle(e *Event) {
	for _, m := range [...]map[string]any{e.Properties, e.Traits, e.Context} {
		if m != nil {
			d.keep(m)
		}
	}
	*e = Event{}
}

// Trim drops the kept maps beyond n, so that the memory a burst needed is
// let go once it is over.
func (d *Decoder) Trim(n int) {
	if len(d.spares) > n {
		d.spares = append([]map[string]any(nil), d.spares[:n]...)
	}
}

func (d *Decoder) spare() map[string]any {
	n := len(d.spares)
	if n == 0 {
		return nil // the decoder allocates a map if the event has the field
	}
	m := d.spares[n-1]
	d.spares[n-1] = nil
	d.spares = d.spares[:n-1]
	return m
}

func (d *Decoder) keep(m map[string]any) {
	if len(m) > maxSpareLen || len(d.spares) >= d.MaxSpare {
		return
	}
	clear(m)
	d.spares = append(d.spares, m)
}

// Decode decodes and resolves one record, as DecodeInto does.
func (d *Decoder) Decode(b []byte, f Format, fallback int64) (*Event, error) {
	d.props = spare(d.props, d.e.Properties)
	d.traits = spare(d.traits, d.e.Traits)
	d.contextMap = spare(d.contextMap, d.e.Context)
	d.e = Event{Properties: d.props, Traits: d.traits, Context: d.contextMap}
	if err := decodeInto(&d.e, b, f, fallback, &options{skipContext: d.SkipContext, sel: d.Select}); err != nil {
		return nil, err
	}
	return &d.e, nil
}

// spare returns an empty map to decode into: the one the last event used
// (which may have been replaced by the decoder), else the kept one.
func spare(kept, used map[string]any) map[string]any {
	if used != nil {
		kept = used
	}
	if kept == nil {
		return make(map[string]any, 8)
	}
	clear(kept)
	return kept
}
