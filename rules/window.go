package rules

import (
	"hash/maphash"
	"math"
	"sort"

	"github.com/leadpulse/leadpulse/state"
)

// pruneWindow drops the events at or before the window's lower bound
// (exclusive boundary: an event at exactly now - over is out).
// sp, if not nil, is the window's span kept in the contact; dm, if not
// nil, the distinct count kept in its memo.
func pruneWindow(sp *state.WindowSpan, dm *distinctMemo, w *state.Window, bound int64) {
	if len(w.T) == 0 {
		return
	}
	if lo, _ := span(sp, w); lo > bound {
		return
	}
	n := 0
	for n < len(w.T) && w.T[n] <= bound {
		n++
	}
	if n == 0 {
		return
	}
	if sp != nil {
		if n == len(w.T) {
			sp.OK = false
		} else {
			sp.Lo = w.T[n]
		}
	}
	if dm != nil {
		for _, k := range w.K[:min(n, len(w.K))] {
			dm.remove(k)
		}
	}
	w.T = append(w.T[:0], w.T[n:]...)
	if len(w.V) > 0 {
		w.V = append(w.V[:0], w.V[n:]...)
	}
	if len(w.K) > 0 {
		w.K = append(w.K[:0], w.K[n:]...)
	}
}

// addToWindow inserts the event at time t in order, evaluating the window's
// value for sum and distinct windows; an event whose value is null (or not a
// number, for sum) is not added.
func (x *Evaluator) addToWindow(sp *state.WindowSpan, dm *distinctMemo, win *state.Window, w *Window, t int64) {
	var v float64
	var k string
	switch w.Agg {
	case Sum:
		f, ok := toFloat(x.run(w.Value))
		if !ok {
			return
		}
		v = f
	case Distinct:
		val := x.run(w.Value)
		if val == nil {
			return
		}
		k = formatValue(val)
	}
	if len(win.T) >= state.MaxWindowEntries {
		win.T = append(win.T[:0], win.T[1:]...)
		if w.Agg == Sum {
			win.V = append(win.V[:0], win.V[1:]...)
		}
		if w.Agg == Distinct && len(win.K) > 0 {
			if dm != nil {
				dm.remove(win.K[0])
			}
			win.K = append(win.K[:0], win.K[1:]...)
		}
		win.Dropped++
	}
	// Events nearly always arrive in time order: search from the end.
	i := len(win.T)
	for i > 0 && win.T[i-1] > t {
		i--
	}
	win.T = insertAt(win.T, i, t)
	switch w.Agg {
	case Sum:
		win.V = insertAt(win.V, i, v)
	case Distinct:
		win.K = insertAt(win.K, i, k)
		if dm != nil {
			dm.keys[k]++
		}
	}
	if sp != nil {
		*sp = state.WindowSpan{Lo: win.T[0], Hi: win.T[len(win.T)-1], OK: true}
	}
}

// span returns the times of the window's oldest and newest entries (it
// must have one), reading them from T only when the contact does not keep
// them (state.Contact.Spans; sp is nil for a window beyond those).
func span(sp *state.WindowSpan, w *state.Window) (lo, hi int64) {
	if sp == nil {
		return w.T[0], w.T[len(w.T)-1]
	}
	if !sp.OK {
		*sp = state.WindowSpan{Lo: w.T[0], Hi: w.T[len(w.T)-1], OK: true}
	}
	return sp.Lo, sp.Hi
}

// spanOf returns the span kept for window i of c, or nil.
func spanOf(c *state.Contact, i int) *state.WindowSpan {
	if c == nil || i >= len(c.Spans) {
		return nil
	}
	return &c.Spans[i]
}

func insertAt[T any](s []T, i int, v T) []T {
	if len(s) == cap(s) && len(s) < minEntries {
		// append would grow 0 → 1 → 2 → 4: an allocation (and a copy)
		// for each of a new window's first events.
		s = append(make([]T, 0, minEntries), s...)
	}
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// minEntries is the room a window's (or a limit's or cap's) first entry
// gets.
const minEntries = 4

// aggregate computes the window's value over the events in (now - over, now].
// c and i, when c is not nil, are the contact and the window's index: a
// distinct count of a whole window is kept in the contact's memo.
func (x *Evaluator) aggregate(c *state.Contact, i int, win *state.Window, w *Window, now int64) float64 {
	lo := now - w.Over
	start, end := 0, len(win.T)
	if end == 0 {
		return 0
	}
	first, last := span(spanOf(c, i), win)
	if first <= lo {
		// Not pruned to this bound (an inspection at another time).
		start = sort.Search(len(win.T), func(i int) bool { return win.T[i] > lo })
	}
	if last > now {
		for end > start && win.T[end-1] > now {
			end--
		}
	}
	switch w.Agg {
	case Sum:
		s := 0.0
		for _, v := range win.V[start:end] {
			s += v
		}
		return s
	case Distinct:
		keys := win.K[start:end]
		if len(keys) <= 8 || c == nil || start != 0 || end != len(win.K) || len(win.K) != len(win.T) {
			return float64(x.distinct.count(keys))
		}
		memo := x.memoOf(c)
		if memo.distinct == nil {
			memo.distinct = make([]distinctMemo, len(x.rs.Windows))
		}
		d := &memo.distinct[i]
		sig := windowSig{data: &win.K[0], n: len(win.K), first: first, last: last, dropped: win.Dropped}
		if d.keys != nil && d.sig == sig {
			return float64(len(d.keys))
		}
		if d.keys == nil {
			d.keys = make(map[string]int32, 16)
		} else {
			clear(d.keys)
		}
		for _, k := range keys {
			d.keys[k]++
		}
		d.sig = sig
		return float64(len(d.keys))
	}
	return float64(end - start)
}

// decay is the share of points left after d nanoseconds with this half-life.
func decay(d, halfLife int64) float64 {
	return math.Exp2(-float64(d) / float64(halfLife))
}

// addPoints adds pts earned at t to a rule's points. With a half-life the
// value is kept as of the latest award time and decayed from there.
func addPoints(p *state.Points, pts float64, t, halfLife int64) {
	switch {
	case p.AsOf == state.NoTime:
		p.Value, p.AsOf = pts, t
	case halfLife == 0:
		p.Value += pts
		if t > p.AsOf {
			p.AsOf = t
		}
	case t >= p.AsOf:
		p.Value = p.Value*decay(t-p.AsOf, halfLife) + pts
		p.AsOf = t
	default:
		p.Value += pts * decay(p.AsOf-t, halfLife)
	}
}

// pointsAt is the rule's points worth at t. Points are never worth more than
// when earned: at a t before the latest award, the value as of that award is
// returned.
func pointsAt(p *state.Points, t, halfLife int64) float64 {
	if halfLife == 0 || p.AsOf == state.NoTime || t <= p.AsOf {
		return p.Value
	}
	return p.Value * decay(t-p.AsOf, halfLife)
}

// pruneLimit forgets awards at or before bound: they can no longer share a
// `per` window with an award at the contact's current time.
func pruneLimit(p *state.Points, bound int64) {
	n := 0
	for n < len(p.LimT) && p.LimT[n] <= bound {
		n++
	}
	if n > 0 {
		p.LimT = append(p.LimT[:0], p.LimT[n:]...)
		p.LimP = append(p.LimP[:0], p.LimP[n:]...)
	}
}

// limitAllowance returns how many raw points the rule may still award at t
// without any `per`-long window that contains t going over the limit.
func limitAllowance(p *state.Points, r *ScoreRule, t int64) float64 {
	// The windows (s - per, s] containing t end at t or at a later award.
	worst := awardedIn(p, t-r.LimitPer, t)
	for _, s := range p.LimT {
		if s > t && s < t+r.LimitPer {
			worst = math.Max(worst, awardedIn(p, s-r.LimitPer, s))
		}
	}
	return r.LimitMax - worst
}

// awardedIn sums the raw awards in (lo, hi].
func awardedIn(p *state.Points, lo, hi int64) float64 {
	sum := 0.0
	for j, at := range p.LimT {
		if at > lo && at <= hi {
			sum += p.LimP[j]
		}
	}
	return sum
}

func insertAward(ts []int64, ps []float64, t int64, pts float64) ([]int64, []float64) {
	i := len(ts)
	for i > 0 && ts[i-1] > t {
		i--
	}
	return insertAt(ts, i, t), insertAt(ps, i, pts)
}

// admitCap reports whether the action may be emitted at `at` under its cap,
// and records the emission if so.
func admitCap(cp *state.Cap, a *Action, at int64) bool {
	n := 0
	for n < len(cp.T) && cp.T[n] <= at-a.CapPer {
		n++
	}
	if n > 0 {
		cp.T = append(cp.T[:0], cp.T[n:]...)
	}
	count := 0
	for _, t := range cp.T {
		if t <= at {
			count++
		}
	}
	if count >= a.CapMax {
		return false
	}
	i := len(cp.T)
	for i > 0 && cp.T[i-1] > at {
		i--
	}
	cp.T = insertAt(cp.T, i, at)
	if len(cp.T) > 2*a.CapMax {
		cp.T = append(cp.T[:0], cp.T[len(cp.T)-2*a.CapMax:]...)
	}
	return true
}

// strSet counts distinct strings, reusing its table from one count to the
// next: an open-addressing set of hashes, faster than clearing and filling a
// map for the few to few hundred keys of a distinct window.
type strSet struct {
	seed maphash.Seed
	hash []uint64 // 0: empty slot; else the key's hash with its low bit set
	keys []string
}

// count returns the number of distinct strings in keys.
func (s *strSet) count(keys []string) int {
	if len(keys) <= 8 {
		// Few keys: comparing each with those before it is cheaper
		// than hashing.
		n := 0
	next:
		for i, k := range keys {
			for _, prev := range keys[:i] {
				if prev == k {
					continue next
				}
			}
			n++
		}
		return n
	}
	size := 16
	for size < 2*len(keys) {
		size *= 2
	}
	if len(s.hash) < size {
		if s.hash == nil {
			s.seed = maphash.MakeSeed()
		}
		s.hash, s.keys = make([]uint64, size), make([]string, size)
	} else {
		clear(s.hash[:size])
	}
	mask := uint64(size - 1)
	n := 0
	for _, k := range keys {
		h := maphash.String(s.seed, k) | 1
		for i := h & mask; ; i = (i + 1) & mask {
			if s.hash[i] == 0 {
				s.hash[i], s.keys[i] = h, k
				n++
				break
			}
			if s.hash[i] == h && s.keys[i] == k {
				break
			}
		}
	}
	return n
}

// distinctMemo is a distinct window's keys kept with the contact (fitMemo):
// how many entries hold each key, for the entries that sig identifies.
// Apply keeps it up to date as it prunes and adds (trackDistinct); the
// signature catches any other change: the rules change a window only by
// pruning its oldest entries (which raises its first time, or empties it),
// adding one (which raises its length, or its Dropped count when the
// oldest is dropped to make room) and merging (which drops the memo, as
// does loading the contact). A new backing array changes data, which only
// costs a count.
type distinctMemo struct {
	sig  windowSig
	keys map[string]int32 // nil: not kept
}

// windowSig identifies a window's entries (see distinctMemo).
type windowSig struct {
	data        *string // &K[0]
	n           int
	first, last int64
	dropped     uint64
}

func (d *distinctMemo) remove(k string) {
	if n := d.keys[k]; n > 1 {
		d.keys[k] = n - 1
	} else {
		delete(d.keys, k)
	}
}

// trackDistinct returns the kept keys of distinct window i of c if they are
// those of its entries now, so that Apply updates them as it changes the
// window (then settle); else nil, after dropping stale ones.
func (x *Evaluator) trackDistinct(c *state.Contact, i int, sp *state.WindowSpan, win *state.Window) *distinctMemo {
	memo, _ := c.Memo.(*fitMemo)
	if memo == nil || memo.distinct == nil || memo.distinct[i].keys == nil {
		return nil
	}
	d := &memo.distinct[i]
	if sig, ok := sigOf(sp, win); !ok || sig != d.sig {
		d.keys = nil
		return nil
	}
	return d
}

// settle records that d's keys are those of the window as it is now.
func (d *distinctMemo) settle(sp *state.WindowSpan, win *state.Window) {
	sig, ok := sigOf(sp, win)
	if !ok {
		d.keys = nil
		return
	}
	d.sig = sig
}

// sigOf returns the signature of a window with entries, all keyed.
func sigOf(sp *state.WindowSpan, win *state.Window) (windowSig, bool) {
	if len(win.K) == 0 || len(win.K) != len(win.T) {
		return windowSig{}, false
	}
	first, last := span(sp, win)
	return windowSig{data: &win.K[0], n: len(win.K), first: first, last: last, dropped: win.Dropped}, true
}
