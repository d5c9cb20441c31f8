package stream

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/action"
	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

type stopMode int

const (
	running     stopMode = iota
	stopDrain            // revoke or shutdown: apply what is queued, flush, commit
	stopAbandon          // lost: the partition is someone else's; commit nothing
)

// worker owns one assigned partition of the scoring stage: its engine
// partition (clock and timer index), its store, and the order of its
// records. It applies records in batches; per batch it produces the actions
// and dead letters and waits for Kafka's acknowledgement, then commits the
// store, then commits the offset.
type worker struct {
	s     *scorer
	cfg   *Config
	m     *Metrics
	log   *slog.Logger
	topic string
	part  int32
	label string // part as a metric label
	// The partition's queue depth gauge (0 from the start: the queue is
	// empty) and lag gauge (made at the first batch: before it the lag is
	// unknown, not 0), looked up once; cleanup deletes them. lag is the
	// worker goroutine's.
	depth, lag prometheus.Gauge

	// The queue between the poll loop (push) and the worker (take); guarded
	// by mu. Fetching the partition is paused while paused is set; pause and
	// resume are called under mu so that they cannot cross.
	mu       sync.Mutex
	q        []*kgo.Record
	hw       int64 // the latest high watermark a fetch reported
	paused   bool
	stopping stopMode

	wake  chan struct{}                  // 1-buffered: push, stop and acknowledged output signal the worker
	acked chan struct{}                  // 1-buffered: a sent batch was acknowledged (awaitOutput)
	done  chan struct{}                  // closed when run returns
	reqs  chan func(ctx context.Context) // admin requests (Pipeline.Inspect), run between batches

	// Owned by the worker goroutine.
	rs      *rules.Ruleset // the rules eng runs
	eng     *engine.Partition
	store   state.Store
	cache   *state.Cache // the store, with Redis; nil with memory
	nparts  int
	route   kgo.TopicPartitioner // murmur2 of a contact → its partition
	probe   kgo.Record
	evs     []event.Event
	src     []*kgo.Record // the record of each evs entry
	erase   []string      // parallel to src: the contact a forget control record erases, "" for an event
	keys    []string      // parallel to src: the contact of an event checked to be this partition's (engine ContactOf), else ""
	ahead   []string      // prefetchAhead's scratch
	applied []int64       // event times of the batch's applied events, for Scoring.OnBatchApplied
	next    int64         // next offset to apply; -1 until known
	loaded  int64         // stored timers due up to here are indexed (Redis)
	out     []*kgo.Record // the batch's actions and dead letters, in order
	meta    []outMeta     // parallel to out
	sent    []*sentBatch  // output handed to the producer and not settled yet, oldest first (output.go)
	cause   int64         // the Kafka timestamp (ns) of the record being applied; 0 while the wall clock fires timers
	stats   rules.Stats   // the evaluator's counters at the last flush
	skipped uint64        // eng.Skipped() at the last batch
	firings []prometheus.Counter
	fatal   error              // set by emit when an action cannot be encoded
	parked  map[string]*parked // users held behind a linking event (identity.go); written through park and unpark
	// parkedIDs filters the lookups of parked (parkedUser).
	parkedIDs parkFilter
	// dec decodes the partition's records into evs (and relEv), with the
	// maps of the events applied before: letGo and release give them back.
	// The engine, the evaluator and Scoring.OnApplied keep nothing of an
	// event's maps past its application (trait values are copied into the
	// contact; nested values are never reused).
	dec        event.Decoder
	relEv      event.Event // a held record decoded again at its release
	heldEvents int         // held records that keep their decoded event (at most maxHeldEvents)
	// used are records nothing refers to any more once the output produced
	// so far is acknowledged (a dead letter or a forward copies a record's
	// bytes only when it is produced): recycle gives them back to
	// fetchPool. A held record joins them when it is applied.
	used []*kgo.Record
	pend pendingState // state and offset waiting for the next Redis commit (statecommit.go)
	enc  []byte       // emit's scratch: an action's JSON (action.Record.AppendJSON, json.Marshal's bytes without reflection)
	// filterOpen: the cache's new-contact filter was opened (at the first
	// batch, Cache.OpenFilter).
	filterOpen bool
}

type outMeta struct {
	action string // "" for a dead letter
	t0     int64  // cause: record timestamp (event) or due time (wall-clock timer), ns
	timer  bool
	rec    *action.Record // a copy for Scoring.OnAction, if set
}

func newWorker(s *scorer, p int32, nparts int) *worker {
	w := &worker{
		s: s, cfg: s.cfg, m: s.m, topic: s.cfg.scoreTopic(), part: p, label: partLabel(p),
		log:  s.log.With("partition", p),
		wake: make(chan struct{}, 1), acked: make(chan struct{}, 1), done: make(chan struct{}), reqs: make(chan func(context.Context)),
		hw: -1, next: -1, loaded: state.NoTime, nparts: nparts, parked: map[string]*parked{},
		route: kgo.StickyKeyPartitioner(nil).ForTopic(s.cfg.scoreTopic()),
	}
	w.parkedIDs.seed = maphash.MakeSeed()
	w.depth = s.m.queueDepth.WithLabelValues(w.label)
	if s.sc.Redis != nil {
		w.cache = state.NewCache(s.sc.Redis, s.sc.Cache)
		w.store = w.cache
	} else {
		w.store = s.sc.Memory
	}
	rs := s.p.rules.Load()
	w.rs = rs
	w.eng = w.newEngine(rs)
	w.dec = event.Decoder{SkipContext: !rs.ReadsContext(), Select: s.sc.reads(rs), MaxSpare: 3 * s.cfg.BatchRecords}
	w.stats.ByTrigger = make([]uint64, len(rs.Triggers))
	for _, t := range rs.Triggers {
		w.firings = append(w.firings, s.m.firings.WithLabelValues(t.ID))
	}
	return w
}

// newEngine returns the partition's engine under rs, with live identity.
func (w *worker) newEngine(rs *rules.Ruleset) *engine.Partition {
	eng := engine.NewPartition(rs, w.store, w.emit)
	eng.UseLiveLinks(w.heldContact)
	return eng
}

// push queues records fetched for the partition; called by the poll loop.
func (w *worker) push(rs []*kgo.Record, hw int64) {
	w.mu.Lock()
	w.q = append(w.q, rs...)
	w.hw = max(w.hw, hw)
	if !w.paused && len(w.q) >= w.cfg.QueueRecords {
		w.paused = true
		w.s.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.part}})
		w.m.pauses.Inc()
	}
	n := len(w.q)
	w.mu.Unlock()
	w.depth.Set(float64(n))
	w.signal()
}

func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop asks the worker to stop; it returns at once (wait on done).
func (w *worker) stop(mode stopMode) {
	w.mu.Lock()
	w.stopping = max(w.stopping, mode)
	w.mu.Unlock()
	w.signal()
}

// take removes up to BatchRecords queued records.
func (w *worker) take(buf []*kgo.Record) ([]*kgo.Record, stopMode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping == stopAbandon {
		return buf[:0], stopAbandon
	}
	n := min(len(w.q), w.cfg.BatchRecords)
	buf = append(buf[:0], w.q[:n]...)
	// What is left moves to the front, so that the queue keeps its array
	// from take to take: a caught-up partition takes everything at every
	// wake-up, and dropping the emptied array (as a slice from the front
	// must) made push allocate a new one for every few records. An array
	// larger than a caught-up partition needs (after a backlog) is let go
	// once the queue is empty.
	left := copy(w.q, w.q[n:])
	clear(w.q[left:])
	w.q = w.q[:left]
	if left == 0 && cap(w.q) > shrinkBelow {
		w.q = nil
	}
	if w.paused && len(w.q) <= w.cfg.QueueRecords/2 {
		w.paused = false
		w.s.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.part}})
	}
	w.depth.Set(float64(len(w.q)))
	return buf, w.stopping
}

func (w *worker) queued() (int, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.q), w.hw
}

func (w *worker) run() {
	defer close(w.done)
	defer w.cleanup()
	ctx := w.s.work
	if err := w.start(ctx); err != nil {
		w.s.fail(err)
		return
	}
	tick := time.NewTicker(w.cfg.Tick)
	defer tick.Stop()
	var batch []*kgo.Record
	for {
		// Between batches: everything before is applied and its output
		// sent; what Kafka has acknowledged since is settled here (offsets
		// noted, OnAction), the rest later (output.go). With Redis the
		// state may wait for a later commit (statecommit.go), so a rules
		// switch writes it first.
		if err := w.reap(); err != nil {
			w.s.fail(err)
			return
		}
		if rs := w.s.p.rules.Load(); rs != w.rs {
			if err := w.settle(ctx); err != nil {
				w.s.fail(err)
				return
			}
			if err := w.swapRules(ctx, rs); err != nil {
				w.s.fail(fmt.Errorf("stream: partition %d: switch rules: %w", w.part, err))
				return
			}
		}
		w.serve(ctx)
		var mode stopMode
		batch, mode = w.take(batch)
		if mode == stopAbandon {
			w.s.commits.drop(w.part)
			w.log.Info("stream: partition lost: queued records dropped uncommitted")
			return
		}
		if len(batch) > 0 {
			if err := w.process(ctx, batch); err != nil {
				w.s.fail(err)
				return
			}
			batch = w.letGo(batch)
			continue
		}
		// Caught up or stopping: write the state the last batches left
		// pending once it is due (at once when stopping), and note their
		// offset; when stopping, once all their output is acknowledged.
		if mode == stopDrain {
			if err := w.awaitOutput(ctx); err != nil {
				w.s.fail(err)
				return
			}
		}
		if err := w.settleIdle(ctx, mode == stopDrain); err != nil {
			w.s.fail(err)
			return
		}
		if mode == stopDrain {
			// Everything is applied; its offsets are committed before the
			// partition's next owner starts.
			if err := w.s.commits.flush(ctx); err != nil {
				w.log.Warn("stream: final offset commit failed; the partition's next owner applies the records after the last committed offset again (repeats are dropped by messageId, actions keep their ids)", "err", err)
			}
			return
		}
		if err := w.tick(ctx); err != nil {
			w.s.fail(err)
			return
		}
		select {
		case <-w.wake:
		case <-tick.C:
		case <-w.stateDue():
		case <-w.writing(): // settleIdle collects it
		case f := <-w.reqs:
			f(ctx)
		case <-ctx.Done():
			w.s.fail(fmt.Errorf("stream: partition %d: drain did not finish within %v: %w", w.part, w.cfg.DrainTimeout, ctx.Err()))
			return
		}
	}
}

func (w *worker) cleanup() {
	w.mu.Lock()
	if w.paused {
		// Pauses outlive assignments: a partition that comes back must not
		// come back paused.
		w.paused = false
		w.s.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.part}})
	}
	w.q = nil
	w.mu.Unlock()
	if w.cache != nil {
		w.cache.Close() // a write left in flight (lost partition, failure)
	}
	w.dropParked()
	w.m.queueDepth.DeleteLabelValues(w.label)
	w.m.lag.DeleteLabelValues(w.topic, w.label)
}

// start indexes the timers stored for the partition: all of them from the
// shared memory store (contacts whose key hashes to this partition), or,
// with Redis, those due within TimerHorizon of now.
func (w *worker) start(ctx context.Context) error {
	if w.cache != nil {
		return w.loadTimers(ctx, w.cfg.Clock().UnixNano()+int64(w.cfg.TimerHorizon))
	}
	w.indexMemoryTimers()
	return nil
}

// indexMemoryTimers indexes the pending timers of the partition's contacts
// in the shared memory store.
func (w *worker) indexMemoryTimers() {
	if w.nparts <= 0 {
		return
	}
	type ref struct {
		contact, trigger string
		due              int64
		set              uint64
	}
	var refs []ref
	w.s.sc.Memory.Range(func(c *state.Contact) bool {
		// c.ID never changes; the rest of a contact of this partition is
		// ours (its previous owner was joined before we were made).
		if w.partitionOf(c.ID) != w.part {
			return true
		}
		for _, t := range c.Timers {
			refs = append(refs, ref{c.ID, t.Trigger, t.Due, t.Set})
		}
		return true
	})
	slices.SortFunc(refs, func(a, b ref) int {
		return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.contact, b.contact), cmp.Compare(a.set, b.set))
	})
	for _, r := range refs {
		w.eng.AddTimer(r.contact, r.trigger, r.due)
	}
	w.loaded = math.MaxInt64
	if len(refs) > 0 {
		w.log.Info("stream: partition timers restored from memory", "timers", len(refs))
	}
}

// loadTimers indexes the stored timers due in (w.loaded, upTo]. Timers due
// earlier are indexed already: loaded at an earlier call, or set by this
// worker's engine.
func (w *worker) loadTimers(ctx context.Context, upTo int64) error {
	if w.cache == nil || upTo <= w.loaded {
		return nil
	}
	var refs []state.TimerRef
	err := w.retry(ctx, "load timers", func() error {
		var err error
		refs, err = w.cache.DueTimers(ctx, w.part, upTo)
		return err
	})
	if err != nil {
		return err
	}
	n := 0
	for _, r := range refs {
		if r.Due > w.loaded {
			w.eng.AddTimer(r.Contact, r.Trigger, r.Due)
			n++
		}
	}
	if n > 0 {
		w.log.Debug("stream: partition timers loaded", "timers", n)
	}
	w.loaded = upTo
	return nil
}

func (w *worker) partitionOf(contact string) int32 {
	w.probe.Key = append(w.probe.Key[:0], contact...)
	return int32(w.route.Partition(&w.probe, w.nparts))
}

// process applies a batch of records in order, then flushes and commits.
func (w *worker) process(ctx context.Context, batch []*kgo.Record) error {
	start := time.Now()
	cfg := w.cfg
	if w.cache != nil && !w.filterOpen {
		// The first batch starts at or after the committed offset: the
		// writes that offset depends on have landed, their contacts' bits
		// with them (state/filter.go).
		scope := state.FilterScope{Partition: w.part, Partitions: w.nparts, From: batch[0].Offset, PartitionOf: w.partitionOf}
		if err := w.retry(ctx, "open the new-contact filter", func() error { return w.cache.OpenFilter(ctx, scope) }); err != nil {
			return err
		}
		w.filterOpen = true
	}
	w.evs = slices.Grow(w.evs[:0], len(batch))[:len(batch)]
	w.src = w.src[:0]
	w.erase = w.erase[:0]
	w.keys = w.keys[:0]
	w.applied = w.applied[:0]
	// With the memory store, the contacts of the next events are
	// prefetched before they are applied (prefetchAhead): only those the
	// routing check below proved this partition's, the only contacts of the
	// shared store this goroutine may read.
	prefetching := w.cache == nil && w.nparts > 0
	// With the memory store a batch is decoded and applied a chunk of
	// decodeChunk records at a time, so that a record, its value and its
	// decoded event are still in the core's caches when the event is
	// applied (a batch of 4,000 is about 4 MB of them, more than a core's
	// L2 cache). With Redis the whole batch is decoded first, for the one
	// round trip that loads its contacts (Cache.Prefetch).
	step := len(batch)
	if w.cache == nil {
		step = decodeChunk
	}
	n, done := 0, 0 // events decoded, and applied
	maxT := int64(math.MinInt64)
	markers := 0
	for from := 0; from < len(batch); from += step {
		for _, r := range batch[from:min(from+step, len(batch))] {
			if r.Attrs.IsControl() {
				markers++ // a transaction's commit marker: only its offset counts
				w.used = append(w.used, r)
				continue
			}
			ctl, isCtl := controlOf(r)
			if isCtl && ctl != ControlForward {
				if w.control(r, ctl) {
					w.src = append(w.src, r)
					w.erase = append(w.erase, ctl)
					w.keys = append(w.keys, "")
					n++
				}
				w.used = append(w.used, r) // applied below, never held
				continue
			}
			e := &w.evs[n]
			if len(r.Value) > cfg.MaxEventBytes {
				w.m.bad(stageScore, ReasonTooLarge)
				w.deadLetter(tooLarge(cfg.Topics.DLQ, r, cfg.MaxEventBytes))
				w.used = append(w.used, r)
				continue
			}
			if err := w.dec.DecodeInto(e, r.Value, formatOf(r), recordTime(r)); err != nil {
				w.m.bad(stageScore, event.ReasonOf(err))
				w.deadLetter(badInput(cfg.Topics.DLQ, r, err))
				w.used = append(w.used, r)
				continue
			}
			// The contact is resolved once here (blocked ids checked) and
			// kept for applyEvent and the prefetch; contactKey's
			// fallback (an event without a usable id) only routes.
			key := ""
			if w.nparts > 0 && !isCtl { // a forward is keyed by the user it goes to
				key = w.eng.ContactOf(e)
				route := key
				if route == "" {
					route = e.Contact()
				}
				if want := w.partitionOf(route); want != r.Partition {
					w.m.bad(stageScore, ReasonMisrouted)
					w.deadLetter(deadLetter(cfg.Topics.DLQ, r, ReasonMisrouted, fmt.Sprintf(
						"contact %q belongs in partition %d of %d (murmur2 of the contact), not %d: key records by contact with Kafka's default partitioner, or send them to the events topic and let the ingest stage key them",
						route, want, w.nparts, r.Partition)))
					w.dec.Recycle(e)
					w.used = append(w.used, r)
					continue
				}
			}
			maxT = max(maxT, e.Time)
			w.src = append(w.src, r)
			w.erase = append(w.erase, "")
			w.keys = append(w.keys, key)
			n++
		}
		if from == 0 {
			if w.cache != nil && n > 0 {
				if err := w.timersAhead(ctx, maxT); err != nil {
					return err
				}
				ids := make([]string, 0, n)
				for i := range n {
					if k := w.keys[i]; k != "" {
						ids = append(ids, k)
					} else if w.erase[i] == "" {
						ids = append(ids, contactKey(w.rs, &w.evs[i]))
					} else {
						ids = append(ids, string(w.src[i].Key))
					}
				}
				if err := w.retry(ctx, "prefetch contacts", func() error { return w.cache.Prefetch(ctx, ids) }); err != nil {
					return err
				}
				w.loadAhead(ctx) // the next batch's, while this one applies
			}
			if err := w.expire(ctx); err != nil {
				return err
			}
		}
		for i := done; i < n; i++ {
			if prefetching && (i-done)%liveAhead == 0 {
				w.prefetchAhead(w.keys[i:min(i+liveAhead, n)])
			}
			if ctl := w.erase[i]; isIdentityControl(ctl) {
				if err := w.applyIdentity(ctx, ctl, w.src[i]); err != nil {
					return err
				}
				continue
			} else if ctl != "" {
				if err := w.forget(ctx, string(w.src[i].Key), w.src[i].Offset); err != nil {
					return err
				}
				continue
			}
			// ApplyLive skips a record whose contact already holds it (a
			// re-read after a crash or rebalance), and is safe to retry.
			if err := w.applyEvent(ctx, &w.evs[i], w.src[i], w.keys[i], false); err != nil {
				return err
			}
		}
		done = n
	}
	w.m.eventsInStage[stageScore].Add(float64(len(batch) - markers))
	if sk := w.eng.Skipped(); sk > w.skipped {
		w.m.skipped.Add(float64(sk - w.skipped))
		w.skipped = sk
	}
	w.reportApplied()
	last := batch[len(batch)-1]
	if err := w.produce(ctx); err != nil {
		return err
	}
	// The offset (not past a held record) is committed with the other
	// partitions' at most every CommitInterval (committer), and
	// synchronously when the worker stops, once the batch's state is
	// durable: at once with memory, with Redis when the batch's changes
	// are written, which may be coalesced with the next batches'
	// (afterBatch, statecommit.go).
	eo := kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: w.commitOffset(last.Offset + 1)}
	if err := w.afterBatch(ctx, last.Offset, eo); err != nil {
		return err
	}
	w.next = last.Offset + 1
	if _, hw := w.queued(); hw >= 0 {
		if w.lag == nil {
			w.lag = w.m.lag.WithLabelValues(w.topic, w.label)
		}
		w.lag.Set(float64(max(hw-w.next, 0)))
	}
	w.m.batchDuration.Observe(time.Since(start).Seconds())
	return nil
}

// decodeChunk is how many records of a batch a worker with the memory
// store decodes before it applies them (process): about 70 KB of records,
// values and decoded events, which stay in the core's caches.
const decodeChunk = 64

// liveAhead is how many events' contacts a worker prefetches at once: as
// many as replay reads ahead (engine/replay.go), enough for their cache
// misses to overlap, few enough that the first contact's lines are still
// cached when its event is applied.
const liveAhead = 16

// prefetchAhead asks for the state of the contacts keys names (""
// skipped: a control record, a forward, an event not checked against the
// partition) before their events are applied (engine
// Partition.PrefetchContacts; the memory store only). Every key is a
// contact of this partition: the memory store is shared by all the
// workers, and a worker reads only its own contacts' fields unlocked.
func (w *worker) prefetchAhead(keys []string) {
	ids := w.ahead[:0]
	for _, k := range keys {
		if k != "" {
			ids = append(ids, k)
		}
	}
	w.eng.PrefetchContacts(ids)
	clear(ids)
	w.ahead = ids[:0]
}

// reportApplied gives Scoring.OnBatchApplied the times of the events
// applied since the last call (applyEvent notes them): a batch's, and
// held events when their user's hand-over releases them, so that an event
// parked behind a hand-over counts when it is applied, not when it was read.
func (w *worker) reportApplied() {
	if len(w.applied) > 0 {
		w.s.sc.OnBatchApplied(w.applied, time.Now().UnixNano())
		w.applied = w.applied[:0]
	}
}

// letGo drops what a processed batch left referenced in the worker's
// buffers (batch is run's), and returns batch to reuse.
//
// Why: the buffers are reused from batch to batch, so without this each
// kept the records and decoded events of the largest batch it ever held —
// after a backlog, 4,000 records per partition with the fetched batches
// their values point into, and 4,000 events with their maps and strings:
// about half of the live heap after `leadpulse bench`'s drain (heap
// profile: 57 of 106 MB under worker.process), which every garbage
// collection then marked while the caught-up partitions applied a few
// records per batch. Buffers far larger than the batches now are let go
// altogether, so the capacity follows the load. The events' maps go back to
// the Decoder emptied, to decode the next batch (dropped too, beyond a few
// batches' worth, when the buffers are).
func (w *worker) letGo(batch []*kgo.Record) []*kgo.Record {
	n := len(batch)
	clear(batch)
	clear(w.src)
	clear(w.keys)
	w.recycle()
	for i := range w.evs {
		w.dec.Recycle(&w.evs[i]) // its maps decode the next batch
	}
	if c := cap(w.evs); c > shrinkBelow && n < c/8 {
		w.evs, w.src, w.erase, w.keys, w.applied = nil, nil, nil, nil, nil
		w.dec.Trim(3 * shrinkBelow)
		return nil
	}
	return batch[:0]
}

// recycle gives the records of w.used back to the client's fetchPool at
// once: no output points into them (dead letters and forwards own a copy of
// what they take from a record: deadLetter, own), so they need not wait for
// Kafka's acknowledgement of the output sent meanwhile.
//
// Why not after the acknowledgement, as before: with output in flight after
// nearly every batch (actions, link requests), the records waited for the
// newest sent batch, and in a backlog the producer's acknowledgements lag:
// `leadpulse bench --events 300000 --rate 0 --no-turnover` had up to 4,274
// fetched batches out of the pool at once, and 45–58% of the pool's gets
// allocated (69–82 MB of decompressed batches per drain).
func (w *worker) recycle() {
	for _, r := range w.used {
		r.Recycle()
	}
	clear(w.used)
	if cap(w.used) > 4*shrinkBelow && len(w.used) < cap(w.used)/8 {
		w.used = nil
		return
	}
	w.used = w.used[:0]
}

// shrinkBelow is the buffer capacity (records) a worker keeps whatever its
// batches (letGo).
const shrinkBelow = 256

// emit receives what each applied event or fired timer produced.
func (w *worker) emit(res *rules.Result) {
	if f := w.s.sc.OnApplied; f != nil {
		f(res)
	}
	for i := range res.Records {
		r := &res.Records[i]
		var err error
		if w.enc, err = r.AppendJSON(w.enc[:0]); err != nil {
			w.fatal = fmt.Errorf("stream: encode action %q of contact %q: %w", r.Action, r.Contact, err)
			return
		}
		// The record's key and value in one allocation; the producer only
		// reads them.
		kv := make([]byte, len(r.Contact)+len(w.enc))
		k := copy(kv, r.Contact)
		copy(kv[k:], w.enc)
		meta := outMeta{action: r.Action, t0: w.cause}
		if w.cause == 0 {
			meta.t0, meta.timer = r.AtNanos, true
		}
		if w.s.sc.OnAction != nil {
			c := *r
			meta.rec = &c
		}
		w.out = append(w.out, &kgo.Record{Topic: w.cfg.Topics.Actions, Key: kv[:k:k], Value: kv[k:], Headers: jsonHeader})
		w.meta = append(w.meta, meta)
	}
}

// deadLetter queues the dead letter r, with its own copy of the bytes it
// shares with the fetched record it was made from (own): the fetched
// record goes back to the pool before Kafka acknowledges r (recycle).
func (w *worker) deadLetter(r *kgo.Record) {
	own(r)
	w.out = append(w.out, r)
	w.meta = append(w.meta, outMeta{})
}

// flush produces the batch's output, then starts writing the store as of
// offset once all output is acknowledged (and the offset a batch left
// waiting for it is noted once that lands, see afterBatch).
func (w *worker) flush(ctx context.Context, offset int64) error {
	if err := w.produce(ctx); err != nil {
		return err
	}
	return w.writeState(ctx, offset)
}

// produce hands the output of what was applied (actions, dead letters,
// identity records) to the producer, and settles what Kafka acknowledged
// since the last call; the partition does not wait for the rest (output.go).
func (w *worker) produce(ctx context.Context) error {
	w.send(ctx)
	return w.reap()
}

// countStats turns the evaluator's counters into metrics.
func (w *worker) countStats() {
	st := w.eng.Stats()
	for i, n := range st.ByTrigger {
		if d := n - w.stats.ByTrigger[i]; d > 0 {
			w.firings[i].Add(float64(d))
		}
	}
	sup := st.SuppressedCooldown + st.SuppressedGuard + st.SuppressedCap
	if d := sup - (w.stats.SuppressedCooldown + w.stats.SuppressedGuard + w.stats.SuppressedCap); d > 0 {
		w.m.suppressed.Add(float64(d))
	}
	if st.Links > w.stats.Links {
		w.m.links.Add(float64(st.Links - w.stats.Links))
	}
	if st.Merges > w.stats.Merges {
		w.m.merges.Add(float64(st.Merges - w.stats.Merges))
	}
	for _, k := range rules.ConflictKinds {
		if n := st.Conflicts[k]; n > w.stats.Conflicts[k] {
			w.m.conflicts.WithLabelValues(k.String()).Add(float64(n - w.stats.Conflicts[k]))
		}
	}
	copy(w.stats.ByTrigger, st.ByTrigger)
	bt := w.stats.ByTrigger
	w.stats = *st
	w.stats.ByTrigger = bt
}

// tick runs live time (SPEC §2) on an idle partition: when a timer is due
// by the wall clock (less TimerDelay) and the partition is caught up — no
// record queued, and the next offset to apply is the partition's end
// offset, asked of the broker — the engine clock advances to the wall
// clock and the timers fire. A timer therefore never fires while a record
// that could cancel it is unread in the partition.
func (w *worker) tick(ctx context.Context) error {
	if len(w.parked) > 0 {
		if err := w.expire(ctx); err != nil {
			return err
		}
		w.reportApplied()
		if w.fatal != nil {
			return w.fatal
		}
		// The released events' actions now; their state with the next
		// state commit (statecommit.go).
		if err := w.produce(ctx); err != nil {
			return err
		}
		w.recycle()
		if err := w.afterRelease(ctx); err != nil {
			return err
		}
	}
	target := w.cfg.Clock().Add(-w.cfg.TimerDelay).UnixNano()
	if w.cache != nil && target+int64(w.cfg.TimerHorizon)/2 > w.loaded {
		if err := w.loadTimers(ctx, target+int64(w.cfg.TimerHorizon)); err != nil {
			return err
		}
	}
	due, ok := w.eng.NextDue()
	if !ok || due > target {
		return nil
	}
	if n, _ := w.queued(); n > 0 {
		return nil
	}
	caught, err := w.caughtUp(ctx)
	if err != nil {
		w.log.Warn("stream: could not read the partition's end offset; timers wait", "err", err)
		return nil
	}
	if !caught {
		return nil
	}
	w.cause = 0
	if err := w.retry(ctx, "fire timers", func() error { return w.eng.Advance(ctx, target) }); err != nil {
		return err
	}
	if w.fatal != nil {
		return w.fatal
	}
	return w.flush(ctx, w.next-1)
}

// caughtUp reports whether every record of the partition has been applied.
func (w *worker) caughtUp(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if w.next < 0 {
		// Nothing applied since assignment: we start at the committed
		// offset, or at the log start when there is none.
		if o, ok := w.s.cl.CommittedOffsets()[w.topic][w.part]; ok && o.Offset >= 0 {
			w.next = o.Offset
		} else {
			so, err := w.s.adm.ListStartOffsets(ctx, w.topic)
			if err != nil {
				return false, err
			}
			o, ok := so.Lookup(w.topic, w.part)
			if !ok || o.Err != nil {
				return false, fmt.Errorf("start offset of %s/%d: %v", w.topic, w.part, o.Err)
			}
			w.next = o.Offset
		}
	}
	eo, err := w.s.adm.ListEndOffsets(ctx, w.topic)
	if err != nil {
		return false, err
	}
	o, ok := eo.Lookup(w.topic, w.part)
	if !ok || o.Err != nil {
		return false, fmt.Errorf("end offset of %s/%d: %v", w.topic, w.part, o.Err)
	}
	return o.Offset <= w.next, nil
}

// retry runs f until it succeeds, retrying with backoff while the store is
// unavailable (retryable); other errors end the partition.
func (w *worker) retry(ctx context.Context, what string, f func() error) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			if attempt > 1 {
				w.log.Info("stream: store available again", "op", what, "attempts", attempt)
			}
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("stream: partition %d: %s: %w", w.part, what, err)
		}
		if attempt == 1 || attempt%20 == 0 {
			w.log.Warn("stream: store unavailable; retrying (fetching pauses when the queue fills)", "op", what, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream: partition %d: %s: gave up at shutdown: %w", w.part, what, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
