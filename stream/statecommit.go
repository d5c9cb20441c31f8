package stream

import (
	"context"
	"errors"
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
//   - records are queued (a backlog) and Scoring.FlushInterval
//     (redis.flush_interval, 1s) has passed since the first change not
//     written;
//   - nothing is queued (the partition is caught up) and CommitInterval
//     (100ms) has passed since the first change not written — checked
//     after each batch, and by a timer while the partition is idle. A live
//     partition writes about ten times a second instead of after every
//     batch of a few records. Not once a second: one write of a second's
//     contacts (~650 per partition at 5,000 events/s over 6) held the partition
//     for tens of milliseconds, and the events arriving meanwhile made the
//     p99 (bench at 5,000/s: 200–320 ms against 57 ms for a write per
//     batch, and 32–85 ms with this rule, on a shared 2-core machine);
//   - the dirty contacts reach half the cache's capacity;
//   - a timer fires by the wall clock, the rules change, or the partition
//     stops (revoke, shutdown).
//
// The order of commits holds for every record: a batch's actions are
// produced and acknowledged when it is applied, its state is written after
// that, and its offset is noted for the committer only once its state is
// durable (pendingState keeps the latest batch's). A crash, a lost
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
	w.owe(offset)
	w.pend.eo, w.pend.hasEO = eo, true
	if w.holdState() {
		return nil
	}
	return w.settle(ctx)
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
	return w.settle(ctx)
}

// flushInterval is how long changes may wait to be written.
func (w *worker) flushInterval() time.Duration {
	if f := w.s.sc.FlushInterval; f > 0 {
		return f
	}
	return DefaultFlushInterval
}

// holdState reports whether the pending state may wait: it is younger than
// the flush interval and the cache has room.
func (w *worker) holdState() bool {
	capacity := w.s.sc.Cache.Capacity
	if capacity <= 0 {
		capacity = state.DefaultCacheCapacity
	}
	if w.cache.Dirty() >= max(capacity/2, 1) {
		return false
	}
	if n, _ := w.queued(); n > 0 {
		return time.Since(w.pend.since) < w.flushInterval()
	}
	return time.Now().Before(w.idleDue())
}

// settle writes the pending state, and notes the offset that waited for it.
func (w *worker) settle(ctx context.Context) error {
	if !w.pend.waiting {
		return nil
	}
	return w.commitState(ctx, w.pend.offset)
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
	if !w.pend.waiting || (!now && time.Now().Before(w.idleDue())) {
		return nil
	}
	return w.settle(ctx)
}

// stateDue returns a channel that delivers when the pending state of an
// idle partition is due (settleIdle); nil, which never delivers, when
// nothing is pending.
func (w *worker) stateDue() <-chan time.Time {
	if !w.pend.waiting {
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

// commitState commits the store as of offset (retrying while Redis is
// unavailable), then notes the offset a batch left pending. With memory it
// does nothing.
func (w *worker) commitState(ctx context.Context, offset int64) error {
	if w.cache == nil {
		return nil
	}
	// Never state whose output Kafka does not hold (output.go).
	if err := w.awaitOutput(ctx); err != nil {
		return err
	}
	pos := state.Position{Partition: w.part, Offset: max(offset, 0)}
	err := w.retry(ctx, "commit state", func() error {
		err := w.cache.Commit(ctx, pos)
		var ce *state.ConflictError
		if errors.As(err, &ce) {
			w.m.storeCommits.WithLabelValues("conflict").Inc()
			w.m.casRejections.Add(float64(len(ce.Contacts)))
			if !errors.Is(err, state.ErrUnavailable) {
				return nil // the rest was written; the rejected contacts are reloaded on their next event
			}
		}
		if err != nil {
			w.m.storeCommits.WithLabelValues("error").Inc()
			return err
		}
		w.m.storeCommits.WithLabelValues("ok").Inc()
		return nil
	})
	if err != nil {
		return err
	}
	if w.pend.waiting && w.pend.hasEO {
		w.s.commits.note(w.part, w.pend.eo)
	}
	w.pend.waiting, w.pend.hasEO, w.pend.since = false, false, time.Time{}
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
