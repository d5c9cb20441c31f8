package action

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAppendJSONMatchesMarshal checks AppendJSON against json.Marshal, byte
// for byte, on hand-picked records (every escape, invalid UTF-8, the line
// separators, the float format's edges, empty and nil explain, the
// omitempty fields) and on random ones.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	strs := []string{"", "plain", `quo"te`, `back\slash`, "<b>&amp;</b>", "tab\tnl\nret\rff\fbs\b", "\x00\x01\x1f\x7f",
		"caf\u00e9", "\u2028\u2029", "bad\xffutf8", "\xe2\x82", "emoji \U0001F600", "hot-lead", "u-42", "2026-11-30T12:00:00Z"}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.5, 100, 12345.678, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e21,
		-2.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 123456789012345678}
	recs := []Record{
		{},
		{ID: "a1", Action: "alert", Trigger: "t", Contact: "c", At: "2026-01-01T00:00:00Z", Score: 42, Fit: 1.5, Engagement: -3,
			Stage: "mql", Message: "hi <there>", Sink: "slack", Explain: map[string]float64{"b": 1, "a": 2, "<k>": 0.5}},
		{Explain: map[string]float64{}},
		{Explain: map[string]float64{"x": 1e-7, "y": 1e21}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return strs[r.IntN(len(strs))] }
	num := func() float64 { return floats[r.IntN(len(floats))] * float64(r.IntN(3)-1) }
	for range 3000 {
		rec := Record{ID: pick(), Action: pick(), Trigger: pick(), Contact: pick(), At: pick(), Score: num(), Fit: num(),
			Engagement: r.Float64() * 1e3, Stage: pick(), Message: pick(), Sink: pick(), AtNanos: r.Int64()}
		if r.IntN(4) > 0 {
			rec.Explain = map[string]float64{}
			for range r.IntN(20) {
				rec.Explain[pick()+pick()] = num()
			}
		}
		recs = append(recs, rec)
	}
	for i := range recs {
		want, err := json.Marshal(&recs[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := recs[i].AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[len("prefix"):], want) || string(got[:len("prefix")]) != "prefix" {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestAppendJSONNotFinite: a NaN or infinite number fails as json.Marshal
// fails, and leaves b as it was.
func TestAppendJSONNotFinite(t *testing.T) {
	for _, rec := range []Record{{Score: math.NaN()}, {Fit: math.Inf(1)}, {Engagement: math.Inf(-1)},
		{Explain: map[string]float64{"a": 1, "b": math.NaN()}}} {
		_, want := json.Marshal(&rec)
		got, err := rec.AppendJSON([]byte("x"))
		if err == nil || want == nil || err.Error() != want.Error() || string(got) != "x" {
			t.Errorf("%+v: AppendJSON = %q, %v; json.Marshal's error %v", rec, got, err, want)
		}
	}
}

func BenchmarkActionJSON(b *testing.B) {
	rec := Record{ID: "act-0123456789abcdef", Action: "hot-lead-alert", Trigger: "hot-lead", Contact: "u-12345", At: "2026-11-30T12:00:00.123Z",
		Score: 87.5, Fit: 40, Engagement: 47.5, Stage: "sql", Message: "Hot lead u-12345 (score 87.5)", Sink: "slack",
		Explain: map[string]float64{"pricing-visit": 20, "demo-request": 30, "webinar": 10, "company-size": 15}}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rec.AppendJSON(make([]byte, 0, 512)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
