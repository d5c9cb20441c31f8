package stream

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Pipelined output: a partition does not wait for Kafka's acknowledgement
// of a batch's actions, dead letters and identity records before it applies
// the next batch. It hands them to the producer (send) and goes on; what
// must follow the acknowledgement still does, because it happens only once
// every batch sent before it is acknowledged (reap, in order):
//
//   - the batch's offset is noted for the committer (memory: noteAcked);
//   - the store commits (Redis: a state write is sent only once all output
//     sent before it is acknowledged, outputGate), so a crash never finds
//     state durable whose actions Kafka does not hold;
//   - Scoring.OnAction and the action metrics;
//   - a revoked or stopping partition's final offset commit (awaitOutput).
//
// Why: a worker blocked in ProduceSync for a round trip of the broker after
// every batch with output, and the records that arrived meanwhile waited
// behind it. `leadpulse bench` at 5,000 events/s (memory, shared 2-core
// machine, load average 10–13): 2,926 ProduceSync calls in a 15 s phase
// held the six partitions 18.2 s in all, a fifth of each worker's time
// (mean 6.2 ms a call); the records queued meanwhile (polled → taken) had
// a p90 of 21 ms and a p99 of 83 ms. At 20,000 events/s a batch's wait
// (mean 150 ms) stalled its partition behind a growing backlog.
//
// Order is kept: one goroutine produces a partition's output, in order, and
// franz-go's idempotent producer keeps the order of each output partition.
// If Kafka refuses a record, its batch and every later one stay
// unacknowledged for the worker: nothing after them is noted or committed,
// and the partition stops with the error, as it did when it waited.
//
// Bounded: the producer buffers at most franz-go's MaxBufferedRecords
// (10,000 by default) records; Produce blocks the worker beyond that.
type sentBatch struct {
	recs []*kgo.Record
	meta []outMeta // parallel to recs

	left    atomic.Int32          // records not acknowledged or refused yet
	settled chan struct{}         // closed when left reaches 0 (outputGate)
	ackedAt atomic.Int64          // Unix ns of the last acknowledgement
	err     atomic.Pointer[error] // the first refusal

	// Set by the worker: the offset to note once this batch and every
	// earlier one are acknowledged (memory; Redis notes it after the store
	// commit).
	eo    kgo.EpochOffset
	hasEO bool
}

// send hands the output of what was applied (w.out: actions, dead letters,
// identity records) to the producer without waiting for Kafka's
// acknowledgement; reap settles it.
func (w *worker) send(ctx context.Context) {
	w.countStats()
	if len(w.out) == 0 {
		return
	}
	b := &sentBatch{recs: w.out, meta: w.meta, settled: make(chan struct{})}
	b.left.Store(int32(len(b.recs)))
	w.out, w.meta = nil, nil
	w.sent = append(w.sent, b)
	done := func(r *kgo.Record, err error) {
		if err != nil {
			w.m.produceErrors.WithLabelValues(r.Topic).Inc()
			b.err.CompareAndSwap(nil, &err)
		}
		if b.left.Add(-1) == 0 {
			b.ackedAt.Store(time.Now().UnixNano())
			close(b.settled)
			select {
			case w.acked <- struct{}{}:
			default:
			}
			w.signal()
		}
	}
	for _, r := range b.recs {
		w.s.cl.Produce(ctx, r, done)
	}
}

// reap settles, oldest first, the sent batches Kafka has acknowledged: it
// notes their offsets, counts their actions and calls Scoring.OnAction. It
// stops at the first batch still in flight, and returns the error of a
// batch Kafka refused.
func (w *worker) reap() error {
	n := 0
	defer func() {
		if n > 0 {
			clear(w.sent[:n])
			w.sent = slices.Delete(w.sent, 0, n)
		}
	}()
	for _, b := range w.sent {
		if b.left.Load() > 0 {
			return nil
		}
		if e := b.err.Load(); e != nil {
			return fmt.Errorf("stream: partition %d: produce %d actions and dead letters to %q/%q: %w (the offset was not committed: the records are applied again after a restart)",
				w.part, len(b.recs), w.cfg.Topics.Actions, w.cfg.Topics.DLQ, *e)
		}
		at := b.ackedAt.Load()
		for _, m := range b.meta {
			if m.action == "" {
				continue
			}
			w.m.actions.WithLabelValues(m.action).Inc()
			switch {
			case m.timer:
				w.m.timerDelay.Observe(float64(at-m.t0) / 1e9)
			case m.t0 != 0:
				w.m.latency.Observe(float64(at-m.t0) / 1e9)
			}
			if m.rec != nil {
				w.s.sc.OnAction(m.rec)
			}
		}
		if b.hasEO {
			w.s.commits.note(w.part, b.eo)
		}
		n++
	}
	return nil
}

// awaitOutput waits until Kafka has acknowledged everything sent, and
// settles it (reap).
func (w *worker) awaitOutput(ctx context.Context) error {
	for {
		if err := w.reap(); err != nil {
			return err
		}
		if len(w.sent) == 0 {
			return nil
		}
		select {
		case <-w.acked:
		case <-ctx.Done():
			return fmt.Errorf("stream: partition %d: waiting for Kafka to acknowledge the output of %d batches: %w", w.part, len(w.sent), ctx.Err())
		}
	}
}

// noteAcked notes eo for the committer once everything sent so far is
// acknowledged: at once when nothing is in flight.
func (w *worker) noteAcked(eo kgo.EpochOffset) {
	if n := len(w.sent); n > 0 {
		w.sent[n-1].eo, w.sent[n-1].hasEO = eo, true
		return
	}
	w.s.commits.note(w.part, eo)
}
