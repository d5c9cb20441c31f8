package event_test

import (
	stdjson "encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/traffic"
)

// benchEvents are Segment events of about 300 bytes as JSON.
var benchEvents = []struct{ name, json string }{
	{"page", `{"type":"page","userId":"u-18342","anonymousId":"3f1c9a2e-5b7d-4c1e-9a8f-2d6b4e0c7a11","name":"Pricing",` +
		`"properties":{"path":"/pricing","url":"https://example.com/pricing?plan=pro","title":"Pricing","referrer":"https://www.google.com/"},` +
		`"context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0"},"messageId":"m-7a1c","timestamp":"2026-03-02T09:00:00.123Z"}`},
	{"track", `{"type":"track","userId":"u-18342","event":"Product Added",` +
		`"properties":{"sku":"SKU-42","price":19.99,"quantity":2,"category":"plans","tags":["annual","pro"]},` +
		`"context":{"ip":"203.0.113.7","campaign":{"source":"newsletter","medium":"email"}},` +
		`"messageId":"m-7a1d","timestamp":"2026-03-02T09:01:00Z","originalTimestamp":"2026-03-02T09:00:59Z"}`},
}

// BenchmarkDecode compares the package's decoders (goccy/go-json for JSON, a
// hand-written msgpack reader) with encoding/json and with msgpack's
// reflection decoder, each into an Event and resolved.
//
//	go test -run XXX -bench BenchmarkDecode -benchmem ./event
func BenchmarkDecode(b *testing.B) {
	for _, ev := range benchEvents {
		js := []byte(ev.json)
		mp := mustMsgpack(b, ev.json)
		b.Run(ev.name+"/goccy-json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(js)))
			for b.Loop() {
				if _, err := event.Decode(js, event.Auto, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(ev.name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(js)))
			for b.Loop() {
				e := new(event.Event)
				if err := stdjson.Unmarshal(js, e); err != nil {
					b.Fatal(err)
				}
				if err := e.Resolve(0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(ev.name+"/msgpack", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(mp)))
			for b.Loop() {
				if _, err := event.Decode(mp, event.Auto, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(ev.name+"/msgpack-reflect", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(mp)))
			for b.Loop() {
				e := new(event.Event)
				if err := msgpack.Unmarshal(mp, e); err != nil {
					b.Fatal(err)
				}
				if err := e.Resolve(0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeInto is the replay and live path: one Event reused.
func BenchmarkDecodeInto(b *testing.B) {
	js := []byte(benchEvents[0].json)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(js)))
	defer reportCPU(b)()
	for b.Loop() {
		if err := event.DecodeInto(&e, js, event.Auto, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process's CPU time per op (cpu-ns/op, GC included)
// beside ns/op: on a machine shared with other work, wall time per op
// varies with the load and CPU time much less. Use as defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecodeIntoReference is BenchmarkDecodeInto with the previous
// decoder (goccy/go-json into the struct, ref_test.go), for a before/after
// in one run.
func BenchmarkDecodeIntoReference(b *testing.B) {
	js := []byte(benchEvents[0].json)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(js)))
	defer reportCPU(b)()
	for b.Loop() {
		e = event.Event{}
		if err := event.RefDecodeInto(&e, js, event.Auto, 0, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeIntoSkipContext is the live path when no rule reads
// `context`.
func BenchmarkDecodeIntoSkipContext(b *testing.B) {
	for _, ev := range benchEvents {
		js := []byte(ev.json)
		b.Run(ev.name, func(b *testing.B) {
			var e event.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(js)))
			defer reportCPU(b)()
			for b.Loop() {
				if err := event.DecodeIntoSkipContext(&e, js, event.Auto, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeTraffic decodes the bench's generated traffic (B2B mix,
// 10,000 contacts; 20,000 distinct events in a cycle), the realistic case
// for interning, with the package's decoder and with the previous one.
func BenchmarkDecodeTraffic(b *testing.B) {
	g := traffic.New(traffic.Config{Contacts: 10000, Seed: 1})
	lines := make([][]byte, 20000)
	for i := range lines {
		lines[i] = g.AppendJSON(nil)
	}
	for _, skip := range []bool{false, true} {
		name := "context"
		if skip {
			name = "skip-context"
		}
		b.Run(name, func(b *testing.B) {
			var e event.Event
			b.ReportAllocs()
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				var err error
				if skip {
					err = event.DecodeIntoSkipContext(&e, lines[i%len(lines)], event.JSON, 0)
				} else {
					err = event.DecodeInto(&e, lines[i%len(lines)], event.JSON, 0)
				}
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		// As the stream worker decodes: a batch of events kept until it is
		// applied, then recycled, their maps decoding the next batch.
		b.Run(name+"/decoder-batch", func(b *testing.B) {
			decodeBatches(b, &event.Decoder{SkipContext: skip, MaxSpare: 3 * 4000}, lines)
		})
		b.Run(name+"/reference", func(b *testing.B) {
			var e event.Event
			b.ReportAllocs()
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				e = event.Event{}
				if err := event.RefDecodeInto(&e, lines[i%len(lines)], event.JSON, 0, skip); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// b2bSelect is what the B2B example's rules read (rules.Ruleset.Reads):
// three properties, every trait, no context.
var b2bSelect = event.Select{Properties: event.OnlyKeys("form", "minutes", "path"), Context: event.OnlyKeys()}

// BenchmarkDecodeSelect is BenchmarkDecodeTraffic's decoder-batch case as
// the stream worker and replay decode for the B2B rules: context skipped,
// only the properties the rules read built (Decoder.Select).
func BenchmarkDecodeSelect(b *testing.B) {
	g := traffic.New(traffic.Config{Contacts: 10000, Seed: 1})
	all := make([][]byte, 20000)
	for i := range all {
		all[i] = g.AppendJSON(nil)
	}
	// cached: 64 records, which stay in the CPU's caches as a batch just
	// fetched and decompressed does; 20000: 10 MB of records, read from
	// memory.
	for _, n := range []int{64, len(all)} {
		lines := all[:n]
		name := "cached"
		if n == len(all) {
			name = "20000"
		}
		for _, sel := range []struct {
			name string
			sel  event.Select
		}{{"all", event.Select{}}, {"b2b", b2bSelect}} {
			b.Run(name+"/"+sel.name, func(b *testing.B) {
				decodeBatches(b, &event.Decoder{SkipContext: true, Select: sel.sel, MaxSpare: 3 * 4000}, lines)
			})
		}
	}
}

// decodeBatches decodes lines with d as a stream worker does: a batch of
// 4,000 events kept until it is applied, then recycled, their maps
// decoding the next batch.
func decodeBatches(b *testing.B, d *event.Decoder, lines [][]byte) {
	evs := make([]event.Event, 4000)
	b.ReportAllocs()
	defer reportCPU(b)()
	i := 0
	for b.Loop() {
		e := &evs[i%len(evs)]
		if err := d.DecodeInto(e, lines[i%len(lines)], event.JSON, 0); err != nil {
			b.Fatal(err)
		}
		i++
		if i%len(evs) == 0 {
			for j := range evs {
				d.Recycle(&evs[j])
			}
		}
	}
}
