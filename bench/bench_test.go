package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/examples"
	"github.com/leadpulse/leadpulse/rules"
)

// TestRunJSON runs a tiny bench (embedded broker, memory store, a few
// seconds) and checks that its JSON has every field with sane values. It
// asserts no performance goal: the figures depend on the machine.
func TestRunJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline for a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, Config{
		Contacts: 2000,
		Events:   20_000,
		Rates:    []float64{1000},
		Duration: time.Second,
		Log:      &log,
	})
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	num := func(path ...string) float64 {
		t.Helper()
		var v any = m
		for _, k := range path {
			obj, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: not an object", strings.Join(path, "."))
			}
			if v, ok = obj[k]; !ok {
				t.Fatalf("%s: missing", strings.Join(path, "."))
			}
		}
		f, ok := v.(float64)
		if !ok {
			t.Fatalf("%s = %v: not a number", strings.Join(path, "."), v)
		}
		return f
	}
	positive := func(path ...string) float64 {
		t.Helper()
		f := num(path...)
		if !(f > 0) {
			t.Errorf("%s = %v, want > 0", strings.Join(path, "."), f)
		}
		return f
	}
	if got := num("events"); got != 20_000 {
		t.Errorf("events = %v, want 20000", got)
	}
	positive("seconds")
	positive("events_per_sec")
	positive("ceiling_events_per_sec")
	positive("cpu_us_per_event")
	positive("alloc_bytes_per_event")
	positive("peak_heap_bytes")
	if r := positive("ratio"); r > 10 {
		t.Errorf("ratio = %v, want in (0, 10]", r)
	}
	// Percentiles are ordered and positive.
	prev := 0.0
	for _, q := range []string{"p50", "p90", "p99", "p999", "max"} {
		v := positive("latency_ms", q)
		if v < prev {
			t.Errorf("latency_ms.%s = %v below the previous percentile %v", q, v, prev)
		}
		prev = v
	}
	if c := num("latency_ms", "count"); c < 1 {
		t.Errorf("latency_ms.count = %v: no action was measured", c)
	}
	for k, want := range map[string]any{"store": "memory", "rules": examples.B2BSaaSName, "partitions": float64(DefaultPartitions), "keyed": true} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	// The phases.
	drain, _ := m["drain"].(map[string]any)
	if drain == nil {
		t.Fatal("drain: missing")
	}
	rates, _ := m["rates"].([]any)
	if len(rates) != 1 {
		t.Fatalf("rates: %d phases, want 1", len(rates))
	}
	ph := rates[0].(map[string]any)
	// The lag's "end" is read when the phase has ended (everything
	// committed), not at the monitor's last tick before that.
	for name, p := range map[string]map[string]any{"drain": drain, "rates[0]": ph} {
		if got := p["lag_final_records"]; got != float64(0) {
			t.Errorf("%s.lag_final_records = %v, want 0 (sampled after the phase's last commit)", name, got)
		}
	}
	if ph["offered_events_per_sec"] != float64(1000) {
		t.Errorf("rates[0].offered_events_per_sec = %v, want 1000", ph["offered_events_per_sec"])
	}
	if a := ph["events_per_sec"].(float64); a <= 0 || a > 2000 {
		t.Errorf("rates[0].events_per_sec = %v, want about 1000", a)
	}
	// Every event's send lateness is measured (its count is the events
	// sent), and printed.
	if late, _ := ph["send_late_ms"].(map[string]any); late == nil || late["count"] != ph["events"] {
		t.Errorf("rates[0].send_late_ms = %v, want one sample per event (%v)", ph["send_late_ms"], ph["events"])
	}
	// The other ratios: CPU against the raw consume's, all in (0, 10].
	ceil := m["ceiling"].(map[string]any)
	if c := ceil["cpu_us_per_op"].(float64); c <= 0 || c/num("cpu_us_per_event") > 10 {
		t.Errorf("ceiling.cpu_us_per_op = %v against %v per event", c, num("cpu_us_per_event"))
	}
	if a := num("actions_total"); a < 1 {
		t.Errorf("actions_total = %v", a)
	}
	// The table renders every figure.
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"events/s sustained", "CPU µs/event", "p99.9", "1,000", "send lateness at 1,000/s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestScaleRules(t *testing.T) {
	base, err := rules.Parse("b2b", examples.B2BSaaS)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ScaleRules(examples.B2BSaaS, 3)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse("scaled", out)
	if err != nil {
		t.Fatalf("scaled rules do not load: %v\n%s", err, out)
	}
	if got, want := len(rs.Triggers), 3*len(base.Triggers); got != want {
		t.Errorf("triggers = %d, want %d", got, want)
	}
	if got, want := len(rs.Scoring)+len(rs.Fit), 3*(len(base.Scoring)+len(base.Fit)); got != want {
		t.Errorf("scoring rules = %d, want %d", got, want)
	}
	if len(rs.Windows) != len(base.Windows) || len(rs.Actions) != len(base.Actions) {
		t.Errorf("windows/actions changed: %d/%d, want %d/%d", len(rs.Windows), len(rs.Actions), len(base.Windows), len(base.Actions))
	}
	if len(rs.Tests) != 0 {
		t.Errorf("tests kept: %d", len(rs.Tests))
	}
	ids := map[string]bool{}
	for _, tr := range rs.Triggers {
		if ids[tr.ID] {
			t.Errorf("duplicate trigger id %q", tr.ID)
		}
		ids[tr.ID] = true
	}
	if !ids["hot-lead-x3"] {
		t.Errorf("no trigger hot-lead-x3 among %v", ids)
	}
	same, err := ScaleRules(examples.B2BSaaS, 1)
	if err != nil || !bytes.Equal(same, examples.B2BSaaS) {
		t.Errorf("copies 1 changed the file (err %v)", err)
	}
}

func TestLoaderStampsAndKeys(t *testing.T) {
	l := newLoader(&Config{Contacts: 50, Seed: 3}, nil, "events")
	stamp := time.Date(2026, 11, 24, 3, 0, 0, 123456789, time.UTC).UnixNano()
	for range 200 {
		r, err := l.next(stamp)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			UserID      string `json:"userId"`
			AnonymousID string `json:"anonymousId"`
			Timestamp   string `json:"timestamp"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("re-stamped event is not JSON: %v\n%s", err, r.Value)
		}
		if ev.Timestamp != "2026-11-24T03:00:00.123456789Z" {
			t.Fatalf("timestamp = %q", ev.Timestamp)
		}
		want := ev.UserID
		if want == "" {
			want = ev.AnonymousID
		}
		if string(r.Key) != want {
			t.Fatalf("key = %q, want the contact %q", r.Key, want)
		}
	}
	if len(l.sample) == 0 || len(l.sample) > 100 {
		t.Errorf("contact sample of %d", len(l.sample))
	}
}

func TestSustained(t *testing.T) {
	var lag []LagSample
	for i := range 21 {
		// 1000 records drained at 100/0.1s, then a stall at 50.
		n := int64(max(1000-100*i, 50))
		lag = append(lag, LagSample{Seconds: float64(i) / 10, Records: n})
	}
	got, ok := sustained(lag, 1000)
	if !ok || got < 999 || got > 1001 {
		t.Errorf("sustained = %v, %v; want 1000/s", got, ok)
	}
	if _, ok := sustained(lag[:3], 1000); ok {
		t.Error("sustained from 3 samples")
	}
}
