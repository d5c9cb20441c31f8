// Package bench is `leadpulse bench`: throughput and latency of
// the live pipeline, each beside its ceiling on the same hardware, the same
// broker and the same data.
//
// # One run
//
//  1. Preload: Config.Events generated events (package traffic) are produced
//     to the events topic, keyed by contact (murmur2, so the scoring stage
//     reads them directly) or unkeyed (through the ingest stage).
//  2. Raw consume ceiling: a plain franz-go consumer reads the same records
//     from the same broker, no decoding, no commits.
//  3. Drain (throughput): the pipeline (package stream, as `leadpulse dev`
//     wires it) starts and applies the backlog; the consumer lag is sampled
//     every 100ms, the records not yet taken into a scoring batch every
//     50ms, and the sustained rate is the slope of the latter from 90% to
//     10% of the backlog (committed offsets move in steps with Redis). CPU (getrusage, the whole process), heap allocation
//     (runtime/metrics), peak heap and RSS, the scoring batches and, with
//     Redis, the store's round trips (state.Redis stats) are taken over it.
//  4. Latency phases, one per Config.Rates: open loop at the offered rate
//     (Poisson arrivals) for Config.Duration. Every event carries its
//     scheduled send time as its `timestamp`; the scoring stage stamps each
//     action with the `at` of the event that caused it, so an action read
//     from the actions topic at time T took T − at: the event-to-action
//     latency, recorded in an HDR histogram. Actions of timer triggers
//     (absence, inactivity) are counted apart. The scoring stage also
//     reports each batch it applied (stream.Scoring.OnBatchApplied): every
//     event's time to the end of its batch's apply is the event-to-state
//     latency, a second histogram with a sample per event. Config.Samples
//     lengthens the phase until both hold that many samples, since a p99
//     of a few hundred actions is not a p99. A probe then measures one
//     produce→fetch hop of the same broker at the same rate: the floor of
//     each of the pipeline's hops.
//  5. Redis ceiling (with Config.Redis): pipelined SETs of as many real
//     encoded contacts of the run, in pipelines of the size the pipeline's
//     commits had, from as many connections as partitions.
//
// Event times are send times, so they follow the wall clock as in
// production (live timers, windows and cooldowns see real time). With the
// default 10,000 contacts every contact sends an event every few tens of
// milliseconds at full speed, so per-contact windows fill far faster than on
// a real site; raise Config.Contacts to thin them out.
//
// # Visitor turnover
//
// Visitors come and go (Config.Lifetime, traffic.Config.Lifetime; on by
// default): a simulated visitor leaves after about Lifetime events and a new
// visitor with a fresh id takes its place, so Contacts visitors are live at
// any time while new ones keep arriving, one per about Lifetime events.
// Without turnover the same visitors send every event of a phase of
// minutes, use up their triggers' cooldowns and caps, and the actions per
// event fall tenfold: a phase could not collect Config.Samples actions. With
// it they stay level; each latency phase reports them by minute
// (Phase.ByMinute) with its new visitors. The store keeps the contacts of
// the visitors who left (a real store keeps them until they expire), so it
// grows by about a contact per Lifetime events (State.Contacts at the end,
// Result.Visitors beside it), and the heap and RSS figures carry them.
//
// With the embedded broker (franz-go's kfake), the broker runs in this
// process: its CPU is in the CPU figures, its memory in the RSS, and the raw
// consume ceiling includes it too. The drained records are deleted from it
// before the latency phases, so that their heap does not slow the process
// beside them, and during the latency phases what every reader has consumed
// is deleted once a second, in 1 MiB segments (trimLoop): kfake keeps its
// log in this heap, which a real broker keeps on disk, and a phase of
// minutes grew it by gigabytes that every garbage collection marked.
//
// # Output
//
// Result is the figures; Result.WriteTable prints them with every figure
// beside its ceiling and their ratio (share of the ceiling reached), and
// Result.WriteJSON is `leadpulse bench --json`. RunMatrix runs every
// combination of partitions × batch size × rule count (ScaleRules) with a
// latency phase per rate and writes a CSV and charts (gonum.org/v1/plot).
//
// # Goroutines
//
// Run's goroutine drives the phases and produces the load (the franz-go
// client's goroutines deliver it); the pipeline runs in its own goroutines
// (package stream); the action reader (collector.run) and the monitor
// (monitor.run) have one goroutine each, started by Run and joined before it
// returns. The collector's and the monitor's fields are guarded by their mu.
package bench
