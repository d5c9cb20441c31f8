package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// Identity (SPEC §6) in the engine.
//
// With UseLinks, Apply resolves every event's contact through a link table
// before applying it:
//
//   - blocked ids (identity.blocked) are dropped first; an event left with
//     no id is bad input (event.ReasonNoContact) and changes nothing;
//   - an event with a userId U is U's, and makes U known; it links its
//     anonymousId, and an `alias` then its previousId, to U (linkTo);
//   - an event with only an anonymousId A is the contact of the user A was
//     linked to, else A's own.
//
// Timers due by the event's time fire before the links and merges, and the
// event is applied to U after them (SPEC §6, in replay). A merge needs A's
// and U's state in one store: replay, rules tests and a single partition
// have that. Live processes key records by userId else anonymousId and do
// not call UseLinks until the cross-partition hand-over (DESIGN.md) is in.

// UseLinks turns identity resolution on with the link table l, under the
// rules' `identity:` section (with `merge: false`, blocked ids still apply
// but nothing is linked). l is shared by whatever resolves the same ids; for
// replay it is a fresh state.MemoryLinks.
func (p *Partition) UseLinks(l state.Links) {
	p.links = l
	p.ident = p.ev.Ruleset().Identity()
}

// Links returns the link table given to UseLinks, or nil.
func (p *Partition) Links() state.Links { return p.links }

// noUsableID is the bad input of an event whose every id is blocked.
func noUsableID(e *event.Event) error {
	return &event.Error{Reason: event.ReasonNoContact, Msg: fmt.Sprintf(
		"the event has no usable id: userId %q and anonymousId %q are absent or in identity.blocked (ids a sender puts where it has none); send the visitor's real id",
		e.UserID, e.AnonymousID)}
}

// identify links and merges as the event says and returns its contact.
// user and anon are the event's usable ids, not both "".
func (p *Partition) identify(ctx context.Context, e *event.Event, user, anon string) (string, error) {
	if user == "" {
		if !p.ident.Merge {
			return anon, nil
		}
		owner, err := p.links.Owner(ctx, anon)
		if err != nil {
			return "", fmt.Errorf("engine: resolve anonymous id %q: %w", anon, err)
		}
		if owner != "" {
			return owner, nil
		}
		return anon, nil
	}
	if !p.ident.Merge {
		return user, nil
	}
	if err := p.links.MarkKnown(ctx, user); err != nil {
		return "", fmt.Errorf("engine: record known id %q: %w", user, err)
	}
	l := linker{p: p, user: user, conflict: -1}
	if anon != "" && anon != user {
		if err := l.link(ctx, anon); err != nil {
			return "", err
		}
	}
	if e.Type == "alias" {
		if prev := e.PreviousID; prev != user && prev != anon && !p.ident.IsBlocked(prev) {
			if err := l.link(ctx, prev); err != nil {
				return "", err
			}
		}
	}
	if l.conflict >= 0 {
		p.ev.Stats.Conflicts[l.conflict]++
	}
	return user, nil
}

// linker links the ids of one event to its user.
type linker struct {
	p        *Partition
	user     string
	u        *state.Contact     // the user's state, loaded by the first link
	conflict rules.ConflictKind // the first refused link's kind, -1 for none
}

func (l *linker) refuse(k rules.ConflictKind) {
	if l.conflict < 0 {
		l.conflict = k
	}
}

// link links the anonymous id a to the user, unless the link is refused,
// and merges a's state (if any) into the user's.
func (l *linker) link(ctx context.Context, a string) error {
	p := l.p
	owner, err := p.links.Owner(ctx, a)
	if err != nil {
		return fmt.Errorf("engine: look up the link of %q: %w", a, err)
	}
	switch {
	case owner == l.user:
		return nil // linked before: the merge happened then
	case owner != "":
		l.refuse(rules.ConflictMerged)
		return nil
	}
	known, err := p.links.Known(ctx, a)
	if err != nil {
		return fmt.Errorf("engine: look up whether %q is a known id: %w", a, err)
	}
	if known {
		l.refuse(rules.ConflictKnown)
		return nil
	}
	if l.u == nil {
		if l.u, err = p.store.Get(ctx, l.user); err != nil {
			return fmt.Errorf("engine: load contact %q: %w", l.user, err)
		}
	}
	u := l.u
	if len(u.Merged) >= p.ident.MaxAnonymous {
		l.refuse(rules.ConflictMaxAnonymous)
		return nil
	}
	ac, err := p.store.Get(ctx, a)
	if err != nil {
		return fmt.Errorf("engine: load contact %q to merge it into %q: %w", a, l.user, err)
	}
	u.Merged = append(u.Merged, a)
	p.ev.Stats.Links++
	if hasState(ac) {
		for _, m := range p.ev.Merge(u, ac) {
			p.moveTimer(a, l.user, m)
		}
	}
	if err := p.store.Put(ctx, u); err != nil {
		return fmt.Errorf("engine: store contact %q: %w", l.user, err)
	}
	if hasState(ac) {
		if err := p.store.Delete(ctx, a); err != nil {
			return fmt.Errorf("engine: delete contact %q merged into %q: %w", a, l.user, err)
		}
	}
	if err := p.links.Link(ctx, a, l.user); err != nil {
		return fmt.Errorf("engine: link %q to %q: %w", a, l.user, err)
	}
	return nil
}

// hasState reports whether a contact from the store has ever had an event
// applied (a Get of an unknown id returns an empty contact).
func hasState(c *state.Contact) bool { return c.Seq > 0 || c.Latest != state.NoTime }

// moveTimer indexes a timer that a merge kept or changed on the user. A
// timer that was the anonymous contact's keeps its place (its set order)
// among timers due at the same time; the anonymous contact's index entry
// goes stale and fires nothing.
func (p *Partition) moveTimer(anon, user string, m rules.MovedTimer) {
	if m.FromAnon {
		if due, order, ok := p.timers.get(timerKey{anon, m.Trigger}); ok && due == m.AnonDue {
			p.timers.set(timerRef{due: m.Due, order: order, key: timerKey{user, m.Trigger}})
			return
		}
	}
	p.push(user, m.Trigger, m.Due)
}

// Resolve returns the contact an event carrying only the id would be
// applied to now: the id itself when it has been a userId or is linked to
// nobody, else the user it was merged into. Without UseLinks, or on an
// error of the link table, it returns id. A backtest resolves conversion
// rows with it at the end of a replay.
func (p *Partition) Resolve(id string) string {
	c, err := p.ResolveContext(context.Background(), id)
	if err != nil {
		return id
	}
	return c
}

// ResolveContext is Resolve with a context and the link table's errors.
func (p *Partition) ResolveContext(ctx context.Context, id string) (string, error) {
	if p.links == nil || !p.ident.Merge {
		return id, nil
	}
	known, err := p.links.Known(ctx, id)
	if err != nil || known {
		return id, err
	}
	owner, err := p.links.Owner(ctx, id)
	if err != nil || owner == "" {
		return id, err
	}
	return owner, nil
}

// MergedInto returns the user the anonymous id was merged into, or "".
func (p *Partition) MergedInto(ctx context.Context, id string) (string, error) {
	if p.links == nil {
		return "", nil
	}
	return p.links.Owner(ctx, id)
}

// Erase erases what is held about id (SPEC §6 (d)): its state and, for a
// user, the links of the ids merged into it (a later event of one of them
// starts a new anonymous contact) and the fact that it was known. For a
// merged anonymous id, its link is removed and the id taken off its user's
// list (the history already merged stays the user's until the user is
// erased). It returns every id whose link or state it erased, id first.
func (p *Partition) Erase(ctx context.Context, id string) ([]string, error) {
	erased := []string{id}
	if p.links != nil {
		c, err := p.store.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("engine: load contact %q to erase it: %w", id, err)
		}
		for _, a := range c.Merged {
			if owner, err := p.links.Owner(ctx, a); err != nil {
				return nil, fmt.Errorf("engine: look up the link of %q: %w", a, err)
			} else if owner != id {
				continue
			}
			if err := p.links.Unlink(ctx, a); err != nil {
				return nil, fmt.Errorf("engine: erase the link of %q: %w", a, err)
			}
			erased = append(erased, a)
		}
		if err := p.links.Forget(ctx, id); err != nil {
			return nil, fmt.Errorf("engine: erase known id %q: %w", id, err)
		}
		owner, err := p.links.Owner(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("engine: look up the link of %q: %w", id, err)
		}
		if owner != "" {
			if err := p.links.Unlink(ctx, id); err != nil {
				return nil, fmt.Errorf("engine: erase the link of %q: %w", id, err)
			}
			u, err := p.store.Get(ctx, owner)
			if err != nil {
				return nil, fmt.Errorf("engine: load contact %q: %w", owner, err)
			}
			if i := slices.Index(u.Merged, id); i >= 0 {
				u.Merged = slices.Delete(u.Merged, i, i+1)
				if err := p.store.Put(ctx, u); err != nil {
					return nil, fmt.Errorf("engine: store contact %q: %w", owner, err)
				}
			}
		}
	}
	if err := p.store.Delete(ctx, id); err != nil {
		return nil, fmt.Errorf("engine: erase contact %q: %w", id, err)
	}
	return erased, nil
}
