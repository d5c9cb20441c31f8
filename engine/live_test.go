package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// The live hand-over (engine/live.go) simulated without Kafka: partitions
// with their own engine.Partition over one memory store, FIFO queues for
// the records the protocol sends between them. Run to quiescence after each
// input event, live must give replay's actions, states and counts; run in a
// random interleaving, no record may be lost or applied twice.

const liveRules = "identity: { max_anonymous: 2 }" + `
windows:
  views: { match: type == "page", over: 1h }
scoring:
  engagement:
    half_life: 1d
    rules:
      - { id: p, on: type == "page", points: 10, limit: { points: 25, per: 1h } }
triggers:
  - id: probe
    sequence: ['type == "track" && event == "probe"']
    within: 1s
    do: [show]
  - id: x
    after: type == "track" && event == "x"
    within: 10m
    do: [show]
  - id: hot
    when: engagement >= 30
    cooldown: 1h
    do: [show]
actions:
  show: { sink: s, message: "{{ windows.views }} {{ engagement }}" }
`

type simRec struct {
	kind   string // event | request | answer | forward
	ev     *event.Event
	req    engine.LinkRequest
	anon   string
	user   string
	link   state.Position
	ans    engine.AnswerKind
	kind2  rules.ConflictKind
	blob   []byte
	from   state.Position
	offset int64
	noLink bool
}

type simPart struct {
	n    int32
	p    *engine.Partition
	q    []*simRec
	next int64
	held map[string][]*simRec
}

type sim struct {
	t     *testing.T
	parts []*simPart
	store *state.Memory
	out   []string
	ident *rules.Identity

	giveUp bool // every hand-over times out before its answer is read
	late   int  // hand-overs given up
}

func newSim(t *testing.T, rs *rules.Ruleset, n int) *sim {
	s := &sim{t: t, store: state.NewMemory(), ident: rs.Identity()}
	for i := range n {
		sp := &simPart{n: int32(i), held: map[string][]*simRec{}}
		sp.p = engine.NewPartition(rs, s.store, func(res *rules.Result) {
			for i := range res.Records {
				b, _ := json.Marshal(&res.Records[i])
				s.out = append(s.out, string(b))
			}
		})
		sp.p.UseLiveLinks(func(c string) bool { _, ok := sp.held[c]; return ok })
		s.parts = append(s.parts, sp)
	}
	return s
}

func (s *sim) partOf(id string) *simPart {
	h := fnv.New32a()
	h.Write([]byte(id))
	return s.parts[h.Sum32()%uint32(len(s.parts))]
}

func (s *sim) push(key string, r *simRec) {
	sp := s.partOf(key)
	r.offset = sp.next
	sp.next++
	sp.q = append(sp.q, r)
}

func (s *sim) pushEvent(e *event.Event) {
	user, anon := s.ident.Usable(e.UserID, e.AnonymousID)
	key := user
	if key == "" {
		key = anon
	}
	s.push(key, &simRec{kind: "event", ev: e})
}

// step processes the next record of partition i; false if none.
func (s *sim) step(i int) bool {
	sp := s.parts[i]
	if len(sp.q) == 0 {
		return false
	}
	r := sp.q[0]
	sp.q = sp.q[1:]
	s.process(sp, r)
	return true
}

func (s *sim) process(sp *simPart, r *simRec) {
	t := s.t
	ctx := context.Background()
	pos := state.Position{Partition: sp.n, Offset: r.offset}
	switch r.kind {
	case "event", "forward":
		key := r.user
		if r.kind == "event" {
			user, anon := s.ident.Usable(r.ev.UserID, r.ev.AnonymousID)
			if key = user; key == "" {
				key = anon
			}
		}
		if h, ok := sp.held[key]; ok {
			sp.held[key] = append(h, r)
			return
		}
		le := &engine.LiveEvent{Event: r.ev, Pos: pos, NoLink: r.noLink}
		if r.kind == "forward" {
			le.Into, le.From = r.user, r.from
		}
		out, err := sp.p.ApplyLive(ctx, le)
		if err != nil {
			if event.ReasonOf(err) != "" {
				return
			}
			t.Fatalf("ApplyLive: %v", err)
		}
		switch {
		case out.Parked:
			sp.held[out.Contact] = []*simRec{r}
			if out.Request != nil {
				s.push(out.Request.Anon, &simRec{kind: "request", req: *out.Request})
			}
			if s.giveUp {
				// The timeout: the held records are applied without the merge.
				if err := sp.p.GiveUp(ctx, out.Contact); err != nil {
					t.Fatal(err)
				}
				s.late++
				held := sp.held[out.Contact]
				delete(sp.held, out.Contact)
				held[0].noLink = true
				for _, h := range held {
					s.process(sp, h)
				}
			}
		case out.Forward != "":
			s.push(out.Forward, &simRec{kind: "forward", ev: r.ev, user: out.Forward, from: pos})
		}
	case "request":
		ans, kind, blob, skipped, err := sp.p.LinkRequested(ctx, &r.req, pos)
		if err != nil {
			t.Fatalf("LinkRequested: %v", err)
		}
		if !skipped {
			s.push(r.req.User, &simRec{kind: "answer", anon: r.req.Anon, user: r.req.User, link: r.req.Link, ans: ans, kind2: kind, blob: blob})
		}
	case "answer":
		a, err := sp.p.Answer(ctx, r.user, r.anon, r.link, r.ans, r.kind2, r.blob)
		if err != nil {
			t.Fatalf("Answer: %v", err)
		}
		switch {
		case a.Next != nil:
			s.push(a.Next.Anon, &simRec{kind: "request", req: *a.Next})
		case a.Released && !a.Late:
			held := sp.held[r.user]
			delete(sp.held, r.user)
			held[0].noLink = true // its links are answered
			for _, h := range held {
				s.process(sp, h)
			}
		}
	}
}

func (s *sim) quiesce() {
	for busy := true; busy; {
		busy = false
		for i := range s.parts {
			for s.step(i) {
				busy = true
			}
		}
	}
}

// liveEvents returns random identity traffic with increasing times.
func liveEvents(seed uint64, n int) []*event.Event { return liveEventsIDs(seed, n, false) }

// liveEventsIDs is liveEvents with, if unique, a distinct messageId per
// event (no repeats).
func liveEventsIDs(seed uint64, n int, unique bool) []*event.Event {
	rng := newRand(seed)
	users := []string{"u0", "u1", "u2", "u3", "null", ""}
	anons := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "u1", "guest", ""}
	types := []string{"page", "page", "page", "track", "identify", "alias"}
	tracks := []string{"probe", "x", "y"}
	var out []*event.Event
	for i := 0; i < n; i++ {
		kv := []any{"type", types[rng(len(types))], "messageId", fmt.Sprint("m", rng(60))}
		if unique {
			kv[3] = fmt.Sprint("u", i)
		}
		kv = append(kv, as(users[rng(len(users))], anons[rng(len(anons))])...)
		switch kv[1] {
		case "alias":
			kv = append(kv, "previousId", anons[rng(len(anons))])
		case "track":
			kv = append(kv, "event", tracks[rng(len(tracks))])
		}
		e, err := event.Decode([]byte(ev(time.Duration(i)*time.Minute, kv...)), event.JSON, 0)
		if err != nil {
			continue
		}
		out = append(out, e)
	}
	return out
}

// comparable strips what only live keeps.
func comparable(c *state.Contact) *state.Contact {
	x := *c
	x.Applied, x.Pos, x.Known, x.Pending, x.Forwarded, x.Memo = state.Position{}, state.Position{}, false, nil, nil, nil
	b, _ := state.Encode(&x)
	d, _ := state.Decode(b)
	return d
}

func TestLiveHandoverMatchesReplay(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, liveRules)
	var total rules.Stats
	for seed := uint64(1); seed <= 200; seed++ {
		evs := liveEvents(seed, 60)
		// The reference: one partition with a link table, as replay.
		ref := state.NewMemory()
		var want []string
		rp := engine.NewPartition(rs, ref, func(res *rules.Result) {
			for i := range res.Records {
				b, _ := json.Marshal(&res.Records[i])
				want = append(want, string(b))
			}
		})
		rp.UseLinks(state.NewMemoryLinks())
		s := newSim(t, rs, 3)
		for _, e := range evs {
			if err := rp.Apply(ctx, e); err != nil && event.ReasonOf(err) == "" {
				t.Fatal(err)
			}
			s.pushEvent(e)
			s.quiesce()
		}
		end := rp.Clock()
		if err := rp.Advance(ctx, end); err != nil {
			t.Fatal(err)
		}
		for _, sp := range s.parts {
			if err := sp.p.Advance(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(want)
		got := slices.Clone(s.out)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: live actions differ from replay's:\nlive:\n%v\nreplay:\n%v", seed, got, want)
		}
		refs := map[string]*state.Contact{}
		ref.Range(func(c *state.Contact) bool { refs[c.ID] = c; return true })
		s.store.Range(func(c *state.Contact) bool {
			if c.Pending != nil {
				t.Fatalf("seed %d: %s still has a pending link at rest: %+v", seed, c.ID, c.Pending)
			}
			r := refs[c.ID]
			if c.MergedInto != "" && !c.Known && c.Seq == 0 && c.Latest == state.NoTime {
				if r != nil {
					t.Fatalf("seed %d: %s retired live, has state in replay", seed, c.ID)
				}
				return true // a tombstone: replay deleted the contact
			}
			if r == nil {
				t.Fatalf("seed %d: live has %s, replay not: %+v", seed, c.ID, c)
			}
			delete(refs, c.ID)
			g, w := comparable(c), comparable(r)
			g.MergedInto = "" // replay keeps the link in its table
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("seed %d: contact %s:\nlive   %+v\nreplay %+v", seed, c.ID, g, w)
			}
			return true
		})
		for id := range refs {
			t.Fatalf("seed %d: replay has %s, live not", seed, id)
		}
		var st rules.Stats
		for _, sp := range s.parts {
			x := sp.p.Stats()
			st.Links += x.Links
			st.Merges += x.Merges
			for k := range x.Conflicts {
				st.Conflicts[k] += x.Conflicts[k]
			}
		}
		rst := rp.Stats()
		if st.Links != rst.Links || st.Merges != rst.Merges || st.Conflicts != rst.Conflicts {
			t.Fatalf("seed %d: live counts %d links, %d merges, conflicts %v; replay %d, %d, %v",
				seed, st.Links, st.Merges, st.Conflicts, rst.Links, rst.Merges, rst.Conflicts)
		}
		total.Links += st.Links
		total.Merges += st.Merges
		for k := range st.Conflicts {
			total.Conflicts[k] += st.Conflicts[k]
		}
	}
	if total.Links == 0 || total.Merges == 0 || total.Conflicts[rules.ConflictMerged] == 0 ||
		total.Conflicts[rules.ConflictKnown] == 0 || total.Conflicts[rules.ConflictMaxAnonymous] == 0 {
		t.Errorf("random traffic made %d links, %d merges, conflicts %v: some case never happened", total.Links, total.Merges, total.Conflicts)
	}
	t.Logf("%d links, %d merges, conflicts %v", total.Links, total.Merges, total.Conflicts)
}

// TestLiveHandoverInterleaved runs the same traffic with the partitions
// stepping in a random order while input keeps arriving (users parked while
// their later events and other links come in; records delivered twice, as
// after a crash): at rest no link is pending, every anonymous id is on at
// most one user's list, a tombstone names the user whose list has it, and
// no user exceeds max_anonymous. With giveUp every hand-over times out at
// once, so users' later linking events arrive while late links wait.
func TestLiveHandoverInterleaved(t *testing.T) {
	for _, giveUp := range []bool{false, true} {
		t.Run(fmt.Sprint("giveUp=", giveUp), func(t *testing.T) { testLiveHandoverInterleaved(t, giveUp) })
	}
}

func testLiveHandoverInterleaved(t *testing.T, giveUp bool) {
	rs := mustParse(t, liveRules)
	parked := 0
	for seed := uint64(1); seed <= 200; seed++ {
		rng := newRand(seed + 1000)
		s := newSim(t, rs, 3)
		s.giveUp = giveUp
		evs := liveEvents(seed, 80)
		for len(evs) > 0 || s.busy() {
			if len(evs) > 0 && rng(3) == 0 {
				s.pushEvent(evs[0])
				evs = evs[1:]
				continue
			}
			i := rng(len(s.parts))
			sp := s.parts[i]
			if len(sp.q) > 0 && rng(10) == 0 {
				// Delivered again (a re-read): same offset, skipped by position.
				s.process(sp, sp.q[0])
			}
			s.step(i)
			for _, sp := range s.parts {
				parked += len(sp.held)
			}
		}
		lists := map[string]string{}
		s.store.Range(func(c *state.Contact) bool {
			if c.Pending != nil {
				t.Fatalf("seed %d: %s has a pending link at rest: %+v", seed, c.ID, c.Pending)
			}
			if len(c.Merged) > 2 {
				t.Fatalf("seed %d: %s absorbed %v", seed, c.ID, c.Merged)
			}
			for _, a := range c.Merged {
				if u, dup := lists[a]; dup {
					t.Fatalf("seed %d: %s on the lists of %s and %s", seed, a, u, c.ID)
				}
				lists[a] = c.ID
			}
			return true
		})
		s.store.Range(func(c *state.Contact) bool {
			if c.MergedInto != "" && lists[c.ID] != c.MergedInto {
				t.Fatalf("seed %d: tombstone %s names %s, on the list of %q", seed, c.ID, c.MergedInto, lists[c.ID])
			}
			return true
		})
	}
	if parked == 0 && !giveUp {
		t.Error("no user was ever parked while records arrived: the test proves nothing")
	}
}

func (s *sim) busy() bool {
	for _, sp := range s.parts {
		if len(sp.q) > 0 {
			return true
		}
	}
	return false
}

// TestLiveHandoverTimeout: every hand-over times out (GiveUp) before its
// answer: the linking event and the user's later events are applied
// without the merge, and the merge follows when the answer comes. Nothing
// is lost or counted twice: each contact's windows and merged ids end as
// in replay (only trigger state, which saw the events in another order,
// may differ), and no link is left pending.
func TestLiveHandoverTimeout(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, liveRules)
	late := 0
	for seed := uint64(1); seed <= 100; seed++ {
		// Unique messageIds: with a repeat in both A and U, an event of U
		// applied before a late merge is no repeat yet (SPEC §6, live).
		evs := liveEventsIDs(seed, 60, true)
		ref := state.NewMemory()
		rp := engine.NewPartition(rs, ref, nil)
		rp.UseLinks(state.NewMemoryLinks())
		s := newSim(t, rs, 3)
		s.giveUp = true
		for _, e := range evs {
			if err := rp.Apply(ctx, e); err != nil && event.ReasonOf(err) == "" {
				t.Fatal(err)
			}
			s.pushEvent(e)
			s.quiesce()
		}
		late += s.late
		refs := map[string]*state.Contact{}
		ref.Range(func(c *state.Contact) bool { refs[c.ID] = c; return true })
		s.store.Range(func(c *state.Contact) bool {
			if c.Pending != nil {
				t.Fatalf("seed %d: %s has a pending link at rest: %+v", seed, c.ID, c.Pending)
			}
			r := refs[c.ID]
			if r == nil {
				if c.MergedInto == "" || c.Known || c.Seq != 0 {
					t.Fatalf("seed %d: live has %s, replay not: %+v", seed, c.ID, c)
				}
				return true
			}
			if !reflect.DeepEqual(c.Windows, r.Windows) || !slices.Equal(c.Merged, r.Merged) {
				t.Fatalf("seed %d: contact %s:\nlive   windows %+v merged %v\nreplay windows %+v merged %v", seed, c.ID, c.Windows, c.Merged, r.Windows, r.Merged)
			}
			return true
		})
	}
	if late == 0 {
		t.Error("no hand-over timed out: the test proves nothing")
	}
}

// TestLiveLateLinkQueuesNextLink: a user's linking event read while an
// earlier link of the user is late (its hand-over timed out, its answer not
// read yet) is not held, so its links are queued behind the late one and
// asked when it completes. The interleaving lost the second link before:
// the user's events were applied while its first, shared-device link
// waited, and the answer — a conflict, or a merge — cleared the pending
// link without asking the next id (stream's TestIdentityLiveMatchesReplay,
// timeout, under load).
func TestLiveLateLinkQueuesNextLink(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, liveRules)
	mustEvent := func(t *testing.T, s string) *event.Event {
		e, err := event.Decode([]byte(s), event.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	page := func(d time.Duration, user, anon, id string) *event.Event {
		return mustEvent(t, ev(d, append([]any{"type", "page", "messageId", id}, as(user, anon)...)...))
	}
	ident := func(d time.Duration, user, anon, id string) *event.Event {
		return mustEvent(t, ev(d, append([]any{"type", "identify", "messageId", id}, as(user, anon)...)...))
	}
	for _, tc := range []struct {
		name   string
		before []*event.Event // applied to quiescence first
		racing []*event.Event // the user's events, read before any answer
		merged []string       // the user's list at the end (replay's)
	}{
		{
			name: "conflict then own cookie", // the failure: a shared device first
			before: []*event.Event{page(0, "", "a1", "m1"), ident(time.Minute, "v", "a1", "m2"),
				page(2*time.Minute, "", "a2", "m3")},
			racing: []*event.Event{ident(3*time.Minute, "u", "a1", "m4"), page(4*time.Minute, "u", "a2", "m5")},
		},
		{
			name:   "two cookies",
			before: []*event.Event{page(0, "", "a1", "m1"), page(time.Minute, "", "a2", "m2")},
			racing: []*event.Event{ident(2*time.Minute, "u", "a1", "m3"), page(3*time.Minute, "u", "a2", "m4"),
				page(4*time.Minute, "u", "a1", "m5")},
		},
		{
			name: "refused twice", // replay asks again at the later event and counts it again
			before: []*event.Event{page(0, "", "a1", "m1"), ident(time.Minute, "v", "a1", "m2"),
				page(2*time.Minute, "", "a2", "m3")},
			racing: []*event.Event{ident(3*time.Minute, "u", "a1", "m4"), page(4*time.Minute, "u", "a1", "m5"),
				page(5*time.Minute, "u", "a2", "m6")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := state.NewMemory()
			rp := engine.NewPartition(rs, ref, nil)
			rp.UseLinks(state.NewMemoryLinks())
			s := newSim(t, rs, 3)
			s.giveUp = true
			for _, e := range append(slices.Clone(tc.before), tc.racing...) {
				if err := rp.Apply(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range tc.before {
				s.pushEvent(e)
				s.quiesce()
			}
			// The user's events are read one after the other, before any
			// answer: the first parks the user and times out at once.
			up := s.partOf("u")
			for _, e := range tc.racing {
				s.pushEvent(e)
				for len(up.q) > 0 && up.q[0].kind == "event" {
					s.process(up, up.q[0])
					up.q = up.q[1:]
				}
			}
			s.quiesce()
			if s.late == 0 {
				t.Fatal("no hand-over timed out: the test proves nothing")
			}
			want, _ := ref.Get(ctx, "u")
			got, _ := s.store.Get(ctx, "u")
			if got.Pending != nil {
				t.Errorf("pending link at rest: %+v", got.Pending)
			}
			if !slices.Equal(got.Merged, want.Merged) || !reflect.DeepEqual(got.Windows, want.Windows) {
				t.Errorf("u: live windows %+v merged %v\nreplay windows %+v merged %v", got.Windows, got.Merged, want.Windows, want.Merged)
			}
			for _, a := range want.Merged {
				if c, _ := s.store.Get(ctx, a); c.MergedInto != "u" {
					t.Errorf("%s: live holds %+v, want a tombstone naming u", a, c)
				}
			}
			var live rules.Stats
			for _, sp := range s.parts {
				st := sp.p.Stats()
				live.Links, live.Merges = live.Links+st.Links, live.Merges+st.Merges
				for i := range live.Conflicts {
					live.Conflicts[i] += st.Conflicts[i]
				}
			}
			links, merges, conflicts := live.Links, live.Merges, live.Conflicts
			rst := rp.Stats()
			if links != rst.Links || merges != rst.Merges || conflicts != rst.Conflicts {
				t.Errorf("live: %d links, %d merges, conflicts %v; replay: %d, %d, %v", links, merges, conflicts, rst.Links, rst.Merges, rst.Conflicts)
			}
		})
	}
}

// TestLiveLateLinkQueueBounded: the links queued behind a late link are
// bounded by MaxQueuedLinks. A user whose every event brings another
// anonymous id while its first hand-over is late queues the first
// MaxQueuedLinks of them; the links of its later events are dropped
// (counted), so that its state does not grow without bound. A dropped id
// stays its own contact, as after a refused link, and links at the user's
// next event that carries it.
func TestLiveLateLinkQueueBounded(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, strings.Replace(liveRules, "max_anonymous: 2", "max_anonymous: 100", 1))
	page := func(i int, user, anon string) *event.Event {
		e, err := event.Decode([]byte(ev(time.Duration(i)*time.Minute, append([]any{"type", "page", "messageId", fmt.Sprint("m", i)}, as(user, anon)...)...)), event.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	s := newSim(t, rs, 3)
	s.giveUp = true
	const extra = 3
	n := engine.MaxQueuedLinks + extra
	// The user's linking events are read one after the other before any
	// answer: the first parks the user and times out at once, the next n
	// each bring another anonymous id.
	up := s.partOf("u")
	for i := 0; i <= n; i++ {
		s.pushEvent(page(i, "u", fmt.Sprint("a", i)))
		for len(up.q) > 0 && up.q[0].kind == "event" {
			s.process(up, up.q[0])
			up.q = up.q[1:]
		}
	}
	u, _ := s.store.Get(ctx, "u")
	if u.Pending == nil || !u.Pending.Late || len(u.Pending.Then) != engine.MaxQueuedLinks {
		t.Fatalf("pending link %+v: want late, with %d links queued", u.Pending, engine.MaxQueuedLinks)
	}
	if got := up.p.DroppedLinks(); got != extra {
		t.Fatalf("%d linking events dropped, want %d", got, extra)
	}
	if u.Seq != uint64(n+1) {
		t.Errorf("u applied %d events, want all %d (a dropped link drops no event)", u.Seq, n+1)
	}
	s.quiesce()
	u, _ = s.store.Get(ctx, "u")
	var want []string
	for i := 0; i <= engine.MaxQueuedLinks; i++ {
		want = append(want, fmt.Sprint("a", i))
	}
	if u.Pending != nil || !slices.Equal(u.Merged, want) {
		t.Fatalf("after the answers: pending %+v, merged %v; want none pending, merged %v", u.Pending, u.Merged, want)
	}
	dropped := fmt.Sprint("a", n)
	if c, _ := s.store.Get(ctx, dropped); c.MergedInto != "" {
		t.Fatalf("dropped id %s was linked: %+v", dropped, c)
	}
	// The user's next event carrying a dropped id links it.
	s.giveUp = false
	s.pushEvent(page(n+1, "u", dropped))
	s.quiesce()
	u, _ = s.store.Get(ctx, "u")
	if !slices.Contains(u.Merged, dropped) {
		t.Errorf("u's next event with %s did not link it: merged %v", dropped, u.Merged)
	}
}

// TestLiveEraseMergedAnonymousID: erasing an anonymous id merged into a
// user (`leadpulse forget A`) takes it off the user's list, as replay's
// Erase does: A's owner erases the tombstone and names the user
// (EraseLive), the user's owner unmerges. A re-read of the unmerge — even
// after A has been linked to the user again — changes nothing.
func TestLiveEraseMergedAnonymousID(t *testing.T) {
	ctx := context.Background()
	rs := mustParse(t, liveRules)
	mk := func(i int, user, anon string) *event.Event {
		e, err := event.Decode([]byte(ev(time.Duration(i)*time.Minute, append([]any{"type", "page", "messageId", fmt.Sprint("m", i)}, as(user, anon)...)...)), event.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ref := state.NewMemory()
	rp := engine.NewPartition(rs, ref, nil)
	rp.UseLinks(state.NewMemoryLinks())
	s := newSim(t, rs, 3)
	apply := func(evs ...*event.Event) {
		for _, e := range evs {
			if err := rp.Apply(ctx, e); err != nil {
				t.Fatal(err)
			}
			s.pushEvent(e)
			s.quiesce()
		}
	}
	apply(mk(0, "", "a1"), mk(1, "", "a2"), mk(2, "u", "a1"), mk(3, "u", "a2"))
	if u, _ := s.store.Get(ctx, "u"); !slices.Equal(u.Merged, []string{"a1", "a2"}) {
		t.Fatalf("u merged %v before the erasure, want [a1 a2]", u.Merged)
	}

	// forget a1: replay's Erase, and live's two steps.
	if _, err := rp.Erase(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	merged, into, err := s.partOf("a1").p.EraseLive(ctx, "a1")
	if err != nil || len(merged) != 0 || into != "u" {
		t.Fatalf("EraseLive(a1) = %v, %q, %v; want no merged ids, into u", merged, into, err)
	}
	ap := s.partOf("a1") // the forget record's place in a1's partition
	from := state.Position{Partition: ap.n, Offset: ap.next}
	ap.next++
	unmerge := func() bool {
		t.Helper()
		changed, err := s.partOf("u").p.Unmerge(ctx, "u", "a1", from)
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if !unmerge() {
		t.Fatal("Unmerge(u, a1) changed nothing")
	}
	want, _ := ref.Get(ctx, "u")
	got, _ := s.store.Get(ctx, "u")
	if !slices.Equal(got.Merged, want.Merged) || !slices.Equal(got.Merged, []string{"a2"}) {
		t.Fatalf("u merged %v after forget a1; replay %v, want [a2]", got.Merged, want.Merged)
	}
	if c, _ := s.store.Get(ctx, "a1"); c.MergedInto != "" || c.Seq != 0 {
		t.Fatalf("a1 after forget: %+v, want nothing", c)
	}
	if unmerge() {
		t.Fatal("a re-read unmerge changed the list again")
	}

	// a1 comes back as a new anonymous contact and links to u again; the
	// old unmerge read once more must not take it off.
	apply(mk(4, "", "a1"), mk(5, "u", "a1"))
	want, _ = ref.Get(ctx, "u")
	got, _ = s.store.Get(ctx, "u")
	if !slices.Equal(got.Merged, want.Merged) || !slices.Contains(got.Merged, "a1") {
		t.Fatalf("u merged %v after a1 linked again; replay %v", got.Merged, want.Merged)
	}
	if unmerge() {
		t.Fatal("an old unmerge read again took a1 off after it was linked again")
	}
	if !reflect.DeepEqual(comparable(got).Windows, comparable(want).Windows) {
		t.Errorf("u windows %+v, replay %+v", got.Windows, want.Windows)
	}
}
