package event

import (
	"os"
	"sort"
	"testing"
	"time"
)

func TestZZCompare(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	js := []byte(`{"type":"page","userId":"u-18342","anonymousId":"3f1c9a2e-5b7d-4c1e-9a8f-2d6b4e0c7a11","name":"Pricing",` +
		`"properties":{"path":"/pricing","url":"https://example.com/pricing?plan=pro","title":"Pricing","referrer":"https://www.google.com/"},` +
		`"context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0"},"messageId":"m-7a1c","timestamp":"2026-03-02T09:00:00.123Z"}`)
	fns := map[string]func(){
		"new":     func() { var e Event; _ = DecodeInto(&e, js, Auto, 0) },
		"newskip": func() { var e Event; _ = DecodeIntoSkipContext(&e, js, Auto, 0) },
		"ref":     func() { var e Event; _ = refDecodeInto(&e, js, Auto, 0, false) },
	}
	res := map[string][]float64{}
	for round := 0; round < 300; round++ {
		for name, f := range fns {
			start := time.Now()
			for range 1000 {
				f()
			}
			res[name] = append(res[name], float64(time.Since(start).Nanoseconds())/1000)
		}
	}
	for name, r := range res {
		sort.Float64s(r)
		t.Logf("%-8s min %6.0f p10 %6.0f p50 %6.0f", name, r[0], r[len(r)/10], r[len(r)/2])
	}
}
