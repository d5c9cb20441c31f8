package event

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// checkParseTime requires parseTime to give what it gave before parseUTC:
// the same nanoseconds, or the same error.
func checkParseTime(t *testing.T, s string) {
	t.Helper()
	got, gotErr := parseTime("timestamp", s)
	want, wantErr := refParseTime("timestamp", s)
	if got != want || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("parseTime(%q) = %d, %v; before: %d, %v", s, got, gotErr, want, wantErr)
	}
}

// timeCases are timestamps at parseUTC's edges, and beside them.
func timeCases() []string {
	cases := []string{
		"2026-03-02T09:00:00Z", "2026-03-02T09:00:00.123Z", "2026-03-02T09:00:00.123456789Z",
		"2026-03-02T09:00:00.1234567891Z", "2026-03-02T09:00:00.Z", "2026-03-02T09:00:00,5Z",
		"2026-03-02T09:00:00z", "2026-03-02t09:00:00Z", "2026-03-02 09:00:00Z", "2026-03-02T09:00:00+01:00",
		"2026-03-02T09:00:00.5+01:00", "2026-03-02T09:00:00-00:00", "2026-03-02T09:00:00", "2026-03-02T9:00:00Z",
		"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000001Z", "1970-01-01T00:00:00.0Z", "1969-12-31T23:59:59.999999999Z",
		"1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:43.145224191Z", "2262-04-11T23:47:16.854775807Z",
		"2262-04-11T23:47:16.854775808Z", "1699-12-31T23:59:59Z", "1700-01-01T00:00:00Z", "2200-12-31T23:59:59.999999999Z",
		"2201-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2100-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-32T00:00:00Z",
		"2026-00-10T00:00:00Z", "2026-13-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z",
		"2026-01-01T23:59:60Z", "2026-01-01T23:59:59.-1Z", "2026-01-01T23:59:59.+1Z", "-026-01-01T23:59:59Z", "+2026-01-01T00:00:00Z",
		"2026-01-01T00:00:00ZZ", "2026-01-01T00:00:00.1.2Z", "２026-01-01T00:00:00Z", "", "Z", "not a time",
	}
	for _, y := range []int{1600, 1677, 1678, 1700, 1800, 1899, 1900, 1970, 1999, 2000, 2024, 2100, 2199, 2200, 2262, 2263} {
		for m := 0; m <= 13; m++ {
			for _, d := range []int{0, 1, 28, 29, 30, 31, 32} {
				cases = append(cases, fmt.Sprintf("%04d-%02d-%02dT12:34:56Z", y, m, d))
			}
		}
	}
	return cases
}

func TestParseTimeMatchesReference(t *testing.T) {
	for _, s := range timeCases() {
		checkParseTime(t, s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		s := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", 1650+r.IntN(650), r.IntN(14), r.IntN(33), r.IntN(25), r.IntN(61), r.IntN(61))
		if n := r.IntN(12); n > 0 {
			s += "." + fmt.Sprintf("%012d", r.Int64N(1e12))[:n]
		}
		checkParseTime(t, s+"Z")
	}
}

// FuzzParseTime holds parseTime to what it gave before parseUTC.
//
//	go test -run XXX -fuzz FuzzParseTime -fuzztime 60s ./event
func FuzzParseTime(f *testing.F) {
	for _, s := range timeCases() {
		f.Add(s)
	}
	f.Fuzz(checkParseTime)
}
