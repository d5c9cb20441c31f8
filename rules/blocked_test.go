package rules

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIsBlockedMatchesEqualFold holds IsBlocked's rune-count shortcut to
// comparing with every blocked id: ids that fold across byte lengths (the
// Kelvin sign, long s), invalid bytes and U+FFFD, long ids.
func TestIsBlockedMatchesEqualFold(t *testing.T) {
	lists := [][]string{
		DefaultBlocked,
		{"\u212a", "ſ", "Kelvin\u212a", "\xff", "\ufffd\ufffd", "n/a"},
		{strings.Repeat("x", 70), "guest"},
	}
	alphabet := []string{"k", "K", "\u212a", "s", "S", "ſ", "\xff", "\ufffd", "n", "/", "a", "x", "g", "u", "e", "t", "0", "-", "1"}
	r := rand.New(rand.NewPCG(1, 2))
	for _, list := range lists {
		id := Identity{Blocked: list}
		id.prepare()
		try := func(s string) {
			want := s == ""
			for _, b := range list {
				if strings.EqualFold(s, strings.ToLower(b)) {
					want = true
				}
			}
			if got := id.IsBlocked(s); got != want {
				t.Fatalf("list %q: IsBlocked(%q) = %v, want %v", list, s, got, want)
			}
		}
		for _, b := range list {
			try(b)
			try(strings.ToUpper(b))
			try(b + "x")
		}
		try(strings.Repeat("X", 70))
		for range 20000 {
			var sb strings.Builder
			for range r.IntN(8) {
				sb.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			try(sb.String())
		}
	}
}
