package stream

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// Scoring is what the scoring stage runs: the rules, the store, and an
// optional observer of emitted actions.
type Scoring struct {
	// Rules are the rules every partition evaluates. Required.
	Rules *rules.Ruleset
	// Memory is the store when Redis is nil, shared by the partitions (a
	// contact lives in one partition, so one goroutine changes it).
	// default: a new state.NewMemory()
	Memory *state.Memory
	// Redis, when set, is the store: each partition gets a write-behind
	// state.Cache over it, made on assignment and dropped on revoke.
	// default: nil (memory)
	Redis *state.Redis
	// Cache configures the per-partition caches over Redis. default: see
	// state.CacheOptions
	Cache state.CacheOptions
	// FlushInterval is, with Redis, the longest a partition working through
	// a backlog keeps the contacts changed by consecutive batches in its
	// cache before it writes them, so that a contact seen in several of
	// them is encoded and written once; a caught-up partition writes
	// within Config.CommitInterval. The batches' actions are produced as they are applied;
	// their offsets are committed only after their state is written, so a
	// crash re-reads at most this much more (repeats are skipped, actions
	// keep their ids), and Redis (Inspect) shows a contact up to this much
	// behind its actions. See statecommit.go. default: DefaultFlushInterval
	// (1s)
	FlushInterval time.Duration
	// OnAction, when set, sees every action after Kafka acknowledged it on
	// the actions topic. It is called from the partition goroutines, at the
	// same time for different partitions, and must not keep r.
	// default: nil
	OnAction func(r *rules.Record)
	// OnApplied, when set, sees the Result of every applied event and fired
	// timer (Result.Event, Result.Awards) as soon as the engine produced it,
	// before the batch is durable. It is called from the partition
	// goroutines, at the same time for different partitions, must return
	// quickly and must not keep res (it is reused), nor the maps of
	// res.Event (Properties, Traits, Context: the partition decodes later
	// records into them); values read from them may be kept. default: nil
	OnApplied func(res *rules.Result)
	// OnAppliedReads are the keys of Result.Event's properties, traits and
	// context that OnApplied reads (admin.HistoryReads for the admin UI's
	// history): the partitions build those and the ones the rules read
	// (rules.Ruleset.Reads) and only check the others, which costs less.
	// Ignored without OnApplied. default: the zero event.Select, every key
	// (`context` is left out all the same when no rule reads it, see
	// event.Decoder.SkipContext)
	OnAppliedReads event.Select
	// OnBatchApplied, when set, sees the event times (Unix ns) of each batch's
	// applied events and the moment (Unix ns) the batch was applied: the
	// engine changed the contacts (in the memory store, or in the
	// partition's cache before its Redis commit). It is called from the
	// partition goroutines, at the same time for different partitions, and
	// must not keep times. An event held behind an identity hand-over
	// counts when it is released and applied, a forwarded one where it is
	// applied; a dead-lettered one never. The bench measures event → state
	// applied with it.
	// default: nil
	OnBatchApplied func(times []int64, appliedAt int64)
}

// reads returns the keys a partition decodes under rs: those rs reads, and
// those OnApplied reads.
func (sc *Scoring) reads(rs *rules.Ruleset) event.Select {
	sel := rs.Reads()
	if sc.OnApplied != nil {
		sel = sel.Union(sc.OnAppliedReads)
	}
	return sel
}

// scorer is the second stage: a consumer group on the keyed topic with one
// goroutine (a worker) per assigned partition.
//
// Goroutines: the poll loop (Run's goroutine) hands records to workers; the
// group's callbacks (a franz-go goroutine) start workers on assignment and
// stop and join them on revoke or loss; each worker owns its engine
// partition and store. BlockRebalanceOnPoll keeps the callbacks from running
// between a poll and the hand-off, so the poll loop always finds the worker
// of a partition it polled.
type scorer struct {
	cfg *Config
	sc  *Scoring
	m   *Metrics
	log *slog.Logger
	p   *Pipeline

	cl *kgo.Client // set before any callback proceeds (started); read-only after
	// started is closed once cl and adm are set: the group may assign
	// partitions before kgo.NewClient returns, so the callbacks wait on it.
	started chan struct{}
	adm     *kadm.Client
	commits *committer      // the partitions' offset commits; set with cl
	work    context.Context // workers' I/O: outlives ctx by DrainTimeout
	fail    func(error)     // reports a fatal error and stops the stage

	mu      sync.Mutex        // guards the fields below
	workers map[int32]*worker // written by the callbacks and the shutdown, read by the poll loop
	nparts  int               // partition count of the score topic, refreshed on assignment
	closing bool              // no new workers once set
	wg      sync.WaitGroup    // every worker goroutine
}

func (s *scorer) run(ctx, work context.Context, fail func(error), ready func()) error {
	cfg := s.cfg
	topic := cfg.scoreTopic()
	s.work, s.fail = work, fail
	s.started = make(chan struct{})
	s.workers = map[int32]*worker{}
	s.m.queueCap.Set(float64(cfg.QueueRecords))
	opts := append(cfg.clientOpts("score"),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Fetched batches decode into memory the workers give back
		// (fetchpool.go).
		kgo.WithPools(new(fetchPool)),
		// Only committed transactions (ingest writes in transactions), and
		// their markers too, so that a worker's next offset passes them and
		// caughtUp can compare it with the end offset.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			s.stop(m[topic], stopDrain, "revoked")
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			s.stop(m[topic], stopAbandon, "lost")
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("stream: score: kafka client: %w", err)
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)
	s.commits = newCommitter(cl, topic, cfg.CommitInterval, s.m, s.log)
	close(s.started)
	stopCommits, commitsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(commitsDone)
		s.commits.run(work, stopCommits)
	}()
	defer func() {
		s.shutdown()
		close(stopCommits)
		<-commitsDone
		if err := s.commits.flush(work); err != nil {
			s.log.Warn("stream: score: final offset commit failed", "err", err)
		}
		cl.Close() // leaves the group; the revoke callback finds no workers left
		s.shutdown()
	}()
	if !ping(ctx, cl, s.log, stageScore, cfg.Brokers) {
		return nil
	}
	if n, err := partitionCount(ctx, s.adm, topic); err == nil {
		s.mu.Lock()
		s.nparts = n
		s.mu.Unlock()
	}
	ready()
	store := "memory"
	if s.sc.Redis != nil {
		store = "redis"
	}
	s.log.Info("stream: scoring running", "topic", topic, "group", cfg.Group, "store", store)

	for {
		fs, ok := poll(ctx, cl, cfg.PollRecords, cfg.health, s.log, stageScore)
		if !ok {
			break
		}
		pushed := false
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			s.mu.Lock()
			w := s.workers[p.Partition]
			s.mu.Unlock()
			if w == nil {
				// Cannot happen with BlockRebalanceOnPoll; the records are
				// not committed, so the partition's next owner reads them.
				s.log.Error("stream: score: records for a partition without a worker; dropped uncommitted", "partition", p.Partition, "records", len(p.Records))
				return
			}
			w.push(p.Records, p.HighWatermark)
			pushed = true
		})
		cl.AllowRebalance()
		if pushed {
			// Let the workers just woken run before this loop polls again.
			// Why: a woken goroutine waits in this P's run queue, and the
			// next poll readies franz-go's goroutines ahead of it (the one
			// a blocking PollRecords starts, the source that writes the
			// next fetch request), so a caught-up worker waited behind
			// them: polled → taken p50 50–65 µs at 5,000 events/s, a tenth
			// of event → state p50; 4–7 µs with this. The price: the
			// source's next fetch request is written after the woken
			// workers' batches rather than before (a caught-up batch
			// takes tens of µs), and nothing changes under a backlog
			// (one yield per poll of thousands of records).
			runtime.Gosched()
		}
	}
	s.log.Info("stream: scoring stopping: draining partitions")
	return nil
}

// assigned starts a worker for each new partition.
func (s *scorer) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	<-s.started
	ps := m[s.cfg.scoreTopic()]
	if len(ps) == 0 {
		return
	}
	// The partition count decides where a contact belongs (the misrouted
	// check, memory timers); partitions may have been added.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := partitionCount(cctx, s.adm, s.cfg.scoreTopic())
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.nparts = n
	} else {
		s.log.Warn("stream: score: could not read the partition count; using the last known", "err", err, "partitions", s.nparts)
	}
	if s.closing {
		return
	}
	for _, p := range ps {
		if s.workers[p] != nil {
			continue
		}
		w := newWorker(s, p, s.nparts)
		s.workers[p] = w
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.run()
		}()
	}
	s.m.partitions.Set(float64(len(s.workers)))
	s.p.parts.Store(int32(len(s.workers)))
	s.m.rebalanceCount.WithLabelValues(stageScore, "assigned").Add(float64(len(ps)))
	s.log.Info("stream: score partitions assigned", "topic", s.cfg.scoreTopic(), "partitions", ps)
}

// stop tells the workers of ps to stop (drain: apply what is queued, flush
// and commit; abandon: drop it uncommitted) and waits for them.
func (s *scorer) stop(ps []int32, mode stopMode, kind string) {
	var ws []*worker
	s.mu.Lock()
	for _, p := range ps {
		if w := s.workers[p]; w != nil {
			ws = append(ws, w)
			delete(s.workers, p)
		}
	}
	s.m.partitions.Set(float64(len(s.workers)))
	s.p.parts.Store(int32(len(s.workers)))
	s.mu.Unlock()
	if len(ps) > 0 {
		s.m.rebalanceCount.WithLabelValues(stageScore, kind).Add(float64(len(ps)))
		s.log.Info("stream: score partitions "+kind, "topic", s.cfg.scoreTopic(), "partitions", ps)
	}
	for _, w := range ws {
		w.stop(mode)
	}
	for _, w := range ws {
		<-w.done
	}
}

// shutdown drains every worker and waits for all of them.
func (s *scorer) shutdown() {
	s.mu.Lock()
	s.closing = true
	ps := make([]int32, 0, len(s.workers))
	for p := range s.workers {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	s.stop(ps, stopDrain, "drained")
	s.wg.Wait()
}
