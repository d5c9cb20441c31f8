package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The contact's msgpack form, written by hand (decode.go reads it).
//
// The wire format is the one the struct tags describe — a map with short
// keys at every level — so blobs written by the reflection-based encoder
// and by this code read the same, and a decoder skips keys it does not know
// (a later version's fields). Writing it by hand is what makes a contact
// cheap to store: reflection over the nested slices costs several times the
// time and allocations of this code for a typical B2B contact
// (BenchmarkCodecReflect, the baseline, against BenchmarkCodecB2B; on the
// 2-core dev machine 111 µs against 25 µs to encode; decoding, see
// decode.go).

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
