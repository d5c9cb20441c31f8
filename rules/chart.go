package rules

import (
	"slices"

	"github.com/leadpulse/leadpulse/state"
)

// AwardAt is one engagement award as an observer recorded it: the rule,
// the points it awarded (after `limit`), and the event time.
type AwardAt struct {
	Rule   string  `json:"rule"`
	Points float64 `json:"points"`
	At     int64   `json:"at"` // Unix ns
}

// ScoreChart is a contact's score over time, by rule, for the admin UI's
// chart. Times are Unix milliseconds (what a browser's Date takes).
//
// The contact's state keeps each engagement rule's points as one decaying
// value, not every award, so the chart is computed from that value and the
// awards an observer recorded (Recorded): from the first recorded award on,
// it is exact (decay is exponential, so the points of earlier, unrecorded
// awards are the state's value minus the recorded awards' share, decaying
// alike). Before it, nothing is drawn. Projection continues the curve past
// the contact's latest event for two half-lives without new events, which is
// where decay shows. Fit is drawn at its current value: the fit rules'
// history is not kept.
type ScoreChart struct {
	HalfLifeMs int64 `json:"half_life_ms"` // 0: no decay
	// Times are the sample times of History; Projection has its own.
	Times      []int64       `json:"times"`
	Fit        float64       `json:"fit"`
	FitRules   []ChartSeries `json:"fit_rules"`
	Engagement []ChartSeries `json:"engagement"` // one per scoring rule, at Times
	Score      []float64     `json:"score"`      // fit + engagement at Times
	ProjTimes  []int64       `json:"projection_times"`
	Projection []ChartSeries `json:"projection"` // per rule, at ProjTimes
	ProjScore  []float64     `json:"projection_score"`
	Awards     []ChartAward  `json:"awards"`
}

// ChartSeries is one rule's points at the chart's sample times (for a fit
// rule, Values is its single current value).
type ChartSeries struct {
	Rule   string    `json:"rule"`
	Values []float64 `json:"values"`
}

// ChartAward is a recorded award as drawn: a step in its rule's curve.
type ChartAward struct {
	Rule   string  `json:"rule"`
	Points float64 `json:"points"`
	AtMs   int64   `json:"at"`
}

// Chart computes the score chart of c from the awards recorded for it
// (any order; awards of rules no longer in rs are left out), with n sample
// points per part. Like Inspect it binds c to rs: c must be a copy. Pure.
func (rs *Ruleset) Chart(c *state.Contact, recorded []AwardAt, n int) ScoreChart {
	if n < 2 {
		n = 2
	}
	view := rs.Inspect(c, state.NoTime) // binds c; fit as of the latest event
	ch := ScoreChart{HalfLifeMs: rs.HalfLife / 1e6, Fit: view.Fit, Awards: []ChartAward{}}
	for _, r := range rs.Fit {
		if p, ok := view.Points.Fit[r.ID]; ok {
			ch.FitRules = append(ch.FitRules, ChartSeries{Rule: r.ID, Values: []float64{p}})
		}
	}
	now := c.Latest
	if now == state.NoTime {
		return ch
	}
	byRule := make([][]AwardAt, len(rs.Scoring))
	from := now
	for _, a := range recorded {
		for i, r := range rs.Scoring {
			if r.ID == a.Rule && a.At <= now {
				byRule[i] = append(byRule[i], a)
				from = min(from, a.At)
				ch.Awards = append(ch.Awards, ChartAward{Rule: a.Rule, Points: round3(a.Points), AtMs: a.At / 1e6})
			}
		}
	}
	slices.SortFunc(ch.Awards, func(a, b ChartAward) int { return int(a.AtMs - b.AtMs) })
	if from == now {
		from = now - 60e9 // one minute before, so that there is an axis
	}
	// Remainder per rule: the points of earlier, unrecorded awards at AsOf.
	rem := make([]float64, len(rs.Scoring))
	for i := range rs.Scoring {
		p := &c.Points[i]
		if p.AsOf == state.NoTime {
			continue
		}
		known := 0.0
		for _, a := range byRule[i] {
			known += valueAt(a.Points, a.At, p.AsOf, rs.HalfLife)
		}
		rem[i] = p.Value - known
		if rem[i] < 1e-9 && rem[i] > -1e-9 {
			rem[i] = 0
		}
	}
	at := func(i int, t int64) float64 {
		p := &c.Points[i]
		if p.AsOf == state.NoTime {
			return 0
		}
		if t >= p.AsOf {
			return pointsAt(p, t, rs.HalfLife)
		}
		v := 0.0
		if rem[i] != 0 {
			v = valueAt(rem[i], p.AsOf, t, rs.HalfLife)
		}
		for _, a := range byRule[i] {
			if a.At <= t {
				v += valueAt(a.Points, a.At, t, rs.HalfLife)
			}
		}
		return v
	}

	// Samples: n evenly spaced, plus each award's instant and the instant
	// before it, so that steps are steps.
	ts := make([]int64, 0, n+2*len(ch.Awards))
	for k := range n {
		ts = append(ts, from+(now-from)*int64(k)/int64(n-1))
	}
	for _, rule := range byRule {
		for _, a := range rule {
			ts = append(ts, a.At, a.At-1e6)
		}
	}
	slices.Sort(ts)
	ts = slices.Compact(ts)
	ts = slices.DeleteFunc(ts, func(t int64) bool { return t < from || t > now })
	ch.Times, ch.Score = ms(ts), make([]float64, len(ts))
	for k := range ch.Score {
		ch.Score[k] = view.Fit
	}
	for i, r := range rs.Scoring {
		s := ChartSeries{Rule: r.ID, Values: make([]float64, len(ts))}
		for k, t := range ts {
			s.Values[k] = round3(at(i, t))
			ch.Score[k] += s.Values[k]
		}
		ch.Engagement = append(ch.Engagement, s)
	}
	for k := range ch.Score {
		ch.Score[k] = round3(ch.Score[k])
	}

	if rs.HalfLife > 0 {
		end := now + 2*rs.HalfLife
		pts := make([]int64, n)
		for k := range n {
			pts[k] = now + (end-now)*int64(k)/int64(n-1)
		}
		ch.ProjTimes, ch.ProjScore = ms(pts), make([]float64, n)
		for k := range ch.ProjScore {
			ch.ProjScore[k] = view.Fit
		}
		for i, r := range rs.Scoring {
			s := ChartSeries{Rule: r.ID, Values: make([]float64, n)}
			for k, t := range pts {
				s.Values[k] = round3(at(i, t))
				ch.ProjScore[k] += s.Values[k]
			}
			ch.Projection = append(ch.Projection, s)
		}
		for k := range ch.ProjScore {
			ch.ProjScore[k] = round3(ch.ProjScore[k])
		}
	}
	return ch
}

// valueAt is points awarded at t0 as worth at t (SPEC §2 decay), also for t
// before t0 (worth more, the inverse of decay).
func valueAt(points float64, t0, t, halfLife int64) float64 {
	if halfLife == 0 {
		return points
	}
	if t >= t0 {
		return points * decay(t-t0, halfLife)
	}
	return points / decay(t0-t, halfLife)
}

func ms(ns []int64) []int64 {
	out := make([]int64, len(ns))
	for i, t := range ns {
		out[i] = t / 1e6
	}
	return out
}
