package stream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/stream"
)

// stallingHook is a webhook receiver that hangs until the test ends the
// hang — every request that arrives meanwhile is held and never processed —
// and then records what it is sent. The test, not a timer, ends the hang, so
// a slow machine cannot end it before the test has looked.
type stallingHook struct {
	release chan struct{} // closed when the hang ends
	once    sync.Once
	mu      sync.Mutex
	ids     []string
	byC     map[string][]string
}

func newStallingHook(t *testing.T) (*stallingHook, *httptest.Server) {
	h := &stallingHook{release: make(chan struct{}), byC: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if h.hung() {
			// Hung: the request is held until the sender gives up (its
			// timeout) or the hang ends, and is never processed.
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			http.Error(w, "hung", http.StatusServiceUnavailable)
			return
		}
		var rec struct{ ID, Contact string }
		if err := json.Unmarshal(body, &rec); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.ids = append(h.ids, rec.ID)
		h.byC[rec.Contact] = append(h.byC[rec.Contact], rec.ID)
		h.mu.Unlock()
	}))
	t.Cleanup(func() {
		h.end()
		srv.Close()
	})
	return h, srv
}

// end ends the hang: requests from now on are processed.
func (h *stallingHook) end() { h.once.Do(func() { close(h.release) }) }

func (h *stallingHook) hung() bool {
	select {
	case <-h.release:
		return false
	default:
		return true
	}
}

func (h *stallingHook) delivered() (ids []string, byContact map[string][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	byContact = map[string][]string{}
	for c, l := range h.byC {
		byContact[c] = slices.Clone(l)
	}
	return slices.Clone(h.ids), byContact
}

// syncBuffer is the stdout sink's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// lines returns the action records printed so far.
func (b *syncBuffer) actions(t *testing.T) (ids []string, byContact map[string][]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	byContact = map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(b.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct{ ID, Contact string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		ids = append(ids, rec.ID)
		byContact[rec.Contact] = append(byContact[rec.Contact], rec.ID)
	}
	return ids, byContact
}

// TestHungSinkDelaysOnlyItsOwnActions (issue 10, item 3): the actions of
// two sinks are interleaved on the actions topic; the webhook hangs (every
// request held, attempts timing out and retried), and the stdout sink
// delivers every one of its actions meanwhile. When the
// webhook recovers it gets each of its actions once, each contact's in
// order, and the stage commits everything. With one queue for all sinks
// (before), the stdout sink waited for the webhook poll after poll.
//
// The scenario is a 60 s hang; here the webhook hangs until every
// stdout action has arrived (or the wait below gives up: the hung sink held
// the other back), so the test does not depend on the machine's speed.
func TestHungSinkDelaysOnlyItsOwnActions(t *testing.T) {
	addr := startKafka(t)
	cfg := testConfig(t, addr, newClock(time.Now()))
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	want := map[string]map[string][]string{"hook": {}, "log": {}} // sink → contact → ids in order
	total := map[string]int{}
	for i := range 400 {
		contact := fmt.Sprintf("u%02d", i%40)
		sink := "log"
		if i%3 == 0 {
			sink = "hook"
		}
		id := fmt.Sprintf("act-%04d", i)
		want[sink][contact] = append(want[sink][contact], id)
		total[sink]++
		v := fmt.Sprintf(`{"id":%q,"action":"a","trigger":"t","contact":%q,"sink":%q,"at":"2026-03-02T09:00:00Z","score":1,"fit":0,"engagement":1,"stage":"","explain":{}}`, id, contact, sink)
		recs = append(recs, &kgo.Record{Topic: "actions", Key: []byte(contact), Value: []byte(v)})
	}
	produce(t, addr, recs)

	h, srv := newStallingHook(t)
	var out syncBuffer
	cl := client(t, addr)
	d, err := sinks.Open(sinks.Config{
		"hook": {Type: sinks.TypeWebhook, URL: srv.URL, Timeout: 300 * time.Millisecond,
			Policy: sinks.Policy{Retry: sinks.Retry{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}}},
		"log": {Type: sinks.TypeStdout},
	}, sinks.Deps{Kafka: cl, Stdout: &out}, sinks.Options{
		Dedupe:     sinks.NewMemoryDedupe(0),
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
	scfg := s.Config()
	group := scfg.DispatchGroup()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatch: %v", err)
		}
		_ = d.Close(context.Background())
	}()

	// Every stdout action arrives while the webhook is still hung.
	testenv.Eventually(t, 60*time.Second, func() error {
		if ids, _ := out.actions(t); len(ids) < total["log"] {
			return fmt.Errorf("the hung webhook held the other sink back: %d of %d stdout actions delivered", len(ids), total["log"])
		}
		return nil
	})
	if ids, _ := h.delivered(); len(ids) != 0 {
		t.Fatalf("the hung webhook recorded %d actions", len(ids))
	}
	h.end()

	// After the hang: every webhook action once, in order per contact.
	// The checks below say what is missing if they never all arrive.
	_ = testenv.Poll(60*time.Second, func() error {
		if ids, _ := h.delivered(); len(ids) < total["hook"] {
			return fmt.Errorf("%d of %d webhook actions delivered", len(ids), total["hook"])
		}
		return nil
	})
	waitCommitted(t, addr, group, "actions", int64(len(recs)))
	for sink, get := range map[string]func() ([]string, map[string][]string){
		"hook": h.delivered,
		"log":  func() ([]string, map[string][]string) { return out.actions(t) },
	} {
		ids, byContact := get()
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%s: action %s delivered twice", sink, id)
			}
			seen[id] = true
		}
		if len(seen) != total[sink] {
			t.Errorf("%s: %d distinct actions delivered, want %d", sink, len(seen), total[sink])
		}
		for c, ids := range want[sink] {
			if !slices.Equal(byContact[c], ids) {
				t.Errorf("%s: contact %s got %v, want %v in this order", sink, c, byContact[c], ids)
			}
		}
	}
	adm := kadm.NewClient(client(t, addr))
	lag, err := adm.Lag(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	if l := lag[group].Lag.TotalByTopic()["actions"].Lag; l != 0 {
		t.Errorf("dispatch lag %d after every action settled, want 0", l)
	}
}
