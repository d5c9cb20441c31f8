package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

func track(contact, name string, at time.Time) *kgo.Record {
	return &kgo.Record{Topic: "events", Key: []byte(contact),
		Value: []byte(`{"type":"track","userId":"` + contact + `","event":"` + name + `","messageId":"` + contact + name + at.Format(time.RFC3339) + `","timestamp":"` + at.Format(time.RFC3339Nano) + `"}`)}
}

// stores runs f with the memory store and with Redis.
func stores(t *testing.T, f func(t *testing.T, sc func(*rules.Ruleset) stream.Scoring)) {
	t.Run("memory", func(t *testing.T) {
		f(t, func(rs *rules.Ruleset) stream.Scoring { return stream.Scoring{Rules: rs} })
	})
	t.Run("redis", func(t *testing.T) {
		addr := testenv.RedisServer(t)
		f(t, func(rs *rules.Ruleset) stream.Scoring {
			r := openRedis(t, addr)
			return stream.Scoring{Rules: rs, Redis: r}
		})
	})
}

// TestForgetAndInspect: Forget erases a contact in order with its events
// (a later event starts a fresh contact), Inspect reads it, and a control
// record the stage does not understand goes to the DLQ.
func TestForgetAndInspect(t *testing.T) {
	stores(t, func(t *testing.T, scoring func(*rules.Ruleset) stream.Scoring) {
		rs, err := rules.Parse("cart.yaml", []byte(cartRules))
		if err != nil {
			t.Fatal(err)
		}
		addr, cfg, t0 := keyedKafka(t)
		ctx := context.Background()
		sc := scoring(rs)
		r := start(t, cfg, sc, nil)
		waitPartitions(t, r.p, 6)
		if _, err := r.p.Inspect(ctx, "u-1"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Inspect of an unknown contact: %v, want state.ErrNotFound", err)
		}
		produce(t, addr, []*kgo.Record{track("u-1", "Product Added", t0), track("u-1", "Page Viewed", t0.Add(time.Minute))})
		waitCommitted(t, addr, "leadpulse", "events", 2)
		st, err := r.p.Inspect(ctx, "u-1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Contact.Seq != 2 || len(st.Contact.Timers) != 1 {
			t.Errorf("u-1 before forget: %d events, timers %v", st.Contact.Seq, st.Contact.Timers)
		}
		// Where it is stored: its partition (murmur2 of the key) either way;
		// the memory store says it is one, and has no write position.
		wantPart := int32(kgo.StickyKeyPartitioner(nil).ForTopic("events").Partition(&kgo.Record{Key: []byte("u-1")}, 6))
		if st.Pos.Partition != wantPart || st.Memory != (sc.Redis == nil) || (st.Memory && st.Pos.Offset != 0) {
			t.Errorf("stored at %+v, memory %v; want partition %d, memory %v", st.Pos, st.Memory, wantPart, sc.Redis == nil)
		}
		er, err := r.p.Forget(ctx, "u-1")
		if err != nil || !er.Applied {
			t.Fatalf("Forget: %+v %v", er, err)
		}
		if _, err := r.p.Inspect(ctx, "u-1"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Inspect after Forget: %v, want state.ErrNotFound", err)
		}
		// A later event starts afresh; the erased cart's timer never fires.
		produce(t, addr, []*kgo.Record{track("u-1", "Page Viewed", t0.Add(3*time.Hour))})
		waitCommitted(t, addr, "leadpulse", "events", 4)
		st, err = r.p.Inspect(ctx, "u-1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Contact.Seq != 1 || len(st.Contact.Timers) != 0 {
			t.Errorf("u-1 after forget and an event: %d events, timers %v", st.Contact.Seq, st.Contact.Timers)
		}
		produce(t, addr, []*kgo.Record{{Topic: "events", Key: []byte("u-2"), Headers: []kgo.RecordHeader{{Key: stream.HeaderControl, Value: []byte("explode")}}}})
		dlq := newConsumer(t, addr, "events.dlq")
		got := dlq.until(1, 10*time.Second)
		if h := header(got[0], stream.HeaderReason); h != string(stream.ReasonControl) {
			t.Errorf("unknown control: DLQ reason %q", h)
		}
		if acts := newConsumer(t, addr, "actions"); true {
			acts.poll(300 * time.Millisecond)
			if len(acts.recs) != 0 {
				t.Errorf("%d actions; the erased cart must not remind", len(acts.recs))
			}
		}
	})
}

func waitPartitions(t *testing.T, p *stream.Pipeline, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := p.Partitions(); got != n {
			return fmt.Errorf("%d partitions assigned, want %d", got, n)
		}
		return nil
	})
}

// TestSetRules: partitions switch rules between batches, keep the contacts'
// state of rules that remain, and find their pending timers although the
// triggers moved in the file.
func TestSetRules(t *testing.T) {
	stores(t, func(t *testing.T, scoring func(*rules.Ruleset) stream.Scoring) {
		rsA, err := rules.Parse("a.yaml", []byte(cartRules))
		if err != nil {
			t.Fatal(err)
		}
		rsB, err := rules.Parse("b.yaml", []byte(`
version: 1
triggers:
  - id: page-seen
    sequence: [event == "Page Viewed"]
    within: 1d
    do: [note]
  - id: abandoned-cart
    after: type == "track" && event == "Product Added"
    unless: type == "track" && event == "Order Completed"
    within: 1h
    do: [cart-reminder]
actions:
  note:
    sink: log
  cart-reminder:
    sink: email
`))
		if err != nil {
			t.Fatal(err)
		}
		addr, cfg, t0 := keyedKafka(t)
		r := start(t, cfg, scoring(rsA), nil)
		produce(t, addr, []*kgo.Record{track("u-1", "Product Added", t0), track("u-1", "Page Viewed", t0.Add(time.Minute))})
		waitCommitted(t, addr, "leadpulse", "events", 2)
		if err := r.p.SetRules(rsB); err != nil {
			t.Fatal(err)
		}
		if r.p.Rules() != rsB {
			t.Error("Rules() does not return the new rules")
		}
		produce(t, addr, []*kgo.Record{track("u-1", "Page Viewed", t0.Add(2*time.Hour))})
		acts := newConsumer(t, addr, "actions")
		got := decodeActions(t, acts.until(2, 10*time.Second))
		acts.poll(200 * time.Millisecond)
		if len(acts.recs) != 2 {
			t.Fatalf("%d actions, want 2", len(acts.recs))
		}
		if got[0]["trigger"] != "abandoned-cart" || got[0]["at"] != t0.Add(time.Hour).Format(time.RFC3339) {
			t.Errorf("first action %v, want the cart reminder at %v (the timer set under the old rules)", got[0], t0.Add(time.Hour))
		}
		if got[1]["trigger"] != "page-seen" {
			t.Errorf("second action %v, want page-seen (a trigger of the new rules)", got[1])
		}
		if err := r.p.SetRules(nil); err == nil {
			t.Error("SetRules(nil) accepted")
		}
	})
}
