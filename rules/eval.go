package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/leadpulse/leadpulse/action"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/state"
)

// Record is one emitted action (SPEC §3). It lives in the leaf package
// action, so that its readers (sinks, stream) need not import rules.
type Record = action.Record

// Firing is one trigger firing that got past its cooldown. Actions lists the
// actions it emitted (those not suppressed by a guard or a cap).
type Firing struct {
	Trigger string
	Contact string
	At      int64
	Actions []string
}

// TimerSet is a timer that an Apply set or restarted; the driver indexes it.
type TimerSet struct {
	Contact string
	Trigger int
	Due     int64
}

// Result is what one Apply or Fire produced. Its slices are reused by the next
// call on the same Evaluator: copy what must outlive it.
type Result struct {
	Duplicate bool // the event repeated a remembered messageId and changed nothing
	Fired     bool // Fire found its timer pending and fired it
	Records   []Record
	Firings   []Firing
	Timers    []TimerSet
	// Event is the event an Apply applied (nil for Fire); Awards are the
	// engagement points it awarded, by rule, after `limit` clipping. Both
	// are for observers (the admin UI's history): they are reused by the
	// next call.
	Event  *event.Event
	Awards []Award
	// Contact is the id of the contact applied to: the event's contact as
	// identity resolved it (SPEC §6), or the timer's.
	Contact string
}

// Award is engagement points one event earned from one scoring rule.
type Award struct {
	Rule   string
	Points float64
}

// Stats counts what an Evaluator did.
type Stats struct {
	Applied            uint64
	Duplicates         uint64
	TimersFired        uint64
	Firings            uint64
	SuppressedCooldown uint64 // edges inside a cooldown (not firings)
	SuppressedGuard    uint64 // actions whose `if` was false
	SuppressedCap      uint64 // actions over their `cap`
	Emitted            uint64
	ByTrigger          []uint64 // firings per trigger, in file order

	// Identity (SPEC §6), counted by the driver that resolves ids, and by
	// Merge. Links are accepted links of an anonymous id to a user, with or
	// without state; Merges are the links that brought state. Conflicts
	// counts linking events with a refused link, once per event, by the
	// kind of its first refused link.
	Links     uint64
	Merges    uint64
	Conflicts [numConflictKinds]uint64
}

// ConflictsTotal is the number of linking events with a refused link.
func (s *Stats) ConflictsTotal() uint64 {
	var n uint64
	for _, c := range s.Conflicts {
		n += c
	}
	return n
}

// Evaluator applies events and timers to contacts under one Ruleset. It
// holds scratch space and is not safe for concurrent use: make one per
// goroutine (per partition).
type Evaluator struct {
	rs *Ruleset
	vm vm.VM // reused by every program run: no allocation per run

	// The flat environments (see expr.go, env.go) and what fills them.
	ev, ct    env
	cur       *event.Event // the event being applied; nil while a timer fires
	v, before vals         // the contact's values now, and before the event
	trigger   any          // while an action is prepared: the trigger id
	action    any          // and the action name
	interned  map[string]any
	fitOn     []bool
	distinct  strSet
	moved     []MovedTimer // Merge's result, reused
	res       Result
	Stats     Stats
}

// NewEvaluator returns an evaluator for rs.
func (rs *Ruleset) NewEvaluator() *Evaluator {
	x := &Evaluator{
		rs:       rs,
		v:        vals{windows: make([]float64, len(rs.Windows))},
		before:   vals{windows: make([]float64, len(rs.Windows))},
		interned: map[string]any{},
		fitOn:    make([]bool, len(rs.Fit)),
		Stats:    Stats{ByTrigger: make([]uint64, len(rs.Triggers))},
	}
	x.ev, x.ct = newEnv(x, &rs.evEnv), newEnv(x, &rs.ctEnv)
	x.ev.sgen, x.ev.sval = make([]uint32, rs.nshared), make([]bool, rs.nshared)
	return x
}

// Ruleset returns the rules the evaluator runs.
func (x *Evaluator) Ruleset() *Ruleset { return x.rs }

func (x *Evaluator) reset() *Result {
	x.res.Duplicate, x.res.Fired = false, false
	x.res.Records = x.res.Records[:0]
	x.res.Firings = x.res.Firings[:0]
	x.res.Timers = x.res.Timers[:0]
	x.res.Event, x.res.Contact = nil, ""
	x.res.Awards = x.res.Awards[:0]
	return &x.res
}

// Apply applies one resolved event to its contact c (whose ID is the event's
// contact) and evaluates the rules. A repeat of a remembered messageId
// changes nothing and sets Result.Duplicate.
func (x *Evaluator) Apply(c *state.Contact, e *event.Event) *Result {
	res := x.reset()
	rs := x.rs
	c.Bind(&rs.names)
	if e.MessageID != "" {
		if c.Seen.Check(e.MessageID) {
			x.Stats.Duplicates++
			res.Duplicate = true
			return res
		}
	}
	x.Stats.Applied++
	res.Event, res.Contact = e, c.ID

	x.cur = e
	if rs.usesContact {
		now := c.Latest
		if now == state.NoTime {
			now = e.Time
		}
		x.fill(&x.before, c, e.Time, now)
	}
	c.Seq++
	advanced := c.Latest == state.NoTime || e.Time > c.Latest
	if advanced {
		c.Latest = e.Time
	}
	now := c.Latest
	x.ev.invalidate()
	for _, i := range rs.evEnv.before {
		x.ev.get(i)
	}

	for i, w := range rs.Windows {
		win, sp := &c.Windows[i], spanOf(c, i)
		var dm *distinctMemo
		if w.Agg == Distinct {
			dm = x.trackDistinct(c, i, sp, win)
		}
		// A window that holds nothing (c.Live) has nothing to prune:
		// its slot is read only if the event goes in.
		if c.Live.W.Has(i) {
			pruneWindow(sp, dm, win, now-w.Over)
		}
		if e.Time > now-w.Over && x.match(w.Match) {
			c.Live.W.Set(i)
			x.addToWindow(sp, dm, win, w, e.Time)
		}
		if dm != nil {
			dm.settle(sp, win)
		}
	}

	for i, r := range rs.Scoring {
		if !x.match(r.On) {
			continue
		}
		p := &c.Points[i]
		c.Live.P.Set(i)
		pts := r.Points
		if pts > 0 && r.LimitMax > 0 {
			pruneLimit(p, now-r.LimitPer)
			allowed := limitAllowance(p, r, e.Time)
			if allowed <= 0 {
				continue
			}
			pts = math.Min(pts, allowed)
			p.LimT, p.LimP = insertAward(p.LimT, p.LimP, e.Time, pts)
		}
		addPoints(p, pts, e.Time, rs.HalfLife)
		res.Awards = append(res.Awards, Award{Rule: r.ID, Points: pts})
	}

	if len(e.Traits) > 0 {
		if c.Traits == nil {
			c.Traits = make(map[string]any, len(e.Traits))
		}
		for k, v := range e.Traits {
			c.Traits[k] = v
		}
		forgetFit(c)
	}

	cause := cause{seq: c.Seq}
	x.fill(&x.v, c, e.Time, now)
	for i, t := range rs.Triggers {
		switch t.Kind {
		case When:
			x.edge(c, i, x.test(t.When), e.Time, cause)
		case Sequence:
			if x.sequence(c, i, t, e.Time, now) {
				x.fire(c, i, e.Time, cause)
			}
		case Absence:
			if t.Unless != nil {
				if k := timerIndex(c, t.ID); k >= 0 && e.Time < c.Timers[k].Due && x.match(t.Unless) {
					removeTimer(c, k)
				}
			}
			if x.match(t.After) {
				x.setTimer(c, i, e.Time+t.Within)
			}
		case Inactive:
			// Only an event that moves the contact's latest time starts a
			// new wait: a late event must not set again a timer that has
			// already fired for this latest time.
			if k := timerIndex(c, t.ID); (k < 0 && advanced) || (k >= 0 && c.Timers[k].Due != c.Latest+t.Quiet) {
				x.setTimer(c, i, c.Latest+t.Quiet)
			}
		}
	}
	x.cur = nil
	return res
}

// Fire fires the timer of trigger ti on c if it is still pending with this due
// time (a restarted or cancelled timer is stale and does nothing), then
// evaluates the `when` triggers.
func (x *Evaluator) Fire(c *state.Contact, ti int, due int64) *Result {
	res := x.reset()
	rs := x.rs
	c.Bind(&rs.names)
	t := rs.Triggers[ti]
	k := timerIndex(c, t.ID)
	if k < 0 || c.Timers[k].Due != due {
		return res
	}
	removeTimer(c, k)
	res.Fired = true
	x.Stats.TimersFired++
	// Windows stay as of the contact's latest event time (SPEC §2: `now` is
	// the latest event time seen for the contact); scores are taken at due.
	now := c.Latest
	if now == state.NoTime {
		now = due
	}
	cause := cause{timer: true, due: due}
	x.cur = nil
	x.fill(&x.v, c, due, now)
	// One pass in `triggers:` order, as for an event (SPEC §2: the firings
	// caused by one timer are emitted in file order): the timer's trigger
	// fires at its place and each `when` is evaluated at its own.
	for i, t := range rs.Triggers {
		switch {
		case i == ti:
			x.fire(c, ti, due, cause)
		case t.Kind == When:
			x.edge(c, i, x.test(t.When), due, cause)
		}
	}
	return res
}

// edge fires a `when` trigger when its condition turns true, and re-arms it
// when the condition is false.
func (x *Evaluator) edge(c *state.Contact, i int, v bool, at int64, cause cause) {
	if !v && !c.Live.T.Has(i) {
		return // not on: nothing to re-arm, and the slot is not read
	}
	st := &c.Triggers[i]
	if v && !st.On {
		st.On = true
		c.Live.T.Set(i)
		x.fire(c, i, at, cause)
	} else if !v {
		st.On = false
	}
}

// sequence advances a sequence trigger's partial matches with the current
// event and reports whether the event completes one.
func (x *Evaluator) sequence(c *state.Contact, i int, t *Trigger, at, now int64) bool {
	n := len(t.Steps)
	if n == 1 {
		return x.match(t.Steps[0])
	}
	// A slot without state (c.Live) has no partial match: it is read
	// only once a first step starts one.
	if !c.Live.T.Has(i) || c.Triggers[i].Steps == nil {
		// No partial match (nil is all NoTime): only a first step
		// starts one, and only then is there anything to keep.
		if !x.match(t.Steps[0]) {
			return false
		}
		st := &c.Triggers[i]
		c.Live.T.Set(i)
		st.Steps = make([]int64, n)
		for k := range st.Steps {
			st.Steps[k] = state.NoTime
		}
		st.Steps[1] = at
		return false
	}
	st := &c.Triggers[i]
	if len(st.Steps) != n {
		st.Steps = make([]int64, n)
		for k := range st.Steps {
			st.Steps[k] = state.NoTime
		}
	}
	// Forget partial matches that can no longer complete in time.
	for k := 1; k < n; k++ {
		if st.Steps[k] != state.NoTime && st.Steps[k] < now-t.Within {
			st.Steps[k] = state.NoTime
		}
	}
	if f := st.Steps[n-1]; f != state.NoTime && at-f <= t.Within && x.match(t.Steps[n-1]) {
		for k := range st.Steps {
			st.Steps[k] = state.NoTime
		}
		return true
	}
	// Advance from the last step down, so that one event moves a partial
	// match by one step only. The latest first-step time dominates.
	for k := n - 2; k >= 1; k-- {
		if f := st.Steps[k]; f != state.NoTime && at-f <= t.Within && x.match(t.Steps[k]) && f > st.Steps[k+1] {
			st.Steps[k+1] = f
		}
	}
	if x.match(t.Steps[0]) && at > st.Steps[1] {
		st.Steps[1] = at
	}
	return false
}

// fire records a firing of trigger i at `at` unless its cooldown suppresses
// it, moves the stage forward and emits the trigger's actions that pass
// their guards and caps.
func (x *Evaluator) fire(c *state.Contact, i int, at int64, cause cause) {
	rs := x.rs
	t := rs.Triggers[i]
	st := &c.Triggers[i]
	if t.Cooldown > 0 && st.Last != state.NoTime && at-st.Last < t.Cooldown {
		x.Stats.SuppressedCooldown++
		return
	}
	st.Last = at
	st.Fired++
	c.Live.T.Set(i)
	x.Stats.Firings++
	x.Stats.ByTrigger[i]++
	if t.stageIdx >= 0 && stageIndex(rs.Stages, c.Stage) < t.stageIdx {
		c.Stage = t.SetStage
		x.v.stage = c.Stage
		forgetFit(c)
		x.ct.invalidate()
	}
	res := &x.res
	res.Firings = append(res.Firings, Firing{Trigger: t.ID, Contact: c.ID, At: at})
	f := &res.Firings[len(res.Firings)-1]
	x.trigger = t.boxedID
	x.setTrigger()
	for _, ai := range t.Do {
		a := rs.Actions[ai]
		x.action = a.boxedName
		x.setTrigger()
		if a.If != nil && !x.test(a.If) {
			x.Stats.SuppressedGuard++
			continue
		}
		if a.CapMax > 0 && !admitCap(&c.Caps[ai], a, at) {
			x.Stats.SuppressedCap++
			continue
		}
		x.Stats.Emitted++
		f.Actions = append(f.Actions, a.Name)
		res.Records = append(res.Records, x.record(c, t, a, at, cause))
	}
	x.trigger, x.action = nil, nil
	x.setTrigger()
}

// setTrigger puts the trigger and action being prepared in the contact
// environment, where the rules read them.
func (x *Evaluator) setTrigger() {
	if i := x.rs.ctEnv.trigger; i >= 0 {
		x.ct.set(i, x.trigger)
	}
	if i := x.rs.ctEnv.action; i >= 0 {
		x.ct.set(i, x.action)
	}
}

func (x *Evaluator) record(c *state.Contact, t *Trigger, a *Action, at int64, cause cause) Record {
	rs := x.rs
	r := Record{
		ID:         actionID(c.ID, t.ID, a.Name, cause, at),
		Action:     a.Name,
		Trigger:    t.ID,
		Contact:    c.ID,
		At:         time.Unix(0, at).UTC().Format(time.RFC3339Nano),
		AtNanos:    at,
		Score:      round3(x.v.score),
		Fit:        round3(x.v.fit),
		Engagement: round3(x.v.engagement),
		Stage:      c.Stage,
		Sink:       a.Sink,
		Explain:    make(map[string]float64, len(rs.Scoring)+len(rs.Fit)),
	}
	for i, sr := range rs.Scoring {
		if !c.Live.P.Has(i) {
			continue // no points: worth 0
		}
		if v := pointsAt(&c.Points[i], at, rs.HalfLife); v != 0 {
			r.Explain[sr.ID] = round3(v)
		}
	}
	for i, fr := range rs.Fit {
		if x.fitOn[i] && fr.Points != 0 {
			r.Explain[fr.ID] = round3(fr.Points)
		}
	}
	if a.RouteBy != nil {
		if v, ok := x.run(a.RouteBy).(string); ok {
			if sink, ok := a.RouteTo[v]; ok {
				r.Sink = sink
			}
		}
	}
	if a.Message != nil {
		r.Message = a.Message.render(x)
	}
	return r
}

// cause is what made an action: the contact's event with sequence number
// seq, or the timer due at due. Its text in the action id is "e<seq>" or
// "t<due>"; it is only formatted when an action is emitted, so that an
// event that fires nothing allocates nothing for it.
type cause struct {
	timer bool
	seq   uint64
	due   int64
}

func (c cause) append(b []byte) []byte {
	if c.timer {
		return strconv.AppendInt(append(b, 't'), c.due, 10)
	}
	return strconv.AppendUint(append(b, 'e'), c.seq, 10)
}

// actionID is deterministic: the same contact, trigger, action, cause (the
// contact's event sequence number, or the timer's due time) and time always
// give the same id, so a replayed action carries its original's id.
func actionID(contact, trigger, action string, cause cause, at int64) string {
	h := sha256.New()
	var buf [48]byte
	for _, s := range []string{contact, trigger, action} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	b := append(cause.append(buf[:0]), 0)
	b = append(strconv.AppendInt(b, at, 10), 0)
	h.Write(b)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func stageIndex(stages []string, s string) int {
	for i, st := range stages {
		if st == s {
			return i
		}
	}
	return -1
}

// fitMemo keeps with the contact, while it is in memory, what changes only
// with its traits or stage: the values of the fit rules that depend only on
// those (FitRule.static), so that they run again only when those change
// (see forgetFit), and the contact's id boxed once. With at most 64 fit
// rules the values live in the contact's MemoBits (known, on), which costs
// no memory access of its own on the hot path; the memo holds them beyond.
type fitMemo struct {
	on       []bool
	known    []bool
	distinct []distinctMemo // by window; nil until a distinct window is large
	id       any            // the contact's id, boxed once
	idOf     string         // the id boxed in id
}

// forgetFit drops the memo after a change of traits or stage.
func forgetFit(c *state.Contact) {
	c.Memo = nil
	c.MemoBits = [2]uint64{}
}

// memoOf returns c's memo, making it if needed.
func (x *Evaluator) memoOf(c *state.Contact) *fitMemo {
	memo, _ := c.Memo.(*fitMemo)
	if memo == nil {
		memo = &fitMemo{}
		if n := len(x.rs.Fit); n > 64 {
			memo.on, memo.known = make([]bool, n), make([]bool, n)
		}
		c.Memo = memo
	}
	return memo
}

// fitKnown returns the memoized value of fit rule i, if known.
func (x *Evaluator) fitKnown(c *state.Contact, i int) (on, known bool) {
	if len(x.rs.Fit) <= 64 {
		bit := uint64(1) << i
		return c.MemoBits[1]&bit != 0, c.MemoBits[0]&bit != 0
	}
	memo := x.memoOf(c)
	return memo.on[i], memo.known[i]
}

// setFit memoizes the value of fit rule i; known is false for a rule that
// must run every time.
func (x *Evaluator) setFit(c *state.Contact, i int, on, known bool) {
	if len(x.rs.Fit) <= 64 {
		bit := uint64(1) << i
		c.MemoBits[0] &^= bit
		c.MemoBits[1] &^= bit
		if known {
			c.MemoBits[0] |= bit
		}
		if on {
			c.MemoBits[1] |= bit
		}
		return
	}
	memo := x.memoOf(c)
	memo.on[i], memo.known[i] = on, known
}

// fill computes the contact's values at time `at`, with windows as of
// `now`, into v, and fills the contact environment from them.
func (x *Evaluator) fill(v *vals, c *state.Contact, at, now int64) {
	rs := x.rs
	v.id, v.traits, v.stage, v.c = c.ID, c.Traits, c.Stage, c
	// Slots without state (c.Live) are worth 0 and not read: leaving
	// out a +0 term changes no sum that starts at +0.
	eng := 0.0
	for i := range rs.Scoring {
		if c.Live.P.Has(i) {
			eng += pointsAt(&c.Points[i], at, rs.HalfLife)
		}
	}
	v.engagement = eng
	for i, w := range rs.Windows {
		if c.Live.W.Has(i) {
			v.windows[i] = x.aggregate(c, i, &c.Windows[i], w, now)
		} else {
			v.windows[i] = 0
		}
	}
	// The environment reads x.v; for the values before an event, point it
	// there for the fit rules and copy back.
	saved := x.v
	if v != &x.v {
		x.v = *v
	}
	x.v.fit, x.v.score = 0, eng
	x.ct.invalidate()
	fit := 0.0
	for i, r := range rs.Fit {
		on, known := false, false
		if r.static {
			on, known = x.fitKnown(c, i)
		}
		if !known {
			on = x.test(r.If)
			x.setFit(c, i, on, r.static)
		}
		if v == &x.v {
			x.fitOn[i] = on
		}
		if on {
			fit += r.Points
		}
	}
	x.v.fit, x.v.score = fit, eng+fit
	if v != &x.v {
		*v = x.v
		x.v = saved
	}
	x.ct.invalidate()
}

// timerIndex returns the index of trigger id's pending timer in c.Timers, or -1.
func timerIndex(c *state.Contact, id string) int {
	for k := range c.Timers {
		if c.Timers[k].Trigger == id {
			return k
		}
	}
	return -1
}

func removeTimer(c *state.Contact, k int) {
	c.Timers = append(c.Timers[:k], c.Timers[k+1:]...)
}

func (x *Evaluator) setTimer(c *state.Contact, ti int, due int64) {
	id := x.rs.Triggers[ti].ID
	k := timerIndex(c, id)
	switch {
	case k >= 0 && k == len(c.Timers)-1:
		// Already last: restarting it in place is removing and appending.
		c.Timers[k] = state.Timer{Trigger: id, Due: due, Set: c.Seq}
	case k >= 0:
		removeTimer(c, k)
		fallthrough
	default:
		c.Timers = append(c.Timers, state.Timer{Trigger: id, Due: due, Set: c.Seq})
	}
	x.res.Timers = append(x.res.Timers, TimerSet{Contact: c.ID, Trigger: ti, Due: due})
}
