package bench

import (
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
