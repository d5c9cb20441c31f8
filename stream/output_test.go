package stream_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// TestRefusedActionsCommitNothingAfter: a partition hands its actions to
// the producer and applies the next batches without waiting for Kafka
// (stream/output.go), but an offset is noted only once every output before
// it is acknowledged. Here the broker refuses every record for the actions
// topic (too large for it): the pipeline stops with the refusal, and no partition's committed
// offset passes the first record whose actions were refused, so the next
// owner applies that record again and its actions are not lost. With Redis
// the state writes do not wait on the worker for the acknowledgement (they
// wait on their own goroutine, statecommit.go outputGate): no contact's
// state in Redis covers a record at or after the first refused one either.
func TestRefusedActionsCommitNothingAfter(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testRefusedActions(t, false) })
	t.Run("redis", func(t *testing.T) { testRefusedActions(t, true) })
}

func testRefusedActions(t *testing.T, withRedis bool) {
	addr := startKafka(t)
	clock := newClock(time.Date(2031, 3, 2, 8, 0, 0, 0, time.UTC))
	cfg := testConfig(t, addr, clock) // the default topics: events, actions
	cfg.InputKeyed = true
	// The actions topic refuses every action: they are larger than its
	// max.message.bytes (not retriable).
	adm := kadm.NewClient(client(t, addr))
	if _, err := adm.CreateTopic(context.Background(), 6, -1, map[string]*string{"max.message.bytes": kadm.StringPtr("64")}, "actions"); err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// Generated B2B events keyed by contact, produced before the pipeline
	// starts: a backlog, so the first batches are large and the workers
	// apply more of them while their first actions are in flight.
	g := traffic.New(traffic.Config{Contacts: 40, Seed: 5, Step: time.Minute, Mix: traffic.MixB2B})
	var recs []*kgo.Record
	byID := map[string]*kgo.Record{}
	for i := range 3000 {
		e := g.Next()
		r, _ := eventRecord(t, e, i%5 == 2)
		recs = append(recs, r)
		byID[e.MessageID] = r
	}
	produce(t, addr, recs)

	// The first record of each partition whose application emitted an
	// action (or dead letter: none here).
	var (
		mu    sync.Mutex
		first = map[int32]int64{}
	)
	sc := stream.Scoring{Rules: loadRules(t, b2bRules), OnApplied: func(res *rules.Result) {
		if len(res.Records) == 0 || res.Event == nil {
			return
		}
		r := byID[res.Event.MessageID]
		if r == nil {
			t.Errorf("an applied event with an unknown messageId %q", res.Event.MessageID)
			return
		}
		mu.Lock()
		if o, ok := first[r.Partition]; !ok || r.Offset < o {
			first[r.Partition] = r.Offset
		}
		mu.Unlock()
	}}
	var rdb *state.Redis
	if withRedis {
		rdb = openRedis(t, testenv.RedisServer(t))
		// Write as often as possible: every write is a chance to land state
		// whose actions Kafka refused.
		sc.Redis, sc.FlushInterval = rdb, time.Millisecond
		cfg.CommitInterval = time.Millisecond
		// Small batches: the records before a partition's first action
		// are written (the check below must see some state).
		cfg.BatchRecords, cfg.QueueRecords = 5, 20
	}
	p, err := stream.New(cfg, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("Run: %v; want the refusal of the actions (%v)", err, kerr.MessageTooLarge)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(first) == 0 {
		t.Fatal("no event emitted an action: the test needs traffic that fires triggers")
	}
	if withRedis {
		written := 0
		for id := range contactsOf(recs) {
			st, err := rdb.Inspect(context.Background(), id)
			if errors.Is(err, state.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			written++
			if f, ok := first[st.Pos.Partition]; ok && st.Pos.Offset >= f {
				t.Errorf("contact %s stored as of partition %d offset %d, at or past offset %d whose actions Kafka refused", id, st.Pos.Partition, st.Pos.Offset, f)
			}
		}
		t.Logf("%d contacts stored in Redis", written)
	}
	ofs, err := adm.FetchOffsets(context.Background(), "leadpulse")
	if errors.Is(err, kerr.GroupIDNotFound) {
		t.Logf("first refused record by partition %v; nothing committed", first)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	ofs.Each(func(o kadm.OffsetResponse) {
		if o.Topic != "events" || o.Err != nil {
			return
		}
		if f, ok := first[o.Partition]; ok && o.At > f {
			t.Errorf("partition %d committed offset %d, past offset %d whose actions Kafka refused", o.Partition, o.At, f)
		}
	})
	t.Logf("first refused record by partition %v; committed %v", first, ofs.KOffsets())
}

// contactsOf returns the record keys (contacts) of recs.
func contactsOf(recs []*kgo.Record) map[string]bool {
	ids := map[string]bool{}
	for _, r := range recs {
		ids[string(r.Key)] = true
	}
	return ids
}
