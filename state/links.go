package state

import (
	"context"
	"sync"
)

// Links is the identity link table of SPEC §6: which ids have been a
// `userId` (known ids, never merged into another user) and which anonymous
// id was linked to which user. The engine asks it on every event that
// carries an anonymousId without a userId (to find the contact) and on every
// linking event.
//
// The user side of a link is also kept in the user's state
// (Contact.Merged), which is what counts toward identity.max_anonymous and
// what inspection and erasure read; Links holds the anonymous side, the one
// an event's anonymousId is resolved through.
//
// A Links is used by one goroutine at a time unless its doc says otherwise.
// Memory is the implementation of replay, rules tests and the engine's
// tests; a store shared between processes (Redis, or a compacted Kafka
// topic) can implement the same contract for live mode.
type Links interface {
	// Owner returns the user that the anonymous id was linked to, or "".
	Owner(ctx context.Context, anon string) (string, error)
	// Known reports whether id has been the `userId` of a valid event.
	Known(ctx context.Context, id string) (bool, error)
	// MarkKnown records that id is the `userId` of a valid event.
	MarkKnown(ctx context.Context, id string) error
	// Link records that anon now belongs to user.
	Link(ctx context.Context, anon, user string) error
	// Unlink forgets anon's link (erasure): a later event of anon starts a
	// new anonymous contact.
	Unlink(ctx context.Context, anon string) error
	// Forget forgets that id was known (erasure of the user).
	Forget(ctx context.Context, id string) error
}

// LinkPeeker is a Links that can answer Owner from memory, without I/O and
// without changing anything, for a driver that prefetches the contacts of
// its next events (Peeker).
type LinkPeeker interface {
	// PeekOwner is Owner.
	PeekOwner(anon string) string
	// PeekKnown is Known.
	PeekKnown(id string) bool
}

// MemoryLinks is the in-memory link table. It is safe for concurrent use.
type MemoryLinks struct {
	mu sync.RWMutex
	t  linkTable
}

// NewMemoryLinks returns an empty link table.
func NewMemoryLinks() *MemoryLinks {
	return &MemoryLinks{t: newLinkTable()}
}

// Owner implements Links.
func (l *MemoryLinks) Owner(_ context.Context, anon string) (string, error) {
	l.mu.RLock()
	u := l.t.owner(anon)
	l.mu.RUnlock()
	return u, nil
}

// PeekOwner implements LinkPeeker.
func (l *MemoryLinks) PeekOwner(anon string) string {
	u, _ := l.Owner(context.Background(), anon)
	return u
}

// PeekKnown implements LinkPeeker.
func (l *MemoryLinks) PeekKnown(id string) bool {
	ok, _ := l.Known(context.Background(), id)
	return ok
}

// Known implements Links.
func (l *MemoryLinks) Known(_ context.Context, id string) (bool, error) {
	l.mu.RLock()
	ok := l.t.known(id)
	l.mu.RUnlock()
	return ok, nil
}

// MarkKnown implements Links. It is called on every event with a userId,
// so the common case (already known) takes only the read lock.
func (l *MemoryLinks) MarkKnown(_ context.Context, id string) error {
	l.mu.RLock()
	ok := l.t.known(id)
	l.mu.RUnlock()
	if ok {
		return nil
	}
	l.mu.Lock()
	l.t.markKnown(id)
	l.mu.Unlock()
	return nil
}

// Link implements Links.
func (l *MemoryLinks) Link(_ context.Context, anon, user string) error {
	l.mu.Lock()
	l.t.link(anon, user)
	l.mu.Unlock()
	return nil
}

// Unlink implements Links.
func (l *MemoryLinks) Unlink(_ context.Context, anon string) error {
	l.mu.Lock()
	l.t.unlink(anon)
	l.mu.Unlock()
	return nil
}

// Forget implements Links.
func (l *MemoryLinks) Forget(_ context.Context, id string) error {
	l.mu.Lock()
	l.t.forget(id)
	l.mu.Unlock()
	return nil
}

// Len returns the number of links (anonymous ids linked to a user).
func (l *MemoryLinks) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.t.links
}

// Range calls f for each link, in no particular order, until f returns
// false.
func (l *MemoryLinks) Range(f func(anon, user string) bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i := range l.t.slots {
		if s := &l.t.slots[i]; s.h != 0 && s.owner != "" {
			if !f(s.id, s.owner) {
				return
			}
		}
	}
}

// LinkPrefetcher is a LinkPeeker that can ask for what its lookups of some
// ids will read before they happen, all at once, so that the cache misses
// of a driver's next events overlap (see Peeker).
type LinkPrefetcher interface {
	PrefetchLinks(ids []string)
}

// Owned returns a view of l for one goroutine that owns l while it uses the
// view: it takes no locks, so nothing else may use l meanwhile (replay). The
// view and l hold the same links.
func (l *MemoryLinks) Owned() Links { return ownedLinks{l} }

type ownedLinks struct{ l *MemoryLinks }

func (o ownedLinks) Owner(_ context.Context, anon string) (string, error) {
	return o.l.t.owner(anon), nil
}

func (o ownedLinks) PeekOwner(anon string) string { return o.l.t.owner(anon) }

func (o ownedLinks) PeekKnown(id string) bool { return o.l.t.known(id) }

func (o ownedLinks) PrefetchLinks(ids []string) { o.l.t.prefetch(ids) }

func (o ownedLinks) Known(_ context.Context, id string) (bool, error) {
	return o.l.t.known(id), nil
}

func (o ownedLinks) MarkKnown(_ context.Context, id string) error {
	o.l.t.markKnown(id)
	return nil
}

func (o ownedLinks) Link(_ context.Context, anon, user string) error {
	o.l.t.link(anon, user)
	return nil
}

func (o ownedLinks) Unlink(_ context.Context, anon string) error {
	o.l.t.unlink(anon)
	return nil
}

func (o ownedLinks) Forget(_ context.Context, id string) error {
	o.l.t.forget(id)
	return nil
}
