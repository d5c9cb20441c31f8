package bench

import (
	"bytes"
	"context"
	"math"
	"sync"
	"time"

	// HDR histogram: recording is constant-time and allocation-free, memory
	// is fixed (about 30 KiB for 1µs..1h at 3 significant digits) however many
	// actions arrive, and every quantile up to p99.9 and the max is exact to
	// 0.1% across six orders of magnitude — which neither the Prometheus
	// histogram's fixed buckets (5ms next to 10ms) nor sorting all samples
	// (memory grows with the run) give.
	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/rules"
)

// collector reads the actions topic as a dispatcher would (a plain
// consumer, no group) and records, for every action caused by an event of a
// measured window, the time from the event's produce time (its timestamp,
// which the action carries as `at`) to the action's arrival here.
//
// Goroutines: run (the poll loop) writes everything; the bench's goroutine
// adds windows and reads results, under mu.
type collector struct {
	cl     *kgo.Client
	timers map[string]bool // triggers whose actions a timer causes (absence, inactive)

	mu       sync.Mutex
	windows  []*window
	next     map[int32]int64 // next offset to read, by partition
	total    int64           // actions read
	timerN   int64           // actions of timer triggers, not measured
	outside  int64           // actions whose `at` is in no window
	badValue int64           // records without a readable `at`
}

// window is one measured phase: events stamped in [from, to].
type window struct {
	from, to int64
	hist     *hdrhistogram.Histogram // event → action read, µs
	actions  int64
	applied  *hdrhistogram.Histogram // event → state applied, µs (every event)

	// origin is the start of the window's first minute; byMinute counts
	// its events (applied) and actions by minute of their stamps, so that
	// a drift of the actions per event over a long phase shows.
	origin   int64
	byMinute []minuteCount
}

type minuteCount struct{ events, actions int64 }

// minute returns the counts of the minute that holds stamp t.
func (w *window) minute(t int64) *minuteCount {
	i := max(int((t-w.origin)/int64(time.Minute)), 0)
	for len(w.byMinute) <= i {
		w.byMinute = append(w.byMinute, minuteCount{})
	}
	return &w.byMinute[i]
}

// Latency bounds of the histograms: 1µs to 1h, 3 significant digits.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histLowest, histHighest, histDigits) }

func newCollector(brokers []string, topic string, rs *rules.Ruleset, opts ...kgo.Opt) (*collector, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("leadpulse-bench-actions"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	c := &collector{cl: cl, timers: map[string]bool{}, next: map[int32]int64{}}
	for _, t := range rs.Triggers {
		if t.Kind == rules.Absence || t.Kind == rules.Inactive {
			c.timers[t.ID] = true
		}
	}
	return c, nil
}

func (c *collector) close() { c.cl.Close() }

// watch starts measuring the actions of events stamped in [from, to]; the
// bounds may be set later with setBounds.
func (c *collector) watch(from, to int64) *window {
	w := &window{from: from, to: to, hist: newHist(), applied: newHist()}
	if from != math.MaxInt64 {
		w.origin = from
	}
	c.mu.Lock()
	c.windows = append(c.windows, w)
	c.mu.Unlock()
	return w
}

// setBounds sets w's bounds; the first bounds set also fix the start of
// its first minute.
func (c *collector) setBounds(w *window, from, to int64) {
	c.mu.Lock()
	w.from, w.to = from, to
	if w.origin == 0 {
		w.origin = from
	}
	c.mu.Unlock()
}

var (
	atField      = []byte(`,"at":"`)
	triggerField = []byte(`,"trigger":"`)
)

func (c *collector) run(ctx context.Context) {
	for {
		fs := c.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		now := time.Now().UnixNano()
		c.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				c.record(r.Value, now)
			}
			if n := len(p.Records); n > 0 {
				c.next[p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		c.mu.Unlock()
	}
}

// record measures one action; called under mu.
func (c *collector) record(v []byte, now int64) {
	c.total++
	at, ok := field(v, atField)
	if !ok {
		c.badValue++
		return
	}
	t, err := time.Parse(time.RFC3339Nano, string(at))
	if err != nil {
		c.badValue++
		return
	}
	if trig, ok := field(v, triggerField); ok && c.timers[string(trig)] {
		c.timerN++
		return
	}
	ns := t.UnixNano()
	for _, w := range c.windows {
		if ns >= w.from && ns <= w.to {
			w.actions++
			w.minute(ns).actions++
			_ = w.hist.RecordValue(max((now-ns)/int64(time.Microsecond), histLowest))
			return
		}
	}
	c.outside++
}

// appliedBatch measures event → state applied for a scoring batch
// (stream.Scoring.OnBatchApplied): every event of a measured window, from its
// time to the moment its batch was applied.
func (c *collector) appliedBatch(times []int64, at int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var w *window
	for _, t := range times {
		if w == nil || t < w.from || t > w.to {
			w = nil
			for _, x := range c.windows {
				if t >= x.from && t <= x.to {
					w = x
					break
				}
			}
			if w == nil {
				continue
			}
		}
		_ = w.applied.RecordValue(max((at-t)/int64(time.Microsecond), histLowest))
		w.minute(t).events++
	}
}

// field returns the string value that follows key (`,"name":"`); the
// values read here (a trigger id, an RFC 3339 time) hold no escapes.
func field(v, key []byte) ([]byte, bool) {
	i := bytes.Index(v, key)
	if i < 0 {
		return nil, false
	}
	i += len(key)
	j := bytes.IndexByte(v[i:], '"')
	if j < 0 {
		return nil, false
	}
	return v[i : i+j], true
}

// caughtUp reports whether the collector has read up to end (next offsets
// by partition).
func (c *collector) caughtUp(end map[int32]int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, o := range end {
		if o > 0 && c.next[p] < o {
			return false
		}
	}
	return true
}

// snapshot returns a copy of w's histogram and action count.
func (c *collector) snapshot(w *window) (*hdrhistogram.Histogram, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := newHist()
	h.Merge(w.hist)
	return h, w.actions
}

// byMinute returns w's events and actions by minute of their stamps; the
// last minute may be partial.
func (c *collector) byMinute(w *window) []MinuteCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]MinuteCount, len(w.byMinute))
	for i, m := range w.byMinute {
		out[i] = MinuteCount{Minute: i, Events: m.events, Actions: m.actions}
		if m.events > 0 {
			out[i].ActionsPer10k = float64(m.actions) / float64(m.events) * 10_000
		}
	}
	return out
}

// appliedSnapshot returns a copy of w's event → state applied histogram.
func (c *collector) appliedSnapshot(w *window) *hdrhistogram.Histogram {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := newHist()
	h.Merge(w.applied)
	return h
}

// samples returns w's sample counts so far: actions measured and events
// measured applied.
func (c *collector) samples(w *window) (actions, applied int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return w.actions, w.applied.TotalCount()
}

func (c *collector) counts() (total, timers, outside, bad int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, c.timerN, c.outside, c.badValue
}

// positions returns the next offset the reader reads, by partition.
func (c *collector) positions() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int32]int64, len(c.next))
	for p, o := range c.next {
		out[p] = o
	}
	return out
}
