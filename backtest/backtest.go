// Package backtest measures a rules file's triggers against what actually
// converted: it replays recorded traffic through the one engine, exactly as
// `leadpulse replay` does (engine.Replay, identity merges included), and for
// each trigger counts the contacts it alerted on, how many of them converted
// within the horizon after their first firing (precision), how many
// converters it caught in time (recall), the lift over the base rate and
// the median lead time. A sweep gives the same figures for each threshold of
// a `score >= N` trigger; a comparison runs a second rules file on the same
// traffic. The definitions are in docs/backtest.md.
//
// The package is pure computation over the engine's output; its only I/O is
// reading the files it is given. cmd/leadpulse prints its Report.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// DefaultHorizon is the default --horizon: 30 days.
const DefaultHorizon = 30 * 24 * time.Hour

// Options configure Run.
type Options struct {
	// Rules is the rules file measured; Compare, if set, a second rules
	// file measured on the same traffic.
	Rules, Compare string
	// Events opens the recorded traffic (JSON lines) for one replay; it is
	// called once per replay, possibly from several goroutines.
	Events func() (io.ReadCloser, error)
	// Conversion is an event condition; an applied event that matches it is
	// a conversion of its contact. Exactly one of Conversion and
	// Conversions is set.
	Conversion string
	// Conversions are rows contact,time (see ReadConversions).
	Conversions *Conversions
	// Horizon is how long after a firing a conversion still counts as
	// predicted. default: DefaultHorizon
	Horizon time.Duration
	// Sweep, if set, measures its trigger at each of its thresholds.
	Sweep *Sweep
	// Errs receives the bad lines of the traffic, as replay reports them
	// (of the first replay only: every replay reads the same lines).
	Errs io.Writer
	// Replays forces one full replay per sweep threshold even where one
	// replay would do (tests compare the two).
	Replays bool
	// Parallel bounds the replays run at once. default: GOMAXPROCS
	Parallel int
}

// Report is the outcome of a backtest: one Model per rules file.
type Report struct {
	Horizon time.Duration
	Sweep   *Sweep
	Models  []*Model
	// Conversion or ConversionsFile says where the conversions came from.
	Conversion, ConversionsFile string
	ConversionRows              int // rows read from ConversionsFile
	// Summary is the first replay's (bad lines, duplicates); its firing
	// counts include the triggers the backtest appends.
	Summary *engine.Summary
	// Replays counts the replays run.
	Replays int
}

// Model is the figures of one rules file.
type Model struct {
	Rules      string
	Population int
	Converters int
	BaseRate   *float64
	// Ignored counts the conversion rows whose contact had no applied event.
	Ignored  int
	Triggers []Figures
	// Sweep has one entry per threshold when the file has the swept
	// trigger; SweepFrom is its own `when` (op and threshold).
	Sweep       []Figures
	SweepOp     string
	SweepAt     *float64
	SweepMethod string // "one replay" or "a replay per threshold"
}

// Figures are one trigger's (or one sweep threshold's) figures. A pointer
// is nil where the figure is undefined (a denominator of 0, a median of no
// values).
type Figures struct {
	Trigger   string
	Threshold *float64 // sweep entries only
	Alerted   int
	Predicted int // alerted contacts whose first firing predicts
	Caught    int // converters with a firing in [C - horizon, C)
	Precision *float64
	Recall    *float64
	Lift      *float64
	LeadTime  *float64 // median C - F over the predicted, in seconds
}

// Run replays the traffic through each rules file and measures it.
func Run(ctx context.Context, opt Options) (*Report, error) {
	if (opt.Conversion == "") == (opt.Conversions == nil) {
		return nil, errors.New("give conversions: --conversion EXPR or --conversions FILE.csv (one of them)")
	}
	if opt.Events == nil {
		return nil, errors.New("backtest: no events")
	}
	if opt.Horizon <= 0 {
		opt.Horizon = DefaultHorizon
	}
	if opt.Parallel <= 0 {
		opt.Parallel = runtime.GOMAXPROCS(0)
	}
	files := []string{opt.Rules}
	if opt.Compare != "" {
		files = append(files, opt.Compare)
	}
	docs := make([]*doc, len(files))
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read rules file: %w", err)
		}
		if docs[i], err = loadDoc(f, data); err != nil {
			return nil, err
		}
	}
	plans, err := planSweeps(docs, opt.Sweep)
	if err != nil {
		return nil, err
	}
	rep := &Report{Horizon: opt.Horizon, Sweep: opt.Sweep, Conversion: opt.Conversion}
	if opt.Conversions != nil {
		rep.ConversionsFile, rep.ConversionRows = opt.Conversions.File, len(opt.Conversions.Rows)
	}
	b := &backtester{opt: opt, sem: make(chan struct{}, opt.Parallel)}
	rep.Models = make([]*Model, len(docs))
	errs := make([]error, len(docs))
	var wg sync.WaitGroup
	for i, d := range docs {
		wg.Go(func() {
			rep.Models[i], errs[i] = b.model(ctx, d, plans[i], i == 0, rep)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rep.Replays = int(b.replays.Load())
	return rep, nil
}

// plan is how one file is swept.
type plan struct {
	cmp     comparison
	replays bool // a replay per threshold (the trigger sets a stage that matters)
}

// planSweeps checks the sweep against each file: the trigger must be in one
// file at least, and be a score comparison wherever it is.
func planSweeps(docs []*doc, sw *Sweep) ([]*plan, error) {
	plans := make([]*plan, len(docs))
	if sw == nil {
		return plans, nil
	}
	var missing error
	found := false
	for i, d := range docs {
		c, err := d.sweepTarget(sw.Trigger)
		if errors.Is(err, ErrNoTrigger) {
			missing = err
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		plans[i] = &plan{cmp: c, replays: d.stageCoupled(sw.Trigger)}
	}
	if !found {
		return nil, missing
	}
	return plans, nil
}

type backtester struct {
	opt     Options
	sem     chan struct{} // bounds the replays run at once
	mu      sync.Mutex    // guards Report.Summary
	replays atomic.Int64
}

// obs is one firing as the engine produced it: the contact it fired for
// (before any later merge) and its time.
type obs struct {
	contact string
	at      int64
}

// outcome is what one replay observed.
type outcome struct {
	firings  [][]obs // by trigger index of the variant
	contacts []string
	resolve  func(string) string
	summary  *engine.Summary
}

// replay runs the variant over the traffic once.
func (b *backtester) replay(ctx context.Context, v *variant, report bool) (*outcome, error) {
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	b.replays.Add(1)
	in, err := b.opt.Events()
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out := &outcome{firings: make([][]obs, len(v.rs.Triggers))}
	idx := make(map[string]int, len(v.rs.Triggers))
	for i, t := range v.rs.Triggers {
		idx[t.ID] = i
	}
	store := state.NewMemory()
	opt := engine.ReplayOptions{Store: store, Observe: func(res *rules.Result) {
		for _, f := range res.Firings {
			i := idx[f.Trigger]
			out.firings[i] = append(out.firings[i], obs{contact: f.Contact, at: f.At})
		}
	}}
	if report {
		opt.Errs = b.opt.Errs
	}
	sum, err := engine.Replay(ctx, v.rs, in, opt)
	if err != nil {
		return nil, err
	}
	out.summary = sum
	out.resolve = sum.Resolve
	if out.resolve == nil {
		out.resolve = func(id string) string { return id }
	}
	store.Range(func(c *state.Contact) bool {
		out.contacts = append(out.contacts, c.ID)
		return true
	})
	return out, nil
}

// model measures one rules file.
func (b *backtester) model(ctx context.Context, d *doc, pl *plan, first bool, rep *Report) (*Model, error) {
	m := &Model{Rules: d.file}
	var shadows []float64
	swept := ""
	if pl != nil {
		swept = b.opt.Sweep.Trigger
		m.SweepOp, m.SweepAt = pl.cmp.op, &pl.cmp.n
		m.SweepMethod = "one replay"
		if !pl.replays && !b.opt.Replays {
			shadows = b.opt.Sweep.Thresholds
		} else {
			m.SweepMethod = "a replay per threshold"
		}
	}
	op := ""
	if pl != nil {
		op = pl.cmp.op
	}
	v, err := d.build(b.opt.Conversion, swept, op, shadows, false, 0)
	if err != nil {
		return nil, err
	}
	o, err := b.replay(ctx, v, first)
	if err != nil {
		return nil, err
	}
	if first {
		b.mu.Lock()
		rep.Summary = o.summary
		b.mu.Unlock()
	}
	c := b.conversions(o, v, m)
	for i, t := range d.rs.Triggers {
		f := c.figures(t.ID, o.firings[i])
		m.Triggers = append(m.Triggers, f)
	}
	if pl == nil {
		return m, nil
	}
	ths := b.opt.Sweep.Thresholds
	m.Sweep = make([]Figures, len(ths))
	if shadows != nil {
		for k, n := range ths {
			m.Sweep[k] = c.figures(swept, o.firings[v.sweep+k])
			m.Sweep[k].Threshold = &n
		}
		return m, nil
	}
	ti := d.rs.TriggerIndex(swept)
	errs := make([]error, len(ths))
	var wg sync.WaitGroup
	for k, n := range ths {
		wg.Go(func() {
			vk, err := d.build(b.opt.Conversion, swept, op, nil, true, n)
			if err != nil {
				errs[k] = err
				return
			}
			ok, err := b.replay(ctx, vk, false)
			if err != nil {
				errs[k] = err
				return
			}
			// The conversions of this replay are the same events; the
			// population too. Attribute with this replay's own links.
			ck := b.conversions(ok, vk, &Model{})
			m.Sweep[k] = ck.figures(swept, ok.firings[ti])
			m.Sweep[k].Threshold = &n
		})
	}
	wg.Wait()
	return m, errors.Join(errs...)
}

// counts are a replay's population and conversions, with contacts as they
// stand at the end.
type counts struct {
	horizon    int64
	resolve    func(string) string
	population map[string]struct{}
	conv       map[string]int64 // converter → C, its earliest conversion
	baseRate   *float64
}

func (b *backtester) conversions(o *outcome, v *variant, m *Model) *counts {
	c := &counts{horizon: int64(b.opt.Horizon), resolve: o.resolve, population: make(map[string]struct{}, len(o.contacts)), conv: map[string]int64{}}
	for _, id := range o.contacts {
		c.population[o.resolve(id)] = struct{}{}
	}
	add := func(id string, at int64) bool {
		id = o.resolve(id)
		if _, ok := c.population[id]; !ok {
			return false
		}
		if cur, ok := c.conv[id]; !ok || at < cur {
			c.conv[id] = at
		}
		return true
	}
	if v.conv >= 0 {
		for _, f := range o.firings[v.conv] {
			add(f.contact, f.at)
		}
	}
	if b.opt.Conversions != nil {
		for _, r := range b.opt.Conversions.Rows {
			if !add(r.Contact, r.Time) {
				m.Ignored++
			}
		}
	}
	m.Population, m.Converters = len(c.population), len(c.conv)
	c.baseRate = ratio(len(c.conv), len(c.population))
	m.BaseRate = c.baseRate
	return c
}

// figures computes one trigger's figures from its firings.
func (c *counts) figures(trigger string, firings []obs) Figures {
	byContact := map[string][]int64{}
	for _, f := range firings {
		id := c.resolve(f.contact)
		byContact[id] = append(byContact[id], f.at)
	}
	f := Figures{Trigger: trigger, Alerted: len(byContact)}
	var leads []int64
	for id, ts := range byContact {
		slices.Sort(ts)
		C, ok := c.conv[id]
		if !ok {
			continue
		}
		if lead := C - ts[0]; lead > 0 && lead <= c.horizon {
			f.Predicted++
			leads = append(leads, lead)
		}
	}
	for id, C := range c.conv {
		ts := byContact[id]
		// The first firing at or after C - horizon; a hit if before C.
		i := sort.Search(len(ts), func(i int) bool { return ts[i] >= C-c.horizon })
		if i < len(ts) && ts[i] < C {
			f.Caught++
		}
	}
	f.Precision = ratio(f.Predicted, f.Alerted)
	f.Recall = ratio(f.Caught, len(c.conv))
	if f.Precision != nil && c.baseRate != nil && *c.baseRate != 0 {
		l := *f.Precision / *c.baseRate
		f.Lift = &l
	}
	f.LeadTime = median(leads)
	return f
}

func ratio(n, d int) *float64 {
	if d == 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}

// median of durations in ns, in seconds; the mean of the middle two for an
// even count; nil for none.
func median(v []int64) *float64 {
	if len(v) == 0 {
		return nil
	}
	slices.Sort(v)
	n := len(v)
	m := float64(v[n/2])
	if n%2 == 0 {
		m = (float64(v[n/2-1]) + float64(v[n/2])) / 2
	}
	m /= 1e9
	return &m
}
