package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/state"
)

// WhyView answers "why didn't it fire?" for one contact and one trigger:
// the trigger's condition with the current value of each name in it, its
// arming, cooldown, the guards and caps of its actions, and for a sequence
// or an absence where it stands. It is what the admin API's
// GET /contacts/{id}/why/{trigger} and `leadpulse contact ID --why TRIGGER`
// show. Like ContactView it is computed at At (the contact's latest event
// time unless asked otherwise).
type WhyView struct {
	Contact string `json:"contact"`
	Trigger string `json:"trigger"`
	Kind    string `json:"kind"`
	At      string `json:"at,omitempty"`
	// Verdict is the short answer, for people: what holds the trigger back
	// (or that nothing does).
	Verdict string `json:"verdict"`
	Fired   uint64 `json:"fired"`
	// LastFired is the time of the last firing, "" if it never fired.
	LastFired string `json:"last_fired,omitempty"`

	// Condition is the `when` of a when trigger; Holds its value at At;
	// Values the current value of each name it reads (null when missing).
	Condition string     `json:"condition,omitempty"`
	Holds     *bool      `json:"holds,omitempty"`
	Values    []WhyValue `json:"values,omitempty"`
	// Armed is false while a `when` that held at the last evaluation waits
	// to be false again (edge-triggered).
	Armed *bool `json:"armed,omitempty"`

	Cooldown      string `json:"cooldown,omitempty"`
	CooldownUntil string `json:"cooldown_until,omitempty"` // set while the cooldown runs

	// Steps are a sequence's steps and where the best partial match stands.
	Steps  []WhyStep `json:"steps,omitempty"`
	Within string    `json:"within,omitempty"`
	// Deadline is when the best partial match of a sequence expires.
	Deadline string `json:"deadline,omitempty"`

	// After, Unless and TimerDue describe an absence trigger; TimerDue (and
	// Quiet) an inactivity trigger.
	After    string `json:"after,omitempty"`
	Unless   string `json:"unless,omitempty"`
	Quiet    string `json:"quiet,omitempty"`
	TimerDue string `json:"timer_due,omitempty"`

	Actions []WhyAction `json:"actions"`
}

// WhyValue is one name a condition reads and its current value.
type WhyValue struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// WhyStep is one step of a sequence.
type WhyStep struct {
	Condition string `json:"condition"`
	// Matched is true when the best partial match has reached past this
	// step; FirstAt is that match's first-step time.
	Matched bool   `json:"matched"`
	FirstAt string `json:"first_at,omitempty"`
}

// WhyAction is one action of the trigger's `do`, with what could suppress
// it: its guard and its cap.
type WhyAction struct {
	Name        string     `json:"name"`
	Sink        string     `json:"sink"`
	Guard       string     `json:"guard,omitempty"`
	GuardHolds  *bool      `json:"guard_holds,omitempty"`
	GuardValues []WhyValue `json:"guard_values,omitempty"`
	CapMax      int        `json:"cap_max,omitempty"`
	CapPer      string     `json:"cap_per,omitempty"`
	// CapUsed is how many of the cap's emissions are inside `per` at At;
	// CapFreeAt, when the cap is reached, when the oldest leaves it.
	CapUsed   int    `json:"cap_used,omitempty"`
	CapFreeAt string `json:"cap_free_at,omitempty"`
}

// ErrNoTrigger is returned by Why for a trigger id the rules do not have.
type ErrNoTrigger struct{ ID string }

func (e *ErrNoTrigger) Error() string {
	return fmt.Sprintf("no trigger %q in the running rules", e.ID)
}

// Why computes the WhyView of trigger id for c at `at` (Unix ns;
// state.NoTime for the contact's latest event time). Like Inspect it binds
// c to rs, so c must be a copy no partition uses. It is pure: no I/O.
func (rs *Ruleset) Why(c *state.Contact, id string, at int64) (WhyView, error) {
	ti := rs.TriggerIndex(id)
	if ti < 0 {
		return WhyView{}, &ErrNoTrigger{ID: id}
	}
	t := rs.Triggers[ti]
	x := rs.NewEvaluator()
	now, at := rs.bindAt(c, at)
	st := &c.Triggers[ti]
	v := WhyView{Contact: c.ID, Trigger: t.ID, Kind: t.Kind.String(), Fired: st.Fired, Actions: []WhyAction{}}
	if st.Last != state.NoTime {
		v.LastFired = formatTime(st.Last)
	}
	var reasons []string
	if at != state.NoTime {
		v.At = formatTime(at)
		x.fill(&x.v, c, at, now)
	}
	values := func(p *program) []WhyValue {
		out := make([]WhyValue, 0, len(p.names))
		for _, name := range p.names {
			var val any
			if at != state.NoTime {
				if s := rs.ctEnv.slot(name); s >= 0 {
					val = roundAny(x.ct.get(s))
				}
			}
			out = append(out, WhyValue{Name: name, Value: val})
		}
		return out
	}

	switch t.Kind {
	case When:
		v.Condition = t.When.src
		v.Values = values(t.When)
		holds := at != state.NoTime && x.test(t.When)
		armed := !st.On
		v.Holds, v.Armed = &holds, &armed
		switch {
		case !holds:
			reasons = append(reasons, "the condition is false: "+describeValues(v.Values))
		case !armed:
			reasons = append(reasons, "the condition holds, and held at the last evaluation: it fired (or its cooldown suppressed it) when it turned true, and fires again only after it has been false")
		default:
			reasons = append(reasons, "the condition holds now but did not at the last evaluation: it fires at the next event or timer")
		}
	case Sequence:
		v.Within = fmtDur(t.Within)
		best := state.NoTime
		reached := 0
		for k := len(st.Steps) - 1; k >= 1; k-- {
			if st.Steps[k] != state.NoTime && (now == state.NoTime || st.Steps[k] >= now-t.Within) {
				reached, best = k, st.Steps[k]
				break
			}
		}
		for k, p := range t.Steps {
			s := WhyStep{Condition: p.src, Matched: k < reached}
			if s.Matched {
				s.FirstAt = formatTime(best)
			}
			v.Steps = append(v.Steps, s)
		}
		if reached == 0 {
			reasons = append(reasons, "no partial match in progress: waiting for step 1: "+t.Steps[0].src)
		} else {
			v.Deadline = formatTime(best + t.Within)
			reasons = append(reasons, fmt.Sprintf("steps 1–%d matched (first at %s); waiting for step %d: %s, by %s",
				reached, formatTime(best), reached+1, t.Steps[reached].src, v.Deadline))
		}
	case Absence, Inactive:
		if t.Kind == Absence {
			v.Within = fmtDur(t.Within)
			v.After = t.After.src
			if t.Unless != nil {
				v.Unless = t.Unless.src
			}
		} else {
			v.Quiet = fmtDur(t.Quiet)
		}
		if k := timerIndex(c, t.ID); k >= 0 {
			v.TimerDue = formatTime(c.Timers[k].Due)
			reasons = append(reasons, "its timer is pending: it fires at "+v.TimerDue+" unless cancelled or restarted")
		} else if t.Kind == Absence {
			reasons = append(reasons, "no timer pending: waiting for an event matching "+t.After.src)
		} else {
			reasons = append(reasons, "no timer pending: it is set by the contact's next event")
		}
	}

	if t.Cooldown > 0 {
		v.Cooldown = fmtDur(t.Cooldown)
		if st.Last != state.NoTime && at != state.NoTime && at-st.Last < t.Cooldown {
			v.CooldownUntil = formatTime(st.Last + t.Cooldown)
			reasons = append(reasons, "in cooldown until "+v.CooldownUntil+": an edge before then is suppressed")
		}
	}
	for _, ai := range t.Do {
		a := rs.Actions[ai]
		wa := WhyAction{Name: a.Name, Sink: a.Sink}
		if a.If != nil {
			wa.Guard = a.If.src
			wa.GuardValues = values(a.If)
			x.trigger, x.action = t.boxedID, a.boxedName
			x.setTrigger()
			g := at != state.NoTime && x.test(a.If)
			wa.GuardHolds = &g
			if !g {
				reasons = append(reasons, fmt.Sprintf("action %s is suppressed by its guard %s (%s)", a.Name, a.If.src, describeValues(wa.GuardValues)))
			}
		}
		if a.CapMax > 0 {
			wa.CapMax, wa.CapPer = a.CapMax, fmtDur(a.CapPer)
			var oldest int64 = state.NoTime
			for _, ts := range c.Caps[ai].T {
				if at == state.NoTime || ts > at-a.CapPer {
					wa.CapUsed++
					if oldest == state.NoTime || ts < oldest {
						oldest = ts
					}
				}
			}
			if wa.CapUsed >= a.CapMax {
				wa.CapFreeAt = formatTime(oldest + a.CapPer)
				reasons = append(reasons, fmt.Sprintf("action %s has reached its cap (%d per %s) until %s", a.Name, a.CapMax, wa.CapPer, wa.CapFreeAt))
			}
		}
		v.Actions = append(v.Actions, wa)
	}
	x.trigger, x.action = nil, nil
	v.Verdict = strings.Join(reasons, "; ")
	return v, nil
}

// describeValues renders values as `name = value, …`.
func describeValues(vs []WhyValue) string {
	if len(vs) == 0 {
		return "it reads no names"
	}
	parts := make([]string, len(vs))
	for i, w := range vs {
		parts[i] = fmt.Sprintf("%s = %s", w.Name, showValue(w.Value))
	}
	return strings.Join(parts, ", ")
}

func showValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", x)
	case map[string]any:
		return fmt.Sprintf("{%d keys}", len(x))
	}
	return fmt.Sprint(v)
}

func roundAny(v any) any {
	if f, ok := v.(float64); ok {
		return round3(f)
	}
	return v
}

// fmtDur renders a duration the way rules files write them where it can
// (7d, 24h, 30m).
func fmtDur(ns int64) string {
	d := time.Duration(ns)
	day := 24 * time.Hour
	switch {
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Text renders the view for a terminal (`leadpulse contact ID --why
// TRIGGER`): the verdict first, then the details.
func (v WhyView) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s for %s (%s trigger), at %s\n", v.Trigger, v.Contact, v.Kind, orDash(v.At))
	verdict := v.Verdict
	if verdict == "" {
		verdict = "nothing holds it back"
	}
	fmt.Fprintf(&b, "  why:      %s\n", verdict)
	if v.Condition != "" {
		fmt.Fprintf(&b, "  when:     %s  → %v\n", v.Condition, *v.Holds)
		for _, w := range v.Values {
			fmt.Fprintf(&b, "            %s = %s\n", w.Name, showValue(w.Value))
		}
		fmt.Fprintf(&b, "  armed:    %v\n", *v.Armed)
	}
	for i, s := range v.Steps {
		mark := "waiting"
		if s.Matched {
			mark = "matched, first at " + s.FirstAt
		}
		fmt.Fprintf(&b, "  step %d:   %s  (%s)\n", i+1, s.Condition, mark)
	}
	if len(v.Steps) > 0 {
		fmt.Fprintf(&b, "  within:   %s%s\n", v.Within, prefixed(", deadline ", v.Deadline))
	}
	if v.After != "" {
		fmt.Fprintf(&b, "  after:    %s\n", v.After)
		if v.Unless != "" {
			fmt.Fprintf(&b, "  unless:   %s\n", v.Unless)
		}
		fmt.Fprintf(&b, "  within:   %s\n", v.Within)
	}
	if v.Quiet != "" {
		fmt.Fprintf(&b, "  inactive: %s\n", v.Quiet)
	}
	if v.Kind == Absence.String() || v.Kind == Inactive.String() {
		fmt.Fprintf(&b, "  timer:    %s\n", orDash(v.TimerDue))
	}
	fmt.Fprintf(&b, "  fired:    %d%s\n", v.Fired, prefixed(", last ", v.LastFired))
	if v.Cooldown != "" {
		fmt.Fprintf(&b, "  cooldown: %s%s\n", v.Cooldown, prefixed(", running until ", v.CooldownUntil))
	}
	for _, a := range v.Actions {
		fmt.Fprintf(&b, "  action:   %s → %s", a.Name, a.Sink)
		if a.Guard != "" {
			fmt.Fprintf(&b, "; guard %s → %v (%s)", a.Guard, *a.GuardHolds, describeValues(a.GuardValues))
		}
		if a.CapMax > 0 {
			fmt.Fprintf(&b, "; cap %d/%d per %s%s", a.CapUsed, a.CapMax, a.CapPer, prefixed(", full until ", a.CapFreeAt))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
