package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// Live identity (SPEC §6, DESIGN.md "Identity, live"): an anonymous id A and
// the user U it links to may be owned by different partitions, so no
// partition can read and write both. The engine keeps every fact of the
// protocol in contact state, where the store commits it with the
// contact's applied position; the driver (package stream) moves the records
// between partitions:
//
//   - ApplyLive applies an event at the partition it is keyed to. A linking
//     event of U whose anonymous id is not U's yet parks U (Pending in U's
//     state) and asks A's owner (LinkOutcome.Request); the driver holds U's
//     records until the answer. An event carrying only a retired A is
//     forwarded to U (LinkOutcome.Forward).
//   - LinkRequested answers the request at A's owner: a conflict, or A's
//     state (the hand-over), after which A is retired (MergedInto = U).
//   - Answer applies the answer at U's owner: the merge, then the driver
//     releases U's held records, the linking event first.
//
// Every step is idempotent under re-reads (a record read again after a
// crash or a rebalance): requests and events by the contact's applied
// position, answers by U's pending link, forwards by U's forwarded
// positions (state.Contact.ForwardSeen).

// LiveEvent is an event record of the scoring stage.
type LiveEvent struct {
	Event *event.Event
	Pos   state.Position // its record
	// Into and From are set on an event forwarded from a retired anonymous
	// id: the user it is applied to, and its record in the anonymous id's
	// partition.
	Into string
	From state.Position
	// NoLink applies a linking event without linking: the driver gave up
	// waiting for the answer (identity hand-over timeout).
	NoLink bool
}

// LinkRequest asks the owner of Anon to link it to User.
type LinkRequest struct {
	Anon, User string
	Link       state.Position // the linking event's record: the link's id
	Time       int64          // the linking event's time
	// Full: User has absorbed identity.max_anonymous ids. The answer is a
	// conflict in any case: known or merged elsewhere as for any user,
	// else max_anonymous (the order replay checks them in).
	Full bool
}

// LinkOutcome says what the driver does after ApplyLive.
type LinkOutcome struct {
	// Skipped: the record's contact already holds it (a re-read).
	Skipped bool
	// Parked: the event is held; the driver holds every later record of
	// Contact until Answer releases it. Request, when set, is to be sent
	// (it is not when the contact was parked before a restart: the request
	// is out already).
	Parked  bool
	Contact string
	Request *LinkRequest
	// Forward: the event carries only an anonymous id retired into this
	// user; the driver forwards it unchanged, keyed by the user.
	Forward string
	// Dropped are the ids the event would link that were not queued: the
	// user's late link already has MaxQueuedLinks links queued behind it
	// (the driver counts and logs them). They stay their own contacts,
	// as after a refused link, and link at the user's next event that
	// carries them once the queue has drained.
	Dropped []string
}

// MaxQueuedLinks bounds the links queued behind a user's late link
// (state.PendingLink.Then): the user's linking events read while the
// answer to a timed-out hand-over has not come. Each is one more round
// trip and lives in the user's state blob, so a user whose every event
// carries a new or refused anonymous id while the anonymous ids'
// partition is stalled must not grow them without bound. A linking event
// read when the queue is full links nothing (LinkOutcome.Dropped); 16 is
// far above what a person produces while a partition recovers (a second
// device, a shared computer).
const MaxQueuedLinks = 16

// AnswerKind is how the owner of an anonymous id answered a LinkRequest.
type AnswerKind int

// Answers to a LinkRequest.
const (
	// AnswerHandover: the id is linked; its state (possibly none) follows.
	AnswerHandover AnswerKind = iota
	// AnswerLinked: the id was linked to the same user before: nothing
	// to merge.
	AnswerLinked
	// AnswerRefused: a conflict of the answer's kind.
	AnswerRefused
)

// UseLiveLinks turns live identity on (ApplyLive, LinkRequested, Answer),
// under the rules' identity section. held reports the contacts whose
// records the driver holds: their timers wait until they are released.
func (p *Partition) UseLiveLinks(held func(contact string) bool) {
	p.ident = p.ev.Ruleset().Identity()
	p.held = held
}

// ContactOf returns the contact an event is applied to with live identity
// (before links): its usable userId, else its usable anonymousId.
func (p *Partition) ContactOf(e *event.Event) string {
	user, anon := p.ident.Usable(e.UserID, e.AnonymousID)
	if user != "" {
		return user
	}
	return anon
}

// ApplyLive applies an event record, as ApplyAt does, with live identity.
func (p *Partition) ApplyLive(ctx context.Context, le *LiveEvent) (LinkOutcome, error) {
	var out LinkOutcome
	e := le.Event
	user, anon := p.ident.Usable(e.UserID, e.AnonymousID)
	if user == "" && anon == "" {
		return out, noUsableID(e)
	}
	if err := p.fireDue(ctx, p.clock); err != nil {
		return out, err
	}
	if p.clock == state.NoTime || e.Time > p.clock {
		if err := p.fireDue(ctx, e.Time); err != nil {
			return out, err
		}
		p.clock = e.Time
	}
	id := user
	if id == "" {
		id = anon
	}
	if le.Into != "" {
		id = le.Into
	}
	out.Contact = id
	c, err := p.store.Get(ctx, id)
	if err != nil {
		return out, fmt.Errorf("engine: load contact %q: %w", id, err)
	}
	if c.Covers(le.Pos) {
		p.skipped++
		out.Skipped = true
		return out, nil
	}
	changed := false
	switch {
	case le.Into != "":
		if c.ForwardSeen(le.From) {
			p.skipped++
			out.Skipped = true
			return out, nil
		}
		changed = true
	case !p.ident.Merge:
	case user == "":
		if c.MergedInto != "" {
			c.MarkApplied(le.Pos)
			if err := p.store.Put(ctx, c); err != nil {
				return out, fmt.Errorf("%w: contact %q: %w", ErrDiverged, c.ID, err)
			}
			out.Forward = c.MergedInto
			return out, nil
		}
	default:
		if !c.Known {
			c.Known, changed = true, true
		}
		if pl := c.Pending; pl != nil && pl.Link == le.Pos && !pl.Late && !le.NoLink {
			// Parked before a restart: the request is out.
			out.Parked = true
			return out, nil
		}
		if le.NoLink {
			break // the pending link's own event, applied without it
		}
		if pl := c.Pending; pl != nil {
			// A late answer is awaited (the records are no longer held):
			// this event's links are queued behind it and asked when it
			// completes, in order, so that max_anonymous counts as in
			// replay; the event is applied now, before its merges (SPEC
			// §6's live allowance, as for the pending link's events).
			// An id the pending link still asks is queued too: if it is
			// refused, replay asks again at this event and counts the
			// conflict again; if it is merged, the queued link drops it.
			if ids := p.toLink(c, e, user, anon); len(ids) > 0 && pl.Late {
				if len(pl.Then) >= MaxQueuedLinks {
					out.Dropped = ids
					p.droppedLinks++
				} else {
					pl.Then = append(pl.Then, state.PendingLink{Link: le.Pos, Time: e.Time, IDs: ids, Late: true})
					changed = true
				}
			}
			break
		}
		if ids := p.toLink(c, e, user, anon); len(ids) > 0 {
			c.Pending = &state.PendingLink{Link: le.Pos, Time: e.Time, IDs: ids}
			if err := p.store.Put(ctx, c); err != nil {
				return out, fmt.Errorf("%w: contact %q: %w", ErrDiverged, c.ID, err)
			}
			out.Parked = true
			out.Request = p.request(c)
			return out, nil
		}
	}
	c.MarkApplied(le.Pos)
	res := p.ev.Apply(c, e)
	if !res.Duplicate || changed {
		if err := p.store.Put(ctx, c); err != nil {
			return out, fmt.Errorf("%w: contact %q: %w", ErrDiverged, c.ID, err)
		}
	}
	if !res.Duplicate {
		p.indexFor(c, res.Timers)
	}
	p.emit(res)
	return out, p.fireDue(ctx, p.clock)
}

// toLink returns the ids the event links to user that are not linked to
// it yet, in link order (the anonymousId, then an alias's previousId).
func (p *Partition) toLink(u *state.Contact, e *event.Event, user, anon string) []string {
	var ids []string
	if anon != "" && anon != user && !slices.Contains(u.Merged, anon) {
		ids = append(ids, anon)
	}
	if e.Type == "alias" {
		if prev := e.PreviousID; prev != user && prev != anon && !p.ident.IsBlocked(prev) && !slices.Contains(u.Merged, prev) {
			ids = append(ids, prev)
		}
	}
	return ids
}

func (p *Partition) request(u *state.Contact) *LinkRequest {
	pl := u.Pending
	return &LinkRequest{Anon: pl.IDs[0], User: u.ID, Link: pl.Link, Time: pl.Time,
		Full: len(u.Merged) >= p.ident.MaxAnonymous}
}

// DroppedLinks counts the linking events whose links were not queued
// behind a late link because MaxQueuedLinks were queued already.
func (p *Partition) DroppedLinks() uint64 { return p.droppedLinks }

// Pending returns a user's pending link as the store has it, for a driver
// that restarts: nil when none.
func (p *Partition) Pending(ctx context.Context, user string) (*state.PendingLink, error) {
	c, err := p.store.Get(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("engine: load contact %q: %w", user, err)
	}
	return c.Pending, nil
}

// LinkRequested answers a link request read at pos in the anonymous id's
// partition: timers due by the linking event's time fire first (replay
// fires them before the merge), then the id's state decides. A hand-over
// retires the id: its state is replaced by a tombstone that names the
// user (MergedInto), so that later events carrying only the id are
// forwarded, and state (the id's encoded state, nil when it has none) is
// sent to the user. skipped reports a request applied before.
func (p *Partition) LinkRequested(ctx context.Context, r *LinkRequest, pos state.Position) (ans AnswerKind, kind rules.ConflictKind, blob []byte, skipped bool, err error) {
	if err := p.Advance(ctx, r.Time); err != nil {
		return 0, 0, nil, false, err
	}
	a, err := p.store.Get(ctx, r.Anon)
	if err != nil {
		return 0, 0, nil, false, fmt.Errorf("engine: load contact %q: %w", r.Anon, err)
	}
	if a.Covers(pos) {
		p.skipped++
		return 0, 0, nil, true, nil
	}
	switch {
	case a.MergedInto == r.User:
		return AnswerLinked, 0, nil, false, nil
	case a.MergedInto != "":
		return AnswerRefused, rules.ConflictMerged, nil, false, nil
	case a.Known:
		return AnswerRefused, rules.ConflictKnown, nil, false, nil
	case r.Full:
		return AnswerRefused, rules.ConflictMaxAnonymous, nil, false, nil
	}
	if hasState(a) {
		if blob, err = state.Encode(a); err != nil {
			return 0, 0, nil, false, fmt.Errorf("engine: encode contact %q to hand it over: %w", r.Anon, err)
		}
	}
	t := state.New(r.Anon)
	t.MergedInto = r.User
	t.MarkApplied(pos)
	if err := p.store.Put(ctx, t); err != nil {
		return 0, 0, nil, false, fmt.Errorf("%w: contact %q: %w", ErrDiverged, t.ID, err)
	}
	return AnswerHandover, 0, blob, false, nil
}

// Answered is what Answer did.
type Answered struct {
	// Repeat: the answer was applied before (or answers no pending link).
	Repeat bool
	// Next is the request for the linking event's next id; the user stays
	// parked.
	Next *LinkRequest
	// Released: the link is complete; the driver applies the held records,
	// the linking event first — unless Late, when they were applied
	// already.
	Released, Late bool
	Merged         bool // the answer brought state that was merged
}

// Answer applies an answer to the pending link of user at its owner.
func (p *Partition) Answer(ctx context.Context, user, anon string, link state.Position, ans AnswerKind, kind rules.ConflictKind, blob []byte) (Answered, error) {
	var out Answered
	u, err := p.store.Get(ctx, user)
	if err != nil {
		return out, fmt.Errorf("engine: load contact %q: %w", user, err)
	}
	pl := u.Pending
	if pl == nil || pl.Link != link || len(pl.IDs) == 0 || pl.IDs[0] != anon {
		out.Repeat = true
		return out, nil
	}
	switch ans {
	case AnswerHandover:
		u.Merged = append(u.Merged, anon)
		p.ev.Stats.Links++
		if len(blob) > 0 {
			a, err := state.Decode(blob)
			if err != nil {
				return out, fmt.Errorf("engine: the hand-over of %q to %q: %w", anon, user, err)
			}
			if hasState(a) {
				for _, m := range p.ev.Merge(u, a) {
					p.push(user, m.Trigger, m.Due)
				}
				out.Merged = true
			}
		}
	case AnswerLinked:
		if !slices.Contains(u.Merged, anon) {
			u.Merged = append(u.Merged, anon)
		}
	case AnswerRefused:
		if pl.Conflict == 0 {
			pl.Conflict = int(kind) + 1
		}
	}
	pl.IDs = pl.IDs[1:]
	for len(pl.IDs) == 0 {
		// The linking event's links are done.
		if pl.Conflict > 0 {
			p.ev.Stats.Conflicts[pl.Conflict-1]++
		}
		if pl.Late {
			out.Late = true
		}
		if len(pl.Then) == 0 {
			out.Released = true
			u.Pending = nil
			break
		}
		// A later linking event's links, queued while this one was late:
		// its ids merged meanwhile need nothing.
		next := pl.Then[0]
		next.Then = pl.Then[1:]
		next.IDs = slices.DeleteFunc(next.IDs, func(id string) bool { return slices.Contains(u.Merged, id) })
		pl = &next
		u.Pending = pl
	}
	if u.Pending != nil {
		out.Next = p.request(u)
	}
	if err := p.store.Put(ctx, u); err != nil {
		return out, fmt.Errorf("%w: contact %q: %w", ErrDiverged, u.ID, err)
	}
	return out, nil
}

// GiveUp marks a user's pending link late (the identity hand-over timed
// out): the driver applies the held records without linking, and the
// merge happens when the answer comes.
func (p *Partition) GiveUp(ctx context.Context, user string) error {
	u, err := p.store.Get(ctx, user)
	if err != nil {
		return fmt.Errorf("engine: load contact %q: %w", user, err)
	}
	if u.Pending == nil || u.Pending.Late {
		return nil
	}
	u.Pending.Late = true
	if err := p.store.Put(ctx, u); err != nil {
		return fmt.Errorf("%w: contact %q: %w", ErrDiverged, u.ID, err)
	}
	return nil
}

// EraseLive erases a contact at its owner. It returns the anonymous ids
// merged into it, whose owners must erase their tombstones (Unlink), and,
// for an anonymous id merged into a user, that user, whose owner must take
// the id off its list (Unmerge), as replay's Erase does.
func (p *Partition) EraseLive(ctx context.Context, id string) (merged []string, into string, err error) {
	c, err := p.store.Get(ctx, id)
	if err != nil {
		return nil, "", fmt.Errorf("engine: load contact %q to erase it: %w", id, err)
	}
	merged = slices.Clone(c.Merged)
	if err := p.store.Delete(ctx, id); err != nil {
		return nil, "", fmt.Errorf("engine: erase contact %q: %w", id, err)
	}
	return merged, c.MergedInto, nil
}

// Unmerge takes the erased anonymous id anon off user's merged list (SPEC
// §6 (d): erasing a merged id removes its link; the history it brought
// stays the user's until the user is erased). from is the erasure's record
// in anon's partition: the owner of anon sends the unmerge after every
// forward of anon's events it sent before, so the user's forwarded
// position for that partition (Contact.ForwardSeen) skips a re-read, even
// after anon has been linked to the user again. It reports whether the
// list changed.
func (p *Partition) Unmerge(ctx context.Context, user, anon string, from state.Position) (bool, error) {
	u, err := p.store.Get(ctx, user)
	if err != nil {
		return false, fmt.Errorf("engine: load contact %q: %w", user, err)
	}
	if !hasState(u) || u.ForwardSeen(from) {
		return false, nil
	}
	i := slices.Index(u.Merged, anon)
	if i >= 0 {
		u.Merged = slices.Delete(u.Merged, i, i+1)
	}
	if err := p.store.Put(ctx, u); err != nil {
		return false, fmt.Errorf("%w: contact %q: %w", ErrDiverged, u.ID, err)
	}
	return i >= 0, nil
}

// Unlink erases the tombstone of anon if it was retired into user: a later
// event of anon starts a new anonymous contact. An id that has since been
// a userId keeps its own state, without the link.
func (p *Partition) Unlink(ctx context.Context, anon, user string) (bool, error) {
	a, err := p.store.Get(ctx, anon)
	if err != nil {
		return false, fmt.Errorf("engine: load contact %q to unlink it: %w", anon, err)
	}
	if a.MergedInto != user {
		return false, nil
	}
	if hasState(a) || a.Known {
		a.MergedInto = ""
		if err := p.store.Put(ctx, a); err != nil {
			return false, fmt.Errorf("%w: contact %q: %w", ErrDiverged, a.ID, err)
		}
		return true, nil
	}
	if err := p.store.Delete(ctx, anon); err != nil {
		return false, fmt.Errorf("engine: erase contact %q: %w", anon, err)
	}
	return true, nil
}
