package bench

import (
	"bytes"
	"context"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// usage is the process's resource counters at one instant. CPU is what the
// kernel charged the whole process (getrusage: user + system), so with the
// embedded broker it includes the broker's work, and always the bench's own
// producer and action reader.
type usage struct {
	wall         time.Time
	cpu          time.Duration
	allocBytes   uint64 // cumulative heap allocation
	allocObjects uint64
}

var usageSamples = []metrics.Sample{
	{Name: "/gc/heap/allocs:bytes"},
	{Name: "/gc/heap/allocs:objects"},
}

func takeUsage() usage {
	u := usage{wall: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s := make([]metrics.Sample, len(usageSamples))
	copy(s, usageSamples)
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		u.allocBytes = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		u.allocObjects = s[1].Value.Uint64()
	}
	return u
}

// heapBytes is the memory held by heap objects (live and not yet swept).
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		return s[0].Value.Uint64()
	}
	return 0
}

var pageSize = uint64(os.Getpagesize())

// rssBytes is the process's resident set (Linux /proc/self/statm); 0 where
// that file does not exist.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return n * pageSize
}

// stage is one consumer group of the pipeline and the topic it reads.
type stage struct{ group, topic string }

// monitor samples, every interval, the heap and RSS (for their peaks) and
// the consumer lag of the pipeline's stages (end offset minus committed
// offset, summed over partitions and stages, as Kafka's tools report it).
// Its goroutine writes everything; readers take mu.
type monitor struct {
	adm    *kadm.Client
	stages []stage
	every  time.Duration

	mu       sync.Mutex
	peakHeap uint64
	peakRSS  uint64
	lag      []LagSample
	t0       time.Time
}

// LagSample is the pipeline's consumer lag at one time of the run.
type LagSample struct {
	// Seconds since the measured phases began.
	Seconds float64 `json:"t"`
	// Records is the sum over stages and partitions of end offset minus
	// committed offset.
	Records int64 `json:"records"`
}

func (m *monitor) run(ctx context.Context) {
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	for {
		m.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample records the peaks and the lag now, and returns the lag sample (ok
// false when the lag could not be read).
func (m *monitor) sample(ctx context.Context) (LagSample, bool) {
	h, r := heapBytes(), rssBytes()
	lag, ok := m.lagNow(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peakHeap = max(m.peakHeap, h)
	m.peakRSS = max(m.peakRSS, r)
	if !ok {
		return LagSample{}, false
	}
	s := LagSample{Seconds: time.Since(m.t0).Seconds(), Records: lag}
	m.lag = append(m.lag, s)
	return s, true
}

func (m *monitor) lagNow(ctx context.Context) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var total int64
	for _, s := range m.stages {
		end, err := m.adm.ListEndOffsets(ctx, s.topic)
		if err != nil {
			return 0, false
		}
		committed, err := m.adm.FetchOffsets(ctx, s.group)
		if err != nil {
			return 0, false
		}
		end.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				return
			}
			c := int64(0)
			if r, ok := committed.Lookup(s.topic, o.Partition); ok && r.Err == nil && r.At >= 0 {
				c = r.At
			}
			total += max(o.Offset-c, 0)
		})
	}
	return total, true
}

// reset starts new peaks, for the next phase.
func (m *monitor) reset() {
	m.mu.Lock()
	m.peakHeap, m.peakRSS = heapBytes(), rssBytes()
	m.mu.Unlock()
}

func (m *monitor) peaks() (heap, rss uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peakHeap, m.peakRSS
}

// lagSince returns the samples taken at or after t (seconds since t0).
func (m *monitor) lagSince(t float64) []LagSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []LagSample
	for _, s := range m.lag {
		if s.Seconds >= t {
			out = append(out, s)
		}
	}
	return out
}

// committed returns the records committed by the group on topic, summed
// over partitions (topics the bench creates start at offset 0).
func committed(ctx context.Context, adm *kadm.Client, group, topic string) (int64, error) {
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var n int64
	resp.Each(func(r kadm.OffsetResponse) {
		if r.Topic == topic && r.Err == nil && r.At > 0 {
			n += r.At
		}
	})
	return n, nil
}

// endOffsets returns the end offset of each partition of topic.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	var ferr error
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = o.Err
			return
		}
		out[o.Partition] = o.Offset
	})
	return out, ferr
}
