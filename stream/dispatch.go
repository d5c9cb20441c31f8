package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/sinks"
)

// Dispatch is the last stage of SPEC §5: its own consumer group
// (Config.Group + "-dispatch") on the actions topic, handing each action to
// a sinks.Dispatcher, which routes it to the sink the rules named, retries,
// deduplicates by action id and dead-letters what cannot be delivered.
// Being a separate group with its own client, a slow or failing sink holds
// back only this stage: scoring keeps producing actions, which wait in
// Kafka.
//
// Within the stage, each sink has its own lane: a queue of at most
// Config.QueueRecords actions and MaxInFlight workers, each contact's
// actions going to one worker, one after the other, so that a contact's
// actions reach a sink in order. A hanging or failing sink fills only its
// own lane; the other sinks keep delivering. Only when a lane is full does
// the stage stop polling (backpressure), because the actions of all sinks
// share the topic's partitions.
//
// Offsets are committed per partition up to the lowest action that is not
// settled yet (delivered, already delivered, or dead-lettered) in any
// lane, every CommitInterval and when partitions are revoked. A crash reads
// the unsettled actions and those settled after them again, and the
// dispatcher's dedupe store keeps the delivered ones from being delivered
// twice.
type Dispatch struct {
	cfg   Config
	d     *sinks.Dispatcher
	m     *Metrics
	ready atomic.Bool

	// MaxInFlight bounds the contacts dispatched at once, per sink.
	// default: 256
	MaxInFlight int
	// CommitInterval is how often settled offsets are committed.
	// default: 200ms
	CommitInterval time.Duration
}

// NewDispatch returns the dispatch stage over d; Run starts it. m may be
// nil. The caller owns d and closes it after Run returns.
func NewDispatch(cfg Config, d *sinks.Dispatcher, m *Metrics) (*Dispatch, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, configError("no sinks dispatcher: NewDispatch needs one")
	}
	if m == nil {
		if m, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	cfg.health = newHealth(cfg.Brokers, cfg.UnreachableAfter, cfg.Logger)
	return &Dispatch{cfg: cfg, d: d, m: m, MaxInFlight: 256, CommitInterval: 200 * time.Millisecond}, nil
}

// Config returns the configuration with its defaults filled in.
func (s *Dispatch) Config() Config { return s.cfg }

// DispatchGroup is the consumer group of the dispatch stage.
func (c *Config) DispatchGroup() string { return c.Group + "-dispatch" }

// Ready reports whether the stage reached a broker, is consuming, and the
// brokers answer.
func (s *Dispatch) Ready() bool { return s.NotReady() == nil }

// NotReady returns nil when the stage is ready, or why not (errors.Is
// ErrUnreachable when the brokers do not answer).
func (s *Dispatch) NotReady() error {
	if err := s.cfg.health.problem(); err != nil {
		return fmt.Errorf("dispatch: %w", err)
	}
	if !s.ready.Load() {
		return errors.New("the dispatch stage is not consuming yet")
	}
	return nil
}

// Run consumes the actions topic until ctx is done, then settles what it
// has polled (within Config.DrainTimeout), commits and leaves the group.
func (s *Dispatch) Run(ctx context.Context) error {
	cfg := &s.cfg
	log := cfg.Logger
	work, stopWork := drainContext(ctx, cfg.DrainTimeout)
	defer stopWork()
	cfg.health.start()
	go cfg.health.watch(work)
	var lanes sync.WaitGroup // every lane worker
	r := &dispatchRun{s: s, log: log, work: work, wg: &lanes, parts: map[topicPart]*partTrack{}, lanes: map[string]*lane{}}
	r.cond = sync.NewCond(&r.mu)
	cl, err := kgo.NewClient(append(cfg.clientOpts("dispatch"),
		kgo.ConsumerGroup(cfg.DispatchGroup()),
		kgo.ConsumeTopics(cfg.Topics.Actions),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { r.revoked(ctx, cl, m, true) }),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { r.revoked(ctx, cl, m, false) }),
	)...)
	if err != nil {
		return fmt.Errorf("stream: dispatch: kafka client: %w", err)
	}
	defer cl.Close()
	if !ping(ctx, cl, log, stageDispatch, cfg.Brokers) {
		return nil
	}
	s.ready.Store(true)
	defer s.ready.Store(false)
	log.Info("stream: dispatch running", "topic", cfg.Topics.Actions, "group", cfg.DispatchGroup(), "sinks", s.d.Sinks())

	committerDone := make(chan struct{})
	stopCommitter := make(chan struct{})
	go func() {
		defer close(committerDone)
		t := time.NewTicker(s.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-stopCommitter:
				return
			case <-t.C:
				r.commit(work, cl)
			}
		}
	}()

	for {
		if !r.waitRoom(ctx) {
			break
		}
		fs, ok := poll(ctx, cl, cfg.PollRecords, cfg.health, log, stageDispatch)
		if !ok {
			break
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			r.push(p.Records)
			last := p.Records[len(p.Records)-1]
			s.m.eventsInStage[stageDispatch].Add(float64(len(p.Records)))
			s.m.lag.WithLabelValues(p.Topic, partLabel(p.Partition)).Set(float64(max(p.HighWatermark-last.Offset-1, 0)))
		})
		cl.AllowRebalance()
	}
	// Drain: the lanes settle what was polled, within DrainTimeout.
	r.drain(work)
	close(stopCommitter)
	<-committerDone
	r.commit(work, cl)
	if n := r.unsettled(); n > 0 {
		log.Warn("stream: dispatch: stopped with actions unsettled; they are read again on restart", "actions", n)
	}
	log.Info("stream: dispatch stopped")
	return nil
}

type topicPart struct {
	topic string
	part  int32
}

// dispatchRun is one Run of the dispatch stage: the lanes and the offsets.
//
// Goroutines: the poll loop (pushes), one goroutine per lane worker
// (settles), the committer, and franz-go's for the revoke callbacks. mu
// guards parts, lanes, every partTrack and every laneWorker's queue; cond
// (on mu) wakes the poll loop when a lane has room and the drain when
// everything is settled. No lock is held across I/O.
type dispatchRun struct {
	s    *Dispatch
	log  *slog.Logger
	work context.Context
	wg   *sync.WaitGroup

	mu    sync.Mutex
	cond  *sync.Cond
	parts map[topicPart]*partTrack
	lanes map[string]*lane
	done  bool // the lanes are told to stop
}

// partTrack follows one partition's polled actions in offset order.
type partTrack struct {
	tp    topicPart
	q     []*entry        // polled, in offset order; the front is the oldest not yet committable
	next  kgo.EpochOffset // everything before is settled; Offset -1: nothing yet
	dirty bool            // next moved since the last commit
	gone  bool            // revoked or lost: its entries are neither settled nor committed
}

// entry is one polled record.
type entry struct {
	rec     *kgo.Record
	settled bool
}

// lane is one sink's queue and workers.
type lane struct {
	name    string
	workers []*laneWorker
	queued  int              // actions queued or in flight (under dispatchRun.mu)
	gauge   prometheus.Gauge // queued, exported
}

type laneWorker struct {
	q    []job         // under dispatchRun.mu
	wake chan struct{} // capacity 1
}

type job struct {
	a   sinks.Action
	bad error // a value that is not an action: dead-letter it with this
	e   *entry
	p   *partTrack
}

// push routes one partition's polled records to the lanes.
func (r *dispatchRun) push(recs []*kgo.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := recs[0]
	tp := topicPart{first.Topic, first.Partition}
	p := r.parts[tp]
	if p == nil {
		p = &partTrack{tp: tp, next: kgo.EpochOffset{Offset: -1}}
		r.parts[tp] = p
	}
	for _, rec := range recs {
		e := &entry{rec: rec}
		p.q = append(p.q, e)
		j := job{e: e, p: p}
		a, err := sinks.DecodeAction(rec.Value)
		if err != nil {
			j.a, j.bad = sinks.Action{JSON: rec.Value, Origin: rec}, err
		} else {
			a.Origin = rec
			j.a = a
		}
		name := ""
		if j.bad == nil {
			name = r.s.d.SinkOf(&j.a.Record)
		}
		l := r.laneLocked(name)
		w := l.workers[0]
		if j.bad == nil && len(l.workers) > 1 {
			w = l.workers[contactSlot(j.a.Record.Contact, len(l.workers))]
		}
		w.q = append(w.q, j)
		l.queued++
		l.gauge.Inc()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// contactSlot maps a contact to one of n workers, so that its actions are
// delivered one after the other (FNV-1a).
func contactSlot(contact string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(contact); i++ {
		h ^= uint32(contact[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// laneLocked returns the lane of a sink ("" for actions no sink takes, and
// values that are not actions), starting it on first use.
func (r *dispatchRun) laneLocked(name string) *lane {
	if l := r.lanes[name]; l != nil {
		return l
	}
	n := max(r.s.MaxInFlight, 1)
	if name == "" {
		n = 1
	}
	l := &lane{name: name, workers: make([]*laneWorker, n), gauge: r.s.m.dispatchQueued.WithLabelValues(name)}
	for i := range l.workers {
		w := &laneWorker{wake: make(chan struct{}, 1)}
		l.workers[i] = w
		r.wg.Go(func() { r.runWorker(l, w) })
	}
	r.lanes[name] = l
	return l
}

// runWorker settles a worker's jobs in order until the run is done.
func (r *dispatchRun) runWorker(l *lane, w *laneWorker) {
	for {
		r.mu.Lock()
		for len(w.q) == 0 && !r.done {
			r.mu.Unlock()
			select {
			case <-w.wake:
			case <-r.work.Done():
			}
			r.mu.Lock()
			if r.work.Err() != nil {
				r.done = true
			}
		}
		if len(w.q) == 0 || r.work.Err() != nil {
			r.mu.Unlock()
			return
		}
		j := w.q[0]
		gone := j.p.gone
		r.mu.Unlock()

		ok := gone || r.settle(l, j)
		r.mu.Lock()
		w.q[0] = job{}
		w.q = w.q[1:]
		l.queued--
		l.gauge.Dec()
		if ok && !gone {
			j.e.settled = true
			j.p.advance()
		}
		r.cond.Broadcast()
		r.mu.Unlock()
		if !ok {
			return // the run's work context ended
		}
	}
}

// settle delivers or dead-letters one job. A failure to settle (the dead
// letter could not be written) is retried with backoff until it works or
// the run ends: false.
func (r *dispatchRun) settle(l *lane, j job) bool {
	wait := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var err error
		if j.bad != nil {
			err = r.s.d.DeadLetter(r.work, j.a, j.bad)
		} else {
			err = r.s.d.Dispatch(r.work, j.a)
		}
		if err == nil {
			return true
		}
		if r.work.Err() != nil || errors.Is(err, sinks.ErrClosed) {
			return false
		}
		if attempt == 1 || attempt%10 == 0 {
			r.log.Warn("stream: dispatch: an action is not settled; retrying (its offset and those after it are not committed meanwhile)",
				"sink", l.name, "attempt", attempt, "wait", wait, "err", err)
		}
		select {
		case <-r.work.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// advance moves the partition's commit position past its settled front.
func (p *partTrack) advance() {
	i := 0
	for i < len(p.q) && p.q[i].settled {
		rec := p.q[i].rec
		p.next = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
		p.dirty = true
		i++
	}
	if i > 0 {
		clear(p.q[:i])
		p.q = p.q[i:]
	}
}

// waitRoom waits until every lane has room (fewer than QueueRecords
// queued); false when ctx ends first.
func (r *dispatchRun) waitRoom(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for ctx.Err() == nil {
		full := false
		for _, l := range r.lanes {
			if l.queued >= r.s.cfg.QueueRecords {
				full = true
				break
			}
		}
		if !full {
			return true
		}
		r.cond.Wait()
	}
	return false
}

// drain waits until the lanes are empty or ctx ends, then stops them.
func (r *dispatchRun) drain(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	for ctx.Err() == nil && r.queuedLocked() > 0 {
		r.cond.Wait()
	}
	r.done = true
	for _, l := range r.lanes {
		for _, w := range l.workers {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	r.mu.Unlock()
	// With ctx done, the workers' Dispatch calls return (they run on ctx).
	r.wg.Wait()
}

func (r *dispatchRun) queuedLocked() int {
	n := 0
	for _, l := range r.lanes {
		n += l.queued
	}
	return n
}

func (r *dispatchRun) unsettled() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.parts {
		n += len(p.q)
	}
	return n
}

// commit commits the partitions whose settled position moved.
func (r *dispatchRun) commit(ctx context.Context, cl *kgo.Client) {
	r.commitOnly(ctx, cl, nil)
}

// commitOnly commits the moved positions of the partitions in only (all
// when nil).
func (r *dispatchRun) commitOnly(ctx context.Context, cl *kgo.Client, only map[topicPart]bool) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	var moved []*partTrack
	r.mu.Lock()
	for tp, p := range r.parts {
		if !p.dirty || (only != nil && !only[tp]) {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.topic][tp.part] = p.next
		p.dirty = false
		moved = append(moved, p)
	}
	r.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	if err := commitSync(ctx, cl, offsets); err != nil {
		r.s.m.offsetCommits.WithLabelValues(stageDispatch, "error").Inc()
		r.log.Warn("stream: dispatch: offset commit failed; the actions may be read again (delivered ones are deduplicated)", "err", err)
		r.mu.Lock()
		for _, p := range moved {
			p.dirty = true // again next time
		}
		r.mu.Unlock()
		return
	}
	r.s.m.offsetCommits.WithLabelValues(stageDispatch, "ok").Inc()
}

// revoked commits what is settled of the partitions leaving this process
// (revoke; a loss cannot commit) and forgets them: their queued actions
// are skipped, the next owner reads them from the committed position (and
// deduplicates what was delivered meanwhile).
func (r *dispatchRun) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32, commit bool) {
	set := map[topicPart]bool{}
	for t, ps := range m {
		for _, p := range ps {
			set[topicPart{t, p}] = true
			r.s.m.lag.DeleteLabelValues(t, partLabel(p))
		}
	}
	if commit {
		r.commitOnly(ctx, cl, set)
	}
	r.mu.Lock()
	for tp := range set {
		if p := r.parts[tp]; p != nil {
			p.gone = true
			delete(r.parts, tp)
		}
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}
