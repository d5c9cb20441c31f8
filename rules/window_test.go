package rules

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
