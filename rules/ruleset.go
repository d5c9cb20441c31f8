package rules

import (
	"slices"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/state"
)

// Ruleset is a validated, compiled rules file. It is immutable and safe to
// share between goroutines; evaluation state lives in an Evaluator.
type Ruleset struct {
	File     string
	Windows  []*Window
	HalfLife int64 // engagement half-life in ns, 0 for no decay
	Scoring  []*ScoreRule
	Fit      []*FitRule
	Stages   []string
	Triggers []*Trigger
	Actions  []*Action
	Tests    []*Test

	identity     Identity // see Identity()
	names        state.Names
	usesContact  bool // some event condition reads `contact`
	nshared      int  // event conditions whose result is shared (shareConds)
	actionIdx    map[string]int
	readsContext bool         // see ReadsContext
	reads        event.Select // see Reads
	evEnv        envBindings  // names read by event conditions
	ctEnv        envBindings  // names read by contact conditions
}

// ReadsContext reports whether any expression reads the event's `context`
// (as `context…` in an event condition or `event.context…` in a contact
// condition), so that a decoder may skip it when none does.
func (rs *Ruleset) ReadsContext() bool { return rs.readsContext }

// Reads returns the keys of the event's free-form objects that the rules
// read, for a decoder to build only those (event.Decoder.Select): the
// properties and context keys named in expressions (`properties.plan`,
// `event.context.campaign.source` in a contact condition), or all of an
// object's keys when an expression reads it whole (`properties`,
// `properties[name]`), and every trait, which an event copies into its
// contact (SPEC §6).
func (rs *Ruleset) Reads() event.Select { return rs.reads }

// findReads collects Reads from the names the programs read.
func (rs *Ruleset) findReads() event.Select {
	var props, ctx []string
	allProps, allCtx := false, false
	for _, p := range rs.programs() {
		for _, name := range p.names {
			root, rest := splitPath(name)
			if p.contactEnv {
				if root != "event" || len(rest) == 0 {
					continue
				}
				root, rest = rest[0], rest[1:]
			}
			switch {
			case root == "properties" && len(rest) == 0:
				allProps = true
			case root == "properties":
				props = append(props, rest[0])
			case root == "context" && len(rest) == 0:
				allCtx = true
			case root == "context":
				ctx = append(ctx, rest[0])
			}
		}
	}
	sel := event.Select{Properties: event.OnlyKeys(props...), Context: event.OnlyKeys(ctx...)}
	if allProps {
		sel.Properties = event.Keys{}
	}
	if allCtx {
		sel.Context = event.Keys{}
	}
	return sel
}

func (rs *Ruleset) findContextReads() bool {
	for _, p := range rs.programs() {
		for _, name := range p.names {
			root, rest := splitPath(name)
			if (!p.contactEnv && root == "context") || (p.contactEnv && root == "event" && len(rest) > 0 && rest[0] == "context") {
				return true
			}
		}
	}
	return false
}

// programs returns every compiled expression of the file.
func (rs *Ruleset) programs() []*program {
	var ps []*program
	add := func(p ...*program) {
		for _, x := range p {
			if x != nil {
				ps = append(ps, x)
			}
		}
	}
	for _, w := range rs.Windows {
		add(w.Match, w.Value)
	}
	for _, r := range rs.Scoring {
		add(r.On)
	}
	for _, r := range rs.Fit {
		add(r.If)
	}
	for _, t := range rs.Triggers {
		add(t.When, t.After, t.Unless)
		add(t.Steps...)
	}
	for _, a := range rs.Actions {
		add(a.RouteBy, a.If)
		if a.Message != nil {
			add(a.Message.progs...)
		}
	}
	return ps
}

// bindAll prepares the environments for the names the programs read.
func (rs *Ruleset) bindAll() {
	var ev, ct []string
	for _, p := range rs.programs() {
		if p.contactEnv {
			ct = append(ct, p.names...)
		} else {
			ev = append(ev, p.names...)
		}
	}
	rs.evEnv = rs.bind(ev, false)
	rs.ctEnv = rs.bind(ct, true)
	rs.readsContext = rs.findContextReads()
	rs.reads = rs.findReads()
	for _, p := range rs.programs() {
		env := &rs.evEnv
		if p.contactEnv {
			env = &rs.ctEnv
		}
		p.fast = compileProgram(p, env)
		p.rest = compileRest(p, env)
	}
	rs.shareConds()
	for _, r := range rs.Fit {
		r.static = r.If != nil
		if r.If == nil {
			continue
		}
		for _, name := range r.If.names {
			if root, _ := splitPath(name); root != "traits" && root != "stage" && root != "id" && root != "contact" {
				r.static = false
			}
		}
	}
	for _, t := range rs.Triggers {
		t.boxedID = t.ID
	}
	for _, a := range rs.Actions {
		a.boxedName = a.Name
	}
}

// shareConds numbers the event conditions whose text occurs more than once
// among those match runs (a window's match that is also a scoring rule's
// `on` and a sequence step, say), so that an event computes each once:
// an event condition reads only the event and the contact as it was before
// it, which do not change while the event is applied.
func (rs *Ruleset) shareConds() {
	var conds []*program
	for _, w := range rs.Windows {
		conds = append(conds, w.Match)
	}
	rs.nshared = 0
	for _, r := range rs.Scoring {
		conds = append(conds, r.On)
	}
	for _, t := range rs.Triggers {
		conds = append(conds, t.After, t.Unless)
		conds = append(conds, t.Steps...)
	}
	for _, p := range conds {
		if p != nil {
			p.shared = 0
		}
	}
	seen := map[string]*program{}
	for _, p := range conds {
		if p == nil || p.contactEnv {
			continue
		}
		first, ok := seen[p.src]
		if !ok {
			seen[p.src] = p
			continue
		}
		if first.shared == 0 {
			rs.nshared++
			first.shared = rs.nshared
		}
		p.shared = first.shared
	}
}

// Aggregate is what a window computes.
type Aggregate int

// The window aggregates.
const (
	Count Aggregate = iota
	Sum
	Distinct
)

// Window is a per-contact sliding window in event time.
type Window struct {
	Name  string
	Line  int
	Match *program
	Over  int64 // ns
	Agg   Aggregate
	Value *program // the sum or distinct expression
}

// ScoreRule is an engagement rule: points per matching event.
type ScoreRule struct {
	ID       string
	Line     int
	On       *program
	Points   float64
	LimitMax float64 // 0: no limit
	LimitPer int64   // ns
}

// FitRule holds points while a condition on the contact is true.
type FitRule struct {
	ID     string
	Line   int
	If     *program
	Points float64

	// static is true when the condition reads only traits, stage and the
	// contact id, so its value changes only when they do.
	static bool
}

// Kind is a trigger's kind.
type Kind int

// The trigger kinds of SPEC §2.
const (
	When Kind = iota
	Sequence
	Absence
	Inactive
)

func (k Kind) String() string {
	return [...]string{"when", "sequence", "absence", "inactive"}[k]
}

// Trigger is a compiled trigger.
type Trigger struct {
	ID       string
	Line     int
	Kind     Kind
	When     *program   // When
	Steps    []*program // Sequence
	Within   int64      // Sequence, Absence (ns)
	After    *program   // Absence
	Unless   *program   // Absence, optional
	Quiet    int64      // Inactive (ns)
	SetStage string
	stageIdx int // index of SetStage in Stages, -1 for none
	Do       []int
	Cooldown int64 // ns, 0 for none
	boxedID  any   // ID, boxed once for the environment
}

// Action is a compiled action.
type Action struct {
	Name    string
	Line    int
	Sink    string
	RouteBy *program
	RouteTo map[string]string
	Message *template
	If      *program
	CapMax  int
	CapPer  int64 // ns

	boxedName any // Name, boxed once for the environment
}

// Sinks returns the names of every sink the action can go to: its sink and
// those of its route, sorted, each once, without the empty name.
func (a *Action) Sinks() []string {
	names := make([]string, 0, 1+len(a.RouteTo))
	if a.Sink != "" {
		names = append(names, a.Sink)
	}
	for _, to := range a.RouteTo {
		if to != "" {
			names = append(names, to)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Test is one case of the file's tests: section.
type Test struct {
	Name   string
	Line   int
	Events []TestEvent
	Until  int64 // ns, 0 for the last event's time
	Expect []Expect
}

// TestEvent is one event of a test, with its line for error messages.
type TestEvent struct {
	Line   int
	Fields map[string]any
}

// Expect is one expected firing. Action, Contact and At are optional: an
// empty one matches anything.
type Expect struct {
	Line    int
	Trigger string
	Contact string
	Action  string
	At      int64 // ns, 0 for any
}

// Names returns the rule names the contact state is aligned to.
func (rs *Ruleset) Names() *state.Names { return &rs.names }

// TriggerIndex returns the index of the trigger with this id, or -1.
func (rs *Ruleset) TriggerIndex(id string) int {
	for i, t := range rs.Triggers {
		if t.ID == id {
			return i
		}
	}
	return -1
}
