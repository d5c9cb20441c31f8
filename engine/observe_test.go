package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// TestReplayObserve: Observe sees every firing, including one whose only
// action a guard suppressed (replay prints no line for it), and the store
// given is the one replay fills.
func TestReplayObserve(t *testing.T) {
	rs, err := rules.Parse("observe.yaml", []byte(`version: 1
triggers:
  - id: any-page
    when: event.type == "page"
    do: [guarded]
actions:
  guarded:
    sink: s
    if: traits.vip == true
`))
	if err != nil {
		t.Fatal(err)
	}
	events := `{"type":"page","userId":"u1","timestamp":"2026-03-01T00:00:00Z"}
{"type":"track","userId":"u1","event":"x","timestamp":"2026-03-01T00:01:00Z"}
{"type":"page","userId":"u2","timestamp":"2026-03-01T00:02:00Z"}
`
	var out strings.Builder
	var firings []rules.Firing
	store := state.NewMemory()
	sum, err := Replay(context.Background(), rs, strings.NewReader(events), ReplayOptions{
		Out: &out, Store: store,
		Observe: func(res *rules.Result) { firings = append(firings, res.Firings...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || len(firings) != 2 || firings[0].Contact != "u1" || firings[1].Contact != "u2" || len(firings[0].Actions) != 0 {
		t.Errorf("output %q, firings %+v", out.String(), firings)
	}
	if store.Len() != 2 || sum.Resolve == nil || sum.Resolve("u1") != "u1" {
		t.Errorf("store has %d contacts; Resolve %v", store.Len(), sum.Resolve != nil)
	}
}
