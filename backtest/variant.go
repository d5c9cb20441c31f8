package backtest

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/internal/yamlnode"

	"github.com/leadpulse/leadpulse/rules"
)

// A backtest runs the rules file itself, compiled by the rules package, with
// extra triggers appended after the file's own (so they cannot change the
// order or the outcome of the file's triggers, which are evaluated first and
// which they do not affect: they set no stage and do nothing):
//
//   - the conversion condition, as a one-step `sequence` trigger: it fires
//     on every applied event that matches, is compiled in the event
//     environment of the rules (the event's fields, `contact` before the
//     event) with the same null semantics as any `on` or `match`;
//   - for a sweep, one `when: score >= N` trigger per threshold N, with the
//     swept trigger's cooldown: the engine arms, re-arms and cools it down
//     exactly as it would the swept trigger with that N, so its firings are
//     the swept trigger's firings at N. That holds as long as the swept
//     trigger's own firings cannot change the scores or the timers it is
//     evaluated on, which only its `set_stage` could do (see
//     stageCoupled); otherwise each threshold is a replay of its own.
//
// The file is edited as a YAML node tree and compiled again, so each
// variant is an ordinary, independent rules.Ruleset.

// SweepError reports a --sweep that cannot be run: an unknown trigger, or
// one whose `when` is not one comparison of `score` with a number.
type SweepError struct {
	File, Trigger, Reason string
	Err                   error // ErrNoTrigger for an unknown trigger
}

func (e *SweepError) Unwrap() error { return e.Err }

func (e *SweepError) Error() string {
	return fmt.Sprintf("%s: %s: --sweep needs a trigger whose `when` is one comparison `score >= N` or `score > N`: %s", e.File, e.Trigger, e.Reason)
}

// ConditionError reports a --conversion condition that does not compile.
type ConditionError struct {
	Condition string
	Msg       string
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("--conversion %q: %s; write an event condition such as type == \"track\" && event == \"Order Completed\"", e.Condition, e.Msg)
}

// ErrNoTrigger is wrapped by a SweepError whose trigger is in no file.
var ErrNoTrigger = errors.New("no such trigger")

// ids of the appended triggers; a suffix keeps them apart from the file's.
const (
	convID  = "backtest:conversion"
	sweepID = "backtest:sweep:"
)

// doc is a parsed rules file.
type doc struct {
	file string
	root yaml.Node // the document node
	rs   *rules.Ruleset
	tag  string // suffix making the appended ids unique in this file
}

func loadDoc(file string, data []byte) (*doc, error) {
	rs, err := rules.Parse(file, data)
	if err != nil {
		return nil, err
	}
	d := &doc{file: file, rs: rs}
	if err := yaml.Unmarshal(data, &d.root); err != nil || len(d.root.Content) == 0 || d.root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: reading the rules as YAML: %v", file, err)
	}
	for rs.TriggerIndex(convID+d.tag) >= 0 || rs.TriggerIndex(sweepID+d.tag+"0") >= 0 {
		d.tag += "~"
	}
	return d, nil
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}
}

func mapping(kv ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kv}
}

func emptySeq() *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
}

// triggerNode returns the mapping of the trigger with this id, or nil.
func (d *doc) triggerNode(id string) *yaml.Node {
	ts := yamlnode.Value(d.root.Content[0], "triggers")
	if ts == nil || ts.Kind != yaml.SequenceNode {
		return nil
	}
	for _, t := range ts.Content {
		if v := yamlnode.Value(t, "id"); v != nil && v.Value == id {
			return t
		}
	}
	return nil
}

// comparison is a swept trigger's `when: score OP N`.
type comparison struct {
	op string // ">=" or ">"
	n  float64
}

// sweepTarget checks that the trigger exists with a `when` that is exactly
// one comparison of score with a number.
func (d *doc) sweepTarget(id string) (comparison, error) {
	t := d.triggerNode(id)
	if t == nil {
		return comparison{}, &SweepError{File: d.file, Trigger: id, Reason: fmt.Sprintf("the file has no trigger %q", id), Err: ErrNoTrigger}
	}
	w := yamlnode.Value(t, "when")
	if w == nil || w.Kind != yaml.ScalarNode {
		return comparison{}, &SweepError{File: d.file, Trigger: id, Reason: "it has no `when:` (it is a sequence, absence or inactivity trigger)"}
	}
	c, ok := parseComparison(w.Value)
	if !ok {
		return comparison{}, &SweepError{File: d.file, Trigger: id, Reason: fmt.Sprintf("its `when` is %q", w.Value)}
	}
	return c, nil
}

func parseComparison(src string) (comparison, bool) {
	tree, err := parser.Parse(src)
	if err != nil {
		return comparison{}, false
	}
	b, ok := tree.Node.(*ast.BinaryNode)
	if !ok || (b.Operator != ">=" && b.Operator != ">") {
		return comparison{}, false
	}
	if id, ok := b.Left.(*ast.IdentifierNode); !ok || id.Value != "score" {
		return comparison{}, false
	}
	n, ok := number(b.Right)
	if !ok {
		return comparison{}, false
	}
	return comparison{op: b.Operator, n: n}, true
}

func number(n ast.Node) (float64, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return float64(x.Value), true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.UnaryNode:
		v, ok := number(x.Node)
		switch {
		case ok && x.Operator == "-":
			return -v, true
		case ok && x.Operator == "+":
			return v, true
		}
	}
	return 0, false
}

// readsStage matches conditions that may read the contact's stage.
var readsStage = regexp.MustCompile(`\bstage\b`)

// stageCoupled reports whether the swept trigger's firings could change
// anything its own firings depend on: it sets a stage and some window,
// scoring rule or trigger condition mentions `stage`. Then a threshold
// changes when the stage moves, which may change scores or fire other
// timers, and the sweep must replay the file once per threshold.
func (d *doc) stageCoupled(id string) bool {
	if t := d.triggerNode(id); t == nil || yamlnode.Value(t, "set_stage") == nil {
		return false
	}
	top := d.root.Content[0]
	found := false
	check := func(n *yaml.Node) {
		if n != nil && n.Kind == yaml.ScalarNode && readsStage.MatchString(n.Value) {
			found = true
		}
	}
	if ws := yamlnode.Value(top, "windows"); ws != nil && ws.Kind == yaml.MappingNode {
		for i := 1; i < len(ws.Content); i += 2 {
			for _, k := range []string{"match", "sum", "distinct"} {
				check(yamlnode.Value(ws.Content[i], k))
			}
		}
	}
	sc := yamlnode.Value(top, "scoring")
	for _, part := range []struct{ section, key string }{{"engagement", "on"}, {"fit", "if"}} {
		if rs := yamlnode.Value(yamlnode.Value(sc, part.section), "rules"); rs != nil && rs.Kind == yaml.SequenceNode {
			for _, r := range rs.Content {
				check(yamlnode.Value(r, part.key))
			}
		}
	}
	if ts := yamlnode.Value(top, "triggers"); ts != nil && ts.Kind == yaml.SequenceNode {
		for _, t := range ts.Content {
			for _, k := range []string{"when", "after", "unless"} {
				check(yamlnode.Value(t, k))
			}
			if s := yamlnode.Value(t, "sequence"); s != nil && s.Kind == yaml.SequenceNode {
				for _, step := range s.Content {
					check(step)
				}
			}
		}
	}
	return found
}

// variant is a compiled variant of the file and where its appended
// triggers are.
type variant struct {
	rs    *rules.Ruleset
	conv  int // index of the conversion trigger, -1 for none
	sweep int // index of the first sweep trigger, -1 for none
}

// build compiles the file with the conversion trigger (if conv is set), one
// trigger `score op N` with the cooldown of trigger swept per threshold N
// of shadows, and the `when` of trigger swept replaced by `score op n` (if
// rewrite is set).
func (d *doc) build(conv, swept, op string, shadows []float64, rewrite bool, n float64) (*variant, error) {
	var root yaml.Node
	copyNode(&root, &d.root)
	top := root.Content[0]
	ts := yamlnode.Value(top, "triggers")
	if ts == nil {
		ts = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		top.Content = append(top.Content, scalar("triggers"), ts)
	}
	if ts.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: `triggers:` is not a list", d.file)
	}
	ts.Style = 0 // block style, whatever the file used
	var cooldown *yaml.Node
	for _, t := range ts.Content {
		if v := yamlnode.Value(t, "id"); v != nil && v.Value == swept {
			cooldown = yamlnode.Value(t, "cooldown")
			if rewrite {
				*yamlnode.Value(t, "when") = *scalar("score " + op + " " + formatNumber(n))
			}
		}
	}
	v := &variant{conv: -1, sweep: -1}
	base := len(d.rs.Triggers)
	if conv != "" {
		v.conv = base
		base++
		ts.Content = append(ts.Content, mapping(
			scalar("id"), scalar(convID+d.tag),
			scalar("sequence"), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{scalar(conv)}},
			scalar("within"), scalar("1s"),
			scalar("do"), emptySeq(),
		))
	}
	if len(shadows) > 0 {
		v.sweep = base
	}
	for i, e := range shadows {
		t := mapping(
			scalar("id"), scalar(sweepID+d.tag+strconv.Itoa(i)),
			scalar("when"), scalar("score "+op+" "+formatNumber(e)),
			scalar("do"), emptySeq(),
		)
		if cooldown != nil {
			t.Content = append(t.Content, scalar("cooldown"), cooldown)
		}
		ts.Content = append(ts.Content, t)
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.file, err)
	}
	rs, err := rules.Parse(d.file, out)
	if err != nil {
		var ve *rules.ValidationError
		if errors.As(err, &ve) && conv != "" {
			// The file itself validated: the problem is the condition.
			var msgs []string
			for _, p := range ve.Problems {
				msgs = append(msgs, strings.TrimPrefix(p.Msg, "sequence step: "))
			}
			return nil, &ConditionError{Condition: conv, Msg: strings.Join(msgs, "; ")}
		}
		return nil, err
	}
	v.rs = rs
	return v, nil
}

// copyNode deep-copies a YAML node tree (aliases point into the copy's
// originals, which is harmless: they are only read).
func copyNode(dst, src *yaml.Node) {
	*dst = *src
	dst.Content = make([]*yaml.Node, len(src.Content))
	for i, c := range src.Content {
		dst.Content[i] = new(yaml.Node)
		copyNode(dst.Content[i], c)
	}
}

// formatNumber writes a threshold so that it reads back exactly.
func formatNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
