package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake" // the embedded broker, as in `leadpulse dev`
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/examples"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// warmupEvents are sent, unmeasured, before the latency phases when there
// is no throughput phase, so that the consumer groups have joined and the
// contacts exist before the clock runs.
const warmupEvents = 2000

// run holds one bench run's moving parts. Everything is owned by Run's
// goroutine except where a field says otherwise.
type run struct {
	cfg     Config
	rs      *rules.Ruleset
	id      string
	brokers []string
	scfg    stream.Config
	probe   string // scratch topic of the hop-floor probe
	reg     *prometheus.Registry
	rdb     *state.Redis
	mem     *state.Memory
	adm     *kadm.Client
	prod    *kgo.Client
	load    *loader
	col     *collector
	mon     *monitor
	pipe    *stream.Pipeline
	pipeErr chan error // the pipeline's Run result, once
	stopP   func()     // stops the pipeline and waits for it; idempotent
	res     *Result
	defers  []func() // cleanups, run in reverse order by close
}

// Run runs one bench: the throughput phase (preload, raw consume ceiling,
// drain through the pipeline), then a latency phase per rate, then the
// Redis write ceiling, and returns the figures. It cleans up after itself:
// the embedded broker is closed; on an external broker or Redis the topics
// and keys it created are deleted.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg, err = cfg.validate()
	if err != nil {
		return nil, err
	}
	src, name := cfg.Rules, cfg.RulesName
	if src == nil {
		src, name = examples.B2BSaaS, examples.B2BSaaSName
	}
	if name == "" {
		name = "rules"
	}
	scaled, err := ScaleRules(src, cfg.RuleCopies)
	if err != nil {
		return nil, err
	}
	rs, err := rules.Parse(name, scaled)
	if err != nil {
		return nil, fmt.Errorf("bench: rules %s: %w", name, err)
	}
	r := &run{cfg: cfg, rs: rs, id: strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36)}
	r.res = &Result{
		Store: "memory", Rules: name, RuleCopies: cfg.RuleCopies,
		Triggers: len(rs.Triggers), Scoring: len(rs.Scoring) + len(rs.Fit),
		Partitions: int(cfg.Partitions), Batch: cfg.BatchRecords, Keyed: !cfg.Unkeyed,
		Transactions: cfg.Unkeyed && !cfg.NoTransactions,
		Contacts:     cfg.Contacts, Zipf: cfg.Zipf, Mix: cfg.Mix, Anonymous: cfg.AnonymousShare,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Started: rfc3339(time.Now()),
	}
	if r.res.Anonymous == 0 {
		r.res.Anonymous = 0.6 // traffic's default
	} else if r.res.Anonymous < 0 {
		r.res.Anonymous = 0
	}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	if err := r.measure(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "bench: "+format+"\n", args...)
}

var errPipelineStopped = errors.New("bench: the pipeline stopped")

func (r *run) setup(ctx context.Context) error {
	cfg := &r.cfg
	r.brokers = cfg.Brokers
	r.res.Broker = "embedded (kfake, TCP, in process)"
	if len(r.brokers) == 0 {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("bench: embedded broker: %w", err)
		}
		r.defers = append(r.defers, cluster.Close)
		r.brokers = cluster.ListenAddrs()
	} else {
		r.res.Broker = strings.Join(r.brokers, ",")
	}
	pfx := "bench-" + r.id + "."
	r.scfg = stream.Config{
		Brokers: r.brokers,
		Group:   "leadpulse-bench-" + r.id,
		Topics: stream.Topics{
			Events: pfx + "events", Keyed: pfx + "events.keyed", Actions: pfx + "actions",
			DLQ: pfx + "events.dlq", ActionsDLQ: pfx + "actions.dlq",
		},
		InputKeyed:     !cfg.Unkeyed,
		NoTransactions: cfg.NoTransactions,
		Partitions:     cfg.Partitions,
		BatchRecords:   cfg.BatchRecords,
		QueueRecords:   max(4096, 2*cfg.BatchRecords),
		FetchMaxWait:   cfg.FetchMaxWait,
		Logger:         cfg.logger(),
	}
	r.probe = pfx + "probe"

	sc := stream.Scoring{Rules: r.rs}
	if cfg.Redis != "" {
		prefix := "lpbench-" + r.id
		rdb, err := state.NewRedis(state.RedisOptions{Addrs: []string{cfg.Redis}, KeyPrefix: prefix, Logger: cfg.logger()})
		if err != nil {
			return fmt.Errorf("bench: --redis %s: %w", cfg.Redis, err)
		}
		r.rdb = rdb
		r.defers = append(r.defers, func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cleanRedis(cctx, cfg.Redis, prefix); err != nil {
				r.logf("could not delete the keys %s:* from Redis %s: %v", prefix, cfg.Redis, err)
			}
			rdb.Close()
		})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = rdb.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: --redis %s: %w", cfg.Redis, err)
		}
		sc.Redis = rdb
		r.res.Store = "redis"
		r.res.Redis = &RedisFigures{Addr: cfg.Redis}
	} else {
		r.mem = state.NewMemory()
		sc.Memory = r.mem
	}
	r.reg = prometheus.NewRegistry()
	m, err := stream.NewMetrics(r.reg)
	if err != nil {
		return err
	}
	p, err := stream.New(r.scfg, sc, m)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.scfg = p.Config()
	r.pipe = p

	admCl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ClientID("leadpulse-bench-admin"))
	if err != nil {
		return err
	}
	r.defers = append(r.defers, admCl.Close)
	r.adm = kadm.NewClient(admCl)
	if err := stream.EnsureTopics(ctx, r.scfg); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := r.adm.CreateTopic(ctx, cfg.Partitions, -1, nil, r.probe); err != nil {
		return fmt.Errorf("bench: create topic %q: %w", r.probe, err)
	}
	if len(cfg.Brokers) > 0 {
		r.defers = append(r.defers, r.deleteTopics)
	}

	r.prod, err = kgo.NewClient(
		kgo.SeedBrokers(r.brokers...),
		kgo.ClientID("leadpulse-bench-load"),
		kgo.ProducerLinger(0),                                // as the pipeline's producers: latency first
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as the scoring stage checks
		kgo.MaxBufferedRecords(100_000),
	)
	if err != nil {
		return err
	}
	r.defers = append(r.defers, r.prod.Close)
	r.load = newLoader(cfg, r.prod, r.scfg.Topics.Events)
	r.col, err = newCollector(r.brokers, r.scfg.Topics.Actions, r.rs)
	if err != nil {
		return err
	}
	r.defers = append(r.defers, r.col.close)
	stages := []stage{{r.scfg.Group, r.scfg.Topics.Events}}
	if cfg.Unkeyed {
		stages = []stage{{r.scfg.Group + "-ingest", r.scfg.Topics.Events}, {r.scfg.Group, r.scfg.Topics.Keyed}}
	}
	r.mon = &monitor{adm: r.adm, stages: stages, every: 100 * time.Millisecond}
	return nil
}

func (r *run) deleteTopics() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t := r.scfg.Topics
	if _, err := r.adm.DeleteTopics(ctx, t.Events, t.Keyed, t.Actions, t.DLQ, t.ActionsDLQ, r.probe); err != nil {
		r.logf("could not delete the bench topics bench-%s.*: %v", r.id, err)
	}
	for _, g := range []string{r.scfg.Group, r.scfg.Group + "-ingest"} {
		_, _ = r.adm.DeleteGroup(ctx, g)
	}
}

func (r *run) close() {
	for i := len(r.defers) - 1; i >= 0; i-- {
		r.defers[i]()
	}
}

// scoreTopic is the topic the scoring stage reads and commits.
func (r *run) scoreTopic() string {
	if r.cfg.Unkeyed {
		return r.scfg.Topics.Keyed
	}
	return r.scfg.Topics.Events
}

func (r *run) measure(ctx context.Context) error {
	cfg := &r.cfg
	res := r.res

	// 1. Preload, then the raw consume ceiling over the same records,
	// before the pipeline runs.
	n := int64(cfg.Events)
	if n == 0 {
		n = warmupEvents
	}
	r.logf("producing %d events to %s", n, r.scfg.Topics.Events)
	pstart := time.Now()
	first := pstart.UnixNano()
	if err := r.load.preload(ctx, int(n)); err != nil {
		return err
	}
	last := time.Now().UnixNano()
	if cfg.Events > 0 {
		res.PreloadEventsPerSec = float64(n) / time.Since(pstart).Seconds()
		r.logf("raw consume ceiling: reading the same %d records", n)
		c, err := rawConsume(ctx, r.brokers, r.scfg.Topics.Events, n)
		if err != nil {
			return err
		}
		res.Ceiling = c
	}

	// 2. The pipeline, the action reader and the monitor.
	pctx, stopPipe := context.WithCancel(ctx)
	r.pipeErr = make(chan error, 1)
	go func() { r.pipeErr <- r.pipe.Run(pctx) }()
	stopped := false
	r.stopP = func() {
		if stopped {
			return
		}
		stopped = true
		stopPipe()
		select {
		case err := <-r.pipeErr:
			if err != nil {
				r.logf("pipeline: %v", err)
			}
		case <-time.After(45 * time.Second):
			r.logf("pipeline did not stop within 45s")
		}
	}
	r.defers = append(r.defers, r.stopP)
	cctx, stopCol := context.WithCancel(ctx)
	colDone := make(chan struct{})
	go func() { defer close(colDone); r.col.run(cctx) }()
	r.defers = append(r.defers, func() { stopCol(); <-colDone })
	r.mon.t0 = time.Now()
	mctx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { defer close(monDone); r.mon.run(mctx) }()
	r.defers = append(r.defers, func() { stopMon(); <-monDone })

	for _, prof := range []struct {
		path, flag string
		start      func(io.Writer) error
		stop       func()
	}{
		{cfg.CPUProfile, "--cpuprofile", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{cfg.Trace, "--trace", trace.Start, trace.Stop},
	} {
		if prof.path == "" {
			continue
		}
		stop, err := startProfile(prof.path, prof.start, prof.stop)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", prof.flag, err)
		}
		defer stop()
		r.defers = append(r.defers, stop)
	}

	// 3. The throughput phase: drain the preloaded events.
	win := r.col.watch(first, last)
	if cfg.Events > 0 {
		r.logf("throughput: draining %d events", n)
		ph, err := r.drain(ctx, n, win)
		if err != nil {
			return err
		}
		res.Drain = ph
	} else {
		r.logf("warming up with %d events", n)
		if err := r.waitCommitted(ctx, n, 2*time.Minute); err != nil {
			return err
		}
	}

	// 4. The latency phases, after the drain's records are deleted from the
	// broker: with the embedded broker they are heap of this process, and a
	// garbage collector marking that heap would slow everything it runs
	// beside — a cost of embedding the broker, not of the pipeline.
	if cfg.Events > 0 && len(cfg.Rates) > 0 {
		r.trimTopics(ctx)
	}
	for _, rate := range cfg.Rates {
		r.logf("latency: %.0f events/s for %v", rate, cfg.Duration)
		ph, err := r.openLoop(ctx, rate)
		if err != nil {
			return err
		}
		res.Rates = append(res.Rates, ph)
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return err
		}
	}
	pprof.StopCPUProfile() // a no-op without --cpuprofile
	trace.Stop()           // a no-op without --trace

	// 5. The summary figures.
	res.ActionsTotal, res.ActionsFromTimer, res.ActionsUnmatched, _ = r.col.counts()
	if d := res.Drain; d != nil {
		res.Events, res.Seconds, res.EventsPerSec = d.Events, d.Seconds, d.EventsPerSec
		res.CPUMicrosPerEvent, res.AllocBytesPerEvent = d.CPUMicrosPerEvent, d.AllocBytesPerEvent
		res.PeakHeapBytes, res.PeakRSSBytes = d.PeakHeapBytes, d.PeakRSSBytes
	} else {
		var cpu, alloc float64
		for _, ph := range res.Rates {
			res.Events += ph.Events
			res.Seconds += ph.Seconds
			cpu += ph.CPUMicrosPerEvent * float64(ph.Events)
			alloc += ph.AllocBytesPerEvent * float64(ph.Events)
			res.PeakHeapBytes = max(res.PeakHeapBytes, ph.PeakHeapBytes)
			res.PeakRSSBytes = max(res.PeakRSSBytes, ph.PeakRSSBytes)
		}
		res.EventsPerSec = float64(res.Events) / res.Seconds
		res.CPUMicrosPerEvent = cpu / float64(res.Events)
		res.AllocBytesPerEvent = alloc / float64(res.Events)
		// The ceiling reads every record the run produced, after the fact.
		total := r.load.acked.Load()
		r.logf("raw consume ceiling: reading the same %d records", total)
		c, err := rawConsume(ctx, r.brokers, r.scfg.Topics.Events, total)
		if err != nil {
			return err
		}
		res.Ceiling = c
	}
	if len(res.Rates) > 0 {
		res.LatencyMS = res.Rates[0].LatencyMS
	} else if res.Drain != nil {
		res.LatencyMS = res.Drain.LatencyMS
	}
	if res.Ceiling != nil {
		res.CeilingEventsPerSec = res.Ceiling.PerSec
		res.Ratio = ratio(res.EventsPerSec, res.Ceiling.PerSec)
	}
	// The pipeline is joined before its contacts are read.
	r.stopP()
	r.stateFigures(ctx)
	if r.rdb != nil {
		if err := r.redisCeiling(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pipelineStats are the counters a phase reports as deltas.
type pipelineStats struct {
	usage
	batches   uint64
	batchSecs float64
	redis     state.RedisStats
}

func (r *run) stats() pipelineStats {
	s := pipelineStats{usage: takeUsage()}
	s.batches, s.batchSecs = histogram(r.reg, "leadpulse_score_batch_seconds")
	if r.rdb != nil {
		s.redis = r.rdb.Stats()
	}
	return s
}

// fill sets the phase's resource and store figures from the counters at
// its start and end.
func (r *run) fill(ph *Phase, a, b pipelineStats, lagFrom float64) {
	n := float64(ph.Events)
	ph.CPUSeconds = (b.cpu - a.cpu).Seconds()
	ph.CPUMicrosPerEvent = float64((b.cpu - a.cpu).Microseconds()) / n
	ph.AllocBytesPerEvent = float64(b.allocBytes-a.allocBytes) / n
	ph.AllocsPerEvent = float64(b.allocObjects-a.allocObjects) / n
	ph.PeakHeapBytes, ph.PeakRSSBytes = r.mon.peaks()
	ph.Batches = int64(b.batches - a.batches)
	if ph.Batches > 0 {
		ph.RecordsPerBatch = n / float64(ph.Batches)
		ph.BatchMS = (b.batchSecs - a.batchSecs) / float64(ph.Batches) * 1000
	}
	lag := r.mon.lagSince(lagFrom)
	var sum float64
	for _, s := range lag {
		ph.LagMax = max(ph.LagMax, s.Records)
		sum += float64(s.Records)
	}
	if len(lag) > 0 {
		ph.LagMean = sum / float64(len(lag))
		ph.LagFinal = lag[len(lag)-1].Records
	}
	ph.Lag = downsample(lag, 100)
	if r.rdb != nil {
		d := RedisPhase{
			Commits: b.redis.Commits - a.redis.Commits,
			Written: b.redis.Written - a.redis.Written,
			Loaded:  b.redis.Loaded - a.redis.Loaded,
		}
		if ph.Batches > 0 {
			nb := float64(ph.Batches)
			d.WriteRoundTripsPerBatch = float64(d.Commits) / nb
			d.WrittenPerBatch = float64(d.Written) / nb
			d.LoadedPerBatch = float64(d.Loaded) / nb
		}
		if ph.Seconds > 0 {
			d.WrittenPerSec = float64(d.Written) / ph.Seconds
		}
		ph.Redis = &d
	}
}

func (r *run) drain(ctx context.Context, n int64, win *window) (*Phase, error) {
	r.mon.reset()
	lagFrom := time.Since(r.mon.t0).Seconds()
	a := r.stats()
	// The clock starts when the pipeline has read its first record (the
	// consumer groups have joined by then).
	var t0 time.Time
	err := r.waitFor(ctx, 2*time.Minute, time.Millisecond, func(context.Context) (bool, error) {
		if counter(r.reg, "leadpulse_events_in_total") > 0 {
			t0 = time.Now()
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: the pipeline read nothing: %w", err)
	}
	if err := r.waitCommitted(ctx, r.load.acked.Load(), 10*time.Minute); err != nil {
		return nil, err
	}
	t1 := time.Now()
	b := r.stats()
	if err := r.waitActions(ctx); err != nil {
		return nil, err
	}
	h, actions := r.col.snapshot(win)
	ph := &Phase{Name: "drain", Events: n, Seconds: t1.Sub(t0).Seconds(), Actions: actions, LatencyMS: latencyOf(h)}
	ph.OverallPerSec = float64(n) / ph.Seconds
	r.fill(ph, a, b, lagFrom)
	ph.EventsPerSec = ph.OverallPerSec
	if rate, ok := sustained(r.mon.lagSince(lagFrom), n); ok {
		ph.EventsPerSec, ph.Sustained = rate, true
	}
	return ph, nil
}

// sustained is the pipeline's steady rate in a drain: the slope of the
// backlog from 90% left to 10% left, which leaves out the start (groups
// joining, contacts created cold) and the tail (partitions finishing at
// different times). ok is false when the drain was too short to sample.
func sustained(lag []LagSample, n int64) (float64, bool) {
	hi, lo := -1, -1
	for i, s := range lag {
		if hi < 0 && s.Records <= n*9/10 {
			hi = i
		}
		if s.Records <= n/10 {
			lo = i
			break
		}
	}
	if hi < 0 || lo <= hi+3 {
		return 0, false
	}
	a, b := lag[hi], lag[lo]
	return float64(a.Records-b.Records) / (b.Seconds - a.Seconds), true
}

func (r *run) openLoop(ctx context.Context, rate float64) (*Phase, error) {
	cfg := &r.cfg
	r.mon.reset()
	lagFrom := time.Since(r.mon.t0).Seconds()
	win := r.col.watch(math.MaxInt64, math.MaxInt64)
	a := r.stats()
	before := r.load.acked.Load()
	// The window opens before the first event is stamped, so that no
	// action escapes it; openLoop's stamps start 5ms from now.
	r.col.setBounds(win, time.Now().UnixNano(), math.MaxInt64)
	first, last, sent, behind, err := r.load.openLoop(ctx, rate, cfg.Duration)
	if err != nil {
		return nil, err
	}
	r.col.setBounds(win, first, last)
	if err := r.waitCommitted(ctx, r.load.acked.Load(), 10*time.Minute); err != nil {
		return nil, err
	}
	t1 := time.Now()
	b := r.stats()
	if err := r.waitActions(ctx); err != nil {
		return nil, err
	}
	h, actions := r.col.snapshot(win)
	ph := &Phase{
		Name: "rate", OfferedPerSec: rate, Events: r.load.acked.Load() - before,
		Seconds: t1.Sub(time.Unix(0, first)).Seconds(), Actions: actions, LatencyMS: latencyOf(h),
		ProducerBehindMS: float64(behind.Microseconds()) / 1000,
	}
	if int64(sent) != ph.Events {
		return nil, fmt.Errorf("bench: %d events sent at %.0f/s but %d acknowledged", sent, rate, ph.Events)
	}
	ph.EventsPerSec = float64(ph.Events) / ph.Seconds
	ph.OverallPerSec = ph.EventsPerSec
	r.fill(ph, a, b, lagFrom)
	if behind > 100*time.Millisecond {
		r.logf("the load generator fell %v behind its schedule at %.0f events/s: the machine is saturated; latencies include that wait", behind, rate)
	}
	// The floor: one hop of the same broker at the same rate.
	fh, err := hopFloor(ctx, r.brokers, r.probe, rate, min(cfg.Duration, 2*time.Second), 600)
	if err != nil {
		r.logf("hop floor probe failed: %v", err)
	} else {
		ph.HopFloorMS = latencyOf(fh)
	}
	return ph, nil
}

// trimTopics deletes the records every stage has read (DeleteRecords up to
// the end offsets) and returns the memory to the system.
func (r *run) trimTopics(ctx context.Context) {
	t := r.scfg.Topics
	topics := []string{t.Events, t.Actions}
	if r.cfg.Unkeyed {
		topics = append(topics, t.Keyed)
	}
	end, err := r.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		_, err = r.adm.DeleteRecords(ctx, end.Offsets())
	}
	if err != nil {
		r.logf("could not delete the drained records (the latency phases run beside their heap): %v", err)
	}
	debug.FreeOSMemory()
}

// waitFor polls cond every `every` until it holds, the pipeline stops, ctx
// ends or timeout passes.
func (r *run) waitFor(ctx context.Context, timeout, every time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case err := <-r.pipeErr:
			r.pipeErr <- err // for the cleanup
			return fmt.Errorf("%w: %v", errPipelineStopped, err)
		case <-ctx.Done():
			return fmt.Errorf("bench: waited %v: %w", timeout, ctx.Err())
		case <-t.C:
		}
	}
}

// waitCommitted waits until the scoring stage has committed n records.
func (r *run) waitCommitted(ctx context.Context, n int64, timeout time.Duration) error {
	var (
		got     int64
		lastErr error
	)
	err := r.waitFor(ctx, timeout, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
		// Errors (the group not created yet, a timeout) are retried.
		c, err := committed(ctx, r.adm, r.scfg.Group, r.scoreTopic())
		if err != nil {
			lastErr = err
			return false, nil
		}
		got = c
		return c >= n, nil
	})
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (last offset fetch: %v)", err, lastErr)
		}
		return fmt.Errorf("bench: the scoring stage committed %d of %d events: %w", got, n, err)
	}
	return nil
}

// waitActions waits until the action reader has read every action on the
// topic (the scoring stage produced them before it committed).
func (r *run) waitActions(ctx context.Context) error {
	end, err := endOffsets(ctx, r.adm, r.scfg.Topics.Actions)
	if err != nil {
		return err
	}
	return r.waitFor(ctx, time.Minute, 2*time.Millisecond, func(context.Context) (bool, error) {
		return r.col.caughtUp(end), nil
	})
}

// stateFigures measures the stored contacts: count and mean encoded size.
func (r *run) stateFigures(ctx context.Context) {
	var size, n int
	if r.mem != nil {
		r.res.State.Contacts = r.mem.Len()
		r.mem.Range(func(c *state.Contact) bool {
			if b, err := state.Encode(c); err == nil {
				size += len(b)
				n++
			}
			return n < 1000
		})
	} else if r.rdb != nil {
		for _, b := range r.blobs(ctx) {
			size += len(b)
			n++
		}
	}
	if n > 0 {
		r.res.State.BlobBytes = size / n
	}
}

// blobs returns the encoded state of up to 1000 contacts of the run, read
// back from Redis.
func (r *run) blobs(ctx context.Context) [][]byte {
	var out [][]byte
	for _, id := range r.load.sample {
		st, err := r.rdb.Inspect(ctx, id)
		if err != nil {
			continue
		}
		b, err := state.Encode(st.Contact)
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out
}

func (r *run) redisCeiling(ctx context.Context) error {
	rf := r.res.Redis
	ph := r.res.Drain
	if ph == nil && len(r.res.Rates) > 0 {
		ph = r.res.Rates[0]
	}
	if ph == nil || ph.Redis == nil || ph.Redis.Written == 0 {
		return nil
	}
	blobs := r.blobs(ctx)
	if len(blobs) == 0 {
		r.logf("redis ceiling skipped: no stored contact could be read back")
		return nil
	}
	batch := 1
	if ph.Redis.Commits > 0 {
		batch = int(math.Round(float64(ph.Redis.Written) / float64(ph.Redis.Commits)))
	}
	r.logf("redis ceiling: %d pipelined SETs", ph.Redis.Written)
	c, err := redisCeiling(ctx, r.cfg.Redis, "lpbench-"+r.id, blobs, int64(ph.Redis.Written), batch, int(r.cfg.Partitions))
	if err != nil {
		return err
	}
	rf.Ceiling = c
	rf.WrittenPerSec = ph.Redis.WrittenPerSec
	if c != nil {
		rf.Ratio = ratio(rf.WrittenPerSec, c.PerSec)
	}
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: --memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("bench: --memprofile: %w", err)
	}
	return nil
}

// counter sums a counter family of the registry over its labels.
func counter(g prometheus.Gatherer, name string) float64 {
	var sum float64
	eachMetric(g, name, func(m *dto.Metric) {
		if c := m.GetCounter(); c != nil {
			sum += c.GetValue()
		}
	})
	return sum
}

// histogram returns the sample count and sum of a histogram family.
func histogram(g prometheus.Gatherer, name string) (uint64, float64) {
	var (
		n   uint64
		sum float64
	)
	eachMetric(g, name, func(m *dto.Metric) {
		if h := m.GetHistogram(); h != nil {
			n += h.GetSampleCount()
			sum += h.GetSampleSum()
		}
	})
	return n, sum
}

func eachMetric(g prometheus.Gatherer, name string, f func(*dto.Metric)) {
	mfs, err := g.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				f(m)
			}
		}
	}
}

func downsample(s []LagSample, n int) []LagSample {
	if len(s) <= n {
		return s
	}
	out := make([]LagSample, 0, n)
	for i := range n {
		out = append(out, s[i*len(s)/n])
	}
	return append(out, s[len(s)-1])
}

// startProfile starts a CPU profile or an execution trace into a new file at
// path and returns an idempotent stop that also closes the file.
func startProfile(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { stop(); f.Close() }) }, nil
}
