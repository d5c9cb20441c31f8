package stream_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/stream"
)

// reuseRules keep what a later event could alter if the worker's reused
// maps leaked: distinct property values, summed property values, trait
// values (a nested one among them) and points on a property.
const reuseRules = `
version: 1
windows:
  paths_1d:
    match: type == "page"
    over: 1d
    distinct: properties.path
  minutes_1d:
    match: type == "track"
    over: 1d
    sum: properties.minutes
scoring:
  engagement:
    rules:
      - id: pro-page
        on: type == "page" && properties.plan == "pro"
        points: 5
`

// TestLaterEventsLeaveEarlierAlone: the worker decodes each batch into maps
// recycled from the events it applied before (event.Decoder), so every
// contact here gets events whose properties and traits differ from the
// other contacts' events beside them in the same batch and in the next
// batches; each contact's state and admin.History must show only its own
// values — a trait map kept by the contact, a nested trait, a distinct
// path or a History path taken from a map that a later event refilled
// would show another contact's.
func TestLaterEventsLeaveEarlierAlone(t *testing.T) {
	stores(t, func(t *testing.T, scoring func(*rules.Ruleset) stream.Scoring) {
		rs, err := rules.Parse("reuse.yaml", []byte(reuseRules))
		if err != nil {
			t.Fatal(err)
		}
		addr, cfg, t0 := keyedKafka(t)
		hist := admin.NewHistory(admin.HistoryOptions{})
		sc := scoring(rs)
		sc.OnApplied, sc.OnAppliedReads = hist.Applied, admin.HistoryReads
		r := start(t, cfg, sc, nil)
		waitPartitions(t, r.p, 6)

		const contacts = 24
		id := func(i int) string { return fmt.Sprintf("u-%d", i) }
		rec := func(i, k int, body string) *kgo.Record {
			at := t0.Add(time.Duration(k)*time.Minute + time.Duration(i)*time.Second)
			return &kgo.Record{Topic: "events", Key: []byte(id(i)), Value: fmt.Appendf(nil,
				`{"userId":%q,"messageId":"%s-%d",%s,"timestamp":%q}`, id(i), id(i), k, body, at.Format(time.RFC3339Nano))}
		}
		plan := func(i int) string { return [...]string{"pro", "free"}[i%2] }
		// Round one: contacts interleaved, so that one batch holds events
		// of many contacts.
		var recs []*kgo.Record
		for k, body := range []func(i int) string{
			func(i int) string {
				return fmt.Sprintf(`"type":"identify","traits":{"plan":"p%d","company":{"name":"c%d"}}`, i, i)
			},
			func(i int) string {
				return fmt.Sprintf(`"type":"page","properties":{"path":"/%d/a","plan":%q}`, i, plan(i))
			},
			func(i int) string {
				return fmt.Sprintf(`"type":"track","event":"Video Watched","properties":{"minutes":%d}`, i)
			},
			func(i int) string { return fmt.Sprintf(`"type":"page","properties":{"path":"/%d/b"}`, i) },
		} {
			for i := range contacts {
				recs = append(recs, rec(i, k, body(i)))
			}
		}
		produce(t, addr, recs)
		waitCommitted(t, addr, "leadpulse", "events", int64(len(recs)))
		// Round two, in later batches: a new plan (the company stays the
		// one of round one), a third path, more minutes.
		recs = recs[:0]
		for i := range contacts {
			recs = append(recs, rec(i, 10, fmt.Sprintf(`"type":"identify","traits":{"plan":"q%d"}`, i)))
		}
		for i := range contacts {
			recs = append(recs, rec(i, 11, fmt.Sprintf(`"type":"page","properties":{"path":"/%d/c","plan":%q}`, i, plan(i+1))))
			recs = append(recs, rec(i, 12, fmt.Sprintf(`"type":"track","event":"Video Watched","properties":{"minutes":%d}`, 1000)))
		}
		produce(t, addr, recs)
		waitCommitted(t, addr, "leadpulse", "events", int64(4*contacts+len(recs)))

		for i := range contacts {
			st, err := r.p.Inspect(context.Background(), id(i))
			if err != nil {
				t.Fatalf("%s: %v", id(i), err)
			}
			c := st.Contact
			if got := c.Traits["plan"]; got != fmt.Sprintf("q%d", i) {
				t.Errorf("%s: trait plan %v, want q%d", id(i), got, i)
			}
			if co, ok := c.Traits["company"].(map[string]any); !ok || co["name"] != fmt.Sprintf("c%d", i) {
				t.Errorf("%s: trait company %v, want name c%d", id(i), c.Traits["company"], i)
			}
			paths := slices.Sorted(slices.Values(c.Windows[0].K))
			if want := []string{fmt.Sprintf("/%d/a", i), fmt.Sprintf("/%d/b", i), fmt.Sprintf("/%d/c", i)}; !slices.Equal(paths, want) {
				t.Errorf("%s: distinct paths %v, want %v", id(i), paths, want)
			}
			var minutes float64
			for _, v := range c.Windows[1].V {
				minutes += v
			}
			if minutes != float64(i+1000) {
				t.Errorf("%s: minutes %v, want %d", id(i), minutes, i+1000)
			}
			if pro := c.Points[0].Value > 0; pro != true {
				t.Errorf("%s: pro-page points %v; each contact viewed one page on the pro plan", id(i), c.Points[0].Value)
			}
			h := hist.Contact(id(i))
			var hpaths []string
			for _, e := range h.Events {
				if e.Path != "" {
					hpaths = append(hpaths, e.Path)
				}
				if e.Type == "identify" && !slices.Contains(e.Traits, "plan") {
					t.Errorf("%s: History identify with traits %v", id(i), e.Traits)
				}
			}
			slices.Sort(hpaths)
			if want := []string{fmt.Sprintf("/%d/a", i), fmt.Sprintf("/%d/b", i), fmt.Sprintf("/%d/c", i)}; !slices.Equal(hpaths, want) {
				t.Errorf("%s: History paths %v, want %v", id(i), hpaths, want)
			}
		}
	})
}
