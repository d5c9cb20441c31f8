package stream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// startKafka starts a one-broker kfake cluster on a free port of 127.0.0.1
// (real TCP) and returns its address.
func startKafka(t testing.TB) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// testClock is an injected wall clock.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *testClock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func newClock(t time.Time) *testClock { c := &testClock{}; c.set(t); return c }

// testLogger logs to t until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// loadRules loads a rules file with identity merging off (identity.merge:
// false), for tests that produce their input in bulk: event time then runs
// hours ahead of a hand-over's round trip, so an anonymous id's timers and
// later events meet the partition's clock before the merge, where replay's
// one clock has them after it. Merging live is tested at a steady rate
// (identity_test.go, loadRulesMerging); replay runs the same rules.
func loadRules(t testing.TB, path string) *rules.Ruleset {
	t.Helper()
	rs := loadRulesMerging(t, path)
	rs.Identity().Merge = false
	return rs
}

// loadRulesMerging loads a rules file as it is.
func loadRulesMerging(t testing.TB, path string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.LoadFile(path)
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	return rs
}

// input is a test stream: each entry is a record value for the events topic
// and the line replay reads for it.
type input struct {
	recs  []*kgo.Record
	lines [][]byte // replay's view; nil for records replay cannot read (msgpack garbage)
	last  time.Time
}

var badLines = []string{
	`not json at all`,
	`{"type":"page","properties":{"path":"/pricing"},"timestamp":"2026-01-05T10:00:00Z"}`,
	`{"userId":"u-x","timestamp":"2026-01-05T10:00:00Z"}`,
	`{"type":"page","userId":"u-x","timestamp":"yesterday"}`,
	`{"type":"click","userId":"u-x","timestamp":"2026-01-05T10:00:00Z"}`,
}

// makeInput returns n generated B2B events (every 5th as msgpack), with the
// bad lines spread among them. Each record is keyed by its contact, so that
// the events of one contact stay in order through the events topic.
func makeInput(t testing.TB, n int, cfg traffic.Config) *input {
	t.Helper()
	g := traffic.New(cfg)
	in := &input{}
	for i := range n {
		if i%(n/len(badLines)+1) == n/(2*len(badLines)) {
			b := []byte(badLines[len(in.recs)%len(badLines)])
			in.recs = append(in.recs, &kgo.Record{Topic: "events", Value: b})
			in.lines = append(in.lines, b)
		}
		e := g.Next()
		r, js := eventRecord(t, e, i%5 == 2)
		in.recs = append(in.recs, r)
		in.lines = append(in.lines, js)
		in.last = e.Timestamp()
	}
	return in
}

// replay runs engine.Replay over the lines and returns the action records
// (decoded) and the bad-input reasons.
func replay(t testing.TB, rs *rules.Ruleset, lines [][]byte) ([]map[string]any, map[event.Reason]int) {
	t.Helper()
	var out bytes.Buffer
	sum, err := engine.Replay(context.Background(), rs, bytes.NewReader(bytes.Join(lines, []byte("\n"))), engine.ReplayOptions{Out: &out})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var acts []map[string]any
	dec := json.NewDecoder(&out)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, m)
	}
	return acts, sum.BadReasons
}

func client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t testing.TB, addr string, recs []*kgo.Record, opts ...kgo.Opt) {
	t.Helper()
	cl := client(t, addr, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumer reads a topic from the start, outside any group.
type consumer struct {
	t    testing.TB
	cl   *kgo.Client
	recs []*kgo.Record
}

func newConsumer(t testing.TB, addr, topic string) *consumer {
	return &consumer{t: t, cl: client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))}
}

// until reads until it holds n records, failing the test after timeout.
func (c *consumer) until(n int, timeout time.Duration) []*kgo.Record {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(c.recs) < n {
		if time.Now().After(deadline) {
			c.t.Fatalf("got %d records, want %d within %v", len(c.recs), n, timeout)
		}
		c.poll(time.Until(deadline))
	}
	return c.recs
}

// poll reads what arrives within d.
func (c *consumer) poll(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := c.cl.PollFetches(ctx)
	fs.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r) })
}

// waitEndOffsets waits until the topic holds n records, counted by reading
// them with read_committed (the ingest stage writes in transactions, whose
// markers take offsets too, so offsets are not counts), and returns the
// end offset of each partition once it does.
func waitEndOffsets(t testing.TB, addr, topic string, n int64, timeout time.Duration) map[int32]int64 {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got int64
	testenv.Eventually(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		got += int64(fs.NumRecords())
		if got < n {
			return fmt.Errorf("topic %s holds %d records, want %d", topic, got, n)
		}
		return nil
	})
	adm := kadm.NewClient(cl)
	eo, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	eo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends
}

// decodeActions decodes action record values and checks their key and
// content type.
func decodeActions(t testing.TB, recs []*kgo.Record) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range recs {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("action %s: %v", r.Value, err)
		}
		if string(r.Key) != m["contact"] {
			t.Errorf("action key %q, contact %v: actions must be keyed by contact", r.Key, m["contact"])
		}
		if h := header(r, "content-type"); h != stream.ContentTypeJSON {
			t.Errorf("action content-type %q, want %q", h, stream.ContentTypeJSON)
		}
		out = append(out, m)
	}
	return out
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// sameActions compares two action lists as sets keyed by id, and checks
// that each contact's actions come in the same order.
func sameActions(t testing.TB, got, want []map[string]any) {
	t.Helper()
	byID := func(list []map[string]any) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, a := range list {
			id, _ := a["id"].(string)
			if _, dup := m[id]; dup {
				t.Errorf("action id %s appears twice", id)
			}
			m[id] = a
		}
		return m
	}
	g, w := byID(got), byID(want)
	var missing, extra []string
	for id, a := range w {
		b, ok := g[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Errorf("action %s differs:\n got %s\nwant %s", id, jb, ja)
		}
	}
	for id := range g {
		if _, ok := w[id]; !ok {
			extra = append(extra, id)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, id := range missing {
		t.Errorf("missing action %v", w[id])
	}
	for _, id := range extra {
		t.Errorf("unexpected action %v", g[id])
	}
	order := func(list []map[string]any) map[string][]string {
		m := map[string][]string{}
		for _, a := range list {
			c, _ := a["contact"].(string)
			m[c] = append(m[c], a["id"].(string))
		}
		return m
	}
	og, ow := order(got), order(want)
	for c, ids := range ow {
		if !slices.Equal(ids, og[c]) {
			t.Errorf("contact %s: actions in order %v, want %v", c, og[c], ids)
		}
	}
}

// eventRecord is e as a record of the events topic keyed by its contact,
// and e as a JSON line (what replay reads): the record is that JSON, or
// msgpack with its content-type header when msgpack is true (the inputs mix
// both, as producers may).
func eventRecord(t testing.TB, e *event.Event, msgpack bool) (*kgo.Record, []byte) {
	t.Helper()
	js, err := event.EncodeJSON(e)
	if err != nil {
		t.Fatal(err)
	}
	r := &kgo.Record{Topic: "events", Key: []byte(e.Contact()), Value: js}
	if msgpack {
		if r.Value, err = event.EncodeMsgpack(e); err != nil {
			t.Fatal(err)
		}
		r.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte(event.ContentTypeMsgpack)}}
	}
	return r, js
}

// openRedis opens the Redis store at addrs (one for standalone, the nodes
// of a cluster), closed when the test ends.
func openRedis(t testing.TB, addrs ...string) *state.Redis {
	t.Helper()
	r, err := state.NewRedis(state.RedisOptions{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// keyedKafka starts a broker with the pipeline's topics for input keyed by
// contact, and returns its address, the config and t0, the events' start
// (the clock stands an hour before it).
func keyedKafka(t *testing.T) (string, stream.Config, time.Time) {
	t.Helper()
	addr := startKafka(t)
	t0 := time.Date(2031, 3, 2, 9, 0, 0, 0, time.UTC)
	cfg := testConfig(t, addr, newClock(t0.Add(-time.Hour)))
	cfg.InputKeyed = true
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return addr, cfg, t0
}
