package state

import (
	"hash/maphash"
	"unsafe"

	"github.com/leadpulse/leadpulse/internal/prefetch"
)

// index is the Memory store's table from contact id to contact: open
// addressing with linear probing, each slot the id's hash and the contact.
// Why not a Go map: its lookups cannot be prefetched, and with tens of
// thousands of contacts each is two cache misses (the slot's group, then
// the key's bytes) on every event. Here a slot's place follows from the
// hash alone, so a driver that knows its next events asks for their slots
// first (peek), and the id compared is the contact's own (its bytes sit
// beside its fields: New), which the event reads anyway.
type index struct {
	seed  maphash.Seed
	slots []islot // a power of two long, at most half full
	n     int
}

// islot is one slot: h is the id's hash with its low bit set, 0 for an
// empty slot.
type islot struct {
	h uint64
	c *Contact
}

func newIndex() index { return index{seed: maphash.MakeSeed()} }

func (x *index) hash(id string) uint64 { return maphash.String(x.seed, id) | 1 }

// get returns the contact with this id (whose hash is h), or nil.
func (x *index) get(h uint64, id string) *Contact {
	if x.n == 0 {
		return nil
	}
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.h == 0 {
			return nil
		}
		if s.h == h && s.c.ID == id {
			return s.c
		}
	}
}

// set makes c the contact under its id (whose hash is h).
func (x *index) set(h uint64, c *Contact) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow()
	}
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.h == 0 {
			*s = islot{h: h, c: c}
			x.n++
			return
		}
		if s.h == h && s.c.ID == c.ID {
			s.c = c
			return
		}
	}
}

func (x *index) grow() {
	old := x.slots
	x.slots = make([]islot, max(64, 2*len(old)))
	x.n = 0
	for _, s := range old {
		if s.h != 0 {
			x.set(s.h, s.c)
		}
	}
}

// remove removes the contact with this id (whose hash is h) and returns
// it, or nil. The slots after it move back (backward-shift deletion), so
// that no probe stops early at the hole.
func (x *index) remove(h uint64, id string) *Contact {
	if x.n == 0 {
		return nil
	}
	mask := uint64(len(x.slots) - 1)
	i := h & mask
	for {
		s := &x.slots[i]
		if s.h == 0 {
			return nil
		}
		if s.h == h && s.c.ID == id {
			break
		}
		i = (i + 1) & mask
	}
	c := x.slots[i].c
	for j := (i + 1) & mask; x.slots[j].h != 0; j = (j + 1) & mask {
		home := x.slots[j].h & mask
		// Move slot j into the hole at i unless its home lies
		// cyclically in (i, j]: then it must stay after i.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = islot{}
	x.n--
	return c
}

// peek appends to cs the contacts that the ids most likely name, and
// prefetches their fields (Contact.PrefetchHead): it asks for every id's
// slot first, then compares hashes only (a collision costs a prefetch).
// With exact it compares the ids too (each contact's id, which never
// changes, against the id asked for), so that it returns only contacts held
// under one of ids: a caller that owns those contacts reads nothing of a
// contact another goroutine changes (Memory.Peek).
func (x *index) peek(ids []string, cs []*Contact, exact bool) []*Contact {
	if x.n == 0 {
		return cs
	}
	mask := uint64(len(x.slots) - 1)
	var hs [32]uint64
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), len(hs))]
		ids = ids[len(chunk):]
		for k, id := range chunk {
			h := x.hash(id)
			hs[k] = h
			prefetch.Lines(unsafe.Pointer(&x.slots[h&mask]), unsafe.Sizeof(islot{}))
		}
		for k, h := range hs[:len(chunk)] {
			for i := h & mask; ; i = (i + 1) & mask {
				s := &x.slots[i]
				if s.h == 0 {
					break
				}
				if s.h == h && (!exact || s.c.ID == chunk[k]) {
					s.c.PrefetchHead()
					cs = append(cs, s.c)
					break
				}
			}
		}
	}
	return cs
}
