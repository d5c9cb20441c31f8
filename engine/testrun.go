package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// TestResult is the outcome of one case of a rules file's tests: section.
type TestResult struct {
	Test   *rules.Test
	Got    []rules.Firing
	Errors []string // why it failed; empty when it passed
}

// Passed reports whether the case passed.
func (r *TestResult) Passed() bool { return len(r.Errors) == 0 }

// RunTests runs every test case of rs through a fresh in-memory partition,
// exactly as replay would, and compares the trigger firings with `expect`
// in order. A firing whose actions were all suppressed by guards or caps is
// still a firing; an edge suppressed by a cooldown is not.
func RunTests(ctx context.Context, rs *rules.Ruleset) []TestResult {
	out := make([]TestResult, 0, len(rs.Tests))
	for _, t := range rs.Tests {
		out = append(out, runTest(ctx, rs, t))
	}
	return out
}

func runTest(ctx context.Context, rs *rules.Ruleset, t *rules.Test) TestResult {
	r := TestResult{Test: t}
	p := NewPartition(rs, state.NewMemory(), func(res *rules.Result) {
		for _, f := range res.Firings {
			f.Actions = append([]string(nil), f.Actions...)
			r.Got = append(r.Got, f)
		}
	})
	p.UseLinks(state.NewMemoryLinks())
	for _, te := range t.Events {
		e, err := event.FromMap(te.Fields)
		if err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("%s:%d: %s: bad test event: %v", rs.File, te.Line, t.Name, err))
			continue
		}
		if err := p.Apply(ctx, e); err != nil {
			if event.ReasonOf(err) != "" { // no usable id: bad input, as in replay
				r.Errors = append(r.Errors, fmt.Sprintf("%s:%d: %s: bad test event: %v", rs.File, te.Line, t.Name, err))
				continue
			}
			r.Errors = append(r.Errors, fmt.Sprintf("%s:%d: %s: %v", rs.File, te.Line, t.Name, err))
			return r
		}
	}
	until := t.Until
	if until == 0 {
		until = p.Clock()
	}
	if until != state.NoTime {
		if err := p.Advance(ctx, until); err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("%s:%d: %s: %v", rs.File, t.Line, t.Name, err))
			return r
		}
	}
	if !matches(t.Expect, r.Got) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s:%d: %s: firings differ\n  expected:\n", rs.File, t.Line, t.Name)
		for _, e := range t.Expect {
			fmt.Fprintf(&b, "    %s\n", formatExpect(e))
		}
		if len(t.Expect) == 0 {
			b.WriteString("    (none)\n")
		}
		b.WriteString("  got:\n")
		for _, f := range r.Got {
			fmt.Fprintf(&b, "    %s\n", FormatFiring(f))
		}
		if len(r.Got) == 0 {
			b.WriteString("    (none)\n")
		}
		r.Errors = append(r.Errors, strings.TrimRight(b.String(), "\n"))
	}
	return r
}

func matches(want []rules.Expect, got []rules.Firing) bool {
	if len(want) != len(got) {
		return false
	}
	for i, w := range want {
		g := got[i]
		if w.Trigger != g.Trigger ||
			(w.Contact != "" && w.Contact != g.Contact) ||
			(w.At != 0 && w.At != g.At) {
			return false
		}
		if w.Action != "" && !containsString(g.Actions, w.Action) {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func formatExpect(e rules.Expect) string {
	s := "trigger=" + e.Trigger
	if e.Contact != "" {
		s += " contact=" + e.Contact
	}
	if e.At != 0 {
		s += " at=" + formatTime(e.At)
	}
	if e.Action != "" {
		s += " action=" + e.Action
	}
	return s
}

// FormatFiring renders a firing for people.
func FormatFiring(f rules.Firing) string {
	acts := "(all actions suppressed)"
	if len(f.Actions) > 0 {
		acts = strings.Join(f.Actions, ",")
	}
	return fmt.Sprintf("trigger=%s contact=%s at=%s actions=%s", f.Trigger, f.Contact, formatTime(f.At), acts)
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
