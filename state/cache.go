package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// DefaultCacheCapacity is the default number of contacts a partition's Cache
// keeps in memory. A typical B2B contact takes about 6 KiB decoded (measured:
// BenchmarkCodecB2B/decode allocates 6 KB), so that is ~120 MiB per
// partition: an instance owning ten partitions holds about a GiB. A miss
// costs little more, since Prefetch loads a batch's misses in one round trip.
const DefaultCacheCapacity = 20_000

// CacheOptions configures a Cache.
type CacheOptions struct {
	// Capacity is the most contacts kept in memory; the least recently used
	// clean contact is dropped beyond it. Contacts changed since the last
	// Commit are never dropped, so a batch may exceed Capacity by its own
	// size until it commits; keep Capacity well above the batch size.
	// default: DefaultCacheCapacity (20 000)
	Capacity int `yaml:"capacity"`

	// FilterBits is the size in bits of each partition's new-contact
	// filter (state/filter.go), which spares the load of a contact that is
	// certainly not stored; 0 is the default, negative turns the filter
	// off (and marks the partition's filter unusable when its owner opens
	// it, since it no longer keeps it). The size of an existing filter is
	// its own: this sets only new ones.
	// default: DefaultFilterBits (8388608: 1 MiB per partition)
	FilterBits int `yaml:"filter_bits"`
}

// Cache is a partition's write-behind cache in front of Redis, and the
// state.Store the engine uses in production.
//
// The owner of a partition makes one Cache on assignment and drops it on
// revoke: the cache trusts that no one else writes its contacts meanwhile, so
// a later owner must start cold. Per batch of records:
//
//	cache.Prefetch(ctx, contactsOfBatch)  // one round trip for every miss
//	for each record: c, _ := cache.Get(ctx, id); apply; cache.Put(ctx, c)
//	cache.Commit(ctx, positionOfBatch)    // one round trip for every change
//	commit the Kafka offset
//
// Get returns the cached pointer, so applying an event to a cached contact
// costs no I/O and no copy. Commit is a compare-and-set on the Kafka position
// (see Redis): a contact whose stored state is newer is left alone and
// reported in a *ConflictError.
//
// A Cache is used by its partition's goroutine only; Stats may be read from
// any goroutine.
type Cache struct {
	r        *Redis
	capacity int

	// Owned by the partition goroutine.
	m     map[string]*centry
	lru   centry    // sentinel of the recency ring: lru.next is the most recent
	dirty []*centry // contacts Put since they were last encoded for a write
	fl    *flight   // the write not known to have landed yet; nil if none
	ah    *ahead    // the load PrefetchAhead started; nil if none
	// meanBlob is the bytes per contact of the last write: it sizes the
	// next one's buffer.
	meanBlob int
	// The partition's new-contact filter (OpenFilter); nil when not open
	// or not usable. fpend are bits set in flt that Redis does not hold
	// yet: the next write sets them before its blobs.
	filterBits int
	opened     bool
	flt        *filter
	fpend      []uint64

	hits, misses, evictions atomic.Uint64
}

// blobSize is the bytes to reserve per contact of a write.
func (c *Cache) blobSize() int {
	if n := c.meanBlob; n > 0 {
		return n + n/8
	}
	return 1024
}

type centry struct {
	c     *Contact // nil while a Prefetch is loading it
	ver   int64    // the stored version this copy builds on
	dirty bool     // Put since it was last encoded for a write
	// flying: the write in flight (or a failed one, until resent) holds an
	// encoding of it. Until that write is known to have landed the entry
	// is the only up-to-date copy, so it is not evicted.
	flying     bool
	prev, next *centry
}

// flight is a write of the contacts encoded by one commit (CommitAsync),
// sent by a goroutine of its own while the partition goroutine applies the
// next batch. It keeps the bytes it sent: a write that failed is resent
// with the same bytes, so that if the first attempt landed after all, the
// compare-and-set recognises them.
type flight struct {
	pos Position
	ws  []pending
	es  []*centry // parallel to ws
	// gate, if set, must return nil before the write is sent (CommitAfter);
	// it is cleared once it has.
	gate func(context.Context) error
	// filter, if set, is the partition's new-contact filter: bits (the
	// write's new contacts) are set there and its F raised past pos
	// before the blobs are sent; cleared once Redis has acknowledged them.
	filter *filterKeys
	bits   []uint64
	stop   context.CancelFunc // ends a wait for the gate (Close)
	// Written by the write's goroutine until done closes; read by the
	// partition goroutine after.
	res  []wrote
	err  error
	done chan struct{} // closed when the write returns; nil when not sent
}

// ahead is a load of contacts started by PrefetchAhead, on a goroutine of
// its own, while the partition applies a batch. Its contacts have
// placeholders in the map (centry.c nil, not in the recency ring) until
// collectAhead fills them in: whoever needs one first waits for the load,
// and no other load of the same contact can start meanwhile.
type ahead struct {
	ids []string
	// Written by the load's goroutine until done closes.
	got  []loaded
	err  error
	done chan struct{}
	stop context.CancelFunc
}

// CacheStats are a Cache's counters.
type CacheStats struct {
	Hits, Misses, Evictions uint64
}

// NewCache returns an empty cache for one partition.
func NewCache(r *Redis, opts CacheOptions) *Cache {
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCacheCapacity
	}
	c := &Cache{r: r, capacity: opts.Capacity, filterBits: opts.FilterBits, m: make(map[string]*centry)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

var _ Store = (*Cache)(nil)

// Len returns the number of contacts held.
func (c *Cache) Len() int { return len(c.m) }

// Dirty returns the number of contacts Put since the last Commit or
// CommitAsync: the writes the next one sends. A caller that commits less
// often than once per batch (coalescing a contact's changes over several
// batches into one write) bounds it, since dirty contacts are never
// evicted.
func (c *Cache) Dirty() int { return len(c.dirty) }

// InFlight returns the number of contacts of the write not known to have
// landed (CommitAsync, or a Commit that failed): they are not evicted
// either.
func (c *Cache) InFlight() int {
	if c.fl == nil {
		return 0
	}
	return len(c.fl.ws)
}

// Stats returns the counters; safe from any goroutine.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
}

func (c *Cache) unlink(e *centry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFront(e *centry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

func (c *Cache) touch(e *centry) {
	if c.lru.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
}

// evict drops least recently used clean contacts (neither dirty nor in
// flight) while the map holds more
// than capacity. Callers add a new entry to the map, evict, then link it,
// so that the contact a Get or Prefetch just loaded is not the one dropped:
// dropping a contact between its Get and its Put would lose the stored
// version it builds on.
func (c *Cache) evict() {
	for e := c.lru.prev; len(c.m) > c.capacity && e != &c.lru; {
		prev := e.prev
		if !e.dirty && !e.flying {
			c.unlink(e)
			delete(c.m, e.c.ID)
			c.evictions.Add(1)
		}
		e = prev
	}
}

// Get implements Store: the cached contact, or the stored one (one round
// trip), or a new one.
func (c *Cache) Get(ctx context.Context, id string) (*Contact, error) {
	if e := c.m[id]; e != nil && e.c == nil {
		c.collectAhead() // a placeholder of PrefetchAhead: its load fills it in
	}
	if e := c.m[id]; e != nil {
		c.hits.Add(1)
		c.touch(e)
		return e.c, nil
	}
	c.misses.Add(1)
	var got [1]loaded
	if c.flt != nil && !c.flt.has(id) {
		c.r.skipped.Add(1) // certainly not stored
		got[0] = loaded{c: New(id)}
	} else if err := c.r.waitLoad(ctx, []string{id}, got[:]); err != nil {
		return nil, err
	}
	e := &centry{c: got[0].c, ver: got[0].ver}
	c.m[id] = e
	c.evict() // before linking e, so that e itself stays
	c.pushFront(e)
	return e.c, nil
}

// Prefetch loads every contact of ids that is not cached, in one pipelined
// round trip (one per node in Cluster), so that the batch's Gets hit. Cached
// ones count as used.
func (c *Cache) Prefetch(ctx context.Context, ids []string) error {
	c.collectAhead()
	var miss []string
	for _, id := range ids {
		if e := c.m[id]; e != nil {
			if e.c != nil {
				c.touch(e)
			}
			continue
		}
		c.m[id] = &centry{} // placeholder: dedupes ids within the batch
		miss = append(miss, id)
	}
	if len(miss) == 0 {
		return nil
	}
	c.misses.Add(uint64(len(miss)))
	miss, fresh := c.sortNew(miss)
	got := make([]loaded, len(miss))
	if len(miss) > 0 {
		if err := c.r.waitLoad(ctx, miss, got); err != nil {
			for _, id := range miss {
				delete(c.m, id)
			}
			c.addNew(fresh)
			return err
		}
	}
	c.evict() // before linking the batch's contacts, so that they stay
	for i, id := range miss {
		e := c.m[id]
		e.c, e.ver = got[i].c, got[i].ver
		c.pushFront(e)
	}
	c.addNew(fresh)
	return nil
}

// sortNew moves the ids of miss the filter shows are not stored to the
// end of the slice, and returns the others and those.
func (c *Cache) sortNew(miss []string) (load, fresh []string) {
	if c.flt == nil {
		return miss, nil
	}
	n := 0
	for i, id := range miss {
		if c.flt.has(id) {
			miss[n], miss[i] = miss[i], miss[n]
			n++
		}
	}
	if n < len(miss) {
		c.r.skipped.Add(uint64(len(miss) - n))
	}
	return miss[:n], miss[n:]
}

// addNew fills the placeholders of contacts known not to be stored with
// new contacts.
func (c *Cache) addNew(fresh []string) {
	if len(fresh) == 0 {
		return
	}
	c.evict()
	for _, id := range fresh {
		e := c.m[id]
		e.c = New(id)
		c.pushFront(e)
	}
}

// PrefetchAhead starts loading the contacts of ids that are not cached, in
// one pipelined round trip, on a goroutine of its own, and returns at once:
// the caller passes the contacts of the records queued behind the batch it
// is about to apply, and the next Prefetch (or a Get of one of them) finds
// them loaded. A load already started is left to finish, and ids are
// ignored then. If the load fails, its contacts are simply not cached (the
// next Prefetch loads them and reports the error).
//
// Why: under a backlog every batch began with a Prefetch round trip for
// its new contacts, and the partition waited for it (queued in the
// single-threaded server behind the other partitions' writes) instead of
// applying; now that wait overlaps the previous batch.
func (c *Cache) PrefetchAhead(ctx context.Context, ids []string) {
	if c.ah != nil {
		return
	}
	var miss []string
	for _, id := range ids {
		if c.m[id] != nil {
			continue
		}
		c.m[id] = &centry{} // placeholder, filled in by collectAhead
		miss = append(miss, id)
	}
	if len(miss) == 0 {
		return
	}
	c.misses.Add(uint64(len(miss)))
	miss, fresh := c.sortNew(miss)
	c.addNew(fresh)
	if len(miss) == 0 {
		return
	}
	actx, stop := context.WithCancel(ctx)
	a := &ahead{ids: miss, got: make([]loaded, len(miss)), done: make(chan struct{}), stop: stop}
	c.ah = a
	go func() {
		defer close(a.done)
		defer stop()
		a.err = c.r.load(actx, a.ids, a.got)
	}()
}

// OpenFilter reads the partition's new-contact filter (state/filter.go),
// creating it if Redis holds none of the partition's contacts, so that
// from now on a contact the filter shows is not stored is not loaded
// (Prefetch, PrefetchAhead and Get make it new without a round trip), and
// keeps it: each write sets its new contacts' bits first. The owner of the
// partition calls it once, before its first batch: s.From is that batch's
// first offset. Until then, or when the filter is off (FilterBits < 0),
// not usable for this owner, or refused (an ACL without the commands of
// ACLRules), loads go to Redis as without it. It fails only with
// ErrUnavailable (call it again).
func (c *Cache) OpenFilter(ctx context.Context, s FilterScope) error {
	if c.opened {
		return nil
	}
	if s.Partitions <= 0 || s.PartitionOf == nil {
		c.opened = true
		return nil
	}
	if c.filterBits < 0 {
		if err := c.r.poisonFilter(ctx, c.r.filterKeys(s.Partitions, s.Partition)); errors.Is(err, ErrUnavailable) {
			return err
		}
		c.opened = true
		return nil
	}
	size := uint64(DefaultFilterBits)
	if c.filterBits > 0 {
		size = min(uint64(c.filterBits), maxFilterBits)
	}
	f, why, err := c.r.openFilter(ctx, s, size)
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	c.opened = true
	if err != nil {
		c.r.log.Warn("state: new-contact filter not used: every new contact is loaded from Redis first", "partition", s.Partition, "err", err)
		return nil
	}
	if f == nil {
		c.r.log.Info("state: new-contact filter not used: "+why, "partition", s.Partition)
		return nil
	}
	// Contacts cached already (a timer fired before the first batch) are
	// stored or about to be: their bits go with the next write.
	for id := range c.m {
		if i, isNew := f.add(id); isNew {
			c.fpend = append(c.fpend, i)
		}
	}
	c.flt = f
	return nil
}

// Cached reports whether the contact id is cached or being loaded: a
// PrefetchAhead of it would do nothing. It takes the id as bytes (a
// record's key) so that a hit converts nothing.
func (c *Cache) Cached(id []byte) bool { return c.m[string(id)] != nil }

// collectAhead waits for the load PrefetchAhead started, if any, and fills
// in its placeholders; if it failed, it drops them.
func (c *Cache) collectAhead() {
	a := c.ah
	if a == nil {
		return
	}
	<-a.done
	c.ah = nil
	if a.err != nil {
		for _, id := range a.ids {
			delete(c.m, id)
		}
		return
	}
	for i, id := range a.ids {
		e := c.m[id] // the placeholder: only collectAhead replaces it
		e.c, e.ver = a.got[i].c, a.got[i].ver
	}
	c.evict() // before linking the loaded contacts, so that they stay
	for _, id := range a.ids {
		c.pushFront(c.m[id])
	}
}

// Put implements Store: c changed and is written at the next Commit.
func (c *Cache) Put(_ context.Context, ct *Contact) error {
	if e := c.m[ct.ID]; e != nil && e.c == nil {
		c.collectAhead()
	}
	e := c.m[ct.ID]
	if e == nil {
		// Not obtained from Get: it builds on no stored version.
		e = &centry{c: ct}
		c.m[ct.ID] = e
		c.evict()
		c.pushFront(e)
	} else {
		e.c = ct
		c.touch(e)
	}
	if !e.dirty {
		e.dirty = true
		c.dirty = append(c.dirty, e)
	}
	return nil
}

// Commit implements Store: it writes every contact Put since the last Commit
// in one pipelined round trip, as of pos (the partition and the offset of
// the batch's last record), with the compare-and-set described at Redis. A
// contact without changes costs nothing; a Commit without changes makes no
// round trip. A write CommitAsync left in flight is waited for first (Wait).
//
// On ErrUnavailable, the contacts not written are kept with the bytes that
// were sent: call Commit again with the same pos (no Put in between is
// needed); it resends the same bytes. On a *ConflictError
// (errors.Is(err, ErrConflict)), the listed contacts were left alone
// because Redis holds newer state, and were dropped from the cache so the
// next Get reads it; all others were written. Both may come together
// (errors.Join).
func (c *Cache) Commit(ctx context.Context, pos Position) error {
	err := c.CommitAsync(ctx, pos)
	if !onlyConflicts(err) || c.fl == nil {
		return err
	}
	return errors.Join(err, c.Wait(ctx))
}

// CommitAsync encodes every contact Put since the last commit, as of pos,
// and starts writing them on a goroutine of its own; it returns without
// waiting for Redis. The caller goes on applying records (Get, Put) while
// the write is in flight, and calls Wait to learn that it landed before it
// acknowledges the input the write covers (commits the Kafka offset).
//
// Why: a commit's round trip (tens of milliseconds for a backlog's second
// of changes, with the server's compare-and-set per contact) held the
// partition goroutine, and the records arriving meanwhile waited; the
// encoding needs the goroutine (it owns the contacts), the write does not.
//
// One write is in flight at a time: a write still in flight is waited for
// first (Wait), so that each write builds on the versions the previous one
// stored. It fails only as Wait does, or for an invalid pos; a
// *ConflictError alone (contacts of the previous write rejected) comes with
// the write started.
func (c *Cache) CommitAsync(ctx context.Context, pos Position) error {
	return c.CommitAfter(ctx, pos, nil)
}

// CommitAfter is CommitAsync whose write is sent only once gate returns
// nil, on the write's goroutine: the caller encodes the state as of pos now
// and goes on, and the write waits for what must be durable before the
// state is (the partition's actions acknowledged by Kafka). If gate fails,
// nothing is sent: Wait returns gate's error, and the contacts stay in
// flight with their bytes, resent (gate first again) by the next Wait. A
// nil gate is CommitAsync.
//
// Why: a partition waited for its output's acknowledgement before it
// started each state write, about ten times a second when caught up, and
// the records arriving meanwhile waited behind it.
func (c *Cache) CommitAfter(ctx context.Context, pos Position, gate func(context.Context) error) error {
	werr := c.Wait(ctx)
	if !onlyConflicts(werr) {
		return werr
	}
	if len(c.dirty) == 0 {
		return werr
	}
	if pos.Offset < 0 {
		return configError("commit at partition %d offset %d: a Kafka offset is 0 or more", pos.Partition, pos.Offset)
	}
	fl := &flight{pos: pos, ws: make([]pending, len(c.dirty)), es: make([]*centry, len(c.dirty))}
	// One buffer for the blobs (they are read-only once encoded; a buffer
	// that grows leaves the earlier blobs in the array they were written to).
	buf := make([]byte, 0, len(c.dirty)*c.blobSize())
	for i, e := range c.dirty {
		e.c.Pos = pos
		n := len(buf)
		var err error
		if buf, err = appendEncode(buf, e.c); err != nil {
			// Nothing was sent: the contacts encoded so far are dirty still.
			return err
		}
		fl.ws[i] = pending{id: e.c.ID, blob: buf[n:len(buf):len(buf)], ver: e.ver, due: earliest(e.c.Timers)}
		fl.es[i] = e
	}
	c.meanBlob = len(buf) / len(c.dirty)
	if c.flt != nil {
		// The write's new contacts' bits go to Redis before its blobs.
		for _, e := range c.dirty {
			if i, isNew := c.flt.add(e.c.ID); isNew {
				c.fpend = append(c.fpend, i)
			}
		}
		fl.filter, fl.bits = &c.flt.keys, c.fpend
		c.fpend = nil
	}
	for _, e := range c.dirty {
		e.dirty, e.flying = false, true
	}
	clear(c.dirty)
	c.dirty = c.dirty[:0]
	c.fl = fl
	fl.gate = gate
	fl.done = make(chan struct{})
	gctx, stop := context.WithCancel(ctx)
	fl.stop = stop
	go func() {
		defer close(fl.done)
		defer stop()
		fl.send(ctx, gctx, c.r)
	}()
	return werr
}

// send writes the flight's contacts once its gate has opened (waiting for
// it under gctx).
func (fl *flight) send(ctx, gctx context.Context, r *Redis) {
	if fl.gate != nil {
		if err := fl.gate(gctx); err != nil {
			fl.res, fl.err = nil, err // nothing sent: every contact stays in flight
			return
		}
		fl.gate = nil
	}
	if fl.filter != nil {
		// The bits of the new contacts, and F past pos, before any blob
		// can land (state/filter.go); a failure sends nothing.
		if err := r.markFilter(ctx, *fl.filter, fl.pos.Offset+1, fl.bits); err != nil {
			fl.res, fl.err = nil, err
			return
		}
		fl.filter, fl.bits = nil, nil
	}
	fl.res, fl.err = r.write(ctx, fl.pos, fl.ws)
}

// Writing returns a channel that is closed when the write in flight
// returns (call Wait then, which does not block); nil, which never
// delivers, when no write is in flight.
func (c *Cache) Writing() <-chan struct{} {
	if c.fl == nil {
		return nil
	}
	return c.fl.done
}

// Wait waits for the write CommitAsync started, and settles its outcome:
// the contacts it wrote build on their new stored versions; those Redis
// held newer state for are dropped (a *ConflictError, as Commit). If the
// write failed (ErrUnavailable), the contacts it did not write stay in
// flight with the bytes it sent: the next Wait (or Commit, or CommitAsync)
// resends those bytes before anything else, on the calling goroutine. With
// nothing in flight it returns nil at once.
//
// If ctx ends first, Wait returns its error and the write stays in flight.
func (c *Cache) Wait(ctx context.Context) error {
	fl := c.fl
	if fl == nil {
		return nil
	}
	if fl.done == nil {
		// A failed write: resend what did not land, with the same bytes.
		fl.send(ctx, ctx, c.r)
	} else {
		select {
		case <-fl.done:
		case <-ctx.Done():
			return fmt.Errorf("state: waiting for the write of partition %d at offset %d: %w", fl.pos.Partition, fl.pos.Offset, ctx.Err())
		}
		fl.done = nil
	}
	err := fl.err
	if fl.res == nil && err == nil {
		err = fmt.Errorf("state: the write of partition %d at offset %d returned no outcome", fl.pos.Partition, fl.pos.Offset)
	}
	var conflicts []Conflict
	keep := 0
	for i, e := range fl.es {
		var w wrote
		if fl.res != nil {
			w = fl.res[i]
		}
		switch w.out {
		case written, same:
			e.flying, e.ver = false, w.ver
		case rejected:
			e.flying = false
			conflicts = append(conflicts, Conflict{Contact: e.c.ID, Stored: w.stored})
			if c.m[e.c.ID] == e {
				c.unlink(e)
				delete(c.m, e.c.ID)
			}
			if e.dirty {
				// Put again meanwhile: its changes build on state Redis
				// has superseded, and are dropped with it.
				e.dirty = false
				c.dirty = slices.DeleteFunc(c.dirty, func(x *centry) bool { return x == e })
			}
		default: // not sent: resent by the next Wait
			fl.ws[keep], fl.es[keep] = fl.ws[i], e
			keep++
		}
	}
	if keep == 0 {
		c.fl = nil
	} else {
		clear(fl.ws[keep:])
		clear(fl.es[keep:])
		fl.ws, fl.es, fl.res = fl.ws[:keep], fl.es[:keep], nil
	}
	c.evict() // a batch larger than the room left may have overfilled the cache
	if len(conflicts) == 0 {
		return err
	}
	pos := fl.pos
	n := min(len(conflicts), 5)
	ids := make([]string, 0, n)
	for _, x := range conflicts[:n] {
		ids = append(ids, x.Contact)
	}
	c.r.log.Warn("state: stale contact writes rejected: Redis holds newer state (replayed batch, or another instance wrote this partition)",
		"partition", pos.Partition, "offset", pos.Offset, "rejected", len(conflicts), "contacts", ids)
	return errors.Join(err, &ConflictError{Pos: pos, Contacts: conflicts})
}

// onlyConflicts reports whether err is nil or a *ConflictError alone: the
// write landed, but for contacts Redis holds newer state of, which Wait
// dropped from the cache (the caller's next Get reads them).
func onlyConflicts(err error) bool {
	if err == nil {
		return true
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyConflicts(e) {
				return false
			}
		}
		return true
	}
	var ce *ConflictError
	return errors.As(err, &ce)
}

// Close waits for a write in flight to return, without settling it: for
// a partition goroutine that leaves without committing (its partition was
// lost), so that no write outlives its owner. Writes are bounded by the
// Redis timeouts; a write still waiting for its gate (CommitAfter) is not
// sent.
func (c *Cache) Close() {
	if a := c.ah; a != nil {
		a.stop()
		<-a.done
		c.ah = nil
	}
	if c.fl != nil && c.fl.done != nil {
		c.fl.stop()
		<-c.fl.done
	}
}

// Delete implements Store: it drops the contact from the cache (with any
// uncommitted change) and erases it from Redis (see Redis.Erase). A write
// in flight is waited for first, so that it cannot land after the erasure.
func (c *Cache) Delete(ctx context.Context, id string) error {
	if err := c.Wait(ctx); !onlyConflicts(err) {
		return err
	}
	c.collectAhead() // its load of id must not land after the erasure
	if e := c.m[id]; e != nil {
		if e.c != nil {
			c.unlink(e)
		}
		delete(c.m, id)
		if e.dirty {
			c.dirty = slices.DeleteFunc(c.dirty, func(x *centry) bool { return x == e })
		}
	}
	return c.r.Erase(ctx, id)
}

// DueTimers is Redis.DueTimers for this cache's partition, with this cache's
// changes not known to be stored applied: a timer fired or set since the
// last commit is seen as the engine left it. A dirty contact's timers are
// the cache's instead of Redis'; a contact of the write in flight (not
// landed, or failed) has both Redis' and the cache's (stale ones are
// harmless: a timer fires only if its contact still holds it, while a
// missing one would never fire; Redis may hold newer state if the write is
// rejected).
//
// It does not wait for the write in flight. It did, and a partition loading
// its next timers (every half TimerHorizon of event time: about every
// 30,000 events of a backlog in the bench) stalled until a write of a flush
// interval's contacts landed, up to a second on a busy server.
func (c *Cache) DueTimers(ctx context.Context, partition int32, upTo int64) ([]TimerRef, error) {
	refs, err := c.r.DueTimers(ctx, partition, upTo)
	if err != nil {
		return nil, err
	}
	var flying []*centry
	if c.fl != nil {
		flying = c.fl.es
	}
	if len(c.dirty) == 0 && len(flying) == 0 {
		return refs, nil
	}
	refs = slices.DeleteFunc(refs, func(t TimerRef) bool {
		e := c.m[t.Contact]
		return e != nil && e.dirty
	})
	add := func(e *centry) {
		for _, t := range e.c.Timers {
			if t.Due <= upTo {
				refs = append(refs, TimerRef{Contact: e.c.ID, Trigger: t.Trigger, Due: t.Due, Set: t.Set})
			}
		}
	}
	for _, e := range c.dirty {
		add(e)
	}
	for _, e := range flying {
		if !e.dirty {
			add(e)
		}
	}
	slices.SortFunc(refs, func(a, b TimerRef) int {
		return cmp.Or(cmp.Compare(a.Due, b.Due), strings.Compare(a.Contact, b.Contact), cmp.Compare(a.Set, b.Set), strings.Compare(a.Trigger, b.Trigger))
	})
	return slices.Compact(refs), nil
}
