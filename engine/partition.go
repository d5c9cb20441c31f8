// Package engine drives the rules over one ordered stream of events: the one
// engine that replay, rules tests, dev, run and bench all share. Only the
// clock and the I/O around it differ between them.
//
// A Partition owns a clock (the highest event time it has read) and an index
// of pending timers. Before an event that moves the clock is applied, every
// timer due at or before the new clock fires, in due-time order and, at one
// due time, in the order the timers were set (SPEC §2). Live drivers also
// move the clock with Advance when a caught-up partition's wall clock passes
// a due time.
package engine

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/internal/prefetch"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// ErrDiverged is wrapped by an error after which the partition's contacts in
// memory can no longer be trusted: the store refused a contact the engine
// had already changed (state.Store.Put failed, which the Store contract
// forbids). Retrying would apply the event twice or lose it and its
// actions, so drivers must not retry it: they drop the partition's state
// and start again from what the store last committed.
var ErrDiverged = errors.New("engine: a contact changed in memory but the store did not take it")

// Emit receives what each applied event or fired timer produced. The Result
// is reused after Emit returns.
type Emit func(*rules.Result)

// Partition applies one ordered stream of events to contact state. It is not
// safe for concurrent use: one goroutine owns it.
type Partition struct {
	ev      *rules.Evaluator
	store   state.Store
	emit    Emit
	clock   int64
	timers  timerHeap
	order   uint64
	skipped uint64 // records ApplyAt found already applied

	// Identity (see identity.go): nil links until UseLinks; then every
	// event is resolved through them.
	links    state.Links
	ident    *rules.Identity
	held     func(contact string) bool // live: contacts whose timers wait (UseLiveLinks)
	deferred []timerRef
	hintSlot []int // by trigger: its slot in state.Contact.Hints, -1 for none
	// droppedLinks counts linking events not queued behind a late link
	// (MaxQueuedLinks, live.go).
	droppedLinks uint64
	// ahead is Prefetch's scratch: the contacts of the events it reads
	// ahead.
	ahead    []*state.Contact
	aheadIDs []string
}

// NewPartition returns a partition driver over store. emit may be nil.
func NewPartition(rs *rules.Ruleset, store state.Store, emit Emit) *Partition {
	if emit == nil {
		emit = func(*rules.Result) {}
	}
	return &Partition{ev: rs.NewEvaluator(), store: store, emit: emit, clock: state.NoTime}
}

// Stats returns the evaluator's counters.
func (p *Partition) Stats() *rules.Stats { return &p.ev.Stats }

// Clock returns the highest event time read, or state.NoTime.
func (p *Partition) Clock() int64 { return p.clock }

// PendingTimers returns the number of timers indexed (some may be stale).
func (p *Partition) PendingTimers() int { return p.timers.len() }

// NextDue returns the due time of the earliest indexed timer.
func (p *Partition) NextDue() (int64, bool) {
	if p.timers.len() == 0 {
		return 0, false
	}
	return p.timers.h[0].due, true
}

// Apply applies one resolved event: timers that the event's time makes due
// fire first, then (with UseLinks) the event's ids are linked and merged,
// then the event is applied to its contact. An event whose every id is
// blocked (identity.blocked) is bad input: Apply returns an *event.Error
// with ReasonNoContact and changes nothing. Replay and rules tests use
// Apply; a live driver, whose records have positions, uses ApplyAt.
//
// An error wrapping ErrDiverged is fatal for the partition's state. Any
// other store error came from a Get (the event, or a timer, could not load
// its contact); the event may have been applied already when the error
// came from a timer it made due, so only ApplyAt is safe to retry.
func (p *Partition) Apply(ctx context.Context, e *event.Event) error {
	return p.apply(ctx, e, nil)
}

// ApplyAt applies the event read at pos (the scoring stage's partition and
// the record's offset), unless the contact's state already contains it
// (state.Contact.Covers): a record read again after a crash or a rebalance,
// whose effect was committed before, is skipped, with or without a
// messageId; it still moves the clock, as it did the first time. A contact
// the record is applied to remembers pos (state.Contact.MarkApplied).
//
// Retrying ApplyAt with the same event and position after an error is
// safe, unless the error wraps ErrDiverged: a timer that could not load its
// contact stays due and fires at the next call, and the event is applied
// once, because its contact then covers pos.
func (p *Partition) ApplyAt(ctx context.Context, e *event.Event, pos state.Position) error {
	return p.apply(ctx, e, &pos)
}

// Skipped returns the number of records ApplyAt found already applied.
func (p *Partition) Skipped() uint64 { return p.skipped }

func (p *Partition) apply(ctx context.Context, e *event.Event, pos *state.Position) error {
	id := e.Contact()
	var user, anon string
	if p.links != nil {
		user, anon = p.ident.Usable(e.UserID, e.AnonymousID)
		if user == "" && anon == "" {
			return noUsableID(e)
		}
	}
	// Timers left due by a failed call (their contact could not be
	// loaded) fire before anything else, as they would have.
	if err := p.fireDue(ctx, p.clock); err != nil {
		return err
	}
	if p.clock == state.NoTime || e.Time > p.clock {
		if err := p.fireDue(ctx, e.Time); err != nil {
			return err
		}
		p.clock = e.Time
	}
	if p.links != nil {
		var err error
		if id, err = p.identify(ctx, e, user, anon); err != nil {
			return err
		}
	}
	c, err := p.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("engine: load contact %q: %w", id, err)
	}
	if pos != nil {
		if c.Covers(*pos) {
			p.skipped++
			return nil
		}
		c.MarkApplied(*pos)
	}
	res := p.ev.Apply(c, e)
	if !res.Duplicate {
		if err := p.store.Put(ctx, c); err != nil {
			return fmt.Errorf("%w: contact %q: %w", ErrDiverged, c.ID, err)
		}
		p.indexFor(c, res.Timers)
	}
	p.emit(res)
	// A late event can set a timer that is already due.
	return p.fireDue(ctx, p.clock)
}

// Prefetch asks the processor for the state of the contacts that the
// events es, which the caller is about to Apply in order, will most likely
// change (see state.Contact.PrefetchHead): an event's cost is mostly
// waiting for its contact's state to come from memory, and asking for
// several contacts' at once overlaps those waits. It changes nothing, and
// does nothing unless the store is a state.Peeker (memory). When the link
// table is a state.LinkPeeker (memory), an anonymous id is followed through
// it, and the lookups that identify will make for each event are made once
// ahead, one after the other, so that their misses overlap too. A guess
// that turns out wrong (an earlier event of the batch links or merges)
// costs only the prefetch. It reads the contacts' slices without a lock: call
// it only where no other goroutine changes the store's contacts meanwhile
// (replay; a partition with a store of its own). A live worker, whose
// store other partitions share, calls PrefetchContacts.
func (p *Partition) Prefetch(es []*event.Event) {
	pk, ok := p.store.(state.Peeker)
	if !ok || len(es) == 0 {
		return
	}
	var lp state.LinkPeeker
	if p.links != nil && p.ident.Merge {
		lp, _ = p.links.(state.LinkPeeker)
	}
	// One pass per pointer followed, so that the lookups and the misses
	// of one pass overlap each other: the contact's id (through the link
	// table), the contact, its fields, its slots, their entries.
	ids := p.aheadIDs[:0]
	for _, e := range es {
		id := e.UserID
		switch {
		case id == "":
			id = e.AnonymousID
			if lp != nil {
				if o := lp.PeekOwner(id); o != "" {
					id = o
				}
			}
		case lp != nil:
			// What identify reads for a user's event: whether the
			// user is known, and whom its anonymousId is linked to.
			lp.PeekKnown(id)
			if a := e.AnonymousID; a != "" && a != id {
				lp.PeekOwner(a)
			}
		}
		ids = append(ids, id)
	}
	p.prefetch(pk, ids)
	clear(ids)
	p.aheadIDs = ids[:0]
}

// PrefetchContacts is Prefetch for a driver that knows the contacts its
// next events are applied to: ids are their exact ids, in order (a live
// worker: ContactOf, or the user a forward goes to). With a store shared by
// several partitions' goroutines (state.Memory), it reads the fields of
// the contacts held under ids without a lock (Memory.Peek returns only
// those), so ids must be contacts this partition owns: the contacts of its
// Kafka partition, which no other goroutine changes. It changes nothing,
// and does nothing unless the store is a state.Peeker.
func (p *Partition) PrefetchContacts(ids []string) {
	if pk, ok := p.store.(state.Peeker); ok && len(ids) > 0 {
		p.prefetch(pk, ids)
	}
}

// prefetch asks for the state of the contacts held under ids, one pass per
// pointer followed (see Prefetch).
func (p *Partition) prefetch(pk state.Peeker, ids []string) {
	cs := pk.Peek(ids, p.ahead[:0])
	for _, c := range cs {
		c.PrefetchSlots()
		// The entries of the contact's timers in the heap (Hints).
		for _, h := range c.Hints {
			if k := int(h); k > 0 && k < len(p.timers.h) {
				prefetch.Lines(unsafe.Pointer(&p.timers.h[k]), unsafe.Sizeof(p.timers.h[k]))
			}
		}
	}
	for _, c := range cs {
		c.PrefetchEntries()
	}
	clear(cs)
	p.ahead = cs[:0]
}

// Advance moves the clock to t (if later) and fires the timers due by then.
func (p *Partition) Advance(ctx context.Context, t int64) error {
	if err := p.fireDue(ctx, t); err != nil {
		return err
	}
	if p.clock == state.NoTime || t > p.clock {
		p.clock = t
	}
	return nil
}

// AddTimer indexes a timer found in stored state (after a restart or a
// change of partition owner).
func (p *Partition) AddTimer(contact string, trigger string, due int64) {
	if i := p.ev.Ruleset().TriggerIndex(trigger); i >= 0 {
		p.push(contact, i, due)
	}
}

// indexFor indexes the timers an event set on c, through c's notes of
// where their heap entries are (state.Contact.Hints).
func (p *Partition) indexFor(c *state.Contact, ts []rules.TimerSet) {
	if len(ts) == 0 {
		return
	}
	if p.hintSlot == nil {
		p.hintSlot = hintSlots(p.ev.Ruleset(), len(c.Hints))
	}
	for _, t := range ts {
		p.order++
		r := timerRef{due: t.Due, order: p.order, key: timerKey{t.Contact, t.Trigger}}
		if k := p.hintSlot[t.Trigger]; k >= 0 && t.Contact == c.ID {
			p.timers.setHinted(r, &c.Hints[k])
		} else {
			p.timers.set(r)
		}
	}
}

// hintSlots gives the first n timer triggers (absence, inactive) of rs a
// slot of state.Contact.Hints each, by trigger index; -1 for none.
func hintSlots(rs *rules.Ruleset, n int) []int {
	slots := make([]int, len(rs.Triggers))
	k := 0
	for i, t := range rs.Triggers {
		slots[i] = -1
		if (t.Kind == rules.Absence || t.Kind == rules.Inactive) && k < n {
			slots[i] = k
			k++
		}
	}
	return slots
}

func (p *Partition) push(contact string, trigger int, due int64) {
	p.order++
	p.timers.set(timerRef{due: due, order: p.order, key: timerKey{contact, trigger}})
}

func (p *Partition) fireDue(ctx context.Context, upTo int64) error {
	if p.held != nil {
		defer p.restoreHeld()
	}
	for p.timers.len() > 0 && p.timers.h[0].due <= upTo {
		t := p.timers.pop()
		if t.moved {
			p.timers.set(timerRef{due: t.next, order: t.nextOrder, key: t.key})
			continue
		}
		if p.held != nil && p.held(t.key.contact) {
			p.deferred = append(p.deferred, t) // fires after the contact's held events
			continue
		}
		c, err := p.store.Get(ctx, t.key.contact)
		if err != nil {
			p.timers.set(t) // try again on the next call
			return fmt.Errorf("engine: load contact %q for a timer: %w", t.key.contact, err)
		}
		res := p.ev.Fire(c, t.key.trigger, t.due)
		if !res.Fired {
			continue // stale: restarted, cancelled or erased
		}
		if err := p.store.Put(ctx, c); err != nil {
			return fmt.Errorf("%w: contact %q (a fired timer): %w", ErrDiverged, c.ID, err)
		}
		p.emit(res)
	}
	return nil
}

// restoreHeld puts back the timers of held contacts that fireDue passed.
func (p *Partition) restoreHeld() {
	for _, t := range p.deferred {
		p.timers.set(t)
	}
	clear(p.deferred)
	p.deferred = p.deferred[:0]
}

type timerKey struct {
	contact string
	trigger int
}

type timerRef struct {
	due   int64
	order uint64
	key   timerKey

	// A timer moved later (an inactivity timer moves on every event) keeps
	// its place in the heap and notes where it moved; it takes its new
	// place when its old due time comes. That saves a sift per event.
	moved     bool
	next      int64
	nextOrder uint64
}

// timerHeap is a min-heap of timers by (due, order), indexed by key so that
// a restarted timer (an inactivity timer moves on every event) replaces its
// entry instead of adding one: the heap holds at most one entry per contact
// and trigger.
type timerHeap struct {
	h   []timerRef
	pos map[timerKey]int
}

func (t *timerHeap) len() int { return len(t.h) }

func (t *timerHeap) less(i, j int) bool {
	if t.h[i].due != t.h[j].due {
		return t.h[i].due < t.h[j].due
	}
	return t.h[i].order < t.h[j].order
}

func (t *timerHeap) swap(i, j int) {
	t.h[i], t.h[j] = t.h[j], t.h[i]
	t.pos[t.h[i].key] = i
	t.pos[t.h[j].key] = j
}

// set adds the timer, or moves the key's existing entry.
func (t *timerHeap) set(r timerRef) {
	t.setHinted(r, nil)
}

// setHinted is set with a note of where the key's entry may be in the heap
// (state.Contact.Hints). The note is checked against the entry's key before
// use, so a stale one (the entry fired or moved in the heap, the contact was
// reloaded, the note is another partition's) only costs the map lookup it
// saves when it is right: the lookup of a timer that an event restarts (an
// inactivity timer restarts on every event). setHinted leaves the note
// where the entry is.
func (t *timerHeap) setHinted(r timerRef, hint *int32) {
	if t.pos == nil {
		t.pos = make(map[timerKey]int)
	}
	i, ok := -1, false
	if hint != nil {
		if k := int(*hint); k >= 0 && k < len(t.h) && t.h[k].key == r.key {
			i, ok = k, true
		}
	}
	if !ok {
		i, ok = t.pos[r.key]
	}
	if ok {
		cur := &t.h[i]
		if r.due > cur.due || (r.due == cur.due && r.order >= cur.order) {
			cur.moved, cur.next, cur.nextOrder = true, r.due, r.order
		} else {
			t.h[i] = r
			i = t.up(i)
		}
	} else {
		t.h = append(t.h, r)
		i = len(t.h) - 1
		t.pos[r.key] = i
		i = t.up(i)
	}
	if hint != nil {
		*hint = int32(i)
	}
}

// get returns where the key's timer is due and its set order, following a
// move.
func (t *timerHeap) get(k timerKey) (due int64, order uint64, ok bool) {
	i, ok := t.pos[k]
	if !ok {
		return 0, 0, false
	}
	r := &t.h[i]
	if r.moved {
		return r.next, r.nextOrder, true
	}
	return r.due, r.order, true
}

func (t *timerHeap) pop() timerRef {
	r := t.h[0]
	last := len(t.h) - 1
	t.swap(0, last)
	t.h = t.h[:last]
	delete(t.pos, r.key)
	if last > 0 {
		t.down(0)
	}
	return r
}

// up moves entry i up to its place and returns that place.
func (t *timerHeap) up(i int) int {
	for i > 0 {
		parent := (i - 1) / 2
		if !t.less(i, parent) {
			break
		}
		t.swap(i, parent)
		i = parent
	}
	return i
}

func (t *timerHeap) down(i int) {
	n := len(t.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			return
		}
		t.swap(i, m)
		i = m
	}
}
