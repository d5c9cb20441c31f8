// Package suggest finds the known name a mistyped one was meant to be, for
// "did you mean …?" in error messages (config keys and variables, rules
// keys, names in expressions, windows, actions).
package suggest

// Closest returns the candidate nearest to name, or "" when none is near
// enough to be a likely typo: at most one edit for names up to 3
// characters, up to three for longer ones (an edit is an insertion, a
// deletion, a substitution or a swap of two neighbours, so `scroe` is one
// edit from `score`). Ties go to the candidate first in alphabetical
// order, so the answer does not depend on the order of candidates.
func Closest(name string, candidates []string) string {
	limit := min(3, max(1, len(name)/2))
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == name {
			continue
		}
		if d := distance(name, c); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance (Levenshtein with
// swaps of adjacent characters), over bytes.
func distance(a, b string) int {
	// Three rows: the one before the previous is needed for swaps.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
