package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The bench's traffic has visitor turnover by default (Config.Lifetime):
// new contacts keep arriving, one per about Lifetime events, while the
// live population stays at Contacts; a negative Lifetime turns it off and
// the same Contacts visitors send every event.
func TestLoaderTurnover(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cfg            Config
		minNew, maxNew int // visitors beyond Contacts after 20,000 events
	}{
		{"default", Config{Contacts: 200, Seed: 3}, 20_000 / (DefaultLifetime + 10), 20_000 / DefaultLifetime},
		{"short lives", Config{Contacts: 200, Seed: 3, Lifetime: 10}, 20_000 / 14, 20_000 / 10},
		{"off", Config{Contacts: 200, Seed: 3, Lifetime: -1}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.validate()
			if err != nil {
				t.Fatal(err)
			}
			l := newLoader(&cfg, nil, "events")
			anon := map[string]bool{}
			for range 20_000 {
				r, err := l.next(time.Now().UnixNano())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := contactOf(r.Value); err != nil {
					t.Fatal(err)
				}
				if id, ok := field(r.Value, []byte(`"anonymousId":"`)); ok {
					anon[string(id)] = true
				}
			}
			extra := len(anon) - cfg.Contacts
			if extra < tc.minNew || extra > tc.maxNew {
				t.Errorf("%d anonymousIds from %d contacts: %d new visitors, want %d..%d", len(anon), cfg.Contacts, extra, tc.minNew, tc.maxNew)
			}
			if got := l.gen.Visitors(); got != len(anon) {
				t.Errorf("Visitors() = %d, %d anonymousIds seen", got, len(anon))
			}
		})
	}
}

// The collector counts a window's events (applied) and actions by minute
// of their stamps, so a drift of the actions per event shows.
func TestCollectorByMinute(t *testing.T) {
	c := &collector{timers: map[string]bool{"gone-quiet": true}, next: map[int32]int64{}}
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	w := c.watch(t0.UnixNano(), t0.Add(3*time.Minute).UnixNano())
	action := func(trigger string, at time.Time) []byte {
		return []byte(`{"id":"x","trigger":"` + trigger + `","at":"` + at.Format(time.RFC3339Nano) + `"}`)
	}
	var times []int64
	for i := range 30_000 { // 10,000 events a minute
		times = append(times, t0.Add(time.Duration(i)*6*time.Millisecond).UnixNano())
	}
	c.appliedBatch(times, t0.Add(4*time.Minute).UnixNano())
	now := t0.Add(4 * time.Minute).UnixNano()
	for i := range 20 { // minute 0: 20 actions
		c.record(action("hot-lead", t0.Add(time.Duration(i)*time.Second)), now)
	}
	for i := range 5 { // minute 2: 5, and a timer's, not counted
		c.record(action("pricing-3x", t0.Add(2*time.Minute+time.Duration(i)*time.Second)), now)
	}
	c.record(action("gone-quiet", t0.Add(2*time.Minute)), now)
	got := c.byMinute(w)
	want := []MinuteCount{
		{Minute: 0, Events: 10_000, Actions: 20, ActionsPer10k: 20},
		{Minute: 1, Events: 10_000, Actions: 0, ActionsPer10k: 0},
		{Minute: 2, Events: 10_000, Actions: 5, ActionsPer10k: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("byMinute = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("minute %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// The table says whether visitors came and went, how many, that the store
// kept those who left, and the actions per 10,000 events by minute.
func TestTableTurnover(t *testing.T) {
	ph := &Phase{Name: "rate", OfferedPerSec: 5000, Events: 900_000, EventsPerSec: 5000, Actions: 15000, NewVisitors: 21_000,
		LatencyMS: &Latency{Count: 15000, P50: 1, P99: 2}, AppliedMS: &Latency{Count: 900_000, P50: 1, P99: 2},
		ByMinute: []MinuteCount{{0, 300_000, 5400, 180}, {1, 300_000, 4800, 160}, {2, 300_000, 4950, 165}}}
	for _, tc := range []struct {
		name string
		res  *Result
		want []string
	}{
		{"turnover", &Result{Contacts: 10_000, Lifetime: 40, Visitors: 40_000, State: StateFigures{Contacts: 52_000, BlobBytes: 410}, Rates: []*Phase{ph}},
			[]string{"a visitor leaves after 40 events", "40,000 visitors in all", "52,000 contacts at the end (the store keeps the visitors who left",
				"actions per 10,000 events at 5,000/s, by minute: 180 160 (last, 300,000 events: 165); 21,000 new visitors"}},
		{"off", &Result{Contacts: 10_000, Visitors: 10_000, State: StateFigures{Contacts: 14_000, BlobBytes: 900}, Rates: []*Phase{ph}},
			[]string{"no turnover: the same 10,000 visitors all along", "14,000 contacts at the end, 900 B"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.res.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.want {
				if !strings.Contains(b.String(), s) {
					t.Errorf("table lacks %q:\n%s", s, b.String())
				}
			}
			if tc.res.Lifetime == 0 && strings.Contains(b.String(), "keeps the visitors who left") {
				t.Errorf("without turnover the table says the store keeps visitors who left:\n%s", b.String())
			}
		})
	}
}
