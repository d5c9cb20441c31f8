package state

import (
	"unsafe"

	"github.com/leadpulse/leadpulse/internal/prefetch"
)

// Prefetching a contact's state (see package prefetch).
//
// With tens of thousands of contacts in memory, most of an event's cost in
// the engine is waiting for its contact's state to come from main memory:
// its fields, its per-rule slots, its window entries and remembered
// messageIds are a few dozen cache lines in several allocations. A driver
// that knows its next events (replay reads ahead) asks for their contacts'
// lines first, for several contacts at once. The three stages follow the
// pointers, each reading only what the stage before asked for: a driver
// calls PrefetchHead on every contact of its batch, then PrefetchSlots on
// every one, then PrefetchEntries. Nothing changes.

// headBytes are the contact's fields every event reads: from the start
// through the store note (Contact.home).
var headBytes = unsafe.Offsetof(Contact{}.home) + unsafe.Sizeof(Contact{}.home)

// maxPrefetch bounds the bytes of one slice asked for at once.
const maxPrefetch = 2048

// PrefetchHead asks for the contact's own fields and its id's bytes (the
// store's lookup compares them).
func (c *Contact) PrefetchHead() {
	prefetch.Lines(unsafe.Pointer(c), headBytes)
	// Live sits beyond the head (in padding): its line is the head's
	// last one or the next.
	prefetch.Lines(unsafe.Pointer(&c.Live), unsafe.Sizeof(c.Live))
	prefetch.String(c.ID)
}

// PrefetchSlots asks for the contact's per-rule slots that hold state
// (windows, points and triggers: the rules engine reads no other unless
// the event goes in, Contact.Live; caps are read only when an action is
// emitted), its remembered messageIds and its pending timers.
func (c *Contact) PrefetchSlots() {
	live(c.Windows, c.Live.W)
	live(c.Points, c.Live.P)
	live(c.Triggers, c.Live.T)
	prefetch.Slice(c.Seen.H, maxPrefetch)
	prefetch.Slice(c.Timers, maxPrefetch)
}

// live asks for the slots of s that m says may hold state.
func live[T any](s []T, m LiveMask) {
	if len(s) > liveBits {
		prefetch.Slice(s, maxPrefetch)
		return
	}
	for i := range s {
		if m.Has(i) {
			prefetch.Lines(unsafe.Pointer(&s[i]), unsafe.Sizeof(s[i]))
		}
	}
}

// PrefetchEntries asks for the entries of the contact's windows and the
// awards of its scoring rules' limits.
func (c *Contact) PrefetchEntries() {
	const front = 256
	for i := range c.Windows {
		if !c.Live.W.Has(i) {
			continue
		}
		w := &c.Windows[i]
		prefetch.Ends(w.T, front)
		prefetch.Ends(w.V, front)
		prefetch.Ends(w.K, front)
	}
	for i := range c.Points {
		if !c.Live.P.Has(i) {
			continue
		}
		if p := &c.Points[i]; len(p.LimT) > 0 {
			prefetch.Slice(p.LimT, maxPrefetch)
			prefetch.Slice(p.LimP, maxPrefetch)
		}
	}
}
