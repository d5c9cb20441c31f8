package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	btRules   = "../../examples/b2b-saas.yaml"
	btChanged = "../../examples/backtest/b2b-saas-changed.yaml"
	btTraffic = "../../examples/backtest/b2b-traffic.jsonl"
	btDeals   = "../../examples/backtest/closed-deals.csv"
)

func TestBacktestCommand(t *testing.T) {
	code, out, errs := runCLI(t, "", "backtest", "--rules", btRules, "--compare", btChanged, "--conversions", btDeals, "--sweep", "hot-lead=80:120:20", btTraffic)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	for _, want := range []string{
		"[A] " + btRules + ": 700 contacts, 43 converters, base rate 6.1%; 3 conversion rows ignored",
		"[B] " + btChanged,
		"hot-lead", "Sweep of hot-lead", "100 *A *B",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "16000 events applied") {
		t.Errorf("stderr lacks the replay summary:\n%s", errs)
	}
}

func TestBacktestJSONAndChart(t *testing.T) {
	chart := filepath.Join(t.TempDir(), "pr.svg")
	code, out, errs := runCLI(t, "", "backtest", "--rules", btRules, "--conversion", `type == "track" && event == "Trial Started"`,
		"--horizon", "14d", "--sweep", "hot-lead=90:110:10", "--json", "--chart", chart, btTraffic)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	var j struct {
		Population     int              `json:"population"`
		Converters     int              `json:"converters"`
		BaseRate       *float64         `json:"base_rate"`
		HorizonSeconds float64          `json:"horizon_seconds"`
		Triggers       []map[string]any `json:"triggers"`
		Sweep          []map[string]any `json:"sweep"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if j.Population != 700 || j.Converters == 0 || j.BaseRate == nil || j.HorizonSeconds != 14*86400 || len(j.Triggers) != 8 || len(j.Sweep) != 3 {
		t.Errorf("unexpected JSON:\n%s", out)
	}
	for _, k := range []string{"trigger", "alerted", "precision", "recall", "lift", "lead_time_median_seconds"} {
		if _, ok := j.Triggers[0][k]; !ok {
			t.Errorf("triggers[0] lacks %q", k)
		}
	}
	for _, k := range []string{"trigger", "threshold", "alerted", "precision", "recall", "lift", "lead_time_median_seconds"} {
		if _, ok := j.Sweep[0][k]; !ok {
			t.Errorf("sweep[0] lacks %q", k)
		}
	}
	if b, err := os.ReadFile(chart); err != nil || !strings.Contains(string(b), "<svg") {
		t.Errorf("chart: %v", err)
	}
}

func TestBacktestExitCodes(t *testing.T) {
	dir := t.TempDir()
	invalid := filepath.Join(dir, "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("version: 1\ntriggers:\n  - id: x\n    when: score >=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badCSV := filepath.Join(dir, "deals.csv")
	if err := os.WriteFile(badCSV, []byte("contact,time\nu1,yesterday\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conv := []string{"--conversion", `type == "track" && event == "Trial Started"`}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"rules that do not validate", append([]string{"--rules", invalid, btTraffic}, conv...), 1, "invalid.yaml:4: x:"},
		{"a compared file that does not validate", append([]string{"--rules", btRules, "--compare", invalid, btTraffic}, conv...), 1, "invalid.yaml:4: x:"},
		{"a sweep of a trigger that is not a score comparison", append([]string{"--rules", btRules, "--sweep", "pricing-3x=1:5:1", btTraffic}, conv...), 1, "its `when` is \"windows.pricing_views_7d >= 3\""},
		{"a sweep of an unknown trigger", append([]string{"--rules", btRules, "--sweep", "nope=1:5:1", btTraffic}, conv...), 1, "no trigger \"nope\""},
		{"a conversion condition that does not compile", []string{"--rules", btRules, "--conversion", "type ==", btTraffic}, 1, "--conversion \"type ==\""},
		{"a conversions file with a bad row", []string{"--rules", btRules, "--conversions", badCSV, btTraffic}, 1, "deals.csv:2: time \"yesterday\""},
		{"no conversions", []string{"--rules", btRules, btTraffic}, 2, "--conversion EXPR or --conversions FILE.csv"},
		{"both kinds of conversions", append([]string{"--rules", btRules, "--conversions", btDeals, btTraffic}, conv...), 2, "one of them"},
		{"a bad horizon", append([]string{"--rules", btRules, "--horizon", "soon", btTraffic}, conv...), 2, "--horizon"},
		{"a bad sweep", append([]string{"--rules", btRules, "--sweep", "hot-lead=1:2", btTraffic}, conv...), 2, "TRIGGER=FROM:TO:STEP"},
		{"a chart without a sweep", append([]string{"--rules", btRules, "--chart", filepath.Join(dir, "c.png"), btTraffic}, conv...), 2, "--chart needs --sweep"},
		{"a chart of another format", append([]string{"--rules", btRules, "--sweep", "hot-lead=1:2:1", "--chart", filepath.Join(dir, "c.pdf"), btTraffic}, conv...), 2, ".png or .svg"},
		{"a missing events file", append([]string{"--rules", btRules, filepath.Join(dir, "none.jsonl")}, conv...), 2, "none.jsonl"},
		{"a missing rules file", append([]string{"--rules", filepath.Join(dir, "none.yaml"), btTraffic}, conv...), 2, "none.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, "", append([]string{"backtest"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d (want %d), stderr lacks %q:\n%s", code, tc.code, tc.want, errs)
			}
		})
	}
}

func TestBacktestStdinAndBadLines(t *testing.T) {
	code, out, errs := runCLI(t, specEvents, "backtest", "--rules", "../../examples/spec.yaml", "--conversion", `type == "page"`, "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	for _, want := range []string{"line 2: malformed", "line 5: no_contact", "2 bad, 1 duplicates"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if !strings.Contains(out, "1 contacts, 1 converters") {
		t.Errorf("output:\n%s", out)
	}
}
