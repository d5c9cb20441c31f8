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
	topics                  atomic.Pointer[error] // why the topics are not there yet; nil once they are

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
	cfg.health = newHealth(cfg.Brokers, cfg.UnreachableAfter, cfg.Logger)
	p := &Pipeline{cfg: cfg, sc: sc, m: m}
	p.rules.Store(sc.Rules)
	return p, nil
}

// Config returns the configuration with its defaults filled in.
func (p *Pipeline) Config() Config { return p.cfg }

// Ready reports whether the topics exist, both stages have reached a
// broker and are consuming, and the brokers answer: NotReady is nil.
func (p *Pipeline) Ready() bool { return p.NotReady() == nil }

// NotReady returns nil when the pipeline is ready (the /readyz of the
// process), or why it is not: not running, topics not created yet, a stage
// not consuming yet, or the brokers unreachable (errors.Is ErrUnreachable:
// no answer, or fetches failing, for Config.UnreachableAfter; ingest output
// that cannot be produced).
func (p *Pipeline) NotReady() error {
	if !p.running.Load() {
		return errors.New("the pipeline is not running")
	}
	if err := p.cfg.health.problem(); err != nil {
		return err
	}
	if e := p.topics.Load(); e != nil {
		return *e
	}
	if !p.scoreReady.Load() || (!p.cfg.InputKeyed && !p.ingestReady.Load()) {
		return errors.New("the pipeline is not consuming yet (brokers, consumer groups)")
	}
	return nil
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
	hctx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	cfg.health.start()
	go cfg.health.watch(hctx)
	if err := p.ensureTopics(ctx); err != nil {
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

// ensureTopics creates the missing topics, retrying with backoff (up to
// 30s apart) while the brokers do not answer, so that a process started
// before its brokers waits for them, not-ready, instead of exiting. A
// refusal (no permission, a bad topic config) is returned.
func (p *Pipeline) ensureTopics(ctx context.Context) error {
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pending := fmt.Errorf("creating the topics at %v", p.cfg.Brokers)
		p.topics.Store(&pending)
		err := EnsureTopics(ctx, p.cfg)
		if err == nil {
			p.topics.Store(nil)
			return nil
		}
		if ctx.Err() != nil || !retriableTopicsError(err) {
			return err
		}
		failed := fmt.Errorf("%w: creating the topics failed (attempt %d, again in %v): %w", ErrUnreachable, attempt, wait, err)
		p.topics.Store(&failed)
		p.cfg.Logger.Warn("stream: cannot create the topics yet; retrying", "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
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
