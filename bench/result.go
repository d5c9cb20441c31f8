package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is one bench run: its setup, its figures and their ceilings. It is
// what `leadpulse bench --json` prints.
//
// The top-level figures summarise the phases: Events, Seconds and
// EventsPerSec are the throughput phase's (EventsPerSec its sustained rate,
// see Phase) or, when it was skipped, the latency phases' together; LatencyMS is the first latency phase's; every
// Ratio is the share of the ceiling reached (1 = at the ceiling): a rate
// divided by its ceiling, or a cost's floor divided by the cost.
type Result struct {
	Events              int64    `json:"events"`
	Seconds             float64  `json:"seconds"`
	EventsPerSec        float64  `json:"events_per_sec"`
	CeilingEventsPerSec float64  `json:"ceiling_events_per_sec"`
	Ratio               float64  `json:"ratio"`
	LatencyMS           *Latency `json:"latency_ms"`
	// AppliedLatencyMS is the first latency phase's event → state applied
	// (every event), beside LatencyMS's event → action read (every action).
	AppliedLatencyMS *Latency `json:"applied_latency_ms"`
	// StateBytesPerContact is the mean encoded size of a contact's state
	// at the end of the run (State.BlobBytes).
	StateBytesPerContact int     `json:"state_bytes_per_contact"`
	CPUMicrosPerEvent    float64 `json:"cpu_us_per_event"`
	AllocBytesPerEvent   float64 `json:"alloc_bytes_per_event"`
	PeakHeapBytes        uint64  `json:"peak_heap_bytes"`
	PeakRSSBytes         uint64  `json:"peak_rss_bytes"`

	Store      string `json:"store"` // memory | redis
	Rules      string `json:"rules"`
	RuleCopies int    `json:"rule_copies"`
	Triggers   int    `json:"triggers"`
	Scoring    int    `json:"scoring_rules"`
	Partitions int    `json:"partitions"`
	Batch      int    `json:"batch_records"`
	Keyed      bool   `json:"keyed"`
	// Transactions: the ingest hop ran in Kafka transactions (unkeyed runs).
	Transactions bool `json:"transactions"`
	// Merge: identity merging was on (the rules' identity.merge).
	Merge     bool    `json:"identity_merge"`
	Broker    string  `json:"broker"` // "embedded (kfake)" or the seed brokers
	Contacts  int     `json:"contacts"`
	Zipf      float64 `json:"zipf"`
	Mix       string  `json:"mix"`
	Anonymous float64 `json:"anonymous_share"`
	// Lifetime is the mean events a simulated visitor sent before leaving
	// (Config.Lifetime); 0: no turnover, the same Contacts visitors all
	// along.
	Lifetime int `json:"visitor_lifetime_events"`
	// Visitors is how many distinct simulated visitors sent events over
	// the run: Contacts at most without turnover, more with it.
	Visitors   int `json:"visitors"`
	GOMAXPROCS int `json:"gomaxprocs"`
	// GOGC is the garbage collector's GOGC of the run (the environment
	// variable; "100", Go's default, when unset).
	GOGC    string `json:"gogc"`
	Started string `json:"started"` // RFC 3339

	// Preload is the producer's rate while loading the throughput phase's
	// events (before the pipeline starts).
	PreloadEventsPerSec float64 `json:"preload_events_per_sec,omitempty"`
	// Ceiling is the raw consume of the same records from the same broker.
	Ceiling *Ceiling `json:"ceiling"`
	// Drain is the throughput phase; nil when skipped.
	Drain *Phase `json:"drain,omitempty"`
	// Rates are the latency phases, in the order run.
	Rates []*Phase `json:"rates"`
	// Redis holds the store's figures and the raw write ceiling; nil with
	// the memory store.
	Redis *RedisFigures `json:"redis,omitempty"`
	// State describes the contacts the run left: count and encoded size.
	State StateFigures `json:"state"`
	// ActionsTotal counts every action read from the actions topic;
	// ActionsFromTimers those of absence/inactivity triggers (not
	// measured), ActionsUnmatched those whose `at` fell in no phase.
	ActionsTotal     int64 `json:"actions_total"`
	ActionsFromTimer int64 `json:"actions_from_timers"`
	ActionsUnmatched int64 `json:"actions_unmatched"`
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

func latencyOf(h *hdrhistogram.Histogram) *Latency {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &Latency{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() / 1000,
	}
}

// BucketLatency is a latency read from a Prometheus histogram: its
// quantiles are the upper bounds (ms) of the buckets that hold them.
type BucketLatency struct {
	Count int64   `json:"count"`
	P50LE float64 `json:"p50_le"`
	P99LE float64 `json:"p99_le"`
}

// Phase is one measured phase: the throughput drain, or a latency phase at
// an offered rate.
type Phase struct {
	// Name is "drain" or "rate".
	Name string `json:"name"`
	// OfferedPerSec is the open-loop rate (latency phases).
	OfferedPerSec float64 `json:"offered_events_per_sec,omitempty"`
	Events        int64   `json:"events"`
	// Seconds runs from the first record read (drain) or the first record
	// sent (rate) to the moment the scoring stage had committed all of them.
	Seconds float64 `json:"seconds"`
	// EventsPerSec is, in the drain, the sustained rate: the slope of the
	// consumer lag from 90% to 10% of the backlog (Sustained true), which
	// leaves out the start (groups joining, cold contacts) and the tail
	// (partitions finishing at different times); OverallPerSec is
	// Events/Seconds. In a latency phase both are Events/Seconds.
	EventsPerSec  float64 `json:"events_per_sec"`
	OverallPerSec float64 `json:"overall_events_per_sec"`
	Sustained     bool    `json:"sustained"`
	Actions       int64   `json:"actions"`
	// LatencyMS is event produce time → action read from the actions
	// topic. In the drain every event waits in the preloaded backlog, so
	// it mostly measures the backlog; the latency phases measure the
	// pipeline.
	LatencyMS *Latency `json:"latency_ms"`
	// AppliedMS is event time → state applied, for every event of the
	// phase: the scoring stage's batch holding the event was applied by
	// the engine (contacts changed in the memory store, or in the
	// partition's cache before its Redis commit). Its Count is the events
	// sampled; LatencyMS's Count the actions.
	AppliedMS *Latency `json:"applied_latency_ms"`
	// SamplesWanted is Config.Samples: the phase ran until it had this
	// many samples of each latency, or 10 minutes (0: it ran for
	// Config.Duration).
	SamplesWanted int `json:"samples_wanted,omitempty"`
	// NewVisitors is the simulated visitors first seen in the phase: with
	// turnover (Config.Lifetime) those who arrived as others left.
	NewVisitors int64 `json:"new_visitors"`
	// ByMinute is the phase's events and actions by minute of the events'
	// stamps: the actions per event should stay level over a long phase
	// (with turnover); the last minute may be partial.
	ByMinute []MinuteCount `json:"by_minute,omitempty"`
	// HopFloorMS is one produce→fetch hop of the same broker at the same
	// rate with plain clients; the pipeline has two hops (three unkeyed).
	HopFloorMS *Latency `json:"hop_floor_ms,omitempty"`
	// ProducerBehindMS is how late the open-loop producer sent at worst.
	ProducerBehindMS float64 `json:"producer_behind_ms,omitempty"`
	// SendLateMS is, for every event of a latency phase, how late the
	// open-loop producer handed it to its Kafka client: its due time (its
	// stamp) → Produce. It is the wait of a goroutine that sleeps until a
	// due time and then needs a core, in this process on this machine: a
	// floor under every latency of the phase, which the pipeline does
	// not cause (an event sent 20 ms late is applied 20 ms late at best).
	SendLateMS *Latency `json:"send_late_ms,omitempty"`
	// HandoverMS is the identity hand-overs of the phase (SPEC §6, live):
	// a link request produced by the user's partition → the anonymous
	// id's answer applied there (leadpulse_identity_handover_seconds);
	// nil when there were none (merging off, or no identify). In the drain
	// a request waits behind the anonymous id's partition's backlog.
	HandoverMS *BucketLatency `json:"handover_ms,omitempty"`
	// Requests are the Kafka requests the run's clients sent during a
	// latency phase (from its first event until the pipeline had committed
	// the last), per event sent, by client and request, most first.
	Requests []RequestRate `json:"requests_per_event,omitempty"`
	// HeldRecords is the records held behind a parked user until its
	// hand-over completed (leadpulse_identity_held_events_total): in the
	// drain read with the backlog, applied after it; in a latency phase
	// applied two broker hops (the link request and its answer) after
	// their partition read them.
	HeldRecords int64 `json:"held_records,omitempty"`

	CPUSeconds         float64 `json:"cpu_seconds"`
	CPUMicrosPerEvent  float64 `json:"cpu_us_per_event"`
	AllocBytesPerEvent float64 `json:"alloc_bytes_per_event"`
	AllocsPerEvent     float64 `json:"allocs_per_event"`
	PeakHeapBytes      uint64  `json:"peak_heap_bytes"`
	PeakRSSBytes       uint64  `json:"peak_rss_bytes"`

	// Batches is the scoring stage's batches; RecordsPerBatch their mean
	// size and BatchMS their mean duration (apply + produce + commits).
	Batches         int64   `json:"batches"`
	RecordsPerBatch float64 `json:"records_per_batch"`
	BatchMS         float64 `json:"batch_ms"`

	LagMax   int64       `json:"lag_max_records"`
	LagMean  float64     `json:"lag_mean_records"`
	LagFinal int64       `json:"lag_final_records"`
	Lag      []LagSample `json:"lag,omitempty"`

	Redis *RedisPhase `json:"redis,omitempty"`
}

// MinuteCount is one minute of a phase: the events stamped in it (applied)
// and the actions they caused (timer triggers' left out).
type MinuteCount struct {
	Minute        int     `json:"minute"`
	Events        int64   `json:"events"`
	Actions       int64   `json:"actions"`
	ActionsPer10k float64 `json:"actions_per_10k_events"`
}

// RedisPhase is the Redis store's work in a phase (state.RedisStats).
type RedisPhase struct {
	// Commits is the write round trips (one pipelined compare-and-set per
	// batch with changes).
	Commits uint64 `json:"commits"`
	Written uint64 `json:"contacts_written"`
	Loaded  uint64 `json:"contacts_loaded"`
	// LoadWaits are the load round trips a partition waited for (Prefetch
	// of a batch's misses; not the loads ahead), LoadWaitMS their summed
	// time over the partitions, LoadWaitsPerBatch the share of batches
	// that waited for one; LoadsSkipped the contacts the new-contact
	// filter showed were not stored, so not loaded.
	LoadWaits         uint64  `json:"load_waits"`
	LoadWaitMS        float64 `json:"load_wait_ms"`
	LoadWaitsPerBatch float64 `json:"load_waits_per_batch"`
	LoadsSkipped      uint64  `json:"loads_skipped"`
	// WriteRoundTripsPerBatch is Commits per scoring batch; a batch also
	// makes at most one read round trip (Prefetch of its cache misses),
	// which state.Redis does not count.
	WriteRoundTripsPerBatch float64 `json:"write_round_trips_per_batch"`
	WrittenPerBatch         float64 `json:"contacts_written_per_batch"`
	LoadedPerBatch          float64 `json:"contacts_loaded_per_batch"`
	WrittenPerSec           float64 `json:"contacts_written_per_sec"`
	// ServerCPUMicrosPerEvent is the CPU the Redis server used during the
	// phase (INFO cpu: used_cpu_user + used_cpu_sys) per event: on the
	// same host as the pipeline it competes for the same cores. 0 when
	// INFO is refused (ACL without +info).
	ServerCPUMicrosPerEvent float64 `json:"server_cpu_us_per_event"`
}

// RedisFigures are the Redis store's figures beside the raw write ceiling.
type RedisFigures struct {
	Addr string `json:"addr"`
	// Ceiling is the raw pipelined SET rate of as many real blobs.
	Ceiling *Ceiling `json:"ceiling"`
	// WrittenPerSec is the pipeline's contact writes per second in the
	// throughput phase (or the first latency phase).
	WrittenPerSec float64 `json:"contacts_written_per_sec"`
	Ratio         float64 `json:"ratio"`
}

// StateFigures describe the stored contacts at the end of the run. The
// store keeps the contacts of visitors who left (turnover), as a real one
// does until they expire: Contacts grows with the new visitors.
type StateFigures struct {
	Contacts  int `json:"contacts"` // memory store only
	BlobBytes int `json:"mean_blob_bytes"`
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as a readable table: every figure beside its ceiling
// and their ratio.
func (r *Result) WriteTable(w io.Writer) error {
	p := &printer{w: w}
	keyed := "keyed by contact (ingest hop skipped)"
	if !r.Keyed {
		keyed = "unkeyed (through the ingest hop, without transactions)"
		if r.Transactions {
			keyed = "unkeyed (through the ingest hop, in transactions)"
		}
	}
	skew := "uniform"
	if r.Zipf > 0 {
		skew = fmt.Sprintf("zipf %.2f", r.Zipf)
	}
	p.f("leadpulse bench  %s\n", r.Started)
	p.f("  broker  %s, %d partitions; store %s; GOMAXPROCS %d, GOGC %s\n", r.Broker, r.Partitions, r.Store, r.GOMAXPROCS, cmp.Or(r.GOGC, "100"))
	merge := "identity merge on"
	if !r.Merge {
		merge = "identity merge off"
	}
	p.f("  rules   %s ×%d (%d scoring rules, %d triggers; %s); batch %d records\n", r.Rules, r.RuleCopies, r.Scoring, r.Triggers, merge, r.Batch)
	p.f("  load    %s contacts, %s, %s mix, %.0f%% anonymous, %s\n", num(float64(r.Contacts)), skew, r.Mix, r.Anonymous*100, keyed)
	if r.Lifetime > 0 {
		p.f("  visitors  turnover: a visitor leaves after %s events (mean) and a new one takes its place; %s visitors in all\n", num(float64(r.Lifetime)), num(float64(r.Visitors)))
	} else {
		p.f("  visitors  no turnover: the same %s visitors all along (%s seen)\n", num(float64(r.Contacts)), num(float64(r.Visitors)))
	}
	if r.State.BlobBytes > 0 {
		grows := ""
		if r.Lifetime > 0 {
			grows = " (the store keeps the visitors who left: it grows with new visitors)"
		}
		if r.State.Contacts > 0 {
			p.f("  state   %s contacts at the end%s, %s B per encoded contact (mean)\n", num(float64(r.State.Contacts)), grows, num(float64(r.State.BlobBytes)))
		} else {
			p.f("  state   %s B per encoded contact (mean)%s\n", num(float64(r.State.BlobBytes)), grows)
		}
	}
	p.f("\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if d := r.Drain; d != nil {
		p.f("throughput: %s events produced first (%s events/s), then drained by the pipeline\n", num(float64(d.Events)), num(r.PreloadEventsPerSec))
		fmt.Fprintf(tw, "figure\tpipeline\tceiling\tratio\t\n")
		if c := r.Ceiling; c != nil {
			fmt.Fprintf(tw, "events/s sustained\t%s\t%s\t%.2f\t\n", num(d.EventsPerSec), num(c.PerSec), ratio(d.EventsPerSec, c.PerSec))
			fmt.Fprintf(tw, "events/s whole drain\t%s\t%s\t%.2f\t\n", num(d.OverallPerSec), num(c.PerSec), ratio(d.OverallPerSec, c.PerSec))
			fmt.Fprintf(tw, "CPU µs/event\t%.1f\t%.1f\t%.2f\t\n", d.CPUMicrosPerEvent, c.CPUMicrosPerOp, ratio(c.CPUMicrosPerOp, d.CPUMicrosPerEvent))
		} else {
			fmt.Fprintf(tw, "events/s\t%s\t-\t-\t\n", num(d.EventsPerSec))
			fmt.Fprintf(tw, "CPU µs/event\t%.1f\t-\t-\t\n", d.CPUMicrosPerEvent)
		}
		fmt.Fprintf(tw, "alloc B/event\t%s\t\t\t\n", num(d.AllocBytesPerEvent))
		fmt.Fprintf(tw, "allocs/event\t%.1f\t\t\t\n", d.AllocsPerEvent)
		fmt.Fprintf(tw, "peak heap\t%s\t\t\t\n", mib(d.PeakHeapBytes))
		fmt.Fprintf(tw, "peak RSS (process)\t%s\t\t\t\n", mib(d.PeakRSSBytes))
		if r.StateBytesPerContact > 0 {
			fmt.Fprintf(tw, "state B/contact (encoded)\t%s\t\t\t\n", num(float64(r.StateBytesPerContact)))
		}
		fmt.Fprintf(tw, "batches (mean size, ms)\t%s (%.0f, %.2f ms)\t\t\t\n", num(float64(d.Batches)), d.RecordsPerBatch, d.BatchMS)
		fmt.Fprintf(tw, "lag max / mean / end\t%s / %s / %s\t\t\t\n", num(float64(d.LagMax)), num(d.LagMean), num(float64(d.LagFinal)))
		fmt.Fprintf(tw, "actions\t%s\t\t\t\n", num(float64(d.Actions)))
		if rp := d.Redis; rp != nil {
			redisRows(tw, rp, r.Redis)
		}
		tw.Flush()
		if h := d.HandoverMS; h != nil {
			p.f("  identity hand-overs in the drain: %s, p50 ≤ %s ms, p99 ≤ %s ms (bucket bounds; a link request waits behind the anonymous id's partition's backlog); %s records (%.0f%%) held behind parked users, applied after their hand-over\n",
				num(float64(h.Count)), ms2(h.P50LE), ms2(h.P99LE), num(float64(d.HeldRecords)), 100*float64(d.HeldRecords)/float64(max(d.Events, 1)))
		}
		if c := r.Ceiling; c != nil {
			p.f("  ceiling: %s\n", c.What)
		}
		p.f("\n")
	}
	if len(r.Rates) > 0 {
		p.f("latency (open loop, Poisson arrivals), ms: event → state applied (every event), event produced → action read from the actions topic (every action)\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "offered/s\tachieved/s\tlatency\tsamples\tp50\tp90\tp99\tp99.9\tmax\thop p99\tCPU µs/ev\trecs/batch\tlag max\t\n")
		for _, ph := range r.Rates {
			hop := "-"
			if ph.HopFloorMS != nil {
				hop = ms2(ph.HopFloorMS.P99)
			}
			for i, row := range []struct {
				name string
				l    *Latency
			}{{"applied", ph.AppliedMS}, {"action", ph.LatencyMS}} {
				// A phase without samples measured no latency: n/a, not 0 ms.
				var n int64
				p50, p90, p99, p999, pmax := "n/a", "n/a", "n/a", "n/a", "n/a"
				if l := row.l; l != nil && l.Count > 0 {
					n = l.Count
					p50, p90, p99, p999, pmax = ms2(l.P50), ms2(l.P90), ms2(l.P99), ms2(l.P999), ms2(l.Max)
				}
				if i == 0 {
					fmt.Fprintf(tw, "%s\t%s\t", num(ph.OfferedPerSec), num(ph.EventsPerSec))
				} else {
					fmt.Fprintf(tw, "\t\t")
				}
				low := ""
				if ph.SamplesWanted > 0 && n < int64(ph.SamplesWanted) {
					low = " (<" + num(float64(ph.SamplesWanted)) + ")"
				}
				fmt.Fprintf(tw, "%s\t%s%s\t%s\t%s\t%s\t%s\t%s\t", row.name, num(float64(n)), low, p50, p90, p99, p999, pmax)
				if i == 0 {
					fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%s\t\n", hop, ph.CPUMicrosPerEvent, ph.RecordsPerBatch, num(float64(ph.LagMax)))
				} else {
					fmt.Fprintf(tw, "\t\t\t\t\n")
				}
			}
		}
		tw.Flush()
		if len(r.Rates) > 0 {
			p.f("  samples: a p99 needs about 10,000 of them; --samples N runs each phase long enough for N of each\n")
		}
		hops := 2
		if !r.Keyed {
			hops = 3
		}
		p.f("  hop p99: one produce→fetch hop of the same broker at the same rate (plain clients); the pipeline makes %d hops\n", hops)
		for _, ph := range r.Rates {
			if len(ph.ByMinute) > 0 {
				p.f("  actions per 10,000 events at %s/s, by minute:%s; %s new visitors\n", num(ph.OfferedPerSec), perMinute(ph.ByMinute), num(float64(ph.NewVisitors)))
			}
		}
		for _, ph := range r.Rates {
			if len(ph.Requests) > 0 {
				p.f("  broker requests per event at %s/s:%s\n", num(ph.OfferedPerSec), requestLine(ph.Requests))
			}
		}
		for _, ph := range r.Rates {
			if h := ph.HandoverMS; h != nil {
				p.f("  identity hand-over at %s/s (link request produced → answer applied): %s, p50 ≤ %s ms, p99 ≤ %s ms (histogram bucket bounds); %s events (%.2f%%) held behind them, applied after it\n",
					num(ph.OfferedPerSec), num(float64(h.Count)), ms2(h.P50LE), ms2(h.P99LE),
					num(float64(ph.HeldRecords)), 100*float64(ph.HeldRecords)/float64(max(ph.Events, 1)))
			}
		}
		for _, ph := range r.Rates {
			if l := ph.SendLateMS; l != nil && l.Count > 0 {
				p.f("  send lateness at %s/s (the load generator: due time → handed to its producer; a floor under both latencies): p50 %s, p99 %s, max %s ms\n",
					num(ph.OfferedPerSec), ms2(l.P50), ms2(l.P99), ms2(l.Max))
			}
		}
		if len(r.Rates) > 0 && r.Rates[0].Redis != nil && r.Drain == nil {
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "figure\tpipeline\tceiling\tratio\t\n")
			redisRows(tw, r.Rates[0].Redis, r.Redis)
			tw.Flush()
		}
		p.f("\n")
	}
	if r.Drain == nil && r.Ceiling != nil {
		p.f("ceiling: %s: %s records/s (pipeline %s events/s, ratio %.2f)\n", r.Ceiling.What, num(r.Ceiling.PerSec), num(r.EventsPerSec), r.Ratio)
	}
	if r.Redis != nil && r.Redis.Ceiling != nil {
		p.f("redis ceiling: %s\n", r.Redis.Ceiling.What)
	}
	p.f("actions read: %s (%s from timers, not measured; %s outside the phases)\n",
		num(float64(r.ActionsTotal)), num(float64(r.ActionsFromTimer)), num(float64(r.ActionsUnmatched)))
	return p.err
}

func redisRows(tw io.Writer, rp *RedisPhase, rf *RedisFigures) {
	if rf != nil && rf.Ceiling != nil {
		fmt.Fprintf(tw, "redis contact writes/s\t%s\t%s\t%.2f\t\n", num(rp.WrittenPerSec), num(rf.Ceiling.PerSec), ratio(rp.WrittenPerSec, rf.Ceiling.PerSec))
	} else {
		fmt.Fprintf(tw, "redis contact writes/s\t%s\t-\t-\t\n", num(rp.WrittenPerSec))
	}
	fmt.Fprintf(tw, "redis write round trips/batch\t%.2f\t\t\t\n", rp.WriteRoundTripsPerBatch)
	fmt.Fprintf(tw, "redis contacts written/batch\t%.0f\t\t\t\n", rp.WrittenPerBatch)
	fmt.Fprintf(tw, "redis contacts loaded/batch\t%.1f\t\t\t\n", rp.LoadedPerBatch)
	fmt.Fprintf(tw, "redis load waits/batch\t%.3f\t\t\t\n", rp.LoadWaitsPerBatch)
	fmt.Fprintf(tw, "redis load wait ms (all partitions)\t%.0f\t\t\t\n", rp.LoadWaitMS)
	fmt.Fprintf(tw, "redis loads skipped (filter)\t%d\t\t\t\n", rp.LoadsSkipped)
	if rp.ServerCPUMicrosPerEvent > 0 {
		fmt.Fprintf(tw, "redis-server CPU µs/event\t%.1f\t\t\t\n", rp.ServerCPUMicrosPerEvent)
	}
}

// perMinute formats actions per 10,000 events by minute: " 210 198 (partial
// 205)"; at most 12 minutes, the middle elided.
func perMinute(ms []MinuteCount) string {
	var b strings.Builder
	for i, m := range ms {
		if len(ms) > 12 && i >= 6 && i < len(ms)-6 {
			if i == 6 {
				b.WriteString(" …")
			}
			continue
		}
		if i == len(ms)-1 && len(ms) > 1 {
			fmt.Fprintf(&b, " (last, %s events: %.0f)", num(float64(m.Events)), m.ActionsPer10k)
			continue
		}
		fmt.Fprintf(&b, " %.0f", m.ActionsPer10k)
	}
	return b.String()
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ms2(v float64) string { return fmt.Sprintf("%.2f", v) }

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// num formats with thousands separators and no decimals.
func num(f float64) string {
	neg := f < 0
	if neg {
		f = -f
	}
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// WriteMergeComparison writes the figures of two runs of the same traffic,
// identity merging on and off (`leadpulse bench --merge both`), side by
// side: the throughput phase's rate and cost, and per latency phase the
// event → state applied and event → action latencies at the same offered
// rate, with the hand-overs of the run with merging.
func WriteMergeComparison(w io.Writer, on, off *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "identity merge on vs off (the same traffic, one run after the other)\n")
	fmt.Fprintf(tw, "figure\tmerge on\tmerge off\t\n")
	if on.Drain != nil && off.Drain != nil {
		fmt.Fprintf(tw, "events/s sustained (throughput)\t%s\t%s\t\n", num(on.Drain.EventsPerSec), num(off.Drain.EventsPerSec))
		fmt.Fprintf(tw, "CPU µs/event (throughput)\t%.1f\t%.1f\t\n", on.Drain.CPUMicrosPerEvent, off.Drain.CPUMicrosPerEvent)
		fmt.Fprintf(tw, "allocs/event (throughput)\t%.1f\t%.1f\t\n", on.Drain.AllocsPerEvent, off.Drain.AllocsPerEvent)
	}
	pq := func(l *Latency) string {
		if l == nil || l.Count == 0 {
			return "n/a"
		}
		return ms2(l.P50) + " / " + ms2(l.P99)
	}
	for i := range min(len(on.Rates), len(off.Rates)) {
		a, b := on.Rates[i], off.Rates[i]
		rate := num(a.OfferedPerSec)
		fmt.Fprintf(tw, "events/s achieved at %s/s\t%s\t%s\t\n", rate, num(a.EventsPerSec), num(b.EventsPerSec))
		fmt.Fprintf(tw, "applied p50 / p99 ms at %s/s\t%s\t%s\t\n", rate, pq(a.AppliedMS), pq(b.AppliedMS))
		fmt.Fprintf(tw, "action p50 / p99 ms at %s/s\t%s\t%s\t\n", rate, pq(a.LatencyMS), pq(b.LatencyMS))
		fmt.Fprintf(tw, "CPU µs/event at %s/s\t%.1f\t%.1f\t\n", rate, a.CPUMicrosPerEvent, b.CPUMicrosPerEvent)
		if h := a.HandoverMS; h != nil {
			fmt.Fprintf(tw, "hand-overs, p50 / p99 ms (bucket bounds) at %s/s\t%s, ≤ %s / ≤ %s\t-\t\n", rate, num(float64(h.Count)), ms2(h.P50LE), ms2(h.P99LE))
		}
	}
	return tw.Flush()
}

// requestLine is the requests per event in all, then by client and request
// (those of at least 0.001 per event).
func requestLine(rs []RequestRate) string {
	var sum float64
	for _, q := range rs {
		sum += q.PerEvent
	}
	b := fmt.Sprintf(" %.3f in all:", sum)
	for _, q := range rs {
		if q.PerEvent >= 0.001 {
			b += fmt.Sprintf(" %s %s %.3f,", q.Client, q.Request, q.PerEvent)
		}
	}
	return strings.TrimSuffix(b, ",")
}
