// Package state holds the contact state model — scores, exact windows,
// timers, trigger arming, caps and the messageId dedupe set — its versioned
// msgpack encoding, and the stores that keep it.
//
// The model is shaped for the hot path: slices of fixed-width numbers, no maps
// of any except the contact's traits, which rules read by name. Every per-rule
// slot carries the rule's name so that a stored blob survives a change of the
// rules file (slots of removed rules are dropped, new rules start empty; see
// Contact.Bind).
//
// # Memory bounds
//
// Each contact's state is bounded whatever the traffic:
//   - a window keeps at most MaxWindowEntries events (default 1024); beyond
//     that the oldest are dropped, so a count or sum becomes a lower bound and
//     Window.Dropped counts what was lost;
//   - the messageId dedupe set remembers the last MaxSeenIDs ids (default 256)
//     as 64-bit hashes; a repeat older than that is applied again;
//   - a scoring rule's `limit` history, a trigger's sequence progress, an
//     action's cap history and the pending timers are bounded by the rules
//     (one slot per limit award inside `per`, per step, per cap `max`, and
//     per absence/inactivity trigger).
package state

import (
	"math"
	"sync"
	"unsafe"
)

// Version is the encoding version written in every blob. A blob of a later
// version than the code knows is refused (ErrVersion); earlier versions are
// read and upgraded.
const Version = 1

// NoTime marks an unset time slot.
const NoTime int64 = math.MinInt64

// Limits bound per-contact memory; see the package doc.
var (
	MaxWindowEntries = 1024
	MaxSeenIDs       = 256
)

// Contact is everything leadpulse keeps about one contact. Times are Unix
// nanoseconds of event time.
type Contact struct {
	V      int    `msgpack:"v"`
	ID     string `msgpack:"id"`
	Seq    uint64 `msgpack:"q"`           // events applied, used for deterministic action ids
	Latest int64  `msgpack:"t"`           // latest event time seen; the contact's "now"
	Stage  string `msgpack:"s,omitempty"` // current lifecycle stage, "" for none

	Traits   map[string]any `msgpack:"tr,omitempty"`
	Windows  []Window       `msgpack:"w,omitempty"`
	Points   []Points       `msgpack:"p,omitempty"`
	Triggers []Trigger      `msgpack:"g,omitempty"`
	Timers   []Timer        `msgpack:"m,omitempty"`
	Caps     []Cap          `msgpack:"c,omitempty"`
	Seen     Seen           `msgpack:"d"`

	// The caches below are kept with the contact while it is in memory and
	// never encoded; they sit beside the fields every event reads.

	// Memo is a cache the rules engine keeps with the contact while it is
	// in memory (values that change only with the traits or the stage). It
	// is not encoded and Bind clears it.
	Memo any `msgpack:"-"`
	// MemoBits is a small cache the rules engine keeps beside Memo (bit
	// sets), inside the contact so that reading it costs no memory access
	// of its own. Not encoded; Bind clears it.
	MemoBits [2]uint64 `msgpack:"-"`
	// Spans are the times of the oldest and newest entries of the first
	// windows (Windows[i] for i < len(Spans)), which the rules engine
	// keeps while the contact is in memory so that pruning and counting a
	// window need not read its entries. Not encoded (a loaded contact has
	// none); Bind clears them; whatever else changes a window's entries
	// must clear its span.
	Spans [4]WindowSpan `msgpack:"-"`
	// Hints are notes the engine driver keeps with the contact while it is
	// in memory: where its pending timers sit in the driver's timer heap.
	// The driver checks a note before it uses it. Not encoded.
	Hints [4]int32 `msgpack:"-"`
	// bound is the identity of the names the slices were last aligned to;
	// not encoded.
	bound *Names `msgpack:"-"`
	// home is the Memory store that holds this very contact, if any, so
	// that its Put needs no lookup; not encoded.
	home *Memory `msgpack:"-"`

	// Merged lists the anonymous ids linked to this user (SPEC §6), in link
	// order, whether or not they had state: every accepted link counts
	// toward the rules' identity.max_anonymous, which bounds the list.
	Merged []string `msgpack:"mi,omitempty"`
	// MergedInto is set on a retired anonymous contact: the user its state
	// was merged into. The memory store deletes a merged contact instead;
	// a store that hands state over between owners keeps it as a tombstone
	// so that a late or repeated hand-over is recognised.
	MergedInto string `msgpack:"mt,omitempty"`
	// Known is set live on a contact that an event named as its userId:
	// its owner refuses to merge it into another user (SPEC §6). Replay
	// keeps the same fact in its link table.
	Known bool `msgpack:"kn,omitempty"`
	// Live says which per-rule slots may hold state, so that the rules
	// engine reads only those: a clear bit is a slot as a new rule gets it
	// (empty), which it need not read to know. Not encoded; Bind sets it
	// from the slots, the rules engine sets a slot's bit when it gives
	// the slot state, and whatever else gives a bound contact's slots
	// state must call NoteLive. It sits in the padding after Known, on
	// the line of bound and home, which every event reads.
	Live LiveSlots `msgpack:"-"`
	// Pending is a user's live link waiting for the owner of an anonymous
	// id to answer (DESIGN.md, Identity live); nil otherwise.
	Pending *PendingLink `msgpack:"pl,omitempty"`
	// Forwarded holds, per partition of the scoring topic, the offset
	// after the last event forwarded from a retired anonymous id there and
	// applied here: a forward produced twice (its sender crashed before
	// committing) is applied once.
	Forwarded []Position `msgpack:"fw,omitempty"`

	// Pos is the Kafka position of the last record applied, for the store's
	// compare-and-set; zero in replay.
	Pos Position `msgpack:"o"`

	// Applied is how far the scoring stage's records of this contact are in
	// this state: their partition, and the offset after the last one applied
	// (Kafka's committed-offset convention, so the zero value means none).
	// A record of that partition below Applied.Offset is already counted: a
	// re-read after a crash or a rebalance skips it (Covers), record by
	// record, with or without a messageId. Zero in replay.
	Applied Position `msgpack:"a,omitempty"`
}

// LiveSlots are the bits of Contact.Live, per kind of per-rule slot.
type LiveSlots struct {
	W, P, T LiveMask // Windows, Points, Triggers
}

// LiveMask has bit i set when slot i may hold state. Slots beyond the
// first 16 are always taken to.
type LiveMask uint16

const liveBits = 16

// Has reports whether slot i may hold state.
func (m LiveMask) Has(i int) bool { return i >= liveBits || m>>uint(i)&1 != 0 }

// Set notes that slot i may hold state.
func (m *LiveMask) Set(i int) {
	if i < liveBits {
		*m |= 1 << uint(i)
	}
}

// NoteLive sets c.Live from its slots.
func (c *Contact) NoteLive() {
	c.Live = LiveSlots{}
	for i := range min(len(c.Windows), liveBits) {
		if w := &c.Windows[i]; len(w.T) > 0 || len(w.V) > 0 || len(w.K) > 0 || w.Dropped != 0 {
			c.Live.W.Set(i)
		}
	}
	for i := range min(len(c.Points), liveBits) {
		if p := &c.Points[i]; p.Value != 0 || p.AsOf != NoTime || len(p.LimT) > 0 || len(p.LimP) > 0 {
			c.Live.P.Set(i)
		}
	}
	for i := range min(len(c.Triggers), liveBits) {
		if t := &c.Triggers[i]; t.On || t.Last != NoTime || t.Fired != 0 || len(t.Steps) > 0 {
			c.Live.T.Set(i)
		}
	}
}

// Position is a Kafka partition and offset.
type Position struct {
	Partition int32 `msgpack:"p"`
	Offset    int64 `msgpack:"o"`
}

// Window is one sliding window's events, oldest first: T always, V for sum
// windows, K for distinct windows.
type Window struct {
	Name    string    `msgpack:"n"`
	T       []int64   `msgpack:"t"`
	V       []float64 `msgpack:"v,omitempty"`
	K       []string  `msgpack:"k,omitempty"`
	Dropped uint64    `msgpack:"x,omitempty"` // events lost to MaxWindowEntries

}

// WindowSpan is the times of a window's oldest and newest entries, valid
// when OK is set (Contact.Spans).
type WindowSpan struct {
	Lo, Hi int64
	OK     bool
}

// Points is one engagement rule's points. Value is worth Value at AsOf and
// decays from there; LimT/LimP are the raw awards still inside the rule's
// `limit.per`, oldest first.
type Points struct {
	Rule  string    `msgpack:"n"`
	Value float64   `msgpack:"v"`
	AsOf  int64     `msgpack:"a"`
	LimT  []int64   `msgpack:"lt,omitempty"`
	LimP  []float64 `msgpack:"lp,omitempty"`
}

// Trigger is one trigger's memory for this contact.
type Trigger struct {
	ID    string  `msgpack:"n"`
	On    bool    `msgpack:"o,omitempty"` // last value of `when`
	Last  int64   `msgpack:"l"`           // time of the last firing, NoTime if never
	Fired uint64  `msgpack:"f,omitempty"` // firings so far
	Steps []int64 `msgpack:"s,omitempty"` // sequences: Steps[i] is the first-step time of the best partial match waiting for step i, NoTime if none
}

// Timer is a pending absence or inactivity timer.
type Timer struct {
	Trigger string `msgpack:"n"`
	Due     int64  `msgpack:"d"`
	Set     uint64 `msgpack:"s"` // Contact.Seq when set: ties at one due time fire in set order
}

// Cap is one action's emission times still inside its cap's `per`.
type Cap struct {
	Action string  `msgpack:"n"`
	T      []int64 `msgpack:"t"`
}

// Seen is the ring of hashes of the last MaxSeenIDs messageIds.
type Seen struct {
	H   []uint64 `msgpack:"h,omitempty"`
	Pos int      `msgpack:"p,omitempty"`
}

// minSeen is the room the first remembered messageId gets.
const minSeen = 16

// hashID hashes an id (a messageId, or a contact id for the new-contact
// filter) with 64-bit FNV-1a: fixed, so that hashes in stored blobs and
// filter bits stay comparable across processes and versions.
func hashID(id string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime
	}
	return h
}

// SeenID reports whether id is among the remembered messageIds.
func (s *Seen) SeenID(id string) bool {
	return s.seen(hashID(id))
}

func (s *Seen) seen(h uint64) bool {
	for _, x := range s.H {
		if x == h {
			return true
		}
	}
	return false
}

// Add remembers id, forgetting the oldest beyond MaxSeenIDs.
func (s *Seen) Add(id string) {
	s.add(hashID(id))
}

// Check reports whether id is among the remembered messageIds, and
// remembers it if not: SeenID then Add, hashing id once.
func (s *Seen) Check(id string) (seen bool) {
	h := hashID(id)
	if s.seen(h) {
		return true
	}
	s.add(h)
	return false
}

func (s *Seen) add(h uint64) {
	if len(s.H) < MaxSeenIDs {
		if len(s.H) == cap(s.H) && len(s.H) < minSeen {
			// Every event adds one: room for the first few at once,
			// not an allocation at each of 1, 2, 4 and 8.
			s.H = append(make([]uint64, 0, min(minSeen, MaxSeenIDs)), s.H...)
		}
		s.H = append(s.H, h)
		return
	}
	if s.Pos >= len(s.H) {
		s.Pos = 0
	}
	s.H[s.Pos] = h
	s.Pos++
}

// Covers reports whether the record at pos (its partition and offset) is
// already applied to the contact. Offsets of another partition are not
// comparable (the topic was repartitioned): they are not covered.
func (c *Contact) Covers(pos Position) bool {
	return c.Applied.Offset > 0 && c.Applied.Partition == pos.Partition && pos.Offset < c.Applied.Offset
}

// MarkApplied records that the record at pos is applied to the contact.
func (c *Contact) MarkApplied(pos Position) {
	c.Applied = Position{Partition: pos.Partition, Offset: pos.Offset + 1}
}

// PendingLink is a user's link waiting for the owners of anonymous ids.
type PendingLink struct {
	// Link identifies the link: the linking event's position in the
	// user's partition.
	Link Position `msgpack:"k"`
	// Time is the linking event's time.
	Time int64 `msgpack:"t"`
	// IDs are the anonymous ids still to link, in order; IDs[0] is the one
	// asked.
	IDs []string `msgpack:"i"`
	// Conflict is the kind of the first refused link plus one, 0 for none
	// (rules.ConflictKind; counted once per linking event).
	Conflict int `msgpack:"c"`
	// Late is set when the hand-over timed out: the held events were
	// applied without the merge, which happens when the answer comes.
	Late bool `msgpack:"l"`
	// Then are the links of the user's later linking events read while
	// this late link waits for its answer, in order (each Late, without
	// Then of its own): each is asked when the one before it completes,
	// so that a late answer does not swallow the user's next link.
	Then []PendingLink `msgpack:"n,omitempty"`
}

// ForwardSeen reports whether the event forwarded from pos (its record in
// the retired anonymous id's partition) is applied to the contact, and
// otherwise records that it now is.
func (c *Contact) ForwardSeen(pos Position) bool {
	for i := range c.Forwarded {
		f := &c.Forwarded[i]
		if f.Partition == pos.Partition {
			if pos.Offset < f.Offset {
				return true
			}
			f.Offset = pos.Offset + 1
			return false
		}
	}
	c.Forwarded = append(c.Forwarded, Position{Partition: pos.Partition, Offset: pos.Offset + 1})
	return false
}

// New returns an empty contact. Its id's bytes are copied into the same
// allocation, just before the contact's fields, when they fit (idBox):
// the store's map compares them on every lookup, so there they come with
// the fields the event reads anyway instead of costing a cache miss of
// their own (and the contact does not keep alive whatever buffer the id
// came from).
func New(id string) *Contact {
	var c *Contact
	switch n := len(id); {
	case n == 0:
		c = new(Contact)
	case n <= len(idBox{}.id):
		b := new(idBox)
		copy(b.id[:], id)
		c, id = &b.c, unsafe.String(&b.id[0], n)
	case n <= len(longIDBox{}.id):
		b := new(longIDBox)
		copy(b.id[:], id)
		c, id = &b.c, unsafe.String(&b.id[0], n)
	default:
		c = new(Contact)
	}
	*c = Contact{V: Version, ID: id, Latest: NoTime}
	return c
}

// idBox and longIDBox are a contact with room for its id's bytes before
// it (New), sized to fill the allocator's size classes of 512 and 576
// bytes (a Contact alone takes 512): short ids cost no memory, ids up to a
// UUID's 36 bytes and well beyond cost 64 bytes.
type (
	idBox struct {
		id [512 - unsafe.Sizeof(Contact{})]byte
		c  Contact
	}
	longIDBox struct {
		id [576 - unsafe.Sizeof(Contact{})]byte
		c  Contact
	}
)

// Names are the rule names a contact's slices are aligned to: Bind makes
// Windows[i] the window Names.Windows[i], and so on. A Names value must not
// change after its first use; the rules package builds one per rules file.
type Names struct {
	Windows  []string
	Points   []string
	Triggers []string
	Caps     []string

	once sync.Once
	lay  *slotLayout
}

// Bind aligns the contact's per-rule slices to n, keeping the state of rules
// that still exist and dropping the rest. It is a no-op when the contact is
// already bound to n, so the hot path can call it on every event.
func (c *Contact) Bind(n *Names) {
	if c.bound == n {
		return
	}
	if c.Windows == nil && c.Points == nil && c.Triggers == nil && c.Caps == nil {
		n.layout().fresh(c, n)
	} else {
		c.align(n)
	}
	keep := c.Timers[:0]
	for _, t := range c.Timers {
		for _, name := range n.Triggers {
			if name == t.Trigger {
				keep = append(keep, t)
				break
			}
		}
	}
	c.Timers = keep
	c.Memo = nil
	c.MemoBits = [2]uint64{}
	c.Spans = [len(c.Spans)]WindowSpan{}
	c.NoteLive()
	c.bound = n
}

// align aligns the per-rule slices of a contact that has some (a loaded or
// previously bound one) to n.
func (c *Contact) align(n *Names) {
	c.Windows = alignSlots(c.Windows, n.Windows, func(w *Window) string { return w.Name }, func(s string) Window { return Window{Name: s} })
	c.Points = alignSlots(c.Points, n.Points, func(p *Points) string { return p.Rule }, func(s string) Points { return Points{Rule: s, AsOf: NoTime} })
	c.Triggers = alignSlots(c.Triggers, n.Triggers, func(t *Trigger) string { return t.ID }, func(s string) Trigger { return Trigger{ID: s, Last: NoTime} })
	c.Caps = alignSlots(c.Caps, n.Caps, func(x *Cap) string { return x.Action }, func(s string) Cap { return Cap{Action: s} })
}

func alignSlots[T any](have []T, names []string, name func(*T) string, fresh func(string) T) []T {
	if len(have) == len(names) {
		same := true
		for i := range have {
			if name(&have[i]) != names[i] {
				same = false
				break
			}
		}
		if same {
			return have
		}
	}
	out := make([]T, len(names))
	for i, n := range names {
		out[i] = fresh(n)
		for j := range have {
			if name(&have[j]) == n {
				out[i] = have[j]
				break
			}
		}
	}
	return out
}

// Bound reports whether the contact is aligned to n.
func (c *Contact) Bound(n *Names) bool { return c.bound == n }
