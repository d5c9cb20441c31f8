package suggest

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"score", "fit", "engagement", "windows", "traits", "stage", "event", "points", "contact"}
	for _, c := range []struct{ name, want string }{
		{"scroe", "score"},          // a swap is one edit
		{"pionts", "points"},        // likewise
		{"contakt", "contact"},      // a substitution
		{"engagment", "engagement"}, // a deletion
		{"traits", ""},              // itself is no suggestion
		{"xyz", ""},                 // nothing near
		{"fi", "fit"},               // short names: one edit
		{"ab", ""},                  // "fit" is two edits away
		{"stag", "stage"},           // nearer "stage" (1) than "score" (3)
	} {
		if got := Closest(c.name, names); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	// Long names take up to three edits.
	vars := []string{"LEADPULSE_KAFKA_BROKERS", "LEADPULSE_REDIS_ADDR"}
	if got := Closest("LEADPULSE_KAFKA_BROKER", vars); got != "LEADPULSE_KAFKA_BROKERS" {
		t.Errorf("got %q", got)
	}
	if got := Closest("LEADPULSE_REDIS_ADDRESS", vars); got != "LEADPULSE_REDIS_ADDR" {
		t.Errorf("got %q", got)
	}
	// Ties go to the first in alphabetical order, whatever the input order.
	if a, b := Closest("cat", []string{"cut", "cot"}), Closest("cat", []string{"cot", "cut"}); a != "cot" || b != "cot" {
		t.Errorf("tie: %q, %q, want cot", a, b)
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"", "abc", 3}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3}} {
		if got := distance(c.a, c.b); got != c.d {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
