package rules

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3" // YAML 1.2 with node line numbers; `on` stays a plain key

	"github.com/leadpulse/leadpulse/internal/suggest"
)

// Problem is one validation error, printed as FILE:LINE: RULE-ID: message.
type Problem struct {
	File string
	Line int
	Rule string // the rule, window, trigger, action or test id; "-" where none applies
	Msg  string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Rule, p.Msg)
}

// ValidationError lists every problem of a rules file; the file is refused
// whole.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// LoadFile reads and compiles a rules file. A file that does not validate
// returns a *ValidationError with every problem.
func LoadFile(path string) (*Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	return Parse(path, data)
}

// Parse compiles a rules file held in memory; name is used in messages.
func Parse(name string, data []byte) (*Ruleset, error) {
	l := &loader{file: name, rs: &Ruleset{File: name, actionIdx: map[string]int{}, identity: defaultIdentity()}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 1
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			if n, ok := yamlErrLine(err.Error()); ok {
				line = n
			}
		}
		msg := err.Error()
		tabErr := strings.Contains(msg, "cannot start any token") || strings.Contains(msg, "tab character")
		if tl, col, ok := tabLine(data, line); tabErr && ok {
			l.add(tl, "-", "not valid YAML: a tab character at line %d, column %d; YAML indents with spaces only: replace the tab with spaces (%s)", tl, col, strings.TrimPrefix(err.Error(), "yaml: "))
			return nil, l.err()
		}
		l.add(line, "-", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, l.err()
	}
	if len(doc.Content) == 0 {
		l.add(1, "-", "empty rules file; start with `version: 1`")
		return nil, l.err()
	}
	l.load(doc.Content[0])
	if err := l.err(); err != nil {
		return nil, err
	}
	l.rs.bindAll()
	return l.rs, nil
}

// tabLine finds the tab that most likely broke the YAML: in the
// indentation of the line the parser stopped at, else of the line before it
// (where a tab-indented block ends the parser is often one line on), else
// the first tab-indented line of the file. It returns the line and column,
// both from 1.
func tabLine(data []byte, near int) (line, col int, ok bool) {
	lines := strings.Split(string(data), "\n")
	indentTab := func(n int) (int, bool) {
		if n < 1 || n > len(lines) {
			return 0, false
		}
		s := lines[n-1]
		for i := 0; i < len(s) && (s[i] == ' ' || s[i] == '\t'); i++ {
			if s[i] == '\t' {
				return i + 1, true
			}
		}
		return 0, false
	}
	for _, n := range []int{near, near - 1} {
		if c, ok := indentTab(n); ok {
			return n, c, true
		}
	}
	for n := 1; n <= len(lines); n++ {
		if c, ok := indentTab(n); ok {
			return n, c, true
		}
	}
	return 0, 0, false
}

func yamlErrLine(msg string) (int, bool) {
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0, false
	}
	j := i + len("line ")
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, err := strconv.Atoi(msg[j:k])
	return n, err == nil
}

type loader struct {
	file     string
	rs       *Ruleset
	problems []Problem
}

func (l *loader) add(line int, rule, format string, args ...any) {
	if rule == "" {
		rule = "-"
	}
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Rule: rule, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	sort.SliceStable(l.problems, func(i, j int) bool { return l.problems[i].Line < l.problems[j].Line })
	return &ValidationError{Problems: l.problems}
}

// field is one key of a YAML mapping.
type field struct {
	key *yaml.Node
	val *yaml.Node
}

// mapping returns the keys of a mapping node in order, reporting any key not
// in allowed and any duplicate.
func (l *loader) mapping(n *yaml.Node, rule, what string, allowed ...string) map[string]field {
	out := map[string]field{}
	if n.Kind != yaml.MappingNode {
		l.add(n.Line, rule, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if len(allowed) > 0 && !contains(allowed, k.Value) {
			l.add(k.Line, rule, "unknown key %q in %s; %sexpected one of %s", k.Value, what, didYouMean(k.Value, allowed), strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.add(k.Line, rule, "key %q given twice in %s", k.Value, what)
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out
}

// didYouMean is `did you mean "NAME"? ` for a likely typo of one of known,
// else "".
func didYouMean(name string, known []string) string {
	if s := suggest.Closest(name, known); s != "" {
		return fmt.Sprintf("did you mean %q? ", s)
	}
	return ""
}

// suffixHint is `; did you mean "NAME"?` for a likely typo, else "".
func suffixHint(name string, known []string) string {
	if h := didYouMean(name, known); h != "" {
		return "; " + strings.TrimSpace(h)
	}
	return ""
}

func (l *loader) actionNames() []string {
	var out []string
	for _, a := range l.rs.Actions {
		out = append(out, a.Name)
	}
	return out
}

func (l *loader) triggerNames() []string {
	var out []string
	for _, t := range l.rs.Triggers {
		out = append(out, t.ID)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) str(f field, rule, what string) (string, bool) {
	if f.val == nil {
		return "", false
	}
	if f.val.Kind != yaml.ScalarNode || f.val.Value == "" {
		l.add(f.val.Line, rule, "%s must be a non-empty string", what)
		return "", false
	}
	return f.val.Value, true
}

func (l *loader) number(f field, rule, what string) (float64, bool) {
	if f.val.Kind != yaml.ScalarNode {
		l.add(f.val.Line, rule, "%s must be a number", what)
		return 0, false
	}
	v, err := strconv.ParseFloat(f.val.Value, 64)
	if err != nil {
		l.add(f.val.Line, rule, "%s must be a number, not %q", what, f.val.Value)
		return 0, false
	}
	return v, true
}

func (l *loader) duration(f field, rule, what string) (int64, bool) {
	s, ok := l.str(f, rule, what)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.add(f.val.Line, rule, "%s: %v", what, err)
		return 0, false
	}
	return int64(d), true
}

func (l *loader) cond(f field, env any, rule, what string) *program {
	s, ok := l.str(f, rule, what)
	if !ok {
		return nil
	}
	p, err := compileCond(s, env)
	if err != nil {
		l.add(f.val.Line, rule, "%s: %v", what, err)
		return nil
	}
	p.line = f.val.Line
	return p
}

func (l *loader) load(root *yaml.Node) {
	top := l.mapping(root, "-", "the rules file", "version", "windows", "scoring", "stages", "triggers", "actions", "identity", "tests")
	if v, ok := top["version"]; !ok {
		l.add(root.Line, "-", "missing `version: 1`")
	} else if v.val.Value != "1" {
		l.add(v.val.Line, "-", "unsupported version %q; this leadpulse reads version 1", v.val.Value)
	}
	if f, ok := top["windows"]; ok {
		l.windows(f.val)
	}
	if f, ok := top["scoring"]; ok {
		l.scoring(f.val)
	}
	if f, ok := top["stages"]; ok {
		l.stages(f.val)
	}
	// Actions before triggers so `do` can be resolved.
	if f, ok := top["actions"]; ok {
		l.actions(f.val)
	}
	if f, ok := top["triggers"]; ok {
		l.triggers(f.val)
	}
	if f, ok := top["identity"]; ok {
		l.identity(f.val)
	}
	if f, ok := top["tests"]; ok {
		l.tests(f.val)
	}
	l.checkWindowRefs()
	rs := l.rs
	for _, w := range rs.Windows {
		rs.names.Windows = append(rs.names.Windows, w.Name)
	}
	for _, r := range rs.Scoring {
		rs.names.Points = append(rs.names.Points, r.ID)
	}
	for _, t := range rs.Triggers {
		rs.names.Triggers = append(rs.names.Triggers, t.ID)
	}
	for _, a := range rs.Actions {
		rs.names.Caps = append(rs.names.Caps, a.Name)
	}
}

func (l *loader) windows(n *yaml.Node) {
	for _, f := range orderedFields(l.mapping(n, "-", "windows")) {
		name := f.key.Value
		if name == "" {
			l.add(f.key.Line, "-", "a window needs a name")
			continue
		}
		w := &Window{Name: name, Line: f.key.Line}
		m := l.mapping(f.val, name, "window "+name, "match", "over", "sum", "distinct", "count")
		if mf, ok := m["match"]; ok {
			w.Match = l.cond(mf, EventEnv{}, name, "match")
		} else {
			l.add(f.key.Line, name, "window needs `match:` (an event condition)")
		}
		if of, ok := m["over"]; ok {
			w.Over, _ = l.duration(of, name, "over")
		} else {
			l.add(f.key.Line, name, "window needs `over:` (a duration such as 7d)")
		}
		_, hasSum := m["sum"]
		_, hasDistinct := m["distinct"]
		if hasSum && hasDistinct {
			l.add(f.key.Line, name, "a window aggregates one way: give `sum:` or `distinct:`, not both")
		}
		for _, agg := range []struct {
			key  string
			kind Aggregate
		}{{"sum", Sum}, {"distinct", Distinct}} {
			af, ok := m[agg.key]
			if !ok {
				continue
			}
			w.Agg = agg.kind
			s, ok := l.str(af, name, agg.key)
			if !ok {
				continue
			}
			p, err := compileExpr(s, EventEnv{}, false)
			if err != nil {
				l.add(af.val.Line, name, "%s: %v", agg.key, err)
				continue
			}
			w.Value = p
		}
		if cf, ok := m["count"]; ok && cf.val.Value != "true" {
			l.add(cf.val.Line, name, "`count` takes no expression; a window counts by default")
		}
		l.noteContact(w.Match, w.Value)
		l.rs.Windows = append(l.rs.Windows, w)
	}
}

// orderedFields returns a mapping's fields in file order.
func orderedFields(m map[string]field) []field {
	out := make([]field, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.Line != out[j].key.Line {
			return out[i].key.Line < out[j].key.Line
		}
		return out[i].key.Column < out[j].key.Column
	})
	return out
}

func (l *loader) noteContact(ps ...*program) {
	for _, p := range ps {
		if p != nil && usesIdent(p.typd, "contact") {
			l.rs.usesContact = true
		}
	}
}

func (l *loader) scoring(n *yaml.Node) {
	m := l.mapping(n, "-", "scoring", "engagement", "fit")
	ids := map[string]int{}
	checkID := func(id string, line int) {
		if prev, dup := ids[id]; dup {
			l.add(line, id, "duplicate scoring rule id (first at line %d)", prev)
			return
		}
		ids[id] = line
	}
	if f, ok := m["engagement"]; ok {
		em := l.mapping(f.val, "-", "scoring.engagement", "half_life", "rules")
		if hf, ok := em["half_life"]; ok {
			l.rs.HalfLife, _ = l.duration(hf, "-", "half_life")
		}
		if rf, ok := em["rules"]; ok {
			for _, item := range l.seq(rf.val, "-", "scoring.engagement.rules") {
				im := l.mapping(item, itemID(item, "id", fmt.Sprintf("#line%d", item.Line)), "an engagement rule", "id", "on", "points", "limit")
				id := l.id(im, item)
				r := &ScoreRule{ID: id, Line: item.Line}
				checkID(id, item.Line)
				if of, ok := im["on"]; ok {
					r.On = l.cond(of, EventEnv{}, id, "on")
					l.noteContact(r.On)
				} else {
					l.add(item.Line, id, "engagement rule needs `on:` (an event condition)")
				}
				if pf, ok := im["points"]; ok {
					r.Points, _ = l.number(pf, id, "points")
				} else {
					l.add(item.Line, id, "engagement rule needs `points:`")
				}
				if lf, ok := im["limit"]; ok {
					lm := l.mapping(lf.val, id, "limit", "points", "per")
					if p, ok := lm["points"]; ok {
						if v, ok := l.number(p, id, "limit.points"); ok {
							if v <= 0 {
								l.add(p.val.Line, id, "limit.points must be more than zero")
							}
							r.LimitMax = v
						}
					} else {
						l.add(lf.val.Line, id, "limit needs `points:`")
					}
					if p, ok := lm["per"]; ok {
						r.LimitPer, _ = l.duration(p, id, "limit.per")
					} else {
						l.add(lf.val.Line, id, "limit needs `per:` (a duration)")
					}
				}
				l.rs.Scoring = append(l.rs.Scoring, r)
			}
		}
	}
	if f, ok := m["fit"]; ok {
		fm := l.mapping(f.val, "-", "scoring.fit", "rules")
		if rf, ok := fm["rules"]; ok {
			for _, item := range l.seq(rf.val, "-", "scoring.fit.rules") {
				im := l.mapping(item, itemID(item, "id", fmt.Sprintf("#line%d", item.Line)), "a fit rule", "id", "if", "points")
				id := l.id(im, item)
				checkID(id, item.Line)
				r := &FitRule{ID: id, Line: item.Line}
				if cf, ok := im["if"]; ok {
					r.If = l.cond(cf, ContactEnv{}, id, "if")
					if r.If != nil && (usesIdent(r.If.typd, "score") || usesIdent(r.If.typd, "fit")) {
						l.add(cf.val.Line, id, "a fit rule cannot depend on `score` or `fit` (they include fit itself); use traits, windows, engagement or stage")
					}
				} else {
					l.add(item.Line, id, "fit rule needs `if:` (a contact condition)")
				}
				if pf, ok := im["points"]; ok {
					r.Points, _ = l.number(pf, id, "points")
				} else {
					l.add(item.Line, id, "fit rule needs `points:`")
				}
				l.rs.Fit = append(l.rs.Fit, r)
			}
		}
	}
}

func (l *loader) seq(n *yaml.Node, rule, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		l.add(n.Line, rule, "%s must be a list", what)
		return nil
	}
	return n.Content
}

// itemID names a list item in problems found before its `id` (or a test's
// `name`) is read: the key's value, else fallback.
func itemID(item *yaml.Node, key, fallback string) string {
	if item.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(item.Content); i += 2 {
			if k, v := item.Content[i], item.Content[i+1]; k.Value == key && v.Kind == yaml.ScalarNode && v.Value != "" {
				return v.Value
			}
		}
	}
	return fallback
}

func (l *loader) id(m map[string]field, item *yaml.Node) string {
	f, ok := m["id"]
	if !ok {
		id := fmt.Sprintf("#line%d", item.Line)
		l.add(item.Line, id, "missing `id:`")
		return id
	}
	s, ok := l.str(f, "-", "id")
	if !ok {
		return fmt.Sprintf("#line%d", item.Line)
	}
	return s
}

func (l *loader) stages(n *yaml.Node) {
	seen := map[string]bool{}
	for _, item := range l.seq(n, "-", "stages") {
		if item.Kind != yaml.ScalarNode || item.Value == "" {
			l.add(item.Line, "-", "a stage must be a name")
			continue
		}
		if seen[item.Value] {
			l.add(item.Line, item.Value, "stage listed twice")
			continue
		}
		seen[item.Value] = true
		l.rs.Stages = append(l.rs.Stages, item.Value)
	}
}

func (l *loader) actions(n *yaml.Node) {
	for _, f := range orderedFields(l.mapping(n, "-", "actions")) {
		name := f.key.Value
		if name == "" {
			l.add(f.key.Line, "-", "an action needs a name")
			continue
		}
		a := &Action{Name: name, Line: f.key.Line}
		m := l.mapping(f.val, name, "action "+name, "sink", "route", "message", "if", "cap")
		if sf, ok := m["sink"]; ok {
			a.Sink, _ = l.str(sf, name, "sink")
		}
		if rf, ok := m["route"]; ok {
			rm := l.mapping(rf.val, name, "route", "by", "to")
			if bf, ok := rm["by"]; ok {
				if s, ok := l.str(bf, name, "route.by"); ok {
					p, err := compileExpr(s, ContactEnv{}, false)
					if err != nil {
						l.add(bf.val.Line, name, "route.by: %v", err)
					} else {
						p.line = bf.val.Line
					}
					a.RouteBy = p
				}
			} else {
				l.add(rf.val.Line, name, "route needs `by:` (an expression such as traits.region)")
			}
			if tf, ok := rm["to"]; ok {
				a.RouteTo = map[string]string{}
				for _, tf2 := range orderedFields(l.mapping(tf.val, name, "route.to")) {
					if s, ok := l.str(tf2, name, "route.to."+tf2.key.Value); ok {
						a.RouteTo[tf2.key.Value] = s
					}
				}
			} else {
				l.add(rf.val.Line, name, "route needs `to:` (a mapping of values to sinks)")
			}
		}
		if a.Sink == "" && a.RouteBy == nil {
			l.add(f.key.Line, name, "action needs `sink:` (a sink named in the deployment config)")
		}
		if mf, ok := m["message"]; ok {
			if s, ok := l.str(mf, name, "message"); ok {
				t, err := parseTemplate(s)
				if err != nil {
					l.add(mf.val.Line, name, "message: %v", err)
				}
				for _, p := range t.progs {
					p.line = mf.val.Line
				}
				a.Message = t
			}
		}
		if cf, ok := m["if"]; ok {
			a.If = l.cond(cf, ContactEnv{}, name, "if")
		}
		if cf, ok := m["cap"]; ok {
			cm := l.mapping(cf.val, name, "cap", "max", "per")
			if p, ok := cm["max"]; ok {
				if v, ok := l.number(p, name, "cap.max"); ok {
					if v < 1 || v != float64(int(v)) || v > 10000 {
						l.add(p.val.Line, name, "cap.max must be a whole number from 1 to 10000")
					}
					a.CapMax = int(v)
				}
			} else {
				l.add(cf.val.Line, name, "cap needs `max:`")
			}
			if p, ok := cm["per"]; ok {
				a.CapPer, _ = l.duration(p, name, "cap.per")
			} else {
				l.add(cf.val.Line, name, "cap needs `per:` (a duration)")
			}
		}
		l.rs.actionIdx[name] = len(l.rs.Actions)
		l.rs.Actions = append(l.rs.Actions, a)
	}
}

func (l *loader) triggers(n *yaml.Node) {
	ids := map[string]int{}
	for _, item := range l.seq(n, "-", "triggers") {
		m := l.mapping(item, itemID(item, "id", fmt.Sprintf("#line%d", item.Line)), "a trigger", "id", "when", "sequence", "within", "after", "unless", "inactive", "set_stage", "do", "cooldown")
		id := l.id(m, item)
		if prev, dup := ids[id]; dup {
			l.add(item.Line, id, "duplicate trigger id (first at line %d)", prev)
		} else {
			ids[id] = item.Line
		}
		t := &Trigger{ID: id, Line: item.Line, stageIdx: -1}
		var kinds []string
		for _, k := range []string{"when", "sequence", "after", "inactive"} {
			if _, ok := m[k]; ok {
				kinds = append(kinds, k)
			}
		}
		switch {
		case len(kinds) == 0:
			l.add(item.Line, id, "trigger needs one of `when:`, `sequence:`, `after:` or `inactive:`")
		case len(kinds) > 1:
			l.add(item.Line, id, "trigger has %s: give exactly one kind", strings.Join(kinds, " and "))
		}
		_, hasWithin := m["within"]
		_, hasUnless := m["unless"]
		if f, ok := m["when"]; ok {
			t.Kind = When
			t.When = l.cond(f, ContactEnv{}, id, "when")
		}
		if f, ok := m["sequence"]; ok {
			t.Kind = Sequence
			for _, step := range l.seq(f.val, id, "sequence") {
				t.Steps = append(t.Steps, l.cond(field{val: step}, EventEnv{}, id, "sequence step"))
			}
			if len(t.Steps) == 0 {
				l.add(f.val.Line, id, "sequence needs at least one step")
			}
			l.noteContact(t.Steps...)
			if !hasWithin {
				l.add(item.Line, id, "sequence needs `within:` (a duration)")
			}
		}
		if f, ok := m["after"]; ok {
			t.Kind = Absence
			t.After = l.cond(f, EventEnv{}, id, "after")
			if !hasWithin {
				l.add(item.Line, id, "absence trigger needs `within:` (a duration)")
			}
			if uf, ok := m["unless"]; ok {
				t.Unless = l.cond(uf, EventEnv{}, id, "unless")
			}
			l.noteContact(t.After, t.Unless)
		} else if hasUnless {
			l.add(m["unless"].key.Line, id, "`unless:` goes with `after:`")
		}
		if f, ok := m["within"]; ok {
			if t.Kind != Sequence && t.Kind != Absence {
				l.add(f.key.Line, id, "`within:` goes with `sequence:` or `after:`")
			}
			t.Within, _ = l.duration(f, id, "within")
		}
		if f, ok := m["inactive"]; ok {
			t.Kind = Inactive
			t.Quiet, _ = l.duration(f, id, "inactive")
		}
		if f, ok := m["cooldown"]; ok {
			t.Cooldown, _ = l.duration(f, id, "cooldown")
		}
		if f, ok := m["set_stage"]; ok {
			if s, ok := l.str(f, id, "set_stage"); ok {
				t.SetStage = s
				for i, st := range l.rs.Stages {
					if st == s {
						t.stageIdx = i
					}
				}
				if t.stageIdx < 0 {
					if len(l.rs.Stages) == 0 {
						l.add(f.val.Line, id, "set_stage %q but the file has no `stages:` list", s)
					} else {
						l.add(f.val.Line, id, "unknown stage %q; stages are %s", s, strings.Join(l.rs.Stages, ", "))
					}
				}
			}
		}
		if f, ok := m["do"]; ok {
			var names []*yaml.Node
			if f.val.Kind == yaml.ScalarNode {
				names = []*yaml.Node{f.val}
			} else {
				names = l.seq(f.val, id, "do")
			}
			for _, nn := range names {
				ai, ok := l.rs.actionIdx[nn.Value]
				if !ok {
					l.add(nn.Line, id, "unknown action %q in `do`; %sdefine it under `actions:`", nn.Value, didYouMean(nn.Value, l.actionNames()))
					continue
				}
				t.Do = append(t.Do, ai)
			}
		}
		if len(t.Do) == 0 && t.SetStage == "" {
			if _, ok := m["do"]; !ok {
				l.add(item.Line, id, "trigger needs `do:` (a list of actions) or `set_stage:`")
			}
		}
		l.rs.Triggers = append(l.rs.Triggers, t)
	}
}

func (l *loader) tests(n *yaml.Node) {
	for _, item := range l.seq(n, "-", "tests") {
		name := fmt.Sprintf("test@%d", item.Line)
		m := l.mapping(item, itemID(item, "name", name), "a test", "name", "events", "until", "expect")
		if f, ok := m["name"]; ok {
			if s, ok := l.str(f, name, "name"); ok {
				name = s
			}
		}
		t := &Test{Name: name, Line: item.Line}
		if f, ok := m["events"]; ok {
			for _, ev := range l.seq(f.val, name, "events") {
				var fields map[string]any
				if err := ev.Decode(&fields); err != nil || ev.Kind != yaml.MappingNode {
					l.add(ev.Line, name, "an event must be a mapping of Segment fields")
					continue
				}
				normalizeTimes(fields)
				t.Events = append(t.Events, TestEvent{Line: ev.Line, Fields: fields})
			}
		} else {
			l.add(item.Line, name, "test needs `events:`")
		}
		if f, ok := m["until"]; ok {
			t.Until = l.time(f, name, "until")
		}
		if f, ok := m["expect"]; ok {
			for _, ex := range l.seq(f.val, name, "expect") {
				em := l.mapping(ex, name, "an expectation", "trigger", "contact", "at", "action")
				e := Expect{Line: ex.Line}
				if tf, ok := em["trigger"]; ok {
					e.Trigger, _ = l.str(tf, name, "trigger")
					if l.rs.TriggerIndex(e.Trigger) < 0 && e.Trigger != "" {
						l.add(tf.val.Line, name, "unknown trigger %q%s", e.Trigger, suffixHint(e.Trigger, l.triggerNames()))
					}
				} else {
					l.add(ex.Line, name, "expectation needs `trigger:`")
				}
				if cf, ok := em["contact"]; ok {
					e.Contact, _ = l.str(cf, name, "contact")
				}
				if af, ok := em["action"]; ok {
					e.Action, _ = l.str(af, name, "action")
				}
				if af, ok := em["at"]; ok {
					e.At = l.time(af, name, "at")
				}
				t.Expect = append(t.Expect, e)
			}
		} else {
			l.add(item.Line, name, "test needs `expect:` (use `expect: []` for no firing)")
		}
		l.rs.Tests = append(l.rs.Tests, t)
	}
}

// normalizeTimes turns YAML timestamps decoded as time.Time back into RFC
// 3339 text, as events carry them.
func normalizeTimes(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case time.Time:
			m[k] = x.UTC().Format(time.RFC3339Nano)
		case map[string]any:
			normalizeTimes(x)
		}
	}
}

func (l *loader) time(f field, rule, what string) int64 {
	s, ok := l.str(f, rule, what)
	if !ok {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		l.add(f.val.Line, rule, "%s %q is not an RFC 3339 time", what, s)
		return 0
	}
	return t.UnixNano()
}

// checkWindowRefs reports `windows.NAME` for a NAME that is not defined, in
// every contact condition.
func (l *loader) checkWindowRefs() {
	known := map[string]bool{}
	var names []string
	for _, w := range l.rs.Windows {
		known[w.Name] = true
		names = append(names, w.Name)
	}
	check := func(p *program, line int, rule string) {
		if p == nil {
			return
		}
		if p.line > 0 {
			line = p.line
		}
		for _, name := range memberNames(p.typd, "windows") {
			if !known[name] {
				l.add(line, rule, "unknown window %q%s", name, suffixHint(name, names))
			}
		}
	}
	// Event conditions read the windows as `contact.windows.NAME`.
	for _, w := range l.rs.Windows {
		check(w.Match, w.Line, w.Name)
		check(w.Value, w.Line, w.Name)
	}
	for _, r := range l.rs.Scoring {
		check(r.On, r.Line, r.ID)
	}
	for _, r := range l.rs.Fit {
		check(r.If, r.Line, r.ID)
	}
	for _, t := range l.rs.Triggers {
		check(t.When, t.Line, t.ID)
		for _, p := range t.Steps {
			check(p, t.Line, t.ID)
		}
		check(t.After, t.Line, t.ID)
		check(t.Unless, t.Line, t.ID)
	}
	for _, a := range l.rs.Actions {
		check(a.If, a.Line, a.Name)
		check(a.RouteBy, a.Line, a.Name)
		if a.Message != nil {
			for _, p := range a.Message.progs {
				check(p, a.Line, a.Name)
			}
		}
	}
}
