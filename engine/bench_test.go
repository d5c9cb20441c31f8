package engine

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/traffic"
)

// benchEvents returns n decoded events of the B2B generator.
func benchEvents(b *testing.B, n int) []*event.Event {
	b.Helper()
	g := traffic.New(traffic.Config{Contacts: 10_000, Seed: 7})
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

// benchLines returns n JSON lines of the B2B generator (the events of
// benchEvents) and sets b's bytes per op to their average size.
func benchLines(b *testing.B, n int) [][]byte {
	b.Helper()
	g := traffic.New(traffic.Config{Contacts: 10_000, Seed: 7})
	lines := make([][]byte, n)
	size := 0
	for i := range lines {
		lines[i] = g.AppendJSON(nil)
		size += len(lines[i])
	}
	b.SetBytes(int64(size / n))
	return lines
}

func loadB2B(b *testing.B) *rules.Ruleset {
	b.Helper()
	rs, err := rules.LoadFile("../examples/b2b-saas.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkApply is the per-event cost of the engine with the B2B example
// rules and the in-memory store, decoding excluded (see BenchmarkDecodeJSON).
// A ring of 20,000 generated events over 10,000 contacts is applied again and
// again, each round shifted later in time by the ring's span (and without
// messageIds, so that the repeats are not duplicates), so the heap holds the
// contacts, not b.N events.
//
// links=on resolves every event through a memory link table (identity, SPEC
// §6) as replay does; links=off keys by userId else anonymousId, as live
// processes do today. ahead=16 prefetches the contacts of the next 16
// events before applying them (Partition.Prefetch), as replay does.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		links bool
		ahead int
	}{{false, 0}, {true, 0}, {true, readAhead}} {
		links := bc.links
		name := "links=off"
		if links {
			name = "links=on"
		}
		if bc.ahead > 0 {
			name += fmt.Sprintf(",ahead=%d", bc.ahead)
		}
		b.Run(name, func(b *testing.B) {
			rs := loadB2B(b)
			evs := benchEvents(b, 20_000)
			span := evs[len(evs)-1].Time - evs[0].Time + 1
			for _, e := range evs {
				e.MessageID = ""
			}
			p := NewPartition(rs, state.NewMemory(), nil)
			if links {
				p.UseLinks(state.NewMemoryLinks())
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				k := i % len(evs)
				e := evs[k]
				if i > 0 && k == 0 {
					for _, e := range evs {
						e.Time += span
					}
				}
				if bc.ahead > 0 && k%bc.ahead == 0 {
					p.Prefetch(evs[k:min(k+bc.ahead, len(evs))])
				}
				if err := p.Apply(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0, b.N)
		})
	}
}

// BenchmarkDecodeJSON is the cost of decoding one generated event line.
func BenchmarkDecodeJSON(b *testing.B) {
	lines := benchLines(b, 4096)
	var e event.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := event.DecodeInto(&e, lines[i%len(lines)], event.JSON, 0); err != nil {
			b.Fatal(err)
		}
	}
}

var noLinks = flag.Bool("nolinks", false, "BenchmarkReplay1M: replay without identity links, as live processes do today")

// replayContacts sets BenchmarkReplay1M's population: a few hundred keep
// every contact's state in cache, which separates the engine's instructions
// from its waits for memory.
var replayContacts = flag.Int("contacts", 50_000, "BenchmarkReplay1M: contacts in the generated traffic")

// replayEvents sets BenchmarkReplay1M's length, for slow tools
// (valgrind) with -contacts at the same events per contact.
var replayEvents = flag.Int("events", 1_000_000, "BenchmarkReplay1M: events replayed")

// BenchmarkReplay1M replays 1,000,000 generated events (JSON lines) through
// the B2B rules end to end — decode, apply, timers, action output — and
// reports events/s. Run it with -benchtime 1x.
func BenchmarkReplay1M(b *testing.B) {
	n := *replayEvents
	rs := loadB2B(b)
	g := traffic.New(traffic.Config{Contacts: *replayContacts, Seed: 11})
	var buf bytes.Buffer
	line := make([]byte, 0, 512)
	for i := 0; i < n; i++ {
		line = g.AppendJSON(line[:0])
		buf.Write(line)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		sum, err := Replay(context.Background(), rs, bytes.NewReader(data), ReplayOptions{Out: io.Discard, NoLinks: *noLinks})
		if err != nil {
			b.Fatal(err)
		}
		if sum.Applied == 0 || sum.Bad != 0 {
			b.Fatalf("replay applied %d, bad %d", sum.Applied, sum.Bad)
		}
		b.ReportMetric(float64(sum.Applied), "events")
		b.ReportMetric(float64(sum.Emitted), "actions")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	if d := cpuTime() - cpu0; d > 0 {
		b.ReportMetric(float64(n*b.N)/d.Seconds(), "events/cpu-s")
	}
}

// reportCPU reports the process's CPU time per op since cpu0 (cpu-ns/op):
// unlike ns/op, it leaves out the time spent waiting for a core on a busy
// machine. It includes the garbage collector's work.
func reportCPU(b *testing.B, cpu0 time.Duration, n int) {
	if d := cpuTime() - cpu0; d > 0 && n > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(n), "cpu-ns/op")
	}
}

// BenchmarkDecodeRules is BenchmarkDecodeJSON with the Decoder settings
// replay uses for the B2B rules: `context` skipped and only the properties
// the rules read kept (rules.Ruleset.Reads); one reused Event.
func BenchmarkDecodeRules(b *testing.B) {
	rs := loadB2B(b)
	lines := benchLines(b, 4096)
	dec := event.Decoder{SkipContext: !rs.ReadsContext(), Select: rs.Reads()}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := dec.Decode(lines[i%len(lines)], event.JSON, 0); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0, b.N)
}

// BenchmarkApplyLive is BenchmarkApply as the stream workers apply events:
// ApplyLive with live identity, six partitions over one shared (locked)
// memory store, each applying a batch of 2,000 of its events in turn, as
// six workers take turns on the cores, so that a partition's contacts have
// left the caches when its next batch comes. ahead=16 prefetches the
// contacts of the next 16 events before applying them
// (Partition.PrefetchContacts), as the workers do with the memory store.
func BenchmarkApplyLive(b *testing.B) {
	const parts, batch = 6, 2000
	for _, ahead := range []int{0, readAhead} {
		b.Run(fmt.Sprintf("ahead=%d", ahead), func(b *testing.B) {
			rs := loadB2B(b)
			evs := benchEvents(b, 60_000)
			span := evs[len(evs)-1].Time - evs[0].Time + 1
			store := state.NewMemory()
			ps := make([]*Partition, parts)
			for i := range ps {
				ps[i] = NewPartition(rs, store, nil)
				ps[i].UseLiveLinks(func(string) bool { return false })
			}
			// Each partition's events, in order, keyed as the workers key
			// them (by the contact, as a hash of it would).
			byPart := make([][]*event.Event, parts)
			keys := make([][]string, parts)
			for _, e := range evs {
				e.MessageID = ""
				id := ps[0].ContactOf(e)
				k := int(fnv32(id) % parts)
				byPart[k] = append(byPart[k], e)
				keys[k] = append(keys[k], id)
			}
			ctx := context.Background()
			var offset int64
			for k, p := range ps { // the contacts exist before the timing starts
				for _, e := range byPart[k] {
					offset++
					le := LiveEvent{Event: e, Pos: state.Position{Partition: int32(k), Offset: offset}}
					if _, err := p.ApplyLive(ctx, &le); err != nil {
						b.Fatal(err)
					}
				}
				for _, e := range byPart[k] {
					e.Time += span
				}
			}
			next := make([]int, parts)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for n := 0; n < b.N; {
				for k, p := range ps {
					for j := 0; j < batch && n < b.N; j, n = j+1, n+1 {
						i := next[k]
						if i == len(byPart[k]) {
							for _, e := range byPart[k] {
								e.Time += span
							}
							i = 0
						}
						next[k] = i + 1
						if ahead > 0 && i%ahead == 0 {
							p.PrefetchContacts(keys[k][i:min(i+ahead, len(keys[k]))])
						}
						offset++
						le := LiveEvent{Event: byPart[k][i], Pos: state.Position{Partition: int32(k), Offset: offset}}
						if _, err := p.ApplyLive(ctx, &le); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			reportCPU(b, cpu0, b.N)
		})
	}
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// BenchmarkDecodeApplyLive is BenchmarkApplyLive with the decoding: each
// partition's turn is a batch of 4,000 records (JSON values laid out one
// after the other, as in a decompressed fetch) decoded into reused events
// and applied with ApplyLive, the stream worker's loop. chunk=4000 decodes
// the whole batch, then applies it; chunk=64 decodes and applies 64 records
// at a time, so that a record's value and decoded event are still cached
// when it is applied. Both prefetch 16 contacts ahead.
func BenchmarkDecodeApplyLive(b *testing.B) {
	const parts, batch = 6, 4000
	for _, chunk := range []int{batch, 64} {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			rs := loadB2B(b)
			g := traffic.New(traffic.Config{Contacts: 10_000, Seed: 7})
			ps := make([]*Partition, parts)
			store := state.NewMemory()
			decs := make([]event.Decoder, parts)
			for i := range ps {
				ps[i] = NewPartition(rs, store, nil)
				ps[i].UseLiveLinks(func(string) bool { return false })
				decs[i] = event.Decoder{SkipContext: !rs.ReadsContext(), Select: rs.Reads(), MaxSpare: 3 * batch}
			}
			// Each partition's records: one buffer of values, in order.
			type rec struct{ at, n int }
			bufs := make([][]byte, parts)
			recs := make([][]rec, parts)
			var probe event.Event
			for len(recs[0]) < 2*batch || len(recs[parts-1]) < 2*batch {
				line := g.AppendJSON(nil)
				if err := event.DecodeInto(&probe, line, event.JSON, 0); err != nil {
					b.Fatal(err)
				}
				k := int(fnv32(ps[0].ContactOf(&probe)) % parts)
				recs[k] = append(recs[k], rec{len(bufs[k]), len(line)})
				bufs[k] = append(bufs[k], line...)
			}
			evs := make([]event.Event, batch)
			ctx := context.Background()
			var offset int64
			next := make([]int, parts)
			turn := func(k int, count int) {
				p, dec := ps[k], &decs[k]
				keys := make([]string, 0, liveAheadBench)
				for from := 0; from < count; from += chunk {
					to := min(from+chunk, count)
					for j := from; j < to; j++ {
						r := recs[k][(next[k]+j)%len(recs[k])]
						if err := dec.DecodeInto(&evs[j], bufs[k][r.at:r.at+r.n], event.JSON, 0); err != nil {
							b.Fatal(err)
						}
						evs[j].MessageID = ""
					}
					for j := from; j < to; j++ {
						if (j-from)%liveAheadBench == 0 {
							keys = keys[:0]
							for i := j; i < min(j+liveAheadBench, to); i++ {
								keys = append(keys, p.ContactOf(&evs[i]))
							}
							p.PrefetchContacts(keys)
						}
						offset++
						le := LiveEvent{Event: &evs[j], Pos: state.Position{Partition: int32(k), Offset: offset}}
						if _, err := p.ApplyLive(ctx, &le); err != nil {
							b.Fatal(err)
						}
					}
				}
				for j := range evs[:count] {
					dec.Recycle(&evs[j])
				}
				next[k] += count
			}
			for k := range ps { // the contacts exist before the timing starts
				turn(k, batch)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for n := 0; n < b.N; {
				for k := range ps {
					c := min(batch, b.N-n)
					if c == 0 {
						break
					}
					turn(k, c)
					n += c
				}
			}
			reportCPU(b, cpu0, b.N)
		})
	}
}

// liveAheadBench is the stream worker's prefetch distance (stream.liveAhead).
const liveAheadBench = 16
