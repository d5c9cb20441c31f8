package state

import (
	"context"
	"sync"
)

// Store keeps contacts. The engine Gets a contact, changes it in place and
// Puts it back; Commit makes every Put since the last Commit durable. A store
// may buffer Puts until Commit (write-behind), so callers must Commit before
// they acknowledge the input that caused the changes.
//
// # Failures and retries
//
// The engine changes the contact Get returned before it calls Put (it
// remembers the event's messageId and position, pops a fired timer), so a
// Put that failed could not be retried: the retry would find the event
// already in the contact and drop it, or apply it twice. Hence the contract:
//
//   - Get may fail (ErrUnavailable: Redis is down). Nothing has changed; the
//     caller may retry.
//   - Put must not fail. It only records in memory that the contact changed
//     (Memory: nothing to do; Cache: mark it dirty); the I/O belongs to
//     Commit. An implementation that cannot take a change returns an error
//     only for a misuse, and the caller must treat it as fatal for the
//     partition's state (engine.ErrDiverged): drop what is in memory and
//     start again from the last Commit.
//   - Commit may fail (ErrUnavailable). What was not written stays pending:
//     calling Commit again with the same position is safe and sends the same
//     bytes (see Cache.Commit).
//   - Delete may fail (ErrUnavailable) and may be retried: erasing twice is
//     erasing once.
//
// A Store is used by one goroutine at a time (one per partition) unless its
// doc says otherwise.
type Store interface {
	// Get returns the contact with this id, or a new empty one (not yet
	// stored) when there is none. Safe to retry.
	Get(ctx context.Context, id string) (*Contact, error)
	// Put records that c changed. It must not fail (see above).
	Put(ctx context.Context, c *Contact) error
	// Commit makes all Puts durable, as of the position pos. Safe to retry
	// with the same pos.
	Commit(ctx context.Context, pos Position) error
	// Delete erases everything held about the contact. Safe to retry.
	Delete(ctx context.Context, id string) error
}

// Peeker is a Store that can say which contact it holds in memory under an
// id, without I/O and without changing anything (nil: none held). A driver
// that knows its next events peeks at their contacts to prefetch them
// (Contact.PrefetchHead); the events still Get them.
type Peeker interface {
	// Peek appends to cs the contacts held under ids (those it most
	// likely holds: a guess is allowed to be wrong), after asking the
	// processor for their fields (Contact.PrefetchHead).
	Peek(ids []string, cs []*Contact) []*Contact
}

// Memory is the in-memory store: the embedded default for dev, replay and
// bench. Get returns the stored pointer itself, so Put and Commit cost
// nothing. It is safe for concurrent use; callers must still not change one
// contact from two goroutines at once (partitioning by contact sees to that).
type Memory struct {
	mu sync.RWMutex
	m  index
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: newIndex()} }

// Get implements Store.
func (s *Memory) Get(_ context.Context, id string) (*Contact, error) {
	s.mu.RLock()
	c := s.m.get(s.m.hash(id), id)
	s.mu.RUnlock()
	if c == nil {
		c = New(id)
	}
	return c, nil
}

// Peek implements Peeker. The index is read under the read lock (another
// goroutine's Put may grow it), and the ids are compared exactly, not only
// their hashes: every contact returned is held under one of ids. So a
// goroutine that owns the contacts of ids (a stream worker: the contacts
// of its partition) may read the fields of those returned without a lock,
// while other goroutines change their own contacts (Partition.Prefetch
// reads their slices' headers).
func (s *Memory) Peek(ids []string, cs []*Contact) []*Contact {
	s.mu.RLock()
	cs = s.m.peek(ids, cs, true)
	s.mu.RUnlock()
	return cs
}

// Put implements Store. Changing a stored contact needs no write: Get
// returned the stored pointer itself, which the contact's note of its store
// (Contact.home) tells without a lookup.
func (s *Memory) Put(_ context.Context, c *Contact) error {
	if c.home == s {
		return nil
	}
	s.mu.Lock()
	s.put(c)
	s.mu.Unlock()
	return nil
}

// put stores c, whose note says it is not stored here; s.mu is held.
func (s *Memory) put(c *Contact) {
	h := s.m.hash(c.ID)
	if old := s.m.get(h, c.ID); old != nil && old != c {
		old.home = nil
	}
	s.m.set(h, c)
	c.home = s
}

// Commit implements Store; memory needs no flush.
func (s *Memory) Commit(context.Context, Position) error { return nil }

// Delete implements Store.
func (s *Memory) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	s.delete(id)
	s.mu.Unlock()
	return nil
}

func (s *Memory) delete(id string) {
	if c := s.m.remove(s.m.hash(id), id); c != nil {
		c.home = nil
	}
}

// Owned returns a view of s for one goroutine that owns s while it uses the
// view: it takes no locks, so nothing else may use s meanwhile (replay,
// which reads the store only when it is done, saves two atomic operations
// per lookup). The view and s hold the same contacts.
func (s *Memory) Owned() Store { return ownedMemory{s} }

type ownedMemory struct{ s *Memory }

func (o ownedMemory) Get(_ context.Context, id string) (*Contact, error) {
	if c := o.s.m.get(o.s.m.hash(id), id); c != nil {
		return c, nil
	}
	return New(id), nil
}

// Peek compares hashes only: the view's owner owns every contact, so a
// collision costs only a prefetch.
func (o ownedMemory) Peek(ids []string, cs []*Contact) []*Contact { return o.s.m.peek(ids, cs, false) }

func (o ownedMemory) Put(_ context.Context, c *Contact) error {
	if c.home != o.s {
		o.s.put(c)
	}
	return nil
}

func (o ownedMemory) Commit(context.Context, Position) error { return nil }

func (o ownedMemory) Delete(_ context.Context, id string) error {
	o.s.delete(id)
	return nil
}

// Len returns the number of stored contacts.
func (s *Memory) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m.n
}

// Range calls f for each stored contact, in no particular order, until f
// returns false.
func (s *Memory) Range(f func(*Contact) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sl := range s.m.slots {
		if sl.h != 0 && !f(sl.c) {
			return
		}
	}
}
