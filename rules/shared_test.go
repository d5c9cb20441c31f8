package rules

import (
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/state"
)

// TestSharedConditions: event conditions of the same text share one
// result per event, and each event computes it anew: a pricing page counts
// in the window, earns the scoring rule's points and steps the sequence;
// the next event, a docs page, does none of it.
func TestSharedConditions(t *testing.T) {
	rs, err := Parse("s.yaml", []byte(`version: 1
windows:
  pricing:
    match: type == "page" && properties.path startsWith "/pricing"
    over: 7d
scoring:
  engagement:
    rules:
      - id: pricing-page
        on: type == "page" && properties.path startsWith "/pricing"
        points: 10
      - id: docs
        on: type == "page" && properties.path startsWith "/docs"
        points: 1
triggers:
  - id: guide-then-pricing
    sequence:
      - type == "page" && properties.path startsWith "/docs"
      - type == "page" && properties.path startsWith "/pricing"
    within: 2d
    do: [a]
actions:
  a:
    sink: s
`))
	if err != nil {
		t.Fatal(err)
	}
	w, p, d := rs.Windows[0].Match, rs.Scoring[0].On, rs.Scoring[1].On
	steps := rs.Triggers[0].Steps
	if w.shared == 0 || w.shared != p.shared || p.shared != steps[1].shared || d.shared == 0 || d.shared != steps[0].shared || d.shared == p.shared {
		t.Fatalf("shared: window %d, pricing %d, step 2 %d, docs %d, step 1 %d", w.shared, p.shared, steps[1].shared, d.shared, steps[0].shared)
	}
	x := rs.NewEvaluator()
	c := state.New("c")
	at := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC).UnixNano()
	page := func(path string) *Result {
		at += int64(time.Minute)
		return x.Apply(c, &event.Event{Type: "page", AnonymousID: "c", Time: at, Properties: map[string]any{"path": path}})
	}
	page("/docs/a")
	if res := page("/pricing"); len(res.Firings) != 1 || len(res.Awards) != 1 || res.Awards[0].Rule != "pricing-page" {
		t.Fatalf("pricing page: firings %v, awards %v", res.Firings, res.Awards)
	}
	if n := len(c.Windows[0].T); n != 1 {
		t.Fatalf("window holds %d events, want 1", n)
	}
	if res := page("/docs/b"); len(res.Firings) != 0 || len(res.Awards) != 1 || res.Awards[0].Rule != "docs" {
		t.Fatalf("docs page: firings %v, awards %v", res.Firings, res.Awards)
	}
	if n := len(c.Windows[0].T); n != 1 {
		t.Fatalf("window holds %d events after a docs page, want 1", n)
	}
}
