package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// The contact's msgpack form, read straight from the blob.
//
// Reading through msgpack's Decoder cost a byte-at-a-time io.Reader call
// per value, a copy per string (the map keys too), and a separate
// allocation per string, per number slice and per slot array: 22–41 µs
// and 65 allocations for a typical B2B contact (BenchmarkCodecB2B/decode,
// 2-core dev machine at load 5–8), against 8–10 µs and 13 allocations
// for this reader, same runs.
// This reader walks the byte slice and reads the blob twice: the first pass
// checks it and counts what the contact holds (slots, numbers, string
// bytes), the second builds the contact in a few allocations sized by those
// counts — the contact with its id (New's box), one block for the four
// per-rule slot arrays (layout.go, as Bind gives a new contact), one array
// each for the window and limit numbers, the distinct keys and the string
// bytes. Walking the bytes twice costs less than one allocation per value.
//
// It reads exactly what msgpack's Decoder read with the methods the
// previous decoder called (DecodeString, DecodeInt64, DecodeFloat64, …):
// the same codes are accepted, the same blobs are refused, and a trait's
// value of another form than a scalar goes through msgpack's own
// DecodeInterface. FuzzDecodeMatchesReference checks this against that
// decoder, kept in codec_ref_test.go.
//
// The strings of a decoded contact share one allocation: a contact keeps
// its strings' bytes alive together (at most the blob's size), which is
// what a contact held anyway.

// decodeContact reads a contact from b. With into nil it returns a new
// contact; otherwise it decodes into into (DecodeMsgpack), which then keeps
// the fields the blob does not have.
func decodeContact(b []byte, into *Contact) (*Contact, error) {
	x := dr{b: b}
	var scratch Contact
	x.contact(&scratch)
	if x.err != nil {
		return nil, x.err
	}
	c := into
	if c == nil {
		c = New(x.id)
		id := c.ID
		if len(id) > 0 && unsafe.StringData(id) == unsafe.StringData(x.id) {
			id = strings.Clone(id) // too long for New's box: New kept the blob's bytes
		}
		*c = Contact{ID: id}
		x.idStr = id
	} else {
		x.idStr = strings.Clone(x.id)
	}
	x.startFill()
	x.contact(c)
	if x.err != nil { // the first pass read the same bytes without error
		return nil, fmt.Errorf("%w: second pass: %w", errCorrupt, x.err)
	}
	if len(c.Windows) == 0 {
		c.Windows = nil
	}
	if len(c.Points) == 0 {
		c.Points = nil
	}
	if len(c.Triggers) == 0 {
		c.Triggers = nil
	}
	if len(c.Timers) == 0 {
		c.Timers = nil
	}
	if len(c.Caps) == 0 {
		c.Caps = nil
	}
	if len(c.Seen.H) == 0 {
		c.Seen.H = nil
	}
	if len(c.Merged) == 0 {
		c.Merged = nil
	}
	return c, nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (c *Contact) DecodeMsgpack(dec *msgpack.Decoder) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	_, err = decodeContact(raw, c)
	return err
}

// dr reads a blob, keeping the first error. In the first pass (fill false)
// it only checks and counts; in the second it builds the contact from the
// arenas the counts sized.
type dr struct {
	b   []byte
	i   int
	err error

	fill bool

	// Counted in the first pass, handed out in the second.
	nInts, nFloats, nKeys, nBytes int
	nW, nP, nT, nC                int      // the per-rule arrays' lengths (the last of each key)
	anys                          []any    // traits of other forms than scalars, decoded in the first pass
	anyEnd                        []int    // where each of anys ends in the blob
	seenH                         []uint64 // the seen ids' hashes, read in the first pass (the last of nSeenH arrays, which ends at seenEnd)
	seenEnd                       int
	nSeenH                        int
	id                            string // the blob's id, a view of the blob (first pass)

	intBuf   []int64
	floatBuf []float64
	keyBuf   []string
	strs     []byte
	idStr    string
	windows  []Window
	points   []Points
	trigs    []Trigger
	caps     []Cap
}

// startFill turns a counted reader into the second pass.
func (x *dr) startFill() {
	x.fill, x.i = true, 0
	// The numbers and the strings' bytes hold no pointers: one allocation
	// of words holds them all.
	if words := x.nInts + x.nFloats + (x.nBytes+7)/8; words > 0 {
		buf := make([]uint64, words)
		x.intBuf = carve[int64](buf, 0, x.nInts)
		x.floatBuf = carve[float64](buf, x.nInts, x.nFloats)
		x.strs = carve[byte](buf, x.nInts+x.nFloats, x.nBytes)[:0]
	}
	if x.nKeys > 0 {
		x.keyBuf = make([]string, x.nKeys)
	}
	if x.nW+x.nP+x.nT+x.nC > 0 {
		if l := layoutFor(x.nW, x.nP, x.nT, x.nC); l != nil {
			x.windows, x.points, x.trigs, x.caps = l.alloc()
		}
	}
}

// carve returns n values of T (a number type) at word off of buf, nil for
// none.
func carve[T int64 | float64 | byte](buf []uint64, off, n int) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&buf[off])), n)
}

func (x *dr) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

// code reads a value's first byte.
func (x *dr) code() (byte, bool) {
	if x.err != nil {
		return 0, false
	}
	if x.i >= len(x.b) {
		x.fail(io.ErrUnexpectedEOF)
		return 0, false
	}
	c := x.b[x.i]
	x.i++
	return c, true
}

// next returns the next n bytes.
func (x *dr) next(n int) []byte {
	if x.err != nil {
		return nil
	}
	if n > len(x.b)-x.i {
		x.fail(io.ErrUnexpectedEOF)
		return nil
	}
	p := x.b[x.i : x.i+n]
	x.i += n
	return p
}

// be reads a big-endian unsigned integer of n (1, 2, 4 or 8) bytes.
func (x *dr) be(n int) uint64 {
	if x.err != nil {
		return 0
	}
	if n > len(x.b)-x.i {
		x.fail(io.ErrUnexpectedEOF)
		return 0
	}
	p := x.b[x.i:]
	x.i += n
	switch n {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	}
	return binary.BigEndian.Uint64(p)
}

// length checks a declared length against the bytes left: every entry
// takes at least one byte, so a longer one cannot be read, and must not be
// allocated.
func (x *dr) length(n int) int {
	if x.err != nil || n < 0 { // nil
		return 0
	}
	if n > len(x.b)-x.i {
		x.fail(fmt.Errorf("%w: a length of %d with %d bytes left of a %d-byte blob", errCorrupt, n, len(x.b)-x.i, len(x.b)))
		return 0
	}
	return n
}

// mapLen reads a map header as Decoder.DecodeMapLen does (which also steps
// over an ext header before it).
func (x *dr) mapLen() int {
	c, ok := x.code()
	if !ok {
		return 0
	}
	if isExt(c) {
		x.next(1 + extHeaderLen(c))
		if c, ok = x.code(); !ok {
			return 0
		}
	}
	switch {
	case c == 0xc0:
		return 0
	case c >= 0x80 && c <= 0x8f:
		return x.length(int(c & 0x0f))
	case c == 0xde:
		return x.length(int(x.be(2)))
	case c == 0xdf:
		return x.length(int(x.be(4)))
	}
	x.fail(fmt.Errorf("%w: code %#x where a map was expected", errCorrupt, c))
	return 0
}

// arrLen reads an array header as Decoder.DecodeArrayLen does.
func (x *dr) arrLen() int {
	c, ok := x.code()
	if !ok {
		return 0
	}
	switch {
	case c == 0xc0:
		return 0
	case c >= 0x90 && c <= 0x9f:
		return x.length(int(c & 0x0f))
	case c == 0xdc:
		return x.length(int(x.be(2)))
	case c == 0xdd:
		return x.length(int(x.be(4)))
	}
	x.fail(fmt.Errorf("%w: code %#x where an array was expected", errCorrupt, c))
	return 0
}

// bytesLen reads a str or bin header as Decoder.DecodeString does (nil
// reads as empty).
func (x *dr) bytesLen(c byte) int {
	switch {
	case c == 0xc0:
		return 0
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		return int(x.be(1))
	case c == 0xda || c == 0xc5:
		return int(x.be(2))
	case c == 0xdb || c == 0xc6:
		return int(x.be(4))
	}
	x.fail(fmt.Errorf("%w: code %#x where a string was expected", errCorrupt, c))
	return 0
}

// view reads a string as a view of the blob: a key, or a value counted
// in the first pass.
func (x *dr) view() string {
	if i := x.i; x.err == nil && i < len(x.b) {
		if c := x.b[i]; c >= 0xa1 && c <= 0xbf { // a short string: most keys and names
			if end := i + 1 + int(c&0x1f); end <= len(x.b) {
				x.i = end
				return unsafe.String(&x.b[i+1], end-i-1)
			}
		}
	}
	c, ok := x.code()
	if !ok {
		return ""
	}
	p := x.next(x.bytesLen(c))
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

// str reads a string the contact keeps: counted in the first pass, copied
// into the contact's string bytes in the second.
func (x *dr) str() string {
	return x.keep(x.view())
}

func (x *dr) keep(s string) string {
	if s == "" {
		return ""
	}
	if !x.fill {
		x.nBytes += len(s)
		return s
	}
	if len(x.strs)+len(s) > cap(x.strs) { // cannot happen: counted
		return strings.Clone(s)
	}
	n := len(x.strs)
	x.strs = append(x.strs, s...)
	return unsafe.String(&x.strs[n], len(s))
}

// i64 reads an integer as Decoder.DecodeInt64 does.
func (x *dr) i64() int64 {
	if i := x.i; x.err == nil && i+9 <= len(x.b) {
		switch c := x.b[i]; {
		case c <= 0x7f:
			x.i++
			return int64(c)
		case c == 0xd3 || c == 0xcf: // times, NoTime
			x.i += 9
			return int64(binary.BigEndian.Uint64(x.b[i+1:]))
		}
	}
	c, ok := x.code()
	if !ok {
		return 0
	}
	return x.int(c)
}

func (x *dr) int(c byte) int64 {
	switch {
	case c <= 0x7f || c >= 0xe0:
		return int64(int8(c))
	case c == 0xc0:
		return 0
	case c == 0xcc:
		return int64(uint8(x.be(1)))
	case c == 0xd0:
		return int64(int8(x.be(1)))
	case c == 0xcd:
		return int64(uint16(x.be(2)))
	case c == 0xd1:
		return int64(int16(x.be(2)))
	case c == 0xce:
		return int64(uint32(x.be(4)))
	case c == 0xd2:
		return int64(int32(x.be(4)))
	case c == 0xcf || c == 0xd3:
		return int64(x.be(8))
	}
	x.fail(fmt.Errorf("%w: code %#x where an integer was expected", errCorrupt, c))
	return 0
}

// u64 reads an unsigned integer as Decoder.DecodeUint64 does.
func (x *dr) u64() uint64 {
	if i := x.i; x.err == nil && i+9 <= len(x.b) {
		switch c := x.b[i]; {
		case c <= 0x7f:
			x.i++
			return uint64(c)
		case c == 0xcf || c == 0xd3: // the seen ids' hashes
			x.i += 9
			return binary.BigEndian.Uint64(x.b[i+1:])
		}
	}
	c, ok := x.code()
	if !ok {
		return 0
	}
	switch {
	case c <= 0x7f || c >= 0xe0:
		return uint64(int8(c))
	case c == 0xc0:
		return 0
	case c == 0xcc:
		return uint64(uint8(x.be(1)))
	case c == 0xd0:
		return uint64(int8(x.be(1)))
	case c == 0xcd:
		return uint64(uint16(x.be(2)))
	case c == 0xd1:
		return uint64(int16(x.be(2)))
	case c == 0xce:
		return uint64(uint32(x.be(4)))
	case c == 0xd2:
		return uint64(int32(x.be(4)))
	case c == 0xcf || c == 0xd3:
		return x.be(8)
	}
	x.fail(fmt.Errorf("%w: code %#x where an unsigned integer was expected", errCorrupt, c))
	return 0
}

// f64 reads a number as Decoder.DecodeFloat64 does.
func (x *dr) f64() float64 {
	if i := x.i; x.err == nil && i+9 <= len(x.b) && x.b[i] == 0xcb {
		x.i += 9
		return math.Float64frombits(binary.BigEndian.Uint64(x.b[i+1:]))
	}
	c, ok := x.code()
	if !ok {
		return 0
	}
	switch c {
	case 0xca:
		return float64(math.Float32frombits(uint32(x.be(4))))
	case 0xcb:
		return math.Float64frombits(x.be(8))
	}
	return float64(x.int(c))
}

// boolean reads a bool as Decoder.DecodeBool does (nil is false).
func (x *dr) boolean() bool {
	c, ok := x.code()
	if !ok {
		return false
	}
	switch c {
	case 0xc0, 0xc2:
		return false
	case 0xc3:
		return true
	}
	x.fail(fmt.Errorf("%w: code %#x where a bool was expected", errCorrupt, c))
	return false
}

// skip steps over one value as Decoder.Skip does.
func (x *dr) skip() {
	for n := 1; n > 0 && x.err == nil; n-- {
		c, ok := x.code()
		if !ok {
			return
		}
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			n += 2 * x.length(int(c&0x0f))
		case c == 0xde:
			n += 2 * x.length(int(x.be(2)))
		case c == 0xdf:
			n += 2 * x.length(int(x.be(4)))
		case c >= 0x90 && c <= 0x9f:
			n += x.length(int(c & 0x0f))
		case c == 0xdc:
			n += x.length(int(x.be(2)))
		case c == 0xdd:
			n += x.length(int(x.be(4)))
		case c >= 0xa0 && c <= 0xbf, c >= 0xd9 && c <= 0xdb, c >= 0xc4 && c <= 0xc6:
			x.next(x.bytesLen(c))
		case c == 0xcc || c == 0xd0:
			x.next(1)
		case c == 0xcd || c == 0xd1:
			x.next(2)
		case c == 0xce || c == 0xd2 || c == 0xca:
			x.next(4)
		case c == 0xcf || c == 0xd3 || c == 0xcb:
			x.next(8)
		case isExt(c):
			var size int
			switch c {
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
				size = 1 << (c - 0xd4)
			case 0xc7:
				size = int(x.be(1))
			case 0xc8:
				size = int(x.be(2))
			case 0xc9:
				size = int(x.be(4))
			}
			x.next(size + 1)
		default:
			x.fail(fmt.Errorf("%w: unknown code %#x", errCorrupt, c))
		}
	}
}

func isExt(c byte) bool { return (c >= 0xd4 && c <= 0xd8) || (c >= 0xc7 && c <= 0xc9) }

// extHeaderLen is the bytes of an ext's length after its code.
func extHeaderLen(c byte) int {
	switch c {
	case 0xc7:
		return 1
	case 0xc8:
		return 2
	case 0xc9:
		return 4
	}
	return 0
}

// trait reads a trait's value as Decoder.DecodeInterface then jsonNumber
// did: numbers as float64, strings, bools and nil here; other forms (maps,
// arrays, binary, extensions) through msgpack itself, in the first pass,
// kept for the second.
func (x *dr) trait() any {
	if x.err != nil {
		return nil
	}
	if x.i >= len(x.b) {
		x.fail(io.ErrUnexpectedEOF)
		return nil
	}
	c := x.b[x.i]
	switch {
	case c <= 0x7f || c >= 0xe0, c >= 0xcc && c <= 0xd3 && c != 0xcf:
		return x.number(float64(x.i64()))
	case c == 0xcf:
		x.i++
		return x.number(float64(x.be(8)))
	case c == 0xca || c == 0xcb:
		return x.number(x.f64())
	case c == 0xc0:
		x.i++
		return nil
	case c == 0xc2 || c == 0xc3:
		x.i++
		return c == 0xc3
	case c >= 0xa0 && c <= 0xbf, c >= 0xd9 && c <= 0xdb:
		s := x.str()
		if !x.fill {
			return nil
		}
		return s
	}
	if x.fill {
		if len(x.anys) == 0 { // cannot happen: decoded in the first pass
			x.fail(fmt.Errorf("%w: trait value not seen in the first pass", errCorrupt))
			return nil
		}
		v := x.anys[0]
		x.i = x.anyEnd[0]
		x.anys, x.anyEnd = x.anys[1:], x.anyEnd[1:]
		return v
	}
	// Stepped over first, which bounds every length inside by the bytes
	// left: msgpack would allocate what a corrupt length says (a map of
	// 2^31 entries, a 4 GB binary).
	start := x.i
	x.skip()
	if x.err != nil {
		return nil
	}
	v, err := msgpack.NewDecoder(bytes.NewReader(x.b[start:x.i])).DecodeInterface()
	if err != nil {
		x.fail(err)
		return nil
	}
	x.anys = append(x.anys, jsonNumber(v))
	x.anyEnd = append(x.anyEnd, x.i)
	return nil
}

func (x *dr) number(f float64) any {
	if !x.fill {
		return nil
	}
	return f
}

// ints reads an integer array into the contact's numbers.
func (x *dr) ints() []int64 {
	n := x.arrLen()
	if n == 0 {
		return nil
	}
	if !x.fill {
		x.nInts += n
		for range n {
			x.i64()
		}
		return nil
	}
	var s []int64
	if n <= len(x.intBuf) {
		s, x.intBuf = x.intBuf[:n:n], x.intBuf[n:]
	} else { // cannot happen: counted
		s = make([]int64, n)
	}
	for i := range s {
		s[i] = x.i64()
	}
	return s
}

// floats reads a number array into the contact's numbers.
func (x *dr) floats() []float64 {
	n := x.arrLen()
	if n == 0 {
		return nil
	}
	if !x.fill {
		x.nFloats += n
		for range n {
			x.f64()
		}
		return nil
	}
	var s []float64
	if n <= len(x.floatBuf) {
		s, x.floatBuf = x.floatBuf[:n:n], x.floatBuf[n:]
	} else { // cannot happen: counted
		s = make([]float64, n)
	}
	for i := range s {
		s[i] = x.f64()
	}
	return s
}

// texts reads a string array (a distinct window's keys; an empty one is
// empty, not nil, as it always read).
func (x *dr) texts() []string {
	n := x.arrLen()
	if !x.fill {
		x.nKeys += n
		for range n {
			x.str()
		}
		return nil
	}
	var s []string
	if n == 0 {
		return []string{}
	}
	if n <= len(x.keyBuf) {
		s, x.keyBuf = x.keyBuf[:n:n], x.keyBuf[n:]
	} else { // cannot happen: counted
		s = make([]string, n)
	}
	for i := range s {
		s[i] = x.str()
	}
	return s
}

// plain reads a string array that is seldom there (merged ids, a pending
// link's ids) into an array of its own.
func (x *dr) plain() []string {
	n := x.arrLen()
	var s []string
	if x.fill {
		s = make([]string, n)
	}
	for i := range n {
		v := x.str()
		if x.fill {
			s[i] = v
		}
	}
	return s
}

// slots returns the n slots of a per-rule array: the block's when n is the
// length the first pass counted (once), an array of its own otherwise;
// nil in the first pass, which records n.
func slots[T any](x *dr, block *[]T, counted *int, n int) []T {
	if !x.fill {
		*counted = n
		return nil
	}
	if *block != nil && len(*block) == n {
		s := *block
		*block = nil
		return s
	}
	return make([]T, n)
}

// contact reads the top-level map into c.
func (x *dr) contact(c *Contact) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "v":
			c.V = int(x.i64())
		case "id":
			if x.fill {
				x.skip()
				c.ID = x.idStr
			} else {
				x.id = x.view()
			}
		case "q":
			c.Seq = x.u64()
		case "t":
			c.Latest = x.i64()
		case "s":
			c.Stage = x.str()
		case "tr":
			m := x.mapLen()
			if x.fill && m > 0 {
				c.Traits = make(map[string]any, m)
			}
			for j := 0; j < m && x.err == nil; j++ {
				k := x.str()
				v := x.trait()
				if x.fill {
					c.Traits[k] = v
				}
			}
		case "w":
			m := x.arrLen()
			ws := slots(x, &x.windows, &x.nW, m)
			var scratch Window
			for j := 0; j < m && x.err == nil; j++ {
				win := &scratch
				if ws != nil {
					win = &ws[j]
				}
				x.window(win)
			}
			if x.fill {
				c.Windows = ws
			}
		case "p":
			m := x.arrLen()
			ps := slots(x, &x.points, &x.nP, m)
			var scratch Points
			for j := 0; j < m && x.err == nil; j++ {
				p := &scratch
				if ps != nil {
					p = &ps[j]
				}
				x.points1(p)
			}
			if x.fill {
				c.Points = ps
			}
		case "g":
			m := x.arrLen()
			ts := slots(x, &x.trigs, &x.nT, m)
			var scratch Trigger
			for j := 0; j < m && x.err == nil; j++ {
				t := &scratch
				if ts != nil {
					t = &ts[j]
				}
				x.trigger(t)
			}
			if x.fill {
				c.Triggers = ts
			}
		case "m":
			m := x.arrLen()
			var ts []Timer
			if x.fill {
				ts = make([]Timer, m)
			}
			var scratch Timer
			for j := 0; j < m && x.err == nil; j++ {
				t := &scratch
				if ts != nil {
					t = &ts[j]
				}
				x.timer(t)
			}
			if x.fill {
				c.Timers = ts
			}
		case "c":
			m := x.arrLen()
			cs := slots(x, &x.caps, &x.nC, m)
			var scratch Cap
			for j := 0; j < m && x.err == nil; j++ {
				cp := &scratch
				if cs != nil {
					cp = &cs[j]
				}
				x.cap1(cp)
			}
			if x.fill {
				c.Caps = cs
			}
		case "mi":
			s := x.plain()
			if x.fill {
				c.Merged = s
			}
		case "mt":
			c.MergedInto = x.str()
		case "kn":
			c.Known = x.boolean()
		case "pl":
			pl := x.pending(true)
			if x.fill {
				c.Pending = pl
			}
		case "fw":
			m := x.arrLen()
			var fs []Position
			if x.fill {
				fs = make([]Position, m)
			}
			for j := 0; j < m && x.err == nil; j++ {
				p := x.pos()
				if x.fill {
					fs[j] = p
				}
			}
			if x.fill {
				c.Forwarded = fs
			}
		case "d":
			x.seen(&c.Seen)
		case "o":
			c.Pos = x.posInto(c.Pos)
		case "a":
			c.Applied = x.posInto(c.Applied)
		default:
			x.skip()
		}
	}
}

func (x *dr) window(win *Window) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "n":
			win.Name = x.str()
		case "t":
			win.T = x.ints()
		case "v":
			win.V = x.floats()
		case "k":
			win.K = x.texts()
		case "x":
			win.Dropped = x.u64()
		default:
			x.skip()
		}
	}
}

func (x *dr) points1(p *Points) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "n":
			p.Rule = x.str()
		case "v":
			p.Value = x.f64()
		case "a":
			p.AsOf = x.i64()
		case "lt":
			p.LimT = x.ints()
		case "lp":
			p.LimP = x.floats()
		default:
			x.skip()
		}
	}
}

func (x *dr) trigger(t *Trigger) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "n":
			t.ID = x.str()
		case "o":
			t.On = x.boolean()
		case "l":
			t.Last = x.i64()
		case "f":
			t.Fired = x.u64()
		case "s":
			t.Steps = x.ints()
		default:
			x.skip()
		}
	}
}

func (x *dr) timer(t *Timer) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "n":
			t.Trigger = x.str()
		case "d":
			t.Due = x.i64()
		case "s":
			t.Set = x.u64()
		default:
			x.skip()
		}
	}
}

func (x *dr) cap1(cp *Cap) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "n":
			cp.Action = x.str()
		case "t":
			cp.T = x.ints()
		default:
			x.skip()
		}
	}
}

func (x *dr) seen(s *Seen) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "h":
			// The hashes are an array of their own: read once, in the
			// first pass, and stepped over in the second (the last array
			// read is the one the contact keeps).
			if x.fill {
				s.H = x.seenH
				if x.nSeenH == 1 {
					x.i = x.seenEnd
				} else {
					x.skip()
				}
				continue
			}
			m := x.arrLen()
			h := make([]uint64, m)
			for j := 0; j < m && x.err == nil; j++ {
				h[j] = x.u64()
			}
			x.seenH, x.seenEnd = h, x.i
			x.nSeenH++
		case "p":
			s.Pos = int(x.i64())
		default:
			x.skip()
		}
	}
}

// pos reads a position; posInto keeps what p has for a missing key.
func (x *dr) pos() Position { return x.posInto(Position{}) }

func (x *dr) posInto(p Position) Position {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch x.view() {
		case "p":
			p.Partition = int32(x.i64())
		case "o":
			p.Offset = x.i64()
		default:
			x.skip()
		}
	}
	return p
}

// pending reads a pending link; a queued one (top false) has no Then of
// its own, so a corrupt blob cannot nest them deeper.
func (x *dr) pending(top bool) *PendingLink {
	pl := &PendingLink{}
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		switch k := x.view(); {
		case k == "k":
			pl.Link = x.pos()
		case k == "t":
			pl.Time = x.i64()
		case k == "i":
			pl.IDs = x.plain()
		case k == "c":
			pl.Conflict = int(x.i64())
		case k == "l":
			pl.Late = x.boolean()
		case k == "n" && top:
			m := x.arrLen()
			if x.fill {
				pl.Then = make([]PendingLink, m)
			}
			for j := 0; j < m && x.err == nil; j++ {
				q := x.pending(false)
				if x.fill {
					pl.Then[j] = *q
				}
			}
		default:
			x.skip()
		}
	}
	return pl
}
