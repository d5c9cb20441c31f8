package bench

import (
	"bytes"
	"math"
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

// `leadpulse bench --merge both` ends with the two runs side by side: per
// latency phase, the applied and action p50 / p99 of each run at the same
// offered rate, and the hand-overs of the run with merging (bucket bounds).
func TestMergeComparison(t *testing.T) {
	phase := func(applied, action float64, hand *BucketLatency) *Phase {
		return &Phase{Name: "rate", OfferedPerSec: 5000, Events: 50000, EventsPerSec: 4990,
			AppliedMS: &Latency{Count: 50000, P50: applied, P99: 2 * applied},
			LatencyMS: &Latency{Count: 300, P50: action, P99: 2 * action}, HandoverMS: hand}
	}
	on := &Result{Drain: &Phase{EventsPerSec: 30000, CPUMicrosPerEvent: 12}, Rates: []*Phase{phase(1.25, 3.5, &BucketLatency{Count: 120, P50LE: 2.5, P99LE: 25})}}
	off := &Result{Drain: &Phase{EventsPerSec: 31000, CPUMicrosPerEvent: 10}, Rates: []*Phase{phase(1.5, 4.25, nil)}}
	var b bytes.Buffer
	if err := WriteMergeComparison(&b, on, off); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"applied p50 / p99 ms at 5,000/s  1.25 / 2.50  1.50 / 3.00",
		"action p50 / p99 ms at 5,000/s  3.50 / 7.00  4.25 / 8.50",
		"120, ≤ 2.50 / ≤ 25.00",
		"30,000", "31,000",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
}

// bucketLatency reads the quantiles of what a histogram observed between
// two snapshots: the bounds of the buckets holding p50 and p99, in ms.
func TestBucketLatency(t *testing.T) {
	inf := math.Inf(1)
	before := map[float64]uint64{.001: 5, .0025: 5, .025: 5, inf: 5}
	after := map[float64]uint64{.001: 5, .0025: 60, .025: 104, inf: 105}
	got := bucketLatency(before, after)
	if got == nil || got.Count != 100 || got.P50LE != 2.5 || got.P99LE != 25 {
		t.Errorf("bucketLatency = %+v, want 100 samples, p50 ≤ 2.5 ms, p99 ≤ 25 ms", got)
	}
	if bucketLatency(after, after) != nil {
		t.Error("no samples between the snapshots: want nil")
	}
}
