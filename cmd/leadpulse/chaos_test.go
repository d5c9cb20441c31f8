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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

var chaosFull = flag.Bool("chaos.full", false, "run TestChaosExactlyOnce at full size: 50,000 events (one contact 10,000 of them), 10 kills")

// chaosSize is how big TestChaosExactlyOnce runs.
type chaosSize struct {
	events, hot, kills, rate int
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
//   - the webhook sink's receiver got every action, and no id twice.
//
// `make test` runs 5,000 events and 4 kills; -chaos.full runs 50,000 events
// and 10 kills and logs the figures (records per topic, kills, actions
// expected, found and delivered twice, state mismatches).
func TestChaosExactlyOnce(t *testing.T) {
	size := chaosSize{events: 5_000, hot: 1_000, kills: 4, rate: 400}
	if *chaosFull {
		size = chaosSize{events: 50_000, hot: 10_000, kills: 10, rate: 1_500}
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
  hook: { type: webhook, url: %q, default: true, concurrency: 4 }
%s`, e.kafka, rdb.Addr, e.rules, hook.srv.URL, testPipeline)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	in, hotEvents, noID := makeChaosInput(t, size, partitions)
	x := replayInput(t, e.rules, in)

	procs := map[string]*proc{"a": e.start("a"), "b": e.start("b")}
	restarts := map[string]int{}
	pr := e.produce(in.recs, size.rate)
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var kills []string
	duringRebalance := 0
	for k := range size.kills {
		// Every other kill comes soon after the previous restart: the
		// groups are then still moving partitions.
		wait := time.Duration(800+rnd.IntN(2200)) * time.Millisecond
		if k%2 == 1 {
			wait = time.Duration(100+rnd.IntN(600)) * time.Millisecond
			duringRebalance++
		}
		time.Sleep(wait)
		name := []string{"a", "b"}[rnd.IntN(2)]
		p := procs[name]
		if !p.running() {
			t.Fatalf("process %s exited on its own (code %d):\n%s", p.name, p.exit, tail(p.stderr.String(), 4000))
		}
		scored := e.scored()
		p.signal(syscall.SIGKILL)
		<-p.done
		kills = append(kills, fmt.Sprintf("%s after %v at %d keyed offsets committed", p.name, wait.Round(time.Millisecond), scored))
		time.Sleep(time.Duration(rnd.IntN(500)) * time.Millisecond)
		restarts[name]++
		procs[name] = e.start(fmt.Sprintf("%s%d", name, restarts[name]+1))
	}
	pr.wait(t)
	for _, p := range procs {
		if !p.running() {
			t.Fatalf("process %s exited on its own (code %d):\n%s", p.name, p.exit, tail(p.stderr.String(), 4000))
		}
	}
	e.waitCommitted("leadpulse-ingest", "events", 5*time.Minute)
	e.waitCommitted("leadpulse", "events.keyed", 5*time.Minute)
	e.waitCommitted("leadpulse-dispatch", "actions", 5*time.Minute)

	compareState(t, rdb.Addr, x)
	acts := e.readTopic("actions")
	repeats := compareActions(t, acts, x)
	twice, missing, unexpected := hook.check(t, x)

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
	t.Logf("chaos: actions expected %d, found on the topic %d distinct; webhook received %d distinct, %d delivered twice, %d missing, %d unexpected",
		len(x.byID), len(x.byID)-countMissing(acts, x), hook.distinct(), twice, missing, unexpected)
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
		b, err := event.EncodeJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		in.recs = append(in.recs, &kgo.Record{Topic: "events", Key: []byte(e.Contact()), Value: b})
		in.lines = append(in.lines, b)
		last = e.Timestamp()
	}
	end := last.Add(time.Minute).Format(time.RFC3339Nano)
	part := kgo.StickyKeyPartitioner(nil).ForTopic("events")
	for p, i := 0, 0; p < partitions; i++ {
		id := fmt.Sprintf("clock-%d", i)
		if part.Partition(&kgo.Record{Key: []byte(id)}, partitions) != p {
			continue
		}
		b := []byte(`{"type":"track","userId":"` + id + `","event":"Clock","messageId":"` + id + `","timestamp":"` + end + `"}`)
		in.recs = append(in.recs, &kgo.Record{Topic: "events", Key: []byte(id), Value: b})
		in.lines = append(in.lines, b)
		p++
	}
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

// check compares the deliveries with replay's actions: every one received,
// none twice, nothing else.
func (h *hookReceiver) check(t *testing.T, x *expected) (twice, missing, unexpected int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.ids {
		if _, ok := x.byID[id]; !ok {
			if unexpected++; unexpected <= 5 {
				t.Errorf("webhook received action %q, which replay never emits", id)
			}
		}
		if n > 1 {
			if twice++; twice <= 5 {
				t.Errorf("webhook received action %s %d times", id, n)
			}
		}
	}
	for id := range x.byID {
		if h.ids[id] == 0 {
			if missing++; missing <= 5 {
				t.Errorf("webhook never received action %s", x.byID[id])
			}
		}
	}
	return twice, missing, unexpected
}
