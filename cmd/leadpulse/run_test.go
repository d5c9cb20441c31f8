package main

// Tests of `leadpulse run` as real processes: the binary is built into a
// temporary directory and run against a kfake broker started in the test
// process (over TCP) and a real redis-server (internal/testenv). They
// compare what the processes produce with engine.Replay over the same
// events: the same action ids and fields, and the same contact state.
//
// The events are stamped in 2031, after the wall clock, so that no timer
// fires by the wall clock: timers fire by event time only, which is
// deterministic. Each input ends with one "clock" event per partition at
// the same time (replay reads them too), so that every partition's clock
// reaches the replay's final clock.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

const (
	testPartitions = 6
	shopRulesFile  = "../../examples/ecommerce.yaml"
)

// liveTraffic is a shop's traffic in 2031: 500 shoppers over about four
// days of event time, so that carts are abandoned and absence timers fire
// by later events.
var liveTraffic = traffic.Config{Contacts: 500, Seed: 11, Step: 30 * time.Second, Mix: traffic.MixEcommerce,
	Start: time.Date(2031, 3, 3, 8, 0, 0, 0, time.UTC)}

// buildLeadpulse builds the binary into a temporary directory.
func buildLeadpulse(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "leadpulse")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// liveEnv is a broker, a Redis and a deployment config for processes.
type liveEnv struct {
	t       *testing.T
	bin     string
	kafka   string
	redis   *testenv.Redis
	rules   string
	cfgPath string
	adm     *kadm.Client
	cl      *kgo.Client
}

// testPipeline are small batches and queues, so that a few thousand events
// make many batches, pauses and commits.
const testPipeline = `pipeline:
  batch_records: 200
  queue_records: 800
  tick: 50ms
  drain_timeout: 10s
`

// bulkRules returns the shop rules with identity merging off, for the tests
// that produce hours of event time per second of wall time: a hand-over's
// round trip then spans hours of event time, in which an anonymous id's
// timers and later events meet its partition's clock before the merge,
// where replay's one clock has them after it. identity_test.go runs
// merging at a steady rate where event time keeps pace with the wall.
func bulkRules(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(shopRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ecommerce-nomerge.yaml")
	if err := os.WriteFile(path, append(b, "\nidentity: { merge: false }\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newLiveEnv(t *testing.T, redisCfg testenv.RedisConfig, extraYAML string) *liveEnv {
	t.Helper()
	return newLiveEnvWith(t, redisCfg, extraYAML, bulkRules(t), testPartitions)
}

func newLiveEnvWith(t *testing.T, redisCfg testenv.RedisConfig, extraYAML, rulesPath string, partitions int32) *liveEnv {
	t.Helper()
	rdb := testenv.StartRedis(t, redisCfg) // skips loudly without redis-server (fails under CI=true)
	bin := buildLeadpulse(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	e := &liveEnv{t: t, bin: bin, kafka: cluster.ListenAddrs()[0], redis: rdb}
	e.cl, err = kgo.NewClient(kgo.SeedBrokers(e.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	e.adm = kadm.NewClient(e.cl)
	if err := stream.EnsureTopics(context.Background(), stream.Config{Brokers: []string{e.kafka}, Partitions: partitions, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.rules, _ = filepath.Abs(rulesPath)
	e.cfgPath = filepath.Join(dir, "leadpulse.yaml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: leadpulse
  topics: { events: events, actions: actions, dlq: events.dlq }
  session_timeout: 1500ms      # a SIGKILLed member's partitions move within seconds
  heartbeat_interval: 200ms
  rebalance_timeout: 15s
redis:
  addr: %s
rules: %s
%s`, e.kafka, rdb.Addr, e.rules, extraYAML)
	if !strings.Contains(extraYAML, "pipeline:") {
		cfg += testPipeline
	}
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// proc is one `leadpulse run` process.
type proc struct {
	t      *testing.T
	name   string
	http   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	exit   int
}

// start runs `leadpulse run --config` with the test's config and its own
// http address.
func (e *liveEnv) start(name string, env ...string) *proc {
	e.t.Helper()
	p := &proc{t: e.t, name: name, http: freeAddr(e.t), done: make(chan struct{})}
	p.cmd = exec.Command(e.bin, "run", "--config", e.cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEADPULSE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	// Each process has its own transactional id (they share a host), and a
	// restart ("a2" after "a") takes its predecessor's, as a StatefulSet
	// pod would: the broker then aborts what the killed one left open.
	p.cmd.Env = append(p.cmd.Env, append([]string{"LEADPULSE_HTTP=" + p.http, "LEADPULSE_KAFKA_TRANSACTIONAL_ID=leadpulse-ingest-" + name[:1]}, env...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exit = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.exit = ee.ExitCode()
		}
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("--- %s stderr (last 6000 bytes):\n%s", p.name, tail(p.stderr.String(), 6000))
		}
	})
	p.waitReady(30 * time.Second)
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitReady waits until /readyz answers 200.
func (p *proc) waitReady(timeout time.Duration) {
	p.t.Helper()
	testenv.Eventually(p.t, timeout, func() error {
		if code, _ := get("http://" + p.http + "/readyz"); code == http.StatusOK {
			return nil
		}
		if !p.running() {
			p.t.Fatalf("%s exited %d before it was ready", p.name, p.exit)
		}
		return fmt.Errorf("%s not ready", p.name)
	})
}

// signal sends sig and, for SIGTERM and SIGKILL, waits for the exit.
func (p *proc) signal(sig syscall.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	if sig == syscall.SIGHUP {
		return 0
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit within 30s of %v", p.name, sig)
	}
	return p.exit
}

// metric sums the samples of a metric on /metrics (all label values, or
// those whose labels contain match).
func (p *proc) metric(name, match string) float64 {
	p.t.Helper()
	_, body := get("http://" + p.http + "/metrics")
	sum := 0.0
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// liveInput is a test's events: the records for the events topic, and the
// lines replay reads.
type liveInput struct {
	recs  []*kgo.Record
	lines [][]byte
}

// add appends e as a record of the events topic keyed by key and as the
// same line of replay's input, and returns its JSON.
func (in *liveInput) add(t *testing.T, e *event.Event, key string) []byte {
	t.Helper()
	b, err := event.EncodeJSON(e)
	if err != nil {
		t.Fatal(err)
	}
	in.recs = append(in.recs, &kgo.Record{Topic: "events", Key: []byte(key), Value: b})
	in.lines = append(in.lines, b)
	return b
}

func makeLiveInput(t *testing.T, n int) *liveInput {
	return makeInputOf(t, n, liveTraffic)
}

func makeInputOf(t *testing.T, n int, tc traffic.Config) *liveInput {
	t.Helper()
	g := traffic.New(tc)
	in := &liveInput{}
	var last time.Time
	for range n {
		e := g.Next()
		in.add(t, e, e.Contact())
		last = e.Timestamp()
	}
	// One clock event per partition, last in each.
	in.recs, in.lines = appendClockEvents(in.recs, in.lines, last, testPartitions)
	return in
}

// expected is what replay makes of an input.
type expected struct {
	actions []map[string]any
	byID    map[string]string // id → JSON
	state   *state.Memory
	rs      *rules.Ruleset
	sum     *engine.Summary
	retired map[string]string // merged anonymous id → its user
}

// replayInput runs engine.Replay over the input for the actions, and the
// same engine over an in-memory store for the contacts' final state.
func replayInput(t *testing.T, rulesPath string, in *liveInput) *expected {
	t.Helper()
	rs, err := rules.LoadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := engine.Replay(context.Background(), rs, bytes.NewReader(bytes.Join(in.lines, []byte("\n"))), engine.ReplayOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Bad > 0 {
		t.Fatalf("replay found %d bad lines", sum.Bad)
	}
	x := &expected{byID: map[string]string{}, state: state.NewMemory(), rs: rs}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		x.actions = append(x.actions, m)
		x.byID[m["id"].(string)] = canonical(m)
	}
	ctx := context.Background()
	p := engine.NewPartition(rs, x.state, nil)
	p.UseLinks(state.NewMemoryLinks())
	var dec event.Decoder
	for _, line := range in.lines {
		e, err := dec.Decode(line, event.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Advance(ctx, p.Clock()); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Emitted != uint64(len(x.actions)) {
		t.Fatalf("the state replay emitted %d actions, engine.Replay %d", p.Stats().Emitted, len(x.actions))
	}
	x.sum = sum
	x.retired = map[string]string{}
	x.state.Range(func(c *state.Contact) bool {
		for _, a := range c.Merged {
			x.retired[a] = c.ID
		}
		return true
	})
	t.Logf("replay: %d events, %d actions, %d contacts, %d links, %d merges, conflicts %v", len(in.lines), len(x.actions), x.state.Len(), sum.Links, sum.Merges, sum.Conflicts)
	return x
}

func canonical(m map[string]any) string {
	b, _ := json.Marshal(m) // maps marshal with sorted keys
	return string(b)
}

// producer sends the input to the events topic at a steady rate, in order,
// in the background; sent counts the records acknowledged.
type producer struct {
	sent atomic.Int64
	done chan error
}

func (e *liveEnv) produce(recs []*kgo.Record, perSecond int) *producer {
	return e.produceChunks(recs, perSecond, 100)
}

// produceChunks is produce with chunk records at a time.
func (e *liveEnv) produceChunks(recs []*kgo.Record, perSecond, chunk int) *producer {
	return e.produceGated(recs, perSecond, chunk, nil)
}

// produceGated is produceChunks where the record at index i, if gates has
// a condition for it, is sent only once the condition holds (within 60s).
func (e *liveEnv) produceGated(recs []*kgo.Record, perSecond, chunk int, gates map[int]func() error) *producer {
	pr := &producer{done: make(chan error, 1)}
	go func() {
		start := time.Now()
		for i := 0; i < len(recs); i += chunk {
			j := min(i+chunk, len(recs))
			for k := i; k < j; k++ {
				if g := gates[k]; g != nil {
					if err := testenv.Poll(60*time.Second, g); err != nil {
						pr.done <- fmt.Errorf("record %d waited 60s: %w", k, err)
						return
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := e.cl.ProduceSync(ctx, recs[i:j]...).FirstErr()
			cancel()
			if err != nil {
				pr.done <- err
				return
			}
			pr.sent.Store(int64(j))
			if wait := time.Duration(float64(j)/float64(perSecond)*float64(time.Second)) - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
		}
		pr.done <- nil
	}()
	return pr
}

// waitSent waits until at least n records are acknowledged.
func (pr *producer) waitSent(t *testing.T, n int) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		if got := pr.sent.Load(); got < int64(n) {
			return fmt.Errorf("only %d of %d records produced", got, n)
		}
		return nil
	})
}

func (pr *producer) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-pr.done:
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("producing did not finish within 120s")
	}
}

// waitCommitted waits until group has committed every record of topic.
func (e *liveEnv) waitCommitted(group, topic string, timeout time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		ends, err := e.adm.ListEndOffsets(ctx, topic)
		if err == nil {
			offs, err := e.adm.FetchOffsets(ctx, group)
			if err == nil {
				behind := int64(0)
				ends.Each(func(o kadm.ListedOffset) {
					c, ok := offs.Lookup(topic, o.Partition)
					if !ok || c.At < o.Offset {
						behind += o.Offset - max(c.At, 0)
					}
				})
				if behind == 0 {
					return
				}
				if time.Now().After(deadline) {
					e.t.Fatalf("group %s is %d records behind on %s after %v", group, behind, topic, timeout)
				}
			}
		}
		if err != nil && time.Now().After(deadline) {
			e.t.Fatalf("offsets of %s: %v", topic, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDone waits until both stages committed everything produced.
func (e *liveEnv) waitDone() {
	e.t.Helper()
	e.waitCommitted("leadpulse-ingest", "events", 60*time.Second)
	e.waitCommitted("leadpulse", "events.keyed", 60*time.Second)
}

// readTopic reads every record of topic up to its end offsets.
func (e *liveEnv) readTopic(topic string) []*kgo.Record {
	e.t.Helper()
	ctx := context.Background()
	ends, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for int64(len(recs)) < want {
		if time.Now().After(deadline) {
			e.t.Fatalf("read %d of %d records of %s", len(recs), want, topic)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		cancel()
	}
	return recs
}

// compareActions checks the actions topic against replay: every replay
// action is there with the same fields, nothing else is, each contact's
// actions come in replay's order (first occurrences), and every repeat
// of an id is a byte-for-byte copy of the original. It returns the number
// of repeats.
func compareActions(t *testing.T, recs []*kgo.Record, x *expected) (dups int) {
	t.Helper()
	got := map[string]string{}
	var firstOrder []map[string]any
	for _, r := range recs {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("action %s: %v", r.Value, err)
		}
		id, _ := m["id"].(string)
		c := canonical(m)
		if prev, seen := got[id]; seen {
			dups++
			if prev != c {
				t.Errorf("action %s repeated with other content:\n first %s\n again %s", id, prev, c)
			}
			continue
		}
		got[id] = c
		firstOrder = append(firstOrder, m)
	}
	missing, extra, differ := 0, 0, 0
	for id, want := range x.byID {
		g, ok := got[id]
		switch {
		case !ok:
			if missing++; missing <= 5 {
				t.Errorf("missing action %s", want)
			}
		case g != want:
			if differ++; differ <= 5 {
				t.Errorf("action %s differs:\n got %s\nwant %s", id, g, want)
			}
		}
	}
	for id, g := range got {
		if _, ok := x.byID[id]; !ok {
			if extra++; extra <= 5 {
				t.Errorf("unexpected action %s", g)
			}
		}
	}
	if missing+extra+differ > 0 {
		t.Errorf("%d actions missing, %d unexpected, %d different (of %d)", missing, extra, differ, len(x.byID))
	}
	order := func(list []map[string]any) map[string][]string {
		m := map[string][]string{}
		for _, a := range list {
			c, _ := a["contact"].(string)
			m[c] = append(m[c], a["id"].(string))
		}
		return m
	}
	og, ow := order(firstOrder), order(x.actions)
	bad := 0
	for c, ids := range ow {
		if !slices.Equal(ids, og[c]) {
			if bad++; bad <= 3 {
				t.Errorf("contact %s: actions in order %v, want %v", c, og[c], ids)
			}
		}
	}
	return dups
}

// compareState checks that Redis holds, for every contact, the state the
// replay left, and no other contact; it returns the number of contacts
// whose state differs.
func compareState(t *testing.T, redisAddr string, x *expected) (differ int) {
	t.Helper()
	ctx := context.Background()
	st, err := state.NewRedis(state.RedisOptions{Addrs: []string{redisAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	x.state.Range(func(c *state.Contact) bool {
		n++
		want := roundTrip(t, c)
		stored, err := st.Inspect(ctx, c.ID)
		if err != nil {
			t.Errorf("contact %s: %v", c.ID, err)
			return true
		}
		got := stored.Contact
		if got.Pending != nil {
			t.Errorf("contact %s has a pending link at rest: %+v", c.ID, got.Pending)
		}
		// Kafka positions, the known flag, forwarded positions and a
		// merged id's link are live-only: replay keeps links in a table.
		for _, c := range []*state.Contact{got, want} {
			c.Pos, c.Applied, c.Known, c.Forwarded, c.MergedInto = state.Position{}, state.Position{}, false, nil, ""
		}
		if !reflect.DeepEqual(got, want) {
			if differ++; differ <= 3 {
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(want)
				t.Errorf("contact %s: stored state differs from replay's:\n got %s\nwant %s", c.ID, gb, wb)
			}
		}
		return true
	})
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rc.Close()
	keys, err := rc.Keys(ctx, "lp:{*}:c").Result()
	if err != nil {
		t.Fatal(err)
	}
	// A merged anonymous id is a tombstone live (naming its user, so that
	// its later events are forwarded); replay deletes it.
	tombstones := 0
	for a, u := range x.retired {
		stored, err := st.Inspect(ctx, a)
		if err != nil || stored.Contact.MergedInto != u {
			t.Errorf("merged id %s: stored %v (err %v), want a tombstone naming %s", a, stored, err, u)
			continue
		}
		if mine, _ := x.state.Get(ctx, a); mine.Seq == 0 && mine.Latest == state.NoTime {
			tombstones++ // not a contact of replay's (Get of a missing id is empty)
		}
	}
	if len(keys) != n+tombstones {
		t.Errorf("Redis holds %d contacts, replay %d and %d tombstones of merged ids", len(keys), n, tombstones)
	}
	if differ > 0 {
		t.Errorf("%d of %d contacts differ from replay", differ, n)
	}
	return differ
}

func roundTrip(t *testing.T, c *state.Contact) *state.Contact {
	b, err := state.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	d, err := state.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// compareViews checks GET /contacts/{id} of a process against the view of
// replay's state, for a few contacts.
func compareViews(t *testing.T, p *proc, x *expected, n int) {
	t.Helper()
	var ids []string
	x.state.Range(func(c *state.Contact) bool {
		ids = append(ids, c.ID)
		return true
	})
	slices.Sort(ids)
	for _, id := range ids[:min(n, len(ids))] {
		c, _ := x.state.Get(context.Background(), id)
		want, _ := json.Marshal(x.rs.Inspect(roundTrip(t, c), state.NoTime))
		code, body := get("http://" + p.http + "/contacts/" + id)
		if code != http.StatusOK {
			t.Errorf("GET /contacts/%s: %d %s", id, code, body)
			continue
		}
		var got rules.ContactView
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		var w rules.ContactView
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(got, w) {
			gb, _ := json.Marshal(got)
			t.Errorf("GET /contacts/%s:\n got %s\nwant %s", id, gb, want)
		}
	}
}

// TestRunTwoProcessesMatchReplay: two `leadpulse run` processes in one
// group share the partitions and together produce exactly the replay's
// actions (ids and fields), and deliver each through the sinks once.
func TestRunTwoProcessesMatchReplay(t *testing.T) {
	e := newLiveEnv(t, testenv.RedisConfig{}, "sinks:\n  log: { type: stdout, format: json, default: true }\n")
	in := makeLiveInput(t, 10000)
	x := replayInput(t, e.rules, in)
	a := e.start("a")
	b := e.start("b")
	waitShared(t, a, b)
	e.produce(in.recs, 10000).wait(t)
	e.waitDone()
	dups := compareActions(t, e.readTopic("actions"), x)
	if dups != 0 {
		t.Errorf("%d actions produced twice", dups)
	}
	for _, p := range []*proc{a, b} {
		if n := p.metric("leadpulse_actions_produced_total", ""); n == 0 {
			t.Errorf("process %s produced no action: the partitions were not shared", p.name)
		}
	}
	t.Logf("actions produced: a %.0f, b %.0f", a.metric("leadpulse_actions_produced_total", ""), b.metric("leadpulse_actions_produced_total", ""))
	// The dispatch stage of both delivered every action, once (dedupe in Redis).
	e.waitCommitted("leadpulse-dispatch", "actions", 30*time.Second)
	for _, p := range []*proc{a, b} {
		if code := p.signal(syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", p.name, code)
		}
	}
	delivered := map[string]int{}
	for _, p := range []*proc{a, b} {
		for line := range strings.SplitSeq(strings.TrimSpace(p.stdout.String()), "\n") {
			var m struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(line), &m); err != nil || m.ID == "" {
				t.Fatalf("%s printed %q, not an action", p.name, line)
			}
			delivered[m.ID]++
		}
	}
	twice := 0
	for id, n := range delivered {
		if _, ok := x.byID[id]; !ok {
			t.Errorf("delivered unknown action %s", id)
		}
		twice += n - 1
	}
	if len(delivered) != len(x.byID) || twice > 0 {
		t.Errorf("sinks delivered %d distinct actions (%d repeats), want %d once each", len(delivered), twice, len(x.byID))
	}
	t.Logf("%d actions delivered through the sinks", len(delivered))
}

// waitShared waits until both processes own partitions and together all.
func waitShared(t *testing.T, a, b *proc) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		na, nb := a.metric("leadpulse_score_partitions", ""), b.metric("leadpulse_score_partitions", "")
		if na > 0 && nb > 0 && na+nb == testPartitions {
			return nil
		}
		return fmt.Errorf("partitions not shared: a %v, b %v", na, nb)
	})
}

// TestRunSIGTERMHandsOver: stopping one of two processes mid-stream (SIGTERM)
// drains it, moves its partitions to the other, and loses nothing: the
// actions are exactly replay's, none twice.
func TestRunSIGTERMHandsOver(t *testing.T) {
	e := newLiveEnv(t, testenv.RedisConfig{}, "")
	in := makeLiveInput(t, 10000)
	x := replayInput(t, e.rules, in)
	a := e.start("a")
	b := e.start("b")
	waitShared(t, a, b)
	pr := e.produce(in.recs, 5000)
	pr.waitSent(t, len(in.recs)*2/5)
	if code := b.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("b exited %d after SIGTERM", code)
	}
	sentAtStop := pr.sent.Load()
	pr.wait(t)
	e.waitDone()
	if n := a.metric("leadpulse_score_partitions", ""); n != testPartitions {
		t.Errorf("a owns %v partitions after b stopped, want %d", n, testPartitions)
	}
	if !strings.Contains(b.stderr.String(), "stream: pipeline stopped") {
		t.Errorf("b did not log a clean drain")
	}
	dups := compareActions(t, e.readTopic("actions"), x)
	if dups != 0 {
		t.Errorf("%d actions produced twice after a SIGTERM (a drain should repeat nothing)", dups)
	}
	compareState(t, e.redis.Addr, x)
	t.Logf("b stopped after %d of %d records were produced", sentAtStop, len(in.recs))
}

// TestRunSIGKILLRestart: a process killed with SIGKILL mid-stream and
// started again (three times: when a quarter, half and three quarters of the
// input are scored) loses no action; the actions it produces again carry
// their original's id and content; and every contact's final state in Redis
// (and in GET /contacts/{id}) equals replay's. The input is produced first,
// so that the process is busy with the backlog when it is killed.
func TestRunSIGKILLRestart(t *testing.T) {
	e := newLiveEnv(t, testenv.RedisConfig{}, "")
	in := makeLiveInput(t, 10000)
	x := replayInput(t, e.rules, in)
	e.produce(in.recs, 1_000_000).wait(t)
	p := e.start("a")
	var kills []string
	for i, at := range []int{25, 50, 75} {
		scored := e.waitScored(int64(len(in.recs) * at / 100))
		p.signal(syscall.SIGKILL)
		kills = append(kills, fmt.Sprintf("%d", scored))
		p = e.start("a" + strconv.Itoa(i+2))
	}
	e.waitDone()
	dups := compareActions(t, e.readTopic("actions"), x)
	compareState(t, e.redis.Addr, x)
	compareViews(t, p, x, 20)
	t.Logf("SIGKILL when %s of %d records were scored; %d of %d actions produced again after a restart, each with its original's id and content",
		strings.Join(kills, ", "), len(in.recs), dups, len(x.actions))
}

// waitScored waits until the scoring group has committed at least n
// records, and returns how many.
func (e *liveEnv) waitScored(n int64) int64 {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		offs, err := e.adm.FetchOffsets(context.Background(), "leadpulse")
		if err == nil {
			sum := int64(0)
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == "events.keyed" && o.At > 0 {
					sum += o.At
				}
			})
			if sum >= n {
				return sum
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("fewer than %d records scored within 60s", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestRunRedisRestart: redis-server killed and started again mid-stream
// (append-only file, fsync always): partitions wait, /readyz says not ready
// during the outage, processing resumes by itself, and nothing is lost.
func TestRunRedisRestart(t *testing.T) {
	e := newLiveEnv(t, testenv.RedisConfig{Persist: true}, "")
	in := makeLiveInput(t, 10000)
	x := replayInput(t, e.rules, in)
	a := e.start("a")
	pr := e.produce(in.recs, 5000)
	pr.waitSent(t, len(in.recs)*2/5)
	e.redis.Stop(t)
	stoppedAt := pr.sent.Load()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get("http://" + a.http + "/readyz")
		if code == http.StatusServiceUnavailable {
			t.Logf("during the outage /readyz says: %s", strings.TrimSpace(body))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q 10s into the Redis outage", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // records pile up meanwhile
	e.redis.Start(t)
	a.waitReady(30 * time.Second)
	pr.wait(t)
	e.waitDone()
	if !a.running() {
		t.Fatalf("the process exited (%d) during the Redis outage", a.exit)
	}
	dups := compareActions(t, e.readTopic("actions"), x)
	if dups != 0 {
		t.Errorf("%d actions produced twice across the Redis outage", dups)
	}
	compareState(t, e.redis.Addr, x)
	t.Logf("Redis stopped after %d of %d records; fetch pauses %.0f, store errors %.0f",
		stoppedAt, len(in.recs), a.metric("leadpulse_fetch_pauses_total", ""), a.metric("leadpulse_redis_errors_total", ""))
}

const reloadRulesA = `version: 1
triggers:
  - id: signup-a
    sequence: [event == "Signed Up"]
    within: 1d
    do: [note]
actions:
  note:
    sink: log
`

// TestRunSIGHUPReloadsRules: SIGHUP with a rules file that does not
// validate logs each problem (FILE:LINE) and keeps the running rules; with
// a valid file, the partitions switch to it.
func TestRunSIGHUPReloadsRules(t *testing.T) {
	e := newLiveEnv(t, testenv.RedisConfig{}, "")
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(rulesPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadRulesA)
	a := e.start("a", "LEADPULSE_RULES="+rulesPath)
	ev := func(i int) *kgo.Record {
		id := "u-" + strconv.Itoa(i)
		return &kgo.Record{Topic: "events", Key: []byte(id), Value: []byte(`{"type":"track","userId":"` + id + `","event":"Signed Up","timestamp":"2031-01-01T00:00:0` + strconv.Itoa(i) + `Z"}`)}
	}
	triggers := func(n int) []string {
		t.Helper()
		recs := e.readTopicN("actions", n)
		var ts []string
		for _, r := range recs {
			var m map[string]any
			_ = json.Unmarshal(r.Value, &m)
			ts = append(ts, m["trigger"].(string))
		}
		return ts
	}
	e.produce([]*kgo.Record{ev(1)}, 1000).wait(t)
	if got := triggers(1); !slices.Equal(got, []string{"signup-a"}) {
		t.Fatalf("before reload: %v", got)
	}

	write(reloadRulesA + "  broken:\n    sink: log\n    if: nope ==\n")
	a.signal(syscall.SIGHUP)
	waitLog(t, a, "keeping the last valid rules", 1)
	if !strings.Contains(a.stderr.String(), rulesPath+":") {
		t.Errorf("the problems are not logged as FILE:LINE lines:\n%s", tail(a.stderr.String(), 2000))
	}
	e.produce([]*kgo.Record{ev(2)}, 1000).wait(t)
	if got := triggers(2); !slices.Equal(got, []string{"signup-a", "signup-a"}) {
		t.Fatalf("after an invalid reload: %v", got)
	}

	write(strings.ReplaceAll(reloadRulesA, "signup-a", "signup-b"))
	a.signal(syscall.SIGHUP)
	waitLog(t, a, "stream: partition switched to new rules", testPartitions)
	e.produce([]*kgo.Record{ev(3)}, 1000).wait(t)
	if got := triggers(3); !slices.Equal(got, []string{"signup-a", "signup-a", "signup-b"}) {
		t.Fatalf("after a valid reload: %v", got)
	}
	if ok, bad := a.metric("leadpulse_rules_reloads_total", `result="ok"`), a.metric("leadpulse_rules_reloads_total", `result="invalid"`); ok != 1 || bad != 1 {
		t.Errorf("reloads ok %v invalid %v, want 1 and 1", ok, bad)
	}
}

func waitLog(t *testing.T, p *proc, s string, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if out := p.stderr.String(); strings.Count(out, s) < n {
			return fmt.Errorf("%s did not log %q %d times:\n%s", p.name, s, n, tail(out, 3000))
		}
		return nil
	})
}

// readTopicN reads the first n records of a topic (in partition order).
func (e *liveEnv) readTopicN(topic string, n int) []*kgo.Record {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ends, err := e.adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			e.t.Fatal(err)
		}
		total := int64(0)
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total >= int64(n) {
			recs := e.readTopic(topic)
			slices.SortStableFunc(recs, func(a, b *kgo.Record) int { return a.Timestamp.Compare(b.Timestamp) })
			return recs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s holds %d records, want %d within 20s", topic, total, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunAdminAPIAndCommands: the admin API needs the token for /contacts,
// not for probes; `leadpulse contact` and `leadpulse forget` talk to it;
// a forgotten contact is gone from Redis and a later event starts afresh.
func TestRunAdminAPIAndCommands(t *testing.T) {
	e := newLiveEnv(t, testenv.RedisConfig{}, "")
	a := e.start("a", "LEADPULSE_ADMIN_TOKEN=t0ken")
	rec := func(n int) *kgo.Record {
		return &kgo.Record{Topic: "events", Key: []byte("u-1"), Value: []byte(`{"type":"track","userId":"u-1","event":"Product Added","properties":{"price":500},"messageId":"m` + strconv.Itoa(n) + `","timestamp":"2031-01-01T00:00:0` + strconv.Itoa(n) + `Z"}`)}
	}
	e.produce([]*kgo.Record{rec(1)}, 1000).wait(t)
	e.waitDone()

	if code, _ := get("http://" + a.http + "/contacts/u-1"); code != http.StatusUnauthorized {
		t.Errorf("GET /contacts without the token: %d, want 401", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get("http://" + a.http + path); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, code)
		}
	}
	cli := func(args ...string) (int, string, string) {
		var out, errs bytes.Buffer
		code := run(context.Background(), append(args, "--http", a.http, "--token", "t0ken"), strings.NewReader(""), &out, &errs)
		return code, out.String(), errs.String()
	}
	code, out, errs := cli("contact", "u-1")
	if code != 0 {
		t.Fatalf("leadpulse contact: exit %d: %s", code, errs)
	}
	var v rules.ContactView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != "u-1" || v.Events != 1 || v.Windows["cart_value_1d"] != 500 || v.Points.Engagement["product-added"] != 5 || len(v.Timers) != 2 {
		t.Errorf("contact view: %s", out)
	}
	if code, _, errs := cli("contact", "nobody"); code != 1 || !strings.Contains(errs, "not stored") {
		t.Errorf("contact nobody: exit %d %s", code, errs)
	}
	var stored struct {
		Stored map[string]any `json:"stored"`
	}
	_ = json.Unmarshal([]byte(out), &stored)
	if s := stored.Stored; s["store"] != "redis" || s["offset"] == nil || s["version"] == nil {
		t.Errorf("stored: %v, want store redis with the offset and version of the last write", s)
	}
	if code, out, errs := cli("forget", "ghost"); code != 1 || !strings.Contains(errs, "not stored") || out != "" {
		t.Errorf("forget of a contact never seen: exit %d, want 1: %q %s", code, out, errs)
	}
	var o, er bytes.Buffer
	if code := run(context.Background(), []string{"contact", "u-1", "--http", a.http, "--token", "wrong"}, strings.NewReader(""), &o, &er); code != 2 || !strings.Contains(er.String(), "401") {
		t.Errorf("contact with a wrong token: exit %d %s", code, er.String())
	}

	code, out, errs = cli("forget", "u-1")
	if code != 0 || strings.TrimSpace(out) != "u-1: erased" {
		t.Fatalf("leadpulse forget: exit %d %q %s", code, out, errs)
	}
	if code, _, _ := cli("contact", "u-1"); code != 1 {
		t.Errorf("contact after forget: exit %d, want 1 (not found)", code)
	}
	e.produce([]*kgo.Record{rec(2)}, 1000).wait(t)
	e.waitDone()
	_, out, _ = cli("contact", "u-1")
	v = rules.ContactView{}
	_ = json.Unmarshal([]byte(out), &v)
	if v.Events != 1 || v.Windows["cart_value_1d"] != 500 {
		t.Errorf("after forget, a new event does not start a fresh contact: %s", out)
	}
	if !strings.Contains(a.stderr.String(), "stream: contact erased") {
		t.Error("the erasure is not logged")
	}
}

// TestRunConfigErrors runs the command in-process: a config that does not
// validate exits 2 with FILE:LINE problems, rules that do not validate exit
// 1 with FILE:LINE lines, --check prints the effective config.
func TestRunConfigErrors(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(reloadRulesA), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := func(s string) string {
		p := filepath.Join(dir, "lp.yaml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, k := range []string{"LEADPULSE_KAFKA_BROKERS", "LEADPULSE_RULES", "LEADPULSE_HTTP", "LEADPULSE_ADMIN_TOKEN"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Setenv(k, v)
			os.Unsetenv(k)
		}
	}
	for _, tc := range []struct {
		name string
		yml  string
		env  []string
		code int
		want []string
	}{
		{"check", "kafka: {brokers: [k1:9092]}\nrules: rules.yaml\nsinks:\n  log: {type: stdout}\n", []string{"LEADPULSE_ADMIN_TOKEN=secret", "LEADPULSE_HTTP=0.0.0.0:9000"}, 0,
			[]string{"brokers:\n", "- k1:9092", "http: 0.0.0.0:9000", "admin_token: <redacted>", "is valid (rules " + rulesPath + ": 1 triggers, 1 actions; 1 sinks)"}},
		{"unknown key", "kafka:\n  brokerz: [k1:9092]\nrules: rules.yaml\n", nil, 2,
			[]string{"lp.yaml:2: unknown key \"brokerz\" in kafka:"}},
		{"contradiction", "rules: rules.yaml\npipeline: {batch_records: 10, queue_records: 5}\n", nil, 2,
			[]string{"lp.yaml:2: pipeline.queue_records: pipeline.queue_records (5) is below pipeline.batch_records (10)"}},
		{"unknown variable", "rules: rules.yaml\n", []string{"LEADPULSE_REDIS_ADDRS=r:1"}, 2,
			[]string{"$LEADPULSE_REDIS_ADDRS: unknown variable; did you mean LEADPULSE_REDIS_ADDR?"}},
		{"bad sinks", "rules: rules.yaml\nsinks:\n  log: {type: stdout, colour: red}\n", nil, 2,
			[]string{"lp.yaml:3:", "colour"}},
		{"missing rules", "rules: none.yaml\n", nil, 2, []string{"none.yaml"}},
		{"invalid rules", "rules: bad.yaml\n", nil, 1, []string{"bad.yaml:4: signup-a: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(strings.Replace(reloadRulesA, `event == "Signed Up"`, `nope == "Signed Up"`, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			var out, errs bytes.Buffer
			code := run(context.Background(), []string{"run", "--config", cfg(tc.yml), "--check"}, strings.NewReader(""), &out, &errs)
			all := out.String() + errs.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

var (
	throughput      = flag.Int("throughput", 0, "TestRunThroughput: events to time through one `leadpulse run` with Redis (0 skips the measurement)")
	throughputKeyed = flag.Bool("throughput-keyed", false, "TestRunThroughput: input_keyed (scoring only, no ingest hop)")
)

// TestRunThroughput measures the sustained events/s of one `leadpulse run`
// process with the Redis store: the input is produced first (B2B traffic
// of 10,000 visitors, the example b2b rules), then the process starts and
// works through the backlog; the rate is events over the time from ready to
// the last offset committed. The broker (kfake) runs in the test process
// and Redis on the same host, sharing the CPUs.
//
//	go test ./cmd/leadpulse -run TestRunThroughput -throughput 200000 -v
//	go test ./cmd/leadpulse -run TestRunThroughput -throughput 200000 -throughput-keyed -v
func TestRunThroughput(t *testing.T) {
	if *throughput <= 0 {
		t.Skip("a measurement: go test ./cmd/leadpulse -run TestRunThroughput -throughput 200000 -v")
	}
	e := newLiveEnv(t, testenv.RedisConfig{}, "")
	b2b, _ := filepath.Abs("../../examples/b2b-saas.yaml")
	// The defaults, but for the brokers, Redis and the rules.
	cfg := fmt.Sprintf("kafka:\n  brokers: [%s]\n  input_keyed: %v\nredis:\n  addr: %s\nrules: %s\n", e.kafka, *throughputKeyed, e.redis.Addr, b2b)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	in := makeInputOf(t, *throughput, traffic.Config{Contacts: 10_000, Seed: 5, Start: time.Date(2031, 1, 5, 9, 0, 0, 0, time.UTC)})
	t0 := time.Now()
	e.produce(in.recs, 10_000_000).wait(t)
	t.Logf("produced %d events in %v", len(in.recs), time.Since(t0).Round(time.Millisecond))
	start := time.Now()
	a := e.start("a")
	ready := time.Now()
	if *throughputKeyed {
		e.waitCommitted("leadpulse", "events", 10*time.Minute)
	} else {
		e.waitCommitted("leadpulse-ingest", "events", 10*time.Minute)
		t.Logf("ingest done after %v", time.Since(ready).Round(time.Millisecond))
		e.waitCommitted("leadpulse", "events.keyed", 10*time.Minute)
	}
	d := time.Since(ready)
	t.Logf("one leadpulse run (Redis store, input_keyed=%v): %d events in %v = %.0f events/s (start to ready %v); %.0f actions, %.0f Redis commits, %.0f contact writes",
		*throughputKeyed, len(in.recs), d.Round(time.Millisecond), float64(len(in.recs))/d.Seconds(), ready.Sub(start).Round(time.Millisecond),
		a.metric("leadpulse_actions_produced_total", ""), a.metric("leadpulse_redis_commits_total", ""), a.metric("leadpulse_redis_contacts_written_total", ""))
}

// appendClockEvents appends one "Clock" event per partition of the events
// topic, a minute after last: each partition's clock then passes every
// event's time, so replay and the live run fire the same timers.
func appendClockEvents(recs []*kgo.Record, lines [][]byte, last time.Time, partitions int) ([]*kgo.Record, [][]byte) {
	end := last.Add(time.Minute).Format(time.RFC3339Nano)
	part := kgo.StickyKeyPartitioner(nil).ForTopic("events")
	for p, i := 0, 0; p < partitions; i++ {
		id := fmt.Sprintf("clock-%d", i)
		if part.Partition(&kgo.Record{Key: []byte(id)}, partitions) != p {
			continue
		}
		b := []byte(`{"type":"track","userId":"` + id + `","event":"Clock","messageId":"` + id + `","timestamp":"` + end + `"}`)
		recs = append(recs, &kgo.Record{Topic: "events", Key: []byte(id), Value: b})
		lines = append(lines, b)
		p++
	}
	return recs, lines
}
