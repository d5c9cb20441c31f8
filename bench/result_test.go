package bench

import (
	"bytes"
	"strings"
	"testing"
)

// A latency phase in which no action fired measured no latency: the table
// says n/a rather than 0 ms, and the matrix CSV leaves the cells empty. Each
// phase has two rows, event → state applied then event → action read, each
// with its sample count.
func TestPhaseWithoutActionsPrintsNA(t *testing.T) {
	withActions := &Phase{Name: "rate", OfferedPerSec: 5000, Events: 25000, EventsPerSec: 5000, Actions: 40,
		LatencyMS: &Latency{Count: 40, P50: 1.5, P90: 2, P99: 3.25, P999: 4, Max: 5},
		AppliedMS: &Latency{Count: 25000, P50: 0.5, P90: 0.75, P99: 1.25, P999: 2, Max: 3}}
	none := &Phase{Name: "rate", OfferedPerSec: 100, Events: 500, EventsPerSec: 100,
		AppliedMS: &Latency{Count: 500, P50: 0.5, P90: 0.75, P99: 1.5, P999: 2, Max: 3}}
	res := &Result{Store: "memory", Broker: "kfake", Rates: []*Phase{withActions, none}}

	var b bytes.Buffer
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	rows := map[string][2]string{} // offered rate → applied row, action row
	lines := strings.Split(b.String(), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "applied" && i+1 < len(lines) {
			rows[f[0]] = [2]string{line, lines[i+1]}
		}
	}
	with, no := rows["5,000"], rows["100"]
	if !strings.Contains(with[0], "25,000") || !strings.Contains(with[0], "1.25") {
		t.Errorf("applied row of a phase: %q\n%s", with[0], b.String())
	}
	if f := strings.Fields(with[1]); len(f) == 0 || f[0] != "action" || !strings.Contains(with[1], "3.25") || strings.Contains(with[1], "n/a") {
		t.Errorf("action row of a phase with actions: %q\n%s", with[1], b.String())
	}
	if !strings.Contains(no[0], "1.50") || strings.Contains(no[0], "n/a") {
		t.Errorf("applied row of a phase without actions: %q", no[0])
	}
	if strings.Count(no[1], "n/a") != 5 || strings.Contains(no[1], "0.00") {
		t.Errorf("phase without actions: want n/a for p50, p90, p99, p99.9 and max, got %q\n%s", no[1], b.String())
	}
}
