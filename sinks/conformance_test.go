package sinks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadpulse/leadpulse/action"
	"github.com/leadpulse/leadpulse/internal/testenv"
)

// peer is a sink under the conformance suite, with its real peer: what the
// peer received, and a way to make it fail transiently and recover.
type peer struct {
	sink Sink
	// received returns the action records the peer holds, in the order
	// received.
	received func(t *testing.T) []action.Record
	// fail makes the next writes fail transiently until heal.
	fail, heal func(t *testing.T)
}

// conformance lists every sink. A new sink adds itself here.
var conformance = []struct {
	name string
	open func(t *testing.T) *peer
}{
	{"webhook", openWebhookPeer},
	{"kafka", openKafkaPeer},
	{"redis-stream", openRedisStreamPeer},
	{"stdout", openStdoutPeer},
}

func TestConformance(t *testing.T) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			t.Run("delivery", func(t *testing.T) { testDelivery(t, c.open(t)) })
			t.Run("retry", func(t *testing.T) { testRetry(t, c.open(t)) })
			t.Run("idempotency", func(t *testing.T) { testIdempotency(t, c.open(t)) })
			t.Run("drain", func(t *testing.T) { testDrain(t, c.open(t)) })
		})
	}
}

const sinkName = "under-test"

// testDispatcher is a Dispatcher over sinks with fast retries and a
// registry of its own; it is closed when the test ends.
func testDispatcher(t *testing.T, sinks map[string]Sink, opts Options) (*Dispatcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if opts.Registerer == nil {
		opts.Registerer = reg
	}
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error { return sleepTimer(ctx, min(d, time.Millisecond)) }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := NewDispatcher(sinks, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d, reg
}

// untilTrue polls cond every millisecond for up to 10s.
func untilTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if !cond() {
			return fmt.Errorf("waiting until %s", what)
		}
		return nil
	})
}

var seq atomic.Int64

// newAction returns an action record with a fresh id for sink.
func newAction(sink string) Action {
	n := seq.Add(1)
	return Action{Record: action.Record{
		ID: fmt.Sprintf("act-%04d", n), Action: "sales-alert", Trigger: "pricing-3x",
		Contact: fmt.Sprintf("u%d", n%7), At: "2026-03-06T09:00:00Z",
		Score: 120, Fit: 25, Engagement: 95, Stage: "mql", Sink: sink,
		Message: fmt.Sprintf("Hot lead u%d@example.com scored 120 (pricing-3x)", n%7),
		Explain: map[string]float64{"pricing-page": 30, "healthcare": 15},
	}}
}

func idsOf(recs []action.Record) []string {
	out := make([]string, len(recs))
	for i := range recs {
		out[i] = recs[i].ID
	}
	return out
}

func sameIDs(t *testing.T, got []action.Record, want ...string) {
	t.Helper()
	g := idsOf(got)
	slices.Sort(g)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("peer received ids %v, want each of %v once", g, w)
	}
}

func testDelivery(t *testing.T, p *peer) {
	d, _ := testDispatcher(t, map[string]Sink{sinkName: p.sink}, Options{})
	var want []string
	var batch []Action
	for range 5 {
		a := newAction(sinkName)
		batch = append(batch, a)
		want = append(want, a.Record.ID)
	}
	if err := d.Dispatch(t.Context(), batch...); err != nil {
		t.Fatal(err)
	}
	got := p.received(t)
	sameIDs(t, got, want...)
	for _, r := range got { // every field of SPEC §3 arrives as sent
		var sent *Action
		for i := range batch {
			if batch[i].Record.ID == r.ID {
				sent = &batch[i]
			}
		}
		gj, _ := json.Marshal(r)
		wj, _ := json.Marshal(sent.Record)
		if !bytes.Equal(gj, wj) {
			t.Errorf("received\n%s\nwant\n%s", gj, wj)
		}
	}
	if n := testutil.ToFloat64(d.m.delivered.WithLabelValues(sinkName)); n != 5 {
		t.Errorf("delivered_total = %v, want 5", n)
	}
}

func testRetry(t *testing.T, p *peer) {
	d, _ := testDispatcher(t, map[string]Sink{sinkName: p.sink}, Options{
		Policies: map[string]Policy{sinkName: {Retry: Retry{Initial: time.Millisecond, For: -1}}},
	})
	a := newAction(sinkName)
	p.fail(t)
	done := make(chan error, 1)
	go func() { done <- d.Dispatch(t.Context(), a) }()
	untilTrue(t, "a transient failure is retried", func() bool {
		return testutil.ToFloat64(d.m.retried.WithLabelValues(sinkName)) >= 1
	})
	p.heal(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameIDs(t, p.received(t), a.Record.ID)
	if n := testutil.ToFloat64(d.m.failed.WithLabelValues(sinkName, "transient")); n < 1 {
		t.Errorf("failed_total{kind=transient} = %v, want ≥ 1", n)
	}
	if n := testutil.ToFloat64(d.m.deadLettered.WithLabelValues(sinkName, ReasonRejected)); n != 0 {
		t.Errorf("dead_lettered_total = %v, want 0: a transient failure is not permanent", n)
	}
}

func testIdempotency(t *testing.T, p *peer) {
	dedupe := NewMemoryDedupe(0)
	d, _ := testDispatcher(t, map[string]Sink{sinkName: p.sink}, Options{Dedupe: dedupe})
	a, b, c := newAction(sinkName), newAction(sinkName), newAction(sinkName)
	ctx := t.Context()
	// Twice in a row, twice in one call, and from four goroutines at once.
	for _, call := range [][]Action{{a}, {a}, {b, b, a}} {
		if err := d.Dispatch(ctx, call...); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- d.Dispatch(ctx, c, a) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A second dispatcher sharing the delivered ids (a restart, another
	// process after a rebalance) does not deliver them again either.
	d2, _ := testDispatcher(t, map[string]Sink{sinkName: p.sink}, Options{Dedupe: dedupe})
	if err := d2.Dispatch(ctx, a, b, c); err != nil {
		t.Fatal(err)
	}
	sameIDs(t, p.received(t), a.Record.ID, b.Record.ID, c.Record.ID)
	if n := testutil.ToFloat64(d.m.duplicates.WithLabelValues(sinkName)); n != 3+1+3+3 {
		t.Errorf("duplicates_total = %v, want 10", n)
	}
}

func testDrain(t *testing.T, p *peer) {
	d, _ := testDispatcher(t, map[string]Sink{sinkName: p.sink}, Options{
		Policies: map[string]Policy{sinkName: {Retry: Retry{Initial: time.Millisecond, For: -1}}},
	})
	p.fail(t)
	var want []string
	errs := make(chan error, 3)
	for range 3 {
		a := newAction(sinkName)
		want = append(want, a.Record.ID)
		go func() { errs <- d.Dispatch(t.Context(), a) }()
	}
	untilTrue(t, "all three are in flight and failing", func() bool {
		return testutil.ToFloat64(d.m.inFlight.WithLabelValues(sinkName)) == 3 &&
			testutil.ToFloat64(d.m.retried.WithLabelValues(sinkName)) >= 3
	})
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- d.Close(ctx)
	}()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	untilTrue(t, "Close refuses new actions", func() bool {
		return errors.Is(d.Dispatch(dead, newAction(sinkName)), ErrClosed)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while actions were in flight", err)
	default:
	}
	p.heal(t)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("Dispatch during drain: %v", err)
		}
	}
	sameIDs(t, p.received(t), want...)
}

// --- peers

func openWebhookPeer(t *testing.T) *peer {
	var (
		failing atomic.Bool
		mu      sync.Mutex
		bodies  [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if failing.Load() {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get(HeaderIdempotencyKey) == "" {
			http.Error(w, "no idempotency key", http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return &peer{
		sink: NewWebhook(sinkName, SinkConfig{URL: srv.URL + "/hook", Timeout: 5 * time.Second}, srv.Client(), nil),
		received: func(t *testing.T) []action.Record {
			mu.Lock()
			defer mu.Unlock()
			var out []action.Record
			for _, b := range bodies {
				out = append(out, decodeRecord(t, b))
			}
			return out
		},
		fail: func(*testing.T) { failing.Store(true) },
		heal: func(*testing.T) { failing.Store(false) },
	}
}

func openKafkaPeer(t *testing.T) *peer {
	const topic = "email-sends"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// A bounded RecordRetries makes a broker's failure reach the sink (as
	// Deps.Kafka recommends) instead of being retried inside the client.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordRetries(2),
		kgo.MetadataMinAge(10*time.Millisecond), // retries wait for a metadata refresh; 5s by default
		kgo.RetryBackoffFn(func(int) time.Duration { return time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	var fault *kfake.FaultHandle
	return &peer{
		sink:     NewKafka(cl, topic, 5*time.Second),
		received: func(t *testing.T) []action.Record { return consumeAll(t, c.ListenAddrs(), topic) },
		fail: func(*testing.T) {
			fault = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1})
		},
		heal: func(*testing.T) { fault.Remove() },
	}
}

// consumeAll reads every record of topic, checks its key and headers, and
// returns the values.
func consumeAll(t *testing.T, addrs []string, topic string) []action.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var out []action.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(out), total, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			rec := decodeRecord(t, r.Value)
			if string(r.Key) != rec.Contact {
				t.Errorf("record key %q, want the contact %q", r.Key, rec.Contact)
			}
			if h := header(r, "idempotency-key"); h != rec.ID {
				t.Errorf("idempotency-key header %q, want %q", h, rec.ID)
			}
			out = append(out, rec)
		})
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func openRedisStreamPeer(t *testing.T) *peer {
	const stream = "leadpulse:audit"
	srv := testenv.StartRedis(t, testenv.RedisConfig{})
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rc.Close() })
	config := func(t *testing.T, maxmemory string) {
		if reply, err := srv.Do("CONFIG", "SET", "maxmemory", maxmemory); err != nil || reply != "+OK" {
			t.Fatalf("CONFIG SET maxmemory %s: %q %v", maxmemory, reply, err)
		}
	}
	return &peer{
		sink: NewRedisStream(rc, stream, 1000, 5*time.Second),
		received: func(t *testing.T) []action.Record {
			entries, err := rc.XRange(t.Context(), stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			var out []action.Record
			for _, e := range entries {
				rec := decodeRecord(t, []byte(e.Values["action"].(string)))
				if e.Values["id"] != rec.ID {
					t.Errorf("entry field id %v, want %q", e.Values["id"], rec.ID)
				}
				out = append(out, rec)
			}
			return out
		},
		// Over maxmemory (with the default noeviction), Redis refuses
		// writes with an OOM error reply: a real, transient failure.
		fail: func(t *testing.T) { config(t, "1") },
		heal: func(t *testing.T) { config(t, "0") },
	}
}

// flakyWriter is standard output that fails while failing is set.
type flakyWriter struct {
	failing atomic.Bool
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	if w.failing.Load() {
		return 0, errors.New("write /dev/stdout: resource temporarily unavailable")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *flakyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func openStdoutPeer(t *testing.T) *peer {
	w := &flakyWriter{}
	return &peer{
		sink: NewStdout(w, FormatJSON),
		received: func(t *testing.T) []action.Record {
			var out []action.Record
			sc := bufio.NewScanner(bytes.NewBufferString(w.String()))
			for sc.Scan() {
				out = append(out, decodeRecord(t, sc.Bytes()))
			}
			return out
		},
		fail: func(*testing.T) { w.failing.Store(true) },
		heal: func(*testing.T) { w.failing.Store(false) },
	}
}

func decodeRecord(t *testing.T, b []byte) action.Record {
	t.Helper()
	a, err := DecodeAction(b)
	if err != nil {
		t.Fatalf("peer received %q: %v", b, err)
	}
	return a.Record
}
