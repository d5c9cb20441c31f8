package bench

import (
	"bytes"
	"strings"
	"testing"
)

// A latency phase in which no action fired measured no latency: the table
// says n/a rather than 0 ms, and the matrix CSV leaves the cells empty.
func TestPhaseWithoutActionsPrintsNA(t *testing.T) {
	withActions := &Phase{Name: "rate", OfferedPerSec: 5000, Events: 25000, EventsPerSec: 5000, Actions: 40,
		LatencyMS: &Latency{Count: 40, P50: 1.5, P90: 2, P99: 3.25, P999: 4, Max: 5}}
	none := &Phase{Name: "rate", OfferedPerSec: 100, Events: 500, EventsPerSec: 100}
	res := &Result{Store: "memory", Broker: "kfake", Rates: []*Phase{withActions, none}}

	var b bytes.Buffer
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	var rowWith, rowNone string
	for line := range strings.SplitSeq(b.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "5,000":
			rowWith = line
		case len(f) > 0 && f[0] == "100":
			rowNone = line
		}
	}
	if !strings.Contains(rowWith, "3.25") || strings.Contains(rowWith, "n/a") {
		t.Errorf("phase with actions: %q", rowWith)
	}
	if strings.Count(rowNone, "n/a") != 5 || strings.Contains(rowNone, "0.00") {
		t.Errorf("phase without actions: want n/a for p50, p90, p99, p99.9 and max, got %q\n%s", rowNone, b.String())
	}
}
