package rules

import (
	"cmp"
	"slices"
	"time"

	"github.com/leadpulse/leadpulse/state"
)

// ContactView is a contact's state as the rules see it, for people: what
// the admin API's GET /contacts/{id} and `leadpulse contact ID` show.
// Numbers are rounded to 0.001 as in action records; times are RFC 3339
// (UTC); maps marshal with sorted keys.
type ContactView struct {
	ID string `json:"id"`
	// At is the time the scores are computed at: decay runs up to it.
	At string `json:"at"`
	// Latest is the contact's latest event time, the `now` of its windows;
	// "" for a contact without events.
	Latest string `json:"latest,omitempty"`
	// Events is the number of events applied to the contact.
	Events     uint64  `json:"events"`
	Score      float64 `json:"score"`
	Fit        float64 `json:"fit"`
	Engagement float64 `json:"engagement"`
	Stage      string  `json:"stage"`
	// Points are the points behind the score, by rule: engagement rules
	// with their decayed value at At (rules with none left out), and the
	// fit rules whose condition holds.
	Points ViewPoints `json:"points"`
	// Windows are the windows' values as of Latest, by window name.
	Windows map[string]float64 `json:"windows"`
	Traits  map[string]any     `json:"traits"`
	// Timers are the pending absence and inactivity timers, earliest first.
	Timers []ViewTimer `json:"timers"`
	// Triggers are every trigger's memory: how often it fired and when
	// last, and for a `when` trigger whether its condition held at the last
	// evaluation (it fires again only after it was false).
	Triggers []ViewTrigger `json:"triggers"`
	// Merged are the anonymous ids linked to this user (SPEC §6), in link
	// order; omitted when none.
	Merged []string `json:"merged,omitempty"`
	// MergedInto is, for an anonymous id whose state was merged, the user
	// it now belongs to; omitted otherwise.
	MergedInto string `json:"merged_into,omitempty"`
}

// ViewPoints are the points of a ContactView by scoring rule.
type ViewPoints struct {
	Engagement map[string]float64 `json:"engagement"`
	Fit        map[string]float64 `json:"fit"`
}

// ViewTimer is a pending timer of a ContactView.
type ViewTimer struct {
	Trigger string `json:"trigger"`
	Kind    string `json:"kind"` // absence or inactive
	Due     string `json:"due"`
}

// ViewTrigger is one trigger's memory in a ContactView.
type ViewTrigger struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Fired    uint64 `json:"fired"`
	LastFire string `json:"last_fired,omitempty"`
	On       bool   `json:"on,omitempty"`
}

// Inspect computes the view of c under rs, with scores at `at` (Unix ns;
// state.NoTime means the contact's latest event time). It binds c to rs
// (Contact.Bind) and may cache fit values in it, so c must be a copy no
// partition is using (as state.Redis.Inspect returns).
func (rs *Ruleset) Inspect(c *state.Contact, at int64) ContactView {
	x := rs.NewEvaluator()
	now, at := rs.bindAt(c, at)
	v := ContactView{
		ID:       c.ID,
		Events:   c.Seq,
		Stage:    c.Stage,
		Traits:   c.Traits,
		Points:   ViewPoints{Engagement: map[string]float64{}, Fit: map[string]float64{}},
		Windows:  make(map[string]float64, len(rs.Windows)),
		Timers:   []ViewTimer{},
		Triggers: make([]ViewTrigger, 0, len(rs.Triggers)),

		Merged:     slices.Clone(c.Merged),
		MergedInto: c.MergedInto,
	}
	if v.Traits == nil {
		v.Traits = map[string]any{}
	}
	if at != state.NoTime {
		v.At = formatTime(at)
		x.fill(&x.v, c, at, now)
		v.Score, v.Fit, v.Engagement = round3(x.v.score), round3(x.v.fit), round3(x.v.engagement)
		for i, w := range rs.Windows {
			v.Windows[w.Name] = round3(x.v.windows[i])
		}
		for i, r := range rs.Scoring {
			if p := pointsAt(&c.Points[i], at, rs.HalfLife); p != 0 {
				v.Points.Engagement[r.ID] = round3(p)
			}
		}
		for i, r := range rs.Fit {
			if x.fitOn[i] {
				v.Points.Fit[r.ID] = round3(r.Points)
			}
		}
	} else {
		for _, w := range rs.Windows {
			v.Windows[w.Name] = 0
		}
	}
	if c.Latest != state.NoTime {
		v.Latest = formatTime(c.Latest)
	}
	timers := slices.Clone(c.Timers)
	slices.SortStableFunc(timers, func(a, b state.Timer) int { return cmp.Compare(a.Due, b.Due) })
	for _, t := range timers {
		kind := ""
		if i := rs.TriggerIndex(t.Trigger); i >= 0 {
			kind = rs.Triggers[i].Kind.String()
		}
		v.Timers = append(v.Timers, ViewTimer{Trigger: t.Trigger, Kind: kind, Due: formatTime(t.Due)})
	}
	for i, t := range rs.Triggers {
		st := &c.Triggers[i]
		vt := ViewTrigger{ID: t.ID, Kind: t.Kind.String(), Fired: st.Fired, On: t.Kind == When && st.On}
		if st.Last != state.NoTime {
			vt.LastFire = formatTime(st.Last)
		}
		v.Triggers = append(v.Triggers, vt)
	}
	return v
}

func formatTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// bindAt binds c to rs for a view and settles its two times: now, the
// contact's latest event time (the windows' end), and at, the time scores
// are computed at; either defaults to the other.
func (rs *Ruleset) bindAt(c *state.Contact, at int64) (now, _ int64) {
	c.Bind(&rs.names)
	now = c.Latest
	if at == state.NoTime {
		at = now
	}
	if now == state.NoTime {
		now = at
	}
	return now, at
}
