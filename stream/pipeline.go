package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// Pipeline is the live topology of SPEC §5 up to the actions topic: the
// ingest stage (unless Config.InputKeyed) and the scoring stage, each a
// consumer group, so that more processes share the partitions.
type Pipeline struct {
	cfg Config
	sc  Scoring
	m   *Metrics

	ingestReady, scoreReady atomic.Bool
	running                 atomic.Bool

	rules  atomic.Pointer[rules.Ruleset] // the rules partitions switch to between batches (SetRules)
	parts  atomic.Int32                  // score partitions assigned to this process
	scorer atomic.Pointer[scorer]        // the scoring stage while Run runs
}

// New checks cfg and sc and returns a pipeline; Run starts it. m may be nil
// (the metrics are then kept but not registered).
func New(cfg Config, sc Scoring, m *Metrics) (*Pipeline, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if sc.Rules == nil {
		return nil, configError("no rules: Scoring.Rules is required")
	}
	if sc.Redis != nil && sc.Memory != nil {
		return nil, configError("Scoring.Memory and Scoring.Redis are both set: choose one store")
	}
	if sc.Redis == nil && sc.Memory == nil {
		sc.Memory = state.NewMemory()
	}
	if m == nil {
		if m, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	p := &Pipeline{cfg: cfg, sc: sc, m: m}
	p.rules.Store(sc.Rules)
	return p, nil
}

// Config returns the configuration with its defaults filled in.
func (p *Pipeline) Config() Config { return p.cfg }

// Ready reports whether the topics exist and both stages have reached a
// broker and are consuming: the /readyz of the process.
func (p *Pipeline) Ready() bool {
	return p.running.Load() && p.scoreReady.Load() && (p.cfg.InputKeyed || p.ingestReady.Load())
}

// Run creates the missing topics, runs the stages until ctx is done, and
// then drains: each partition applies what it has fetched, produces its
// actions and commits store and offsets (within DrainTimeout), and the
// groups are left. It returns nil after a clean drain, or the first fatal
// error of either stage (which stops the other one too).
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("stream: Pipeline.Run called twice; make a new Pipeline")
	}
	defer p.running.Store(false)
	cfg := &p.cfg
	if err := EnsureTopics(ctx, *cfg); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work, stopWork := drainContext(ctx, cfg.DrainTimeout)
	defer stopWork()

	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
			cfg.Logger.Error("stream: stopping the pipeline", "err", err)
		}
		errMu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	if !cfg.InputKeyed {
		in := &ingest{cfg: cfg, m: p.m, log: cfg.Logger, rules: p.rules.Load}
		wg.Go(func() {
			if err := in.run(ctx, work, func() { p.ingestReady.Store(true) }); err != nil {
				fail(err)
			}
			p.ingestReady.Store(false)
		})
	}
	sc := &scorer{cfg: cfg, sc: &p.sc, m: p.m, log: cfg.Logger, p: p}
	p.scorer.Store(sc)
	defer p.scorer.Store(nil)
	wg.Go(func() {
		if err := sc.run(ctx, work, fail, func() { p.scoreReady.Store(true) }); err != nil {
			fail(err)
		}
		p.scoreReady.Store(false)
	})
	wg.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	cfg.Logger.Info("stream: pipeline stopped")
	return nil
}

// drainContext returns a context for the stages' I/O that ends d after ctx
// does: long enough to flush and commit what is in flight, bounded so that a
// dead broker cannot hold the shutdown forever.
func drainContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var (
		mu sync.Mutex
		t  *time.Timer
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		t = time.AfterFunc(d, func() { cancel(fmt.Errorf("stream: drain timeout (%v) reached", d)) })
		mu.Unlock()
	})
	return work, func() {
		stop()
		mu.Lock()
		if t != nil {
			t.Stop()
		}
		mu.Unlock()
		cancel(context.Canceled)
	}
}
