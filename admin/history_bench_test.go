package admin_test

import (
	"strconv"
	"testing"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
)

// BenchmarkHistoryApplied is the cost the History adds to each applied
// event (stream.Scoring.OnApplied), from several partitions at once.
// "held": the contacts fit (the usual case); "churn": twice as many
// contacts as kept, so that every event evicts one.
func BenchmarkHistoryApplied(b *testing.B) {
	for _, bc := range []struct {
		name     string
		contacts int
	}{{"held", 5000}, {"churn", 20000}} {
		b.Run(bc.name, func(b *testing.B) { benchApplied(b, bc.contacts) })
	}
}

func benchApplied(b *testing.B, contacts int) {
	h := admin.NewHistory(admin.HistoryOptions{})
	evs := make([]event.Event, 50000)
	for i := range evs {
		evs[i] = event.Event{Type: "page", UserID: "u" + strconv.Itoa(i%contacts), Time: int64(i) * 1e9,
			Properties: map[string]any{"path": "/pricing"}}
	}
	awards := []rules.Award{{Rule: "pricing", Points: 10}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e := &evs[i%len(evs)]
			h.Applied(&rules.Result{Event: e, Contact: e.UserID, Awards: awards})
			i++
		}
	})
}
