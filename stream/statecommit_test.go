package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// TestRedisStateBeforeOffsets works through a backlog in small batches with
// Redis state and checks, while it runs, the order of commits with
// coalesced state writes (statecommit.go): whenever a partition's offset is
// committed, every event of that partition before it is in its contact's
// state in Redis. With a short flush interval the state and the offsets
// move many times during the run; with a long one it checks that the
// writes were coalesced: a contact seen in most of its partition's batches
// is written a few times, not once per batch. The state writes are held
// back (slowWrites), so that an offset noted while its write is still in
// flight (statecommit.go) is committed before its state lands, and caught.
func TestRedisStateBeforeOffsets(t *testing.T) {
	t.Run("often", func(t *testing.T) { testStateBeforeOffsets(t, 5*time.Millisecond) })
	t.Run("coalesced", func(t *testing.T) { testStateBeforeOffsets(t, 2*time.Second) })
}

func testStateBeforeOffsets(t *testing.T, flush time.Duration) {
	rs, err := rules.Parse("cart.yaml", []byte(cartRules))
	if err != nil {
		t.Fatal(err)
	}
	const contacts, batch = 30, 10
	perContact := 100
	if flush < time.Second {
		perContact = 300 // a longer run: more checks while offsets move
	}
	addr := startKafka(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	cfg := testConfig(t, addr, newClock(t0))
	cfg.InputKeyed = true
	cfg.BatchRecords = batch
	cfg.QueueRecords = 4 * batch
	cfg.CommitInterval = min(flush, 500*time.Millisecond)
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	recs := pageViews(t0, contacts, perContact)
	produce(t, addr, recs) // fills in each record's partition and offset
	// The offsets of each contact's events.
	type key struct {
		id string
		p  int32
	}
	byContact := map[key][]int64{}
	for _, r := range recs {
		k := key{string(r.Key), r.Partition}
		byContact[k] = append(byContact[k], r.Offset)
	}

	rdb := openRedis(t, testenv.RedisServer(t))
	rdb.Client().AddHook(slowWrites{20 * time.Millisecond})
	run := start(t, cfg, stream.Scoring{Rules: rs, Redis: rdb, FlushInterval: flush}, nil)

	adm := kadm.NewClient(client(t, addr))
	ctx := context.Background()
	var checks int
	check := func() (done bool, err error) {
		ofs, err := adm.FetchOffsets(ctx, "leadpulse")
		if errors.Is(err, kerr.GroupIDNotFound) {
			return false, nil // the group has not committed yet
		}
		if err != nil {
			return false, err
		}
		committed := map[int32]int64{}
		ofs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == "events" {
				committed[o.Partition] = o.At
			}
		})
		// Offsets first, state second: state only grows, so a state read
		// after the offsets must hold every event before them.
		all := true
		for k, offsets := range byContact {
			n := 0
			for _, o := range offsets {
				if o < committed[k.p] {
					n++
				}
			}
			if n < len(offsets) {
				all = false
			}
			if n == 0 {
				continue
			}
			st, err := rdb.Inspect(ctx, k.id)
			if err != nil {
				return false, fmt.Errorf("contact %s: %d events committed in partition %d, state: %w", k.id, n, k.p, err)
			}
			if st.Contact.Seq < uint64(n) {
				return false, fmt.Errorf("offset %d committed in partition %d, but contact %s holds %d events in Redis, want at least %d: an offset was committed before its state", committed[k.p], k.p, k.id, st.Contact.Seq, n)
			}
		}
		checks++
		return all, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, err := check()
		if err != nil && !errors.Is(err, state.ErrUnavailable) {
			t.Fatal(err)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not everything committed within 30s (%d checks)", checks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	run.shutdown(t)

	// Each contact is in about every batch of its partition (five contacts
	// per partition, batches of ten records): written after every batch, it
	// would be written ~perContact*contacts/partitions/batch = 50 times.
	var writes int64
	for c := range contacts {
		st, err := rdb.Inspect(ctx, fmt.Sprintf("u-%d", c))
		if err != nil {
			t.Fatal(err)
		}
		if st.Contact.Seq != uint64(perContact) {
			t.Errorf("contact u-%d holds %d events, want %d", c, st.Contact.Seq, perContact)
		}
		writes += st.Version
	}
	if max := int64(contacts * 10); flush >= time.Second && writes > max {
		t.Errorf("%d contact writes for %d contacts: the backlog's writes were not coalesced (want at most %d)", writes, contacts, max)
	}
	t.Logf("%d checks; %d contact writes for %d events of %d contacts", checks, writes, len(recs), contacts)
}

// slowWrites holds every pipeline that writes contacts (EVALSHA of the
// compare-and-set) for a while before sending it.
type slowWrites struct{ delay time.Duration }

func (h slowWrites) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h slowWrites) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h slowWrites) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "evalsha" {
				time.Sleep(h.delay)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestRedisFilterReread checks the new-contact filter (state/filter.go)
// where a wrong "not stored" would do harm: the partitions' records are
// read again after their state was written (by a new consumer group, as
// after a crash between the state writes and the offset commits).
// The first run makes every contact new without a load; the second must
// load each of them, so that their applied positions skip every record
// read again (a contact taken for new would apply them again: its actions
// produced again, or its history overwritten had it older records).
func TestRedisFilterReread(t *testing.T) {
	rs, err := rules.Parse("cart.yaml", []byte(cartRules))
	if err != nil {
		t.Fatal(err)
	}
	const contacts, perContact = 30, 10
	addr := startKafka(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	cfg := testConfig(t, addr, newClock(t0))
	cfg.InputKeyed = true
	cfg.BatchRecords = 10
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	recs := pageViews(t0, contacts, perContact)
	produce(t, addr, recs)
	srv := testenv.RedisServer(t)

	first := openRedis(t, srv)
	run := start(t, cfg, stream.Scoring{Rules: rs, Redis: first, FlushInterval: 5 * time.Millisecond}, nil)
	waitCommitted(t, addr, "leadpulse", "events", int64(len(recs)))
	run.shutdown(t)
	if got := first.Stats().Skipped; got != contacts {
		t.Fatalf("first run: %d loads skipped, want %d (every contact new, the filter in use)", got, contacts)
	}

	// Every record read again: a new consumer group starts at the log's
	// start, as a crash before every offset commit would.
	ctx := context.Background()
	cfg.Group = "leadpulse-again"

	second := openRedis(t, srv)
	reg := prometheus.NewRegistry()
	run = start(t, cfg, stream.Scoring{Rules: rs, Redis: second, FlushInterval: 5 * time.Millisecond}, reg)
	waitCommitted(t, addr, cfg.Group, "events", int64(len(recs)))
	run.shutdown(t)
	if st := second.Stats(); st.Skipped != 0 || st.Loaded < contacts {
		t.Errorf("second run: %d loads skipped, %d contacts loaded; want 0 and at least %d", st.Skipped, st.Loaded, contacts)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var skipped float64
	for _, mf := range mfs {
		if mf.GetName() == "leadpulse_records_skipped_total" {
			skipped = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if skipped != float64(len(recs)) {
		t.Errorf("second run: %v records skipped as applied, want all %d: records read again were applied again", skipped, len(recs))
	}
	for c := range contacts {
		st, err := second.Inspect(ctx, fmt.Sprintf("u-%d", c))
		if err != nil {
			t.Fatal(err)
		}
		if st.Contact.Seq != perContact {
			t.Errorf("contact u-%d holds %d events, want %d: records read again were applied again", c, st.Contact.Seq, perContact)
		}
	}
}

// pageViews makes perContact "Page Viewed" events of each of contacts
// users (u-0, u-1, …), keyed by user, one round of every user a second from
// t0.
func pageViews(t0 time.Time, contacts, perContact int) []*kgo.Record {
	var recs []*kgo.Record
	for i := range perContact {
		for c := range contacts {
			id := fmt.Sprintf("u-%d", c)
			at := t0.Add(time.Duration(i) * time.Second)
			recs = append(recs, &kgo.Record{Topic: "events", Key: []byte(id), Value: fmt.Appendf(nil,
				`{"type":"track","userId":%q,"event":"Page Viewed","messageId":"%s-%d","timestamp":%q}`, id, id, i, at.Format(time.RFC3339Nano))})
		}
	}
	return recs
}
