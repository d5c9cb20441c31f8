package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

var (
	chaosFull = flag.Bool("chaos.full", false, "run TestChaosExactlyOnce at full size: 50,000 events (one contact 10,000 of them), 10 kills")
	chaosEnv  = flag.String("chaos.env", "", "extra environment of the chaos test's processes, KEY=VALUE[,KEY=VALUE], e.g. LEADPULSE_KAFKA_NO_TRANSACTIONS=true to see the test fail without transactions")
)

// chaosSize is how big TestChaosExactlyOnce runs.
type chaosSize struct {
	events, hot, kills int
	rate               int // events/s of the last burst, after the kills
}

// TestChaosExactlyOnce is the exactly-once test every change must pass
// (issue 11): a broker in its own process (internal/testbroker, kfake), a
// real redis-server, topics of 3 partitions, two `leadpulse run` processes
// sharing the groups, and traffic in which one contact sends a fifth of the
// events and a third carry no messageId. While the traffic is produced and
// worked through, a random process is killed with SIGKILL at random
// moments — every other kill shortly after the previous restart, while the
// groups are still rebalancing — and started again (with its transactional
// id, as a StatefulSet pod would be). Then:
//   - every contact's state in Redis equals replay's;
//   - the actions topic holds every action replay emits, by id and content,
//     and nothing else (repeats of an id are byte-for-byte copies);
//   - the redis-stream sink holds every action routed to it exactly once,
//     and the webhook sinks' receiver got every action routed to them (a
//     webhook repeat after a kill is the receiver's to drop by its
//     Idempotency-Key; the count is logged).
//
// `make test` runs 5,000 events and 4 kills; -chaos.full runs 50,000 events
// and 10 kills and logs the figures (records per topic, kills, actions
// expected, found and delivered twice, state mismatches).
func TestChaosExactlyOnce(t *testing.T) {
	size := chaosSize{events: 5_000, hot: 1_000, kills: 4, rate: 1_000}
	if *chaosFull {
		size = chaosSize{events: 50_000, hot: 10_000, kills: 10, rate: 3_000}
	}
	const partitions = 3
	rdb := testenv.StartRedis(t, testenv.RedisConfig{}) // skips loudly without redis-server (fails under CI=true)
	bin := buildLeadpulse(t)
	e := &liveEnv{t: t, bin: bin, kafka: startBroker(t), redis: rdb}
	var err error
	e.cl, err = kgo.NewClient(kgo.SeedBrokers(e.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	e.adm = kadm.NewClient(e.cl)
	if err := stream.EnsureTopics(context.Background(), stream.Config{Brokers: []string{e.kafka}, Partitions: partitions, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver(t)
	e.rules = bulkRules(t)
	e.cfgPath = filepath.Join(t.TempDir(), "leadpulse.yaml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: leadpulse
  topics: { events: events, actions: actions, dlq: events.dlq }
  session_timeout: 1500ms
  heartbeat_interval: 200ms
  rebalance_timeout: 15s
redis:
  addr: %s
rules: %s
sinks:
  sales: { type: webhook, url: %q, concurrency: 4 }
  log:   { type: webhook, url: %q, concurrency: 4 }
  email: { type: redis-stream, stream: "chaos:email" }
%s`, e.kafka, rdb.Addr, e.rules, hook.srv.URL, hook.srv.URL, testPipeline)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	in, hotEvents, noID := makeChaosInput(t, size, partitions)
	x := replayInput(t, e.rules, in)

	var env []string
	if *chaosEnv != "" {
		env = strings.Split(*chaosEnv, ",")
	}
	// The traffic comes in bursts, one before each kill: each kill lands
	// while the burst is being worked through (ingest mid-transaction,
	// scoring mid-batch), at a random moment; every other kill comes right
	// after the previous restart, while the groups are still rebalancing.
	bursts := splitN(in.recs, size.kills+1)
	procs := map[string]*proc{"a": e.start("a", env...), "b": e.start("b", env...)}
	restarts := map[string]int{}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var kills []string
	duringRebalance := 0
	for k := range size.kills {
		if k%2 == 0 {
			// Let the groups settle (the killed member's session ends
			// after 1.5s): this kill finds stable assignments.
			time.Sleep(time.Duration(1500+rnd.IntN(1000)) * time.Millisecond)
		} else {
			duringRebalance++ // the restarted member is still being given partitions
		}
		// Kill while both stages work through the burst (ingest between
		// a produce and its commit, scoring between its actions, its state
		// and its offset): once ingest has committed a random part of it.
		base := e.committedSum("leadpulse-ingest", "events")
		pr := e.produce(bursts[k], 1_000_000)
		part := int64(len(bursts[k]) * (5 + rnd.IntN(60)) / 100)
		t0 := time.Now()
		for e.committedSum("leadpulse-ingest", "events") < base+part && time.Since(t0) < 10*time.Second {
			time.Sleep(time.Millisecond)
		}
		// Not at once: a commit was just seen, and the next produce has
		// not been acknowledged yet.
		time.Sleep(time.Duration(rnd.IntN(30_000)) * time.Microsecond)
		wait := time.Since(t0)
		name := []string{"a", "b"}[rnd.IntN(2)]
		p := procs[name]
		if !p.running() {
			t.Fatalf("process %s exited on its own (code %d):\n%s", p.name, p.exit, tail(p.stderr.String(), 4000))
		}
		scored := e.scored()
		p.signal(syscall.SIGKILL)
		<-p.done
		kills = append(kills, fmt.Sprintf("%s %v into a burst of %d, at %d keyed offsets committed", p.name, wait.Round(time.Millisecond), len(bursts[k]), scored))
		pr.wait(t)
		time.Sleep(time.Duration(rnd.IntN(300)) * time.Millisecond)
		restarts[name]++
		procs[name] = e.start(fmt.Sprintf("%s%d", name, restarts[name]+1), env...)
	}
	pr := e.produce(bursts[size.kills], size.rate)
	pr.wait(t)
	for _, p := range procs {
		if !p.running() {
			t.Fatalf("process %s exited on its own (code %d):\n%s", p.name, p.exit, tail(p.stderr.String(), 4000))
		}
	}
	e.waitCommitted("leadpulse-ingest", "events", 5*time.Minute)
	e.waitCommitted("leadpulse", "events.keyed", 5*time.Minute)
	e.waitCommitted("leadpulse-dispatch", "actions", 5*time.Minute)

	mismatches := compareState(t, rdb.Addr, x)
	acts := e.readTopic("actions")
	repeats := compareActions(t, acts, x)
	resent, missing, unexpected := hook.check(t, x)
	streamTwice, streamMissing := checkStream(t, rdb.Addr, "chaos:email", x)

	keyed := e.countRecords("events.keyed", kgo.ReadCommitted())
	keyedAll := e.countRecords("events.keyed", kgo.ReadUncommitted())
	if keyed != len(in.recs) {
		t.Errorf("events.keyed holds %d committed records for %d events: the ingest hop repeated or lost some", keyed, len(in.recs))
	}
	t.Logf("chaos: %d events (%d of contact %s, %d without messageId), %d partitions, 2 processes",
		len(in.recs), hotEvents, chaosHot, noID, partitions)
	t.Logf("chaos: %d kills (%d soon after a restart, during a rebalance): %s", len(kills), duringRebalance, strings.Join(kills, "; "))
	t.Logf("chaos: records: events %d, events.keyed %d committed (%d with aborted transactions' records), actions %d (%d repeats of an id), events.dlq %d, actions.dlq %d",
		len(in.recs), keyed, keyedAll, len(acts), repeats, e.countRecords("events.dlq", kgo.ReadUncommitted()), e.countRecords("actions.dlq", kgo.ReadUncommitted()))
	t.Logf("chaos: actions expected %d, found on the topic %d distinct; redis-stream sink (email): %d expected, %d delivered twice, %d missing; webhook sinks (sales, log): %d distinct, %d missing, %d unexpected, %d re-sent after a kill and dropped by the receiver's Idempotency-Key dedupe",
		len(x.byID), len(x.byID)-countMissing(acts, x), countSink(x, "email"), streamTwice, streamMissing, hook.distinct(), missing, unexpected, resent)
	t.Logf("chaos: final-state mismatches %d of %d contacts", mismatches, x.state.Len())
}

// chaosHot is the contact that sends a fifth of the chaos traffic.
const chaosHot = "hot-lead"

// makeChaosInput is liveTraffic with every fifth event moved to one contact
// (a bot, a shared account) and every third without messageId, then a
// clock event per partition.
func makeChaosInput(t *testing.T, size chaosSize, partitions int) (in *liveInput, hot, noID int) {
	t.Helper()
	tc := liveTraffic
	tc.Contacts = 500
	g := traffic.New(tc)
	in = &liveInput{}
	var last time.Time
	every := size.events / size.hot
	for i := range size.events {
		e := g.Next()
		if i%every == every-1 {
			e.UserID, e.AnonymousID = chaosHot, ""
			hot++
		}
		if i%3 == 0 {
			e.MessageID = ""
			noID++
		}
		in.add(t, e, e.Contact())
		last = e.Timestamp()
	}
	in.recs, in.lines = appendClockEvents(in.recs, in.lines, last, partitions)
	return in, hot, noID
}

// startBroker builds internal/testbroker and runs it as a process of its
// own, which outlives the leadpulse processes the test kills.
func startBroker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testbroker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../internal/testbroker").CombinedOutput(); err != nil {
		t.Fatalf("go build testbroker: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("testbroker said %q", line)
	}
	return addr
}

// committedSum is the sum of group's committed offsets on topic, 0 before
// any commit.
func (e *liveEnv) committedSum(group, topic string) int64 {
	offs, err := e.adm.FetchOffsets(context.Background(), group)
	if err != nil {
		return 0
	}
	sum := int64(0)
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// scored is the sum of the scoring group's committed offsets (records and
// transaction markers): a progress figure for the log.
func (e *liveEnv) scored() int64 {
	offs, err := e.adm.FetchOffsets(context.Background(), "leadpulse")
	if err != nil {
		return -1
	}
	sum := int64(0)
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == "events.keyed" && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// countRecords reads topic to its end at the given isolation level and
// counts the records (transaction markers are not records).
func (e *liveEnv) countRecords(topic string, level kgo.IsolationLevel) int {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		got := fs.NumRecords()
		if got == 0 {
			return n
		}
		n += got
	}
}

func countMissing(acts []*kgo.Record, x *expected) int {
	got := map[string]bool{}
	for _, r := range acts {
		var m struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(r.Value, &m)
		got[m.ID] = true
	}
	n := 0
	for id := range x.byID {
		if !got[id] {
			n++
		}
	}
	return n
}

// hookReceiver is the webhook sink's receiver: it counts the requests per
// action id (the Idempotency-Key header).
type hookReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	ids map[string]int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{ids: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("Idempotency-Key")
		h.mu.Lock()
		h.ids[id]++
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ids)
}

// check compares the deliveries with replay's actions for the webhook
// sinks: every one received, nothing else. A webhook cannot be exactly once
// by itself: a kill between a delivery and the dispatcher remembering it
// sends it again, and the receiver drops the repeat by its
// Idempotency-Key, as the sinks package asks receivers to. resent counts
// those repeats.
func (h *hookReceiver) check(t *testing.T, x *expected) (resent, missing, unexpected int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.ids {
		if js, ok := x.byID[id]; !ok || sinkOf(js) == "email" {
			if unexpected++; unexpected <= 5 {
				t.Errorf("webhook received action %q, which replay never sends there", id)
			}
		}
		resent += n - 1
	}
	for id, js := range x.byID {
		if sinkOf(js) != "email" && h.ids[id] == 0 {
			if missing++; missing <= 5 {
				t.Errorf("webhook never received action %s", js)
			}
		}
	}
	return resent, missing, unexpected
}

// checkStream checks the redis-stream sink: every replay action routed to
// it is in the stream exactly once (the sink appends an id once), nothing
// else is.
func checkStream(t *testing.T, addr, stream string, x *expected) (twice, missing int) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	entries, err := rc.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range entries {
		id, _ := e.Values["id"].(string)
		if got[id]++; got[id] == 2 {
			if twice++; twice <= 5 {
				t.Errorf("stream %s holds action %s twice", stream, id)
			}
		}
		if js, ok := x.byID[id]; !ok || sinkOf(js) != "email" {
			t.Errorf("stream %s holds action %s, which replay never sends there", stream, id)
		}
	}
	for id, js := range x.byID {
		if sinkOf(js) == "email" && got[id] == 0 {
			if missing++; missing <= 5 {
				t.Errorf("stream %s lacks action %s", stream, js)
			}
		}
	}
	return twice, missing
}

func sinkOf(js string) string {
	var m struct {
		Sink string `json:"sink"`
	}
	_ = json.Unmarshal([]byte(js), &m)
	return m.Sink
}

func countSink(x *expected, sink string) int {
	n := 0
	for _, js := range x.byID {
		if sinkOf(js) == sink {
			n++
		}
	}
	return n
}

// splitN cuts recs into n runs of about the same length, in order.
func splitN(recs []*kgo.Record, n int) [][]*kgo.Record {
	out := make([][]*kgo.Record, n)
	for i := range n {
		out[i] = recs[i*len(recs)/n : (i+1)*len(recs)/n]
	}
	return out
}
