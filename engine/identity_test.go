package engine_test

// These tests pin SPEC §6 (identity: links, merge, conflicts, blocked ids)
// bullet by bullet, through the one engine path: a Partition with a memory
// link table, and Replay over the same lines, whose output must be the same.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// as makes an event's ids: as("U", "A") carries userId U and anonymousId A;
// an empty id is absent (null).
func as(user, anon string) []any {
	var u, a any
	if user != "" {
		u = user
	}
	if anon != "" {
		a = anon
	}
	return []any{"userId", u, "anonymousId", a}
}

func withIDs(ids []any, kv ...any) []any { return append(slices.Clone(ids), kv...) }

// idRun is what playID produced, with the partition for inspection.
type idRun struct {
	run
	p     *engine.Partition
	store *state.Memory
	links *state.MemoryLinks
	bad   []string // Replay's bad lines
}

// playID drives the lines through a Partition with a memory link table and
// through Replay, and fails unless both emit the same records and find the
// same bad lines.
func playID(t *testing.T, src string, lines []string, until *time.Duration) idRun {
	t.Helper()
	ctx := context.Background()
	rs := mustParse(t, src)
	r := idRun{store: state.NewMemory(), links: state.NewMemoryLinks()}
	r.p = engine.NewPartition(rs, r.store, func(res *rules.Result) {
		r.Records = append(r.Records, res.Records...)
		for _, f := range res.Firings {
			f.Actions = append([]string(nil), f.Actions...)
			r.Firings = append(r.Firings, f)
		}
	})
	r.p.UseLinks(r.links)
	var partBad []string
	for i, line := range lines {
		e, err := event.Decode([]byte(line), event.JSON, 0)
		if err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if err := r.p.Apply(ctx, e); err != nil {
			if event.ReasonOf(err) == "" {
				t.Fatalf("event %d: Apply: %v", i+1, err)
			}
			partBad = append(partBad, string(event.ReasonOf(err)))
		}
	}
	var untilNs int64
	end := r.p.Clock()
	if until != nil {
		untilNs = base.Add(*until).UnixNano()
		end = untilNs
	}
	if end != state.NoTime {
		if err := r.p.Advance(ctx, end); err != nil {
			t.Fatalf("Advance: %v", err)
		}
	}
	r.Stats = *r.p.Stats()

	var out, errs bytes.Buffer
	sum, err := engine.Replay(ctx, rs, strings.NewReader(strings.Join(lines, "\n")+"\n"),
		engine.ReplayOptions{Until: untilNs, Out: &out, Errs: &errs})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(errs.String()), "\n") {
		if l != "" {
			r.bad = append(r.bad, l)
		}
	}
	if len(r.bad) != len(partBad) {
		t.Fatalf("Replay found %d bad lines, the partition %d:\n%s", len(r.bad), len(partBad), errs.String())
	}
	var want bytes.Buffer
	for i := range r.Records {
		b, _ := json.Marshal(&r.Records[i])
		want.Write(b)
		want.WriteByte('\n')
	}
	if out.String() != want.String() {
		t.Fatalf("Replay and Partition disagree:\nreplay:\n%s\npartition:\n%s", out.String(), want.String())
	}
	r.Summary = sum
	if sum.Links != r.Stats.Links || sum.Merges != r.Stats.Merges || sum.Conflicts["merged_elsewhere"]+sum.Conflicts["known"]+sum.Conflicts["max_anonymous"] != r.Stats.ConflictsTotal() {
		t.Fatalf("Replay's summary counts %d links, %d merges, %v conflicts; the partition %d, %d, %v",
			sum.Links, sum.Merges, sum.Conflicts, r.Stats.Links, r.Stats.Merges, r.Stats.Conflicts)
	}
	return r
}

// contact returns the stored contact, or nil.
func (r idRun) contact(id string) *state.Contact {
	var found *state.Contact
	r.store.Range(func(c *state.Contact) bool {
		if c.ID == id {
			found = c
			return false
		}
		return true
	})
	return found
}

func wantStats(links, merges uint64, conflicts ...uint64) func(*testing.T, idRun) {
	return func(t *testing.T, r idRun) {
		t.Helper()
		var want [3]uint64
		copy(want[:], conflicts)
		if r.Stats.Links != links || r.Stats.Merges != merges || r.Stats.Conflicts != want {
			t.Errorf("links %d, merges %d, conflicts (merged_elsewhere, known, max_anonymous) %v; want %d, %d, %v",
				r.Stats.Links, r.Stats.Merges, r.Stats.Conflicts, links, merges, want)
		}
	}
}

func wantMerged(user string, ids ...string) func(*testing.T, idRun) {
	return func(t *testing.T, r idRun) {
		t.Helper()
		c := r.contact(user)
		if c == nil {
			t.Fatalf("no contact %q", user)
		}
		if !slices.Equal(c.Merged, ids) {
			t.Errorf("%s.Merged = %q, want %q", user, c.Merged, ids)
		}
	}
}

func wantGone(ids ...string) func(*testing.T, idRun) {
	return func(t *testing.T, r idRun) {
		t.Helper()
		for _, id := range ids {
			if r.contact(id) != nil {
				t.Errorf("contact %q still stored after its merge", id)
			}
		}
	}
}

func wantMsgs(want ...string) func(*testing.T, idRun) {
	return func(t *testing.T, r idRun) { t.Helper(); sameStrings(t, "messages", messages(r.run), want) }
}

func allID(checks ...func(*testing.T, idRun)) func(*testing.T, idRun) {
	return func(t *testing.T, r idRun) {
		t.Helper()
		for _, c := range checks {
			c(t, r)
		}
	}
}

// Rules of the identity cases.
const (
	// idWindow counts page views over 1h; "probe" shows the count.
	idWindow = `
windows:
  views: { match: type == "page", over: 1h }
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ windows.views }}" }
`
	// idHot fires when engagement reaches 30 (10 a pricing page).
	idHot = `
scoring:
  engagement:
    rules:
      - { id: pricing, on: 'type == "page" && properties.path == "/pricing"', points: 10 }
triggers:
  - id: hot
    when: engagement >= 30
    cooldown: 7d
    do: [alert]
actions:
  alert: { sink: s, message: "{{ engagement }}", cap: { max: 1, per: 7d } }
`
	// idCart: absence timers x and y, and the probe.
	idCart = `
triggers:
  - id: x
    after: type == "track" && event == "x"
    unless: type == "track" && event == "done"
    within: 1h
    do: [show]
  - id: y
    after: type == "track" && event == "y"
    within: 1h
    do: [show]
` + probeTrigger + `
actions:
  show: { sink: s }
`
	idTraits = `
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ traits.email }}|{{ traits.industry }}|{{ traits.region }}" }
`
	idStages = `
stages: [lead, mql, sql]
triggers:
  - { id: to-lead, when: 'event.event == "lead"', set_stage: lead }
  - { id: to-mql, when: 'event.event == "mql"', set_stage: mql }
` + `  - id: probe
    sequence: ['type == "track" && event == "probe"']
    within: 1s
    do: [show]
actions:
  show: { sink: s, message: "{{ stage }}" }
`
)

type idCase struct {
	name    string // the SPEC §6 sentence pinned
	rules   string
	events  []string
	until   *time.Duration
	firings []string
	check   func(*testing.T, idRun)
}

func TestIdentity(t *testing.T) {
	U, A := as("U", ""), as("", "A")
	UA := as("U", "A")
	cases := []idCase{
		// --- links
		{
			name:    "an event with userId and anonymousId links them and merges A's windows into U's",
			rules:   idWindow,
			events:  []string{page(0, "/a", A...), page(time.Minute, "/b", A...), page(2*time.Minute, "/c", U...), probe(3*time.Minute, UA...)},
			firings: []string{"U probe @3m show"},
			check:   allID(wantMsgs("3"), wantStats(1, 1), wantMerged("U", "A"), wantGone("A")),
		},
		{
			name:    "any type links: a page with both ids",
			rules:   idWindow,
			events:  []string{page(0, "/a", A...), page(time.Minute, "/b", UA...), probe(2*time.Minute, U...)},
			firings: []string{"U probe @2m show"},
			check:   allID(wantMsgs("2"), wantStats(1, 1)),
		},
		{
			name:    "after the merge every event carrying only A is U's",
			rules:   idWindow,
			events:  []string{page(0, "/a", A...), ident(time.Minute, UA...), page(2*time.Minute, "/b", A...), probe(3*time.Minute, A...)},
			firings: []string{"U probe @3m show"},
			check:   allID(wantMsgs("2"), wantGone("A")),
		},
		{
			name:    "an event whose two ids are equal links nothing",
			rules:   idWindow,
			events:  []string{page(0, "/a", as("U", "U")...), probe(time.Minute, U...)},
			firings: []string{"U probe @1m show"},
			check:   allID(wantMsgs("1"), wantStats(0, 0)),
		},
		{
			name:  "alias links previousId to userId",
			rules: idWindow,
			events: []string{page(0, "/a", A...),
				ev(time.Minute, withIDs(U, "type", "alias", "previousId", "A")...), probe(2*time.Minute, U...)},
			firings: []string{"U probe @2m show"},
			check:   allID(wantMsgs("1"), wantStats(1, 1), wantMerged("U", "A")),
		},
		{
			name:  "an alias with an anonymousId links that first, then its previousId",
			rules: "identity: { max_anonymous: 1 }\n" + idWindow,
			events: []string{page(0, "/a", as("", "P")...), page(0, "/b", A...),
				ev(time.Minute, withIDs(UA, "type", "alias", "previousId", "P")...),
				probe(2*time.Minute, U...), probe(3*time.Minute, as("", "P")...)},
			firings: []string{"U probe @2m show", "P probe @3m show"},
			check:   allID(wantMsgs("1", "1"), wantStats(1, 1, 0, 0, 1), wantMerged("U", "A")),
		},
		{
			name:    "a link without state counts as a link, not a merge, and toward max_anonymous",
			rules:   "identity: { max_anonymous: 2 }\n" + idWindow,
			events:  []string{ident(0, as("U", "a1")...), ident(time.Minute, as("U", "a2")...), page(2*time.Minute, "/x", as("", "a3")...), ident(3*time.Minute, as("U", "a3")...), probe(4*time.Minute, as("", "a3")...)},
			firings: []string{"a3 probe @4m show"},
			check:   allID(wantStats(2, 0, 0, 0, 1), wantMerged("U", "a1", "a2")),
		},
		{
			name:    "a repeated link links and merges nothing more",
			rules:   idWindow,
			events:  []string{page(0, "/a", A...), ident(time.Minute, UA...), ident(2*time.Minute, UA...), probe(3*time.Minute, UA...)},
			firings: []string{"U probe @3m show"},
			check:   allID(wantMsgs("1"), wantStats(1, 1), wantMerged("U", "A")),
		},

		// --- the merge, part by part
		{
			name:  "windows: the per-window bound applies after the union",
			rules: idWindow,
			events: []string{page(0, "/1", A...), page(ns, "/2", A...), page(2*ns, "/3", U...), page(3*ns, "/4", U...),
				probe(time.Minute, UA...)},
			firings: []string{"U probe @1m show"},
			check:   wantMsgs("3"), // MaxWindowEntries is 3 in this case (see below)
		},
		{
			name: "engagement: awards keep their time and points, so decay counts from when A earned them",
			rules: `
scoring:
  engagement:
    half_life: 1d
    rules:
      - { id: pricing, on: type == "page", points: 10 }
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ engagement }}" }
`,
			events:  []string{page(0, "/p", A...), page(day, "/p", U...), probe(2*day, UA...)},
			firings: []string{"U probe @2d show"},
			check:   wantMsgs("7.5"), // 10·½² + 10·½
		},
		{
			name: "engagement: limits are not applied again to past awards, and count the union from then on",
			rules: `
scoring:
  engagement:
    rules:
      - { id: pricing, on: type == "page", points: 10, limit: { points: 25, per: 1d } }
triggers:` + probeTrigger + `
actions:
  show: { sink: s, message: "{{ engagement }}" }
`,
			events: []string{page(0, "/p", A...), page(time.Hour, "/p", A...), page(2*time.Hour, "/p", U...),
				probe(3*time.Hour, UA...), page(4*time.Hour, "/p", U...), probe(5*time.Hour, U...),
				page(day+time.Hour+ns, "/p", U...), probe(day+2*time.Hour, U...)},
			firings: []string{"U probe @3h show", "U probe @5h show", "U probe @1d2h show"},
			// 30 raw in the day: over 25, kept; the award at 4h gets nothing; at 1d1h the
			// awards at 0 and 1h are out of the day: 10 of the 25 are free again.
			check: wantMsgs("30", "30", "40"),
		},
		{
			name:  "traits: U's, plus A's that U lacks; a key U has with null stays U's",
			rules: idTraits,
			events: []string{ident(0, withIDs(A, "traits.email", "a@x.io", "traits.industry", "healthcare", "traits.region", "emea")...),
				ident(time.Minute, withIDs(U, "traits.email", "u@x.io", "traits.industry", nil)...),
				probe(2*time.Minute, UA...)},
			firings: []string{"U probe @2m show"},
			check:   wantMsgs("u@x.io||emea"),
		},
		{
			name:  "remembered messageIds: the union (a repeat of A's event is ignored on U)",
			rules: idWindow,
			events: []string{page(0, "/a", withIDs(A, "messageId", "m1")...), ident(time.Minute, UA...),
				page(2*time.Minute, "/a", withIDs(U, "messageId", "m1")...), probe(3*time.Minute, U...)},
			firings: []string{"U probe @3m show"},
			check: allID(wantMsgs("1"), func(t *testing.T, r idRun) {
				if r.Stats.Duplicates != 1 {
					t.Errorf("duplicates = %d, want 1", r.Stats.Duplicates)
				}
			}),
		},
		{
			name:  "latest event time: the later of the two is the merged contact's now",
			rules: idWindow,
			events: []string{page(10*time.Minute, "/u1", U...), page(20*time.Minute, "/u2", U...),
				page(110*time.Minute, "/a", A...), probe(time.Hour, UA...)},
			firings: []string{"U probe @1h show"},
			check:   wantMsgs("1"), // now = 1h50m: (50m, 1h50m] holds A's view only
		},
		{
			name:    "stage: the further of the two (A's)",
			rules:   idStages,
			events:  []string{track(0, "mql", A...), track(time.Minute, "lead", U...), probe(2*time.Minute, UA...)},
			firings: []string{"A to-mql @0 -", "U to-lead @1m -", "U probe @2m show"},
			check:   wantMsgs("mql"),
		},
		{
			name:    "stage: the further of the two (U's)",
			rules:   idStages,
			events:  []string{track(0, "lead", A...), track(time.Minute, "mql", U...), probe(2*time.Minute, UA...)},
			firings: []string{"A to-lead @0 -", "U to-mql @1m -", "U probe @2m show"},
			check:   wantMsgs("mql"),
		},
		{
			name:  "sequences: for each number of steps matched, the partial with the later first step",
			rules: seq3Rules,
			events: []string{track(0, "A", A...), track(5*time.Minute, "B", A...),
				track(10*time.Minute, "A", U...), track(15*time.Minute, "B", U...),
				ident(20*time.Minute, UA...), track(65*time.Minute, "C", U...)},
			firings: []string{"U seq3 @1h5m show"}, // from U's partial at 10m; A's at 0 is too old
		},
		{
			name:    "sequences: A's partial completes on U",
			rules:   seq3Rules,
			events:  []string{track(0, "A", A...), track(5*time.Minute, "B", A...), ident(20*time.Minute, UA...), track(30*time.Minute, "C", U...)},
			firings: []string{"U seq3 @30m show"},
		},
		{
			name:    "absence timers: a timer only A has is kept, and fires for U",
			rules:   idCart,
			events:  []string{track(0, "x", A...), ident(10*time.Minute, UA...)},
			until:   dur(2 * time.Hour),
			firings: []string{"U x @1h show"},
			check:   wantGone("A"),
		},
		{
			name:    "absence timers: where both have one, the later due (U's)",
			rules:   idCart,
			events:  []string{track(0, "x", A...), track(20*time.Minute, "x", U...), ident(30*time.Minute, UA...)},
			until:   dur(3 * time.Hour),
			firings: []string{"U x @1h20m show"},
		},
		{
			name:    "absence timers: where both have one, the later due (A's)",
			rules:   idCart,
			events:  []string{track(20*time.Minute, "x", A...), track(0, "x", U...), ident(30*time.Minute, UA...)},
			until:   dur(3 * time.Hour),
			firings: []string{"U x @1h20m show"},
		},
		{
			name:  "absence timers: due at the same time, U's is kept (it fires in U's place among timers due then)",
			rules: idCart,
			// Set order: A's x, then U's y, then U's x; U's x kept → y before x.
			events:  []string{track(0, "x", A...), track(0, "y", U...), track(0, "x", U...), ident(10*time.Minute, UA...)},
			until:   dur(2 * time.Hour),
			firings: []string{"U y @1h show", "U x @1h show"},
		},
		{
			name:    "absence timers: a kept timer keeps its place among timers due at the same time",
			rules:   idCart,
			events:  []string{track(0, "x", A...), track(0, "y", U...), ident(10*time.Minute, UA...)},
			until:   dur(2 * time.Hour),
			firings: []string{"U x @1h show", "U y @1h show"},
		},
		{
			name:    "absence timers: a kept timer is cancelled by U's `unless`",
			rules:   idCart,
			events:  []string{track(0, "x", A...), ident(10*time.Minute, UA...), track(20*time.Minute, "done", U...)},
			until:   dur(2 * time.Hour),
			firings: []string{},
		},
		{
			name:    "inactivity is measured from the merged latest event time",
			rules:   quietRules,
			events:  []string{track(0, "visit", U...), track(5*time.Hour, "visit", A...), ident(time.Hour, UA...)},
			until:   dur(3 * day),
			firings: []string{"U quiet @1d5h show"},
		},
		{
			name:    "inactivity: U's own later latest time wins",
			rules:   quietRules,
			events:  []string{track(0, "visit", A...), track(5*time.Hour, "visit", U...), ident(6*time.Hour, UA...)},
			until:   dur(3 * day),
			firings: []string{"U quiet @1d6h show"},
		},

		// --- arming, cooldowns and caps are U's; once-only firing at the linking event
		{
			name:    "a `when` the merged history makes true fires once, at the linking event, with the merged score and explanation",
			rules:   idHot,
			events:  []string{page(0, "/pricing", A...), page(time.Hour, "/pricing", A...), page(2*time.Hour, "/pricing", U...), ident(3*time.Hour, UA...), page(4*time.Hour, "/pricing", U...)},
			firings: []string{"U hot @3h alert"},
			check: allID(wantMsgs("30"), func(t *testing.T, r idRun) {
				rec := r.Records[0]
				if rec.Contact != "U" || rec.Score != 30 || rec.Engagement != 30 || rec.Explain["pricing"] != 30 || len(rec.Explain) != 1 {
					t.Errorf("record %+v: want U with score 30 explained by pricing 30", rec)
				}
			}),
		},
		{
			name:  "arming, cooldowns and caps are U's: A's firing does not hold U's back",
			rules: idHot,
			events: []string{page(0, "/pricing", A...), page(time.Hour, "/pricing", A...), page(2*time.Hour, "/pricing", A...),
				page(3*time.Hour, "/pricing", U...), ident(4*time.Hour, UA...)},
			firings: []string{"A hot @2h alert", "U hot @4h alert"},
			check:   wantMsgs("30", "40"),
		},
		{
			name:  "arming is U's: U's armed-and-fired state stays (no second firing)",
			rules: idHot,
			events: []string{page(0, "/pricing", U...), page(time.Hour, "/pricing", U...), page(2*time.Hour, "/pricing", U...),
				page(3*time.Hour, "/pricing", A...), ident(4*time.Hour, UA...)},
			firings: []string{"U hot @2h alert"},
		},
		{
			name:  "a linking event that is a repeat by messageId links and merges, but is not evaluated",
			rules: idHot,
			events: []string{page(0, "/pricing", A...), page(time.Hour, "/pricing", A...),
				page(2*time.Hour, "/pricing", withIDs(A, "messageId", "m3")...),
				page(3*time.Hour, "/pricing", withIDs(UA, "messageId", "m3")...), // the same page, resent after login
				track(4*time.Hour, "visit", U...)},
			firings: []string{"A hot @2h alert", "U hot @4h alert"},
			check: allID(wantStats(1, 1), wantGone("A"), func(t *testing.T, r idRun) {
				if r.Stats.Duplicates != 1 {
					t.Errorf("duplicates = %d, want 1", r.Stats.Duplicates)
				}
			}),
		},
		{
			name:    "in replay, timers due by the linking event's time fire first (for A), then the merge",
			rules:   idCart,
			events:  []string{track(0, "x", A...), ident(time.Hour, UA...)},
			until:   dur(3 * time.Hour),
			firings: []string{"A x @1h show"},
		},

		// --- safety
		{
			name:  "conflict: A merged into U1 and then linked to U2: no merge, the event is U2's, A stays U1's",
			rules: idWindow,
			events: []string{page(0, "/a", A...), ident(time.Minute, as("U1", "A")...),
				page(2*time.Minute, "/b", as("U2", "A")...), probe(3*time.Minute, as("U2", "")...), probe(4*time.Minute, A...)},
			firings: []string{"U2 probe @3m show", "U1 probe @4m show"},
			check:   allID(wantMsgs("1", "1"), wantStats(1, 1, 1, 0, 0), wantMerged("U1", "A")),
		},
		{
			name:    "conflict: two known users are never merged (anonymousId)",
			rules:   idWindow,
			events:  []string{page(0, "/a", as("U1", "")...), page(time.Minute, "/b", as("U2", "U1")...), probe(2*time.Minute, as("U2", "")...), probe(3*time.Minute, as("U1", "")...)},
			firings: []string{"U2 probe @2m show", "U1 probe @3m show"},
			check:   allID(wantMsgs("1", "1"), wantStats(0, 0, 0, 1, 0)),
		},
		{
			name:  "conflict: two known users are never merged (alias)",
			rules: idWindow,
			events: []string{page(0, "/a", as("U1", "")...),
				ev(time.Minute, withIDs(as("U2", ""), "type", "alias", "previousId", "U1")...), probe(2*time.Minute, as("U2", "")...)},
			firings: []string{"U2 probe @2m show"},
			check:   allID(wantMsgs("0"), wantStats(0, 0, 0, 1, 0)),
		},
		{
			name:  "conflict: beyond max_anonymous; the refused id stays its own contact and may merge into another user later",
			rules: "identity: { max_anonymous: 1 }\n" + idWindow,
			events: []string{page(0, "/a", as("", "a1")...), page(0, "/b", as("", "a2")...),
				ident(time.Minute, as("U", "a1")...), ident(2*time.Minute, as("U", "a2")...),
				probe(3*time.Minute, as("", "a2")...), ident(4*time.Minute, as("V", "a2")...), probe(5*time.Minute, as("V", "")...)},
			firings: []string{"a2 probe @3m show", "V probe @5m show"},
			check:   allID(wantMsgs("1", "1"), wantStats(2, 2, 0, 0, 1), wantMerged("U", "a1"), wantMerged("V", "a2")),
		},
		{
			name:  "conflicts are counted once per linking event",
			rules: idWindow,
			events: []string{ident(0, as("U1", "A")...), page(time.Minute, "/k", as("K", "")...),
				ev(2*time.Minute, withIDs(as("U2", "A"), "type", "alias", "previousId", "K")...)},
			firings: []string{},
			check:   wantStats(1, 0, 1, 0, 0), // A merged elsewhere, K known: one conflict, of the first kind
		},
		{
			name:    "an anonymous id that later arrives as a userId is a contact of its own; events carrying only A stay U's",
			rules:   idWindow,
			events:  []string{page(0, "/a", A...), ident(time.Minute, UA...), page(2*time.Minute, "/b", as("A", "")...), probe(3*time.Minute, as("A", "")...), probe(4*time.Minute, A...)},
			firings: []string{"A probe @3m show", "U probe @4m show"},
			check:   wantMsgs("1", "1"),
		},
		{
			name:  "blocked: such a userId is ignored (the event is its anonymousId's), case-insensitively",
			rules: idWindow,
			events: []string{page(0, "/a", as("null", "A")...), page(time.Minute, "/b", as("Undefined", "A")...),
				probe(2*time.Minute, A...)},
			firings: []string{"A probe @2m show"},
			check:   allID(wantMsgs("2"), wantStats(0, 0)),
		},
		{
			name:    "blocked: such an anonymousId links nothing",
			rules:   idWindow,
			events:  []string{page(0, "/a", as("", "guest")...), ident(time.Minute, as("U", "GUEST")...), probe(2*time.Minute, U...)},
			firings: []string{"U probe @2m show"},
			check:   allID(wantMsgs("0"), wantStats(0, 0)),
		},
		{
			name:    "blocked: an alias's blocked previousId links nothing",
			rules:   idWindow,
			events:  []string{ev(0, withIDs(U, "type", "alias", "previousId", "anonymous")...)},
			firings: []string{},
			check:   wantStats(0, 0),
		},
		{
			name:    "blocked: an event left with no usable id is bad input",
			rules:   idWindow,
			events:  []string{page(0, "/a", as("null", "0")...), page(time.Minute, "/b", as("", "-1")...), probe(2*time.Minute, U...)},
			firings: []string{"U probe @2m show"},
			check: func(t *testing.T, r idRun) {
				if len(r.bad) != 2 || !strings.Contains(r.bad[0], "line 1: no_contact") || r.Summary.BadReasons[event.ReasonNoContact] != 2 {
					t.Errorf("bad lines %q, reasons %v: want lines 1 and 2 as no_contact", r.bad, r.Summary.BadReasons)
				}
			},
		},
		{
			name:  "blocked: a list in the rules file replaces the default",
			rules: "identity: { blocked: [Visitor] }\n" + idWindow,
			events: []string{page(0, "/a", as("", "null")...), ident(time.Minute, as("U", "null")...),
				page(2*time.Minute, "/b", as("visitor", "A")...), probe(3*time.Minute, U...), probe(4*time.Minute, A...)},
			firings: []string{"U probe @3m show", "A probe @4m show"},
			check:   allID(wantMsgs("1", "1"), wantStats(1, 1), wantMerged("U", "null")),
		},
		{
			name:  "merge: false: no links, none counted; A and U stay separate contacts",
			rules: "identity: { merge: false }\n" + idWindow,
			events: []string{page(0, "/a", A...), ident(time.Minute, UA...), ident(2*time.Minute, as("U2", "A")...),
				probe(3*time.Minute, U...), probe(4*time.Minute, A...)},
			firings: []string{"U probe @3m show", "A probe @4m show"},
			check:   allID(wantMsgs("0", "1"), wantStats(0, 0)),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasPrefix(c.name, "windows: the per-window bound") {
				old := state.MaxWindowEntries
				state.MaxWindowEntries = 3
				defer func() { state.MaxWindowEntries = old }()
			}
			r := playID(t, c.rules, c.events, c.until)
			if c.firings != nil {
				sameStrings(t, "firings", firings(r.run), c.firings)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// TestIdentityErase: erasing U erases the ids merged into it and their
// links: a later event of A starts a new anonymous contact A; U is no
// longer known.
func TestIdentityErase(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, idWindow)
	store, links := state.NewMemory(), state.NewMemoryLinks()
	var got []string
	p := engine.NewPartition(rs, store, func(res *rules.Result) {
		for _, r := range res.Records {
			got = append(got, r.Contact+" "+r.Message)
		}
	})
	p.UseLinks(links)
	apply := func(line string) {
		t.Helper()
		if err := p.Apply(ctx, decode(t, line)); err != nil {
			t.Fatal(err)
		}
	}
	apply(page(0, "/a", as("", "A")...))
	apply(page(time.Minute, "/b", as("", "B")...))
	apply(ident(2*time.Minute, as("U", "A")...))
	apply(ident(3*time.Minute, as("U", "B")...))
	if p.Resolve("A") != "U" || p.Resolve("U") != "U" || p.Resolve("X") != "X" {
		t.Fatalf("Resolve before erasure: A→%s U→%s X→%s", p.Resolve("A"), p.Resolve("U"), p.Resolve("X"))
	}
	if owner, _ := p.MergedInto(ctx, "B"); owner != "U" {
		t.Fatalf("MergedInto(B) = %q, want U", owner)
	}
	erased, err := p.Erase(ctx, "U")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(erased, []string{"U", "A", "B"}) {
		t.Errorf("Erase(U) erased %q, want U, A, B", erased)
	}
	if store.Len() != 0 || links.Len() != 0 {
		t.Errorf("after erasure: %d contacts, %d links; want none", store.Len(), links.Len())
	}
	if known, _ := links.Known(ctx, "U"); known {
		t.Error("U is still known after its erasure")
	}
	apply(probe(4*time.Minute, as("", "A")...))
	apply(page(5*time.Minute, "/c", as("V", "U")...)) // U is no longer known: it may link
	if !slices.Equal(got, []string{"A 0"}) {
		t.Errorf("after erasure: %q, want a fresh contact A with no views", got)
	}
	if p.Resolve("U") != "V" {
		t.Errorf("the erased user's id, now anonymous, resolves to %q; want V", p.Resolve("U"))
	}

	// Erasing a merged anonymous id removes its link and takes it off its
	// user's list; the user keeps the history already merged.
	apply(page(6*time.Minute, "/d", as("", "C")...))
	apply(ident(7*time.Minute, as("V", "C")...))
	if _, err := p.Erase(ctx, "C"); err != nil {
		t.Fatal(err)
	}
	v, _ := store.Get(ctx, "V")
	if !slices.Equal(v.Merged, []string{"U"}) || p.Resolve("C") != "C" {
		t.Errorf("after erasing C: V.Merged = %q, C resolves to %q", v.Merged, p.Resolve("C"))
	}
}

// TestIdentityReplaySummary: replay's summary counts links, merges and
// conflicts by kind.
func TestIdentityReplaySummary(t *testing.T) {
	rs := mustParse(t, "identity: { max_anonymous: 1 }\n"+idWindow)
	lines := []string{
		page(0, "/a", as("", "a1")...),
		ident(time.Minute, as("U", "a1")...),
		ident(2*time.Minute, as("U", "a2")...),   // max_anonymous
		ident(3*time.Minute, as("V", "a1")...),   // merged elsewhere
		ident(4*time.Minute, as("V", "U")...),    // known
		ident(5*time.Minute, as("W", "a3")...),   // link without state
		page(6*time.Minute, "/b", as("", "")...), // no id at all: bad at decode
	}
	sum, err := engine.Replay(context.Background(), rs, strings.NewReader(strings.Join(lines, "\n")), engine.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Links != 2 || sum.Merges != 1 || sum.Conflicts["max_anonymous"] != 1 || sum.Conflicts["merged_elsewhere"] != 1 || sum.Conflicts["known"] != 1 {
		t.Errorf("summary: %d links, %d merges, conflicts %v", sum.Links, sum.Merges, sum.Conflicts)
	}
	if s := sum.String(); !strings.Contains(s, "2 links, 1 merges, 3 conflicts (1 merged_elsewhere, 1 known, 1 max_anonymous)") {
		t.Errorf("summary line: %s", s)
	}
	if sum.Contacts != 3 { // U (with a1), V, W
		t.Errorf("contacts = %d, want 3", sum.Contacts)
	}
	var none bytes.Buffer
	if _, err := engine.Replay(context.Background(), rs, strings.NewReader(strings.Join(lines, "\n")), engine.ReplayOptions{NoLinks: true, Out: &none}); err != nil {
		t.Fatal(err)
	}
}

// TestIdentityMergedDecay pins the engagement arithmetic of a merge with
// decay exactly, at a time after both awards.
func TestIdentityMergedDecay(t *testing.T) {
	r := playID(t, `
scoring:
  engagement:
    half_life: 10h
    rules:
      - { id: p, on: type == "page", points: 8 }
triggers:`+probeTrigger+`
actions:
  show: { sink: s, message: "{{ engagement }}" }
`, []string{page(3*time.Hour, "/x", as("U", "")...), page(0, "/x", as("", "A")...), probe(7*time.Hour, as("U", "A")...)}, nil)
	want := 8*math.Exp2(-0.7) + 8*math.Exp2(-0.4)
	if len(r.Records) != 1 || math.Abs(r.Records[0].Engagement-round3(want)) > 1e-9 {
		t.Fatalf("records %+v: want engagement %.3f", r.Records, want)
	}
}

// TestIdentityInvariants drives random identity traffic (few ids, blocked
// ones, aliases, repeats, late events, erasures) and checks after every
// event that the link table and the states agree: a linked id is on its
// user's list and nowhere else, no user exceeds max_anonymous, and a merged
// anonymous id keeps no state of its own (unless it has been a userId).
func TestIdentityInvariants(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, "identity: { max_anonymous: 3 }\n"+idWindow+`
scoring:
  engagement:
    half_life: 1d
    rules:
      - { id: p, on: type == "page", points: 10, limit: { points: 25, per: 1h } }
`)
	users := []string{"u0", "u1", "u2", "null", ""}
	anons := []string{"a0", "a1", "a2", "a3", "a4", "a5", "u1", "guest", ""}
	types := []string{"page", "page", "track", "identify", "alias"}
	var total rules.Stats
	for seed := uint64(1); seed <= 300; seed++ {
		rng := newRand(seed)
		store, links := state.NewMemory(), state.NewMemoryLinks()
		p := engine.NewPartition(rs, store, nil)
		p.UseLinks(links)
		for i := 0; i < 40; i++ {
			kv := []any{"type", types[rng(len(types))], "messageId", fmt.Sprint("m", rng(30))}
			kv = append(kv, as(users[rng(len(users))], anons[rng(len(anons))])...)
			if kv[1] == "alias" {
				kv = append(kv, "previousId", anons[rng(len(anons))])
			}
			if kv[1] == "track" {
				kv = append(kv, "event", "probe")
			}
			line := ev(time.Duration(i-rng(5))*time.Minute, kv...)
			e, err := event.Decode([]byte(line), event.JSON, 0)
			if err != nil {
				continue // no id at all: bad at decode
			}
			if err := p.Apply(ctx, e); err != nil && event.ReasonOf(err) == "" {
				t.Fatalf("seed %d event %d: %v", seed, i, err)
			}
			if rng(25) == 0 {
				if _, err := p.Erase(ctx, users[rng(3)]); err != nil {
					t.Fatal(err)
				}
			}
			checkLinks(t, seed, i, store, links)
		}
		st := p.Stats()
		total.Links += st.Links
		total.Merges += st.Merges
		for k := range st.Conflicts {
			total.Conflicts[k] += st.Conflicts[k]
		}
	}
	// The traffic reaches every case (or the test proves nothing).
	if total.Links == 0 || total.Merges == 0 || total.Conflicts[rules.ConflictMerged] == 0 ||
		total.Conflicts[rules.ConflictKnown] == 0 || total.Conflicts[rules.ConflictMaxAnonymous] == 0 {
		t.Errorf("random traffic made %d links, %d merges, conflicts %v: some case never happened", total.Links, total.Merges, total.Conflicts)
	}
	t.Logf("%d links, %d merges, conflicts %v", total.Links, total.Merges, total.Conflicts)
}

func checkLinks(t *testing.T, seed uint64, i int, store *state.Memory, links *state.MemoryLinks) {
	t.Helper()
	ctx := context.Background()
	onList := map[string]string{}
	store.Range(func(c *state.Contact) bool {
		if len(c.Merged) > 3 {
			t.Fatalf("seed %d event %d: %s absorbed %d ids", seed, i, c.ID, len(c.Merged))
		}
		for _, a := range c.Merged {
			if prev, dup := onList[a]; dup {
				t.Fatalf("seed %d event %d: %s on the lists of %s and %s", seed, i, a, prev, c.ID)
			}
			onList[a] = c.ID
			if owner, _ := links.Owner(ctx, a); owner != c.ID {
				t.Fatalf("seed %d event %d: %s lists %s, which belongs to %q", seed, i, c.ID, a, owner)
			}
		}
		return true
	})
	links.Range(func(a, u string) bool {
		if onList[a] != u {
			t.Fatalf("seed %d event %d: link %s→%s not on %s's list", seed, i, a, u, u)
		}
		if c := storedContact(store, a); c != nil {
			if known, _ := links.Known(ctx, a); !known {
				t.Fatalf("seed %d event %d: merged anonymous %s keeps state %+v", seed, i, a, c)
			}
		}
		return true
	})
}

func storedContact(store *state.Memory, id string) *state.Contact {
	var found *state.Contact
	store.Range(func(c *state.Contact) bool {
		if c.ID == id {
			found = c
			return false
		}
		return true
	})
	return found
}

// newRand returns a small deterministic generator of ints in [0, n).
func newRand(seed uint64) func(n int) int {
	x := seed*0x9e3779b97f4a7c15 + 1
	return func(n int) int {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
}
