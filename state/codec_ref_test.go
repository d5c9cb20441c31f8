package state

// The decoder that read blobs before decode.go: on msgpack's Decoder, kept
// as the reference the byte-slice decoder is compared with (codec_diff_test.go).

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// refDecode is Decode as it was, on the reference decoder.
func refDecode(b []byte) (*Contact, error) {
	c := new(Contact)
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	if err := c.refDecode(dec, len(b)); err != nil {
		return nil, fmt.Errorf("state: decode contact blob (%d bytes): %w", len(b), err)
	}
	if c.V > Version {
		return nil, fmt.Errorf("%w (blob version %d, known %d)", ErrVersion, c.V, Version)
	}
	if c.V == 0 && c.ID == "" {
		return nil, fmt.Errorf("state: decode contact blob (%d bytes): no version and no id: not a leadpulse contact", len(b))
	}
	c.V = Version
	return c, nil
}

func (x *ref) pos() Position {
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

// pending reads a pending link; a queued one (top false) has no Then of
// its own, so a corrupt blob cannot nest them deeper.
func (x *ref) pending(top bool) *PendingLink {
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
type ref struct {
	dec   *msgpack.Decoder
	limit int
	err   error
}

func (x *ref) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

func (x *ref) length(n int, err error) int {
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

func (x *ref) mapLen() int {
	if x.err != nil {
		return 0
	}
	return x.length(x.dec.DecodeMapLen())
}

func (x *ref) arrLen() int {
	if x.err != nil {
		return 0
	}
	return x.length(x.dec.DecodeArrayLen())
}

func (x *ref) str() string {
	if x.err != nil {
		return ""
	}
	s, err := x.dec.DecodeString()
	x.fail(err)
	return s
}

func (x *ref) i64() int64 {
	if x.err != nil {
		return 0
	}
	n, err := x.dec.DecodeInt64()
	x.fail(err)
	return n
}

func (x *ref) u64() uint64 {
	if x.err != nil {
		return 0
	}
	n, err := x.dec.DecodeUint64()
	x.fail(err)
	return n
}

func (x *ref) f64() float64 {
	if x.err != nil {
		return 0
	}
	f, err := x.dec.DecodeFloat64()
	x.fail(err)
	return f
}

func (x *ref) boolean() bool {
	if x.err != nil {
		return false
	}
	b, err := x.dec.DecodeBool()
	x.fail(err)
	return b
}

func (x *ref) any() any {
	if x.err != nil {
		return nil
	}
	// One change from the decoder it was: the value is stepped over
	// first (Skip, which allocates nothing), so that a corrupt length
	// inside it fails instead of making msgpack allocate what it says (a
	// map of 2^31 entries crashed the process; see decode.go's trait).
	raw, err := x.dec.DecodeRaw()
	if err != nil {
		x.fail(err)
		return nil
	}
	v, err := msgpack.NewDecoder(bytes.NewReader(raw)).DecodeInterface()
	x.fail(err)
	return v
}

func (x *ref) skip() {
	if x.err == nil {
		x.fail(x.dec.Skip())
	}
}

func (x *ref) ints() []int64 {
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

func (x *ref) floats() []float64 {
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
func (x *ref) fields(f func(key string) bool) {
	n := x.mapLen()
	for i := 0; i < n && x.err == nil; i++ {
		if k := x.str(); !f(k) {
			x.skip()
		}
	}
}

// decode reads a contact; limit bounds every declared length (Decode passes
// the blob's size).
func (c *Contact) refDecode(dec *msgpack.Decoder, limit int) error {
	x := &ref{dec: dec, limit: limit}
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
