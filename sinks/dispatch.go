package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	// backoff computes the retry intervals: exponential growth with jitter,
	// a small, dependency-free and long-maintained library (used by the
	// Kubernetes and OpenTelemetry ecosystems), rather than a hand-rolled
	// formula. The loop around it is ours, so that Retry-After, the
	// per-sink budget and an injectable sleep (fast tests) fit in.
	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/leadpulse/leadpulse/action"
)

// Options configure a Dispatcher. The zero value is usable: every field
// has a default.
type Options struct {
	// Default is the sink of actions whose record names no sink, or a sink
	// that is not configured. default: none (such actions are
	// dead-lettered with reason unknown-sink); Open uses the sink marked
	// `default: true`
	Default string
	// Policies are the delivery policies by sink name; a sink without one
	// gets the zero Policy, which means the defaults. Open fills it from the
	// config. default: all defaults
	Policies map[string]Policy
	// Dedupe remembers delivered action ids. default: NewMemoryDedupe(0),
	// which a restart forgets: use NewRedisDedupe in production
	Dedupe Deduper
	// DeadLetter receives each action that cannot be delivered, with the
	// reason (match it with errors.Is/As; Reason names its kind). It must
	// return only once the dead letter is stored: an error leaves the
	// action unsettled (Dispatch returns ErrDeadLetter, do not commit).
	// default: none; the action is logged at level ERROR with its reason,
	// and counted
	DeadLetter func(ctx context.Context, a Action, reason error) error
	// Registerer registers the metrics (see the package doc). default: none
	// (kept but not exported)
	Registerer prometheus.Registerer
	// Logger receives the dispatcher's logs, never one per delivered
	// action. default: slog.Default()
	Logger *slog.Logger
	// LogDeliveries names the sinks whose every delivered action is logged
	// at level INFO, and every dead-lettered one at WARN ("sinks: delivered",
	// "sinks: not delivered"): `leadpulse dev` names its webhook, kafka and
	// redis-stream sinks, whose deliveries are otherwise seen only in the
	// metrics. default: none (no line per action)
	LogDeliveries []string
	// Sleep waits between retries; it returns early with ctx's error.
	// Tests inject theirs. default: a timer
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock of the latency histogram and the retry budget.
	// default: time.Now
	Now func() time.Time
}

// Dispatcher delivers actions to their sinks, once per action id as long as
// its Deduper remembers the id (see the package doc for the one window),
// retrying transient failures and dead-lettering the rest. It is safe for concurrent use: one Dispatcher
// serves every partition of the dispatch stage's consumer.
//
// Goroutines: Dispatch runs on its caller's goroutine, and starts one more
// per extra batch (per sink and Policy.Batch actions) of the call, joined
// before it returns. Close runs on its caller's and one goroutine that
// waits for the Dispatch calls. Nothing else runs in the background.
type Dispatcher struct {
	// Set by NewDispatcher, then read only.
	routes     map[string]*route
	names      []string
	logged     map[string]bool // Options.LogDeliveries
	def        *route          // nil: no default
	dedupe     Deduper
	deadLetter func(ctx context.Context, a Action, reason error) error
	log        *slog.Logger
	sleep      func(ctx context.Context, d time.Duration) error
	now        func() time.Time
	m          *metrics

	stop       context.Context         // done when Close gives up waiting
	cancelStop context.CancelCauseFunc //

	mu      sync.Mutex
	closed  bool                     // guarded by mu; set by Close
	flights map[string]chan struct{} // guarded by mu: id → closed when its delivery attempt ends
	active  sync.WaitGroup           // Dispatch calls in progress; Add under mu while !closed

	closeOnce sync.Once
	closeErr  error // written once by the Close that runs
}

// route is one sink and how it is delivered to.
type route struct {
	name  string
	sink  Sink
	pol   Policy        // defaults filled
	slots chan struct{} // Policy.Concurrency tokens: a Write holds one
	lim   *rate.Limiter // nil: unlimited
	m     routeMetrics
}

// NewDispatcher returns a Dispatcher over sinks (by name). It takes
// ownership of the sinks: Close closes them.
func NewDispatcher(sinks map[string]Sink, opts Options) (*Dispatcher, error) {
	if len(sinks) == 0 {
		return nil, configError("sinks: none configured; add at least one under `sinks:` (e.g. log: { type: stdout })")
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		routes:     make(map[string]*route, len(sinks)),
		dedupe:     opts.Dedupe,
		deadLetter: opts.DeadLetter,
		log:        opts.Logger,
		sleep:      opts.Sleep,
		now:        opts.Now,
		m:          m,
		flights:    make(map[string]chan struct{}),
		logged:     make(map[string]bool, len(opts.LogDeliveries)),
	}
	for _, name := range opts.LogDeliveries {
		d.logged[name] = true
	}
	if d.dedupe == nil {
		d.dedupe = NewMemoryDedupe(0)
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.sleep == nil {
		d.sleep = sleepTimer
	}
	if d.now == nil {
		d.now = time.Now
	}
	for name := range opts.Policies {
		if sinks[name] == nil {
			return nil, configError("a delivery policy for sink %q, which is not among the sinks", name)
		}
	}
	for name, s := range sinks {
		if s == nil {
			return nil, configError("sinks.%s: nil Sink", name)
		}
		pol, err := opts.Policies[name].validate("sinks." + name)
		if err != nil {
			return nil, err
		}
		if mb, ok := s.(interface{ MaxBatch() int }); ok && mb.MaxBatch() > 0 {
			pol.Batch = min(pol.Batch, mb.MaxBatch())
		}
		r := &route{name: name, sink: s, pol: pol, slots: make(chan struct{}, pol.Concurrency), m: m.route(name)}
		if !pol.Rate.Unlimited() {
			r.lim = rate.NewLimiter(rate.Limit(pol.Rate.PerSecond()), pol.Burst)
		}
		d.routes[name] = r
		d.names = append(d.names, name)
	}
	slices.Sort(d.names)
	if opts.Default != "" {
		if d.def = d.routes[opts.Default]; d.def == nil {
			return nil, configError("the default sink %q is not among the sinks (%v)", opts.Default, d.names)
		}
	}
	d.stop, d.cancelStop = context.WithCancelCause(context.Background())
	return d, nil
}

// Open builds the sinks of cfg (see Build) and a Dispatcher over them with
// opts, taking the policies and the default sink from cfg where opts leaves
// them empty.
func Open(cfg Config, deps Deps, opts Options) (*Dispatcher, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	sinks, err := Build(cfg, deps)
	if err != nil {
		return nil, err
	}
	if opts.Policies == nil {
		opts.Policies = cfg.Policies()
	}
	if opts.Default == "" {
		opts.Default = cfg.DefaultSink()
	}
	d, err := NewDispatcher(sinks, opts)
	if err != nil {
		for _, s := range sinks {
			_ = s.Close(context.Background())
		}
		return nil, err
	}
	return d, nil
}

// Sinks returns the names of the sinks, sorted: a process can check at
// start that every sink its rules name exists.
func (d *Dispatcher) Sinks() []string { return slices.Clone(d.names) }

// Default returns the name of the default sink, or "".
func (d *Dispatcher) Default() string {
	if d.def == nil {
		return ""
	}
	return d.def.name
}

// SinkOf returns the name of the sink Dispatch delivers r to — the sink
// it names, else the default — or "" when no sink takes it (Dispatch
// dead-letters it). A caller that keeps a queue per sink routes with it, so
// that a slow sink holds back only its own actions.
func (d *Dispatcher) SinkOf(r *action.Record) string {
	if rt := d.routes[r.Sink]; rt != nil {
		return rt.name
	}
	if d.def != nil {
		return d.def.name
	}
	return ""
}

// item is one action of a Dispatch call.
type item struct {
	a     Action
	r     *route
	start time.Time
}

// Dispatch delivers the actions, each to the sink its record names
// (Record.Sink; the default sink when empty or unknown), and returns nil
// once every one is settled: delivered, found already delivered (its id is
// remembered), or handed to the DeadLetter. Only then may the caller commit
// the offsets of their records.
//
// A non-nil error means some actions are not settled, and they must be
// read again (do not commit): ctx was done (its error), Close gave up
// (ErrClosed), or DeadLetter failed (ErrDeadLetter). Dispatch after Close
// returns ErrClosed at once.
//
// Actions of different sinks are delivered concurrently; actions of one
// sink in batches of its Policy.Batch, at most Policy.Concurrency Writes
// at once over all calls. Dispatch does not keep the order of actions; the
// caller that needs one contact's actions in order dispatches them in order
// (one call after the other). The same id twice, in one call or in
// concurrent calls, is delivered once.
func (d *Dispatcher) Dispatch(ctx context.Context, actions ...Action) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.active.Add(1)
	d.mu.Unlock()
	defer d.active.Done()
	if ctx.Err() != nil {
		return d.unsettled(ctx, len(actions))
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(d.stop, func() { cancel(context.Cause(d.stop)) })()

	start := d.now()
	pending := make([]*item, 0, len(actions))
	for i := range actions {
		it := &item{a: actions[i], start: start}
		if err := d.route(ctx, it); err != nil {
			return err
		}
		if it.r != nil {
			pending = append(pending, it)
		}
	}
	settled := make(map[string]bool)
	for len(pending) > 0 {
		claimed, deferred, waits := d.claim(pending)
		err := d.deliverAll(ctx, claimed)
		d.release(claimed)
		if err != nil {
			return err
		}
		for _, it := range claimed {
			settled[it.a.Record.ID] = true
		}
		pending = pending[:0]
		for _, it := range deferred {
			if settled[it.a.Record.ID] { // the same id earlier in this call
				it.r.m.duplicates.Inc()
				continue
			}
			pending = append(pending, it)
		}
		for _, ch := range waits { // the same ids in other calls
			select {
			case <-ch:
			case <-ctx.Done():
				return d.unsettled(ctx, len(pending))
			}
		}
	}
	return nil
}

// route resolves the item's sink and fills its JSON; an action that cannot be
// routed is dead-lettered (it.r stays nil).
func (d *Dispatcher) route(ctx context.Context, it *item) error {
	rec := &it.a.Record
	if it.a.JSON == nil {
		b, err := json.Marshal(rec)
		if err != nil {
			return d.deadLetterUnrouted(ctx, it, &PermanentError{Err: fmt.Errorf("%w: %w", ErrInvalidAction, err)})
		}
		it.a.JSON = b
	}
	if rec.ID == "" {
		return d.deadLetterUnrouted(ctx, it, &PermanentError{Err: fmt.Errorf("%w: no \"id\"; every action record carries its deterministic id", ErrInvalidAction)})
	}
	r := d.routes[rec.Sink]
	if r == nil {
		r = d.def
	}
	if r == nil {
		return d.deadLetterUnrouted(ctx, it, &PermanentError{Err: fmt.Errorf("%w: action %s (%s) names sink %q, which is not configured, and no sink is the default; "+
			"add it under `sinks:` in the deployment config, mark one sink `default: true`, or fix the action's sink/route in the rules", ErrUnknownSink, rec.ID, rec.Action, rec.Sink)})
	}
	it.r = r
	return nil
}

// claim marks the ids of items in flight for this call. It returns the
// items it claimed, those whose id was already in flight (deferred), and
// the channels to wait on for the ids in flight in other calls.
func (d *Dispatcher) claim(items []*item) (claimed, deferred []*item, waits []chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	mine := make(map[string]bool)
	for _, it := range items {
		id := it.a.Record.ID
		if ch, busy := d.flights[id]; busy {
			deferred = append(deferred, it)
			if !mine[id] {
				waits = append(waits, ch)
			}
			continue
		}
		d.flights[id] = make(chan struct{})
		mine[id] = true
		claimed = append(claimed, it)
	}
	return claimed, deferred, waits
}

func (d *Dispatcher) release(items []*item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range items {
		id := it.a.Record.ID
		if ch := d.flights[id]; ch != nil {
			close(ch)
			delete(d.flights, id)
		}
	}
}

// deliverAll delivers items (distinct ids) in batches per sink, the first
// batch on this goroutine and the others on their own. It returns the first
// error that leaves an action unsettled, and then cancels the others.
func (d *Dispatcher) deliverAll(ctx context.Context, items []*item) error {
	if len(items) == 0 {
		return nil
	}
	var batches [][]*item
	byRoute := make(map[*route][]*item)
	var order []*route
	for _, it := range items {
		if _, ok := byRoute[it.r]; !ok {
			order = append(order, it.r)
		}
		byRoute[it.r] = append(byRoute[it.r], it)
	}
	for _, r := range order {
		its := byRoute[r]
		for len(its) > 0 {
			n := min(len(its), r.pol.Batch)
			batches = append(batches, its[:n])
			its = its[n:]
		}
	}
	if len(batches) == 1 {
		return d.deliver(ctx, batches[0])
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel(err) })
	}
	for _, b := range batches[1:] {
		wg.Go(func() {
			if err := d.deliver(ctx, b); err != nil {
				fail(err)
			}
		})
	}
	if err := d.deliver(ctx, batches[0]); err != nil {
		fail(err)
	}
	wg.Wait()
	return first
}

// deliver settles one batch of one sink: skips the ids already delivered,
// writes the rest, remembers what was delivered, dead-letters what was
// refused, and retries transient failures within the sink's budget.
func (d *Dispatcher) deliver(ctx context.Context, items []*item) error {
	r := items[0].r
	r.m.inFlight.Add(float64(len(items)))
	defer r.m.inFlight.Sub(float64(len(items)))

	bo := &backoff.ExponentialBackOff{
		InitialInterval:     r.pol.Retry.Initial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         r.pol.Retry.Max,
	}
	bo.Reset()
	first := d.now()
	attempts := 0
	checked := false
	batch := make([]Action, 0, len(items))
	for {
		if !checked {
			seen, err := d.dedupe.Delivered(ctx, ids(items))
			if err != nil {
				if ctx.Err() != nil {
					return d.unsettled(ctx, len(items))
				}
				d.m.dedupeErrors.WithLabelValues("lookup").Inc()
				wait := bo.NextBackOff()
				d.log.Warn("sinks: looking up delivered action ids failed; retrying", "sink", r.name, "actions", len(items), "wait", wait, "err", err)
				if err := d.sleep(ctx, wait); err != nil {
					return d.unsettled(ctx, len(items))
				}
				continue
			}
			checked = true
			kept := items[:0:0]
			for i, it := range items {
				if seen[i] {
					r.m.duplicates.Inc()
				} else {
					kept = append(kept, it)
				}
			}
			items = kept
			bo.Reset()
		}
		if len(items) == 0 {
			return nil
		}

		if err := r.acquire(ctx, len(items)); err != nil {
			return d.unsettled(ctx, len(items))
		}
		batch = batch[:0]
		for _, it := range items {
			batch = append(batch, it.a)
		}
		attempts++
		err := r.sink.Write(ctx, batch)
		<-r.slots
		if err == nil {
			d.delivered(ctx, r, items)
			return nil
		}
		if ctx.Err() != nil {
			return d.unsettled(ctx, len(items))
		}

		var be *BatchError
		errs := make([]error, len(items))
		if errors.As(err, &be) && len(be.Errs) == len(items) {
			copy(errs, be.Errs)
		} else {
			for i := range errs {
				errs[i] = err
			}
		}
		var done, retry []*item
		var retryErrs []error
		var wait time.Duration
		for i, it := range items {
			switch e := errs[i]; {
			case e == nil:
				done = append(done, it)
			case IsPermanent(e):
				r.m.permanent.Inc()
				if err := d.deadLetterTo(ctx, r, it, ReasonRejected, fmt.Errorf("sink %q: %w", r.name, e)); err != nil {
					return err
				}
			default:
				r.m.transient.Inc()
				retry = append(retry, it)
				retryErrs = append(retryErrs, e)
				wait = max(wait, retryAfter(e))
			}
		}
		d.delivered(ctx, r, done)
		if len(retry) == 0 {
			return nil
		}

		elapsed := d.now().Sub(first)
		if wait > 0 {
			wait = min(wait, r.pol.Retry.MaxRetryAfter)
		} else {
			wait = bo.NextBackOff()
		}
		pol := r.pol.Retry
		if (pol.Attempts > 0 && attempts >= pol.Attempts) || (pol.For >= 0 && elapsed+wait > pol.For) {
			for i, it := range retry {
				reason := Permanent(fmt.Errorf("sink %q: %w: %d attempts over %v; last: %w", r.name, ErrRetriesExhausted, attempts, elapsed.Round(time.Millisecond), retryErrs[i]))
				if err := d.deadLetterTo(ctx, r, it, ReasonExhausted, reason); err != nil {
					return err
				}
			}
			return nil
		}
		r.m.retried.Add(float64(len(retry)))
		if attempts == 1 || attempts%10 == 0 { // not a line per attempt of a long outage
			d.log.Warn("sinks: delivery failed; retrying", "sink", r.name, "actions", len(retry), "attempt", attempts, "wait", wait, "err", retryErrs[0])
		}
		if err := d.sleep(ctx, wait); err != nil {
			return d.unsettled(ctx, len(retry))
		}
		items = retry
	}
}

// acquire waits for the rate limit (one token per action) and then for a
// Write slot, which the caller gives back.
func (r *route) acquire(ctx context.Context, n int) error {
	if r.lim != nil {
		for range n {
			if err := r.lim.Wait(ctx); err != nil {
				return err
			}
		}
	}
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// delivered counts and remembers delivered items. Remembering is done even
// if ctx has just been cancelled: the delivery happened.
func (d *Dispatcher) delivered(ctx context.Context, r *route, items []*item) {
	if len(items) == 0 {
		return
	}
	now := d.now()
	for _, it := range items {
		r.m.delivered.Inc()
		r.m.latency.Observe(now.Sub(it.start).Seconds())
		if d.logged[r.name] {
			rec := &it.a.Record
			d.log.Info("sinks: delivered", "sink", r.name, "id", rec.ID, "action", rec.Action, "contact", rec.Contact, "trigger", rec.Trigger)
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rememberTimeout)
	defer cancel()
	if err := d.dedupe.Remember(rctx, ids(items)); err != nil {
		d.m.dedupeErrors.WithLabelValues("remember").Inc()
		d.log.Warn("sinks: remembering delivered action ids failed: replayed, they would be delivered again",
			"sink", r.name, "actions", len(items), "err", err)
	}
}

// rememberTimeout bounds the Remember after a delivery.
const rememberTimeout = 5 * time.Second

// DeadLetter hands an action that never reached Dispatch to the dead letter,
// counted like the Dispatcher's own: for the consumer's values that
// DecodeAction refused (pass Action{JSON: value, Origin: record} and its
// error). A nil return means settled: commit.
func (d *Dispatcher) DeadLetter(ctx context.Context, a Action, reason error) error {
	return d.deadLetterUnrouted(ctx, &item{a: a}, reason)
}

func (d *Dispatcher) deadLetterUnrouted(ctx context.Context, it *item, reason error) error {
	return d.deadLetterTo(ctx, nil, it, Reason(reason), reason)
}

// deadLetterTo hands it to the DeadLetter with reason; r is nil for an
// action no sink took.
func (d *Dispatcher) deadLetterTo(ctx context.Context, r *route, it *item, kind string, reason error) error {
	sink := unrouted
	if r != nil {
		sink = r.name
	}
	rec := &it.a.Record
	if d.deadLetter == nil {
		d.log.Error("sinks: action dead-lettered (no dead letter configured: logged only)",
			"sink", sink, "id", rec.ID, "action", rec.Action, "contact", rec.Contact, "reason", kind, "err", reason)
	} else if err := d.deadLetter(ctx, it.a, reason); err != nil {
		if ctx.Err() != nil {
			return d.unsettled(ctx, 1)
		}
		return fmt.Errorf("%w: action %s (sink %s): %w; it was not delivered either: do not commit its offset", ErrDeadLetter, rec.ID, sink, err)
	} else if d.logged[sink] {
		d.log.Warn("sinks: not delivered; dead-lettered", "sink", sink, "id", rec.ID, "action", rec.Action, "contact", rec.Contact, "reason", kind, "err", reason)
	}
	d.m.deadLettered.WithLabelValues(sink, kind).Inc()
	return nil
}

// unsettled is the error of a call whose n actions were left unsettled
// because ctx is done.
func (d *Dispatcher) unsettled(ctx context.Context, n int) error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = context.Canceled
	}
	return fmt.Errorf("sinks: %d actions not settled: %w", n, cause)
}

func ids(items []*item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.a.Record.ID
	}
	return out
}

func sleepTimer(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Close stops taking new actions (Dispatch returns ErrClosed), waits until
// the Dispatch calls in progress have settled their actions (drain: retries
// go on), and closes the sinks. When ctx is done first, it cancels the work
// in flight — those calls return errors, so their records are not committed
// and are read again after a restart: nothing is lost — and returns an
// error matching ErrClosed. Close is idempotent: later calls wait for the
// first and return its result.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		idle := make(chan struct{})
		go func() { d.active.Wait(); close(idle) }()
		var errs []error
		select {
		case <-idle:
		case <-ctx.Done():
			d.cancelStop(ErrClosed)
			<-idle
			errs = append(errs, fmt.Errorf("%w: gave up waiting for the actions in flight (%w): they were not settled and will be read again", ErrClosed, context.Cause(ctx)))
		}
		d.cancelStop(ErrClosed)
		cctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), rememberTimeout)
			defer cancel()
		}
		for _, name := range d.names {
			if err := d.routes[name].sink.Close(cctx); err != nil {
				errs = append(errs, fmt.Errorf("sinks: close sink %q: %w", name, err))
			}
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
