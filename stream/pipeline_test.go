package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// trafficCfg is a shop's traffic over about three and a half days of event
// time: the example rules' absence timers (abandoned-cart, browse-abandon)
// fire often, by later events and by the clock.
var trafficCfg = traffic.Config{Contacts: 60, Seed: 3, Step: 2 * time.Minute, Mix: traffic.MixEcommerce}

const (
	b2bRules  = "../examples/b2b-saas.yaml"
	shopRules = "../examples/ecommerce.yaml"
)

// running is a pipeline under test.
type running struct {
	p    *stream.Pipeline
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, cfg stream.Config, sc stream.Scoring, reg prometheus.Registerer) *running {
	t.Helper()
	m, err := stream.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := stream.New(cfg, sc, m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.shutdown(t) })
	testenv.Eventually(t, 10*time.Second, func() error {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("pipeline stopped before it was ready: %v", err)
		default:
		}
		if !p.Ready() {
			return errors.New("pipeline not ready")
		}
		return nil
	})
	return r
}

// shutdown stops the pipeline and checks that it drained cleanly.
func (r *running) shutdown(t *testing.T) {
	t.Helper()
	if r.done == nil {
		return
	}
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("Run did not return within 20s of cancel")
	}
	r.done = nil
}

func testConfig(t *testing.T, addr string, clock *testClock) stream.Config {
	return stream.Config{
		Brokers: []string{addr},
		Tick:    10 * time.Millisecond,
		Clock:   clock.now,
		Logger:  testLogger(t),
	}
}

// TestPipelineMatchesReplay sends JSON and msgpack events with bad lines
// among them to the events topic over TCP and checks that the actions topic
// receives exactly the records `leadpulse replay` prints for the same input
// (same ids, same fields, same order per contact), timers included, and
// that every bad record is on the DLQ with its reason and source.
func TestPipelineMatchesReplay(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testMatchesReplay(t, func(t *testing.T) stream.Scoring { return stream.Scoring{} })
	})
	t.Run("redis", func(t *testing.T) {
		addr := testenv.RedisServer(t)
		testMatchesReplay(t, func(t *testing.T) stream.Scoring {
			r := openRedis(t, addr)
			return stream.Scoring{Redis: r}
		})
	})
}

func testMatchesReplay(t *testing.T, store func(*testing.T) stream.Scoring) {
	rs := loadRules(t, shopRules)
	in := makeInput(t, 2500, trafficCfg)
	// A msgpack-labelled value that is not msgpack: replay cannot see it.
	in.recs = append(in.recs, &kgo.Record{Topic: "events", Value: []byte("\x81\xa4typ"),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(event.ContentTypeMsgpack)}}})
	want, wantBad := replay(t, rs, in.lines)
	wantBad[event.ReasonMalformed]++
	nbad := 0
	for _, n := range wantBad {
		nbad += n
	}
	if len(want) < 50 {
		t.Fatalf("replay emitted %d actions; the test needs a richer input", len(want))
	}
	var timers int
	for _, a := range want {
		if a["trigger"] == "abandoned-cart" || a["trigger"] == "browse-abandon" {
			timers++
		}
	}
	if timers == 0 {
		t.Fatal("replay fired no timer; the test needs a longer input")
	}

	addr := startKafka(t)
	clock := newClock(traffic.DefaultStart.Add(-time.Hour)) // before every due time
	cfg := testConfig(t, addr, clock)
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	produce(t, addr, in.recs)

	reg := prometheus.NewPedanticRegistry()
	sc := store(t)
	sc.Rules = rs
	var seen atomic.Int64
	sc.OnAction = func(*rules.Record) { seen.Add(1) }
	var applied, lateApplied atomic.Int64
	sc.OnBatchApplied = func(times []int64, at int64) {
		applied.Add(int64(len(times)))
		for _, t := range times {
			if t == 0 || t > in.last.UnixNano() {
				lateApplied.Add(1) // not an event time of the input
			}
		}
	}
	r := start(t, cfg, sc, reg)

	// The clock stays before every due time until all events are keyed:
	// until then only events move partition clocks, as in replay.
	good := int64(len(in.recs) - nbad)
	waitEndOffsets(t, addr, "events.keyed", good, 20*time.Second)
	actions := newConsumer(t, addr, "actions")
	dlq := newConsumer(t, addr, "events.dlq")
	dlq.until(nbad, 20*time.Second)
	// Replay ends with the clock at the last event's time.
	clock.set(in.last.Add(500 * time.Millisecond)) // + the default TimerDelay
	got := actions.until(len(want), 30*time.Second)
	actions.poll(300 * time.Millisecond) // nothing more may come
	sameActions(t, decodeActions(t, actions.recs), want)
	if int(seen.Load()) != len(got) {
		t.Errorf("OnAction saw %d actions, the topic holds %d", seen.Load(), len(got))
	}
	if applied.Load() != good || lateApplied.Load() != 0 {
		t.Errorf("OnBatchApplied saw %d event times (%d not of the input), want one per good event: %d", applied.Load(), lateApplied.Load(), good)
	}

	gotBad := map[event.Reason]int{}
	for _, d := range dlq.recs {
		reason := event.Reason(header(d, stream.HeaderReason))
		gotBad[reason]++
		if header(d, stream.HeaderMessage) == "" || header(d, stream.HeaderSourceTopic) != "events" {
			t.Errorf("dead letter without message or source: %v", d.Headers)
		}
		if _, err := strconv.Atoi(header(d, stream.HeaderSourceOffset)); err != nil {
			t.Errorf("dead letter source.offset %q", header(d, stream.HeaderSourceOffset))
		}
		if len(d.Value) == 0 {
			t.Error("dead letter lost the original value")
		}
	}
	for reason, n := range wantBad {
		if gotBad[reason] != n {
			t.Errorf("dead letters with reason %s: %d, want %d (all: %v)", reason, gotBad[reason], n, gotBad)
		}
	}

	r.shutdown(t)
	// Drained: both groups committed everything.
	adm := kadm.NewClient(client(t, addr))
	for group, topic := range map[string]string{"leadpulse": "events.keyed", "leadpulse-ingest": "events"} {
		lag, err := adm.Lag(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		if l := lag[group].Lag.TotalByTopic()[topic].Lag; l != 0 {
			t.Errorf("group %s: lag %d on %s after drain, want 0", group, l, topic)
		}
	}

	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
	count := func(name string, labels ...string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for i := 0; i+1 < len(labels); i += 2 {
					ok := false
					for _, lp := range m.GetLabel() {
						if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
							ok = true
						}
					}
					if !ok {
						continue metrics
					}
				}
				switch {
				case m.Counter != nil:
					sum += m.Counter.GetValue()
				case m.Histogram != nil:
					sum += float64(m.Histogram.GetSampleCount())
				}
			}
		}
		return sum
	}
	if n := count("leadpulse_events_in_total", "stage", "ingest"); n != float64(len(in.recs)) {
		t.Errorf("ingest events in: %v, want %d", n, len(in.recs))
	}
	if n := count("leadpulse_events_in_total", "stage", "score"); n != float64(good) {
		t.Errorf("score events in: %v, want %d", n, good)
	}
	if n := count("leadpulse_events_bad_total"); n != float64(nbad) {
		t.Errorf("bad events: %v, want %d", n, nbad)
	}
	if n := count("leadpulse_actions_produced_total"); n != float64(len(want)) {
		t.Errorf("actions produced: %v, want %d", n, len(want))
	}
	if n := count("leadpulse_event_to_action_seconds") + count("leadpulse_timer_delay_seconds"); n != float64(len(want)) {
		t.Errorf("latency observations: %v, want %d", n, len(want))
	}
	if n := count("leadpulse_trigger_firings_total", "trigger", "abandoned-cart") + count("leadpulse_trigger_firings_total", "trigger", "browse-abandon"); n < float64(timers) {
		t.Errorf("timer firings %v, want at least %d", n, timers)
	}
	if sc.Redis != nil {
		if n := count("leadpulse_store_commits_total", "result", "ok"); n == 0 {
			t.Error("no store commits counted with Redis")
		}
	}
}

// TestLiveTimerFiresOnTheClock checks live time: a timer fires when the
// injected wall clock passes its due time plus TimerDelay on a caught-up
// partition — not before, and not while a cancelling event is unread.
func TestLiveTimerFiresOnTheClock(t *testing.T) {
	rs, err := rules.Parse("timers.yaml", []byte(`
version: 1
triggers:
  - id: abandoned-cart
    after: type == "track" && event == "Product Added"
    unless: type == "track" && event == "Order Completed"
    within: 1h
    do: [cart-reminder]
actions:
  cart-reminder:
    sink: email
`))
	if err != nil {
		t.Fatal(err)
	}
	addr := startKafka(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := newClock(t0)
	cfg := testConfig(t, addr, clock)
	cfg.InputKeyed = true // events produced keyed by contact with murmur2 (franz-go's default)
	start(t, cfg, stream.Scoring{Rules: rs}, nil)
	ev := func(contact, name string, at time.Time) *kgo.Record {
		return &kgo.Record{Topic: "events", Key: []byte(contact),
			Value: []byte(`{"type":"track","userId":"` + contact + `","event":"` + name + `","timestamp":"` + at.Format(time.RFC3339Nano) + `"}`)}
	}
	produce(t, addr, []*kgo.Record{
		ev("u-cart", "Product Added", t0),
		ev("u-paid", "Product Added", t0),
		ev("u-paid", "Order Completed", t0.Add(30*time.Minute)),
	})
	waitCommitted(t, addr, "leadpulse", "events", 3)
	actions := newConsumer(t, addr, "actions")

	clock.set(t0.Add(time.Hour)) // due, but not TimerDelay past it
	actions.poll(200 * time.Millisecond)
	if len(actions.recs) != 0 {
		t.Fatalf("a timer fired before due + TimerDelay: %s", actions.recs[0].Value)
	}
	clock.set(t0.Add(time.Hour + 500*time.Millisecond))
	got := decodeActions(t, actions.until(1, 5*time.Second))
	actions.poll(200 * time.Millisecond)
	if len(actions.recs) != 1 {
		t.Fatalf("got %d actions, want only u-cart's reminder", len(actions.recs))
	}
	if got[0]["contact"] != "u-cart" || got[0]["trigger"] != "abandoned-cart" || got[0]["at"] != "2026-03-02T10:00:00Z" {
		t.Errorf("action %v, want u-cart's abandoned-cart at 10:00", got[0])
	}
}

// waitCommitted waits until group has committed n records of topic (the
// sum of its committed offsets over the partitions).
func waitCommitted(t *testing.T, addr, group, topic string, n int64) {
	t.Helper()
	ends := waitEndOffsets(t, addr, topic, n, 10*time.Second)
	adm := kadm.NewClient(client(t, addr))
	testenv.Eventually(t, 10*time.Second, func() error {
		ofs, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			return err
		}
		behind := 0
		for _, end := range ends {
			if end > 0 {
				behind++
			}
		}
		ofs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && ends[o.Partition] > 0 && o.At >= ends[o.Partition] {
				behind--
			}
		})
		if behind > 0 {
			return fmt.Errorf("group %s has not committed the %d records of %s: %d partitions behind their end offsets %v", group, n, topic, behind, ends)
		}
		return nil
	})
}

// TestInputKeyedMisrouted runs without the ingest hop: a record that is not
// in the partition murmur2 of its contact names goes to the DLQ as
// "misrouted"; the others are scored.
func TestInputKeyedMisrouted(t *testing.T) {
	rs := loadRules(t, b2bRules)
	addr := startKafka(t)
	clock := newClock(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t, addr, clock)
	cfg.InputKeyed = true
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	demo := func(user string) []byte {
		return []byte(`{"type":"track","userId":"` + user + `","event":"Form Submitted","properties":{"form":"demo"},"timestamp":"2026-03-02T09:00:00Z","messageId":"m-` + user + `"}`)
	}
	// u-good goes where franz-go's default partitioner puts it; u-bad is
	// forced into another partition.
	produce(t, addr, []*kgo.Record{{Topic: "events", Key: []byte("u-good"), Value: demo("u-good")}})
	probe := kgo.StickyKeyPartitioner(nil).ForTopic("events")
	wrong := int32((probe.Partition(&kgo.Record{Key: []byte("u-bad")}, 6) + 1) % 6)
	produce(t, addr, []*kgo.Record{{Topic: "events", Key: []byte("u-bad"), Value: demo("u-bad"), Partition: wrong}},
		kgo.RecordPartitioner(kgo.ManualPartitioner()))

	start(t, cfg, stream.Scoring{Rules: rs}, nil)
	dl := newConsumer(t, addr, "events.dlq").until(1, 10*time.Second)[0]
	if r := header(dl, stream.HeaderReason); r != string(stream.ReasonMisrouted) {
		t.Errorf("dead letter reason %q, want misrouted", r)
	}
	if m := header(dl, stream.HeaderMessage); !strings.Contains(m, `"u-bad"`) || !strings.Contains(m, "murmur2") {
		t.Errorf("dead letter message %q should name the contact and the partitioner", m)
	}
	if p := header(dl, stream.HeaderSourcePartition); p != strconv.Itoa(int(wrong)) {
		t.Errorf("source.partition %q, want %d", p, wrong)
	}
	acts := decodeActions(t, newConsumer(t, addr, "actions").until(2, 10*time.Second)) // sales-alert + audit
	for _, a := range acts {
		if a["contact"] != "u-good" {
			t.Errorf("action for %v; only u-good is routed right", a["contact"])
		}
	}
}

// TestBackpressure runs with tiny partition queues: fetching pauses and
// resumes, and every event is still applied once, in order.
func TestBackpressure(t *testing.T) {
	rs := loadRules(t, b2bRules)
	in := makeInput(t, 3000, traffic.Config{Contacts: 40, Seed: 9, Step: time.Minute})
	want, _ := replay(t, rs, in.lines)
	addr := startKafka(t)
	clock := newClock(traffic.DefaultStart.Add(-time.Hour))
	cfg := testConfig(t, addr, clock)
	cfg.Partitions = 2
	cfg.BatchRecords, cfg.QueueRecords, cfg.PollRecords = 8, 16, 64
	cfg.FetchMaxWait = 50 * time.Millisecond // a resumed partition waits for the fetch in flight
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	produce(t, addr, in.recs)
	reg := prometheus.NewRegistry()
	start(t, cfg, stream.Scoring{Rules: rs}, reg)
	waitCommitted(t, addr, "leadpulse-ingest", "events", int64(len(in.recs)))
	clock.set(in.last.Add(500 * time.Millisecond))
	acts := newConsumer(t, addr, "actions")
	acts.until(len(want), 30*time.Second)
	acts.poll(200 * time.Millisecond)
	sameActions(t, decodeActions(t, acts.recs), want)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "leadpulse_fetch_pauses_total" && mf.GetMetric()[0].GetCounter().GetValue() == 0 {
			t.Error("fetching never paused with 16-record queues")
		}
	}
}

// TestRebalanceHandsOver starts a second member of the scoring group while
// events flow: partitions move by cooperative-sticky rebalancing, the
// revoked ones drain and commit before the new owner starts, and the output
// is still exactly replay's (nothing lost, nothing doubled). The members
// share one memory store, as two goroutines of one process would.
func TestRebalanceHandsOver(t *testing.T) {
	rs := loadRules(t, shopRules)
	in := makeInput(t, 3000, trafficCfg)
	want, wantBad := replay(t, rs, in.lines)
	nbad := 0
	for _, n := range wantBad {
		nbad += n
	}
	addr := startKafka(t)
	clock := newClock(traffic.DefaultStart.Add(-time.Hour))
	cfg := testConfig(t, addr, clock)
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mem := state.NewMemory()
	half := len(in.recs) / 2
	produce(t, addr, in.recs[:half])
	a := start(t, cfg, stream.Scoring{Rules: rs, Memory: mem}, nil)
	badHalf := int64(0)
	for _, r := range in.recs[:half] {
		if _, err := event.Decode(r.Value, event.Auto, 1); err != nil {
			badHalf++
		}
	}
	// A has applied the first half: pending timers now live in its
	// partitions, and must move with them.
	waitCommitted(t, addr, "leadpulse", "events.keyed", int64(half)-badHalf)
	cfgB := cfg
	cfgB.Logger = cfg.Logger.With("member", "b")
	cfgB.TransactionalID = "leadpulse-ingest-b" // two processes never share one
	regB := prometheus.NewRegistry()
	b := start(t, cfgB, stream.Scoring{Rules: rs, Memory: mem}, regB)
	testenv.Eventually(t, 20*time.Second, func() error {
		if gauge(t, regB, "leadpulse_score_partitions") == 0 {
			return errors.New("the second member got no partition")
		}
		return nil
	})
	produce(t, addr, in.recs[half:])
	waitEndOffsets(t, addr, "events.keyed", int64(len(in.recs)-nbad), 20*time.Second)
	waitCommitted(t, addr, "leadpulse", "events.keyed", int64(len(in.recs)-nbad))
	clock.set(in.last.Add(500 * time.Millisecond))
	acts := newConsumer(t, addr, "actions")
	acts.until(len(want), 30*time.Second)
	acts.poll(300 * time.Millisecond)
	sameActions(t, decodeActions(t, acts.recs), want)
	b.shutdown(t)
	a.shutdown(t)
}

func TestConfigErrors(t *testing.T) {
	rs := loadRules(t, b2bRules)
	for _, tc := range []struct {
		name string
		cfg  stream.Config
		sc   stream.Scoring
		want string
	}{
		{"same topic", stream.Config{Topics: stream.Topics{Actions: "events"}}, stream.Scoring{Rules: rs}, `topics.events and topics.actions are both "events"`},
		{"no rules", stream.Config{}, stream.Scoring{}, "Scoring.Rules is required"},
		{"queue below batch", stream.Config{BatchRecords: 100, QueueRecords: 10}, stream.Scoring{Rules: rs}, "queue_records (10) is below batch_records (100)"},
		{"two stores", stream.Config{}, stream.Scoring{Rules: rs, Memory: state.NewMemory(), Redis: &state.Redis{}}, "choose one store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stream.New(tc.cfg, tc.sc, nil)
			if !errors.Is(err, stream.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
}

// TestRedisRestart stops the pipeline halfway through the input and starts a
// new one (a new process: empty caches, empty timer index) on the same Redis
// and consumer group: it resumes at the committed offsets, finds the
// contacts' state and the pending timers in Redis, and the output of both
// runs together is exactly replay's.
func TestRedisRestart(t *testing.T) {
	redisAddr := testenv.RedisServer(t)
	rs := loadRules(t, shopRules)
	in := makeInput(t, 2500, trafficCfg)
	want, wantBad := replay(t, rs, in.lines)
	addr := startKafka(t)
	clock := newClock(traffic.DefaultStart.Add(-time.Hour))
	cfg := testConfig(t, addr, clock)
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	store := func() stream.Scoring {
		r := openRedis(t, redisAddr)
		return stream.Scoring{Rules: rs, Redis: r}
	}
	badIn := func(recs []*kgo.Record) (n int64) {
		for _, r := range recs {
			if _, err := event.Decode(r.Value, event.Auto, 1); err != nil {
				n++
			}
		}
		return n
	}
	half := len(in.recs) / 2
	produce(t, addr, in.recs[:half])
	first := start(t, cfg, store(), nil)
	waitCommitted(t, addr, "leadpulse", "events.keyed", int64(half)-badIn(in.recs[:half]))
	first.shutdown(t)

	start(t, cfg, store(), nil)
	produce(t, addr, in.recs[half:])
	nbad := 0
	for _, n := range wantBad {
		nbad += n
	}
	waitEndOffsets(t, addr, "events.keyed", int64(len(in.recs)-nbad), 20*time.Second)
	clock.set(in.last.Add(500 * time.Millisecond))
	acts := newConsumer(t, addr, "actions")
	acts.until(len(want), 30*time.Second)
	acts.poll(300 * time.Millisecond)
	sameActions(t, decodeActions(t, acts.recs), want)
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

const cartRules = `
version: 1
triggers:
  - id: abandoned-cart
    after: type == "track" && event == "Product Added"
    unless: type == "track" && event == "Order Completed"
    within: 1h
    do: [cart-reminder]
actions:
  cart-reminder:
    sink: email
`

// TestRebalanceMovesTimers puts carts in every partition, moves half the
// partitions to a second member, and then lets later events move the
// clocks past the carts' due times: the new owner must have indexed the
// timers of the contacts it took over (memory: from the shared store).
func TestRebalanceMovesTimers(t *testing.T) {
	rs, err := rules.Parse("cart.yaml", []byte(cartRules))
	if err != nil {
		t.Fatal(err)
	}
	addr := startKafka(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := newClock(t0)
	cfg := testConfig(t, addr, clock)
	cfg.InputKeyed = true
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	ev := func(contact, name string, at time.Time) *kgo.Record {
		return &kgo.Record{Topic: "events", Key: []byte(contact),
			Value: []byte(`{"type":"track","userId":"` + contact + `","event":"` + name + `","timestamp":"` + at.Format(time.RFC3339Nano) + `"}`)}
	}
	const n = 60
	var carts, later []*kgo.Record
	for i := range n {
		c := "u-" + strconv.Itoa(i)
		carts = append(carts, ev(c, "Product Added", t0.Add(time.Duration(i)*time.Second)))
		later = append(later, ev(c, "Page Viewed", t0.Add(2*time.Hour)))
	}
	mem := state.NewMemory()
	produce(t, addr, carts)
	start(t, cfg, stream.Scoring{Rules: rs, Memory: mem}, nil)
	waitCommitted(t, addr, "leadpulse", "events", n)
	regB := prometheus.NewRegistry()
	cfgB := cfg
	cfgB.Logger = cfg.Logger.With("member", "b")
	cfgB.TransactionalID = "leadpulse-ingest-b" // two processes never share one
	start(t, cfgB, stream.Scoring{Rules: rs, Memory: mem}, regB)
	testenv.Eventually(t, 20*time.Second, func() error {
		if gauge(t, regB, "leadpulse_score_partitions") == 0 {
			return errors.New("the second member got no partition")
		}
		return nil
	})
	produce(t, addr, later)
	acts := newConsumer(t, addr, "actions")
	got := decodeActions(t, acts.until(n, 20*time.Second))
	acts.poll(200 * time.Millisecond)
	if len(acts.recs) != n {
		t.Errorf("%d reminders, want %d", len(acts.recs), n)
	}
	seen := map[any]bool{}
	for _, a := range got {
		seen[a["contact"]] = true
	}
	if len(seen) != n {
		t.Errorf("reminders for %d contacts, want %d", len(seen), n)
	}
}
