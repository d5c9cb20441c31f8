package bench

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counter sums a counter family of the registry over its labels.
func counter(g prometheus.Gatherer, name string) float64 {
	var sum float64
	eachMetric(g, name, func(m *dto.Metric) {
		if c := m.GetCounter(); c != nil {
			sum += c.GetValue()
		}
	})
	return sum
}

// histogram returns the sample count and sum of a histogram family.
func histogram(g prometheus.Gatherer, name string) (uint64, float64) {
	var (
		n   uint64
		sum float64
	)
	eachMetric(g, name, func(m *dto.Metric) {
		if h := m.GetHistogram(); h != nil {
			n += h.GetSampleCount()
			sum += h.GetSampleSum()
		}
	})
	return n, sum
}

// buckets returns a histogram family's cumulative bucket counts by upper
// bound, summed over its labels.
func buckets(g prometheus.Gatherer, name string) map[float64]uint64 {
	out := map[float64]uint64{}
	eachMetric(g, name, func(m *dto.Metric) {
		if h := m.GetHistogram(); h != nil {
			for _, b := range h.GetBucket() {
				out[b.GetUpperBound()] += b.GetCumulativeCount()
			}
			out[math.Inf(1)] += h.GetSampleCount()
		}
	})
	return out
}

// bucketLatency is the distribution observed between two snapshots of a
// histogram in seconds (buckets before and after), as bucket bounds in
// milliseconds; nil when nothing was observed.
func bucketLatency(before, after map[float64]uint64) *BucketLatency {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	n := after[math.Inf(1)] - before[math.Inf(1)]
	if n == 0 {
		return nil
	}
	q := func(f float64) float64 {
		for _, b := range bounds {
			if float64(after[b]-before[b]) >= f*float64(n) {
				return b * 1000
			}
		}
		return math.Inf(1)
	}
	return &BucketLatency{Count: int64(n), P50LE: q(0.5), P99LE: q(0.99)}
}

func eachMetric(g prometheus.Gatherer, name string, f func(*dto.Metric)) {
	mfs, err := g.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				f(m)
			}
		}
	}
}

func downsample(s []LagSample, n int) []LagSample {
	if len(s) <= n {
		return s
	}
	out := make([]LagSample, 0, n)
	for i := range n {
		out = append(out, s[i*len(s)/n])
	}
	return append(out, s[len(s)-1])
}
