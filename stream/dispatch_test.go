package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// hook is a webhook receiver that records what it was sent.
type hook struct {
	mu        sync.Mutex
	ids       []string            // Idempotency-Key of each request, in arrival order
	byContact map[string][]string // action ids per contact, in arrival order
	block     chan struct{}       // when non-nil, requests hang until it closes
}

func newHook(t *testing.T, hang bool) (*hook, *httptest.Server) {
	h := &hook{byContact: map[string][]string{}}
	if hang {
		h.block = make(chan struct{})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.block != nil {
			select {
			case <-h.block:
			case <-r.Context().Done():
			}
			http.Error(w, "gave up", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var rec struct{ ID, Contact string }
		if err := json.Unmarshal(body, &rec); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.ids = append(h.ids, r.Header.Get("Idempotency-Key"))
		h.byContact[rec.Contact] = append(h.byContact[rec.Contact], rec.ID)
		h.mu.Unlock()
	}))
	t.Cleanup(func() {
		if h.block != nil {
			close(h.block)
		}
		srv.Close()
	})
	return h, srv
}

func (h *hook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ids)
}

// startDispatch runs a dispatch stage over a webhook sink at url (the
// default sink) with the given dedupe store and reply timeout, until the
// returned stop is called. A test that counts requests gives a timeout
// well above a loaded machine's reply time: a request that times out is
// sent again (at least once), and the count would include the retry.
func startDispatch(t *testing.T, cfg stream.Config, url string, dedupe sinks.Deduper, timeout time.Duration) (stop func()) {
	t.Helper()
	cl := client(t, cfg.Brokers[0])
	d, err := sinks.Open(sinks.Config{
		"hook": {Type: sinks.TypeWebhook, URL: url, Default: true, Timeout: timeout},
	}, sinks.Deps{Kafka: cl}, sinks.Options{
		Dedupe:     dedupe,
		DeadLetter: sinks.KafkaDeadLetter(cl, "actions.dlq"),
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := stream.NewDispatch(cfg, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("dispatch stage: %v", err)
			}
			closeCtx, closeCancel := context.WithTimeout(context.Background(), time.Second)
			defer closeCancel()
			_ = d.Close(closeCtx) // a hanging sink may leave work unsettled: that is the point
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestDispatchDeliversOnceInOrder puts actions (with a repeat and a value
// that is not an action) on the actions topic and checks that the webhook
// receives each action once, each contact's in order, that the bad value
// is dead-lettered, and that a second consumer group reading the same
// actions again (a crash before the commit) delivers nothing twice.
func TestDispatchDeliversOnceInOrder(t *testing.T) {
	addr := startKafka(t)
	cfg := testConfig(t, addr, newClock(time.Now()))
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	want := map[string][]string{}
	for i := range 60 {
		contact := fmt.Sprintf("u%d", i%7)
		id := fmt.Sprintf("act-%03d", i)
		want[contact] = append(want[contact], id)
		v := fmt.Sprintf(`{"id":%q,"action":"sales-alert","trigger":"hot-lead","contact":%q,"at":"2026-03-02T09:00:00Z","score":100,"fit":0,"engagement":100,"stage":"","explain":{}}`, id, contact)
		recs = append(recs, &kgo.Record{Topic: "actions", Key: []byte(contact), Value: []byte(v)})
		if i == 10 {
			recs = append(recs, &kgo.Record{Topic: "actions", Key: []byte(contact), Value: []byte(v)}) // redelivered
		}
	}
	recs = append(recs, &kgo.Record{Topic: "actions", Key: []byte("u0"), Value: []byte("not an action")})
	produce(t, addr, recs)

	h, srv := newHook(t, false)
	dedupe := sinks.NewMemoryDedupe(0)
	stop := startDispatch(t, cfg, srv.URL, dedupe, 10*time.Second)
	dlq := newConsumer(t, addr, "actions.dlq")
	dlq.until(1, 60*time.Second)
	testenv.Eventually(t, 60*time.Second, func() error {
		if n := h.count(); n < 60 {
			return fmt.Errorf("webhook received %d requests, want 60", n)
		}
		return nil
	})
	stop()

	if h.count() != 60 {
		t.Fatalf("webhook received %d requests, want 60 (each action once)", h.count())
	}
	for contact, ids := range want {
		if fmt.Sprint(h.byContact[contact]) != fmt.Sprint(ids) {
			t.Errorf("contact %s: delivered %v, want %v in this order", contact, h.byContact[contact], ids)
		}
	}
	if len(dlq.recs) != 1 || header(dlq.recs[0], stream.HeaderReason) == "" {
		t.Errorf("dead letters: %d, want the one bad value with a reason", len(dlq.recs))
	}

	// Another group reads every action again; the dedupe store has them.
	cfg.Group = "replayed"
	stop = startDispatch(t, cfg, srv.URL, dedupe, 10*time.Second)
	// The positive signal that the second group has read and settled every
	// record (60 actions, the repeat, the bad value): its committed offsets
	// reach the end of the topic. Only then does "nothing more arrived" say
	// anything.
	waitCommitted(t, addr, cfg.DispatchGroup(), "actions", int64(len(recs)))
	stop()
	if h.count() != 60 {
		t.Errorf("after re-reading the actions the webhook has %d requests, want still 60", h.count())
	}
}

// TestHangingSinkDoesNotHoldScoring runs the pipeline with a dispatch
// stage whose only sink never answers, and checks that scoring still puts
// every action on the actions topic. It logs how long that took with the
// hanging sink and without a dispatch stage, for comparison.
func TestHangingSinkDoesNotHoldScoring(t *testing.T) {
	rs := loadRules(t, b2bRules)
	in := makeInput(t, 3000, traffic.Config{Contacts: 200, Seed: 5})
	want, _ := replay(t, rs, in.lines)
	if len(want) < 10 {
		t.Fatalf("replay emitted %d actions; the test needs more", len(want))
	}

	run := func(withHangingSink bool) time.Duration {
		addr := startKafka(t)
		clock := newClock(traffic.DefaultStart.Add(-time.Hour))
		cfg := testConfig(t, addr, clock)
		if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		h, srv := newHook(t, withHangingSink)
		if withHangingSink {
			dcfg := cfg
			dcfg.DrainTimeout = 300 * time.Millisecond                 // do not wait for the sink at the end
			startDispatch(t, dcfg, srv.URL, nil, 200*time.Millisecond) // the sink never answers: do not wait for it
		}
		start(t, cfg, stream.Scoring{Rules: rs}, nil)
		recs := make([]*kgo.Record, len(in.recs)) // franz-go owns a produced record: copy
		for i, r := range in.recs {
			recs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}
		}
		began := time.Now()
		produce(t, addr, recs)
		actions := newConsumer(t, addr, "actions")
		got := actions.until(len(want), 30*time.Second)
		took := time.Since(began)
		if len(got) < len(want) {
			t.Fatalf("hanging sink %v: %d of %d actions reached the actions topic", withHangingSink, len(got), len(want))
		}
		if withHangingSink && h.count() != 0 {
			t.Errorf("the hanging sink answered %d requests", h.count())
		}
		return took
	}
	base := run(false)
	hanging := run(true)
	t.Logf("%d events → %d actions on the topic: %v without a dispatch stage, %v with a dispatch stage whose sink hangs (%.2fx)",
		len(in.recs), len(want), base.Round(time.Millisecond), hanging.Round(time.Millisecond), hanging.Seconds()/base.Seconds())
}
