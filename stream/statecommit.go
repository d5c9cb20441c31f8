package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/state"
)

// DefaultFlushInterval is Scoring.FlushInterval's default.
const DefaultFlushInterval = time.Second

// Coalesced state commits (Redis).
//
// A partition applies batch after batch, and the same contacts come back in
// consecutive batches. Writing every changed contact after each batch
// encoded and wrote such a contact once per batch: about 0.35 Redis writes
// per event under a backlog in `leadpulse bench` (10,000 contacts, batches
// of ~2,000 records), about one per event when caught up (batches of a few
// records), each an encode (~7 µs) and a compare-and-set script (10–25 µs
// of Redis CPU, more with AOF), more than the rest of the event's
// processing. So a batch's changes stay in the partition's cache (dirty
// contacts are never evicted), and one Commit writes the changes of several
// batches as of the last one's position, when:
//
//   - at least half a batch of records is queued (a backlog, see
//     backlog) and Scoring.FlushInterval (redis.flush_interval, 1s) has
//     passed since the first change not written;
//   - fewer are queued (the partition keeps up) and CommitInterval
//     (100ms) has passed since the first change not written — checked
//     after each batch, and by a timer while the partition is idle. A live
//     partition writes about ten times a second instead of after every
//     batch of a few records. Not once a second: one write of a second's
//     contacts (~650 per partition at 5,000 events/s over 6) held the partition
//     for tens of milliseconds, and the events arriving meanwhile made the
//     p99 (bench at 5,000/s: 200–320 ms against 57 ms for a write per
//     batch, and 32–85 ms with this rule, on a shared 2-core machine);
//   - the dirty contacts (with those in flight) reach half the cache's
//     capacity;
//   - a timer fires by the wall clock, the rules change, or the partition
//     stops (revoke, shutdown).
//
// In the first two cases the write also waits for the previous one to land:
// meanwhile the changes wait for the next write, not the worker, so a
// slower Redis gets fewer, larger writes.
//
// A write does not hold the partition: the worker encodes the changed
// contacts (it owns them) and a goroutine of the cache writes them
// (Cache.CommitAsync) while the worker applies the next batches; the
// worker collects the outcome (Cache.Wait) after a later batch, when it
// goes idle, or before its next write, whichever comes first. One write is
// in flight at a time. Why: the round trip of a write (a second's contacts
// under a backlog: tens of milliseconds, more while the other partitions'
// writes queue in the same single-threaded server) held the partition,
// and the records arriving meanwhile waited behind it.
//
// The order of commits holds for every record: a batch's actions are
// produced and acknowledged when it is applied, its state is written after
// that, and its offset is noted for the committer only once its state is
// durable (pendingState keeps the latest batch's, and the one of the write
// in flight). A crash, a lost
// partition or a failed write therefore loses state and offsets together:
// the records are read again from the last committed offset, repeats are
// skipped (Contact.Covers, messageIds) and their actions come again with the
// same ids, exactly as after a crash between a batch's actions and its
// state commit.
type pendingState struct {
	waiting bool            // the cache holds changes not written yet
	offset  int64           // the position to write them at: the last applied record's offset
	eo      kgo.EpochOffset // the offset to note once they are written, if hasEO
	hasEO   bool
	since   time.Time   // when the first change not written was made
	due     *time.Timer // wakes an idle worker when the pending state is due (stateDue)

	// The write in flight (Cache.CommitAsync), until its outcome is
	// collected (landed): the offset to note then, if flyHasEO.
	flying   bool
	flyEO    kgo.EpochOffset
	flyHasEO bool

	// Buffers of loadAhead: the queued records looked at, the
	// contacts to load.
	aheadQ   []*kgo.Record
	aheadIDs []string
}

// loadAhead starts loading (Cache.PrefetchAhead) the contacts of the
// records queued behind the batch about to be applied, by record key (the
// contact, in a keyed scoring topic), so that the next batch's Prefetch
// finds them loaded instead of waiting for a round trip. A key that is not
// the record's contact costs a useless load, nothing else: the next
// Prefetch loads by the decoded events.
//
// Only under a backlog (backlog: half a batch queued), where a batch takes
// long enough to hide the load. A partition keeping up applies a few
// records at a time: the load ahead was then waited for at the next batch
// all the same, after two more goroutine hand-offs, plus a second round
// trip for the records that arrived after it started (bench, 5,000/s, on a
// loaded machine: 27 s of the workers' time waiting for loads against 18 s
// with the synchronous Prefetch alone).
func (w *worker) loadAhead(ctx context.Context) {
	w.mu.Lock()
	if len(w.q) < max(w.cfg.BatchRecords/2, 1) {
		w.mu.Unlock()
		return
	}
	q := append(w.pend.aheadQ[:0], w.q[:min(len(w.q), w.cfg.BatchRecords)]...)
	w.mu.Unlock()
	// Queued records are not recycled before they are taken and applied:
	// their keys may be read without the lock.
	ids := w.pend.aheadIDs[:0]
	for _, r := range q {
		if len(r.Key) > 0 && !r.Attrs.IsControl() && !w.cache.Cached(r.Key) {
			ids = append(ids, string(r.Key))
		}
	}
	w.cache.PrefetchAhead(ctx, ids)
	clear(q)
	clear(ids)
	w.pend.aheadQ, w.pend.aheadIDs = q[:0], ids[:0]
}

// owe records that the cache holds changes to write as of offset.
func (w *worker) owe(offset int64) {
	if !w.pend.waiting {
		w.pend.waiting, w.pend.since = true, time.Now()
	}
	w.pend.offset = offset
}

// afterBatch is called once a batch's output is sent: it writes the state
// and notes the offset eo, or leaves both for later; either only after the
// output is acknowledged (output.go).
func (w *worker) afterBatch(ctx context.Context, offset int64, eo kgo.EpochOffset) error {
	if w.cache == nil {
		w.noteAcked(eo)
		return nil
	}
	if err := w.landed(ctx, false); err != nil {
		return err
	}
	w.owe(offset)
	w.pend.eo, w.pend.hasEO = eo, true
	if w.holdState() {
		return nil
	}
	return w.startWrite(ctx)
}

// afterRelease is called once the output of held events released between
// batches (identity hand-overs that timed out) is sent: their state is
// written with the pending state, after the output is acknowledged. While
// hand-overs are in flight this runs at every tick, and writing at once kept
// a live partition from coalescing anything.
func (w *worker) afterRelease(ctx context.Context) error {
	if w.cache == nil || w.cache.Dirty() == 0 {
		return nil
	}
	w.owe(max(w.next-1, 0))
	if w.holdState() {
		return nil
	}
	return w.startWrite(ctx)
}

// flushInterval is how long changes may wait to be written.
func (w *worker) flushInterval() time.Duration {
	if f := w.s.sc.FlushInterval; f > 0 {
		return f
	}
	return DefaultFlushInterval
}

// holdState reports whether the pending state may wait: it is younger than
// the flush interval, or the previous write is still in flight (the
// changes wait for it rather than the worker: a slower Redis gets larger,
// fewer writes), and the cache has room.
func (w *worker) holdState() bool {
	capacity := w.s.sc.Cache.Capacity
	if capacity <= 0 {
		capacity = state.DefaultCacheCapacity
	}
	if w.cache.Dirty()+w.cache.InFlight() >= max(capacity/2, 1) {
		return false
	}
	if w.pend.flying {
		return true // landed(ctx, false) found it still in flight
	}
	if w.backlog() {
		return time.Since(w.pend.since) < w.flushInterval()
	}
	return time.Now().Before(w.idleDue())
}

// backlog reports whether at least half a batch of records is queued: the
// partition is working through a backlog rather than keeping up. Not any
// record queued: a partition keeping up with 20,000 events/s often finds a
// few records queued when a batch ends (they arrived while it ran), and
// taking that for a backlog made it write once a flush interval, a
// second's contacts at once, as under a backlog.
func (w *worker) backlog() bool {
	n, _ := w.queued()
	return n >= max(w.cfg.BatchRecords/2, 1)
}

// settle writes the pending state and waits for it (and for the write in
// flight), and notes the offset that waited for it.
func (w *worker) settle(ctx context.Context) error {
	if !w.pend.waiting {
		return w.landed(ctx, true)
	}
	return w.commitState(ctx, w.pend.offset)
}

// writeState starts writing the changes as of offset now (timers fired by
// the wall clock), with the pending state. With memory it does nothing.
func (w *worker) writeState(ctx context.Context, offset int64) error {
	if w.cache == nil {
		return nil
	}
	w.owe(offset)
	return w.startWrite(ctx)
}

// startWrite starts writing the pending state (Cache.CommitAsync), once the
// write in flight has landed; its offset is noted when it lands in turn.
func (w *worker) startWrite(ctx context.Context) error {
	if err := w.landed(ctx, true); err != nil {
		return err
	}
	if !w.pend.waiting {
		return nil
	}
	// Never state whose output Kafka does not hold (output.go): the write
	// goes out once the output sent so far is acknowledged, and the worker
	// does not wait for that.
	if err := w.reap(); err != nil {
		return err
	}
	gate := w.outputGate()
	pos := state.Position{Partition: w.part, Offset: max(w.pend.offset, 0)}
	// Nothing is in flight: CommitAfter fails only to encode, which a retry
	// does not mend (not retryable: it ends the partition).
	if err := w.retry(ctx, "commit state", func() error { return w.countCommit(w.cache.CommitAfter(ctx, pos, gate), false) }); err != nil {
		return err
	}
	if w.cache.InFlight() == 0 {
		// Nothing to write (the changes were erased): durable already.
		if w.pend.hasEO {
			w.s.commits.note(w.part, w.pend.eo)
		}
	} else {
		w.pend.flying, w.pend.flyEO, w.pend.flyHasEO = true, w.pend.eo, w.pend.hasEO
	}
	w.pend.waiting, w.pend.hasEO, w.pend.since = false, false, time.Time{}
	return nil
}

// outputGate returns what a state write waits for before it is sent
// (Cache.CommitAfter): Kafka's acknowledgement of every output batch sent so
// far, which the state to write may have caused; it fails if Kafka refused
// one (reap stops the partition then too). Nil when nothing is in flight.
//
// Why not wait on the worker (awaitOutput): a partition keeping up writes
// its state about ten times a second, and waiting for a produce round trip
// before each write held the records arriving meanwhile (bench, Redis,
// 5,000 events/s: 6.2 s of the six workers' time in 25 s).
func (w *worker) outputGate() func(context.Context) error {
	if len(w.sent) == 0 {
		return nil
	}
	bs := slices.Clone(w.sent)
	part := w.part
	return func(ctx context.Context) error {
		for _, b := range bs {
			select {
			case <-b.settled:
			case <-ctx.Done():
				return fmt.Errorf("stream: partition %d: state write waiting for Kafka to acknowledge its actions: %w", part, ctx.Err())
			}
			if e := b.err.Load(); e != nil {
				return fmt.Errorf("stream: partition %d: state not written: Kafka refused the actions it follows: %w", part, *e)
			}
		}
		return nil
	}
}

// landed collects the outcome of the write in flight, if any, and notes
// the offset that waited for it: at once if the write has returned, or
// (block) after waiting for it. A write that failed is sent again, with
// the same bytes, until it lands (retrying while Redis is unavailable).
func (w *worker) landed(ctx context.Context, block bool) error {
	if !w.pend.flying {
		return nil
	}
	if ch := w.cache.Writing(); ch != nil && !block {
		select {
		case <-ch:
		default:
			return nil
		}
	}
	if err := w.retry(ctx, "commit state", func() error { return w.countCommit(w.cache.Wait(ctx), true) }); err != nil {
		return err
	}
	if w.pend.flyHasEO {
		w.s.commits.note(w.part, w.pend.flyEO)
	}
	w.pend.flying, w.pend.flyHasEO = false, false
	return nil
}

// writing returns a channel that delivers when the write in flight
// returns; nil, which never delivers, when there is none.
func (w *worker) writing() <-chan struct{} {
	if w.cache == nil || !w.pend.flying {
		return nil
	}
	return w.cache.Writing()
}

// quietInterval is how long a partition with nothing queued keeps changes.
func (w *worker) quietInterval() time.Duration {
	return min(w.cfg.CommitInterval, w.flushInterval())
}

// idleDue is when the pending state of a partition with nothing queued is
// due: CommitInterval after the first change not written.
func (w *worker) idleDue() time.Time {
	return w.pend.since.Add(w.quietInterval())
}

// settleIdle writes the pending state of a partition with nothing queued if
// it is due, or now.
func (w *worker) settleIdle(ctx context.Context, now bool) error {
	if now {
		return w.settle(ctx)
	}
	if err := w.landed(ctx, false); err != nil {
		return err
	}
	if !w.pend.waiting || w.pend.flying || time.Now().Before(w.idleDue()) {
		return nil
	}
	return w.startWrite(ctx)
}

// stateDue returns a channel that delivers when the pending state of an
// idle partition is due (settleIdle); nil, which never delivers, when
// nothing is pending, or while a write is in flight (writing wakes the
// worker when it returns).
func (w *worker) stateDue() <-chan time.Time {
	if !w.pend.waiting || w.pend.flying {
		return nil
	}
	d := time.Until(w.idleDue())
	if w.pend.due == nil {
		w.pend.due = time.NewTimer(d)
	} else {
		w.pend.due.Reset(d)
	}
	return w.pend.due.C
}

// commitState commits the store as of offset and waits for it (retrying
// while Redis is unavailable), after the write in flight, then notes the
// offsets that waited for them. With memory it does nothing.
func (w *worker) commitState(ctx context.Context, offset int64) error {
	if w.cache == nil {
		return nil
	}
	// Never state whose output Kafka does not hold (output.go).
	if err := w.awaitOutput(ctx); err != nil {
		return err
	}
	pos := state.Position{Partition: w.part, Offset: max(offset, 0)}
	if err := w.retry(ctx, "commit state", func() error { return w.countCommit(w.cache.Commit(ctx, pos), true) }); err != nil {
		return err
	}
	if w.pend.flying && w.pend.flyHasEO {
		w.s.commits.note(w.part, w.pend.flyEO)
	}
	if w.pend.waiting && w.pend.hasEO {
		w.s.commits.note(w.part, w.pend.eo)
	}
	w.pend.flying, w.pend.flyHasEO = false, false
	w.pend.waiting, w.pend.hasEO, w.pend.since = false, false, time.Time{}
	return nil
}

// countCommit counts the outcome of a store write (landed: a write's
// outcome, from Cache.Commit or Cache.Wait) and returns the error to retry
// on: contacts rejected as stale are counted and were dropped from the
// cache (reloaded on their next event), and the rest landed.
func (w *worker) countCommit(err error, landed bool) error {
	var ce *state.ConflictError
	if errors.As(err, &ce) {
		w.m.storeCommits.WithLabelValues("conflict").Inc()
		w.m.casRejections.Add(float64(len(ce.Contacts)))
		if !errors.Is(err, state.ErrUnavailable) {
			return nil
		}
	}
	if err != nil {
		w.m.storeCommits.WithLabelValues("error").Inc()
		return err
	}
	if landed {
		w.m.storeCommits.WithLabelValues("ok").Inc()
	}
	return nil
}

// timersAhead indexes the stored timers due up to TimerHorizon after the
// event time t. It loads half a horizon further than that, so that the
// batches of the next half horizon of event time need no round trip: a live
// partition's clock moves with every batch, and loading exactly up to
// t+TimerHorizon made one synchronous DueTimers round trip (ZRANGEBYSCORE,
// and the blobs of its candidates) per batch, before the batch was applied.
func (w *worker) timersAhead(ctx context.Context, t int64) error {
	h := int64(w.cfg.TimerHorizon)
	if t+h <= w.loaded {
		return nil
	}
	return w.loadTimers(ctx, t+h+h/2)
}
