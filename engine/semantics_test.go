package engine_test

// These tests pin SPEC §2 ("Semantics that tests depend on") and the rules
// language, sentence by sentence, plus the lead's decisions where the SPEC is
// silent. Each case drives small inline rules through the one engine path:
// engine.NewPartition over the in-memory store, and engine.Replay over the same
// events as JSON lines, whose output must be the same records.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// base is time zero of every case; events and expectations are offsets.
var base = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const (
	day = 24 * time.Hour
	ns  = time.Nanosecond
)

func ts(d time.Duration) string { return base.Add(d).UTC().Format(time.RFC3339Nano) }

// ev builds one JSON event line at base+d for contact u1; kv sets fields,
// where a dotted key nests ("properties.path") and "userId" overrides u1.
func ev(d time.Duration, kv ...any) string {
	m := map[string]any{"userId": "u1", "timestamp": ts(d)}
	for i := 0; i+1 < len(kv); i += 2 {
		setPath(m, kv[i].(string), kv[i+1])
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

func page(d time.Duration, path string, kv ...any) string {
	return ev(d, append([]any{"type", "page", "properties.path", path}, kv...)...)
}

func track(d time.Duration, name string, kv ...any) string {
	return ev(d, append([]any{"type", "track", "event", name}, kv...)...)
}

func ident(d time.Duration, kv ...any) string {
	return ev(d, append([]any{"type", "identify"}, kv...)...)
}

// probe is a track event that the `probe` trigger of many cases fires on.
func probe(d time.Duration, kv ...any) string { return track(d, "probe", kv...) }

func dur(d time.Duration) *time.Duration { return &d }

// fmtOff renders base+offset compactly: 0, 1h30m, 1d12h, 1h0m0.000000001s.
func fmtOff(at int64) string {
	d := time.Duration(at - base.UnixNano())
	if d%time.Second != 0 || d < 0 {
		return d.String()
	}
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range []struct {
		n time.Duration
		s string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d >= u.n {
			fmt.Fprintf(&b, "%d%s", d/u.n, u.s)
			d %= u.n
		}
	}
	return b.String()
}

func mustParse(t testing.TB, src string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Parse("case.yaml", []byte("version: 1\n"+src))
	if err != nil {
		t.Fatalf("rules do not validate:\n%v", err)
	}
	return rs
}

// run is what driving a rules file over events produced.
type run struct {
	Records []rules.Record
	Firings []rules.Firing
	Stats   rules.Stats
	Summary *engine.Summary
}

// play drives the events through a Partition (firing timers due up to until,
// or up to the clock without until, as replay does) and through Replay, and
// fails unless both emit the same action lines.
func play(t *testing.T, src string, lines []string, until *time.Duration) run {
	t.Helper()
	ctx := context.Background()
	rs := mustParse(t, src)
	var r run
	p := engine.NewPartition(rs, state.NewMemory(), func(res *rules.Result) {
		r.Records = append(r.Records, res.Records...)
		for _, f := range res.Firings {
			f.Actions = append([]string(nil), f.Actions...)
			r.Firings = append(r.Firings, f)
		}
	})
	for i, line := range lines {
		e, err := event.Decode([]byte(line), event.JSON, 0)
		if err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if err := p.Apply(ctx, e); err != nil {
			t.Fatalf("event %d: Apply: %v", i+1, err)
		}
	}
	var untilNs int64
	if until != nil {
		untilNs = base.Add(*until).UnixNano()
	}
	end := untilNs
	if until == nil {
		end = p.Clock()
	}
	if end != state.NoTime {
		if err := p.Advance(ctx, end); err != nil {
			t.Fatalf("Advance: %v", err)
		}
	}
	r.Stats = *p.Stats()
	r.Stats.ByTrigger = append([]uint64(nil), r.Stats.ByTrigger...)

	var out, errs bytes.Buffer
	sum, err := engine.Replay(ctx, rs, strings.NewReader(strings.Join(lines, "\n")+"\n"),
		engine.ReplayOptions{Until: untilNs, Out: &out, Errs: &errs})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if errs.Len() != 0 {
		t.Fatalf("Replay reported bad input:\n%s", errs.String())
	}
	var want bytes.Buffer
	for i := range r.Records {
		b, err := json.Marshal(&r.Records[i])
		if err != nil {
			t.Fatal(err)
		}
		want.Write(b)
		want.WriteByte('\n')
	}
	if out.String() != want.String() {
		t.Fatalf("Replay and Partition disagree:\nreplay:\n%s\npartition:\n%s", out.String(), want.String())
	}
	r.Summary = sum
	return r
}

func firings(r run) []string {
	out := []string{}
	for _, f := range r.Firings {
		acts := "-"
		if len(f.Actions) > 0 {
			acts = strings.Join(f.Actions, ",")
		}
		out = append(out, fmt.Sprintf("%s %s @%s %s", f.Contact, f.Trigger, fmtOff(f.At), acts))
	}
	return out
}

func records(r run) []string {
	out := []string{}
	for _, rec := range r.Records {
		out = append(out, fmt.Sprintf("%s %s/%s @%s", rec.Contact, rec.Trigger, rec.Action, fmtOff(rec.AtNanos)))
	}
	return out
}

func messages(r run) []string {
	out := []string{}
	for _, rec := range r.Records {
		out = append(out, rec.Message)
	}
	return out
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func wantMessages(want ...string) func(*testing.T, run) {
	return func(t *testing.T, r run) { t.Helper(); sameStrings(t, "messages", messages(r), want) }
}

func wantRecords(want ...string) func(*testing.T, run) {
	return func(t *testing.T, r run) { t.Helper(); sameStrings(t, "records", records(r), want) }
}

func all(checks ...func(*testing.T, run)) func(*testing.T, run) {
	return func(t *testing.T, r run) {
		t.Helper()
		for _, c := range checks {
			c(t, r)
		}
	}
}

// probeTrigger fires `show` on every "probe" track event.
const probeTrigger = `
  - id: probe
    sequence: ['type == "track" && event == "probe"']
    within: 1s
    do: [show]
`

// Rules shared by several cases.
const (
	countWindow = `
windows:
  views:
    match: type == "page"
    over: 1h
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ windows.views }}" }
`
	limitRules = `
scoring:
  engagement:
    rules:
      - id: pricing
        on: type == "page"
        points: 10
        limit: { points: 25, per: 1d }
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ engagement }}" }
`
	edgeRules = `
triggers:
  - id: go
    when: event.event == "go"
    cooldown: 1h
    do: [show]
actions:
  show: { sink: s }
`
	seqRules = `
triggers:
  - id: seq
    sequence:
      - type == "track" && event == "A"
      - type == "track" && event == "B"
    within: 1h
    do: [show]
actions:
  show: { sink: s }
`
	seq3Rules = `
triggers:
  - id: seq3
    sequence:
      - type == "track" && event == "A"
      - type == "track" && event == "B"
      - type == "track" && event == "C"
    within: 1h
    do: [show]
actions:
  show: { sink: s }
`
	cartRules = `
triggers:
  - id: cart
    after: type == "track" && (event == "Added" || event == "Both")
    unless: type == "track" && (event == "Ordered" || event == "Both")
    within: 1h
    do: [show]
` + probeTrigger + `
actions:
  show: { sink: s }
`
	quietRules = `
triggers:
  - id: quiet
    inactive: 1d
    do: [show]
actions:
  show: { sink: s }
`
)

type semCase struct {
	name    string // the SPEC sentence or lead decision pinned
	rules   string // without `version: 1`
	events  []string
	until   *time.Duration
	firings []string // every firing, in emission order
	check   func(*testing.T, run)
}

func TestSemantics(t *testing.T) {
	cases := []semCase{
		// --- windows: (now - over, now], now = the contact's latest event time
		{
			name:    "window: an event at exactly now - over is out",
			rules:   countWindow,
			events:  []string{page(0, "/a"), probe(time.Hour)},
			firings: []string{"u1 probe @1h show"},
			check:   wantMessages("0"),
		},
		{
			name:    "window: an event 1ns after now - over is in",
			rules:   countWindow,
			events:  []string{page(ns, "/a"), probe(time.Hour)},
			firings: []string{"u1 probe @1h show"},
			check:   wantMessages("1"),
		},
		{
			name:  "window: counts are exact and move with the latest time",
			rules: countWindow,
			events: []string{page(0, "/a"), page(10*time.Minute, "/b"), page(20*time.Minute, "/c"), probe(30 * time.Minute),
				probe(time.Hour + 10*time.Minute), probe(2 * time.Hour)},
			firings: []string{"u1 probe @30m show", "u1 probe @1h10m show", "u1 probe @2h show"},
			check:   wantMessages("3", "1", "0"),
		},
		{
			name:  "window: late events use their own time against the latest time",
			rules: countWindow,
			events: []string{page(2*time.Hour, "/a"), page(time.Hour, "/late-out"), page(time.Hour+ns, "/late-in"),
				probe(90 * time.Minute)}, // a late probe still sees windows as of the latest time
			firings: []string{"u1 probe @1h30m show"},
			check:   wantMessages("2"),
		},
		{
			name: "window: sum adds a number per matching event; null and non-numbers are not added",
			rules: `
windows:
  cart:
    match: type == "track" && event == "Product Added"
    over: 1d
    sum: properties.price
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ windows.cart }}" }
`,
			events: []string{
				track(0, "Product Added", "properties.price", 10),
				track(time.Hour, "Product Added", "properties.price", 2.5),
				track(2*time.Hour, "Product Added"),
				track(3*time.Hour, "Product Added", "properties.price", "abc"),
				track(4*time.Hour, "Other", "properties.price", 100),
				probe(5 * time.Hour),
				probe(day + 30*time.Minute),
			},
			firings: []string{"u1 probe @5h show", "u1 probe @1d30m show"},
			check:   wantMessages("12.5", "2.5"),
		},
		{
			name: "window: distinct counts distinct values; null is not a value",
			rules: `
windows:
  paths:
    match: type == "page"
    over: 1d
    distinct: properties.path
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ windows.paths }}" }
`,
			events: []string{
				page(0, "/a"), page(time.Minute, "/b"), page(2*time.Minute, "/a"),
				ev(3*time.Minute, "type", "page"), probe(4 * time.Minute),
				probe(day + time.Minute), // /a at 2m and /b at 1m: /b is out
			},
			firings: []string{"u1 probe @4m show", "u1 probe @1d1m show"},
			check:   wantMessages("2", "1"),
		},
		{
			name: "window: at a timer firing windows stay as of the contact's latest event time (SPEC: now is the latest event time)",
			rules: `
windows:
  views:
    match: type == "page"
    over: 20m
triggers:
  - id: later
    after: type == "page"
    within: 30m
    do: [show]
actions:
  show: { sink: s, message: "{{ windows.views }}" }
`,
			events:  []string{page(0, "/a")},
			until:   dur(time.Hour),
			firings: []string{"u1 later @30m show"},
			check:   wantMessages("1"),
		},

		{
			name: "window: at a timer firing the window is not slid to the due time, for either contact",
			rules: `
windows:
  views:
    match: type == "page"
    over: 30m
triggers:
  - id: later
    after: type == "track" && event == "start"
    within: 30m
    do: [show]
actions:
  show: { sink: s, message: "{{ windows.views }}" }
`,
			events:  []string{page(0, "/a"), track(0, "start"), page(ns, "/b", "userId", "u2"), track(0, "start", "userId", "u2")},
			until:   dur(time.Hour),
			firings: []string{"u1 later @30m show", "u2 later @30m show"},
			check:   wantMessages("1", "1"),
		},

		// --- limit: clipped, raw undecayed points, positive only
		{
			name:  "limit: points are clipped to what is left, then none",
			rules: limitRules,
			events: []string{page(0, "/p"), page(time.Hour, "/p"), page(2*time.Hour, "/p"), probe(2 * time.Hour),
				page(3*time.Hour, "/p"), probe(3 * time.Hour)},
			firings: []string{"u1 probe @2h show", "u1 probe @3h show"},
			check:   wantMessages("25", "25"),
		},
		{
			name:  "limit: an award at exactly now - per no longer counts",
			rules: limitRules,
			events: []string{page(0, "/p"), page(time.Hour, "/p"), page(2*time.Hour, "/p"), // 10 + 10 + 5
				page(day-ns, "/p"), probe(day - ns), // (−1ns, 1d−1ns] holds 25
				page(day, "/p"), probe(day), // (0, 1d] holds 15: 10 more
				page(day+time.Hour, "/p"), probe(day + time.Hour)}, // (1h, 1d1h] holds 5 + 10: 10 more
			firings: []string{"u1 probe @23h59m59.999999999s show", "u1 probe @1d show", "u1 probe @1d1h show"},
			check:   wantMessages("25", "35", "45"),
		},
		{
			name: "limit: counts the raw (undecayed) points awarded",
			rules: `
scoring:
  engagement:
    half_life: 1h
    rules:
      - id: pricing
        on: type == "page"
        points: 10
        limit: { points: 20, per: 1d }
triggers:` + probeTrigger + `
actions:
  show: { sink: s }
`,
			events:  []string{page(0, "/p"), page(2*time.Hour, "/p"), page(4*time.Hour, "/p"), probe(4 * time.Hour)},
			firings: []string{"u1 probe @4h show"},
			check: func(t *testing.T, r run) {
				// 10·0.5^4 + 10·0.5^2; the third page (raw 20 already) adds nothing.
				rec := r.Records[0]
				if rec.Engagement != 3.125 || rec.Score != 3.125 || rec.Explain["pricing"] != 3.125 {
					t.Errorf("engagement %v score %v explain %v, want 3.125", rec.Engagement, rec.Score, rec.Explain)
				}
			},
		},
		{
			name: "limit: applies to positive points only; negative points are never clipped",
			rules: `
scoring:
  engagement:
    rules:
      - id: careers
        on: type == "page"
        points: -10
        limit: { points: 15, per: 1d }
      - id: demo
        on: type == "track" && event == "Demo"
        points: 10
        limit: { points: 15, per: 1d }
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ engagement }}" }
`,
			events: []string{page(0, "/careers"), page(time.Minute, "/careers"), page(2*time.Minute, "/careers"),
				track(3*time.Minute, "Demo"), track(4*time.Minute, "Demo"), probe(5 * time.Minute)},
			firings: []string{"u1 probe @5m show"},
			check: all(wantMessages("-15"), func(t *testing.T, r run) {
				if e := r.Records[0].Explain; e["careers"] != -30 || e["demo"] != 15 {
					t.Errorf("explain %v, want careers -30 and demo 15", e)
				}
			}),
		},

		// --- decay: points · 0.5^((t − t0)/half_life), at the action's `at`
		{
			name: "decay: record score, engagement and explain are computed at `at`",
			rules: `
scoring:
  engagement:
    half_life: 1d
    rules:
      - id: demo
        on: type == "track" && event == "Demo"
        points: 40
      - id: careers
        on: type == "page" && properties.path startsWith "/careers"
        points: -15
triggers:
  - id: later
    after: type == "track" && event == "Demo"
    within: 12h
    do: [show]
actions:
  show: { sink: s, message: "{{ score }}" }
`,
			events:  []string{track(0, "Demo"), track(day, "Demo"), page(day, "/careers")},
			until:   dur(day + 12*time.Hour),
			firings: []string{"u1 later @12h show", "u1 later @1d12h show"},
			check: func(t *testing.T, r run) {
				s := math.Sqrt(0.5)
				want := []struct{ score, demo, careers float64 }{
					{round3(40 * s), round3(40 * s), 0},                                        // 28.284
					{round3((40*0.5+40)*s - 15*s), round3((40*0.5 + 40) * s), round3(-15 * s)}, // 31.82
				}
				if len(r.Records) != 2 {
					t.Fatalf("records %v", records(r))
				}
				for i, w := range want {
					rec := r.Records[i]
					if rec.Score != w.score || rec.Engagement != w.score || rec.Fit != 0 ||
						rec.Explain["demo"] != w.demo || rec.Explain["careers"] != w.careers {
						t.Errorf("record %d: score %v engagement %v explain %v; want %v", i, rec.Score, rec.Engagement, rec.Explain, w)
					}
				}
				if r.Records[0].Score != 28.284 || r.Records[0].Message != "28.28" {
					t.Errorf("first record score %v message %q, want 28.284 and \"28.28\"", r.Records[0].Score, r.Records[0].Message)
				}
			},
		},
		{
			name: "decay: points never grow when evaluated before their award time",
			rules: `
scoring:
  engagement:
    half_life: 1d
    rules:
      - id: demo
        on: type == "track" && event == "Demo"
        points: 40
triggers:` + probeTrigger + `
actions:
  show: { sink: s }
`,
			events:  []string{track(day, "Demo"), track(0, "Demo"), probe(0)},
			firings: []string{"u1 probe @0 show"},
			check: func(t *testing.T, r run) {
				// 40 at 1d plus the late 40 at 0 worth 20 at 1d: 60, not more at 0.
				if rec := r.Records[0]; rec.Score != 60 || rec.Explain["demo"] != 60 {
					t.Errorf("score %v explain %v, want 60", rec.Score, rec.Explain)
				}
			},
		},

		// --- fit on traits; identify merges traits, later values win
		{
			name: "fit: points held while a condition on traits is true; identify merges, later wins",
			rules: `
scoring:
  fit:
    rules:
      - id: healthcare
        if: traits.industry == "healthcare"
        points: 15
      - id: large
        if: traits.company_size >= 200
        points: 10
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ fit }} {{ traits.industry }} {{ traits.company_size }} {{ traits.email }}" }
`,
			events: []string{
				probe(0),
				ident(time.Minute, "traits.industry", "healthcare", "traits.company_size", 500, "traits.email", "a@x.com"),
				probe(2 * time.Minute),
				ident(3*time.Minute, "traits.industry", "retail"),
				probe(4 * time.Minute),
				ident(5*time.Minute, "traits.company_size", "big"),
				probe(6 * time.Minute),
			},
			firings: []string{"u1 probe @0 show", "u1 probe @2m show", "u1 probe @4m show", "u1 probe @6m show"},
			check: all(wantMessages("0   ", "25 healthcare 500 a@x.com", "10 retail 500 a@x.com", "0 retail big a@x.com"),
				func(t *testing.T, r run) {
					want := []map[string]float64{{}, {"healthcare": 15, "large": 10}, {"large": 10}, {}}
					for i, w := range want {
						if rec := r.Records[i]; fmt.Sprint(rec.Explain) != fmt.Sprint(w) || rec.Score != rec.Fit {
							t.Errorf("record %d: explain %v score %v fit %v, want explain %v", i, rec.Explain, rec.Score, rec.Fit, w)
						}
					}
				}),
		},

		// --- stages: forward only; set_stage before the actions; later triggers see it
		{
			name: "stages: a contact only moves forward; set_stage shows in the record and in later triggers",
			rules: `
stages: [subscriber, lead, mql, sql]
triggers:
  - id: is-lead
    when: stage == "lead"
    do: [show]
  - id: to-sql
    sequence: ['type == "track" && event == "sql"']
    within: 1s
    set_stage: sql
    do: [show]
  - id: to-lead
    sequence: ['type == "track" && event == "lead"']
    within: 1s
    set_stage: lead
    do: [show]
  - id: is-sql
    when: stage == "sql"
    do: [show]
actions:
  show: { sink: s, message: "{{ stage }}" }
`,
			events: []string{track(0, "lead"), track(time.Minute, "sql"), track(2*time.Minute, "lead")},
			firings: []string{
				"u1 to-lead @0 show",
				"u1 is-lead @1m show", // an earlier trigger saw "lead" only on the next pass
				"u1 to-sql @1m show",
				"u1 is-sql @1m show",
				"u1 to-lead @2m show", // fires, but the stage stays sql
			},
			check: wantMessages("lead", "lead", "sql", "sql", "sql"),
		},

		// --- `when`: edge-triggered, re-armed when false
		{
			name: "when: fires when it turns true, again only after it was false",
			rules: `
scoring:
  engagement:
    rules:
      - id: page
        on: type == "page"
        points: 10
      - id: neg
        on: type == "track" && event == "neg"
        points: -15
triggers:
  - id: hot
    when: score >= 20
    do: [show]
actions:
  show: { sink: s, message: "{{ score }}" }
`,
			events: []string{page(0, "/"), page(time.Minute, "/"), page(2*time.Minute, "/"), track(3*time.Minute, "neg"),
				page(4*time.Minute, "/"), page(5*time.Minute, "/")},
			firings: []string{"u1 hot @1m show", "u1 hot @4m show"},
			check:   wantMessages("20", "25"),
		},
		{
			name: "when: evaluated after a fired timer; one timer's firings in `triggers:` order",
			rules: `
scoring:
  engagement:
    half_life: 1h
    rules:
      - id: page
        on: type == "page"
        points: 10
triggers:
  - id: cooled
    when: score > 0 && score < 5
    do: [show]
  - id: wait
    after: type == "page"
    within: 2h
    do: [show]
actions:
  show: { sink: s, message: "{{ score }}" }
`,
			events:  []string{page(0, "/")},
			until:   dur(2 * time.Hour),
			firings: []string{"u1 cooled @2h show", "u1 wait @2h show"},
			check:   wantMessages("2.5", "2.5"),
		},

		// --- cooldown: suppression, not deferral; runs from the last firing
		{
			name:  "cooldown: an edge inside is suppressed; an edge at exactly last + cooldown fires",
			rules: edgeRules,
			events: []string{track(0, "go"), track(10*time.Minute, "x"), track(30*time.Minute, "go"), track(40*time.Minute, "x"),
				track(time.Hour, "go"), track(61*time.Minute, "x"), track(2*time.Hour-ns, "go")},
			firings: []string{"u1 go @0 show", "u1 go @1h show"},
			check: func(t *testing.T, r run) {
				if r.Stats.SuppressedCooldown != 2 || r.Stats.Firings != 2 || r.Summary.Cooldown != 2 || r.Summary.Suppressed != 0 || r.Summary.Firings != 2 {
					t.Errorf("stats %+v summary %+v", r.Stats, r.Summary)
				}
			},
		},
		{
			name:    "cooldown: a suppressed edge is not deferred",
			rules:   edgeRules,
			events:  []string{track(0, "go"), track(10*time.Minute, "x"), track(30*time.Minute, "go"), track(2*time.Hour, "go")},
			firings: []string{"u1 go @0 show"},
		},
		{
			name: "cooldown: a firing whose actions were all suppressed by a guard still counts",
			rules: `
triggers:
  - id: go
    when: event.event == "go"
    cooldown: 1h
    do: [guarded]
actions:
  guarded: { sink: s, if: traits.ok == true }
`,
			events: []string{track(0, "go"), track(time.Minute, "x"), ident(2*time.Minute, "traits.ok", true),
				track(30*time.Minute, "go"), track(40*time.Minute, "x"), track(time.Hour, "go")},
			firings: []string{"u1 go @0 -", "u1 go @1h guarded"},
			check: all(wantRecords("u1 go/guarded @1h"), func(t *testing.T, r run) {
				if r.Stats.SuppressedGuard != 1 || r.Stats.SuppressedCooldown != 1 || r.Stats.Emitted != 1 {
					t.Errorf("stats %+v", r.Stats)
				}
			}),
		},
		{
			name: "cooldown: a firing whose actions were all capped still counts",
			rules: `
triggers:
  - id: go
    when: event.event == "go"
    cooldown: 1h
    do: [capped]
actions:
  capped: { sink: s, cap: { max: 1, per: 1d } }
`,
			events: []string{track(0, "go"), track(time.Minute, "x"), track(2*time.Hour, "go"), track(2*time.Hour+time.Minute, "x"),
				track(150*time.Minute, "go"), track(160*time.Minute, "x"), track(3*time.Hour, "go")},
			firings: []string{"u1 go @0 capped", "u1 go @2h -", "u1 go @3h -"},
			check: func(t *testing.T, r run) {
				if r.Stats.SuppressedCap != 2 || r.Stats.SuppressedCooldown != 1 || r.Summary.Suppressed != 2 || r.Summary.Cooldown != 1 || r.Summary.Emitted != 1 {
					t.Errorf("stats %+v summary %+v", r.Stats, r.Summary)
				}
			},
		},

		// --- sequences
		{
			name:    "sequence: last - first == within fires, at the completing event's time",
			rules:   seqRules,
			events:  []string{track(0, "A"), track(time.Hour, "B")},
			firings: []string{"u1 seq @1h show"},
			check:   wantRecords("u1 seq/show @1h"),
		},
		{
			name:    "sequence: last - first == within + 1ns does not fire",
			rules:   seqRules,
			events:  []string{track(0, "A"), track(time.Hour+ns, "B")},
			firings: []string{},
		},
		{
			name:    "sequence: steps in the wrong order do not fire",
			rules:   seqRules,
			events:  []string{track(0, "B"), track(time.Minute, "A")},
			firings: []string{},
		},
		{
			name:  "sequence: all partial matches are cleared after firing",
			rules: seqRules,
			events: []string{track(0, "A"), track(time.Minute, "A"), track(2*time.Minute, "B"), track(3*time.Minute, "B"),
				track(4*time.Minute, "A"), track(5*time.Minute, "B")},
			firings: []string{"u1 seq @2m show", "u1 seq @5m show"},
		},
		{
			name:    "sequence: the latest first step counts toward within",
			rules:   seqRules,
			events:  []string{track(0, "A"), track(50*time.Minute, "A"), track(90*time.Minute, "B")},
			firings: []string{"u1 seq @1h30m show"},
		},
		{
			name:  "sequence: three steps in order within, others in between",
			rules: seq3Rules,
			events: []string{track(0, "A"), track(time.Minute, "C"), track(2*time.Minute, "B"), page(3*time.Minute, "/x"),
				track(time.Hour, "C")},
			firings: []string{"u1 seq3 @1h show"},
		},
		{
			name:    "sequence: three steps, last - first over within does not fire",
			rules:   seq3Rules,
			events:  []string{track(0, "A"), track(time.Minute, "B"), track(time.Hour+ns, "C")},
			firings: []string{},
		},
		{
			name:    "sequence: a newer partial match completes when an older one is too old",
			rules:   seq3Rules,
			events:  []string{track(0, "A"), track(10*time.Minute, "B"), track(20*time.Minute, "A"), track(30*time.Minute, "B"), track(75*time.Minute, "C")},
			firings: []string{"u1 seq3 @1h15m show"},
		},
		{
			name:    "sequence: partial matches are per contact",
			rules:   seqRules,
			events:  []string{track(0, "A"), track(time.Minute, "B", "userId", "u2"), track(2*time.Minute, "B")},
			firings: []string{"u1 seq @2m show"},
		},

		// --- absence
		{
			name:    "absence: fires at its due time after.timestamp + within (record at = due)",
			rules:   cartRules,
			events:  []string{track(0, "Added")},
			until:   dur(time.Hour),
			firings: []string{"u1 cart @1h show"},
			check:   wantRecords("u1 cart/show @1h"),
		},
		{
			name:    "absence: not before its due time",
			rules:   cartRules,
			events:  []string{track(0, "Added")},
			until:   dur(time.Hour - ns),
			firings: []string{},
		},
		{
			name:    "absence: each new `after` restarts the wait",
			rules:   cartRules,
			events:  []string{track(0, "Added"), track(30*time.Minute, "Added")},
			until:   dur(3 * time.Hour),
			firings: []string{"u1 cart @1h30m show"},
		},
		{
			name:    "absence: an `unless` before the due time cancels",
			rules:   cartRules,
			events:  []string{track(0, "Added"), track(time.Hour-ns, "Ordered")},
			until:   dur(3 * time.Hour),
			firings: []string{},
		},
		{
			name:    "absence: an `unless` at the due time comes after the firing",
			rules:   cartRules,
			events:  []string{track(0, "Added"), track(time.Hour, "Ordered")},
			firings: []string{"u1 cart @1h show"},
		},
		{
			name:    "absence: a late `unless` (before the due time) cancels",
			rules:   cartRules,
			events:  []string{track(0, "Added"), probe(50 * time.Minute), track(10*time.Minute, "Ordered")},
			until:   dur(3 * time.Hour),
			firings: []string{"u1 probe @50m show"},
		},
		{
			name:    "absence: an `unless` with nothing pending does nothing",
			rules:   cartRules,
			events:  []string{track(0, "Ordered"), track(10*time.Minute, "Added")},
			until:   dur(3 * time.Hour),
			firings: []string{"u1 cart @1h10m show"},
		},
		{
			name:    "absence: an event matching both `unless` and `after` cancels, then restarts",
			rules:   cartRules,
			events:  []string{track(0, "Added"), track(30*time.Minute, "Both")},
			until:   dur(3 * time.Hour),
			firings: []string{"u1 cart @1h30m show"},
		},
		{
			name:    "absence: timers are per contact",
			rules:   cartRules,
			events:  []string{track(0, "Added"), track(10*time.Minute, "Ordered", "userId", "u2")},
			until:   dur(3 * time.Hour),
			firings: []string{"u1 cart @1h show"},
		},
		{
			name:    "absence: a late `after` whose due time has passed fires at once, at its due time",
			rules:   cartRules,
			events:  []string{probe(3 * time.Hour), track(0, "Added"), probe(3 * time.Hour)},
			firings: []string{"u1 probe @3h show", "u1 cart @1h show", "u1 probe @3h show"},
		},

		// --- the replay clock and timer order
		{
			name:    "clock: a timer fires before the event that moves the clock past its due time",
			rules:   cartRules,
			events:  []string{track(0, "Added"), probe(2*time.Hour, "userId", "u2")},
			firings: []string{"u1 cart @1h show", "u2 probe @2h show"},
			check:   wantRecords("u1 cart/show @1h", "u2 probe/show @2h"),
		},
		{
			name:    "clock: a timer fires before an event at exactly its due time",
			rules:   cartRules,
			events:  []string{track(0, "Added"), probe(time.Hour)},
			firings: []string{"u1 cart @1h show", "u1 probe @1h show"},
		},
		{
			name:    "clock: a late event does not move the clock",
			rules:   cartRules,
			events:  []string{probe(30 * time.Minute), track(0, "Added"), probe(59*time.Minute, "userId", "u2"), probe(10*time.Minute, "userId", "u2")},
			firings: []string{"u1 probe @30m show", "u2 probe @59m show", "u2 probe @10m show"},
		},
		{
			name:    "clock: without --until a timer due after the last event does not fire",
			rules:   cartRules,
			events:  []string{track(0, "Added"), probe(59 * time.Minute)},
			firings: []string{"u1 probe @59m show"},
		},
		{
			name:    "clock: with --until it fires",
			rules:   cartRules,
			events:  []string{track(0, "Added"), probe(59 * time.Minute)},
			until:   dur(day),
			firings: []string{"u1 probe @59m show", "u1 cart @1h show"},
		},
		{
			name: "clock: timers fire in due-time order",
			rules: `
triggers:
  - id: slow
    after: type == "track" && event == "Added"
    within: 1h
    do: [show]
  - id: quick
    after: type == "track" && event == "Added"
    within: 30m
    do: [show]
` + probeTrigger + `
actions:
  show: { sink: s }
`,
			events:  []string{track(0, "Added"), probe(2*time.Hour, "userId", "u2")},
			firings: []string{"u1 quick @30m show", "u1 slow @1h show", "u2 probe @2h show"},
		},
		{
			name: "clock: timers due at the same time fire in the order they were set",
			rules: `
triggers:
  - id: a
    after: type == "track" && event == "a"
    within: 30m
    do: [show]
  - id: b
    after: type == "track" && event == "b"
    within: 1h
    do: [show]
actions:
  show: { sink: s }
`,
			events:  []string{track(0, "b", "userId", "u2"), track(0, "b"), track(30*time.Minute, "a"), track(20*time.Minute, "a", "userId", "u3")},
			until:   dur(2 * time.Hour),
			firings: []string{"u3 a @50m show", "u2 b @1h show", "u1 b @1h show", "u1 a @1h show"},
		},

		// --- inactive: from the contact's latest event time
		{
			name:    "inactive: fires `inactive` after the contact's last event",
			rules:   quietRules,
			events:  []string{page(0, "/"), page(12*time.Hour, "/")},
			until:   dur(3 * day),
			firings: []string{"u1 quiet @1d12h show"},
		},
		{
			name:    "inactive: not a nanosecond before",
			rules:   quietRules,
			events:  []string{page(0, "/")},
			until:   dur(day - ns),
			firings: []string{},
		},
		{
			name:    "inactive: a late event does not move the last event time",
			rules:   quietRules,
			events:  []string{page(0, "/"), page(12*time.Hour, "/"), page(-time.Hour, "/")},
			until:   dur(3 * day),
			firings: []string{"u1 quiet @1d12h show"},
		},
		{
			name:    "inactive: a late event after the firing does not fire it again",
			rules:   quietRules,
			events:  []string{page(0, "/"), page(2*day, "/", "userId", "u2"), page(-time.Hour, "/")},
			firings: []string{"u1 quiet @1d show"},
		},
		{
			name:    "inactive: a new event after the firing starts a new wait",
			rules:   quietRules,
			events:  []string{page(0, "/"), page(2*day, "/", "userId", "u2"), page(2*day, "/")},
			until:   dur(4 * day),
			firings: []string{"u1 quiet @1d show", "u2 quiet @3d show", "u1 quiet @3d show"},
		},

		// --- messageId dedupe, per contact
		{
			name:  "messageId: a repeat already applied to the contact is ignored; other contacts are separate",
			rules: countWindow,
			events: []string{
				page(0, "/a", "messageId", "m1"),
				page(time.Minute, "/b", "messageId", "m1"), // repeat: ignored, whatever it holds
				page(time.Minute, "/a", "messageId", "m1", "userId", "u2"),
				probe(2*time.Minute, "messageId", "p1"),
				probe(3*time.Minute, "messageId", "p1"),
				probe(4*time.Minute, "userId", "u2"),
			},
			firings: []string{"u1 probe @2m show", "u2 probe @4m show"},
			check: all(wantMessages("1", "1"), func(t *testing.T, r run) {
				if r.Stats.Duplicates != 2 || r.Stats.Applied != 4 || r.Summary.Duplicates != 2 || r.Summary.Applied != 4 || r.Summary.Contacts != 2 {
					t.Errorf("stats %+v summary %+v", r.Stats, r.Summary)
				}
			}),
		},

		// --- order: `triggers:` order, then each trigger's `do` in order
		{
			name: "order: firings of one event in `triggers:` order, each trigger's `do` in order",
			rules: `
triggers:
  - id: zeta
    sequence: ['event == "go"']
    within: 1s
    do: [b, a]
  - id: alpha
    when: event.event == "go"
    do: [a]
  - id: mid
    sequence: ['event == "go"']
    within: 1s
    do: [c, a, b]
actions:
  a: { sink: s }
  b: { sink: s }
  c: { sink: s }
`,
			events:  []string{track(0, "go")},
			firings: []string{"u1 zeta @0 b,a", "u1 alpha @0 a", "u1 mid @0 c,a,b"},
			check:   wantRecords("u1 zeta/b @0", "u1 zeta/a @0", "u1 alpha/a @0", "u1 mid/c @0", "u1 mid/a @0", "u1 mid/b @0"),
		},

		// --- caps
		{
			name: "cap: at most max per `per` (by event time); suppressed actions are counted",
			rules: `
triggers:` + probeTrigger + `
actions:
  show: { sink: s, cap: { max: 2, per: 1d } }
`,
			events: []string{probe(0), probe(time.Hour), probe(2 * time.Hour), probe(day), probe(day + 30*time.Minute),
				probe(day + time.Hour)},
			firings: []string{"u1 probe @0 show", "u1 probe @1h show", "u1 probe @2h -", "u1 probe @1d show", "u1 probe @1d30m -",
				"u1 probe @1d1h show"},
			check: func(t *testing.T, r run) {
				if r.Stats.SuppressedCap != 2 || r.Stats.Emitted != 4 || r.Summary.Suppressed != 2 || r.Summary.Emitted != 4 || r.Summary.Firings != 6 {
					t.Errorf("stats %+v summary %+v", r.Stats, r.Summary)
				}
			},
		},
		{
			name: "cap: per contact",
			rules: `
triggers:` + probeTrigger + `
actions:
  show: { sink: s, cap: { max: 1, per: 1d } }
`,
			events:  []string{probe(0), probe(time.Minute, "userId", "u2"), probe(2 * time.Minute)},
			firings: []string{"u1 probe @0 show", "u2 probe @1m show", "u1 probe @2m -"},
		},

		// --- route and sinks
		{
			name: "route: the sink picked by a trait, else the default sink",
			rules: `
triggers:` + probeTrigger + `
actions:
  show:
    sink: sales
    route: { by: traits.region, to: { emea: sales-emea, apac: sales-apac } }
`,
			events: []string{
				ident(0, "traits.region", "emea"), probe(time.Minute),
				ident(0, "traits.region", "apac", "userId", "u2"), probe(time.Minute, "userId", "u2"),
				ident(0, "traits.region", "us", "userId", "u3"), probe(time.Minute, "userId", "u3"),
				probe(time.Minute, "userId", "u4"),
				ident(0, "traits.region", 5, "userId", "u5"), probe(time.Minute, "userId", "u5"),
			},
			firings: []string{"u1 probe @1m show", "u2 probe @1m show", "u3 probe @1m show", "u4 probe @1m show", "u5 probe @1m show"},
			check: func(t *testing.T, r run) {
				var got []string
				for _, rec := range r.Records {
					got = append(got, rec.Sink)
				}
				sameStrings(t, "sinks", got, []string{"sales-emea", "sales-apac", "sales", "sales", "sales"})
			},
		},

		// --- message templates
		{
			name: "message: holes are contact expressions; null renders as nothing",
			rules: `
scoring:
  engagement:
    rules:
      - id: demo
        on: type == "track" && event == "Demo"
        points: 25
triggers:
  - id: hot
    when: score >= 20
    do: [sales-alert]
actions:
  sales-alert:
    sink: sales
    message: "Hot lead {{ traits.email }} scored {{ score }} ({{ trigger }})"
`,
			events: []string{ident(0, "traits.email", "ann@example.com"), track(time.Minute, "Demo"),
				track(time.Minute, "Demo", "userId", "u2")},
			firings: []string{"u1 hot @1m sales-alert", "u2 hot @1m sales-alert"},
			check:   wantMessages("Hot lead ann@example.com scored 25 (hot)", "Hot lead  scored 25 (hot)"),
		},
		{
			name: "message: an optional group [[ ]] is left out when a hole in it is empty; ?? gives a default",
			rules: `
scoring:
  engagement:
    rules:
      - id: demo
        on: type == "track" && event == "Demo"
        points: 25
triggers:
  - id: hot
    when: score >= 20
    do: [sales-alert]
actions:
  sales-alert:
    sink: sales
    message: "{{ traits.email ?? contact }}[[, {{ traits.title }}]][[ at {{ traits.company }}]][[ ({{ traits.company_size }} people)]]; region {{ traits.region ?? \"?\" }}"
`,
			events: []string{
				ident(0, "traits.email", "ann@example.com", "traits.title", "CTO", "traits.company", "Acme", "traits.company_size", "40"),
				track(time.Minute, "Demo"),
				ident(0, "userId", "u2", "traits.company", "Globex", "traits.title", ""),
				track(time.Minute, "Demo", "userId", "u2"),
				track(time.Minute, "Demo", "userId", "u3"),
			},
			firings: []string{"u1 hot @1m sales-alert", "u2 hot @1m sales-alert", "u3 hot @1m sales-alert"},
			check: wantMessages(
				"ann@example.com, CTO at Acme (40 people); region ?",
				"u2 at Globex; region ?", // an empty string is missing too
				"u3; region ?"),
		},

		// --- names of contact and event conditions
		{
			name: "names: a contact condition sees score, fit, engagement, windows, traits, stage and event",
			rules: `
windows:
  views:
    match: type == "page"
    over: 1d
scoring:
  engagement:
    rules:
      - id: page
        on: type == "page"
        points: 3
  fit:
    rules:
      - id: big
        if: traits.size >= 100
        points: 7
stages: [lead, mql]
triggers:
  - id: up
    sequence: ['type == "track" && event == "up"']
    within: 1s
    set_stage: mql
    do: [show]
actions:
  show:
    sink: s
    message: "{{ score }}|{{ fit }}|{{ engagement }}|{{ windows.views }}|{{ traits.size }}|{{ stage }}|{{ event.event }}|{{ event.properties.plan }}|{{ event.type }}|{{ trigger }}|{{ action }}|{{ contact }}|{{ id }}"
`,
			events: []string{ident(0, "traits.size", 150), page(time.Minute, "/a"), page(2*time.Minute, "/b"),
				track(3*time.Minute, "up", "properties.plan", "pro")},
			firings: []string{"u1 up @3m show"},
			check:   wantMessages("13|7|6|2|150|mql|up|pro|track|up|show|u1|u1"),
		},
		{
			name: "names: `contact` in an event condition is the contact before the event",
			rules: `
windows:
  views:
    match: type == "page"
    over: 1d
scoring:
  engagement:
    rules:
      - id: page
        on: type == "page"
        points: 10
      - id: first-visit
        on: type == "page" && contact.windows.views == 0
        points: 5
      - id: loyal
        on: type == "page" && contact.engagement >= 15
        points: 1
stages: [lead, mql]
triggers:
  - id: upgraded
    sequence: ['type == "identify" && traits.plan == "pro" && contact.traits.plan != "pro"']
    within: 1s
    do: [show]
  - id: first-mql
    sequence: ['type == "track" && event == "mql" && contact.stage != "mql"']
    within: 1s
    set_stage: mql
    do: [show]
` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ engagement }} {{ traits.plan }} {{ stage }}" }
`,
			events: []string{
				page(0, "/"), page(time.Minute, "/"), page(2*time.Minute, "/"), // 15, 26, 37
				ident(3*time.Minute, "traits.plan", "free"),
				ident(4*time.Minute, "traits.plan", "pro"), // upgraded
				ident(5*time.Minute, "traits.plan", "pro"), // not again
				track(6*time.Minute, "mql"), track(7*time.Minute, "mql"),
				probe(8 * time.Minute),
			},
			firings: []string{"u1 upgraded @4m show", "u1 first-mql @6m show", "u1 probe @8m show"},
			check:   wantMessages("37 pro ", "37 pro mql", "37 pro mql"),
		},

		// --- null safety in event conditions; `on` is a plain key
		{
			name: "missing fields: never an error, null compares as null",
			rules: `
windows:
  priced:
    match: properties.price > 5 || properties.path startsWith "/p" || context.campaign.source == "ads"
    over: 1d
scoring:
  engagement:
    rules:
      - { id: flow-on, on: 'properties.plan matches "^pro" || traits.title contains "VP"', points: 1 }
      - id: no-coupon
        on: type == "track" && properties.coupon != true
        points: 2
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ windows.priced }} {{ engagement }} {{ traits.nothing.deeper }}" }
`,
			events: []string{
				ev(0, "type", "track", "event", "x"),
				ev(time.Minute, "type", "page"),
				ev(2*time.Minute, "type", "track", "event", "x", "properties.price", 9, "properties.coupon", true),
				ev(3*time.Minute, "type", "page", "context.campaign.source", "ads"),
				ev(4*time.Minute, "type", "identify", "traits.title", "VP Sales"),
				ev(5*time.Minute, "type", "page", "properties.plan", "pro-annual", "properties.price", "expensive"),
				probe(6 * time.Minute),
			},
			firings: []string{"u1 probe @6m show"},
			// priced: the 9 and the ads page; engagement: 2 (x) + 1 (VP) + 1 (pro) + 2 (probe).
			check: wantMessages("2 6 "),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := play(t, c.rules, c.events, c.until)
			sameStrings(t, "firings", firings(r), c.firings)
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// TestGuardNulls pins the null semantics of SPEC §2 on action guards: a
// missing field is null, `==`/`!=` compare with null as usual, and ordering
// comparisons and string tests on null (or on the wrong type) are false.
func TestGuardNulls(t *testing.T) {
	const none = ""
	cases := []struct {
		guard  string
		traits string // an identify's traits as JSON, "" for none
		emit   bool
	}{
		{`traits.unsubscribed != true`, none, true},
		{`traits.unsubscribed != true`, `{"unsubscribed": true}`, false},
		{`traits.unsubscribed != true`, `{"unsubscribed": false}`, true},
		{`traits.unsubscribed == true`, none, false},
		{`traits.unsubscribed == nil`, none, true},
		{`traits.a.b.c == nil`, none, true},
		{`traits.a.b.c != 1`, `{"a": {"b": 3}}`, true},
		{`traits.age >= 18`, none, false},
		{`traits.age < 18`, none, false},
		{`traits.age > 18`, none, false},
		{`traits.age <= 18`, none, false},
		{`!(traits.age < 18)`, none, true},
		{`traits.age >= 18`, `{"age": 20}`, true},
		{`traits.age >= 18`, `{"age": "twenty"}`, false},
		{`traits.age < 18`, `{"age": "twenty"}`, false},
		{`traits.email startsWith "ann"`, none, false},
		{`traits.email endsWith "example.com"`, none, false},
		{`traits.email contains "@"`, none, false},
		{`traits.email matches "@"`, none, false},
		{`not (traits.email contains "@")`, none, true},
		{`traits.email endsWith "example.com"`, `{"email": "ann@example.com"}`, true},
		{`traits.email contains "@"`, `{"email": 42}`, false},
		{`traits.email matches "^ann@"`, `{"email": "ann@example.com"}`, true},
		{`event.properties.missing.deep != 1`, none, true},
		{`event.properties.nothing == nil`, none, true},
		{`windows.views >= 0 && stage == "" && score == 0`, none, true},
	}
	for _, c := range cases {
		t.Run(c.guard+" "+c.traits, func(t *testing.T) {
			src := `
windows:
  views: { match: type == "page", over: 1d }
triggers:` + probeTrigger + `
actions:
  show:
    sink: s
    if: '` + c.guard + `'
`
			var events []string
			if c.traits != "" {
				var tr map[string]any
				if err := json.Unmarshal([]byte(c.traits), &tr); err != nil {
					t.Fatal(err)
				}
				events = append(events, ev(0, "type", "identify", "traits", tr))
			}
			events = append(events, probe(time.Minute))
			r := play(t, src, events, nil)
			want := []string{"u1 probe @1m -"}
			guarded := uint64(1)
			if c.emit {
				want, guarded = []string{"u1 probe @1m show"}, 0
			}
			sameStrings(t, "firings", firings(r), want)
			if r.Stats.SuppressedGuard != guarded {
				t.Errorf("SuppressedGuard = %d, want %d", r.Stats.SuppressedGuard, guarded)
			}
		})
	}
}

// TestWhenNames pins the names a `when` sees and that it is evaluated after
// every applied event.
func TestWhenNames(t *testing.T) {
	const src = `
windows:
  views: { match: type == "page", over: 1d }
  spend: { match: type == "track", over: 1d, sum: properties.price }
scoring:
  engagement:
    half_life: 1d
    rules:
      - { id: page, on: type == "page", points: 10 }
  fit:
    rules:
      - { id: hc, if: traits.industry == "healthcare", points: 15 }
stages: [lead, mql]
triggers:
  - id: t
    when: WHEN
    do: [show]
  - id: mql
    sequence: ['event == "mql"']
    within: 1s
    set_stage: mql
    do: [show]
actions:
  show: { sink: s }
`
	events := []string{
		ident(0, "traits.industry", "healthcare"),
		page(time.Minute, "/a"),
		track(2*time.Minute, "buy", "properties.price", 12.5),
		track(3*time.Minute, "mql"),
		page(4*time.Minute, "/b"),
	}
	cases := []struct {
		when string
		at   []string // offsets of the `t` firings
	}{
		{`score >= 25`, []string{"1m", "4m"}}, // decay makes it false at 2m
		{`fit == 15`, []string{"0"}},
		{`engagement > 0`, []string{"1m"}},
		{`windows.views >= 2`, []string{"4m"}},
		{`windows.spend > 12`, []string{"2m"}},
		{`traits.industry == "healthcare"`, []string{"0"}},
		{`stage == "mql"`, []string{"4m"}},             // `t` comes before `mql` in the file: it sees the stage on the next pass
		{`event.type == "page"`, []string{"1m", "4m"}}, // false on other events: re-armed
		{`event.properties.price == 12.5`, []string{"2m"}},
		{`stage startsWith "mq" && stage in ["mql"]`, []string{"4m"}},
		{`event.event startsWith "m" || event.properties.price > 12`, []string{"2m"}},
		{`traits.missing >= 1 || event.properties.nope startsWith "x"`, nil},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			r := play(t, strings.Replace(src, "WHEN", "'"+c.when+"'", 1), events, nil)
			var got []string
			for _, f := range r.Firings {
				if f.Trigger == "t" {
					got = append(got, fmtOff(f.At))
				}
			}
			sameStrings(t, "`t` firings at", got, c.at)
		})
	}
}

// TestUnlessBeforeDue pins, at the evaluator, that an `unless` cancels only
// if its timestamp is before the due time (the replay clock fires a timer
// before an event at its due time is applied, so the engine cannot show it).
func TestUnlessBeforeDue(t *testing.T) {
	rs := mustParse(t, cartRules)
	for _, c := range []struct {
		unless time.Duration
		fired  bool
	}{
		{time.Hour - ns, false},
		{time.Hour, true},
		{time.Hour + ns, true},
	} {
		t.Run(c.unless.String(), func(t *testing.T) {
			x := rs.NewEvaluator()
			ct := state.New("u1")
			x.Apply(ct, decode(t, track(0, "Added")))
			x.Apply(ct, decode(t, track(c.unless, "Ordered")))
			res := x.Fire(ct, rs.TriggerIndex("cart"), base.Add(time.Hour).UnixNano())
			if res.Fired != c.fired || len(res.Records) != map[bool]int{true: 1, false: 0}[c.fired] {
				t.Errorf("Fired = %v with %d records, want %v", res.Fired, len(res.Records), c.fired)
			}
		})
	}
}

func decode(t *testing.T, line string) *event.Event {
	t.Helper()
	e, err := event.Decode([]byte(line), event.JSON, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestActionIDs pins deterministic ids: sha256 over contact, trigger,
// action, cause (the contact's event sequence number, or "t" and the timer's
// due time) and `at`, each NUL-terminated; the first 16 bytes in hex.
func TestActionIDs(t *testing.T) {
	src := cartRules + `  other: { sink: s }
`
	src = strings.Replace(src, "do: [show]\n\n", "do: [show, other]\n\n", 1)
	events := []string{track(0, "Added"), probe(10 * time.Minute), probe(10 * time.Minute)}
	a := play(t, src, events, dur(2*time.Hour))
	b := play(t, src, events, dur(2*time.Hour))
	if len(a.Records) != 4 {
		t.Fatalf("records %v", records(a))
	}
	id := func(contact, trigger, action, cause string, at time.Duration) string {
		h := sha256.New()
		for _, s := range []string{contact, trigger, action, cause, strconv.FormatInt(base.Add(at).UnixNano(), 10)} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		return hex.EncodeToString(h.Sum(nil)[:16])
	}
	due := strconv.FormatInt(base.Add(time.Hour).UnixNano(), 10)
	want := []string{
		id("u1", "probe", "show", "e2", 10*time.Minute),
		id("u1", "probe", "show", "e3", 10*time.Minute), // same time, another event: another id
		id("u1", "cart", "show", "t"+due, time.Hour),
		id("u1", "cart", "other", "t"+due, time.Hour), // another action of the same firing
	}
	seen := map[string]bool{}
	for i, rec := range a.Records {
		if rec.ID != want[i] || b.Records[i].ID != rec.ID {
			t.Errorf("record %d (%s/%s): id %s, again %s; want %s", i, rec.Trigger, rec.Action, rec.ID, b.Records[i].ID, want[i])
		}
		if seen[rec.ID] {
			t.Errorf("id %s repeated", rec.ID)
		}
		seen[rec.ID] = true
	}
	// Other contacts' events do not change a contact's ids.
	c := play(t, src, []string{probe(0, "userId", "u2"), track(0, "Added"), probe(5*time.Minute, "userId", "u2"),
		probe(10 * time.Minute), probe(10 * time.Minute)}, dur(2*time.Hour))
	var got []string
	for _, rec := range c.Records {
		if rec.Contact == "u1" {
			got = append(got, rec.ID)
		}
	}
	sameStrings(t, "u1 ids with u2 interleaved", got, want)
}

// TestReplayBadInput pins that every kind of bad input is reported on stderr
// with its line number and skipped, never fatal and never blocking.
func TestReplayBadInput(t *testing.T) {
	rs := mustParse(t, countWindow)
	lines := []string{
		page(0, "/a"),
		`{not json`,
		`[1, 2]`,
		`{"userId": "u1", "timestamp": "` + ts(time.Minute) + `"}`,
		`{"type": "bogus", "userId": "u1", "timestamp": "` + ts(time.Minute) + `"}`,
		`{"type": "page", "timestamp": "` + ts(time.Minute) + `"}`,
		`{"type": "page", "userId": "u1", "timestamp": "yesterday"}`,
		`{"type": "page", "userId": "u1"}`,
		`{"type": "page", "userId": "u1", "properties": "not an object", "timestamp": "` + ts(time.Minute) + `"}`,
		``,
		page(2*time.Minute, "/b"),
		probe(3 * time.Minute),
	}
	var out, errs bytes.Buffer
	sum, err := engine.Replay(context.Background(), rs, strings.NewReader(strings.Join(lines, "\n")), engine.ReplayOptions{Out: &out, Errs: &errs})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	wantPrefixes := []string{
		"line 2: malformed: ",
		"line 3: malformed: ",
		"line 4: no_type: ",
		"line 5: unknown_type: ",
		"line 6: no_contact: ",
		"line 7: bad_time: ",
		"line 8: bad_time: ",
		"line 9: malformed: ",
	}
	got := strings.Split(strings.TrimSuffix(errs.String(), "\n"), "\n")
	if len(got) != len(wantPrefixes) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(got), len(wantPrefixes), errs.String())
	}
	for i, p := range wantPrefixes {
		if !strings.HasPrefix(got[i], p) {
			t.Errorf("stderr line %d = %q, want prefix %q", i+1, got[i], p)
		}
	}
	if sum.Lines != 12 || sum.Bad != 8 || sum.Applied != 3 || sum.Emitted != 1 ||
		fmt.Sprint(sum.BadReasons) != "map[bad_time:2 malformed:3 no_contact:1 no_type:1 unknown_type:1]" {
		t.Errorf("summary %+v", sum)
	}
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if rec["message"] != "2" {
		t.Errorf("the good events around bad lines were not all applied: %v", rec)
	}
}

// TestReplayRecordShape pins the fields of an action line (SPEC §3).
func TestReplayRecordShape(t *testing.T) {
	rs := mustParse(t, `
scoring:
  engagement:
    rules:
      - { id: page, on: type == "page", points: 1.23456 }
  fit:
    rules:
      - { id: hc, if: traits.industry == "healthcare", points: 15 }
stages: [lead]
triggers:
  - id: go
    sequence: ['type == "page"']
    within: 1s
    set_stage: lead
    do: [show]
actions:
  show: { sink: s, message: "hi {{ score }}" }
`)
	in := ident(0, "traits.industry", "healthcare") + "\n" + page(time.Second+500*time.Millisecond, "/") + "\n"
	var out bytes.Buffer
	if _, err := engine.Replay(context.Background(), rs, strings.NewReader(in), engine.ReplayOptions{Out: &out}); err != nil {
		t.Fatal(err)
	}
	rec := map[string]any{}
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	delete(rec, "id")
	got, _ := json.Marshal(rec)
	want := `{"action":"show","at":"2026-03-02T09:00:01.5Z","contact":"u1","engagement":1.235,"explain":{"hc":15,"page":1.235},"fit":15,"message":"hi 16.23","score":16.235,"sink":"s","stage":"lead","trigger":"go"}`
	if string(got) != want {
		t.Errorf("action line\ngot  %s\nwant %s", got, want)
	}
}

// TestRulesTestsCompareFirings pins `leadpulse rules test`: the firings,
// including those whose actions were all suppressed, compared in order.
func TestRulesTestsCompareFirings(t *testing.T) {
	rs := mustParse(t, `
triggers:
  - id: cart
    after: type == "track" && event == "Added"
    within: 1h
    do: [remind]
actions:
  remind: { sink: email, if: traits.unsubscribed != true }
tests:
  - name: suppressed firing still listed
    events:
      - { type: identify, userId: u1, traits: { unsubscribed: true }, timestamp: "2026-03-02T09:00:00Z" }
      - { type: track, userId: u1, event: Added, timestamp: "2026-03-02T09:00:00Z" }
    until: "2026-03-02T12:00:00Z"
    expect:
      - { trigger: cart, contact: u1, at: "2026-03-02T10:00:00Z" }
  - name: no until, no firing
    events:
      - { type: track, userId: u1, event: Added, timestamp: "2026-03-02T09:00:00Z" }
    expect: []
  - name: wrong expectation fails
    events:
      - { type: track, userId: u1, event: Added, timestamp: "2026-03-02T09:00:00Z" }
    until: "2026-03-02T12:00:00Z"
    expect:
      - { trigger: cart, contact: u1, at: "2026-03-02T10:00:00Z", action: remind }
      - { trigger: cart, contact: u1 }
`)
	res := engine.RunTests(context.Background(), rs)
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	if !res[0].Passed() || !res[1].Passed() {
		t.Errorf("passing tests failed: %v / %v", res[0].Errors, res[1].Errors)
	}
	if res[2].Passed() || len(res[2].Errors) != 1 || !strings.Contains(res[2].Errors[0], "firings differ") ||
		!strings.Contains(res[2].Errors[0], "trigger=cart contact=u1 at=2026-03-02T10:00:00Z actions=remind") {
		t.Errorf("failing test: %q", res[2].Errors)
	}
	if len(res[0].Got) != 1 || len(res[0].Got[0].Actions) != 0 {
		t.Errorf("got %+v", res[0].Got)
	}
}

// TestEventConditions pins the expr syntax of event conditions on the
// event's top-level and nested fields (SPEC §2: conditions are expressions
// in the syntax of github.com/expr-lang/expr).
func TestEventConditions(t *testing.T) {
	events := []string{
		ev(0, "type", "page", "name", "Pricing", "properties.path", "/pricing/plans", "properties.price", 5),
		track(time.Minute, "Product Added", "properties.price", 12.5, "properties.tags", []string{"a", "b"}),
		track(2*time.Minute, "Order Completed", "context.campaign", "spring"),
		ident(3*time.Minute, "traits.email", "ann@example.com"),
	}
	cases := []struct {
		match string
		count int
	}{
		{`type == "page"`, 1},
		{`type != "page"`, 4},
		{`type startsWith "p"`, 1},
		{`type in ["track", "identify"]`, 3},
		{`event contains "Added"`, 1},
		{`event endsWith "Completed"`, 1},
		{`event matches "^(Product|Order) "`, 2},
		{`name == "Pricing"`, 1},
		{`userId == "u1" && anonymousId == ""`, 5},
		{`properties.path startsWith "/pricing"`, 1},
		{`properties.price > 10`, 1},
		{`properties.price >= 5 && properties.price < 13`, 2},
		{`properties.price * 2 > 20`, 1},
		{`(properties.price ?? 0) > 1`, 2},
		{`properties.path in ["/pricing/plans", "/x"]`, 1},
		{`"a" in properties.tags`, 1},
		{`len(properties) >= 1`, 2},
		{`context.campaign == "spring"`, 1},
		{`traits.email endsWith "@example.com"`, 1},
		{`type == "track" and not (event contains "Order")`, 1},
		{`timestamp > date("2026-03-02T09:00:30Z")`, 4},
	}
	for _, c := range cases {
		t.Run(c.match, func(t *testing.T) {
			src := `
windows:
  w: { match: '` + c.match + `', over: 1d }
triggers:
  - { id: probe, sequence: ['type == "screen"'], within: 1s, do: [show] }
actions:
  show: { sink: s, message: "{{ windows.w }}" }
`
			// The window counts the screen event too: it is applied first.
			r := play(t, src, append(events, ev(4*time.Minute, "type", "screen")), nil)
			sameStrings(t, "messages", messages(r), []string{strconv.Itoa(c.count)})
		})
	}
}
