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
					for _, exact := range []bool{false, true} {
						peeked := x.peek(names, nil, exact)
						if len(peeked) != len(want) {
							t.Fatalf("step %d: peek (exact %v) found %d contacts, want %d", step, exact, len(peeked), len(want))
						}
						for _, c := range peeked {
							if want[c.ID] != c {
								t.Fatalf("step %d: peek (exact %v) found %q, not held", step, exact, c.ID)
							}
						}
					}
				}
			}
		})
	}
}

// TestPeekExactCollision: a contact whose id's hash equals the hash of the
// id asked for (a collision, made here by hand) is a guess the owned view's
// peek may return, but the shared store's exact peek must not: its caller
// reads the fields of what it returns without a lock, and the other
// contact may be another goroutine's. Past the collision it finds the
// contact asked for.
func TestPeekExactCollision(t *testing.T) {
	x := newIndex()
	h := x.hash("mine")
	x.slots = make([]islot, 64)
	other, mine := New("other"), New("mine")
	x.slots[h&63] = islot{h: h, c: other}
	x.n = 1
	if got := x.peek([]string{"mine"}, nil, false); len(got) != 1 || got[0] != other {
		t.Fatalf("hash-only peek = %v, want the colliding contact", got)
	}
	if got := x.peek([]string{"mine"}, nil, true); len(got) != 0 {
		t.Fatalf("exact peek = %v, want nothing", got)
	}
	x.slots[(h+1)&63] = islot{h: h, c: mine}
	x.n = 2
	if got := x.peek([]string{"mine"}, nil, true); len(got) != 1 || got[0] != mine {
		t.Fatalf("exact peek = %v, want the contact after the collision", got)
	}
}
