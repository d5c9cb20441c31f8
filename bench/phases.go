package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/leadpulse/leadpulse/state"
)

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
	visitors := r.load.gen.Visitors()
	var err error
	as(ctx, roleLoad, func(ctx context.Context) { err = r.load.preload(ctx, int(n)) })
	if err != nil {
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
	go as(pctx, rolePipeline, func(pctx context.Context) { r.pipeErr <- r.pipe.Run(pctx) })
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
	go as(cctx, roleActions, func(cctx context.Context) { defer close(colDone); r.col.run(cctx) })
	r.defers = append(r.defers, func() { stopCol(); <-colDone })
	r.mon.t0 = time.Now()
	mctx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go as(mctx, roleMonitor, func(mctx context.Context) { defer close(monDone); r.mon.run(mctx) })
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
		ph.NewVisitors = int64(r.load.gen.Visitors() - visitors)
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
	// And, during them, the records every reader has consumed (trimLoop).
	stopTrim := func() {}
	if len(cfg.Brokers) == 0 && len(cfg.Rates) > 0 {
		tctx, cancel := context.WithCancel(ctx)
		trimDone := make(chan struct{})
		go as(tctx, roleMonitor, func(tctx context.Context) { defer close(trimDone); r.trimLoop(tctx) })
		stopTrim = func() { cancel(); <-trimDone }
		defer stopTrim() // on an early return
	}
	for _, rate := range cfg.Rates {
		r.logf("latency: %.0f events/s for %v", rate, cfg.Duration)
		ph, err := r.openLoop(ctx, rate)
		if err != nil {
			return err
		}
		res.Rates = append(res.Rates, ph)
	}
	stopTrim()
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return err
		}
	}
	pprof.StopCPUProfile() // a no-op without --cpuprofile
	trace.Stop()           // a no-op without --trace

	// 5. The summary figures.
	res.ActionsTotal, res.ActionsFromTimer, res.ActionsUnmatched, _ = r.col.counts()
	res.Visitors = r.load.gen.Visitors()
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
		res.AppliedLatencyMS = res.Rates[0].AppliedMS
	} else if res.Drain != nil {
		res.LatencyMS = res.Drain.LatencyMS
		res.AppliedLatencyMS = res.Drain.AppliedMS
	}
	if res.Ceiling != nil {
		res.CeilingEventsPerSec = res.Ceiling.PerSec
		res.Ratio = ratio(res.EventsPerSec, res.Ceiling.PerSec)
	}
	// The pipeline is joined before its contacts are read.
	r.stopP()
	r.stateFigures(ctx)
	res.StateBytesPerContact = res.State.BlobBytes
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
	redisCPU  float64 // the Redis server's CPU seconds (INFO cpu); 0 if unknown
}

func (r *run) stats() pipelineStats {
	s := pipelineStats{usage: takeUsage()}
	s.batches, s.batchSecs = histogram(r.reg, "leadpulse_score_batch_seconds")
	if r.rdb != nil {
		s.redis = r.rdb.Stats()
		s.redisCPU = redisServerCPU(r.rdb.Client())
	}
	return s
}

// redisServerCPU returns the CPU seconds the Redis server has used
// (used_cpu_user + used_cpu_sys of INFO cpu; of the first node in Cluster),
// or 0 when it cannot be read.
func redisServerCPU(c redis.UniversalClient) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
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

			LoadWaits:    b.redis.LoadWaits - a.redis.LoadWaits,
			LoadWaitMS:   float64(b.redis.LoadWait-a.redis.LoadWait) / 1e6,
			LoadsSkipped: b.redis.Skipped - a.redis.Skipped,
		}
		if ph.Batches > 0 {
			nb := float64(ph.Batches)
			d.WriteRoundTripsPerBatch = float64(d.Commits) / nb
			d.WrittenPerBatch = float64(d.Written) / nb
			d.LoadedPerBatch = float64(d.Loaded) / nb
			d.LoadWaitsPerBatch = float64(d.LoadWaits) / nb
		}
		if ph.Seconds > 0 {
			d.WrittenPerSec = float64(d.Written) / ph.Seconds
		}
		if a.redisCPU > 0 && b.redisCPU > a.redisCPU {
			d.ServerCPUMicrosPerEvent = (b.redisCPU - a.redisCPU) * 1e6 / n
		}
		ph.Redis = &d
	}
}

func (r *run) drain(ctx context.Context, n int64, win *window) (*Phase, error) {
	r.mon.reset()
	lagFrom := time.Since(r.mon.t0).Seconds()
	a := r.stats()
	hand, held := buckets(r.reg, handoverMetric), counter(r.reg, heldMetric)
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
	taken := r.sampleTaken(n)
	t1, b, end, err := r.settled(ctx)
	backlog := taken()
	if err != nil {
		return nil, err
	}
	h, actions := r.col.snapshot(win)
	ph := &Phase{Name: "drain", Events: n, Seconds: t1.Sub(t0).Seconds(), Actions: actions, LatencyMS: latencyOf(h),
		AppliedMS: latencyOf(r.col.appliedSnapshot(win))}
	ph.OverallPerSec = float64(n) / ph.Seconds
	ph.HandoverMS = bucketLatency(hand, buckets(r.reg, handoverMetric))
	ph.HeldRecords = int64(counter(r.reg, heldMetric) - held)
	r.fill(ph, a, b, lagFrom)
	if end.ok {
		ph.LagFinal = end.Records
	}
	ph.EventsPerSec = ph.OverallPerSec
	if rate, ok := sustained(backlog, n); ok {
		ph.EventsPerSec, ph.Sustained = rate, true
	}
	return ph, nil
}

// sampleTaken samples, every 50ms until the returned function is called,
// the records of the n-record backlog the scoring stage has not taken into
// a batch yet (leadpulse_events_in_total of stage score), and returns them.
//
// The sustained rate is measured on it rather than on the consumer lag
// (committed offsets): with Redis a partition commits its state, and then
// its offsets, once per flush interval under a backlog (stream's coalesced
// state writes), so the committed lag falls in steps of up to a second,
// and a slope between two samples of a staircase is no rate.
func (r *run) sampleTaken(n int64) func() []LagSample {
	stop, done := make(chan struct{}), make(chan struct{})
	var out []LagSample
	t0 := r.mon.t0
	taken := func() int64 {
		var sum float64
		eachMetric(r.reg, "leadpulse_events_in_total", func(m *dto.Metric) {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == "score" {
					sum += m.GetCounter().GetValue()
				}
			}
		})
		return int64(sum)
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			out = append(out, LagSample{Seconds: time.Since(t0).Seconds(), Records: max(n-taken(), 0)})
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() []LagSample {
		close(stop)
		<-done
		return out
	}
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
	hand, held := buckets(r.reg, handoverMetric), counter(r.reg, heldMetric)
	before := r.load.acked.Load()
	visitors := r.load.gen.Visitors()
	// The window opens before the first event is stamped, so that no
	// action escapes it; openLoop's stamps start 5ms from now.
	r.col.setBounds(win, time.Now().UnixNano(), math.MaxInt64)
	var enough func() bool
	if cfg.Samples > 0 {
		r.logf("latency: %.0f events/s runs until it has %d samples of each latency (at most %v)", rate, cfg.Samples, maxPhase)
		enough = func() bool {
			a, n := r.col.samples(win)
			return a >= int64(cfg.Samples) && n >= int64(cfg.Samples)
		}
	}
	reqs := r.reqs.snapshot()
	var (
		first, last int64
		sent        int
		behind      time.Duration
		err         error
	)
	as(ctx, roleLoad, func(ctx context.Context) {
		first, last, sent, behind, err = r.load.openLoop(ctx, rate, cfg.Duration, maxPhase, enough)
	})
	if err != nil {
		return nil, err
	}
	r.col.setBounds(win, first, last)
	t1, b, end, err := r.settled(ctx)
	if err != nil {
		return nil, err
	}
	reqsEnd := r.reqs.snapshot()
	h, actions := r.col.snapshot(win)
	ph := &Phase{
		Name: "rate", OfferedPerSec: rate, Events: r.load.acked.Load() - before,
		Seconds: t1.Sub(time.Unix(0, first)).Seconds(), Actions: actions, LatencyMS: latencyOf(h),
		AppliedMS:        latencyOf(r.col.appliedSnapshot(win)),
		SamplesWanted:    cfg.Samples,
		NewVisitors:      int64(r.load.gen.Visitors() - visitors),
		ByMinute:         r.col.byMinute(win),
		ProducerBehindMS: float64(behind.Microseconds()) / 1000,
		SendLateMS:       latencyOf(r.load.late),
		HandoverMS:       bucketLatency(hand, buckets(r.reg, handoverMetric)),
		Requests:         perEvent(reqs, reqsEnd, int64(sent)),
		HeldRecords:      int64(counter(r.reg, heldMetric) - held),
	}
	if int64(sent) != ph.Events {
		return nil, fmt.Errorf("bench: %d events sent at %.0f/s but %d acknowledged", sent, rate, ph.Events)
	}
	ph.EventsPerSec = float64(ph.Events) / ph.Seconds
	ph.OverallPerSec = ph.EventsPerSec
	r.fill(ph, a, b, lagFrom)
	if end.ok {
		ph.LagFinal = end.Records
	}
	if behind > 100*time.Millisecond {
		r.logf("the load generator fell %v behind its schedule at %.0f events/s: the machine is saturated; latencies include that wait", behind, rate)
	}
	// The floor: one hop of the same broker at the same rate.
	var fh *hdrhistogram.Histogram
	as(ctx, roleProbe, func(ctx context.Context) {
		fh, err = hopFloor(ctx, r.brokers, r.probe, rate, min(cfg.Duration, 2*time.Second), 600)
	})
	if err != nil {
		r.logf("hop floor probe failed: %v", err)
	} else {
		ph.HopFloorMS = latencyOf(fh)
	}
	return ph, nil
}

// handoverMetric is the stream package's identity hand-over histogram.
const handoverMetric = "leadpulse_identity_handover_seconds"

// heldMetric counts the records held behind a parked user until its
// hand-over completes.
const heldMetric = "leadpulse_identity_held_events_total"

// maxPhase bounds a latency phase lengthened by Config.Samples.
const maxPhase = 10 * time.Minute

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
