package state

import "unsafe"

// Prefetching a contact's state.
//
// With tens of thousands of contacts in memory, most of an event's cost in
// the engine is waiting for the contact's state to come from main memory:
// its fields, its per-rule slots, its window entries and remembered
// messageIds are a few dozen cache lines in several allocations, each a
// miss. A driver that knows the next events (replay reads ahead; a stream
// worker has a batch) can ask for those lines first, for several contacts
// at once, so that the misses overlap each other and the events' work
// instead of following one another. The three stages follow the pointers:
// each reads only what the stage before it asked for, so a driver calls
// PrefetchHead on every contact of its batch, then PrefetchSlots on every
// one, then PrefetchEntries. A prefetch changes nothing and never faults:
// where the processor has no prefetch instruction it does nothing.

// headBytes are the contact's fields every event reads: from the start
// through the store note (Contact.home).
var headBytes = unsafe.Offsetof(Contact{}.home) + unsafe.Sizeof(Contact{}.home)

// PrefetchHead asks for the contact's own fields.
func (c *Contact) PrefetchHead() {
	prefetchLines(unsafe.Pointer(c), headBytes)
}

// PrefetchSlots asks for the contact's per-rule slots (windows, points and
// triggers; caps are read only when an action is emitted), its remembered
// messageIds and its pending timers.
func (c *Contact) PrefetchSlots() {
	prefetchSlice(c.Windows, 0)
	prefetchSlice(c.Points, 0)
	prefetchSlice(c.Triggers, 0)
	prefetchSlice(c.Seen.H, maxPrefetch)
	prefetchSlice(c.Timers, 0)
}

// PrefetchEntries asks for the entries of the contact's windows and the
// awards of its scoring rules' limits.
func (c *Contact) PrefetchEntries() {
	for i := range c.Windows {
		w := &c.Windows[i]
		prefetchEnds(w.T)
		prefetchEnds(w.V)
		prefetchEnds(w.K)
	}
	for i := range c.Points {
		if p := &c.Points[i]; len(p.LimT) > 0 {
			prefetchSlice(p.LimT, 0)
			prefetchSlice(p.LimP, 0)
		}
	}
}

// maxPrefetch bounds the bytes of one slice asked for at once.
const maxPrefetch = 2048

// prefetchSlice asks for s's elements, at most limit bytes of them (0: no
// limit beyond maxPrefetch).
func prefetchSlice[T any](s []T, limit uintptr) {
	if len(s) == 0 {
		return
	}
	n := uintptr(len(s)) * unsafe.Sizeof(s[0])
	if limit == 0 {
		limit = maxPrefetch
	}
	prefetchLines(unsafe.Pointer(unsafe.SliceData(s)), min(n, limit))
}

// prefetchEnds asks for the first and last entries of a window's slice:
// pruning reads it from the front, adding writes at the back.
func prefetchEnds[T any](s []T) {
	if len(s) == 0 {
		return
	}
	const front = 256
	size := unsafe.Sizeof(s[0])
	n := uintptr(len(s)) * size
	p := unsafe.Pointer(unsafe.SliceData(s))
	if n <= 2*front {
		prefetchLines(p, n)
		return
	}
	prefetchLines(p, front)
	prefetchLines(unsafe.Add(p, n-size), size)
}
