package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/traffic"
)

// flaky is the memory store with Get, Put and Commit that fail on demand,
// as a Redis-backed store does during an outage.
type flaky struct {
	*state.Memory
	failGet, failPut, failCommit func() bool
	gets, puts, commits          int // failures injected
}

var errInjected = fmt.Errorf("%w: injected failure", state.ErrUnavailable)

func (f *flaky) Get(ctx context.Context, id string) (*state.Contact, error) {
	if f.failGet != nil && f.failGet() {
		f.gets++
		return nil, errInjected
	}
	return f.Memory.Get(ctx, id)
}

func (f *flaky) Put(ctx context.Context, c *state.Contact) error {
	if f.failPut != nil && f.failPut() {
		f.puts++
		return errInjected
	}
	return f.Memory.Put(ctx, c)
}

func (f *flaky) Commit(ctx context.Context, pos state.Position) error {
	if f.failCommit != nil && f.failCommit() {
		f.commits++
		return errInjected
	}
	return f.Memory.Commit(ctx, pos)
}

// retryable is the live driver's rule (stream): retry while the store is
// unavailable, never after ErrDiverged.
func retryable(err error) bool {
	return errors.Is(err, state.ErrUnavailable) && !errors.Is(err, ErrDiverged)
}

// retryEvents returns generated e-commerce traffic (absence timers fire
// within it), a third of it without messageId.
func retryEvents(t *testing.T, n int) []*event.Event {
	t.Helper()
	g := traffic.New(traffic.Config{Contacts: 60, Seed: 5, Mix: traffic.MixEcommerce, Step: 2 * time.Minute})
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = g.Next()
		if i%3 == 0 {
			evs[i].MessageID = ""
		}
	}
	return evs
}

func loadRules(t *testing.T, path string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// run applies evs at positions 0..n-1 of partition 0 through store,
// committing every 50 events, retrying what the store contract says is safe
// to retry; it returns the actions (JSON lines) and the final contacts.
func run(t *testing.T, rs *rules.Ruleset, store state.Store, mem *state.Memory, evs []*event.Event) ([]string, map[string]*state.Contact) {
	t.Helper()
	ctx := context.Background()
	var actions []string
	p := NewPartition(rs, store, func(res *rules.Result) {
		for _, r := range res.Records {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			actions = append(actions, string(b))
		}
	})
	retry := func(what string, f func() error) {
		for attempt := 0; ; attempt++ {
			err := f()
			if err == nil {
				return
			}
			if !retryable(err) || attempt > 1000 {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	for i, e := range evs {
		pos := state.Position{Partition: 0, Offset: int64(i)}
		retry("apply", func() error { return p.ApplyAt(ctx, e, pos) })
		if i%50 == 49 {
			retry("commit", func() error { return store.Commit(ctx, pos) })
		}
	}
	retry("advance", func() error { return p.Advance(ctx, evs[len(evs)-1].Time+int64(48*time.Hour)) })
	final := map[string]*state.Contact{}
	mem.Range(func(c *state.Contact) bool {
		b, err := state.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := state.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		final[c.ID] = d
		return true
	})
	return actions, final
}

// TestApplyAtRetriesAfterStoreFailures: with Get and Commit failing at
// random (a Redis outage), retrying ApplyAt and Commit as the Store contract
// allows yields exactly the actions and states of a run without failures:
// no event applied twice, none dropped, no action lost or repeated.
func TestApplyAtRetriesAfterStoreFailures(t *testing.T) {
	rs := loadRules(t, "../examples/ecommerce.yaml")
	evs := retryEvents(t, 3000)
	mem := state.NewMemory()
	wantActions, wantState := run(t, rs, mem, mem, evs)
	if len(wantActions) < 20 {
		t.Fatalf("only %d actions: the traffic does not exercise the rules", len(wantActions))
	}

	rnd := rand.New(rand.NewPCG(1, 2))
	mem2 := state.NewMemory()
	f := &flaky{Memory: mem2,
		failGet:    func() bool { return rnd.IntN(10) == 0 },
		failCommit: func() bool { return rnd.IntN(3) == 0 },
	}
	gotActions, gotState := run(t, rs, f, mem2, evs)
	if f.gets < 100 || f.commits < 5 {
		t.Fatalf("injected only %d Get and %d Commit failures", f.gets, f.commits)
	}
	if !slices.Equal(gotActions, wantActions) {
		t.Errorf("actions after retried failures differ: %d, want %d", len(gotActions), len(wantActions))
	}
	if !reflect.DeepEqual(gotState, wantState) {
		for id, w := range wantState {
			if !reflect.DeepEqual(gotState[id], w) {
				t.Errorf("contact %s after retried failures:\n got %+v\nwant %+v", id, gotState[id], w)
				break
			}
		}
	}
	t.Logf("%d events, %d actions; injected %d Get and %d Commit failures", len(evs), len(wantActions), f.gets, f.commits)
}

// TestApplyAtFailedPutIsNotRetryable: a Put that fails (the contract says it
// must not) leaves a changed contact the store did not take; ApplyAt says so
// with ErrDiverged, which no driver retries. Retrying anyway shows why: the
// event would be lost with its actions.
func TestApplyAtFailedPutIsNotRetryable(t *testing.T) {
	rs := loadRules(t, "../examples/ecommerce.yaml")
	fail := false
	f := &flaky{Memory: state.NewMemory(), failPut: func() bool { return fail }}
	p := NewPartition(rs, f, nil)
	ctx := context.Background()
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	first := &event.Event{Type: "page", UserID: "u1", Time: t0}
	if err := p.ApplyAt(ctx, first, state.Position{Offset: 6}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.Get(ctx, "u1")
	seq := c.Seq
	fail = true
	e := &event.Event{Type: "track", UserID: "u1", Event: "Product Added", Time: t0 + 1}
	err := p.ApplyAt(ctx, e, state.Position{Offset: 7})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("ApplyAt with a failing Put = %v, want ErrDiverged", err)
	}
	if retryable(err) {
		t.Fatalf("%v is retryable", err)
	}
	// What a blind retry would do: the contact in memory already holds the
	// record, so it is skipped, and the store never learnt of the change.
	fail = false
	if err := p.ApplyAt(ctx, e, state.Position{Offset: 7}); err != nil {
		t.Fatal(err)
	}
	if p.Skipped() != 1 || c.Seq != seq+1 {
		t.Fatalf("blind retry: skipped %d, seq %d → %d; the test no longer shows the hazard", p.Skipped(), seq, c.Seq)
	}
}

// TestApplyAtSkipsRecordsAlreadyApplied: records read again after a crash
// (the same positions, the committed state) are skipped record by record,
// with or without messageId, while the clock still moves with them; a
// record of another partition is not compared.
func TestApplyAtSkipsRecordsAlreadyApplied(t *testing.T) {
	rs := loadRules(t, "../examples/ecommerce.yaml")
	evs := retryEvents(t, 600)
	ctx := context.Background()
	mem := state.NewMemory()
	var n int
	p := NewPartition(rs, mem, func(res *rules.Result) { n += len(res.Records) })
	for i, e := range evs {
		if err := p.ApplyAt(ctx, e, state.Position{Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]uint64{}
	mem.Range(func(c *state.Contact) bool { before[c.ID] = c.Seq; return true })

	// A new owner of the partition re-reads from offset 200 (the committed
	// Kafka offset lagged the committed state).
	n = 0
	p2 := NewPartition(rs, mem, func(res *rules.Result) { n += len(res.Records) })
	for i := 200; i < len(evs); i++ {
		if err := p2.ApplyAt(ctx, evs[i], state.Position{Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := p2.Skipped(); got != uint64(len(evs)-200) {
		t.Errorf("skipped %d records, want %d", got, len(evs)-200)
	}
	if n != 0 {
		t.Errorf("%d actions emitted again by skipped records", n)
	}
	mem.Range(func(c *state.Contact) bool {
		if c.Seq != before[c.ID] {
			t.Errorf("contact %s: %d events applied, %d before the re-read", c.ID, c.Seq, before[c.ID])
		}
		return true
	})
	if p2.Clock() != p.Clock() {
		t.Errorf("clock after the re-read %d, want %d (skipped records still move it)", p2.Clock(), p.Clock())
	}

	// The same offsets in another partition (after a repartition) apply.
	c, _ := mem.Get(ctx, evs[0].Contact())
	seq := c.Seq
	e := *evs[0]
	e.MessageID = ""
	e.Time = p.Clock()
	if err := p2.ApplyAt(ctx, &e, state.Position{Partition: 1, Offset: 0}); err != nil {
		t.Fatal(err)
	}
	if c.Seq != seq+1 {
		t.Errorf("a record of another partition was not applied (seq %d → %d)", seq, c.Seq)
	}
}

// TestApplyAtRetryAfterItsTimerFailed: a late event sets a timer that is
// already due, which fires right after it; when that timer cannot load its
// contact, ApplyAt fails after the event was applied. The retry must not
// apply the event again (a second "Product Added" without messageId), and
// the timer must still fire, once, before the next event.
func TestApplyAtRetryAfterItsTimerFailed(t *testing.T) {
	rs := loadRules(t, "../examples/ecommerce.yaml")
	ctx := context.Background()
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	late := &event.Event{Type: "track", UserID: "u1", Event: "Product Added", Properties: map[string]any{"price": 10.0}, Time: t0}
	for _, tc := range []struct {
		name   string
		inject bool
	}{{"no failure", false}, {"timer's Get fails once", true}} {
		t.Run(tc.name, func(t *testing.T) {
			armed, failNext := false, false
			f := &flaky{Memory: state.NewMemory(),
				failGet: func() bool {
					if failNext {
						failNext = false
						return true
					}
					return false
				},
				failPut: func() bool {
					failNext = armed // the Get after this Put is the due timer's
					armed = false
					return false
				},
			}
			var fired []string
			p := NewPartition(rs, f, func(res *rules.Result) {
				for _, r := range res.Records {
					fired = append(fired, r.Trigger+"/"+r.Contact)
				}
			})
			apply := func(e *event.Event, off int64) {
				for attempt := 0; ; attempt++ {
					err := p.ApplyAt(ctx, e, state.Position{Offset: off})
					if err == nil {
						return
					}
					if !retryable(err) || attempt > 3 {
						t.Fatal(err)
					}
				}
			}
			apply(&event.Event{Type: "identify", UserID: "u1", Traits: map[string]any{"email": "u1@example.com"}, Time: t0 - 1}, 0)
			apply(&event.Event{Type: "page", UserID: "u2", Time: t0 + int64(2*time.Hour)}, 1)
			armed = tc.inject
			apply(late, 2)
			apply(&event.Event{Type: "page", UserID: "u2", Time: t0 + int64(2*time.Hour)}, 3)
			if tc.inject && f.gets != 1 {
				t.Fatalf("injected %d failures, want 1", f.gets)
			}
			c, _ := f.Get(ctx, "u1")
			if c.Seq != 2 {
				t.Errorf("u1 has %d events applied, want 2", c.Seq)
			}
			if want := []string{"abandoned-cart/u1"}; !slices.Equal(fired, want) {
				t.Errorf("fired %v, want %v", fired, want)
			}
		})
	}
}
