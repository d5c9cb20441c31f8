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
// Under a backlog a partition applies batch after batch, and the same
// contacts come back in consecutive batches. Writing every changed contact
// after each batch encoded and wrote such a contact once per batch: about
// 0.35 Redis writes per event in `leadpulse bench` (10,000 contacts, batches
// of ~2,000 records), each an encode (~7 µs) and a compare-and-set script
// (~10–13 µs of Redis CPU), more than the rest of the event's processing.
// So while more records wait, a batch's changes stay in the partition's
// cache (dirty contacts are never evicted), and one Commit writes the
// changes of several batches as of the last one's position, when:
//
//   - Scoring.FlushInterval has passed since the first batch not written,
//   - the queue is empty (the partition is caught up) and CommitInterval
//     has passed since the first batch not written: a live partition
//     writes a few times per offset commit instead of after every batch
//     of a few records (at 5,000 events/s, ~130 round trips/s per
//     partition), off the path of the next batch,
//   - the dirty contacts reach half the cache's capacity,
//   - a timer fires (tick), the rules change, or the partition stops.
//
// The order of commits holds for every record: a batch's actions are
// produced and acknowledged when it is applied, its state is written
// after that, and its offset is noted for the committer only once its state
// is durable (pendingState keeps the latest batch's). A crash, a lost
// partition or a failed write therefore loses state and offsets together:
// the records are read again from the last committed offset, repeats are
// dropped by messageId and their actions come again with the same ids,
// exactly as after a crash between a batch's actions and its state commit.
type pendingState struct {
	eo      kgo.EpochOffset // the offset to note once the state is durable
	offset  int64           // the last applied record's offset: the position of the write
	waiting bool            // eo and offset are set: a batch's state is not written yet
	since   time.Time       // when the first batch not written was applied
	due     *time.Timer     // wakes an idle worker when the pending state is due (stateDue)
}

// afterBatch is called once a batch's actions are acknowledged: it writes
// the state and notes the offset eo, or leaves both for a later batch.
func (w *worker) afterBatch(ctx context.Context, offset int64, eo kgo.EpochOffset) error {
	if w.cache == nil {
		w.s.commits.note(w.part, eo)
		return nil
	}
	if !w.pend.waiting {
		w.pend.since = time.Now()
	}
	w.pend.eo, w.pend.offset, w.pend.waiting = eo, offset, true
	if w.holdState() {
		return nil
	}
	return w.commitState(ctx, offset)
}

// holdState reports whether the pending state may wait: the cache has room
// and the state is younger than FlushInterval while records are queued, or
// than the idle interval when none are.
func (w *worker) holdState() bool {
	capacity := w.s.sc.Cache.Capacity
	if capacity <= 0 {
		capacity = state.DefaultCacheCapacity
	}
	if w.cache.Dirty() >= max(capacity/2, 1) {
		return false
	}
	age := time.Since(w.pend.since)
	if n, _ := w.queued(); n > 0 {
		interval := w.s.sc.FlushInterval
		if interval <= 0 {
			interval = DefaultFlushInterval
		}
		return age < interval
	}
	return age < w.idleInterval()
}

// settle writes the state a batch left pending, and notes its offset.
func (w *worker) settle(ctx context.Context) error {
	if !w.pend.waiting {
		return nil
	}
	return w.commitState(ctx, w.pend.offset)
}

// idleInterval is how long a caught-up partition keeps its pending state.
func (w *worker) idleInterval() time.Duration {
	d := w.cfg.CommitInterval
	if f := w.s.sc.FlushInterval; f > 0 && f < d {
		d = f
	}
	return d
}

// settleIdle writes the pending state of a partition with nothing queued if
// it is due, or now.
func (w *worker) settleIdle(ctx context.Context, now bool) error {
	if !w.pend.waiting || (!now && time.Since(w.pend.since) < w.idleInterval()) {
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
	d := time.Until(w.pend.since.Add(w.idleInterval()))
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
	if w.pend.waiting {
		w.s.commits.note(w.part, w.pend.eo)
		w.pend.waiting, w.pend.since = false, time.Time{}
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
