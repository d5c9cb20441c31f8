package stream_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// identityRate is the steady rate of the identity tests, in events per
// second; event time advances at the same pace, so that a hand-over takes
// milliseconds of event time as it does in production.
const identityRate = 400

// identityTraffic: B2B visitors, most of whom identify, a tenth of them on
// a device another contact identified on before (conflicts).
func identityTraffic(seed int64) traffic.Config {
	return traffic.Config{Contacts: 60, Seed: seed, Step: time.Second / identityRate, Mix: traffic.MixB2B,
		AnonymousShare: 0.25, SharedDevices: 0.4}
}

// TestIdentityLiveMatchesReplay sends B2B traffic with identify flows at a
// steady rate over TCP to a pipeline on 3 partitions and checks that the
// actions are replay's (same ids and fields, merges included), that every
// contact's final state is replay's — users whose anonymous ids were keyed
// to other partitions among them — and that the link, merge and conflict
// counts are replay's.
func TestIdentityLiveMatchesReplay(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testIdentityLive(t, func(t *testing.T) (stream.Scoring, storeView) {
			m := state.NewMemory()
			return stream.Scoring{Memory: m}, memoryView{m}
		})
	})
	t.Run("redis", func(t *testing.T) {
		addr := testenv.RedisServer(t)
		testIdentityLive(t, func(t *testing.T) (stream.Scoring, storeView) {
			return redisScoring(t, []string{addr})
		})
	})
	t.Run("timeout", func(t *testing.T) {
		addr := testenv.RedisServer(t)
		testIdentityLiveTimeout(t, func(t *testing.T) (stream.Scoring, storeView) {
			return redisScoring(t, []string{addr})
		}, time.Nanosecond)
	})
	t.Run("redis-cluster", func(t *testing.T) {
		addrs := testenv.RedisCluster(t)
		testIdentityLive(t, func(t *testing.T) (stream.Scoring, storeView) {
			return redisScoring(t, addrs)
		})
	})
}

func redisScoring(t *testing.T, addrs []string) (stream.Scoring, storeView) {
	r := openRedis(t, addrs...)
	return stream.Scoring{Redis: r}, redisView{r: r, addrs: addrs}
}

// storeView reads what a live store holds at the end of a test.
type storeView interface {
	get(t *testing.T, id string) *state.Contact // nil: not stored
	count(t *testing.T) int
}

type memoryView struct{ m *state.Memory }

func (v memoryView) get(_ *testing.T, id string) *state.Contact {
	var found *state.Contact
	v.m.Range(func(c *state.Contact) bool {
		if c.ID == id {
			found = c
			return false
		}
		return true
	})
	return found
}

func (v memoryView) count(*testing.T) int { return v.m.Len() }

type redisView struct {
	r     *state.Redis
	addrs []string
}

func (v redisView) get(t *testing.T, id string) *state.Contact {
	s, err := v.r.Inspect(context.Background(), id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return s.Contact
}

func (v redisView) count(t *testing.T) int {
	ctx := context.Background()
	n := 0
	for _, a := range v.addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		keys, err := c.Keys(ctx, "lp:{*}:c").Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += len(keys)
	}
	return n
}

// identityReplay is what replay makes of the input, with its final state.
type identityReplay struct {
	actions []map[string]any
	sum     *engine.Summary
	state   *state.Memory
	retired map[string]string // anonymous id → the user it merged into
}

func replayIdentity(t *testing.T, rs *rules.Ruleset, lines [][]byte) *identityReplay {
	t.Helper()
	x := &identityReplay{state: state.NewMemory(), retired: map[string]string{}}
	var out bytes.Buffer
	sum, err := engine.Replay(context.Background(), rs, bytes.NewReader(bytes.Join(lines, []byte("\n"))), engine.ReplayOptions{Out: &out, Store: x.state})
	if err != nil {
		t.Fatal(err)
	}
	x.sum = sum
	dec := json.NewDecoder(&out)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		x.actions = append(x.actions, m)
	}
	x.state.Range(func(c *state.Contact) bool {
		for _, a := range c.Merged {
			x.retired[a] = c.ID
		}
		return true
	})
	return x
}

// sameState compares a live contact with replay's, without what only live
// keeps (Kafka positions, the known flag, forwarded positions, a retired
// id's link, which replay keeps in its link table).
func sameState(t *testing.T, got, want *state.Contact) bool {
	t.Helper()
	if got.Pending != nil {
		t.Errorf("contact %s has a pending link at rest: %+v", got.ID, got.Pending)
	}
	g, w := roundTrip(t, got), roundTrip(t, want)
	for _, c := range []*state.Contact{g, w} {
		c.Pos, c.Applied, c.Known, c.Forwarded, c.MergedInto = state.Position{}, state.Position{}, false, nil, ""
	}
	return reflect.DeepEqual(g, w)
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

func testIdentityLive(t *testing.T, store func(*testing.T) (stream.Scoring, storeView)) {
	testIdentityLiveTimeout(t, store, 0)
}

// testIdentityLiveTimeout is testIdentityLive with a handover timeout; a
// tiny one gives up every hand-over before its answer: the users' events
// are applied before their merge (actions and trigger state may then
// differ from replay's), and the merge follows; windows, merged ids,
// tombstones and counts still equal replay's.
func testIdentityLiveTimeout(t *testing.T, store func(*testing.T) (stream.Scoring, storeView), timeout time.Duration) {
	const partitions = 3
	rs := loadRulesMerging(t, b2bRules)
	g := traffic.New(identityTraffic(5))
	var recs []*kgo.Record
	var lines [][]byte
	var last time.Time
	// A visitor who identified opens a page in a tab that sends only the
	// cookie: an event carrying only a merged anonymous id, which the
	// anonymous id's partition forwards to the user's. It comes after the
	// visitor's last other event: live orders a forward after the user's
	// own events that are sent meanwhile, where replay has input order
	// (DESIGN.md, Identity live: ordering), and under load (-race on two
	// shared cores) a forward can take half a second.
	var gen []*event.Event
	for range 3000 {
		gen = append(gen, g.Next())
	}
	lastOf := map[string]int{}
	for i, e := range gen {
		lastOf[e.UserID], lastOf[e.AnonymousID] = i, i
	}
	later := map[int][]*event.Event{}
	for i, e := range gen {
		if e.Type != "identify" || e.AnonymousID != "anon-"+strings.TrimPrefix(e.UserID, "u-") {
			continue
		}
		if j := max(lastOf[e.UserID], lastOf[e.AnonymousID]) + 1; j < len(gen) {
			tab := &event.Event{Type: "page", AnonymousID: e.AnonymousID,
				Name: "Pricing", Properties: map[string]any{"path": "/pricing"}, MessageID: fmt.Sprintf("tab-%d", i)}
			if len(later)%3 == 0 {
				tab.UserID = "null" // a blocked id (SPEC §6): the event is the cookie's
			}
			later[j] = append(later[j], tab)
		}
	}
	var all []*event.Event
	for i, e := range gen {
		all = append(all, e)
		for _, x := range later[i] {
			x.Time, x.RawTimestamp = e.Time, e.RawTimestamp
			all = append(all, x)
		}
	}
	// Every event of a person (its user, its cookie, a shared device's
	// cookie) in one input partition: the ingest stage keeps input order
	// within a partition only, and replay applies input order.
	var people testenv.Groups
	for _, e := range all {
		people.Join(rs.Identity().Usable(e.UserID, e.AnonymousID))
	}
	for _, e := range all {
		user, anon := rs.Identity().Usable(e.UserID, e.AnonymousID)
		b, err := event.EncodeJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "events", Key: []byte(people.Of(cmp.Or(user, anon))), Value: b})
		lines = append(lines, b)
		last = e.Timestamp()
	}
	x := replayIdentity(t, rs, lines)
	part := kgo.StickyKeyPartitioner(nil).ForTopic("events.keyed")
	partOf := func(id string) int { return part.Partition(&kgo.Record{Key: []byte(id)}, partitions) }
	cross, slots := 0, 0
	for a, u := range x.retired {
		if partOf(a) != partOf(u) {
			cross++
		}
		if slot(a) != slot(u) {
			slots++
		}
	}
	conflicts := x.sum.Conflicts["merged_elsewhere"] + x.sum.Conflicts["known"] + x.sum.Conflicts["max_anonymous"]
	if x.sum.Merges < 10 || cross < 5 || slots < 5 || conflicts == 0 || len(x.actions) < 20 {
		t.Fatalf("replay: %d links, %d merges (%d across partitions), %d conflicts, %d actions: the test needs richer traffic",
			x.sum.Links, x.sum.Merges, cross, conflicts, len(x.actions))
	}
	t.Logf("replay: %d events, %d actions, %d links (%d across partitions, %d across Redis Cluster slots), %d merges, conflicts %v",
		len(lines), len(x.actions), x.sum.Links, cross, slots, x.sum.Merges, x.sum.Conflicts)

	addr := startKafka(t)
	clock := newClock(traffic.DefaultStart.Add(-time.Hour)) // no wall-clock timers until the end
	cfg := testConfig(t, addr, clock)
	cfg.Partitions = partitions
	cfg.HandoverTimeout = timeout
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	sc, view := store(t)
	sc.Rules = rs
	// Every event counts once, when it is applied: a held one at its
	// release, a forwarded one in its user's partition.
	var applied atomic.Int64
	sc.OnBatchApplied = func(times []int64, _ int64) { applied.Add(int64(len(times))) }
	r := start(t, cfg, sc, reg)

	// A steady rate: 8 records every 20ms.
	cl := client(t, addr, kgo.ProducerLinger(0))
	tick := time.NewTicker(20 * time.Millisecond)
	for i := 0; i < len(recs); i += identityRate / 50 {
		<-tick.C
		j := min(i+identityRate/50, len(recs))
		for _, rec := range recs[i:j] {
			cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce: %v", err)
				}
			})
		}
	}
	tick.Stop()
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	actions := newConsumer(t, addr, "actions")
	clock.set(last.Add(500 * time.Millisecond)) // replay ends at the last event's time
	if timeout == 0 {
		actions.until(len(x.actions), 30*time.Second)
		actions.poll(300 * time.Millisecond) // nothing more may come
		sameActions(t, decodeActions(t, actions.recs), x.actions)
	}
	waitCommitted(t, addr, "leadpulse", "events.keyed", int64(len(recs)))
	r.shutdown(t)
	if got := applied.Load(); got != int64(len(recs)) {
		t.Errorf("OnBatchApplied saw %d applied events, want each of the %d once", got, len(recs))
	}

	differ, n := 0, 0
	x.state.Range(func(want *state.Contact) bool {
		n++
		got := view.get(t, want.ID)
		switch {
		case got == nil:
			t.Errorf("contact %s: not stored live", want.ID)
		case timeout > 0:
			if g := roundTrip(t, got); got.Pending != nil || !reflect.DeepEqual(g.Windows, want.Windows) || !slices.Equal(got.Merged, want.Merged) {
				if differ++; differ <= 3 {
					t.Errorf("contact %s after late merges: windows %+v merged %v pending %+v; replay: windows %+v merged %v",
						want.ID, g.Windows, got.Merged, got.Pending, want.Windows, want.Merged)
				}
			}
		case !sameState(t, got, want):
			if differ++; differ <= 3 {
				gb, _ := json.Marshal(roundTrip(t, got))
				wb, _ := json.Marshal(want)
				t.Errorf("contact %s differs from replay's:\n got %s\nwant %s", want.ID, gb, wb)
			}
		}
		return true
	})
	tombstones := 0
	for a, u := range x.retired {
		c := view.get(t, a)
		if c == nil || c.MergedInto != u {
			t.Errorf("merged id %s: live holds %+v, want a tombstone naming %s", a, c, u)
			continue
		}
		if mine, _ := x.state.Get(context.Background(), a); mine.Seq == 0 && mine.Latest == state.NoTime {
			x.state.Delete(context.Background(), a) // Get made it; it is not replay's
			tombstones++
		}
	}
	if got := view.count(t); got != n+tombstones {
		t.Errorf("the store holds %d contacts, want replay's %d and %d tombstones of merged ids", got, n, tombstones)
	}
	if differ > 0 {
		t.Errorf("%d of %d contacts differ from replay", differ, n)
	}

	count := func(name, label string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
					continue
				}
				switch {
				case m.Counter != nil:
					v += m.Counter.GetValue()
				case m.Histogram != nil:
					v += float64(m.Histogram.GetSampleCount())
				case m.Gauge != nil:
					v += m.Gauge.GetValue()
				}
			}
		}
		return v
	}
	for name, want := range map[string]uint64{
		"leadpulse_identity_links_total":  x.sum.Links,
		"leadpulse_identity_merges_total": x.sum.Merges,
	} {
		if got := count(name, ""); got != float64(want) {
			t.Errorf("%s = %v, replay counts %d", name, got, want)
		}
	}
	for kind, want := range x.sum.Conflicts {
		if got := count("leadpulse_identity_conflicts_total", kind); got != float64(want) {
			t.Errorf("conflicts of kind %s: %v, replay counts %d", kind, got, want)
		}
	}
	if timeout > 0 {
		if got := count("leadpulse_identity_handover_timeouts_total", ""); got == 0 {
			t.Error("no hand-over timed out")
		}
		return
	}
	if got := count("leadpulse_identity_handover_seconds", ""); got == 0 {
		t.Error("no hand-over latency observed")
	}
	if got := count("leadpulse_identity_forwarded_total", ""); got < 5 {
		t.Errorf("%v events of merged anonymous ids forwarded: the test needs more of that path", got)
	}
	if got := count("leadpulse_identity_parked_contacts", ""); got != 0 {
		t.Errorf("%v contacts parked at rest", got)
	}
	t.Logf("%v events of merged anonymous ids forwarded", count("leadpulse_identity_forwarded_total", ""))
	p50, p99 := handoverQuantiles(t, reg)
	t.Logf("hand-over latency (link-request produced → answer applied): p50 ≤ %s, p99 ≤ %s (histogram bucket bounds), %v hand-overs",
		p50, p99, count("leadpulse_identity_handover_seconds", ""))
}

// handoverQuantiles returns the bucket bounds that hold the p50 and p99 of
// leadpulse_identity_handover_seconds.
func handoverQuantiles(t *testing.T, reg *prometheus.Registry) (p50, p99 string) {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "leadpulse_identity_handover_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		n := h.GetSampleCount()
		bs := h.GetBucket()
		sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
		q := func(f float64) string {
			for _, b := range bs {
				if float64(b.GetCumulativeCount()) >= f*float64(n) {
					return fmt.Sprint(time.Duration(b.GetUpperBound() * float64(time.Second)))
				}
			}
			return "+Inf"
		}
		return q(0.5), q(0.99)
	}
	return "?", "?"
}

// slot is the Redis Cluster slot of a contact's keys (CRC16/XMODEM of the
// hash tag, the contact id, mod 16384).
func slot(id string) int {
	var crc uint16
	for _, b := range []byte(id) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
