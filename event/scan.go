package event

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"
)

// The JSON fast path: a single-pass scanner for the Segment envelope that
// builds the Event directly, with about a third less CPU and a quarter to a
// third of the allocations of goccy/go-json into the struct (see
// BenchmarkDecodeInto, BenchmarkDecodeTraffic and their references).
//
// It is exact by construction rather than by imitation: it accepts only
// strictly valid JSON of the shape a sender writes (field names exactly as
// SPEC §1 spells them, each once; strings of valid UTF-8 without lone
// surrogate escapes; numbers within float64's range; nesting below
// scanMaxDepth), and on anything else it gives up and decodeJSON decodes the
// record again with goccy/go-json as before. So every error, every message,
// case-insensitive field names, repeated fields, invalid UTF-8 and every
// other corner keeps goccy's exact behaviour, and the scanner only has to be
// right on the inputs it accepts: FuzzScannerMatchesReference compares it
// with the previous decoder (ref_test.go) on the fixtures and fuzzed input.

// scanMaxDepth bounds the nesting the scanner follows (the event object is
// depth 1); deeper records are left to goccy/go-json, which bounds them at
// maxDepth with its own error.
const scanMaxDepth = 512

// scanner reads one JSON event.
type scanner struct {
	b       []byte
	i       int
	buf     []byte // unescaped text of a string with escapes
	escaped bool   // the last string read had escapes
	seen    uint   // top-level fields already read, by field index
}

// The Event's fields, by index.
const (
	fType = iota
	fUserID
	fAnonymousID
	fPreviousID
	fEvent
	fName
	fMessageID
	fProperties
	fTraits
	fContext
	fTimestamp
	fOriginalTimestamp
	fUnknown
)

// scanJSON decodes the JSON object b (white space and byte order mark
// trimmed, starting with '{') into e, whose Properties, Traits and Context
// may be empty maps to fill. It reports false, with e's maps possibly
// partly filled, when the record is not one it reads exactly as
// goccy/go-json does; the caller then decodes it with goccy/go-json.
func scanJSON(e *Event, b []byte, o *options) bool {
	s := scanner{b: b}
	return s.event(e, o)
}

func (s *scanner) event(e *Event, o *options) bool {
	b := s.b
	s.i = 1 // '{'
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return s.i == len(b)
	}
	for {
		if s.i >= len(b) || b[s.i] != '"' {
			return false
		}
		key, ok := s.plainString()
		if !ok {
			return false // escapes in a field name: goccy decides
		}
		f := fieldOf(key)
		if f == fUnknown && !unknownField(key) {
			return false // a case-insensitive match: goccy decides
		}
		if s.ws(); s.i >= len(b) || b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if s.i >= len(b) {
			return false
		}
		if f != fUnknown {
			if s.seen&(1<<f) != 0 {
				return false // a repeated field: goccy decides
			}
			s.seen |= 1 << f
		}
		switch f {
		case fUnknown:
			if !s.skip(2, false) {
				return false
			}
		case fProperties, fTraits, fContext:
			dst, obj := &e.Properties, objProperties
			if f == fTraits {
				dst, obj = &e.Traits, objTraits
			} else if f == fContext {
				dst, obj = &e.Context, objContext
			}
			keys, base := e.picks.keys(obj)
			switch {
			case b[s.i] == 'n':
				if !s.lit("null") {
					return false
				}
				*dst = nil
			case b[s.i] != '{':
				return false
			case f == fContext && o.skipContext:
				if !s.skip(2, false) {
					return false
				}
			case keys.only:
				if !s.selected(&e.picks, keys, base) {
					return false
				}
			default:
				m, ok := s.object(*dst, 2)
				if !ok {
					return false
				}
				*dst = m
			}
		default:
			if b[s.i] == 'n' {
				if !s.lit("null") { // null leaves a string as it is
					return false
				}
				break
			}
			if b[s.i] != '"' {
				return false
			}
			raw, ok := s.str()
			if !ok {
				return false
			}
			var v string
			switch f {
			case fType:
				v = typeName(raw)
			case fEvent, fName:
				v = internString(raw)
			default:
				v = string(raw)
			}
			switch f {
			case fType:
				e.Type = v
			case fUserID:
				e.UserID = v
			case fAnonymousID:
				e.AnonymousID = v
			case fPreviousID:
				e.PreviousID = v
			case fEvent:
				e.Event = v
			case fName:
				e.Name = v
			case fMessageID:
				e.MessageID = v
			case fTimestamp:
				e.RawTimestamp = v
			case fOriginalTimestamp:
				e.RawOriginalTimestamp = v
			}
		}
		s.ws()
		if s.i >= len(b) {
			return false
		}
		switch b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return s.i == len(b)
		default:
			return false
		}
	}
}

// fieldOf returns the field that name spells exactly, or fUnknown.
func fieldOf(name []byte) int {
	switch string(name) {
	case "type":
		return fType
	case "userId":
		return fUserID
	case "anonymousId":
		return fAnonymousID
	case "previousId":
		return fPreviousID
	case "event":
		return fEvent
	case "name":
		return fName
	case "messageId":
		return fMessageID
	case "properties":
		return fProperties
	case "traits":
		return fTraits
	case "context":
		return fContext
	case "timestamp":
		return fTimestamp
	case "originalTimestamp":
		return fOriginalTimestamp
	}
	return fUnknown
}

// unknownField reports whether name, which spells no field exactly, is sure
// to match none case-insensitively either: it is ASCII and no field name
// folds to it. Other names are left to goccy/go-json, whose folding (Unicode
// simple folding, like encoding/json's) decides.
func unknownField(name []byte) bool {
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, f := range fieldNames {
		if len(f) == len(name) && asciiEqualFold(f, name) {
			return false
		}
	}
	return true
}

func asciiEqualFold(a string, b []byte) bool {
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// typeName returns the event type without allocating for the known ones.
func typeName(b []byte) string {
	switch string(b) {
	case "track":
		return "track"
	case "page":
		return "page"
	case "screen":
		return "screen"
	case "identify":
		return "identify"
	case "group":
		return "group"
	case "alias":
		return "alias"
	}
	return string(b)
}

// ws skips JSON white space.
func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return // compact JSON: no white space between tokens
	}
	s.wsSlow()
}

func (s *scanner) wsSlow() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// lit reads the literal word (true, false, null) at s.i.
func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// plainString reads the string at s.i (at its '"') if it has no escapes,
// returning its bytes in place.
func (s *scanner) plainString() ([]byte, bool) {
	raw, ok := s.str()
	return raw, ok && !s.escaped
}

// str reads the string at s.i (at its '"') and returns its text: in place
// when it has no escapes, else unescaped into s.buf (valid until the next
// string). It gives up on invalid UTF-8, control characters, unknown escapes
// and lone surrogates.
func (s *scanner) str() ([]byte, bool) {
	b := s.b
	start := s.i + 1
	j := start
	var high uint64 // the high bits of the bytes read (and maybe a few more)
	for {
		// Eight bytes at a time up to the first quote, backslash or
		// control character.
		for j+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[j : j+8])
			high |= w
			if t := special(w); t != 0 {
				j += bits.TrailingZeros64(t) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return nil, false
		}
		c := b[j]
		high |= uint64(c)
		switch {
		case c == '"':
			raw := b[start:j]
			if high&msb != 0 && !utf8.Valid(raw) {
				return nil, false
			}
			s.i = j + 1
			s.escaped = false
			return raw, true
		case c == '\\':
			return s.unescape(start, j)
		case c < 0x20:
			return nil, false
		}
		j++
	}
}

// skipStr checks the string at s.i (at its '"') exactly as str does and
// moves past it without returning its text: the keys and strings of values
// that are skipped (context when no rule reads it, unselected properties,
// unknown fields), most of a record's strings. A string whose first
// special byte is its closing quote is checked here; any other (an escape,
// a control character, no quote) is left to str from its start.
//
// Why: a record has about 25 such strings, most of them short, and str's
// fixed cost per string (its text as a slice, the escape flag) was about
// 40% of its instructions (valgrind cachegrind of BenchmarkDecodeApplyLive).
func (s *scanner) skipStr() bool {
	b := s.b
	start := s.i + 1
	var high uint64 // as in str
	for j := start; j+8 <= len(b); j += 8 {
		w := binary.LittleEndian.Uint64(b[j : j+8])
		high |= w
		if t := special(w); t != 0 {
			j += bits.TrailingZeros64(t) >> 3
			if b[j] != '"' {
				break
			}
			if high&msb != 0 && !utf8.Valid(b[start:j]) {
				return false
			}
			s.i = j + 1
			return true
		}
	}
	_, ok := s.str()
	return ok
}

// The bytes of a word (little-endian) that are special in a JSON string.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special flags the high bit of each byte of w that is a quote, a backslash
// or a control character; the lowest flag is exact (a borrow can flag bytes
// above a flagged one only).
func special(w uint64) uint64 {
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return ((q-lsb)&^q | (bs-lsb)&^bs | (w-lsb*0x20)&^w) & msb
}

// unescape reads the rest of the string that started at start, from its
// first backslash at j, into s.buf.
func (s *scanner) unescape(start, j int) ([]byte, bool) {
	b := s.b
	buf := append(s.buf[:0], b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			// Escapes are ASCII: the raw text is valid UTF-8 if and only if
			// the text between them is.
			if !utf8.Valid(b[start:j]) {
				return nil, false
			}
			s.buf = buf
			s.i = j + 1
			s.escaped = true
			return buf, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(b) {
			return nil, false
		}
		switch b[j+1] {
		case '"', '\\', '/':
			buf = append(buf, b[j+1])
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(b, j+2)
			if !ok {
				return nil, false
			}
			j += 6
			if r >= 0xD800 && r < 0xE000 {
				// A surrogate: only a high one followed by a low one is text.
				if r >= 0xDC00 || j+1 >= len(b) || b[j] != '\\' || b[j+1] != 'u' {
					return nil, false
				}
				lo, ok := hex4(b, j+2)
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return nil, false
				}
				j += 6
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			return nil, false
		}
		j += 2
	}
	return nil, false
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads the number at s.i by JSON's grammar as a float64; it gives
// up on numbers out of float64's range (goccy's type error).
func (s *scanner) number() (float64, bool) {
	b := s.b
	start := s.i
	j := start
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	if j >= len(b) {
		return 0, false
	}
	var mant uint64
	digits := 0
	switch {
	case b[j] == '0':
		j++
	case '1' <= b[j] && b[j] <= '9':
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			mant = mant*10 + uint64(b[j]-'0')
			digits++
			j++
		}
	default:
		return 0, false
	}
	simple := digits <= 15
	if j < len(b) && b[j] == '.' {
		simple = false
		j++
		k := j
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == k {
			return 0, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		simple = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == k {
			return 0, false
		}
	}
	s.i = j
	if simple {
		// At most 15 digits: exact in a float64, as ParseFloat gives it.
		f := float64(mant)
		if neg {
			f = -f
		}
		return f, true
	}
	raw := b[start:j]
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(raw), len(raw)), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// skipNumber checks the number at s.i by JSON's grammar only, as
// goccy/go-json skips an unread value.
func (s *scanner) skipNumber() bool {
	b := s.b
	j := s.i
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j >= len(b) {
		return false
	}
	switch {
	case b[j] == '0':
		j++
	case '1' <= b[j] && b[j] <= '9':
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
	default:
		return false
	}
	if j < len(b) && b[j] == '.' {
		j++
		k := j
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == k {
			return false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == k {
			return false
		}
	}
	s.i = j
	return true
}

// value reads the free-form value at s.i (not white space) with JSON's Go
// types; depth is its depth if it is an object or an array.
func (s *scanner) value(depth int) (any, bool) {
	b := s.b
	switch c := b[s.i]; c {
	case '"':
		raw, ok := s.str()
		if !ok {
			return nil, false
		}
		return internValue(raw), true
	case '{':
		m, ok := s.object(nil, depth)
		return m, ok
	case '[':
		return s.array(depth)
	case 't':
		return true, s.lit("true")
	case 'f':
		return false, s.lit("false")
	case 'n':
		return nil, s.lit("null")
	default:
		f, ok := s.number()
		if !ok {
			return nil, false
		}
		return boxFloat(f), true
	}
}

// object reads the object at s.i (at its '{') into m, or a new map if m is
// nil; a repeated key's last value wins.
func (s *scanner) object(m map[string]any, depth int) (map[string]any, bool) {
	if depth > scanMaxDepth {
		return nil, false
	}
	b := s.b
	s.i++
	s.ws()
	if m == nil {
		m = map[string]any{}
	}
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return m, true
	}
	for {
		if s.i >= len(b) || b[s.i] != '"' {
			return nil, false
		}
		raw, ok := s.str()
		if !ok {
			return nil, false
		}
		k := internString(raw)
		if s.ws(); s.i >= len(b) || b[s.i] != ':' {
			return nil, false
		}
		s.i++
		if s.ws(); s.i >= len(b) {
			return nil, false
		}
		v, ok := s.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v
		if s.ws(); s.i >= len(b) {
			return nil, false
		}
		switch b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return m, true
		default:
			return nil, false
		}
	}
}

// selected reads the free-form object at s.i (at its '{'), at depth 2, as
// object does, but keeps only the values of the keys that keys selects, in
// p from index base on: the others are skipped, checked as strictly as
// object would read them. A repeated key's last value wins.
func (s *scanner) selected(p *picks, keys Keys, base int) bool {
	const depth = 2
	b := s.b
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		if s.i >= len(b) || b[s.i] != '"' {
			return false
		}
		raw, ok := s.str()
		if !ok {
			return false
		}
		k := keys.index(raw)
		if s.ws(); s.i >= len(b) || b[s.i] != ':' {
			return false
		}
		s.i++
		if s.ws(); s.i >= len(b) {
			return false
		}
		if k >= 0 {
			v, ok := s.value(depth + 1)
			if !ok {
				return false
			}
			p.set(base+k, v)
		} else if !s.skip(depth+1, true) {
			return false
		}
		if s.ws(); s.i >= len(b) {
			return false
		}
		switch b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// array reads the array at s.i (at its '[').
func (s *scanner) array(depth int) (any, bool) {
	if depth > scanMaxDepth {
		return nil, false
	}
	b := s.b
	s.i++
	s.ws()
	arr := make([]any, 0, 4)
	if s.i < len(b) && b[s.i] == ']' {
		s.i++
		return arr, true
	}
	for {
		if s.i >= len(b) {
			return nil, false
		}
		v, ok := s.value(depth + 1)
		if !ok {
			return nil, false
		}
		arr = append(arr, v)
		if s.ws(); s.i >= len(b) {
			return nil, false
		}
		switch b[s.i] {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			return arr, true
		default:
			return nil, false
		}
	}
}

// skip checks the value at s.i (not white space) at depth and moves past it
// without building it: an unread field, `context` when it is not wanted, or
// an unselected key of a free-form object (strict). Its strings are checked
// as str checks them; its numbers by the grammar only, as goccy/go-json
// skips an unread field, or when strict as value reads them (within
// float64's range), so that skipping a free-form value accepts exactly
// what reading it would.
func (s *scanner) skip(depth int, strict bool) bool {
	b := s.b
	switch b[s.i] {
	case '"':
		return s.skipStr()
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	case '{', '[':
	default:
		if strict {
			_, ok := s.number()
			return ok
		}
		return s.skipNumber()
	}
	if depth > scanMaxDepth {
		return false
	}
	obj := b[s.i] == '{'
	end := byte(']')
	if obj {
		end = '}'
	}
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == end {
		s.i++
		return true
	}
	for {
		if s.i >= len(b) {
			return false
		}
		if obj {
			if b[s.i] != '"' {
				return false
			}
			if !s.skipStr() {
				return false
			}
			if s.ws(); s.i >= len(b) || b[s.i] != ':' {
				return false
			}
			s.i++
			if s.ws(); s.i >= len(b) {
				return false
			}
		}
		if !s.skip(depth+1, strict) {
			return false
		}
		if s.ws(); s.i >= len(b) {
			return false
		}
		switch b[s.i] {
		case ',':
			s.i++
			s.ws()
		case end:
			s.i++
			return true
		default:
			return false
		}
	}
}

// Interning. Property keys, event and page names and many property values
// repeat from event to event; a bounded, lock-free table hands out one
// string (and one boxed any) for each, so that a repeated one costs no
// allocation. A text enters the table the second time its slot sees it,
// so that one-off texts (ids, URLs with query strings) cost only a
// hash. Strings are immutable: sharing them cannot change a result.

const (
	internSlots  = 1 << 13
	internMaxLen = 128
)

type interned struct {
	s string
	v any // s, boxed
}

var (
	internTable [internSlots]atomic.Pointer[interned]
	internSeen  [internSlots]atomic.Uint32
)

// lookupInterned returns the table's entry for b, or nil after noting it.
func lookupInterned(b []byte) *interned {
	if len(b) > internMaxLen {
		return nil
	}
	h := hashBytes(b)
	slot := h & (internSlots - 1)
	if p := internTable[slot].Load(); p != nil && p.s == string(b) {
		return p
	}
	tag := uint32(h>>32) | 1
	if internSeen[slot].Load() != tag {
		internSeen[slot].Store(tag)
		return nil
	}
	p := &interned{s: string(b)}
	p.v = p.s
	internTable[slot].Store(p)
	return p
}

// hashBytes is a quick hash of a short text for the intern table (whose
// hits compare the text itself, so it needs spread, not strength).
func hashBytes(b []byte) uint64 {
	h := uint64(len(b)) * 0x9e3779b97f4a7c15
	for len(b) >= 8 {
		h = (h ^ binary.LittleEndian.Uint64(b)) * 0xff51afd7ed558ccd
		h ^= h >> 32
		b = b[8:]
	}
	if len(b) > 0 {
		var t uint64
		if len(b) >= 4 {
			t = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[len(b)-4:]))<<32
		} else {
			t = uint64(b[0]) | uint64(b[len(b)/2])<<8 | uint64(b[len(b)-1])<<16
		}
		h = (h ^ t) * 0xc4ceb9fe1a85ec53
		h ^= h >> 29
	}
	return h
}

// internString returns b as a string, shared if it repeats.
func internString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if p := lookupInterned(b); p != nil {
		return p.s
	}
	return string(b)
}

// internValue returns b as a string in an any, shared if it repeats.
func internValue(b []byte) any {
	if len(b) == 0 {
		return ""
	}
	if p := lookupInterned(b); p != nil {
		return p.v
	}
	return string(b)
}

// smallInts are the boxed float64s of 0…1023, which counts, quantities and
// small prices are: boxing one costs no allocation.
var smallInts = func() (t [1024]any) {
	for i := range t {
		t[i] = float64(i)
	}
	return t
}()

// boxFloat returns f in an any.
func boxFloat(f float64) any {
	if f >= 0 && f < float64(len(smallInts)) {
		if i := int(f); float64(i) == f && !(f == 0 && math.Signbit(f)) {
			return smallInts[i]
		}
	}
	return f
}
