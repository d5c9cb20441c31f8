package backtest

import (
	"bytes"
	"context"
	"testing"

	"github.com/leadpulse/leadpulse/traffic"
)

// BenchmarkSweep1M backtests 1,000,000 generated events (the traffic of
// engine's BenchmarkReplay1M) through the B2B rules with a sweep of 10
// hot-lead thresholds, in one replay (the default) and, for comparison, with
// a replay per threshold. Run it with -benchtime 1x:
//
//	go test -run '^$' -bench Sweep1M -benchtime 1x ./backtest/
func BenchmarkSweep1M(b *testing.B) {
	const n = 1_000_000
	g := traffic.New(traffic.Config{Contacts: 50_000, Seed: 11})
	var buf bytes.Buffer
	line := make([]byte, 0, 512)
	for range n {
		line = g.AppendJSON(line[:0])
		buf.Write(line)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	sw, err := ParseSweep("hot-lead=60:150:10")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name    string
		replays bool
	}{{"one-replay", false}, {"replay-per-threshold", true}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rep, err := Run(context.Background(), Options{Rules: b2bRules, Events: fromBytes(data), Conversion: demoRequested, Sweep: sw, Replays: mode.replays})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Summary.Applied != n || len(rep.Models[0].Sweep) != 10 {
					b.Fatalf("applied %d, %d thresholds", rep.Summary.Applied, len(rep.Models[0].Sweep))
				}
				b.ReportMetric(float64(rep.Replays), "replays")
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
