package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/stream"
)

// TestIngestCrashMidTransaction: an ingest process dies after Kafka
// acknowledged a poll's keyed records but before its transaction committed.
// Whether the next ingest comes back with the same transactional id (the
// broker aborts the open transaction at once) or with another one (the
// broker aborts it after the transaction timeout), the keyed topic holds
// each event once for read_committed readers, and the scoring stage emits
// exactly replay's actions. A read_uncommitted reader sees the aborted
// copies: the crash did leave records behind.
func TestIngestCrashMidTransaction(t *testing.T) {
	rs := loadRules(t, shopRules)
	in := makeInput(t, 400, trafficCfg)
	want, bad := replay(t, rs, in.lines)
	nbad := 0
	for _, n := range bad {
		nbad += n
	}
	for _, tc := range []struct {
		name, restartID string
	}{
		{"restart with the same transactional id", "ingest-a"},
		{"another process takes over after the timeout", "ingest-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startKafka(t)
			clock := newClock(in.last.Add(-time.Hour))
			cfg := testConfig(t, addr, clock)
			cfg.TransactionalID = "ingest-a"
			cfg.TransactionTimeout = time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := stream.EnsureTopics(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			recs := make([]*kgo.Record, len(in.recs)) // fresh: a produced Record keeps its context
			for i, r := range in.recs {
				recs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}
			}
			produce(t, addr, recs)
			crashed, err := stream.CrashIngestMidTransaction(ctx, cfg, 150)
			if err != nil {
				t.Fatal(err)
			}
			if crashed == 0 {
				t.Fatal("the crashed ingest produced nothing")
			}

			cfg.TransactionalID = tc.restartID
			p := start(t, cfg, stream.Scoring{Rules: rs}, nil)
			good := int64(len(in.recs) - nbad)
			waitCommitted(t, addr, "leadpulse", "events.keyed", good)

			committed := readAll(t, addr, "events.keyed", kgo.ReadCommitted(), int(good))
			if int64(len(committed)) != good {
				t.Errorf("read_committed: %d keyed records, want %d (one per good event)", len(committed), good)
			}
			seen := map[string]int{}
			for _, r := range committed {
				e, err := event.Decode(r.Value, event.Auto, 1)
				if err != nil {
					t.Fatal(err)
				}
				if seen[e.MessageID]++; seen[e.MessageID] > 1 {
					t.Errorf("event %s is in the keyed topic %d times", e.MessageID, seen[e.MessageID])
				}
			}
			if all := readAll(t, addr, "events.keyed", kgo.ReadUncommitted(), len(committed)+crashed); len(all) != len(committed)+crashed {
				t.Errorf("read_uncommitted: %d records, want %d committed + %d aborted", len(all), len(committed), crashed)
			}
			clock.set(in.last.Add(500 * time.Millisecond))
			acts := newConsumer(t, addr, "actions")
			acts.until(len(want), 30*time.Second)
			acts.poll(300 * time.Millisecond)
			sameActions(t, decodeActions(t, acts.recs), want)
			p.shutdown(t)
		})
	}
}

// readAll reads the records of topic at the given isolation level: at
// least want of them (waiting up to 30 s, so a loaded machine's slow fetch
// does not end the read early), then whatever one more short poll finds, so
// that a surplus shows.
func readAll(t *testing.T, addr, topic string, level kgo.IsolationLevel, want int) []*kgo.Record {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	var recs []*kgo.Record
	poll := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	for deadline := time.Now().Add(30 * time.Second); len(recs) < want && time.Now().Before(deadline); {
		poll(500 * time.Millisecond)
	}
	poll(500 * time.Millisecond)
	return recs
}
