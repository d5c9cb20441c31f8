package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// base is an event time used throughout: 2026-03-01T00:00:00Z.
var base = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// typicalContact is a B2B contact as the engine leaves it after a few weeks:
// three windows of ten entries, five points slots, five traits, four
// triggers, a pending timer, a cap and fifty remembered messageIds.
func typicalContact(id string) *Contact {
	c := New(id)
	c.Seq = 120
	c.Latest = base
	c.Stage = "lead"
	c.Traits = map[string]any{
		"industry":     "healthcare",
		"company_size": 250.0,
		"title":        "VP Engineering",
		"email":        id + "@example.com",
		"region":       "emea",
	}
	ts := func(n int, step time.Duration) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = base - int64(n-i)*int64(step)
		}
		return out
	}
	c.Windows = []Window{
		{Name: "pricing_views_7d", T: ts(10, 7*time.Hour)},
		{Name: "cart_value_1d", T: ts(10, time.Hour), V: []float64{19.9, 49, 120, 5.5, 7, 99.99, 12, 3, 42, 18}},
		{Name: "docs_distinct_30d", T: ts(10, 24*time.Hour), K: []string{"/docs/a", "/docs/b", "/docs/c", "/docs/d", "/docs/e", "/docs/f", "/docs/g", "/docs/h", "/docs/i", "/docs/j"}},
	}
	c.Points = []Points{
		{Rule: "pricing-page", Value: 27.5, AsOf: base, LimT: ts(3, 24*time.Hour), LimP: []float64{10, 10, 10}},
		{Rule: "demo-request", Value: 40, AsOf: base - int64(48*time.Hour)},
		{Rule: "careers-page", Value: -15, AsOf: base - int64(240*time.Hour)},
		{Rule: "healthcare", Value: 15, AsOf: base},
		{Rule: "large-company", Value: 10, AsOf: base},
	}
	c.Triggers = []Trigger{
		{ID: "hot-lead", On: true, Last: base - int64(time.Hour), Fired: 1},
		{ID: "pricing-3x", Last: NoTime},
		{ID: "guide-then-pricing", Last: NoTime, Steps: []int64{base - int64(time.Hour), NoTime}},
		{ID: "abandoned-cart", Last: NoTime},
	}
	c.Timers = []Timer{{Trigger: "abandoned-cart", Due: base + int64(time.Hour), Set: 118}}
	c.Caps = []Cap{{Action: "sales-alert", T: ts(2, 24*time.Hour)}}
	for i := range 50 {
		c.Seen.Add(fmt.Sprintf("%s-msg-%d", id, i))
	}
	return c
}

// backend is a Redis deployment the core tests run against.
type backend struct {
	name  string
	addrs []string
}

func backends(t *testing.T) []backend {
	t.Helper()
	bs := []backend{{"standalone", []string{testenv.RedisServer(t)}}}
	if testing.Short() {
		t.Log("-short: skipping the Redis Cluster backend")
		return bs
	}
	return append(bs, backend{"cluster", testenv.RedisCluster(t)})
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newRedis connects to addrs with a key prefix of its own, so that cases
// sharing a server never see each other's keys.
func newRedis(t *testing.T, addrs []string, mod ...func(*RedisOptions)) *Redis {
	t.Helper()
	o := RedisOptions{
		Addrs:     addrs,
		KeyPrefix: "t" + strings.NewReplacer("/", ".", " ", "_").Replace(t.Name()),
		Logger:    quiet,
	}
	for _, f := range mod {
		f(&o)
	}
	r, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

// roundTrips counts the calls a client makes to Redis: a pipeline is one.
type roundTrips struct{ cmds, pipelines atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.cmds.Add(1); return next(ctx, cmd) }
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.pipelines.Add(1); return next(ctx, cmds) }
}
func (h *roundTrips) take() (cmds, pipelines int64) { return h.cmds.Swap(0), h.pipelines.Swap(0) }

func countRoundTrips(r *Redis) *roundTrips {
	h := new(roundTrips)
	r.c.AddHook(h)
	return h
}

// allKeys SCANs every master for the keys matching pattern.
func allKeys(t *testing.T, r *Redis, pattern string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(t.Context(), r.c)
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func mustCommit(t *testing.T, c *Cache, pos Position) {
	t.Helper()
	if err := c.Commit(t.Context(), pos); err != nil {
		t.Fatalf("commit %+v: %v", pos, err)
	}
}

func mustGet(t *testing.T, c *Cache, id string) *Contact {
	t.Helper()
	ct, err := c.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %q: %v", id, err)
	}
	return ct
}

// normal is what a contact looks like after a trip through the codec.
func normal(t *testing.T, c *Contact) *Contact {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRedis runs the store's core cases against a standalone server and a
// three-master cluster.
func TestRedis(t *testing.T) {
	cases := []struct {
		name string
		run  func(*testing.T, []string)
	}{
		{"RoundTrip", testRoundTrip},
		{"CompareAndSet", testCompareAndSet},
		{"RacingWriters", testRacingWriters},
		{"TimersChangeOwner", testTimersChangeOwner},
		{"StaleTimerEntries", testStaleTimerEntries},
		{"CommitCutShort", testCommitCutShort},
		{"Erase", testErase},
		{"Retention", testRetention},
		{"CacheBound", testCacheBound},
		{"CommitAsync", testCommitAsync},
		{"CommitAfter", testCommitAfter},
		{"PrefetchAhead", testPrefetchAhead},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, b.addrs)
				})
			}
		})
	}
}

// A batch loads its misses in one round trip, applies in memory, and writes
// its changes in one round trip; another instance reads the same state.
func testRoundTrip(t *testing.T, addrs []string) {
	r := newRedis(t, addrs)
	rt := countRoundTrips(r)
	cache := NewCache(r, CacheOptions{})
	// Warm the pipeline connection up: its handshake is not the batch's.
	if err := NewCache(r, CacheOptions{}).Prefetch(t.Context(), []string{"warm-up"}); err != nil {
		t.Fatal(err)
	}
	rt.take()
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%d", i)
	}
	batch := append(slices.Clone(ids), ids[:10]...) // repeats, as in a real batch
	if err := cache.Prefetch(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if cmds, pipes := rt.take(); pipes != 1 || cmds != 0 {
		t.Fatalf("prefetch of 50 misses: %d pipelines and %d commands, want 1 pipeline", pipes, cmds)
	}
	want := map[string]*Contact{}
	for _, id := range ids {
		c := mustGet(t, cache, id)
		if c.Seq != 0 {
			t.Fatalf("new contact %q has Seq %d", id, c.Seq)
		}
		tc := typicalContact(id)
		*c = *tc
		if err := cache.Put(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		want[id] = c
	}
	if cmds, pipes := rt.take(); pipes != 0 || cmds != 0 {
		t.Fatalf("gets after prefetch: %d pipelines and %d commands, want none", pipes, cmds)
	}
	pos := Position{Partition: 3, Offset: 100}
	mustCommit(t, cache, pos)
	// In Cluster the timer entries are a round trip of their own (see write).
	wantPipes := int64(1)
	if _, ok := r.c.(*redis.ClusterClient); ok {
		wantPipes = 2
	}
	if cmds, pipes := rt.take(); pipes != wantPipes || cmds != 0 {
		t.Fatalf("commit of 50 contacts: %d pipelines and %d commands, want %d pipelines", pipes, cmds, wantPipes)
	}
	mustCommit(t, cache, pos) // nothing dirty: no round trip
	if cmds, pipes := rt.take(); pipes != 0 || cmds != 0 {
		t.Fatalf("empty commit: %d pipelines and %d commands, want none", pipes, cmds)
	}

	other := NewCache(newRedis(t, addrs), CacheOptions{})
	for _, id := range ids {
		got := mustGet(t, other, id)
		if w := normal(t, want[id]); !reflect.DeepEqual(got, w) {
			t.Fatalf("contact %q read back differs:\n got %+v\nwant %+v", id, got, w)
		}
		if got.Pos != pos {
			t.Fatalf("contact %q Pos %+v, want %+v", id, got.Pos, pos)
		}
	}
	s, err := r.Inspect(t.Context(), "u7")
	if err != nil {
		t.Fatal(err)
	}
	if s.Pos != pos || s.Version != 1 || s.Size == 0 || s.TTL <= 0 || s.TTL > DefaultTTL {
		t.Fatalf("inspect: %+v", s)
	}
	if len(s.Contact.Points) != 5 || s.Contact.Points[1].Rule != "demo-request" || s.Contact.Points[1].Value != 40 {
		t.Fatalf("inspect: points by rule %+v", s.Contact.Points)
	}
	if _, err := r.Inspect(t.Context(), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect of a missing contact: %v, want ErrNotFound", err)
	}
	if st := r.Stats(); st.Written != 50 || st.Rejected != 0 || st.Commits != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The compare-and-set orders writes by Kafka position.
func testCompareAndSet(t *testing.T, addrs []string) {
	const id = "cas"
	owner := NewCache(newRedis(t, addrs), CacheOptions{})
	c := mustGet(t, owner, id)
	c.Seq = 10
	owner.Put(t.Context(), c)
	mustCommit(t, owner, Position{Partition: 1, Offset: 10})

	steps := []struct {
		name     string
		writer   string // "owner" builds on what it stored; "stale" read the contact before the owner's last write
		pos      Position
		seq      uint64
		rejected bool
		stored   Position // after the step
	}{
		{"older offset rejected", "stale", Position{1, 5}, 5, true, Position{1, 10}},
		{"same offset, writer that did not read it, rejected", "stale", Position{1, 10}, 9, true, Position{1, 10}},
		{"same offset from the owner (a timer firing) accepted", "owner", Position{1, 10}, 11, false, Position{1, 10}},
		{"newer offset accepted", "owner", Position{1, 20}, 20, false, Position{1, 20}},
		{"newer offset from a stale writer accepted", "stale", Position{1, 30}, 30, false, Position{1, 30}},
		{"the owner is now behind: its older offset is rejected", "owner", Position{1, 25}, 25, true, Position{1, 30}},
		{"another partition (repartition) accepted", "stale", Position{2, 1}, 31, false, Position{2, 1}},
	}
	r := newRedis(t, addrs)
	for _, s := range steps {
		var cache *Cache
		switch s.writer {
		case "owner":
			cache = owner
		case "stale":
			// A writer whose copy predates the owner's writes: a zombie.
			cache = NewCache(r, CacheOptions{})
			cache.m[id] = &centry{c: New(id)}
			cache.pushFront(cache.m[id])
		}
		c := mustGet(t, cache, id)
		c.Seq = s.seq
		cache.Put(t.Context(), c)
		rejectedBefore := r.Stats().Rejected + owner.r.Stats().Rejected
		err := cache.Commit(t.Context(), s.pos)
		if s.rejected {
			var ce *ConflictError
			if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) {
				t.Fatalf("%s: commit returned %v, want a *ConflictError", s.name, err)
			}
			if len(ce.Contacts) != 1 || ce.Contacts[0].Contact != id || ce.Contacts[0].Stored != s.stored || ce.Pos != s.pos {
				t.Fatalf("%s: conflict %+v", s.name, ce)
			}
			if !strings.Contains(err.Error(), `"cas"`) {
				t.Fatalf("%s: message does not name the contact: %v", s.name, err)
			}
			if got := r.Stats().Rejected + owner.r.Stats().Rejected; got != rejectedBefore+1 {
				t.Fatalf("%s: rejected count %d, want %d", s.name, got, rejectedBefore+1)
			}
			if cache.m[id] != nil {
				t.Fatalf("%s: the rejected contact is still cached", s.name)
			}
		} else if err != nil {
			t.Fatalf("%s: commit: %v", s.name, err)
		}
		st, err := r.Inspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pos != s.stored {
			t.Fatalf("%s: stored position %+v, want %+v", s.name, st.Pos, s.stored)
		}
		if !s.rejected && st.Contact.Seq != s.seq {
			t.Fatalf("%s: stored Seq %d, want %d", s.name, st.Contact.Seq, s.seq)
		}
		if s.rejected && st.Contact.Seq == s.seq {
			t.Fatalf("%s: the rejected state was stored", s.name)
		}
		if s.rejected {
			// The cache dropped its copy: the next Get reads the newer state.
			if got := mustGet(t, cache, id); got.Pos != s.stored {
				t.Fatalf("%s: after the conflict Get read %+v, want the stored %+v", s.name, got.Pos, s.stored)
			}
		}
	}
}

// Two instances writing one contact concurrently, each at its own offsets,
// end with the state of the newest offset, and the stored offset never goes
// back meanwhile.
func testRacingWriters(t *testing.T, addrs []string) {
	const id = "racer"
	offsets := rand.Perm(200)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	observed := make(chan error, 1)
	go func() { // an observer: the stored offset only moves forward
		r := newRedisNoCleanup(t, addrs)
		defer r.Close()
		last := int64(-1)
		for {
			select {
			case <-stop:
				observed <- nil
				return
			default:
			}
			s, err := r.Inspect(context.Background(), id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				observed <- err
				return
			}
			if s.Pos.Offset < last {
				observed <- fmt.Errorf("stored offset went back from %d to %d", last, s.Pos.Offset)
				return
			}
			if int64(s.Contact.Seq) != s.Pos.Offset {
				observed <- fmt.Errorf("stored Seq %d at offset %d: the blob and its position disagree", s.Contact.Seq, s.Pos.Offset)
				return
			}
			last = s.Pos.Offset
		}
	}()
	for w := range 2 {
		cache := NewCache(newRedis(t, addrs), CacheOptions{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, off := range offsets {
				if i%2 != w {
					continue
				}
				c, err := cache.Get(context.Background(), id)
				if err != nil {
					t.Error(err)
					return
				}
				c.Seq = uint64(off)
				cache.Put(context.Background(), c)
				if err := cache.Commit(context.Background(), Position{Partition: 4, Offset: int64(off)}); err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-observed; err != nil {
		t.Fatal(err)
	}
	s, err := newRedis(t, addrs).Inspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pos.Offset != 199 || s.Contact.Seq != 199 {
		t.Fatalf("after the race: offset %d, Seq %d; want the newest, 199", s.Pos.Offset, s.Contact.Seq)
	}
}

// newRedisNoCleanup is newRedis for goroutines that close it themselves.
func newRedisNoCleanup(t *testing.T, addrs []string) *Redis {
	r, err := NewRedis(RedisOptions{Addrs: addrs, KeyPrefix: "t" + strings.NewReplacer("/", ".", " ", "_").Replace(t.Name()), Logger: quiet})
	if err != nil {
		panic(err)
	}
	return r
}

// The next owner of a partition finds the timers the previous one left.
func testTimersChangeOwner(t *testing.T, addrs []string) {
	const p = 7
	hour := int64(time.Hour)
	first := NewCache(newRedis(t, addrs), CacheOptions{})
	set := map[string][]Timer{
		"a": {{Trigger: "abandoned-cart", Due: base + hour, Set: 3}, {Trigger: "gone-quiet", Due: base + 30*24*hour, Set: 3}},
		"b": {{Trigger: "abandoned-cart", Due: base + 2*hour, Set: 5}},
		"c": nil,
	}
	for _, id := range []string{"a", "b", "c"} {
		c := mustGet(t, first, id)
		c.Timers = set[id]
		first.Put(t.Context(), c)
	}
	mustCommit(t, first, Position{Partition: p, Offset: 41})
	// The first owner is gone (revoked, crashed); a second instance takes over.
	r := newRedis(t, addrs)
	next := NewCache(r, CacheOptions{})
	due := func(upTo int64) []TimerRef {
		t.Helper()
		refs, err := next.DueTimers(t.Context(), p, upTo)
		if err != nil {
			t.Fatal(err)
		}
		return refs
	}
	if got := due(base); len(got) != 0 {
		t.Fatalf("due before any timer: %+v", got)
	}
	want := []TimerRef{{"a", "abandoned-cart", base + hour, 3}, {"b", "abandoned-cart", base + 2*hour, 5}}
	if got := due(base + 2*hour); !reflect.DeepEqual(got, want) {
		t.Fatalf("due timers:\n got %+v\nwant %+v", got, want)
	}
	// The new owner fires a's timer before any new record: same offset.
	a := mustGet(t, next, "a")
	a.Timers = a.Timers[1:]
	next.Put(t.Context(), a)
	if got := due(base + 2*hour); !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("due timers with a's firing uncommitted:\n got %+v\nwant %+v", got, want[1:])
	}
	mustCommit(t, next, Position{Partition: p, Offset: 41})
	if got := due(base + 2*hour); !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("due timers after a fired:\n got %+v\nwant %+v", got, want[1:])
	}
	// The index entry of a moved to its next timer (repaired by the read).
	score, err := r.c.ZScore(t.Context(), r.timersKey(p), "a").Result()
	if err != nil || int64(score) != dueScore(base+30*24*hour) {
		t.Fatalf("a's timer entry: %v %v, want %d", score, err, dueScore(base+30*24*hour))
	}
	all := due(base + 365*24*hour)
	if len(all) != 2 || all[1].Trigger != "gone-quiet" {
		t.Fatalf("all timers: %+v", all)
	}
}

// Entries of the timer index may be stale; the blob is the truth and the
// reader repairs them.
func testStaleTimerEntries(t *testing.T, addrs []string) {
	const p = 9
	hour := int64(time.Hour)
	r := newRedis(t, addrs)
	owner := NewCache(r, CacheOptions{})
	for _, id := range []string{"x", "gone", "moved"} {
		c := mustGet(t, owner, id)
		c.Timers = []Timer{{Trigger: "t", Due: base + 5*hour}}
		owner.Put(t.Context(), c)
	}
	mustCommit(t, owner, Position{Partition: p, Offset: 10})

	// A zombie at an older offset with an earlier timer: rejected, but its
	// index entry (written in the same pipeline) lands.
	zombie := NewCache(newRedis(t, addrs), CacheOptions{})
	z := New("x")
	z.Timers = []Timer{{Trigger: "t", Due: base + hour}}
	zombie.Put(t.Context(), z)
	if err := zombie.Commit(t.Context(), Position{Partition: p, Offset: 5}); !errors.Is(err, ErrConflict) {
		t.Fatalf("zombie commit: %v, want ErrConflict", err)
	}
	// "gone" expired or was deleted behind the index's back.
	if err := r.c.Del(t.Context(), r.contactKey("gone")).Err(); err != nil {
		t.Fatal(err)
	}
	// "moved" is now written from another partition (repartition).
	other := NewCache(newRedis(t, addrs), CacheOptions{})
	m := mustGet(t, other, "moved")
	other.Put(t.Context(), m)
	mustCommit(t, other, Position{Partition: p + 1, Offset: 1})

	// Only x's entry is early enough to be read: it is not due (the zombie's
	// timer was never stored), and the read moves the entry to the truth.
	refs, err := r.DueTimers(t.Context(), p, base+hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Fatalf("stale entries returned as due: %+v", refs)
	}
	if s, err := r.c.ZScore(t.Context(), r.timersKey(p), "x").Result(); err != nil || int64(s) != dueScore(base+5*hour) {
		t.Fatalf("x's entry after the read: %v %v, want %d", s, err, dueScore(base+5*hour))
	}
	// At 5h: x is due; gone's and moved's entries are dropped.
	refs, err = r.DueTimers(t.Context(), p, base+5*hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Contact != "x" || refs[0].Due != base+5*hour {
		t.Fatalf("due at 5h: %+v, want x only", refs)
	}
	zs, err := r.c.ZRangeWithScores(t.Context(), r.timersKey(p), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []redis.Z{{Score: float64(dueScore(base + 5*hour)), Member: "x"}}
	if !reflect.DeepEqual(zs, want) {
		t.Fatalf("index after the repair: %+v, want %+v", zs, want)
	}
	refs, err = r.DueTimers(t.Context(), p+1, base+5*hour)
	if err != nil || len(refs) != 1 || refs[0].Contact != "moved" {
		t.Fatalf("moved contact's timers in its new partition: %+v %v", refs, err)
	}
}

// cutShort lets the first n commands of the pipelines sent after arm reach
// Redis and fails the rest, as if the writer were killed (SIGKILL, OOM) in
// the middle of a commit: Redis runs what it received, nothing after.
type cutShort struct {
	mu    sync.Mutex
	armed bool
	left  int
	cut   bool
}

var errCut = errors.New("test: writer killed mid-pipeline")

func (h *cutShort) arm(n int) {
	h.mu.Lock()
	h.armed, h.left, h.cut = true, n, false
	h.mu.Unlock()
}

func (h *cutShort) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *cutShort) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *cutShort) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		n := len(cmds)
		if h.armed {
			n = min(n, h.left)
			h.left -= n
			h.cut = h.cut || n < len(cmds)
		}
		h.mu.Unlock()
		var err error
		if n > 0 {
			err = next(ctx, cmds[:n])
		}
		if n < len(cmds) {
			for _, c := range cmds[n:] {
				c.SetErr(errCut)
			}
			return errCut
		}
		return err
	}
}

// A writer killed mid-commit lands a prefix of its commands. Whatever the
// prefix, every timer of every blob that landed must be found by the next
// owner's DueTimers: a timer whose blob landed without its index entry is
// never loaded, so it never fires (seen as a lost browse-abandon firing
// after `leadpulse run` was SIGKILLed and restarted).
func testCommitCutShort(t *testing.T, addrs []string) {
	const p = 4
	hour := int64(time.Hour)
	ids := []string{"a", "b", "c"}
	far := Timer{Trigger: "win-back", Due: base + 30*24*hour, Set: 1}
	for k := 0; ; k++ {
		prefix := func(o *RedisOptions) { o.KeyPrefix += fmt.Sprintf("-cut%d", k) }
		r := newRedis(t, addrs, prefix)
		owner := NewCache(r, CacheOptions{})
		// Committed before: each contact waits for a far timer only.
		for _, id := range ids {
			c := mustGet(t, owner, id)
			c.Timers = []Timer{far}
			owner.Put(t.Context(), c)
		}
		mustCommit(t, owner, Position{Partition: p, Offset: 10})
		// The next batch sets an earlier timer on each; the writer dies after
		// k commands of its commit.
		for i, id := range ids {
			c := mustGet(t, owner, id)
			c.Timers = append(c.Timers, Timer{Trigger: "browse-abandon", Due: base + hour + int64(i), Set: 2})
			owner.Put(t.Context(), c)
		}
		h := &cutShort{}
		r.c.AddHook(h)
		h.arm(k)
		err := owner.Commit(t.Context(), Position{Partition: p, Offset: 20})
		h.mu.Lock()
		cut := h.cut
		h.mu.Unlock()
		if cut != (err != nil) {
			t.Fatalf("cut after %d commands: commit error %v, cut %v", k, err, cut)
		}

		// The next owner.
		next := newRedis(t, addrs, prefix)
		refs, err := next.DueTimers(t.Context(), p, base+2*hour)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, ref := range refs {
			found[ref.Contact] = true
		}
		for _, id := range ids {
			s, err := next.Inspect(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Contact.Timers) == 2 && !found[id] {
				t.Errorf("cut after %d commands: %s's blob landed with a timer due at +1h, but DueTimers(+2h) does not find it (its index entry did not land): %+v", k, id, refs)
			}
		}
		if !cut {
			if len(refs) != len(ids) {
				t.Fatalf("whole commit: due timers %+v, want one per contact", refs)
			}
			return // every prefix tried
		}
	}
}

// Erasure leaves no key and no index entry; a later event starts afresh.
func testErase(t *testing.T, addrs []string) {
	const id = "erase-me"
	r := newRedis(t, addrs)
	cache := NewCache(r, CacheOptions{})
	keep := mustGet(t, cache, "keep-me")
	keep.Timers = []Timer{{Trigger: "t", Due: base}}
	cache.Put(t.Context(), keep)
	c := mustGet(t, cache, id)
	*c = *typicalContact(id)
	cache.Put(t.Context(), c)
	mustCommit(t, cache, Position{Partition: 3, Offset: 50})
	// After a repartition its timers are indexed in a second partition too.
	moved := NewCache(r, CacheOptions{})
	c2 := mustGet(t, moved, id)
	c2.Seq++
	moved.Put(t.Context(), c2)
	mustCommit(t, moved, Position{Partition: 4, Offset: 1})
	if n := len(allKeys(t, r, "*"+id+"*")); n != 1 {
		t.Fatalf("before erasure: %d keys name the contact, want 1", n)
	}

	if err := cache.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if keys := allKeys(t, r, "*"+id+"*"); len(keys) != 0 {
		t.Fatalf("keys left after erasure: %v", keys)
	}
	for _, k := range allKeys(t, r, r.prefix+"*") {
		typ, err := r.c.Type(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var members []string
		switch typ {
		case "zset":
			members, err = r.c.ZRange(t.Context(), k, 0, -1).Result()
		case "set":
			members, err = r.c.SMembers(t.Context(), k).Result()
		case "hash":
			var h map[string]string
			h, err = r.c.HGetAll(t.Context(), k).Result()
			for _, v := range h {
				members = append(members, v)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if strings.Contains(m, id) {
				t.Fatalf("key %s (%s) still holds %q after erasure", k, typ, m)
			}
		}
	}
	if _, err := r.Inspect(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect after erasure: %v, want ErrNotFound", err)
	}
	if _, err := r.Inspect(t.Context(), "keep-me"); err != nil {
		t.Fatalf("erasure touched another contact: %v", err)
	}
	// A later event starts a fresh contact, whatever offset it comes at.
	fresh := NewCache(r, CacheOptions{})
	f := mustGet(t, fresh, id)
	if f.Seq != 0 || len(f.Windows) != 0 || f.Seen.SeenID(id+"-msg-1") {
		t.Fatalf("after erasure Get returned old state: %+v", f)
	}
	f.Seq = 1
	fresh.Put(t.Context(), f)
	mustCommit(t, fresh, Position{Partition: 3, Offset: 2})
}

// Idle contacts expire; each write refreshes the retention.
func testRetention(t *testing.T, addrs []string) {
	const ttl = 500 * time.Millisecond
	r := newRedis(t, addrs, func(o *RedisOptions) { o.TTL = ttl })
	cache := NewCache(r, CacheOptions{})
	left := func() time.Duration {
		t.Helper()
		s, err := r.Inspect(t.Context(), "idle")
		if err != nil {
			t.Fatal(err)
		}
		return s.TTL
	}
	c := mustGet(t, cache, "idle")
	cache.Put(t.Context(), c)
	mustCommit(t, cache, Position{Partition: 0, Offset: 1})
	if l := left(); l <= 0 || l > ttl {
		t.Fatalf("TTL %v after a write, want at most %v", l, ttl)
	}
	time.Sleep(ttl / 2)
	before := left()
	cache.Put(t.Context(), c)
	mustCommit(t, cache, Position{Partition: 0, Offset: 2})
	if after := left(); after <= before {
		t.Fatalf("a write did not refresh the retention: %v left before it, %v after", before, after)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if _, err := r.Inspect(t.Context(), "idle"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the TTL: %v, want ErrNotFound", err)
	}

	forever := newRedis(t, addrs, func(o *RedisOptions) { o.TTL = -1; o.KeyPrefix += "f" })
	cache = NewCache(forever, CacheOptions{})
	c = mustGet(t, cache, "kept")
	cache.Put(t.Context(), c)
	mustCommit(t, cache, Position{Partition: 0, Offset: 1})
	if s, err := forever.Inspect(t.Context(), "kept"); err != nil || s.TTL != -1 {
		t.Fatalf("no retention: %+v %v, want TTL -1", s, err)
	}
}

// The cache keeps at most Capacity clean contacts, least recently used out
// first, and never drops an uncommitted change.
func testCacheBound(t *testing.T, addrs []string) {
	r := newRedis(t, addrs)
	cache := NewCache(r, CacheOptions{Capacity: 3})
	for i := range 5 {
		c := mustGet(t, cache, fmt.Sprint("c", i))
		c.Seq = uint64(i + 1)
		cache.Put(t.Context(), c)
	}
	if cache.Len() != 5 {
		t.Fatalf("dirty contacts were dropped: Len %d, want 5", cache.Len())
	}
	mustCommit(t, cache, Position{Partition: 0, Offset: 1})
	mustGet(t, cache, "c4")
	mustGet(t, cache, "new") // a miss: makes room
	if cache.Len() != 3 {
		t.Fatalf("Len %d, want 3", cache.Len())
	}
	for id, in := range map[string]bool{"c0": false, "c1": false, "c2": false, "c3": true, "c4": true, "new": true} {
		if got := cache.m[id] != nil; got != in {
			t.Errorf("%s cached: %v, want %v", id, got, in)
		}
	}
	if st := cache.Stats(); st.Evictions != 3 || st.Hits != 1 || st.Misses != 6 {
		t.Fatalf("stats %+v", st)
	}
	// Every contact survived in Redis.
	for i := range 5 {
		if c := mustGet(t, cache, fmt.Sprint("c", i)); c.Seq != uint64(i+1) {
			t.Fatalf("c%d: Seq %d", i, c.Seq)
		}
	}
}

// CommitAsync writes while the caller goes on: the contacts of a write in
// flight stay cached (they are the only up-to-date copy until it lands),
// a contact changed during the flight is written by the next commit on top
// of the version the flight stored (the same offset too, as a timer firing
// commits), a rejected contact goes with its later changes, and an erasure
// waits for the write, which cannot land after it.
func testCommitAsync(t *testing.T, addrs []string) {
	ctx := t.Context()
	r := newRedis(t, addrs)
	cache := NewCache(r, CacheOptions{Capacity: 1})
	for _, id := range []string{"a", "b"} {
		c := mustGet(t, cache, id)
		c.Seq = 1
		cache.Put(ctx, c)
	}
	if err := cache.CommitAsync(ctx, Position{Partition: 0, Offset: 10}); err != nil {
		t.Fatal(err)
	}
	if cache.Dirty() != 0 || cache.InFlight() != 2 {
		t.Fatalf("after CommitAsync: %d dirty, %d in flight; want 0, 2", cache.Dirty(), cache.InFlight())
	}
	a := mustGet(t, cache, "a")
	a.Seq = 2
	cache.Put(ctx, a)
	mustGet(t, cache, "x") // a miss beyond capacity: only clean contacts may go
	if cache.m["a"] == nil || cache.m["b"] == nil {
		t.Fatal("a contact of the write in flight was evicted")
	}
	if err := cache.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if cache.Dirty() != 1 || cache.InFlight() != 0 {
		t.Fatalf("after Wait: %d dirty, %d in flight; want 1, 0", cache.Dirty(), cache.InFlight())
	}
	if st, err := r.Inspect(ctx, "a"); err != nil || st.Contact.Seq != 1 {
		t.Fatalf("a after the flight: %+v, %v; want Seq 1", st, err)
	}
	mustCommit(t, cache, Position{Partition: 0, Offset: 10}) // same offset: builds on the version the flight stored
	if st, err := r.Inspect(ctx, "a"); err != nil || st.Contact.Seq != 2 || st.Version != 2 {
		t.Fatalf("a after the second commit: %+v, %v; want Seq 2, version 2", st, err)
	}
	mustGet(t, cache, "y")
	if cache.m["b"] != nil {
		t.Fatal("a written contact beyond capacity was kept")
	}

	// Another writer stored z at a later offset: the flight is rejected
	// for z, and the change made to z meanwhile is dropped with it.
	z := mustGet(t, cache, "z")
	other := NewCache(r, CacheOptions{})
	oz := mustGet(t, other, "z")
	oz.Seq = 100
	other.Put(ctx, oz)
	mustCommit(t, other, Position{Partition: 0, Offset: 100})
	z.Seq = 1
	cache.Put(ctx, z)
	if err := cache.CommitAsync(ctx, Position{Partition: 0, Offset: 50}); err != nil {
		t.Fatal(err)
	}
	z.Seq = 2
	cache.Put(ctx, z)
	var ce *ConflictError
	if err := cache.Wait(ctx); !errors.As(err, &ce) || len(ce.Contacts) != 1 || ce.Contacts[0].Contact != "z" {
		t.Fatalf("wait: %v, want a conflict on z", err)
	}
	if cache.Dirty() != 0 || cache.m["z"] != nil {
		t.Fatalf("the rejected contact is still cached (%d dirty)", cache.Dirty())
	}
	if got := mustGet(t, cache, "z"); got.Seq != 100 {
		t.Fatalf("z reloaded: Seq %d, want the stored 100", got.Seq)
	}

	// An erasure waits for the write in flight, held back here until a
	// moment after the erasure would have been sent without that wait.
	d := mustGet(t, cache, "d")
	d.Seq = 1
	cache.Put(ctx, d)
	slow := &slowPipelines{delay: 100 * time.Millisecond}
	r.c.AddHook(slow)
	slow.armed.Store(true)
	if err := cache.CommitAsync(ctx, Position{Partition: 0, Offset: 60}); err != nil {
		t.Fatal(err)
	}
	if err := cache.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := cache.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Inspect(ctx, "d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("d after its erasure: %+v, %v; want ErrNotFound (the write landed after the erasure)", st, err)
	}
}

// CommitAfter sends its write only once the gate opens: nothing is stored
// while the gate waits, however long; a gate that fails sends nothing, Wait
// returns its error and keeps the contacts in flight; the next Wait asks the
// gate again and sends the same bytes once it opens; Close ends a wait for
// the gate without sending.
func testCommitAfter(t *testing.T, addrs []string) {
	ctx := t.Context()
	r := newRedis(t, addrs)
	cache := NewCache(r, CacheOptions{})
	put := func(id string, seq uint64) {
		c := mustGet(t, cache, id)
		c.Seq = seq
		cache.Put(ctx, c)
	}
	stored := func(id string) uint64 {
		st, err := r.Inspect(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return st.Contact.Seq
	}

	open := make(chan struct{})
	asked := make(chan struct{}, 1)
	gate := func(ctx context.Context) error {
		asked <- struct{}{}
		select {
		case <-open:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	put("a", 1)
	if err := cache.CommitAfter(ctx, Position{Partition: 0, Offset: 10}, gate); err != nil {
		t.Fatal(err)
	}
	waitAsked(t, asked) // the write's goroutine waits for the gate
	if got := stored("a"); got != 0 || cache.InFlight() != 1 {
		t.Fatalf("a stored with Seq %d (%d in flight) while the gate is shut; want nothing stored, 1 in flight", got, cache.InFlight())
	}
	close(open)
	if err := cache.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored("a"); got != 1 {
		t.Fatalf("a after the gate opened: Seq %d, want 1", got)
	}

	// A failing gate: nothing sent, the error comes back, the bytes are
	// kept and sent by a later Wait whose gate passes.
	refused := errors.New("output refused")
	gateErr := refused
	put("a", 2)
	if err := cache.CommitAfter(ctx, Position{Partition: 0, Offset: 20}, func(context.Context) error { return gateErr }); err != nil {
		t.Fatal(err)
	}
	if err := cache.Wait(ctx); !errors.Is(err, refused) {
		t.Fatalf("wait: %v, want the gate's error", err)
	}
	if got := stored("a"); got != 1 || cache.InFlight() != 1 {
		t.Fatalf("a stored with Seq %d (%d in flight) after the gate failed; want 1, 1", got, cache.InFlight())
	}
	if err := cache.Wait(ctx); !errors.Is(err, refused) || stored("a") != 1 {
		t.Fatalf("second wait: %v, Seq %d; want the gate's error again, nothing sent", err, stored("a"))
	}
	gateErr = nil
	if err := cache.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored("a"); got != 2 || cache.InFlight() != 0 {
		t.Fatalf("a after the gate passed: Seq %d (%d in flight), want 2, 0", got, cache.InFlight())
	}

	// DueTimers does not wait for a write in flight: it has the timers of
	// its contacts from the cache (here the write cannot land before the
	// gate opens), as well as those of dirty contacts and of Redis.
	hour := int64(time.Hour)
	tm := mustGet(t, cache, "tm") // in flight, timer due at +1h
	tm.Timers = []Timer{{Trigger: "flying", Due: base + hour, Set: 1}}
	cache.Put(ctx, tm)
	hold := make(chan struct{})
	if err := cache.CommitAfter(ctx, Position{Partition: 0, Offset: 25}, func(ctx context.Context) error {
		select {
		case <-hold:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	td := mustGet(t, cache, "td") // dirty, timer due at +2h
	td.Timers = []Timer{{Trigger: "dirty", Due: base + 2*hour, Set: 1}}
	cache.Put(ctx, td)
	var refs []TimerRef
	var err error
	due := make(chan struct{})
	go func() {
		defer close(due)
		refs, err = cache.DueTimers(ctx, 0, base+3*hour)
	}()
	select {
	case <-due:
	case <-time.After(10 * time.Second):
		close(hold)
		<-due
		t.Fatal("DueTimers waited for the write held at its gate")
	}
	if err != nil {
		t.Fatal(err)
	}
	want := []TimerRef{{Contact: "tm", Trigger: "flying", Due: base + hour, Set: 1}, {Contact: "td", Trigger: "dirty", Due: base + 2*hour, Set: 1}}
	if !reflect.DeepEqual(refs, want) {
		t.Fatalf("DueTimers during a write held at its gate: %+v, want %+v", refs, want)
	}
	close(hold)
	mustCommit(t, cache, Position{Partition: 0, Offset: 26})
	if refs, err = cache.DueTimers(ctx, 0, base+3*hour); err != nil || !reflect.DeepEqual(refs, want) {
		t.Fatalf("DueTimers once written: %+v, %v; want %+v", refs, err, want)
	}

	// Close ends a write waiting for its gate; it is never sent.
	put("a", 3)
	if err := cache.CommitAfter(ctx, Position{Partition: 0, Offset: 30}, gate2(asked)); err != nil {
		t.Fatal(err)
	}
	waitAsked(t, asked)
	cache.Close()
	if got := stored("a"); got != 2 {
		t.Fatalf("a after Close: Seq %d, want 2 (a write waiting for its gate is not sent)", got)
	}
}

// PrefetchAhead loads the next batch's misses in the background: the next
// Prefetch and Gets of them make no round trip and see the stored state; a
// contact cached or being loaded is not loaded again; a load that fails
// leaves nothing cached, and the next Prefetch reports its error; an
// erasure of a contact being loaded leaves it erased.
func testPrefetchAhead(t *testing.T, addrs []string) {
	ctx := t.Context()
	r := newRedis(t, addrs)
	seed := NewCache(r, CacheOptions{})
	for _, id := range []string{"a", "d"} {
		c := mustGet(t, seed, id)
		c.Seq = 5
		seed.Put(ctx, c)
	}
	mustCommit(t, seed, Position{Partition: 0, Offset: 1})
	// Warm the pipeline connections up: their handshakes are not the loads'.
	if err := NewCache(r, CacheOptions{}).Prefetch(ctx, []string{"warm-up"}); err != nil {
		t.Fatal(err)
	}
	rt := countRoundTrips(r)

	cache := NewCache(r, CacheOptions{})
	mustGet(t, cache, "c") // cached: not loaded again
	rt.take()
	cache.PrefetchAhead(ctx, []string{"a", "b", "a", "c"})
	if !cache.Cached([]byte("a")) || !cache.Cached([]byte("b")) {
		t.Fatal("contacts being loaded ahead are not Cached")
	}
	cache.PrefetchAhead(ctx, []string{"x"}) // a load is running: ignored
	if cache.Cached([]byte("x")) {
		t.Fatal("a second PrefetchAhead started while one runs")
	}
	if err := cache.Prefetch(ctx, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, cache, "a"); got.Seq != 5 {
		t.Fatalf("a loaded ahead: Seq %d, want the stored 5", got.Seq)
	}
	if got := mustGet(t, cache, "b"); got.Seq != 0 {
		t.Fatalf("b (not stored) loaded ahead: Seq %d, want a new contact", got.Seq)
	}
	if cmds, pipes := rt.take(); cmds != 0 || pipes != 1 {
		t.Fatalf("%d calls, %d pipelines; want the one pipeline of the load ahead", cmds, pipes)
	}

	// A Get of a contact being loaded waits for the load.
	cache.PrefetchAhead(ctx, []string{"d"})
	if got := mustGet(t, cache, "d"); got.Seq != 5 {
		t.Fatalf("d got while loading ahead: Seq %d, want 5", got.Seq)
	}
	// So does a Put.
	cache.PrefetchAhead(ctx, []string{"e"})
	cache.Put(ctx, &Contact{ID: "e", Seq: 1})
	if cache.ah != nil || cache.m["e"].c.Seq != 1 || cache.Dirty() != 1 {
		t.Fatalf("e Put while loading ahead: not the Put contact, or not dirty (%d dirty)", cache.Dirty())
	}

	// An erasure of a contact being loaded.
	cache.PrefetchAhead(ctx, []string{"a2"})
	a2 := mustGet(t, seed, "a2")
	a2.Seq = 3
	seed.Put(ctx, a2)
	mustCommit(t, seed, Position{Partition: 0, Offset: 2})
	if err := cache.Delete(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, cache, "a2"); got.Seq != 0 {
		t.Fatalf("a2 after its erasure: Seq %d, want a new contact", got.Seq)
	}

	// A load that fails: a blob that does not decode.
	if err := r.c.HSet(ctx, r.contactKey("bad"), "s", "not msgpack").Err(); err != nil {
		t.Fatal(err)
	}
	cache.PrefetchAhead(ctx, []string{"bad", "f"})
	if err := cache.Prefetch(ctx, []string{"f"}); err != nil {
		t.Fatalf("prefetch of f after a failed load ahead: %v", err)
	}
	if cache.Cached([]byte("bad")) {
		t.Fatal("a contact whose load ahead failed is cached")
	}
	if err := cache.Prefetch(ctx, []string{"bad"}); err == nil {
		t.Fatal("prefetch of a contact that does not decode: no error")
	}

	// Close ends a load ahead.
	cache.PrefetchAhead(ctx, []string{"g"})
	cache.Close()
	if cache.ah != nil {
		t.Fatal("a load ahead outlived Close")
	}
}

// waitAsked waits until a gate was asked.
func waitAsked(t *testing.T, asked <-chan struct{}) {
	t.Helper()
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the write never asked its gate")
	}
}

// gate2 is a gate that signals asked and waits for its context to end.
func gate2(asked chan<- struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		asked <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
}

// slowPipelines delays the next pipeline sent once armed.
type slowPipelines struct {
	delay time.Duration
	armed atomic.Bool
}

func (h *slowPipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *slowPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *slowPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.armed.CompareAndSwap(true, false) {
			time.Sleep(h.delay)
		}
		return next(ctx, cmds)
	}
}

// A redis-server killed mid-test yields ErrUnavailable, then recovers, and
// nothing Commit acknowledged is lost.
func TestRedisOutage(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisConfig{Persist: true})
	addrs := []string{srv.Addr}
	fast := func(o *RedisOptions) { o.MaxRetries = -1; o.DialTimeout = 200 * time.Millisecond }
	r := newRedis(t, addrs, fast)
	cache := NewCache(r, CacheOptions{})
	acked := map[string]uint64{}
	for i := range 20 {
		id := fmt.Sprint("acked", i)
		c := mustGet(t, cache, id)
		*c = *typicalContact(id)
		c.Seq = uint64(i)
		cache.Put(t.Context(), c)
		acked[id] = c.Seq
	}
	mustCommit(t, cache, Position{Partition: 0, Offset: 10})

	srv.Stop(t)

	y := mustGet(t, cache, "acked3") // a hit: no I/O
	y.Seq = 1000
	cache.Put(t.Context(), y)
	unavailable := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConfig) {
			t.Fatalf("%s while Redis is down: %v, want ErrUnavailable", what, err)
		}
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), srv.Addr) || se.Hint == "" {
			t.Fatalf("%s: the error does not say what to check: %v", what, err)
		}
		t.Logf("%s while down: %v", what, err)
	}
	unavailable("commit", cache.Commit(t.Context(), Position{Partition: 0, Offset: 11}))
	if cache.InFlight() != 1 || cache.Dirty() != 0 {
		t.Fatalf("after the failed commit: %d in flight, %d dirty; want the write kept for its retry", cache.InFlight(), cache.Dirty())
	}
	// A change after the failure: the retry resends the bytes that failed,
	// then writes this one.
	y.Seq = 1001
	cache.Put(t.Context(), y)
	_, err := cache.Get(t.Context(), "not-cached")
	unavailable("get", err)
	unavailable("prefetch", cache.Prefetch(t.Context(), []string{"x1", "x2"}))
	_, err = r.DueTimers(t.Context(), 0, base)
	unavailable("due timers", err)
	unavailable("ping", r.Ping(t.Context()))
	if r.Stats().Failed < 5 {
		t.Fatalf("failed calls not counted: %+v", r.Stats())
	}

	srv.Start(t)
	// The caller retries its commit, as after any ErrUnavailable.
	testenv.Eventually(t, 5*time.Second, func() error {
		err := cache.Commit(t.Context(), Position{Partition: 0, Offset: 11})
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("commit after the restart: %v", err)
		}
		return err
	})
	if cache.InFlight() != 0 || cache.Dirty() != 0 {
		t.Fatalf("after the retry: %d in flight, %d dirty; want 0, 0", cache.InFlight(), cache.Dirty())
	}
	acked["acked3"] = 1001

	// Crash again; everything acknowledged is on disk.
	srv.Restart(t)
	fresh := NewCache(newRedis(t, addrs, fast), CacheOptions{})
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range acked {
			if !yield(id) {
				return
			}
		}
	})
	if err := fresh.Prefetch(t.Context(), ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if c := mustGet(t, fresh, id); c.Seq != acked[id] || len(c.Windows) != 3 {
			t.Fatalf("%s after restarts: Seq %d, %d windows; want Seq %d", id, c.Seq, len(c.Windows), acked[id])
		}
	}
	refs, err := fresh.DueTimers(t.Context(), 0, base+int64(time.Hour))
	if err != nil || len(refs) != 20 {
		t.Fatalf("timers after restarts: %d, %v; want 20", len(refs), err)
	}
}

// Configuration faults are ErrConfig, with a message that says what to
// check; they are never mistaken for an outage.
func TestRedisConfigErrors(t *testing.T) {
	plain := testenv.StartRedis(t, testenv.RedisConfig{Args: []string{"--requirepass", "s3cret"}})
	tlsSrv := testenv.StartRedis(t, testenv.RedisConfig{TLS: true})
	// A user that may read and write but not run scripts.
	if reply, err := doAuthed(plain, "ACL", "SETUSER", "noscript", "on", ">pw", "~*", "+@all", "-@scripting"); err != nil || reply != "+OK" {
		t.Fatal(reply, err)
	}
	downSrv := testenv.StartRedis(t, testenv.RedisConfig{})
	downSrv.Stop(t) // its port: nothing listens there any more

	cases := []struct {
		name string
		opts RedisOptions
		kind error  // ErrConfig or ErrUnavailable
		says string // in the message
	}{
		{"no password", RedisOptions{Addrs: []string{plain.Addr}}, ErrConfig, "password"},
		{"wrong password", RedisOptions{Addrs: []string{plain.Addr}, Password: "nope"}, ErrConfig, "password"},
		{"wrong user", RedisOptions{Addrs: []string{plain.Addr}, Username: "ghost", Password: "pw"}, ErrConfig, "username"},
		{"no permission for scripts", RedisOptions{Addrs: []string{plain.Addr}, Username: "noscript", Password: "pw"}, ErrConfig, "ACL"},
		{"TLS to a plain server", RedisOptions{Addrs: []string{plain.Addr}, Password: "s3cret", TLS: TLSOptions{Enabled: true, InsecureSkipVerify: true}}, ErrConfig, "not speak TLS"},
		{"TLS without the CA", RedisOptions{Addrs: []string{tlsSrv.Addr}, TLS: TLSOptions{Enabled: true}}, ErrConfig, "tls.ca_file"},
		{"TLS with the wrong server name", RedisOptions{Addrs: []string{tlsSrv.Addr}, TLS: TLSOptions{Enabled: true, CAFile: tlsSrv.CAFile, ServerName: "redis.example.com"}}, ErrConfig, "tls.server_name"},
		{"unknown host", RedisOptions{Addrs: []string{"no-such-host.invalid:6379"}}, ErrConfig, "resolve"},
		{"nothing listens", RedisOptions{Addrs: []string{downSrv.Addr}}, ErrUnavailable, "check that Redis runs"},
		{"plain to a TLS server", RedisOptions{Addrs: []string{tlsSrv.Addr}}, ErrConfig, "requires TLS; set tls.enabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "unknown host" {
				var dnsErr *net.DNSError
				if _, err := net.LookupHost("no-such-host.invalid"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Skipf("no DNS resolver answers here (%v)", err)
				}
			}
			c.opts.MaxRetries = -1
			c.opts.DialTimeout = 2 * time.Second
			if c.name == "TLS to a plain server" {
				// The handshake gets no answer: this is how long it waits.
				c.opts.DialTimeout = 200 * time.Millisecond
			}
			c.opts.Logger = quiet
			r, err := NewRedis(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = r.Ping(t.Context())
			t.Logf("%v", err)
			other := ErrUnavailable
			if c.kind == ErrUnavailable {
				other = ErrConfig
			}
			if !errors.Is(err, c.kind) || errors.Is(err, other) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Fatalf("message %q does not mention %q", err, c.says)
			}
		})
	}
	t.Run("TLS with the CA works", func(t *testing.T) {
		r, err := NewRedis(RedisOptions{Addrs: []string{tlsSrv.Addr}, TLS: TLSOptions{Enabled: true, CAFile: tlsSrv.CAFile}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := r.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		cache := NewCache(r, CacheOptions{})
		c := mustGet(t, cache, "over-tls")
		cache.Put(t.Context(), c)
		mustCommit(t, cache, Position{Partition: 0, Offset: 1})
	})
	t.Run("the documented ACL suffices", func(t *testing.T) {
		r := aclUser(t, plain, "leadpulse", ACLRules)
		if err := r.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		cache := NewCache(r, CacheOptions{})
		mustOpen(t, cache, FilterScope{Partition: 0, Partitions: 1, PartitionOf: func(string) int32 { return 0 }})
		if cache.flt == nil {
			t.Fatal("the new-contact filter is not used with the documented ACL")
		}
		if err := cache.Prefetch(t.Context(), []string{"acl1", "acl2"}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"acl1", "acl2"} {
			c := mustGet(t, cache, id)
			c.Timers = []Timer{{Trigger: "t", Due: base}}
			cache.Put(t.Context(), c)
		}
		mustCommit(t, cache, Position{Partition: 0, Offset: 1})
		if err := r.c.Del(t.Context(), r.contactKey("acl2")).Err(); err != nil {
			t.Fatal(err)
		}
		if refs, err := r.DueTimers(t.Context(), 0, base); err != nil || len(refs) != 1 {
			t.Fatalf("due timers: %v %v", refs, err)
		}
		if _, err := r.Inspect(t.Context(), "acl1"); err != nil {
			t.Fatal(err)
		}
		if err := cache.Delete(t.Context(), "acl1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an earlier version's ACL: no filter, loads as before", func(t *testing.T) {
		earlier := strings.NewReplacer("+exists ", "", "+get ", "", "+setbit ", "", "+scan ", "").Replace(ACLRules)
		r := aclUser(t, plain, "earlier", earlier)
		cache := NewCache(r, CacheOptions{})
		mustOpen(t, cache, FilterScope{Partition: 1, Partitions: 2, PartitionOf: func(string) int32 { return 1 }})
		if cache.flt != nil {
			t.Fatal("the new-contact filter is used without the commands it needs")
		}
		c := mustGet(t, cache, "acl3")
		cache.Put(t.Context(), c)
		mustCommit(t, cache, Position{Partition: 1, Offset: 1})
		if st := r.Stats(); st.Skipped != 0 || st.Loaded != 1 {
			t.Fatalf("%d loads skipped, %d loaded; want 0 and 1", st.Skipped, st.Loaded)
		}
	})
	t.Run("commit without script permission", func(t *testing.T) {
		r, err := NewRedis(RedisOptions{Addrs: []string{plain.Addr}, Username: "noscript", Password: "pw", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cache := NewCache(r, CacheOptions{})
		c := mustGet(t, cache, "denied")
		cache.Put(t.Context(), c)
		err = cache.Commit(t.Context(), Position{Partition: 0, Offset: 1})
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("commit: %v, want ErrConfig", err)
		}
		if cache.Len() != 1 || cache.Dirty()+cache.InFlight() != 1 {
			t.Fatalf("the change was dropped after a failed commit")
		}
	})
}

// doAuthed runs a command on s as the default user, with the password.
// aclUser creates the user name on s with the ACL rules (and keys lp:*,
// no channels) and returns a store that logs in as it; the store is closed
// when the test ends.
func aclUser(t *testing.T, s *testenv.Redis, name, rules string) *Redis {
	t.Helper()
	if reply, err := doAuthed(s, append([]string{"ACL", "SETUSER", name, "on", ">pw", "~lp:*", "resetchannels"}, strings.Fields(rules)...)...); err != nil || reply != "+OK" {
		t.Fatal(reply, err)
	}
	r, err := NewRedis(RedisOptions{Addrs: []string{s.Addr}, Username: name, Password: "pw", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func doAuthed(s *testenv.Redis, args ...string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: "s3cret"})
	defer c.Close()
	a := make([]any, len(args))
	for i, x := range args {
		a[i] = x
	}
	v, err := c.Do(context.Background(), a...).Result()
	if err != nil {
		return "", err
	}
	return "+" + fmt.Sprint(v), nil
}

// Error replies Redis sends in outages, failovers and misconfigurations are
// classified; each is produced by a real server (a script's error_reply).
func TestRedisErrorKinds(t *testing.T) {
	r := newRedis(t, []string{testenv.RedisServer(t)}, func(o *RedisOptions) { o.MaxRetries = -1 })
	cases := []struct {
		reply string
		kind  error
	}{
		{"LOADING Redis is loading the dataset in memory", ErrUnavailable},
		{"CLUSTERDOWN The cluster is down", ErrUnavailable},
		{"TRYAGAIN Multiple keys request during rehashing of slot", ErrUnavailable},
		{"MASTERDOWN Link with MASTER is down", ErrUnavailable},
		{"READONLY You can't write against a read only replica.", ErrUnavailable},
		{"BUSY Redis is busy running a script.", ErrUnavailable},
		{"NOAUTH Authentication required.", ErrConfig},
		{"WRONGPASS invalid username-password pair or user is disabled.", ErrConfig},
		{"NOPERM this user has no permissions to run the 'evalsha' command", ErrConfig},
		{"OOM command not allowed when used memory > 'maxmemory'.", ErrConfig},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", ErrConfig},
		{"ERR something unexpected", nil},
	}
	for _, c := range cases {
		t.Run(strings.Fields(c.reply)[0], func(t *testing.T) {
			err := r.c.Eval(t.Context(), "return redis.error_reply(ARGV[1])", nil, c.reply).Err()
			if err == nil {
				t.Fatal("no error")
			}
			got := r.err("test", err)
			for _, k := range []error{ErrUnavailable, ErrConfig} {
				if errors.Is(got, k) != (k == c.kind) {
					t.Fatalf("%v: errors.Is(%v) = %v", got, k, !(k == c.kind))
				}
			}
			var se *Error
			if !errors.As(got, &se) {
				t.Fatalf("%v is not an *Error", got)
			}
			if c.kind != nil && se.Hint == "" {
				t.Fatalf("%v: no hint", got)
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := r.DueTimers(ctx, 0, base)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("%v, want context.Canceled only", err)
		}
	})
}

// Contradictions in RedisOptions are refused, naming both settings.
func TestRedisOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts RedisOptions
		says string // "" means valid
	}{
		{"zero value", RedisOptions{}, ""},
		{"cluster", RedisOptions{Addrs: []string{"a:1", "b:2"}}, ""},
		{"db in a cluster", RedisOptions{Addrs: []string{"a:1", "b:2"}, DB: 2}, "db is 2 but addrs lists 2 nodes"},
		{"db with cluster set", RedisOptions{Cluster: true, DB: 1}, "cluster"},
		{"no port", RedisOptions{Addrs: []string{"localhost"}}, "want host:port"},
		{"brace in prefix", RedisOptions{KeyPrefix: "a{b"}, "hash tags"},
		{"tiny ttl", RedisOptions{TTL: time.Microsecond}, "ttl"},
		{"ca file without tls", RedisOptions{TLS: TLSOptions{CAFile: "ca.pem"}}, "tls.ca_file is set but tls.enabled is false"},
		{"cert without key", RedisOptions{TLS: TLSOptions{Enabled: true, CertFile: "c.pem"}}, "tls.cert_file \"c.pem\" and tls.key_file"},
		{"insecure with ca", RedisOptions{TLS: TLSOptions{Enabled: true, InsecureSkipVerify: true, CAFile: "ca.pem"}}, "tls.insecure_skip_verify contradicts tls.ca_file"},
		{"missing ca file", RedisOptions{TLS: TLSOptions{Enabled: true, CAFile: "/nonexistent/ca.pem"}}, "tls.ca_file"},
		{"negative timeout", RedisOptions{ReadTimeout: -time.Second}, "read_timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewRedis(c.opts)
			if c.says == "" {
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want ErrConfig saying %q", err, c.says)
			}
		})
	}
}

func TestDueScore(t *testing.T) {
	for _, c := range []struct{ due, want int64 }{
		{0, 0}, {999_999, 0}, {1_000_000, 1}, {-1, -1}, {-1_000_000, -1}, {-1_000_001, -2},
		{base + 1, base / 1e6},
	} {
		if got := dueScore(c.due); got != c.want {
			t.Errorf("dueScore(%d) = %d, want %d", c.due, got, c.want)
		}
		if float64(dueScore(c.due)) != float64(c.want) {
			t.Errorf("score of %d not exact", c.due)
		}
	}
}
