package rules

import (
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/state"
)

// vals are a contact's values at one evaluation.
type vals struct {
	id         string
	c          *state.Contact // the contact, whose memo boxes id once (fitMemo)
	score      float64
	fit        float64
	engagement float64
	windows    []float64
	traits     map[string]any
	stage      string
}

// getter reads one flat name (see expr.go) for the current evaluation.
type getter func(x *Evaluator) any

// numGetter reads a name whose value is always a number, without boxing it.
type numGetter func(x *Evaluator) float64

// strGetter reads a name whose value is a string or null (ok false), without
// boxing it.
type strGetter func(x *Evaluator) (s string, ok bool)

// binding is a name the rules read, its slot and how to read it. num and
// str, when set, read the same value unboxed (fast.go uses them for
// comparisons with constants); get is always set.
type binding struct {
	name string
	slot int
	get  getter
	num  numGetter
	str  strGetter
}

// envBindings is every name the programs of one environment read. The
// evaluator keeps their values in a slice of slots (env), filled lazily:
// a name is read at most once per evaluation, and only if a program that
// runs reads it. The values are copied into a map only for a program that
// runs on the VM.
type envBindings struct {
	all []binding
	// before are the slots of `contact.…` names in the event environment:
	// they are read when the event starts (Evaluator.Apply), because the
	// event changes the contact's traits map that they would read later.
	before  []int
	trigger int // slot of `trigger`, -1 if unused
	action  int // slot of `action`, -1 if unused
}

// slot returns the slot of a name, or -1.
func (b *envBindings) slot(name string) int {
	for _, x := range b.all {
		if x.name == name {
			return x.slot
		}
	}
	return -1
}

func nothing(*Evaluator) any { return nil }

func splitPath(path string) (root string, rest []string) {
	parts := strings.Split(path, ".")
	return parts[0], parts[1:]
}

// dig follows a path through nested maps; a missing key or a non-map on the
// way is null.
func dig(m map[string]any, path []string) any {
	if m == nil {
		return nil
	}
	if len(path) == 0 {
		return m
	}
	v := m[path[0]]
	for _, k := range path[1:] {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// bind builds the bindings of the event environment (event conditions) or
// the contact environment (contact conditions) for the names the programs
// read.
func (rs *Ruleset) bind(names []string, contactEnv bool) envBindings {
	b := envBindings{trigger: -1, action: -1}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		var bd binding
		if contactEnv {
			bd = rs.contactBinding(name, func(x *Evaluator) *vals { return &x.v }, true)
		} else {
			bd = rs.eventBinding(name)
		}
		bd.name, bd.slot = name, len(b.all)
		b.all = append(b.all, bd)
		if !contactEnv {
			if root, _ := splitPath(name); root == "contact" {
				b.before = append(b.before, bd.slot)
			}
			continue
		}
		switch root, _ := splitPath(name); root {
		case "trigger":
			b.trigger = bd.slot
		case "action":
			b.action = bd.slot
		}
	}
	return b
}

// eventBinding reads a name of the event environment from the current event.
func (rs *Ruleset) eventBinding(path string) binding {
	root, rest := splitPath(path)
	str := func(f func(e *event.Event) string, intern bool) binding {
		if len(rest) > 0 {
			return binding{get: nothing}
		}
		s := func(x *Evaluator) (string, bool) {
			if x.cur == nil {
				return "", false
			}
			return f(x.cur), true
		}
		return binding{str: s, get: func(x *Evaluator) any {
			if x.cur == nil {
				return nil
			}
			if intern {
				return x.intern(f(x.cur))
			}
			return f(x.cur)
		}}
	}
	// nested reads an object of the event: whole through f (the decoder
	// then kept every key, see Ruleset.Reads), a key and what lies under
	// it through key, which also reads the keys a decoder kept outside the
	// map (event.Event.Property).
	nested := func(f func(e *event.Event) map[string]any, key func(e *event.Event, k string) any) binding {
		if len(rest) == 0 {
			return binding{get: func(x *Evaluator) any {
				if x.cur == nil {
					return nil
				}
				return dig(f(x.cur), nil)
			}}
		}
		k, under := rest[0], rest[1:]
		return binding{get: func(x *Evaluator) any {
			if x.cur == nil {
				return nil
			}
			v := key(x.cur, k)
			for _, k := range under {
				m, ok := v.(map[string]any)
				if !ok {
					return nil
				}
				v = m[k]
			}
			return v
		}}
	}
	switch root {
	case "type":
		return str(func(e *event.Event) string { return e.Type }, true)
	case "event":
		return str(func(e *event.Event) string { return e.Event }, true)
	case "name":
		return str(func(e *event.Event) string { return e.Name }, true)
	case "userId":
		return str(func(e *event.Event) string { return e.UserID }, false)
	case "anonymousId":
		return str(func(e *event.Event) string { return e.AnonymousID }, false)
	case "previousId":
		return str(func(e *event.Event) string { return e.PreviousID }, false)
	case "messageId":
		return str(func(e *event.Event) string { return e.MessageID }, false)
	case "timestamp":
		if len(rest) > 0 {
			return binding{get: nothing}
		}
		return binding{get: func(x *Evaluator) any {
			if x.cur == nil {
				return nil
			}
			return time.Unix(0, x.cur.Time).UTC()
		}}
	case "properties":
		return nested(func(e *event.Event) map[string]any { return e.Properties }, (*event.Event).Property)
	case "traits":
		return nested(func(e *event.Event) map[string]any { return e.Traits }, (*event.Event).Trait)
	case "context":
		return nested(func(e *event.Event) map[string]any { return e.Context }, (*event.Event).ContextValue)
	case "contact":
		return rs.contactBinding(strings.Join(rest, "."), func(x *Evaluator) *vals { return &x.before }, false)
	}
	return binding{get: nothing}
}

// contactBinding reads a name of the contact environment from the values
// which(x) returns. In an event condition (`contact.…`) only the contact's
// values exist; in a contact condition `event.…`, `trigger`, `action` and
// `contact` do too.
func (rs *Ruleset) contactBinding(path string, which func(x *Evaluator) *vals, contactEnv bool) binding {
	root, rest := splitPath(path)
	none := binding{get: nothing}
	number := func(f numGetter) binding {
		return binding{num: f, get: func(x *Evaluator) any { return f(x) }}
	}
	scalar := func(f numGetter) binding {
		if len(rest) > 0 {
			return none
		}
		return number(f)
	}
	switch root {
	case "score":
		return scalar(func(x *Evaluator) float64 { return which(x).score })
	case "fit":
		return scalar(func(x *Evaluator) float64 { return which(x).fit })
	case "engagement":
		return scalar(func(x *Evaluator) float64 { return which(x).engagement })
	case "stage":
		if len(rest) > 0 {
			return none
		}
		return binding{
			str: func(x *Evaluator) (string, bool) { return which(x).stage, true },
			get: func(x *Evaluator) any { return x.intern(which(x).stage) },
		}
	case "id":
		if len(rest) > 0 {
			return none
		}
		return binding{get: func(x *Evaluator) any { return x.boxedID(which(x)) }}
	case "traits":
		if len(rest) == 1 {
			k := rest[0]
			return binding{get: func(x *Evaluator) any {
				m := which(x).traits
				if m == nil {
					return nil
				}
				return m[k]
			}}
		}
		return binding{get: func(x *Evaluator) any { return dig(which(x).traits, rest) }}
	case "windows":
		if len(rest) != 1 {
			return none
		}
		for i, w := range rs.Windows {
			if w.Name != rest[0] {
				continue
			}
			if w.Agg == Sum {
				return number(func(x *Evaluator) float64 { return which(x).windows[i] })
			}
			// Counts are whole numbers: as int, small ones box without
			// allocating.
			return binding{
				num: func(x *Evaluator) float64 { return float64(int(which(x).windows[i])) },
				get: func(x *Evaluator) any { return int(which(x).windows[i]) },
			}
		}
		return none
	}
	if !contactEnv {
		return none
	}
	switch root {
	case "event":
		if len(rest) == 0 {
			return none
		}
		return rs.eventBinding(strings.Join(rest, "."))
	case "contact":
		if len(rest) > 0 {
			return none
		}
		return binding{get: func(x *Evaluator) any { return x.boxedID(which(x)) }}
	case "trigger":
		if len(rest) > 0 {
			return none
		}
		return binding{get: func(x *Evaluator) any { return x.trigger }}
	case "action":
		if len(rest) > 0 {
			return none
		}
		return binding{get: func(x *Evaluator) any { return x.action }}
	}
	return none
}

// boxedID returns the id boxed once per contact in memory (fitMemo), so
// that reading it allocates at most once.
func (x *Evaluator) boxedID(v *vals) any {
	if v.c == nil || v.c.ID != v.id {
		return v.id
	}
	memo := x.memoOf(v.c)
	if memo.id == nil || memo.idOf != v.id {
		memo.id, memo.idOf = v.id, v.id
	}
	return memo.id
}

// intern boxes short, repeating strings (event types and names, stages)
// once, so that putting them in the environment does not allocate.
func (x *Evaluator) intern(s string) any {
	if s == "" {
		return ""
	}
	if v, ok := x.interned[s]; ok {
		return v
	}
	var v any = strings.Clone(s)
	if len(x.interned) < 4096 {
		x.interned[s] = v
	}
	return v
}

// env is the values of one environment's names for the current evaluation.
// A slot is read from its binding the first time a program reads it after
// invalidate, so an evaluation pays only for the names it reads.
type env struct {
	x     *Evaluator
	binds []binding
	vals  []any
	gen   []uint32 // gen[i] == cur: vals[i] is current
	cur   uint32
	m     map[string]any // for programs on the VM
	stale bool           // m lags the values
	// The results of shared conditions (program.shared), current when
	// their sgen is cur.
	sgen []uint32
	sval []bool
}

func newEnv(x *Evaluator, b *envBindings) env {
	return env{
		x:     x,
		binds: b.all,
		vals:  make([]any, len(b.all)),
		gen:   make([]uint32, len(b.all)),
		cur:   1,
		m:     make(map[string]any, len(b.all)),
		stale: true,
	}
}

// get returns the value of slot i, reading it if it is not current.
func (e *env) get(i int) any {
	if e.gen[i] == e.cur {
		return e.vals[i]
	}
	v := e.binds[i].get(e.x)
	e.vals[i], e.gen[i] = v, e.cur
	return v
}

// set puts a value in slot i.
func (e *env) set(i int, v any) {
	e.vals[i], e.gen[i] = v, e.cur
	e.stale = true
}

// invalidate marks every value as out of date: what the names read has
// changed.
func (e *env) invalidate() {
	e.cur++
	if e.cur == 0 {
		clear(e.gen)
		clear(e.sgen)
		e.cur = 1
	}
	e.stale = true
}

// envMap returns the map environment for a program on the VM, brought up
// to date.
func (e *env) envMap() map[string]any {
	if e.stale {
		for i := range e.binds {
			e.m[e.binds[i].name] = e.get(i)
		}
		e.stale = false
	}
	return e.m
}

// run evaluates a program, natively where it can (fast.go), else on the VM;
// a runtime error (say, arithmetic on null) yields null, never a failure, as
// SPEC §2 requires.
func (x *Evaluator) run(p *program) any {
	e := &x.ev
	if p.contactEnv {
		e = &x.ct
	}
	if p.fast != nil {
		v, ok := p.fast(e)
		if !ok {
			return nil
		}
		return v
	}
	v, err := x.vm.Run(p.p, e.envMap())
	if err != nil {
		return nil
	}
	return v
}

// test evaluates a contact condition; null or an error is false.
func (x *Evaluator) test(p *program) bool {
	b, _ := x.run(p).(bool)
	return b
}

// match evaluates an event condition, first checking natively the `type ==`
// and `event ==` constants that the condition requires, which rejects most
// conditions for most events without evaluating them.
func (x *Evaluator) match(p *program) bool {
	if p.needType != "" && p.needType != x.cur.Type || p.needEvent != "" && p.needEvent != x.cur.Event {
		return false
	}
	if k := p.shared - 1; k >= 0 {
		// Computed once per event for all the rules that share its text.
		e := &x.ev
		if e.sgen[k] == e.cur {
			return e.sval[k]
		}
		v := x.matchRest(p)
		e.sgen[k], e.sval[k] = e.cur, v
		return v
	}
	return x.matchRest(p)
}

// matchRest is match once the required type and event name are checked.
func (x *Evaluator) matchRest(p *program) bool {
	if p.rest != nil {
		v, ok := p.rest(&x.ev)
		b, _ := v.(bool)
		return ok && b
	}
	b, _ := x.run(p).(bool)
	return b
}
