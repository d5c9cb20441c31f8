package state

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestLinkTableMatchesMaps runs random operations on a MemoryLinks (both
// its locked and its owned view) and on two plain maps, and requires the
// same answers throughout: growth, removal of ids with no facts left
// (backward shifts across the end of the table) and prefetching included.
func TestLinkTableMatchesMaps(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			l := NewMemoryLinks()
			views := []Links{l, l.Owned()}
			owner := map[string]string{}
			known := map[string]bool{}
			id := func() string { return fmt.Sprintf("id-%d", r.IntN(300)) }
			for step := range 20000 {
				v := views[r.IntN(2)]
				a, u := id(), id()
				switch r.IntN(6) {
				case 0:
					v.Link(ctx, a, u)
					owner[a] = u
				case 1:
					v.Unlink(ctx, a)
					delete(owner, a)
				case 2:
					v.MarkKnown(ctx, a)
					known[a] = true
				case 3:
					v.Forget(ctx, a)
					delete(known, a)
				case 4:
					l.Owned().(LinkPrefetcher).PrefetchLinks([]string{a, u, ""})
				}
				for _, x := range []string{a, u, id()} {
					if got, _ := v.Owner(ctx, x); got != owner[x] {
						t.Fatalf("step %d: Owner(%s) = %q, want %q", step, x, got, owner[x])
					}
					if got, _ := v.Known(ctx, x); got != known[x] {
						t.Fatalf("step %d: Known(%s) = %v, want %v", step, x, got, known[x])
					}
					if got := v.(LinkPeeker).PeekOwner(x); got != owner[x] {
						t.Fatalf("step %d: PeekOwner(%s) = %q, want %q", step, x, got, owner[x])
					}
				}
				if l.Len() != len(owner) {
					t.Fatalf("step %d: Len %d, want %d", step, l.Len(), len(owner))
				}
			}
			seen := map[string]string{}
			l.Range(func(a, u string) bool { seen[a] = u; return true })
			if fmt.Sprint(seen) != fmt.Sprint(owner) {
				t.Fatalf("Range gave %v, want %v", seen, owner)
			}
			// Every slot in use holds a fact.
			n := 0
			for _, s := range l.t.slots {
				if s.h != 0 {
					n++
					if s.owner == "" && !s.known {
						t.Fatalf("slot of %q holds no fact", s.id)
					}
				}
			}
			if n != l.t.n {
				t.Fatalf("%d slots in use, counted %d", n, l.t.n)
			}
		})
	}
}
