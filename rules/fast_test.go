package rules

import (
	evpkg "github.com/leadpulse/leadpulse/event"
	"math"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"
)

// TestFastMatchesVM runs conditions both natively and on the expr VM over the
// same environments and requires the same result, so that the native path
// (fast.go) keeps the VM's semantics, null handling included.
func TestFastMatchesVM(t *testing.T) {
	conds := []string{
		`type == "page" && properties.path startsWith "/pricing"`,
		`properties.path endsWith "/x" || properties.path contains "doc"`,
		`properties.path matches "^/p(r|l)"`,
		`properties.price >= 10`, `properties.price < 10`, `properties.price > 9.5`, `properties.price <= 0`,
		`!(properties.price >= 10)`, `not (properties.price > 10)`,
		`traits.industry in ["software", "fintech"]`, `!(traits.industry in ["software"])`,
		`traits.unsubscribed != true`, `traits.unsubscribed == true`, `traits.industry == nil`,
		`(properties.price ?? 0) > 3`, `properties.form == "demo" && event == "Form Submitted"`,
		`properties.n == 3`, `properties.n != 3.0`, `properties.path > "/m"`,
		`timestamp > date("2026-03-02T09:00:30Z")`,
		`properties.nested.deep == "x"`, `properties.nested.deep startsWith "x"`,
		`properties.path startsWith properties.prefix`,
		`type == "track" and (event contains "Added" or event endsWith "Completed")`,
		`properties.flag`, `!properties.flag`, `properties.flag && true`,
		`properties.path != nil`, `properties.nested == nil`, `properties.price == nil`, `traits != nil`,
		`type != "page"`, `event == "Form Submitted"`, `name == ""`,
		`contact.score >= 0`, `contact.engagement < 1`, `contact.fit > -1.5`, `0 <= contact.score`,
		`contact.stage == ""`, `contact.stage != "mql"`,
	}
	envs := []map[string]any{
		{},
		{"type": "page", "properties": map[string]any{"path": "/pricing", "price": 12.0, "n": 3.0, "prefix": "/pr", "flag": true}},
		{"type": "page", "properties": map[string]any{"path": "/docs/x", "price": "12", "n": "3", "nested": map[string]any{"deep": "xy"}, "flag": "yes"}},
		{"type": "track", "event": "Product Added", "properties": map[string]any{"price": math.NaN(), "form": "demo"}, "traits": map[string]any{"industry": "software", "unsubscribed": true}},
		{"type": "track", "event": "Form Submitted", "properties": map[string]any{"form": "demo", "path": 5.0}, "traits": map[string]any{"industry": 7.0}},
	}
	fast := 0
	for _, src := range conds {
		p, err := compileCond(src, EventEnv{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		bs := (&Ruleset{}).bind(p.names, false)
		f := compileProgram(p, &bs)
		if f == nil {
			t.Logf("%s: runs on the VM", src)
			continue
		}
		fast++
		for i, env := range envs {
			e := eventOf(env)
			x := &Evaluator{cur: e, interned: map[string]any{}, before: vals{score: 12.5, engagement: 0.5, fit: -1.5, stage: "mql"}}
			slots := newEnv(x, &bs)
			m := map[string]any{}
			for _, b := range bs.all {
				m[b.name] = b.get(x)
			}
			want, err := vm.Run(p.p, m)
			if err != nil {
				want = nil
			}
			got, ok := f(&slots)
			if !ok {
				got = nil
			}
			if got != want {
				t.Errorf("%s on env %d: native %v, VM %v", src, i, got, want)
			}
		}
	}
	if fast < len(conds)-3 {
		t.Errorf("only %d of %d conditions run natively", fast, len(conds))
	}
}

func eventOf(m map[string]any) *evpkg.Event {
	e := &evpkg.Event{Time: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).UnixNano()}
	e.Type, _ = m["type"].(string)
	e.Event, _ = m["event"].(string)
	e.Properties, _ = m["properties"].(map[string]any)
	e.Traits, _ = m["traits"].(map[string]any)
	return e
}

// TestMatchRestMatchesVM checks match, which checks the `type ==` and
// `event ==` constants a condition requires and then runs only the rest of
// it (program.rest), against the whole condition on the VM.
func TestMatchRestMatchesVM(t *testing.T) {
	conds := []string{
		`type == "page" && properties.path startsWith "/pricing"`,
		`type == "page"`, `"page" == type`, `event == "Form Submitted"`,
		`type == "track" && event == "Form Submitted" && properties.form == "demo"`,
		`properties.form == "demo" && event == "Form Submitted" && type == "track"`,
		`type == "track" && (event contains "Added" or event endsWith "Completed")`,
		`type == "track" && properties.flag`, `type == "page" && type == "track"`,
		`type == "page" && properties.price >= 10 && !(properties.path endsWith "/x")`,
	}
	envs := []map[string]any{
		{},
		{"type": "page", "properties": map[string]any{"path": "/pricing", "price": 12.0, "flag": true}},
		{"type": "page", "properties": map[string]any{"path": "/docs/x", "price": "12", "flag": "yes"}},
		{"type": "track", "event": "Product Added", "properties": map[string]any{"flag": nil, "form": "demo"}},
		{"type": "track", "event": "Form Submitted", "properties": map[string]any{"form": "demo", "path": 5.0, "flag": true}},
	}
	for _, src := range conds {
		p, err := compileCond(src, EventEnv{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		bs := (&Ruleset{}).bind(p.names, false)
		p.fast = compileProgram(p, &bs)
		p.rest = compileRest(p, &bs)
		if p.rest == nil {
			t.Errorf("%s: no rest compiled", src)
			continue
		}
		for i, m := range envs {
			x := &Evaluator{cur: eventOf(m), interned: map[string]any{}}
			x.ev = newEnv(x, &bs)
			want, err := vm.Run(p.p, x.ev.envMap())
			if err != nil {
				want = false
			}
			if got := x.match(p); got != want {
				t.Errorf("%s on env %d: match %v, VM %v", src, i, got, want)
			}
		}
	}
}
