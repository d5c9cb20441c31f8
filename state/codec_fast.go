package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The contact's msgpack form, written and read by hand.
//
// The wire format is the one the struct tags describe — a map with short
// keys at every level — so blobs written by the reflection-based encoder
// and by this code read the same, and a decoder skips keys it does not know
// (a later version's fields). Writing it by hand is what makes a contact
// cheap to store: reflection over the nested slices costs several times the
// time and allocations of this code for a typical B2B contact
// (BenchmarkCodecReflect, the baseline, against BenchmarkCodecB2B; on the
// 2-core dev machine 111 µs against 25 µs to encode, 134 µs against 69 µs to
// decode).

// bufPool keeps the buffers contacts are encoded into.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// anyPool keeps msgpack encoders for trait values of unusual types.
var anyPool = sync.Pool{New: func() any {
	enc := msgpack.NewEncoder(nil)
	enc.UseCompactInts(true)
	return &anyEncoder{enc: enc}
}}

type anyEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// errCorrupt reports a blob whose structure is not a contact's.
var errCorrupt = errors.New("state: corrupt contact blob")

func encodeContact(c *Contact) ([]byte, error) {
	pb := bufPool.Get().(*[]byte)
	defer bufPool.Put(pb)
	b, err := appendContact((*pb)[:0], c)
	*pb = b
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

// appendContact appends the contact's msgpack form to dst.
func appendContact(dst []byte, c *Contact) ([]byte, error) {
	x := w{b: dst} // on the stack: appending needs no write barrier
	c.encode(&x)
	return x.b, x.err
}

// w appends msgpack to b, in the forms msgpack.Encoder with compact ints
// writes (the smallest int form; floats as float64), and collects the
// first error. Why appending by hand: the encoder's writes, each through an
// io.Writer, took most of the time of encoding a contact (13% of the
// pipeline's CPU with Redis state: a changed contact is encoded at each
// state write), and a contact needs only the primitive forms below.
type w struct {
	b   []byte
	err error
}

func (x *w) str(s string) {
	switch l := len(s); {
	case l < 32:
		x.b = append(x.b, 0xa0|byte(l))
	case l < 256:
		x.b = append(x.b, 0xd9, byte(l))
	case l <= math.MaxUint16:
		x.b = append(x.b, 0xda, byte(l>>8), byte(l))
	default:
		x.b = append(x.b, 0xdb, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
	}
	x.b = append(x.b, s...)
}

func (x *w) u64(n uint64) {
	switch {
	case n <= math.MaxInt8:
		x.b = append(x.b, byte(n))
	case n <= math.MaxUint8:
		x.b = append(x.b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		x.b = append(x.b, 0xcd, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		x.b = append(x.b, 0xce, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		x.b = append(x.b, 0xcf)
		x.b = binary.BigEndian.AppendUint64(x.b, n)
	}
}

func (x *w) i64(n int64) {
	switch {
	case n >= 0:
		x.u64(uint64(n))
	case n >= -32:
		x.b = append(x.b, byte(n))
	case n >= math.MinInt8:
		x.b = append(x.b, 0xd0, byte(n))
	case n >= math.MinInt16:
		x.b = append(x.b, 0xd1, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		x.b = append(x.b, 0xd2, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		x.b = append(x.b, 0xd3)
		x.b = binary.BigEndian.AppendUint64(x.b, uint64(n))
	}
}

func (x *w) f64(f float64) {
	x.b = append(x.b, 0xcb)
	x.b = binary.BigEndian.AppendUint64(x.b, math.Float64bits(f))
}

func (x *w) boolean(b bool) {
	if b {
		x.b = append(x.b, 0xc3)
	} else {
		x.b = append(x.b, 0xc2)
	}
}

func (x *w) mapLen(n int) { x.length(n, 0x80, 0xde) }
func (x *w) arrLen(n int) { x.length(n, 0x90, 0xdc) }

// length writes a map or array header: fix is the fixed form's code, c16
// the 16-bit form's (the 32-bit form's is the next).
func (x *w) length(n int, fix, c16 byte) {
	switch {
	case n < 16:
		x.b = append(x.b, fix|byte(n))
	case n <= math.MaxUint16:
		x.b = append(x.b, c16, byte(n>>8), byte(n))
	default:
		x.b = append(x.b, c16+1, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// any writes a trait value: the JSON types inline, anything else through
// msgpack.Encoder.
func (x *w) any(v any) {
	switch v := v.(type) {
	case nil:
		x.b = append(x.b, 0xc0)
	case string:
		x.str(v)
	case float64:
		x.f64(v)
	case bool:
		x.boolean(v)
	case int64:
		x.i64(v)
	case int:
		x.i64(int64(v))
	default:
		if x.err == nil {
			x.err = x.other(v)
		}
	}
}

func (x *w) other(v any) error {
	ae := anyPool.Get().(*anyEncoder)
	defer anyPool.Put(ae)
	ae.buf.Reset()
	ae.enc.Reset(&ae.buf)
	ae.enc.UseCompactInts(true)
	if err := ae.enc.Encode(v); err != nil {
		return err
	}
	x.b = append(x.b, ae.buf.Bytes()...)
	return nil
}

func (x *w) ints(s []int64) {
	x.arrLen(len(s))
	for _, v := range s {
		x.i64(v)
	}
}
func (x *w) floats(s []float64) {
	x.arrLen(len(s))
	for _, v := range s {
		x.f64(v)
	}
}

// count returns how many of the flags are true: the size of a map whose
// optional keys are present.
func count(always int, optional ...bool) int {
	n := always
	for _, b := range optional {
		if b {
			n++
		}
	}
	return n
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (c *Contact) EncodeMsgpack(enc *msgpack.Encoder) error {
	b, err := encodeContact(c)
	if err != nil {
		return err
	}
	_, err = enc.Writer().Write(b)
	return err
}

// encode appends the contact to x.b.
func (c *Contact) encode(x *w) {
	x.mapLen(count(6, c.Stage != "", len(c.Traits) > 0, len(c.Windows) > 0, len(c.Points) > 0,
		len(c.Triggers) > 0, len(c.Timers) > 0, len(c.Caps) > 0, len(c.Merged) > 0, c.MergedInto != "",
		c.Applied != Position{}, c.Known, c.Pending != nil, len(c.Forwarded) > 0))
	x.str("v")
	x.i64(int64(c.V))
	x.str("id")
	x.str(c.ID)
	x.str("q")
	x.u64(c.Seq)
	x.str("t")
	x.i64(c.Latest)
	if c.Stage != "" {
		x.str("s")
		x.str(c.Stage)
	}
	if len(c.Traits) > 0 {
		x.str("tr")
		x.mapLen(len(c.Traits))
		for k, v := range c.Traits {
			x.str(k)
			x.any(v)
		}
	}
	if len(c.Windows) > 0 {
		x.str("w")
		x.arrLen(len(c.Windows))
		for i := range c.Windows {
			win := &c.Windows[i]
			x.mapLen(count(2, len(win.V) > 0, len(win.K) > 0, win.Dropped > 0))
			x.str("n")
			x.str(win.Name)
			x.str("t")
			x.ints(win.T)
			if len(win.V) > 0 {
				x.str("v")
				x.floats(win.V)
			}
			if len(win.K) > 0 {
				x.str("k")
				x.arrLen(len(win.K))
				for _, k := range win.K {
					x.str(k)
				}
			}
			if win.Dropped > 0 {
				x.str("x")
				x.u64(win.Dropped)
			}
		}
	}
	if len(c.Points) > 0 {
		x.str("p")
		x.arrLen(len(c.Points))
		for i := range c.Points {
			p := &c.Points[i]
			x.mapLen(count(3, len(p.LimT) > 0, len(p.LimP) > 0))
			x.str("n")
			x.str(p.Rule)
			x.str("v")
			x.f64(p.Value)
			x.str("a")
			x.i64(p.AsOf)
			if len(p.LimT) > 0 {
				x.str("lt")
				x.ints(p.LimT)
			}
			if len(p.LimP) > 0 {
				x.str("lp")
				x.floats(p.LimP)
			}
		}
	}
	if len(c.Triggers) > 0 {
		x.str("g")
		x.arrLen(len(c.Triggers))
		for i := range c.Triggers {
			t := &c.Triggers[i]
			x.mapLen(count(2, t.On, t.Fired > 0, len(t.Steps) > 0))
			x.str("n")
			x.str(t.ID)
			if t.On {
				x.str("o")
				x.boolean(true)
			}
			x.str("l")
			x.i64(t.Last)
			if t.Fired > 0 {
				x.str("f")
				x.u64(t.Fired)
			}
			if len(t.Steps) > 0 {
				x.str("s")
				x.ints(t.Steps)
			}
		}
	}
	if len(c.Timers) > 0 {
		x.str("m")
		x.arrLen(len(c.Timers))
		for _, t := range c.Timers {
			x.mapLen(3)
			x.str("n")
			x.str(t.Trigger)
			x.str("d")
			x.i64(t.Due)
			x.str("s")
			x.u64(t.Set)
		}
	}
	if len(c.Caps) > 0 {
		x.str("c")
		x.arrLen(len(c.Caps))
		for _, cp := range c.Caps {
			x.mapLen(2)
			x.str("n")
			x.str(cp.Action)
			x.str("t")
			x.ints(cp.T)
		}
	}
	if len(c.Merged) > 0 {
		x.str("mi")
		x.arrLen(len(c.Merged))
		for _, id := range c.Merged {
			x.str(id)
		}
	}
	if c.MergedInto != "" {
		x.str("mt")
		x.str(c.MergedInto)
	}
	if c.Known {
		x.str("kn")
		x.boolean(true)
	}
	if pl := c.Pending; pl != nil {
		x.str("pl")
		x.pending(pl)
	}
	if len(c.Forwarded) > 0 {
		x.str("fw")
		x.arrLen(len(c.Forwarded))
		for _, f := range c.Forwarded {
			x.pos(f)
		}
	}
	x.str("d")
	x.mapLen(count(0, len(c.Seen.H) > 0, c.Seen.Pos != 0))
	if len(c.Seen.H) > 0 {
		x.str("h")
		x.arrLen(len(c.Seen.H))
		for _, h := range c.Seen.H {
			x.u64(h)
		}
	}
	if c.Seen.Pos != 0 {
		x.str("p")
		x.i64(int64(c.Seen.Pos))
	}
	x.str("o")
	x.mapLen(2)
	x.str("p")
	x.i64(int64(c.Pos.Partition))
	x.str("o")
	x.i64(c.Pos.Offset)
	if c.Applied != (Position{}) {
		x.str("a")
		x.mapLen(2)
		x.str("p")
		x.i64(int64(c.Applied.Partition))
		x.str("o")
		x.i64(c.Applied.Offset)
	}
}

func (x *w) pos(p Position) {
	x.mapLen(2)
	x.str("p")
	x.i64(int64(p.Partition))
	x.str("o")
	x.i64(p.Offset)
}

func (x *r) pos() Position {
	var p Position
	x.fields(func(k string) bool {
		switch k {
		case "p":
			p.Partition = int32(x.i64())
		case "o":
			p.Offset = x.i64()
		default:
			return false
		}
		return true
	})
	return p
}

// pending writes a pending link; "n" (Then) only when it has links queued,
// so that a blob without one is what it was before Then existed.
func (x *w) pending(pl *PendingLink) {
	n := 5
	if len(pl.Then) > 0 {
		n++
	}
	x.mapLen(n)
	x.str("k")
	x.pos(pl.Link)
	x.str("t")
	x.i64(pl.Time)
	x.str("i")
	x.arrLen(len(pl.IDs))
	for _, id := range pl.IDs {
		x.str(id)
	}
	x.str("c")
	x.i64(int64(pl.Conflict))
	x.str("l")
	x.boolean(pl.Late)
	if len(pl.Then) > 0 {
		x.str("n")
		x.arrLen(len(pl.Then))
		for i := range pl.Then {
			x.pending(&pl.Then[i])
		}
	}
}

// pending reads a pending link; a queued one (top false) has no Then of
// its own, so a corrupt blob cannot nest them deeper.
func (x *r) pending(top bool) *PendingLink {
	pl := &PendingLink{}
	x.fields(func(k string) bool {
		switch k {
		case "k":
			pl.Link = x.pos()
		case "t":
			pl.Time = x.i64()
		case "i":
			pl.IDs = make([]string, x.arrLen())
			for i := range pl.IDs {
				pl.IDs[i] = x.str()
			}
		case "c":
			pl.Conflict = int(x.i64())
		case "l":
			pl.Late = x.boolean()
		case "n":
			if !top {
				return false
			}
			pl.Then = make([]PendingLink, x.arrLen())
			for i := range pl.Then {
				if q := x.pending(false); q != nil {
					pl.Then[i] = *q
				}
			}
		default:
			return false
		}
		return true
	})
	return pl
}

// r reads with the first error kept, and bounds every declared length by
// the bytes of the blob so that a corrupt length cannot allocate more than
// the blob could hold.
type r struct {
	dec   *msgpack.Decoder
	limit int
	err   error
}

func (x *r) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

func (x *r) length(n int, err error) int {
	if err != nil {
		x.fail(err)
		return 0
	}
	if n > x.limit {
		x.fail(fmt.Errorf("%w: a length of %d in a %d-byte blob", errCorrupt, n, x.limit))
		return 0
	}
	if n < 0 { // nil
		return 0
	}
	return n
}

func (x *r) mapLen() int {
	if x.err != nil {
		return 0
	}
	return x.length(x.dec.DecodeMapLen())
}

func (x *r) arrLen() int {
	if x.err != nil {
		return 0
	}
	return x.length(x.dec.DecodeArrayLen())
}

func (x *r) str() string {
	if x.err != nil {
		return ""
	}
	s, err := x.dec.DecodeString()
	x.fail(err)
	return s
}

func (x *r) i64() int64 {
	if x.err != nil {
		return 0
	}
	n, err := x.dec.DecodeInt64()
	x.fail(err)
	return n
}

func (x *r) u64() uint64 {
	if x.err != nil {
		return 0
	}
	n, err := x.dec.DecodeUint64()
	x.fail(err)
	return n
}

func (x *r) f64() float64 {
	if x.err != nil {
		return 0
	}
	f, err := x.dec.DecodeFloat64()
	x.fail(err)
	return f
}

func (x *r) boolean() bool {
	if x.err != nil {
		return false
	}
	b, err := x.dec.DecodeBool()
	x.fail(err)
	return b
}

func (x *r) any() any {
	if x.err != nil {
		return nil
	}
	v, err := x.dec.DecodeInterface()
	x.fail(err)
	return v
}

func (x *r) skip() {
	if x.err == nil {
		x.fail(x.dec.Skip())
	}
}

func (x *r) ints() []int64 {
	n := x.arrLen()
	if n == 0 {
		return nil
	}
	s := make([]int64, n)
	for i := range s {
		s[i] = x.i64()
	}
	return s
}

func (x *r) floats() []float64 {
	n := x.arrLen()
	if n == 0 {
		return nil
	}
	s := make([]float64, n)
	for i := range s {
		s[i] = x.f64()
	}
	return s
}

// fields calls f for each key of a map, skipping what f does not read.
func (x *r) fields(f func(key string) bool) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		if k := x.str(); !f(k) {
			x.skip()
		}
	}
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (c *Contact) DecodeMsgpack(dec *msgpack.Decoder) error {
	return c.decode(dec, decodeLimit)
}

// decode reads a contact; limit bounds every declared length (Decode passes
// the blob's size).
func (c *Contact) decode(dec *msgpack.Decoder, limit int) error {
	x := &r{dec: dec, limit: limit}
	x.fields(func(k string) bool {
		switch k {
		case "v":
			c.V = int(x.i64())
		case "id":
			c.ID = x.str()
		case "q":
			c.Seq = x.u64()
		case "t":
			c.Latest = x.i64()
		case "s":
			c.Stage = x.str()
		case "tr":
			n := x.mapLen()
			if n > 0 {
				c.Traits = make(map[string]any, n)
			}
			for i := 0; i < n && x.err == nil; i++ {
				key := x.str()
				c.Traits[key] = jsonNumber(x.any())
			}
		case "w":
			c.Windows = make([]Window, x.arrLen())
			for i := range c.Windows {
				win := &c.Windows[i]
				x.fields(func(k string) bool {
					switch k {
					case "n":
						win.Name = x.str()
					case "t":
						win.T = x.ints()
					case "v":
						win.V = x.floats()
					case "k":
						win.K = make([]string, x.arrLen())
						for j := range win.K {
							win.K[j] = x.str()
						}
					case "x":
						win.Dropped = x.u64()
					default:
						return false
					}
					return true
				})
			}
		case "p":
			c.Points = make([]Points, x.arrLen())
			for i := range c.Points {
				p := &c.Points[i]
				x.fields(func(k string) bool {
					switch k {
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
						return false
					}
					return true
				})
			}
		case "g":
			c.Triggers = make([]Trigger, x.arrLen())
			for i := range c.Triggers {
				t := &c.Triggers[i]
				x.fields(func(k string) bool {
					switch k {
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
						return false
					}
					return true
				})
			}
		case "m":
			c.Timers = make([]Timer, x.arrLen())
			for i := range c.Timers {
				t := &c.Timers[i]
				x.fields(func(k string) bool {
					switch k {
					case "n":
						t.Trigger = x.str()
					case "d":
						t.Due = x.i64()
					case "s":
						t.Set = x.u64()
					default:
						return false
					}
					return true
				})
			}
		case "c":
			c.Caps = make([]Cap, x.arrLen())
			for i := range c.Caps {
				cp := &c.Caps[i]
				x.fields(func(k string) bool {
					switch k {
					case "n":
						cp.Action = x.str()
					case "t":
						cp.T = x.ints()
					default:
						return false
					}
					return true
				})
			}
		case "mi":
			c.Merged = make([]string, x.arrLen())
			for i := range c.Merged {
				c.Merged[i] = x.str()
			}
		case "mt":
			c.MergedInto = x.str()
		case "kn":
			c.Known = x.boolean()
		case "pl":
			c.Pending = x.pending(true)
		case "fw":
			c.Forwarded = make([]Position, x.arrLen())
			for i := range c.Forwarded {
				c.Forwarded[i] = x.pos()
			}
		case "d":
			x.fields(func(k string) bool {
				switch k {
				case "h":
					c.Seen.H = make([]uint64, x.arrLen())
					for i := range c.Seen.H {
						c.Seen.H[i] = x.u64()
					}
				case "p":
					c.Seen.Pos = int(x.i64())
				default:
					return false
				}
				return true
			})
		case "o":
			x.fields(func(k string) bool {
				switch k {
				case "p":
					c.Pos.Partition = int32(x.i64())
				case "o":
					c.Pos.Offset = x.i64()
				default:
					return false
				}
				return true
			})
		case "a":
			x.fields(func(k string) bool {
				switch k {
				case "p":
					c.Applied.Partition = int32(x.i64())
				case "o":
					c.Applied.Offset = x.i64()
				default:
					return false
				}
				return true
			})
		default:
			return false
		}
		return true
	})
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
	return x.err
}

// jsonNumber gives integers read back from msgpack the float64 type that
// every number in an event has (see package event), so that rules see the
// same types in stored traits as in fresh ones.
func jsonNumber(v any) any {
	switch n := v.(type) {
	case int8:
		return float64(n)
	case int16:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case uint8:
		return float64(n)
	case uint16:
		return float64(n)
	case uint32:
		return float64(n)
	case uint64:
		return float64(n)
	case float32:
		return float64(n)
	}
	return v
}

// decodeLimit bounds declared lengths when the blob's size is not known
// (DecodeMsgpack called by msgpack itself).
const decodeLimit = 64 << 20
