package backtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/rules"
)

const day = 24 * time.Hour

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// ev is one hand-made event: a contact does something at t0 + at.
type ev struct {
	contact string
	what    string // pricing, careers, blog, order, demo
	at      time.Duration
}

func jsonl(evs []ev) string {
	var b strings.Builder
	for i, e := range evs {
		ts := t0.Add(e.at).Format(time.RFC3339Nano)
		var body string
		switch e.what {
		case "pricing", "careers", "blog":
			body = fmt.Sprintf(`"type":"page","properties":{"path":"/%s"}`, e.what)
		case "order":
			body = `"type":"track","event":"Order Completed"`
		case "demo":
			body = `"type":"track","event":"Demo Requested"`
		default:
			panic(e.what)
		}
		fmt.Fprintf(&b, `{%s,"userId":%q,"messageId":"m%d","timestamp":%q}`+"\n", body, e.contact, i, ts)
	}
	return b.String()
}

func fromString(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

const orderCompleted = `type == "track" && event == "Order Completed"`

func f(v float64) *float64 { return &v }

// want is the expected figures of one trigger; nil pointers expect null.
type want struct {
	alerted, predicted, caught int
	precision, recall, lift    *float64
	lead                       *float64 // seconds
}

func check(t *testing.T, got Figures, w want) {
	t.Helper()
	eq := func(a, b *float64) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return math.Abs(*a-*b) < 1e-9
	}
	if got.Alerted != w.alerted || got.Predicted != w.predicted || got.Caught != w.caught ||
		!eq(got.Precision, w.precision) || !eq(got.Recall, w.recall) || !eq(got.Lift, w.lift) || !eq(got.LeadTime, w.lead) {
		t.Errorf("%s: got %s\nwant alerted %d predicted %d caught %d precision %s recall %s lift %s lead %s",
			got.Trigger, show(got), w.alerted, w.predicted, w.caught, p(w.precision), p(w.recall), p(w.lift), p(w.lead))
	}
}

func p(v *float64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}

func show(g Figures) string {
	return fmt.Sprintf("alerted %d predicted %d caught %d precision %s recall %s lift %s lead %s",
		g.Alerted, g.Predicted, g.Caught, p(g.Precision), p(g.Recall), p(g.Lift), p(g.LeadTime))
}

func trigger(t *testing.T, m *Model, id string) Figures {
	t.Helper()
	for _, f := range m.Triggers {
		if f.Trigger == id {
			return f
		}
	}
	t.Fatalf("no figures for trigger %q", id)
	return Figures{}
}

// TestDefinitions pins each definition on hand-made traffic. With
// testdata/rules.yaml, the second pricing page makes `hot` (cooldown 24h)
// and `guarded` (whose action is always suppressed) fire; a careers page
// re-arms them.
func TestDefinitions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		events  []ev
		horizon time.Duration
		pop     int
		conv    int
		base    *float64
		want    map[string]want
	}{{
		name: "a firing at the conversion's own time does not predict it",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", day},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"hot": {alerted: 1, precision: f(0), recall: f(0), lift: f(0)}},
	}, {
		name: "a firing before the conversion predicts it, lead time C - F",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 3 * day},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"hot": {alerted: 1, predicted: 1, caught: 1, precision: f(1), recall: f(1), lift: f(1), lead: f((2 * day).Seconds())}},
	}, {
		name: "a conversion exactly the horizon after the firing is predicted",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 31 * day},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"hot": {alerted: 1, predicted: 1, caught: 1, precision: f(1), recall: f(1), lift: f(1), lead: f((30 * day).Seconds())}},
	}, {
		name: "a conversion after the horizon is not predicted",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 31*day + time.Second},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"hot": {alerted: 1, precision: f(0), recall: f(0), lift: f(0)}},
	}, {
		name:    "the horizon is an option",
		horizon: 48 * time.Hour,
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 3*day + time.Second},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"hot": {alerted: 1, precision: f(0), recall: f(0), lift: f(0)}},
	}, {
		name: "recall counts a later firing within the horizon, precision only the first",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, // fires at day 1
			{"u1", "careers", 2 * day},                             // re-arms
			{"u1", "pricing", 40 * day}, {"u1", "order", 45 * day}, // fires at day 40; converts at 45
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"hot": {alerted: 1, caught: 1, precision: f(0), recall: f(1), lift: f(0)}},
	}, {
		name: "a firing whose actions were all suppressed by a guard still counts",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 3 * day},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"guarded": {alerted: 1, predicted: 1, caught: 1, precision: f(1), recall: f(1), lift: f(1), lead: f((2 * day).Seconds())}},
	}, {
		name: "an edge inside the cooldown is not a firing",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", time.Hour}, // fires at 1h
			{"u1", "careers", 2 * time.Hour}, {"u1", "pricing", 3 * time.Hour}, // an edge at 3h: inside the cooldown
			{"u1", "order", 30*day + 2*time.Hour}, // 30d+1h after the firing, 30d-1h after the edge
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{
			"hot": {alerted: 1, precision: f(0), recall: f(0), lift: f(0)},
			// guarded has no cooldown: its edge at 3h is a firing within the horizon.
			"guarded": {alerted: 1, caught: 1, precision: f(0), recall: f(1), lift: f(0)},
		},
	}, {
		name: "population, base rate and lift",
		events: []ev{
			{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 2 * day},
			{"u2", "blog", 0}, {"u2", "order", 5 * day},
			{"u3", "blog", 0}, {"u4", "blog", 0},
		},
		pop: 4, conv: 2, base: f(0.5),
		want: map[string]want{
			"hot":  {alerted: 1, predicted: 1, caught: 1, precision: f(1), recall: f(0.5), lift: f(2), lead: f(day.Seconds())},
			"demo": {recall: f(0)}, // nobody asked for a demo: precision, lift and lead time are null
		},
	}, {
		name:   "no converters: recall and lift are null, the base rate 0",
		events: []ev{{"u1", "pricing", 0}, {"u1", "pricing", day}},
		pop:    1, conv: 0, base: f(0),
		want: map[string]want{"hot": {alerted: 1, precision: f(0)}},
	}, {
		name: "no events: every ratio is null",
		want: map[string]want{"hot": {}},
	}, {
		name: "median lead time of an even count is the mean of the middle two",
		events: []ev{
			{"u1", "demo", 0}, {"u1", "order", time.Hour},
			{"u2", "demo", 0}, {"u2", "order", 2 * time.Hour},
			{"u3", "demo", 0}, {"u3", "order", 4 * time.Hour},
			{"u4", "demo", 0}, {"u4", "order", 10 * time.Hour},
		},
		pop: 4, conv: 4, base: f(1),
		want: map[string]want{"demo": {alerted: 4, predicted: 4, caught: 4, precision: f(1), recall: f(1), lift: f(1), lead: f((3 * time.Hour).Seconds())}},
	}, {
		name: "median lead time of an odd count is the middle one",
		events: []ev{
			{"u1", "demo", 0}, {"u1", "order", time.Hour},
			{"u2", "demo", 0}, {"u2", "order", 2 * time.Hour},
			{"u3", "demo", 0}, {"u3", "order", 10 * time.Hour},
		},
		pop: 3, conv: 3, base: f(1),
		want: map[string]want{"demo": {alerted: 3, predicted: 3, caught: 3, precision: f(1), recall: f(1), lift: f(1), lead: f((2 * time.Hour).Seconds())}},
	}, {
		name: "C is the contact's first conversion",
		events: []ev{
			{"u1", "demo", 2 * day}, {"u1", "order", day}, {"u1", "order", 3 * day},
		},
		pop: 1, conv: 1, base: f(1),
		want: map[string]want{"demo": {alerted: 1, precision: f(0), recall: f(0), lift: f(0)}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(context.Background(), Options{
				Rules: "testdata/rules.yaml", Events: fromString(jsonl(tc.events)),
				Conversion: orderCompleted, Horizon: tc.horizon,
			})
			if err != nil {
				t.Fatal(err)
			}
			m := rep.Models[0]
			if m.Population != tc.pop || m.Converters != tc.conv || p(m.BaseRate) != p(tc.base) {
				t.Errorf("population %d converters %d base rate %s; want %d, %d, %s", m.Population, m.Converters, p(m.BaseRate), tc.pop, tc.conv, p(tc.base))
			}
			if len(m.Triggers) != 3 {
				t.Errorf("want the file's 3 triggers, got %d", len(m.Triggers))
			}
			for id, w := range tc.want {
				check(t, trigger(t, m, id), w)
			}
		})
	}
}

// TestConversionsCSV pins the reading of a conversions file: header
// detection, time zones, the earliest row of a contact, rows of contacts
// outside the population ignored and counted.
func TestConversionsCSV(t *testing.T) {
	events := jsonl([]ev{
		{"u1", "pricing", 0}, {"u1", "pricing", day}, // hot fires on day 1
		{"u2", "pricing", 0}, {"u2", "pricing", day}, // and on day 1
		{"u3", "blog", 0},
	})
	for _, tc := range []struct {
		file             string
		header           bool
		rows, ignored    int
		conv             int
		predicted, lead0 int
		lead             float64
	}{
		// u1 closed on 03-04 (the earliest of two rows): 2 days after the
		// firing; u2 on 03-20: 18 days; "nobody" is not in the traffic.
		{file: "testdata/deals.csv", header: true, rows: 4, ignored: 1, conv: 2, predicted: 2, lead: (10 * day).Seconds()},
		// u2 at 03-20T00:00+01:00 is 03-19T23:00Z.
		{file: "testdata/deals-noheader.csv", header: false, rows: 2, ignored: 0, conv: 2, predicted: 2, lead: (3*day + 17*day + 23*time.Hour).Seconds() / 2},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			fh, err := os.Open(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			cv, err := ReadConversions(tc.file, fh)
			if err != nil {
				t.Fatal(err)
			}
			if cv.Header != tc.header || len(cv.Rows) != tc.rows {
				t.Fatalf("header %v, %d rows; want %v, %d", cv.Header, len(cv.Rows), tc.header, tc.rows)
			}
			rep, err := Run(context.Background(), Options{Rules: "testdata/rules.yaml", Events: fromString(events), Conversions: cv})
			if err != nil {
				t.Fatal(err)
			}
			m := rep.Models[0]
			if m.Ignored != tc.ignored || m.Converters != tc.conv || m.Population != 3 {
				t.Errorf("ignored %d, converters %d, population %d; want %d, %d, 3", m.Ignored, m.Converters, m.Population, tc.ignored, tc.conv)
			}
			hot := trigger(t, m, "hot")
			if hot.Predicted != tc.predicted || hot.LeadTime == nil || *hot.LeadTime != tc.lead {
				t.Errorf("hot: %s; want predicted %d, lead %v", show(hot), tc.predicted, tc.lead)
			}
		})
	}
}

func TestConversionsCSVErrors(t *testing.T) {
	for _, tc := range []struct{ name, csv, want string }{
		{"a later row with a bad time", "u1,2026-03-01T00:00:00Z\nu2,yesterday\n", "x.csv:2: time \"yesterday\" is not RFC 3339"},
		{"a row with one column", "contact,time\nu1\n", "x.csv:2: want contact,time"},
		{"an empty contact", "contact,time\n,2026-03-01T00:00:00Z\n", "x.csv:2: empty contact id"},
		{"broken quoting", "contact,time\n\"u1,2026-03-01T00:00:00Z\n", "x.csv:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadConversions("x.csv", strings.NewReader(tc.csv))
			var be *BadRowError
			if !errors.As(err, &be) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want a BadRowError with %q", err, tc.want)
			}
		})
	}
	cv, err := ReadConversions("x.csv", strings.NewReader("contact,time,amount\n\nu1, 2026-03-01T00:00:00Z ,5\n"))
	if err != nil || len(cv.Rows) != 1 || cv.Rows[0].Contact != "u1" || cv.Rows[0].Line != 3 {
		t.Fatalf("blank lines, spaces and extra columns: %+v, %v", cv, err)
	}
}

func TestConversionConditionErrors(t *testing.T) {
	_, err := Run(context.Background(), Options{Rules: "testdata/rules.yaml", Events: fromString(""), Conversion: `type == `})
	var ce *ConditionError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "--conversion") {
		t.Fatalf("got %v; want a ConditionError", err)
	}
	// The conversion condition sees the event environment of the rules:
	// `contact` is the contact before the event, a missing field is null.
	rep, err := Run(context.Background(), Options{
		Rules:      "testdata/rules.yaml",
		Events:     fromString(jsonl([]ev{{"u1", "pricing", 0}, {"u1", "order", day}, {"u2", "order", day}, {"u3", "pricing", 0}, {"u3", "pricing", day}, {"u3", "blog", 2 * day}})),
		Conversion: `contact.score >= 50 && properties.missing.deeper != "x" && !(properties.path startsWith "/pricing")`,
	})
	if err != nil {
		t.Fatal(err)
	}
	// u1's order (score 50 before it) and u3's blog page (100) convert; u2's
	// order (0 before it) and u3's second pricing page (50 before, but a
	// pricing page) do not.
	if m := rep.Models[0]; m.Converters != 2 || m.Population != 3 {
		t.Fatalf("converters %d, population %d; want 2, 3", m.Converters, m.Population)
	}
}

func TestInvalidRules(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\ntriggers:\n  - id: x\n    when: score >=\n    do: [nope]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{Rules: bad, Events: fromString(""), Conversion: orderCompleted})
	var ve *rules.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "bad.yaml:4: x:") {
		t.Fatalf("got %v; want the file's validation errors", err)
	}
}

func TestParseSweep(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []float64
		err  string
	}{
		{in: "hot=50:150:10", want: []float64{50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150}},
		{in: "hot=50:145:10", want: []float64{50, 60, 70, 80, 90, 100, 110, 120, 130, 140}},
		{in: "hot=0.1:0.5:0.1", want: []float64{0.1, 0.2, 0.3, 0.4, 0.5}},
		{in: "hot=100:100:5", want: []float64{100}},
		{in: "hot=-20:20:20", want: []float64{-20, 0, 20}},
		{in: "hot=50:150", err: "TRIGGER=FROM:TO:STEP"},
		{in: "=1:2:1", err: "TRIGGER=FROM:TO:STEP"},
		{in: "hot=a:2:1", err: "not a number"},
		{in: "hot=1:2:0", err: "STEP must be positive"},
		{in: "hot=3:2:1", err: "FROM must not be above TO"},
		{in: "hot=0:100000:1", err: "at most 1000"},
	} {
		sw, err := ParseSweep(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(sw.Thresholds) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.in, sw, err, tc.want)
		}
	}
}

func TestSweepNeedsAScoreComparison(t *testing.T) {
	dir := t.TempDir()
	write := func(when string) string {
		path := filepath.Join(dir, "r.yaml")
		data := "version: 1\nwindows:\n  w:\n    match: type == \"page\"\n    over: 1d\ntriggers:\n  - id: t\n" + when + "    do: [a]\nactions:\n  a: { sink: s }\n"
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct{ when, err string }{
		{"    when: score >= 10 && windows.w > 1\n", "its `when` is"},
		{"    when: windows.w >= 10\n", "its `when` is"},
		{"    when: score < 10\n", "its `when` is"},
		{"    when: 10 <= score\n", "its `when` is"},
		{"    sequence: [type == \"page\"]\n    within: 1d\n", "it has no `when:`"},
	} {
		_, err := Run(context.Background(), Options{Rules: write(tc.when), Events: fromString(""), Conversion: orderCompleted, Sweep: &Sweep{Trigger: "t", Thresholds: []float64{1}}})
		var se *SweepError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: got %v; want a SweepError with %q", tc.when, err, tc.err)
		}
	}
	_, err := Run(context.Background(), Options{Rules: "testdata/rules.yaml", Events: fromString(""), Conversion: orderCompleted, Sweep: &Sweep{Trigger: "nope", Thresholds: []float64{1}}})
	if !errors.Is(err, ErrNoTrigger) {
		t.Errorf("unknown trigger: got %v", err)
	}
	for _, when := range []string{"score >= 10", "score > -2.5", "score>=1e2", "(score >= 3)"} {
		if _, ok := parseComparison(when); !ok {
			t.Errorf("%q is a score comparison", when)
		}
	}
}

// TestSweepSmall checks the sweep on the hand-made traffic, including the
// cooldown: at each threshold the figures equal a run of the file with that
// threshold written in.
func TestSweepSmall(t *testing.T) {
	events := jsonl([]ev{
		{"u1", "pricing", 0}, {"u1", "pricing", time.Hour}, // 100 at 1h
		{"u1", "careers", 2 * time.Hour}, {"u1", "pricing", 3 * time.Hour}, // 50, then 100 again inside the cooldown
		{"u1", "order", 2 * day},
		{"u2", "pricing", 0}, {"u2", "order", day}, // 50
		{"u3", "pricing", 0}, {"u3", "pricing", 0}, {"u3", "pricing", 0}, // 150
	})
	sw, err := ParseSweep("hot=50:150:50")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Options{Rules: "testdata/rules.yaml", Events: fromString(events), Conversion: orderCompleted, Sweep: sw})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Models[0]
	if m.SweepMethod != "one replay" || rep.Replays != 1 {
		t.Errorf("method %q with %d replays; want one replay", m.SweepMethod, rep.Replays)
	}
	check(t, m.Sweep[0], want{alerted: 3, predicted: 2, caught: 2, precision: f(2.0 / 3), recall: f(1), lift: f(2.0 / 3 / (2.0 / 3)), lead: f((36 * time.Hour).Seconds())})
	check(t, m.Sweep[2], want{alerted: 1, recall: f(0), precision: f(0), lift: f(0)})
	check(t, m.Sweep[1], want{alerted: 2, predicted: 1, caught: 1, precision: f(0.5), recall: f(0.5), lift: f(0.75), lead: f((47 * time.Hour).Seconds())})
	if show(m.Sweep[1]) != show(trigger(t, m, "hot")) || *m.Sweep[1].Threshold != 100 {
		t.Errorf("the sweep at the file's own threshold differs from the plain run:\n%s\n%s", show(m.Sweep[1]), show(trigger(t, m, "hot")))
	}
}

func TestWriteJSONAndTable(t *testing.T) {
	sw, _ := ParseSweep("hot=50:100:50")
	rep, err := Run(context.Background(), Options{
		Rules: "testdata/rules.yaml", Compare: "testdata/rules.yaml",
		Events:     fromString(jsonl([]ev{{"u1", "pricing", 0}, {"u1", "pricing", day}, {"u1", "order", 3 * day}, {"u2", "blog", 0}})),
		Conversion: orderCompleted, Sweep: sw,
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(buf.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j["population"] != 2.0 || j["converters"] != 1.0 || j["base_rate"] != 0.5 || j["horizon_seconds"] != (30*day).Seconds() {
		t.Errorf("top level: %v", j)
	}
	trs := j["triggers"].([]any)
	hot := trs[0].(map[string]any)
	if hot["trigger"] != "hot" || hot["alerted"] != 1.0 || hot["precision"] != 1.0 || hot["recall"] != 1.0 || hot["lift"] != 2.0 || hot["lead_time_median_seconds"] != (2*day).Seconds() {
		t.Errorf("hot: %v", hot)
	}
	demo := trs[2].(map[string]any)
	for _, k := range []string{"precision", "lift", "lead_time_median_seconds"} {
		if v, ok := demo[k]; !ok || v != nil {
			t.Errorf("demo %s: want null, got %v (present %v)", k, v, ok)
		}
	}
	sweep := j["sweep"].([]any)
	if len(sweep) != 2 || sweep[1].(map[string]any)["threshold"] != 100.0 || sweep[1].(map[string]any)["trigger"] != "hot" {
		t.Errorf("sweep: %v", sweep)
	}
	if c, ok := j["compare"].(map[string]any); !ok || c["rules"] != "testdata/rules.yaml" || len(c["triggers"].([]any)) != 3 {
		t.Errorf("compare: %v", j["compare"])
	}

	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"[A] testdata/rules.yaml: 2 contacts, 1 converters, base rate 50.0%",
		"  hot              1     100.0%  100.0%  2.00x           2d  |        1     100.0%  100.0%  2.00x           2d\n",
		"  demo             0          -    0.0%      -            -  |        0          -    0.0%      -            -\n",
		"100 *A *B",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestDuration(t *testing.T) {
	for sec, want := range map[float64]string{
		0: "0s", 42: "42s", 90: "2m", 3600: "1h", 5400: "1h 30m", 86400: "1d", 86400*6 + 3600*4 + 1700: "6d 4h", 86400*2 + 3600*23 + 1900: "3d",
	} {
		if got := Duration(sec); got != want {
			t.Errorf("Duration(%v) = %q, want %q", sec, got, want)
		}
	}
}

// TestIdentity: contacts count as they stand at the end of the replay. An
// anonymous visitor's firing before it identified is its user's, and a
// conversion row keyed by the cookie's anonymous id resolves to the user
// through the identity links; with `identity: {merge: false}` the two ids
// stay two contacts.
func TestIdentity(t *testing.T) {
	events := strings.Join([]string{
		`{"type":"page","anonymousId":"a1","properties":{"path":"/pricing"},"timestamp":"2026-03-01T00:00:00Z"}`,
		`{"type":"page","anonymousId":"a1","properties":{"path":"/pricing"},"timestamp":"2026-03-01T01:00:00Z"}`, // hot fires for a1
		`{"type":"identify","userId":"u1","anonymousId":"a1","timestamp":"2026-03-01T02:00:00Z"}`,                // a1 becomes u1
		`{"type":"page","anonymousId":"a2","properties":{"path":"/blog"},"timestamp":"2026-03-01T00:00:00Z"}`,
		`{"type":"page","anonymousId":"a1","properties":{"path":"/blog"},"timestamp":"2026-03-02T00:00:00Z"}`, // u1's
	}, "\n") + "\n"
	deals := "contact,closed\na1,2026-03-04T01:00:00Z\na2,2026-03-05T00:00:00Z\nnobody,2026-03-05T00:00:00Z\n"
	data, err := os.ReadFile("testdata/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	noMerge := filepath.Join(t.TempDir(), "no-merge.yaml")
	if err := os.WriteFile(noMerge, append(data, "\nidentity:\n  merge: false\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, rules        string
		pop, conv, ignored int
		hot                want
	}{
		{"merged", "testdata/rules.yaml", 2, 2, 1,
			// u1 (with a1's history) fired at 01:00 and converted 3 days later.
			want{alerted: 1, predicted: 1, caught: 1, precision: f(1), recall: f(0.5), lift: f(1), lead: f((3 * day).Seconds())}},
		{"merge: false", noMerge, 3, 2, 1,
			// a1 fired and converted (the row names a1); u1 is a contact of its own.
			want{alerted: 1, predicted: 1, caught: 1, precision: f(1), recall: f(0.5), lift: f(1.5), lead: f((3 * day).Seconds())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cv, err := ReadConversions("deals.csv", strings.NewReader(deals))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Options{Rules: tc.rules, Events: fromString(events), Conversions: cv})
			if err != nil {
				t.Fatal(err)
			}
			m := rep.Models[0]
			if m.Population != tc.pop || m.Converters != tc.conv || m.Ignored != tc.ignored {
				t.Errorf("population %d, converters %d, ignored %d; want %d, %d, %d", m.Population, m.Converters, m.Ignored, tc.pop, tc.conv, tc.ignored)
			}
			check(t, trigger(t, m, "hot"), tc.hot)
		})
	}
}
