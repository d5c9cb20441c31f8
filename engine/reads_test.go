package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/traffic"
)

// TestSelectedKeysChangeNothing applies the same events to two partitions
// under each example's rules: one decodes every key of every event (as
// DecodeInto does), the other only what the rules read
// (rules.Ruleset.Reads, as replay and the stream workers decode). The
// actions, the awards and the contacts at the end must be the same.
func TestSelectedKeysChangeNothing(t *testing.T) {
	var lines [][]byte
	for _, file := range []string{"../examples/traffic/b2b.jsonl", "../examples/traffic/ecommerce.jsonl", "../event/testdata/events.jsonl"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, MaxLine)
		for sc.Scan() {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
	}
	for _, mix := range []string{traffic.MixB2B, traffic.MixEcommerce} {
		g := traffic.New(traffic.Config{Contacts: 300, Mix: mix, Seed: 3})
		for range 3000 {
			lines = append(lines, g.AppendJSON(nil))
		}
	}
	for _, file := range []string{"../examples/b2b-saas.yaml", "../examples/ecommerce.yaml", "../examples/identity.yaml", "../examples/spec.yaml"} {
		t.Run(file, func(t *testing.T) {
			rs, err := rules.LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if rs.Reads().All() {
				t.Fatalf("%s: the rules read every key; the test would compare nothing", file)
			}
			type run struct {
				store *state.Memory
				p     *Partition
				out   []string
			}
			newRun := func() *run {
				r := &run{store: state.NewMemory()}
				r.p = NewPartition(rs, r.store, func(res *rules.Result) {
					b, err := json.Marshal(struct {
						Records []rules.Record
						Awards  []rules.Award
					}{res.Records, res.Awards})
					if err != nil {
						t.Fatal(err)
					}
					r.out = append(r.out, string(b))
				})
				r.p.UseLinks(state.NewMemoryLinks())
				return r
			}
			full, sel := newRun(), newRun()
			dec := event.Decoder{SkipContext: !rs.ReadsContext(), Select: rs.Reads()}
			ctx := context.Background()
			applied := 0
			for i, line := range lines {
				var e event.Event
				err := event.DecodeInto(&e, line, event.JSON, 0)
				se, serr := dec.Decode(line, event.JSON, 0)
				if (err == nil) != (serr == nil) || err != nil && err.Error() != serr.Error() {
					t.Fatalf("line %d: every key: %v; selected keys: %v", i, err, serr)
				}
				if err != nil {
					continue
				}
				err, serr = full.p.Apply(ctx, &e), sel.p.Apply(ctx, se)
				if (err == nil) != (serr == nil) {
					t.Fatalf("line %d: every key: %v; selected keys: %v", i, err, serr)
				}
				applied++
			}
			for _, r := range []*run{full, sel} {
				if err := r.p.Advance(ctx, r.p.Clock()); err != nil {
					t.Fatal(err)
				}
			}
			if applied < 6000 || len(full.out) < applied {
				t.Fatalf("applied %d events, %d results: too few to compare", applied, len(full.out))
			}
			if !reflect.DeepEqual(full.out, sel.out) {
				for i := range min(len(full.out), len(sel.out)) {
					if full.out[i] != sel.out[i] {
						t.Fatalf("result %d: every key\n %s\nselected keys\n %s", i, full.out[i], sel.out[i])
					}
				}
				t.Fatalf("%d results with every key, %d with selected keys", len(full.out), len(sel.out))
			}
			if full.store.Len() != sel.store.Len() {
				t.Fatalf("%d contacts with every key, %d with selected keys", full.store.Len(), sel.store.Len())
			}
			full.store.Range(func(c *state.Contact) bool {
				o, err := sel.store.Get(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				a, _ := json.Marshal(rs.Inspect(c, full.p.Clock()))
				b, _ := json.Marshal(rs.Inspect(o, sel.p.Clock()))
				if !bytes.Equal(a, b) {
					t.Fatalf("contact %s: every key\n %s\nselected keys\n %s", c.ID, a, b)
				}
				return true
			})
		})
	}
}
