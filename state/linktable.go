package state

import (
	"hash/maphash"
	"unsafe"

	"github.com/leadpulse/leadpulse/internal/prefetch"
)

// linkTable holds MemoryLinks' facts, both kept per id: the user an
// anonymous id is linked to, and whether the id has been a userId. Open
// addressing with linear probing, as the memory store's index (index.go)
// and for the same reason: an event asks it once or twice (Owner, Known),
// and with tens of thousands of ids each lookup of a Go map is two cache
// misses in a row (the slot's group, the key's bytes) that nothing can
// ask for ahead. Here a slot's place follows from the id's hash, so a
// driver that knows its next events asks for their slots, then for the
// ids' and owners' bytes (prefetch), before it looks anything up.
type linkTable struct {
	seed  maphash.Seed
	slots []lslot // a power of two long, at most half full
	n     int     // slots in use
	links int     // slots with an owner
}

// lslot is one id's facts; h is the id's hash with its low bit set, 0 for
// an empty slot. A slot with no owner and not known is removed.
type lslot struct {
	h     uint64
	id    string
	owner string
	known bool
}

func newLinkTable() linkTable { return linkTable{seed: maphash.MakeSeed()} }

func (t *linkTable) hash(id string) uint64 { return maphash.String(t.seed, id) | 1 }

// find returns the index of id's slot, or -1.
func (t *linkTable) find(h uint64, id string) int {
	if t.n == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.h == 0 {
			return -1
		}
		if s.h == h && s.id == id {
			return int(i)
		}
	}
}

// put returns id's slot, made (empty of facts) if there was none.
func (t *linkTable) put(id string) *lslot {
	h := t.hash(id)
	if k := t.find(h, id); k >= 0 {
		return &t.slots[k]
	}
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].h != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = lslot{h: h, id: id}
	t.n++
	return &t.slots[i]
}

func (t *linkTable) grow() {
	old := t.slots
	t.slots = make([]lslot, max(64, 2*len(old)))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.h == 0 {
			continue
		}
		i := s.h & mask
		for t.slots[i].h != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// drop removes the slot at i if it holds no fact any more. The slots after
// it move back (backward-shift deletion), so that no probe stops early at
// the hole.
func (t *linkTable) drop(i uint64) {
	if s := &t.slots[i]; s.owner != "" || s.known {
		return
	}
	mask := uint64(len(t.slots) - 1)
	for j := (i + 1) & mask; t.slots[j].h != 0; j = (j + 1) & mask {
		home := t.slots[j].h & mask
		// Move slot j into the hole at i unless its home lies
		// cyclically in (i, j]: then it must stay after i.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = lslot{}
	t.n--
}

func (t *linkTable) owner(anon string) string {
	if k := t.find(t.hash(anon), anon); k >= 0 {
		return t.slots[k].owner
	}
	return ""
}

func (t *linkTable) known(id string) bool {
	k := t.find(t.hash(id), id)
	return k >= 0 && t.slots[k].known
}

func (t *linkTable) markKnown(id string) {
	if k := t.find(t.hash(id), id); k >= 0 && t.slots[k].known {
		return
	}
	t.put(id).known = true
}

func (t *linkTable) link(anon, user string) {
	s := t.put(anon)
	if s.owner == "" {
		t.links++
	}
	s.owner = user
}

func (t *linkTable) unlink(anon string) {
	k := t.find(t.hash(anon), anon)
	if k < 0 || t.slots[k].owner == "" {
		return
	}
	t.slots[k].owner = ""
	t.links--
	t.drop(uint64(k))
}

func (t *linkTable) forget(id string) {
	k := t.find(t.hash(id), id)
	if k < 0 || !t.slots[k].known {
		return
	}
	t.slots[k].known = false
	t.drop(uint64(k))
}

// prefetch asks for what looking up the ids will read: their slots first,
// then, for the slots whose hash matches, the stored id's and owner's
// bytes (a collision costs a prefetch). It changes nothing.
func (t *linkTable) prefetch(ids []string) {
	if t.n == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	var hs [32]uint64
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), len(hs))]
		ids = ids[len(chunk):]
		for k, id := range chunk {
			h := t.hash(id)
			hs[k] = h
			prefetch.Lines(unsafe.Pointer(&t.slots[h&mask]), unsafe.Sizeof(lslot{}))
		}
		for _, h := range hs[:len(chunk)] {
			for i := h & mask; ; i = (i + 1) & mask {
				s := &t.slots[i]
				if s.h == 0 {
					break
				}
				if s.h == h {
					prefetch.String(s.id)
					prefetch.String(s.owner)
					break
				}
			}
		}
	}
}
