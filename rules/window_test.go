package rules

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/state"
)

// TestDistinctCount checks the reused hash set of distinct windows against
// a map, for windows of every size up to MaxWindowEntries' default, with
// few and many distinct values and a table reused across sizes.
func TestDistinctCount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s strSet
	for _, n := range []int{0, 1, 2, 8, 9, 15, 16, 17, 33, 100, 1024, 5, 300} {
		for _, vocab := range []int{1, 3, 15, 1000} {
			keys := make([]string, n)
			want := map[string]bool{}
			for i := range keys {
				keys[i] = fmt.Sprintf("/docs/%d", r.IntN(vocab))
				want[keys[i]] = true
			}
			if got := s.count(keys); got != len(want) {
				t.Errorf("%d keys of %d values: counted %d distinct, want %d", n, vocab, got, len(want))
			}
		}
	}
}

// TestDistinctMemo applies random events, in and out of time order, to
// contacts with a distinct window that prunes, drops its oldest entries
// at a small MaxWindowEntries and holds equal times, and checks after each
// event the count kept in the contact's memo against a fresh count, and
// the oldest and newest times the contact keeps (state.Contact.Spans)
// against its entries.
func TestDistinctMemo(t *testing.T) {
	old := state.MaxWindowEntries
	defer func() { state.MaxWindowEntries = old }()
	state.MaxWindowEntries = 24
	rs, err := Parse("distinct.yaml", []byte(`
version: 1
windows:
  docs:
    match: type == "page"
    over: 1h
    distinct: properties.path
triggers:
  - id: deep
    when: windows.docs >= 12
    do: [log]
actions:
  log: { sink: s }
`))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	x := rs.NewEvaluator()
	c := state.New("c")
	now := int64(0)
	for i := 0; i < 5000; i++ {
		switch n := r.IntN(10); {
		case n < 6:
			now += int64(r.IntN(3)) * int64(time.Minute) // equal times too
		case n < 9:
		default:
			now += int64(r.IntN(90)) * int64(time.Minute)
		}
		at := now - int64(r.IntN(4))*int64(time.Minute) // some late events
		e := &event.Event{Type: "page", AnonymousID: "c", Time: at, Properties: map[string]any{"path": fmt.Sprintf("/docs/%d", r.IntN(30))}}
		x.Apply(c, e)
		win := &c.Windows[0]
		got := x.aggregate(c, 0, win, rs.Windows[0], c.Latest)
		want := x.aggregate(nil, 0, win, rs.Windows[0], c.Latest)
		if got != want {
			t.Fatalf("event %d: memo says %v distinct, a count %v (%d entries, %d dropped)", i, got, want, len(win.T), win.Dropped)
		}
		if sp := c.Spans[0]; sp.OK && (len(win.T) == 0 || sp.Lo != win.T[0] || sp.Hi != win.T[len(win.T)-1]) {
			t.Fatalf("event %d: window span [%d, %d] kept, entries %v", i, sp.Lo, sp.Hi, win.T)
		}
	}
}
