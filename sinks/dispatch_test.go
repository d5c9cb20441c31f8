package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// scriptSink is a Sink whose Writes return the errors of a script (one
// func per call, then nil) and that records what each Write was given.
type scriptSink struct {
	mu     sync.Mutex
	script []func(batch []Action) error // guarded by mu
	writes [][]string                   // guarded by mu: ids per Write
	closed bool
}

func (s *scriptSink) Write(_ context.Context, batch []Action) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, a := range batch {
		ids = append(ids, a.Record.ID)
	}
	s.writes = append(s.writes, ids)
	if len(s.script) == 0 {
		return nil
	}
	f := s.script[0]
	s.script = s.script[1:]
	return f(batch)
}

func (s *scriptSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *scriptSink) calls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// deadLetters collects what a Dispatcher dead-letters.
type deadLetters struct {
	mu      sync.Mutex
	ids     []string
	reasons []error
	fail    error
}

func (dl *deadLetters) put(_ context.Context, a Action, reason error) error {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.fail != nil {
		return dl.fail
	}
	dl.ids = append(dl.ids, a.Record.ID)
	dl.reasons = append(dl.reasons, reason)
	return nil
}

func TestRouting(t *testing.T) {
	for _, tc := range []struct {
		name, sink, def string
		wantSink        string // "" → dead letter
		wantReason      string
	}{
		{"named", "b", "", "b", ""},
		{"named, with a default", "b", "a", "b", ""},
		{"empty → default", "", "a", "a", ""},
		{"unknown → default", "sales-apac", "a", "a", ""},
		{"empty, no default", "", "", "", ReasonUnknownSink},
		{"unknown, no default", "sales-apac", "", "", ReasonUnknownSink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := &scriptSink{}, &scriptSink{}
			var dl deadLetters
			d, _ := testDispatcher(t, map[string]Sink{"a": a, "b": b}, Options{Default: tc.def, DeadLetter: dl.put})
			act := newAction(tc.sink)
			if err := d.Dispatch(t.Context(), act); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{"a": len(a.calls()), "b": len(b.calls())}
			if tc.wantSink != "" {
				if got[tc.wantSink] != 1 || got["a"]+got["b"] != 1 {
					t.Errorf("writes %v, want one to %s", got, tc.wantSink)
				}
				return
			}
			if got["a"]+got["b"] != 0 || len(dl.ids) != 1 {
				t.Fatalf("writes %v, dead letters %v: want a dead letter only", got, dl.ids)
			}
			if r := dl.reasons[0]; !errors.Is(r, ErrUnknownSink) || !IsPermanent(r) || Reason(r) != tc.wantReason || !strings.Contains(r.Error(), "sinks:") {
				t.Errorf("reason %v (%s)", r, Reason(r))
			}
			if n := testutil.ToFloat64(d.m.deadLettered.WithLabelValues(unrouted, ReasonUnknownSink)); n != 1 {
				t.Errorf("dead_lettered_total{sink=unrouted} = %v", n)
			}
		})
	}
}

func TestInvalidAction(t *testing.T) {
	s := &scriptSink{}
	var dl deadLetters
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{Default: "a", DeadLetter: dl.put})
	bad := newAction("a")
	bad.Record.ID = ""
	if err := d.Dispatch(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if len(dl.reasons) != 1 || Reason(dl.reasons[0]) != ReasonInvalid {
		t.Fatalf("dead letters %v", dl.reasons)
	}
	_, err := DecodeAction([]byte(`{"action":"x"`))
	if !errors.Is(err, ErrInvalidAction) || !IsPermanent(err) {
		t.Errorf("DecodeAction of broken JSON: %v", err)
	}
	_, err = DecodeAction([]byte(`{"action":"x"}`))
	if !errors.Is(err, ErrInvalidAction) {
		t.Errorf("DecodeAction without id: %v", err)
	}
	a, err := DecodeAction([]byte(`{"id":"i1","action":"x","sink":"a","explain":{}}`))
	if err != nil || a.Record.ID != "i1" || a.Record.Sink != "a" || string(a.JSON) != `{"id":"i1","action":"x","sink":"a","explain":{}}` {
		t.Errorf("DecodeAction: %+v %v", a, err)
	}
}

// TestBatchOutcomes: a Write whose actions fare differently settles each
// on its own: delivered ones are remembered, refused ones dead-lettered,
// only the transient ones written again.
func TestBatchOutcomes(t *testing.T) {
	ok, refused, busy := newAction("a"), newAction("a"), newAction("a")
	s := &scriptSink{script: []func([]Action) error{
		func(batch []Action) error {
			errs := make([]error, len(batch))
			for i, a := range batch {
				switch a.Record.ID {
				case refused.Record.ID:
					errs[i] = Permanent(errors.New("schema says no"))
				case busy.Record.ID:
					errs[i] = Transient(errors.New("busy"))
				}
			}
			return &BatchError{Errs: errs}
		},
	}}
	var dl deadLetters
	dedupe := NewMemoryDedupe(0)
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{DeadLetter: dl.put, Dedupe: dedupe})
	if err := d.Dispatch(t.Context(), ok, refused, busy); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{ok.Record.ID, refused.Record.ID, busy.Record.ID}, {busy.Record.ID}}
	if got := s.calls(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("writes %v, want %v", got, want)
	}
	if !slices.Equal(dl.ids, []string{refused.Record.ID}) {
		t.Errorf("dead letters %v, want %s", dl.ids, refused.Record.ID)
	}
	seen, _ := dedupe.Delivered(t.Context(), []string{ok.Record.ID, refused.Record.ID, busy.Record.ID})
	if !slices.Equal(seen, []bool{true, false, true}) {
		t.Errorf("remembered %v, want delivered ones only", seen)
	}
}

func TestBatching(t *testing.T) {
	s := &scriptSink{}
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{Policies: map[string]Policy{"a": {Batch: 2}}})
	var batch []Action
	for range 5 {
		batch = append(batch, newAction("a"))
	}
	if err := d.Dispatch(t.Context(), batch...); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, w := range s.calls() {
		sizes = append(sizes, len(w))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{1, 2, 2}) {
		t.Errorf("write sizes %v, want batches of at most 2", sizes)
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		retry Retry
		calls int
	}{
		{"attempts", Retry{Attempts: 3}, 3},
		// Waits of 1s ±50% within 2.5s: 2 to 4 attempts, as the jitter falls.
		{"for", Retry{Initial: time.Second, Max: time.Second, For: 2500 * time.Millisecond}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := func([]Action) error {
				return &TransientError{Err: &StatusError{URL: "https://x", Status: 502}}
			}
			s := &scriptSink{script: []func([]Action) error{down, down, down, down, down, down}}
			var dl deadLetters
			// A fake clock that each sleep moves on.
			var mu sync.Mutex
			now := time.Unix(0, 0)
			d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{
				DeadLetter: dl.put,
				Policies:   map[string]Policy{"a": {Retry: tc.retry}},
				Now:        func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
				Sleep: func(_ context.Context, d time.Duration) error {
					mu.Lock()
					defer mu.Unlock()
					now = now.Add(d)
					return nil
				},
			})
			if err := d.Dispatch(t.Context(), newAction("a")); err != nil {
				t.Fatal(err)
			}
			n := len(s.calls())
			if tc.calls > 0 && n != tc.calls {
				t.Errorf("%d attempts, want %d", n, tc.calls)
			}
			if tc.retry.For > 0 {
				if elapsed := now.Sub(time.Unix(0, 0)); n < 2 || elapsed > tc.retry.For {
					t.Errorf("%d attempts over %v, want 2 or more within %v", n, elapsed, tc.retry.For)
				}
			}
			if len(dl.reasons) != 1 {
				t.Fatalf("dead letters: %v", dl.reasons)
			}
			r := dl.reasons[0]
			var se *StatusError
			if !errors.Is(r, ErrRetriesExhausted) || !IsPermanent(r) || Reason(r) != ReasonExhausted || !errors.As(r, &se) || se.Status != 502 {
				t.Errorf("reason %v: want retries-exhausted wrapping the last failure", r)
			}
			if n := testutil.ToFloat64(d.m.deadLettered.WithLabelValues("a", ReasonExhausted)); n != 1 {
				t.Errorf("dead_lettered_total{reason=retries-exhausted} = %v", n)
			}
		})
	}
}

func TestDeadLetterFailureLeavesUnsettled(t *testing.T) {
	s := &scriptSink{script: []func([]Action) error{func([]Action) error { return Permanent(errors.New("no")) }}}
	dl := deadLetters{fail: errors.New("kafka: not enough replicas")}
	dedupe := NewMemoryDedupe(0)
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{DeadLetter: dl.put, Dedupe: dedupe})
	a := newAction("a")
	err := d.Dispatch(t.Context(), a)
	if !errors.Is(err, ErrDeadLetter) || !strings.Contains(err.Error(), "not enough replicas") {
		t.Fatalf("Dispatch = %v, want ErrDeadLetter with the cause", err)
	}
	// Read again, it is tried again (it was neither delivered nor remembered).
	if err := d.Dispatch(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if n := len(s.calls()); n != 2 {
		t.Errorf("%d writes, want 2", n)
	}
}

func TestCancelledDispatch(t *testing.T) {
	down := func([]Action) error { return Transient(errors.New("down")) }
	s := &scriptSink{script: []func([]Action) error{down, down, down, down, down, down, down, down, down, down}}
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{Policies: map[string]Policy{"a": {Retry: Retry{For: -1}}}})
	ctx, cancel := context.WithCancel(t.Context())
	d.sleep = func(ctx context.Context, _ time.Duration) error { cancel(); <-ctx.Done(); return ctx.Err() }
	err := d.Dispatch(ctx, newAction("a"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dispatch = %v, want context.Canceled: not settled", err)
	}
}

func TestCloseIdempotentAndClosesSinks(t *testing.T) {
	s := &scriptSink{}
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{})
	for range 2 {
		if err := d.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !s.closed {
		t.Error("the sink was not closed")
	}
	if err := d.Dispatch(t.Context(), newAction("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Dispatch after Close = %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	s := &scriptSink{}
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{Policies: map[string]Policy{"a": {Rate: Rate{N: 20, Per: time.Second}, Batch: 1}}})
	start := time.Now()
	for range 5 {
		if err := d.Dispatch(t.Context(), newAction("a")); err != nil {
			t.Fatal(err)
		}
	}
	// 20/s with a burst of 1: the 2nd to 5th wait 50ms each.
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("5 actions at 20/s took %v, want at least 200ms", took)
	}
}

func TestNewDispatcherErrors(t *testing.T) {
	s := &scriptSink{}
	for _, tc := range []struct {
		name  string
		sinks map[string]Sink
		opts  Options
		want  string
	}{
		{"no sinks", nil, Options{}, "none configured"},
		{"unknown default", map[string]Sink{"a": s}, Options{Default: "b"}, `default sink "b"`},
		{"policy of an unknown sink", map[string]Sink{"a": s}, Options{Policies: map[string]Policy{"b": {}}}, `sink "b"`},
		{"bad policy", map[string]Sink{"a": s}, Options{Policies: map[string]Policy{"a": {Concurrency: -2}}}, "concurrency is -2"},
	} {
		_, err := NewDispatcher(tc.sinks, tc.opts)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrConfig with %q", tc.name, err, tc.want)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	d, reg := testDispatcher(t, map[string]Sink{"a": &scriptSink{}}, Options{})
	if err := d.Dispatch(t.Context(), newAction("a")); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{ // as the package doc lists them
		"leadpulse_sink_dead_lettered_total", "leadpulse_sink_dedupe_errors_total", "leadpulse_sink_delivered_total",
		"leadpulse_sink_delivery_seconds", "leadpulse_sink_duplicates_total", "leadpulse_sink_failed_total",
		"leadpulse_sink_in_flight_actions", "leadpulse_sink_retried_total",
	}
	if !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
	if _, err := NewDispatcher(map[string]Sink{"a": &scriptSink{}}, Options{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("a second Dispatcher on one registry: %v", err)
	}
}

func TestKafkaPermanentError(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "email-sends"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "email-sends", Err: kerr.TopicAuthorizationFailed})
	err = NewKafka(cl, "email-sends", 5*time.Second).Write(t.Context(), []Action{withJSON(newAction("email"))})
	if !IsPermanent(err) || !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.Contains(err.Error(), "email-sends") {
		t.Errorf("Write = %v, want a permanent error naming the topic", err)
	}
}

func TestRedisStreamErrors(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, testenv.RedisConfig{})
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rc.Close() })
	if err := rc.Set(t.Context(), "not-a-stream", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err := NewRedisStream(rc, "not-a-stream", 0, 0).Write(t.Context(), []Action{withJSON(newAction("audit")), withJSON(newAction("audit"))})
	var be *BatchError
	if !errors.As(err, &be) || len(be.Errs) != 2 || !IsPermanent(be.Errs[0]) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Write to a key of another type = %v, want permanent WRONGTYPE per action", err)
	}
	// The cap holds (approximately: MAXLEN ~ trims whole nodes).
	s := NewRedisStream(rc, "capped", 10, 0)
	for range 30 {
		var batch []Action
		for range 10 {
			batch = append(batch, withJSON(newAction("audit")))
		}
		if err := s.Write(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.XLen(t.Context(), "capped").Val(); n >= 300 || n < 10 {
		t.Errorf("XLEN %d after 300 XADDs with maxlen ~10", n)
	}
	srv.Stop(t)
	err = s.Write(t.Context(), []Action{withJSON(newAction("audit"))})
	if err == nil || IsPermanent(err) || !errors.Is(err, ErrTransient) {
		t.Errorf("Write to a stopped server = %v, want transient", err)
	}
}

func withJSON(a Action) Action {
	a.JSON = jsonOf(a)
	return a
}

func TestMemoryDedupeBounded(t *testing.T) {
	m := NewMemoryDedupe(3)
	ctx := t.Context()
	for i := range 5 {
		_ = m.Remember(ctx, []string{fmt.Sprint(i)})
	}
	_ = m.Remember(ctx, []string{"4"}) // already there: not a new entry
	got, _ := m.Delivered(ctx, []string{"0", "1", "2", "3", "4", "5"})
	if !slices.Equal(got, []bool{false, false, true, true, true, false}) {
		t.Errorf("Delivered = %v, want the last 3 remembered", got)
	}
	if len(m.ids) != 3 {
		t.Errorf("%d ids held, want 3", len(m.ids))
	}
}

func TestRedisDedupe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"standalone", func(t *testing.T) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: testenv.RedisServer(t)})
		}},
		{"cluster", func(t *testing.T) redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisCluster(t)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := tc.client(t)
			t.Cleanup(func() { rc.Close() })
			ctx := t.Context()
			dd := NewRedisDedupe(rc, "", 0)
			if k := dd.Key("a1"); k != "leadpulse:delivered:{a1}" {
				t.Errorf("key %q", k)
			}
			var ids []string
			for i := range 20 {
				ids = append(ids, fmt.Sprintf("act-%d", i))
			}
			if err := dd.Remember(ctx, ids[:10]); err != nil {
				t.Fatal(err)
			}
			got, err := dd.Delivered(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range got {
				if g != (i < 10) {
					t.Errorf("Delivered(%s) = %v", ids[i], g)
				}
			}
			ttl := rc.TTL(ctx, dd.Key(ids[0])).Val()
			if ttl < DefaultDedupeTTL-time.Minute || ttl > DefaultDedupeTTL {
				t.Errorf("TTL %v, want about %v", ttl, DefaultDedupeTTL)
			}
			// Through two dispatchers sharing it (a restart): delivered once.
			s := &scriptSink{}
			a := newAction("a")
			for range 2 {
				d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{Dedupe: dd})
				if err := d.Dispatch(ctx, a); err != nil {
					t.Fatal(err)
				}
				if err := d.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(s.calls()); n != 1 {
				t.Errorf("%d writes, want 1", n)
			}
		})
	}
}

// TestDedupeLookupFailureRetries: with the delivered-ids store down, an
// action waits (it is not delivered unchecked), and goes once the store is
// back.
func TestDedupeLookupFailureRetries(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, testenv.RedisConfig{})
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rc.Close() })
	s := &scriptSink{}
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{Dedupe: NewRedisDedupe(rc, "", 0)})
	srv.Stop(t)
	done := make(chan error, 1)
	go func() { done <- d.Dispatch(t.Context(), newAction("a")) }()
	untilTrue(t, "the lookup fails", func() bool {
		return testutil.ToFloat64(d.m.dedupeErrors.WithLabelValues("lookup")) >= 2
	})
	if n := len(s.calls()); n != 0 {
		t.Fatalf("%d writes while the dedupe store was down", n)
	}
	srv.Start(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(s.calls()); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

func TestKafkaDeadLetter(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "actions.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s := &scriptSink{script: []func([]Action) error{func([]Action) error {
		return Permanent(&StatusError{URL: "https://x", Status: 422, Body: "unknown field"})
	}}}
	d, _ := testDispatcher(t, map[string]Sink{"a": s}, Options{DeadLetter: KafkaDeadLetter(cl, "actions.dlq")})
	a := withJSON(newAction("a"))
	a.Origin = &kgo.Record{Topic: "actions", Partition: 2, Offset: 41, Key: []byte(a.Record.Contact), Value: a.JSON,
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}}
	if err := d.Dispatch(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("actions.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got *kgo.Record
	for got == nil && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = r })
	}
	if got == nil {
		t.Fatal("no dead letter on actions.dlq")
	}
	if string(got.Value) != string(a.JSON) || string(got.Key) != a.Record.Contact {
		t.Errorf("dead letter %s / %s", got.Key, got.Value)
	}
	for k, want := range map[string]string{
		"content-type": "application/json", HeaderReason: ReasonRejected, HeaderSourceTopic: "actions",
		HeaderSourcePartition: "2", HeaderSourceOffset: "41",
	} {
		if h := header(got, k); h != want {
			t.Errorf("header %s = %q, want %q", k, h, want)
		}
	}
	if h := header(got, HeaderMessage); !strings.Contains(h, "422") || !strings.Contains(h, "unknown field") {
		t.Errorf("header %s = %q", HeaderMessage, h)
	}
}

func TestDeadLetterUndecodable(t *testing.T) {
	var dl deadLetters
	d, _ := testDispatcher(t, map[string]Sink{"a": &scriptSink{}}, Options{DeadLetter: dl.put})
	value := []byte(`{"id": 12`)
	a, err := DecodeAction(value)
	if err == nil {
		t.Fatal("DecodeAction accepted broken JSON")
	}
	a.JSON = value
	if err := d.DeadLetter(t.Context(), a, err); err != nil {
		t.Fatal(err)
	}
	if len(dl.reasons) != 1 || Reason(dl.reasons[0]) != ReasonInvalid {
		t.Errorf("dead letters %v", dl.reasons)
	}
	if n := testutil.ToFloat64(d.m.deadLettered.WithLabelValues(unrouted, ReasonInvalid)); n != 1 {
		t.Errorf("dead_lettered_total{sink=unrouted,reason=invalid} = %v", n)
	}
}

// TestExhaustedActionReachesDeadLetterTopic (issue 10, item 2): an action
// read an hour after it was produced fails transiently until its (short)
// retry budget is spent and lands on actions.dlq, although the dead-letter
// client's RecordDeliveryTimeout (10s) is far shorter than the action's
// age: the dead letter carries its own timestamp and the source's in a
// header. Copying the source's timestamp, as before, failed the produce
// ("records have timed out before they were able to be produced") and left
// the action unsettled.
func TestExhaustedActionReachesDeadLetterTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "actions.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	down := func([]Action) error { return Transient(errors.New("503 from the receiver")) }
	s := &scriptSink{script: []func([]Action) error{down, down, down, down, down, down}}
	d, err := NewDispatcher(map[string]Sink{"a": s}, Options{
		Policies:   map[string]Policy{"a": {Retry: Retry{Initial: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}}},
		DeadLetter: KafkaDeadLetter(cl, "actions.dlq"),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	a := withJSON(newAction("a"))
	produced := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	a.Origin = &kgo.Record{Topic: "actions", Partition: 0, Offset: 7, Key: []byte(a.Record.Contact), Value: a.JSON, Timestamp: produced}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := d.Dispatch(ctx, a); err != nil {
		t.Fatalf("Dispatch: %v (the exhausted action was not dead-lettered)", err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("actions.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got *kgo.Record
	for got == nil && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = r })
	}
	if got == nil {
		t.Fatal("no dead letter on actions.dlq")
	}
	if h := header(got, HeaderReason); h != ReasonExhausted {
		t.Errorf("reason %q, want %s", h, ReasonExhausted)
	}
	if h := header(got, HeaderSourceTimestamp); h != produced.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
		t.Errorf("source.timestamp %q, want %s", h, produced.UTC())
	}
	if age := time.Since(got.Timestamp); age > time.Minute || age < -time.Minute {
		t.Errorf("dead letter timestamp %v: want its own (now), not the source's", got.Timestamp)
	}
}
