package bench

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The requests a phase reports are those written between its two
// snapshots, per event, most first, and the table line gives their sum
// and every kind of at least 0.001 per event.
func TestRequestsPerEvent(t *testing.T) {
	q := newRequests()
	write := func(client string, key kmsg.Key, n int) {
		h := requestHook{q, client}
		for range n {
			h.OnBrokerWrite(kgo.BrokerMetadata{}, int16(key), 100, 0, time.Microsecond, nil)
		}
	}
	write("load", kmsg.Produce, 7) // before the phase
	a := q.snapshot()
	write("load", kmsg.Produce, 400)
	write("pipeline", kmsg.Fetch, 300)
	write("pipeline", kmsg.OffsetCommit, 10)
	write("bench", kmsg.ListOffsets, 1) // 0.0001 per event: counted, not printed
	got := perEvent(a, q.snapshot(), 10_000)
	want := []RequestRate{
		{"load", "Produce", 400, 0.04},
		{"pipeline", "Fetch", 300, 0.03},
		{"pipeline", "OffsetCommit", 10, 0.001},
		{"bench", "ListOffsets", 1, 0.0001},
	}
	if len(got) != len(want) {
		t.Fatalf("perEvent = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("perEvent[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if line, want := requestLine(got), " 0.071 in all: load Produce 0.040, pipeline Fetch 0.030, pipeline OffsetCommit 0.001"; line != want {
		t.Errorf("requestLine = %q, want %q", line, want)
	}
	if perEvent(a, q.snapshot(), 0) != nil {
		t.Error("perEvent of a phase without events: want nil")
	}
}
