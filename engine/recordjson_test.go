package engine

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/leadpulse/leadpulse/rules"
)

// recordCases are records whose encoding tests the corners of Marshal:
// escapes, HTML characters, invalid UTF-8, U+2028/2029, exponents,
// negative zero, empty and nil maps, omitted fields.
var recordCases = []rules.Record{
	{},
	{ID: "a1b2", Action: "sales-alert", Trigger: "hot-lead", Contact: "u-1", At: "2026-01-05T09:00:00.123Z",
		Score: 101.5, Fit: 25, Engagement: 76.5, Stage: "mql", Message: "hot-lead: x@example.com, VP at Acme; score 101.5",
		Sink: "sales", Explain: map[string]float64{"pricing-page": 30, "docs-page": 2.125, "decision-maker": 20, "a": -15}},
	{Message: "<b>\"q\" & \\ \b\f\n\r\t\x00\x1f\x7f é \u2028 \u2029 \xff\xfe \xe2\x80 ok", Stage: "", Explain: map[string]float64{}},
	{Score: 1e21, Fit: 1e-7, Engagement: -1e-6, Explain: map[string]float64{"x": 123456789012345678, "y": 0.000001, "z": math.Copysign(0, -1)}},
	{Score: 1e-320, Fit: math.MaxFloat64, Engagement: 999999999999999999999, Explain: map[string]float64{"\xff": 1, "é": 2, "<": 3}},
}

// TestReplayRecordMatchesMarshal: replay's action lines are encoding/json's
// bytes (writeRecord uses action.Record.AppendJSON), on records that test
// the corners of Marshal.
func TestReplayRecordMatchesMarshal(t *testing.T) {
	for i, r := range recordCases {
		checkRecord(t, i, &r)
	}
}

// TestReplayRecordRefusesNaN: a record Marshal refuses is refused with
// Marshal's error, which replay reports.
func TestReplayRecordRefusesNaN(t *testing.T) {
	for _, r := range []rules.Record{
		{Score: math.NaN()}, {Fit: math.Inf(1)}, {Engagement: math.Inf(-1)},
		{Explain: map[string]float64{"a": 1, "b": math.NaN()}},
	} {
		_, want := json.Marshal(&r)
		if _, err := r.AppendJSON(nil); err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("%+v: error %v, want %v", r, err, want)
		}
	}
}

func checkRecord(t *testing.T, i int, r *rules.Record) {
	t.Helper()
	want, err := json.Marshal(r)
	got, gotErr := r.AppendJSON([]byte("prefix"))
	if err != nil {
		if gotErr == nil {
			t.Fatalf("case %d: encoded %s, Marshal says %v", i, got, err)
		}
		return
	}
	if gotErr != nil || string(got) != "prefix"+string(want) {
		t.Fatalf("case %d:\n got %s\nwant prefix%s", i, got, want)
	}
}

func FuzzReplayRecord(f *testing.F) {
	for _, r := range recordCases {
		f.Add(r.ID, r.Message, r.Stage, r.Score, r.Fit, "key", r.Engagement)
	}
	f.Fuzz(func(t *testing.T, id, msg, stage string, score, fit float64, key string, v float64) {
		r := rules.Record{ID: id, Action: msg, Trigger: stage, Contact: key, At: id, Score: score, Fit: fit,
			Engagement: v, Stage: stage, Message: msg, Sink: id,
			Explain: map[string]float64{key: v, id: score, msg: fit}}
		checkRecord(t, 0, &r)
	})
}
