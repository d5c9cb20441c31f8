package stream

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
)

// TestLetGo: once a batch is applied, the worker's reused buffers reference
// none of its records or decoded events (they would stay live, and be
// marked by every garbage collection, until a batch as large came), and
// buffers far larger than the batches are dropped.
func TestLetGo(t *testing.T) {
	fill := func(w *worker, n int) []*kgo.Record {
		batch := make([]*kgo.Record, n)
		w.evs, w.src = make([]event.Event, n), make([]*kgo.Record, 0, n)
		for i := range batch {
			batch[i] = &kgo.Record{Value: []byte("{}")}
			w.evs[i] = event.Event{Type: "page", UserID: "u", Properties: map[string]any{"path": "/"}}
			w.src = append(w.src, batch[i])
		}
		return batch
	}
	for _, tc := range []struct {
		name   string
		cap, n int
		shrunk bool
	}{
		{"same size", 1000, 1000, false},
		{"small buffers are kept", 200, 10, false},
		{"large buffers after a small batch", 4000, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &worker{}
			big := fill(w, tc.cap)
			w.evs, w.src = w.evs[:tc.n], w.src[:tc.n]
			batch := big[:tc.n]
			evs, src := w.evs[:cap(w.evs)], w.src[:cap(w.src)]
			// Entries beyond n were cleared after earlier batches.
			clear(evs[tc.n:])
			clear(src[tc.n:])
			clear(big[tc.n:])
			got := w.letGo(batch)
			for i := range tc.n {
				if big[i] != nil || src[i] != nil || evs[i].Properties != nil || evs[i].UserID != "" {
					t.Fatalf("entry %d still referenced: record %v, src %v, event %+v", i, big[i], src[i], evs[i])
				}
			}
			if shrunk := got == nil && w.evs == nil && w.src == nil; shrunk != tc.shrunk {
				t.Errorf("buffers dropped: %v, want %v (batch cap %d, evs cap %d)", shrunk, tc.shrunk, cap(got), cap(w.evs))
			}
			if !tc.shrunk && (len(got) != 0 || cap(got) != tc.cap) {
				t.Errorf("batch buffer len %d cap %d, want 0 and %d for reuse", len(got), cap(got), tc.cap)
			}
		})
	}
}

// TestHoldBound: a held record keeps its decoded event (taking over its
// maps) while the partition keeps fewer than maxHeldEvents, and only the
// record beyond; forgetHeldEvents (a rules switch that changes whether
// `context` is decoded) drops them all, so that release decodes again.
func TestHoldBound(t *testing.T) {
	w := &worker{parked: map[string]*parked{}}
	p := &parked{}
	w.parked["u"] = p
	r := &kgo.Record{Value: []byte(`{}`)}
	for i := range maxHeldEvents + 2 {
		e := event.Event{Type: "page", UserID: "u", Properties: map[string]any{"i": i}}
		p.recs = append(p.recs, w.hold(r, &e))
		h := p.recs[i]
		if kept := i < maxHeldEvents; (h.e != nil) != kept {
			t.Fatalf("record %d: event kept %v, want %v", i, h.e != nil, kept)
		}
		if h.e != nil && (e.Properties != nil || h.e.Properties["i"] != i) {
			t.Fatalf("record %d: held event %+v, source left %+v; the held record must own the maps", i, h.e, e)
		}
		if h.e == nil && e.Properties == nil {
			t.Fatalf("record %d: source event reset although not kept", i)
		}
	}
	if w.heldEvents != maxHeldEvents {
		t.Errorf("heldEvents %d, want %d", w.heldEvents, maxHeldEvents)
	}
	w.forgetHeldEvents()
	for i, h := range p.recs {
		if h.e != nil || h.r != r {
			t.Fatalf("record %d after forgetHeldEvents: %+v", i, h)
		}
	}
	if w.heldEvents != 0 {
		t.Errorf("heldEvents %d after forgetHeldEvents", w.heldEvents)
	}
}

// TestParkedUserFilter: parkedUser, which asks the filter before the map,
// agrees with the map through random parks, unparks, repeats and resets,
// and that a saturated count stays saturated.
func TestParkedUserFilter(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{parked: map[string]*parked{}, m: m}
	w.parkedIDs.seed = maphash.MakeSeed()
	r := rand.New(rand.NewPCG(7, 9))
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = fmt.Sprintf("u-%d", i)
	}
	for step := range 200_000 {
		id := ids[r.IntN(len(ids))]
		switch k := r.IntN(100); {
		case k < 50:
			w.park(id, &parked{})
		case k < 99:
			w.unpark(id)
		case step%7 == 0:
			w.dropParked()
		}
		if step%101 == 0 {
			for _, id := range ids {
				if got, want := w.parkedUser(id), w.parked[id]; got != want {
					t.Fatalf("step %d: parkedUser(%q) = %p, map has %p", step, id, got, want)
				}
			}
		}
	}
	// Saturation: 300 parks counted in one slot stay "maybe" after
	// their unparks, which costs only the lookup.
	var f parkFilter
	f.seed = maphash.MakeSeed()
	s := f.slot("x")
	*s = 254
	f.add("x")
	f.add("x")
	f.remove("x")
	if !f.maybe("x") || *s != 255 {
		t.Fatalf("saturated count %d, maybe %v; want 255, true", *s, f.maybe("x"))
	}
}

// TestTakeKeepsQueue: take leaves nothing of what it took in the queue's
// array, keeps what it did not take in order at the front, and keeps the
// array from take to take while it is small (a caught-up partition takes
// everything at every wake-up; dropping the array made the next push
// allocate), and lets it go once empty when a backlog grew it.
func TestTakeKeepsQueue(t *testing.T) {
	w := &worker{
		cfg:   &Config{BatchRecords: 3, QueueRecords: 100_000},
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "depth"}),
		wake:  make(chan struct{}, 1),
	}
	recs := make([]*kgo.Record, 600)
	for i := range recs {
		recs[i] = &kgo.Record{Offset: int64(i)}
	}
	clean := func(what string) {
		t.Helper()
		for i, r := range w.q[len(w.q):cap(w.q)] {
			if r != nil {
				t.Fatalf("%s: the queue's array still holds record %d past its length at %d", what, r.Offset, len(w.q)+i)
			}
		}
	}
	var buf []*kgo.Record
	w.push(recs[:2], -1)
	buf, _ = w.take(buf)
	if len(buf) != 2 || len(w.q) != 0 || cap(w.q) == 0 {
		t.Fatalf("took %d, queue len %d cap %d; want 2 taken, an empty queue that keeps its array", len(buf), len(w.q), cap(w.q))
	}
	clean("all taken")

	w.push(recs[:5], -1)
	buf, _ = w.take(buf)
	if len(buf) != 3 || buf[0] != recs[0] || buf[2] != recs[2] {
		t.Fatalf("took %v, want the first 3 records", buf)
	}
	if len(w.q) != 2 || w.q[0] != recs[3] || w.q[1] != recs[4] {
		t.Fatalf("left %v, want records 3 and 4 in order", w.q)
	}
	clean("some taken")
	buf, _ = w.take(buf)
	clean("rest taken")

	array := &w.q[:1][0]
	for range 10 {
		w.push(recs[:2], -1)
		if &w.q[0] != array {
			t.Fatal("push allocated a new array for a queue the size of the last ones")
		}
		buf, _ = w.take(buf)
	}

	w.push(recs, -1) // a backlog: more than shrinkBelow queued
	for len(w.q) > 0 {
		buf, _ = w.take(buf)
		clean("draining a backlog")
	}
	if w.q != nil {
		t.Fatalf("the emptied queue keeps an array of %d after a backlog; want it let go", cap(w.q))
	}
}
