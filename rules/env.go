package rules

import (
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/event"
)

// vals are a contact's values at one evaluation.
type vals struct {
	id         string
	idBox      any // id boxed once per contact in memory (fitMemo), so that reading it allocates nothing
	score      float64
	fit        float64
	engagement float64
	windows    []float64
	traits     map[string]any
	stage      string
}

// getter reads one flat name (see expr.go) for the current evaluation.
type getter func(x *Evaluator) any

// binding is a name the rules read, its slot and how to read it.
type binding struct {
	name string
	slot int
	get  getter
}

// envBindings is every name the programs of one environment read. The
// evaluator keeps their values in a slice of slots, read by the native
// closures (fast.go), and copies them into a map only for a program that
// runs on the VM.
type envBindings struct {
	all      []binding
	scoreFit []binding // the names that depend on fit, filled after the fit rules ran
	trigger  int       // slot of `trigger`, -1 if unused
	action   int       // slot of `action`, -1 if unused
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
		var g getter
		if contactEnv {
			g = rs.contactGetter(name, func(x *Evaluator) *vals { return &x.v }, true)
		} else {
			g = rs.eventGetter(name)
		}
		bd := binding{name: name, slot: len(b.all), get: g}
		b.all = append(b.all, bd)
		if !contactEnv {
			continue
		}
		switch root, _ := splitPath(name); root {
		case "score", "fit":
			b.scoreFit = append(b.scoreFit, bd)
		case "trigger":
			b.trigger = bd.slot
		case "action":
			b.action = bd.slot
		}
	}
	return b
}

// eventGetter reads a name of the event environment from the current event.
func (rs *Ruleset) eventGetter(path string) getter {
	root, rest := splitPath(path)
	str := func(f func(e *event.Event) string, intern bool) getter {
		if len(rest) > 0 {
			return nothing
		}
		return func(x *Evaluator) any {
			if x.cur == nil {
				return nil
			}
			if intern {
				return x.intern(f(x.cur))
			}
			return f(x.cur)
		}
	}
	nested := func(f func(e *event.Event) map[string]any) getter {
		return func(x *Evaluator) any {
			if x.cur == nil {
				return nil
			}
			return dig(f(x.cur), rest)
		}
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
			return nothing
		}
		return func(x *Evaluator) any {
			if x.cur == nil {
				return nil
			}
			return time.Unix(0, x.cur.Time).UTC()
		}
	case "properties":
		return nested(func(e *event.Event) map[string]any { return e.Properties })
	case "traits":
		return nested(func(e *event.Event) map[string]any { return e.Traits })
	case "context":
		return nested(func(e *event.Event) map[string]any { return e.Context })
	case "contact":
		return rs.contactGetter(strings.Join(rest, "."), func(x *Evaluator) *vals { return &x.before }, false)
	}
	return nothing
}

// contactGetter reads a name of the contact environment from the values
// which(x) returns. In an event condition (`contact.…`) only the contact's
// values exist; in a contact condition `event.…`, `trigger`, `action` and
// `contact` do too.
func (rs *Ruleset) contactGetter(path string, which func(x *Evaluator) *vals, contactEnv bool) getter {
	root, rest := splitPath(path)
	scalar := func(g getter) getter {
		if len(rest) > 0 {
			return nothing
		}
		return g
	}
	switch root {
	case "score":
		return scalar(func(x *Evaluator) any { return which(x).score })
	case "fit":
		return scalar(func(x *Evaluator) any { return which(x).fit })
	case "engagement":
		return scalar(func(x *Evaluator) any { return which(x).engagement })
	case "stage":
		return scalar(func(x *Evaluator) any { return x.intern(which(x).stage) })
	case "id":
		return scalar(func(x *Evaluator) any { return which(x).boxedID() })
	case "traits":
		return func(x *Evaluator) any { return dig(which(x).traits, rest) }
	case "windows":
		if len(rest) != 1 {
			return nothing
		}
		for i, w := range rs.Windows {
			if w.Name != rest[0] {
				continue
			}
			if w.Agg == Sum {
				return func(x *Evaluator) any { return which(x).windows[i] }
			}
			// Counts are whole numbers: as int, small ones box without
			// allocating.
			return func(x *Evaluator) any { return int(which(x).windows[i]) }
		}
		return nothing
	}
	if !contactEnv {
		return nothing
	}
	switch root {
	case "event":
		if len(rest) == 0 {
			return nothing
		}
		return rs.eventGetter(strings.Join(rest, "."))
	case "contact":
		return scalar(func(x *Evaluator) any { return which(x).boxedID() })
	case "trigger":
		return scalar(func(x *Evaluator) any { return x.trigger })
	case "action":
		return scalar(func(x *Evaluator) any { return x.action })
	}
	return nothing
}

func (v *vals) boxedID() any {
	if v.idBox != nil {
		return v.idBox
	}
	return v.id
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

// setSlots reads the bound names into their slots.
func (x *Evaluator) setSlots(slots []any, bs []binding, contactEnv bool) {
	for _, b := range bs {
		slots[b.slot] = b.get(x)
	}
	x.stale[b2i(contactEnv)] = true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// envMap returns the map environment for a program on the VM, brought up
// to date with the slots.
func (x *Evaluator) envMap(contactEnv bool) map[string]any {
	i := b2i(contactEnv)
	m, slots, bs := x.evm, x.evSlots, x.rs.evEnv.all
	if contactEnv {
		m, slots, bs = x.ctm, x.ctSlots, x.rs.ctEnv.all
	}
	if x.stale[i] {
		for _, b := range bs {
			m[b.name] = slots[b.slot]
		}
		x.stale[i] = false
	}
	return m
}

// run evaluates a program, natively where it can (fast.go), else on the VM;
// a runtime error (say, arithmetic on null) yields null, never a failure, as
// SPEC §2 requires.
func (x *Evaluator) run(p *program) any {
	if p.fast != nil {
		slots := x.evSlots
		if p.contactEnv {
			slots = x.ctSlots
		}
		v, ok := p.fast(slots)
		if !ok {
			return nil
		}
		return v
	}
	v, err := x.vm.Run(p.p, x.envMap(p.contactEnv))
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
	b, _ := x.run(p).(bool)
	return b
}
