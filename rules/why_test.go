package rules_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

const whyRules = `version: 1
windows:
  pricing_7d: { match: type == "page" && properties.path startsWith "/pricing", over: 7d }
scoring:
  engagement:
    half_life: 1d
    rules:
      - { id: pricing, on: type == "page" && properties.path startsWith "/pricing", points: 10 }
      - { id: demo, on: type == "track" && event == "Form Submitted", points: 40 }
  fit:
    rules:
      - { id: health, if: traits.industry == "healthcare", points: 15 }
triggers:
  - id: hot-lead
    when: score >= 100 && windows.pricing_7d >= 1
    cooldown: 24h
    do: [alert]
  - id: warm
    when: score >= 20
    cooldown: 24h
    do: [alert, mail]
  - id: guide-then-pricing
    sequence:
      - type == "track" && event == "Guide Downloaded"
      - type == "page" && properties.path startsWith "/pricing"
      - type == "track" && event == "Form Submitted"
    within: 2d
    do: [alert]
  - id: abandoned
    after: type == "track" && event == "Product Added"
    unless: type == "track" && event == "Order Completed"
    within: 1h
    do: [mail]
  - id: quiet
    inactive: 30d
    do: [mail]
actions:
  alert: { sink: sales }
  mail:
    sink: email
    if: traits.unsubscribed != true
    cap: { max: 1, per: 7d }
`

// apply runs JSON events through a fresh evaluator and returns the
// contact, with the awards each event earned.
func apply(t *testing.T, rs *rules.Ruleset, lines ...string) (*state.Contact, []rules.AwardAt) {
	t.Helper()
	x := rs.NewEvaluator()
	c := state.New("u1")
	var awards []rules.AwardAt
	for _, l := range lines {
		e, err := event.Decode([]byte(l), event.JSON, 0)
		if err != nil {
			t.Fatalf("decode %s: %v", l, err)
		}
		res := x.Apply(c, e)
		if res.Event != e {
			t.Fatalf("Result.Event is not the applied event")
		}
		for _, a := range res.Awards {
			awards = append(awards, rules.AwardAt{Rule: a.Rule, Points: a.Points, At: e.Time})
		}
	}
	return c, awards
}

func ev(typ, name, path, ts string, extra ...string) string {
	s := `{"type":"` + typ + `","userId":"u1","timestamp":"` + ts + `"`
	if name != "" {
		s += `,"event":"` + name + `"`
	}
	if path != "" {
		s += `,"properties":{"path":"` + path + `"}`
	}
	for _, x := range extra {
		s += "," + x
	}
	return s + "}"
}

func TestWhy(t *testing.T) {
	rs, err := rules.Parse("why.yaml", []byte(whyRules))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := apply(t, rs,
		ev("page", "", "/pricing", "2026-03-02T09:00:00Z"),
		ev("track", "Guide Downloaded", "", "2026-03-02T10:00:00Z"),
		ev("page", "", "/pricing/enterprise", "2026-03-02T11:00:00Z"),
		ev("track", "Product Added", "", "2026-03-02T12:00:00Z", `"traits":{"unsubscribed":true}`),
	)
	tests := []struct {
		trigger string
		check   func(t *testing.T, v rules.WhyView)
	}{
		{"hot-lead", func(t *testing.T, v rules.WhyView) {
			if v.Condition != "score >= 100 && windows.pricing_7d >= 1" || v.Holds == nil || *v.Holds || v.Armed == nil || !*v.Armed {
				t.Errorf("condition/holds/armed = %q %v %v", v.Condition, v.Holds, v.Armed)
			}
			want := []rules.WhyValue{{Name: "score", Value: 18.885}, {Name: "windows.pricing_7d", Value: 2.0}}
			if got, _ := json.Marshal(v.Values); string(got) != mustJSON(want) {
				t.Errorf("values = %s, want %s", got, mustJSON(want))
			}
			if !strings.Contains(v.Verdict, "score = 18.885") {
				t.Errorf("verdict %q does not give score's value", v.Verdict)
			}
			if txt := v.Text(); !strings.Contains(txt, "score >= 100 && windows.pricing_7d >= 1  → false") || !strings.Contains(txt, "score = 18.885") || !strings.Contains(txt, "cooldown: 1d") {
				t.Errorf("text:\n%s", txt)
			}
		}},
		{"warm", func(t *testing.T, v rules.WhyView) {
			// 18.885 < 20: false, armed; mail's guard is false (unsubscribed).
			if *v.Holds || v.Fired != 0 || len(v.Actions) != 2 {
				t.Fatalf("warm: %+v", v)
			}
			if g := v.Actions[1].GuardHolds; g == nil || *g {
				t.Errorf("mail guard = %v, want false", g)
			}
			if !strings.Contains(v.Verdict, "suppressed by its guard traits.unsubscribed != true (traits.unsubscribed = true)") {
				t.Errorf("verdict %q", v.Verdict)
			}
		}},
		{"guide-then-pricing", func(t *testing.T, v rules.WhyView) {
			if len(v.Steps) != 3 || !v.Steps[0].Matched || !v.Steps[1].Matched || v.Steps[2].Matched {
				t.Fatalf("steps %+v", v.Steps)
			}
			if v.Steps[0].FirstAt != "2026-03-02T10:00:00Z" || v.Deadline != "2026-03-04T10:00:00Z" {
				t.Errorf("first %s deadline %s", v.Steps[0].FirstAt, v.Deadline)
			}
			if !strings.Contains(v.Verdict, "waiting for step 3") {
				t.Errorf("verdict %q", v.Verdict)
			}
		}},
		{"abandoned", func(t *testing.T, v rules.WhyView) {
			if v.TimerDue != "2026-03-02T13:00:00Z" || !strings.Contains(v.Verdict, "pending") {
				t.Errorf("timer %q verdict %q", v.TimerDue, v.Verdict)
			}
		}},
		{"quiet", func(t *testing.T, v rules.WhyView) {
			if v.TimerDue != "2026-04-01T12:00:00Z" || v.Quiet != "30d" {
				t.Errorf("timer %q quiet %q", v.TimerDue, v.Quiet)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.trigger, func(t *testing.T) {
			v, err := rs.Why(c, tc.trigger, state.NoTime)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v)
		})
	}

	// After the firing: holds, not armed, in cooldown.
	c2, _ := apply(t, rs,
		ev("page", "", "/pricing", "2026-03-02T09:00:00Z"),
		ev("track", "Form Submitted", "", "2026-03-02T09:30:00Z"),
	)
	v, err := rs.Why(c2, "warm", state.NoTime)
	if err != nil {
		t.Fatal(err)
	}
	if !*v.Holds || *v.Armed || v.Fired != 1 || v.CooldownUntil != "2026-03-03T09:30:00Z" {
		t.Errorf("after firing: holds %v armed %v fired %d cooldown %q", *v.Holds, *v.Armed, v.Fired, v.CooldownUntil)
	}
	if !strings.Contains(v.Verdict, "fires again only after it has been false") || !strings.Contains(v.Verdict, "in cooldown until") {
		t.Errorf("verdict %q", v.Verdict)
	}
	if v.Actions[1].CapUsed != 1 || v.Actions[1].CapFreeAt != "2026-03-09T09:30:00Z" {
		t.Errorf("cap %+v", v.Actions[1])
	}

	if _, err := rs.Why(c2, "nope", state.NoTime); err == nil {
		t.Error("unknown trigger: no error")
	}
	// A contact without events: values null, no panic.
	v, err = rs.Why(state.New("nobody"), "hot-lead", state.NoTime)
	if err != nil || v.Values[0].Value != nil || *v.Holds {
		t.Errorf("empty contact: %+v %v", v, err)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestChart(t *testing.T) {
	rs, err := rules.Parse("why.yaml", []byte(whyRules))
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		ev("page", "", "/pricing", "2026-03-01T00:00:00Z"),
		ev("page", "", "/pricing", "2026-03-02T00:00:00Z"),
		ev("track", "Form Submitted", "", "2026-03-03T00:00:00Z"),
		ev("identify", "", "", "2026-03-03T00:00:00Z", `"traits":{"industry":"healthcare"}`),
	}
	c, awards := apply(t, rs, lines...)
	if len(awards) != 3 {
		t.Fatalf("awards %v", awards)
	}
	// Exact with all awards recorded, and with only the later ones: the
	// remainder stands for the earlier, unrecorded awards.
	for _, rec := range [][]rules.AwardAt{awards, awards[1:]} {
		ch := rs.Chart(c, rec, 50)
		last := len(ch.Times) - 1
		// At the latest event: 10/4 + 10/2 + 40 + fit 15 = 62.5.
		if ch.Score[last] != 62.5 || ch.Fit != 15 {
			t.Errorf("score at latest = %v fit %v, want 62.5, 15", ch.Score[last], ch.Fit)
		}
		// One day before the latest, just before the demo award: 10/2 + 10.
		for k, ms := range ch.Times {
			if ms == 1772409600000-1 { // 2026-03-02T00:00:00Z minus 1ms: before award 2
				if p := ch.Engagement[0].Values[k]; math.Abs(p-5) > 0.01 && len(rec) == 3 {
					t.Errorf("pricing just before its second award = %v, want 5", p)
				}
			}
		}
		if ch.Times[0] != rec[0].At/1e6-1 && ch.Times[0] != rec[0].At/1e6 {
			t.Errorf("chart starts at %d, first recorded award %d", ch.Times[0], rec[0].At/1e6)
		}
		// Decay: two half-lives after the latest, engagement is a quarter.
		lp := len(ch.ProjScore) - 1
		if got := ch.ProjScore[lp]; math.Abs(got-(15+47.5/4)) > 0.01 {
			t.Errorf("projection after 2 half-lives = %v, want %v", got, 15+47.5/4)
		}
		if ch.ProjScore[0] != 62.5 {
			t.Errorf("projection starts at %v", ch.ProjScore[0])
		}
	}
}
