package backtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxThresholds bounds the thresholds of one sweep.
const MaxThresholds = 1000

// Sweep is a --sweep TRIGGER=FROM:TO:STEP: the thresholds FROM + i·STEP up
// to TO, both ends inclusive.
type Sweep struct {
	Trigger    string
	From, To   float64
	Step       float64
	Thresholds []float64
}

// ParseSweep reads TRIGGER=FROM:TO:STEP, for example hot-lead=50:150:10.
func ParseSweep(s string) (*Sweep, error) {
	id, rng, ok := strings.Cut(s, "=")
	parts := strings.Split(rng, ":")
	if !ok || id == "" || len(parts) != 3 {
		return nil, fmt.Errorf("--sweep %q: write TRIGGER=FROM:TO:STEP, for example hot-lead=50:150:10", s)
	}
	var v [3]float64
	decimals := 0
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("--sweep %q: %q is not a number", s, p)
		}
		v[i] = f
		if _, frac, ok := strings.Cut(strings.TrimSpace(p), "."); ok {
			decimals = max(decimals, len(frac))
		}
	}
	sw := &Sweep{Trigger: id, From: v[0], To: v[1], Step: v[2]}
	switch {
	case sw.Step <= 0:
		return nil, fmt.Errorf("--sweep %q: STEP must be positive", s)
	case sw.From > sw.To:
		return nil, fmt.Errorf("--sweep %q: FROM must not be above TO", s)
	}
	// Thresholds are FROM + i·STEP, rounded to the decimals written, so that
	// 0.1 steps give 0.3 rather than 0.30000000000000004.
	scale := math.Pow(10, float64(min(decimals, 9)))
	n := int(math.Floor((sw.To-sw.From)/sw.Step+1e-9)) + 1
	if n > MaxThresholds {
		return nil, fmt.Errorf("--sweep %q: %d thresholds; at most %d, take a larger STEP", s, n, MaxThresholds)
	}
	for i := range n {
		sw.Thresholds = append(sw.Thresholds, math.Round((sw.From+float64(i)*sw.Step)*scale)/scale)
	}
	return sw, nil
}
