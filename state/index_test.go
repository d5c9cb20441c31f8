package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIndexAgainstMap applies random sets and removes to the Memory
// store's index and to a Go map, and checks after each that every id gives
// the same contact in both and that the counts agree: removal moves probe
// chains back, which only a long random run with collisions exercises.
func TestIndexAgainstMap(t *testing.T) {
	for _, ids := range []int{3, 40, 700} {
		t.Run(fmt.Sprint(ids), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(ids)))
			x := newIndex()
			want := map[string]*Contact{}
			names := make([]string, ids)
			for i := range names {
				names[i] = fmt.Sprintf("c-%d", i)
			}
			for step := 0; step < 20_000; step++ {
				id := names[r.IntN(len(names))]
				h := x.hash(id)
				if r.IntN(3) == 0 {
					got := x.remove(h, id)
					if got != want[id] {
						t.Fatalf("step %d: remove(%q) = %p, want %p", step, id, got, want[id])
					}
					delete(want, id)
				} else {
					c := New(id)
					x.set(h, c)
					want[id] = c
				}
				if x.n != len(want) {
					t.Fatalf("step %d: %d contacts, want %d", step, x.n, len(want))
				}
				if step%97 == 0 {
					for _, id := range names {
						if got := x.get(x.hash(id), id); got != want[id] {
							t.Fatalf("step %d: get(%q) = %p, want %p", step, id, got, want[id])
						}
					}
					peeked := x.peek(names, nil)
					if len(peeked) != len(want) {
						t.Fatalf("step %d: peek found %d contacts, want %d", step, len(peeked), len(want))
					}
					for _, c := range peeked {
						if want[c.ID] != c {
							t.Fatalf("step %d: peek found %q, not held", step, c.ID)
						}
					}
				}
			}
		})
	}
}
