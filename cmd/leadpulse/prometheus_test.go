package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// TestPrometheusScrapesDev starts a real Prometheus on a free loopback
// port with deploy/prometheus/alerts.yaml as its rule file, has it scrape
// `leadpulse dev` (demo traffic at 200 events/s), and checks through its
// HTTP API that the main series are there with sensible values and that
// every alerting rule loaded and evaluates without error.
func TestPrometheusScrapesDev(t *testing.T) {
	promBin := testenv.Need(t, "prometheus", "prometheus")
	alerts, err := filepath.Abs("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}

	web, kafka := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errs syncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, []string{"dev", "--kafka", kafka, "--http", web, "--demo-rate", "200", "--partitions", "2"}, strings.NewReader(""), &out, &errs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("dev did not stop within 60s")
		}
	})
	waitFor(t, 60*time.Second, "dev to be ready", func() bool { code, _ := get("http://" + web + "/readyz"); return code == 200 })

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [%q]
scrape_configs:
  - job_name: leadpulse
    static_configs: [{ targets: [%q] }]
`, alerts, web)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	var promLog syncBuffer
	cmd := exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	base := "http://" + promAddr
	waitFor(t, 60*time.Second, "prometheus to be ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", promLog.String())
		default:
		}
		code, _ := get(base + "/-/ready")
		return code == 200
	})

	// query returns the values of an instant query's vector.
	query := func(q string) []float64 {
		t.Helper()
		code, body := get(base + "/api/v1/query?query=" + url.QueryEscape(q))
		if code != 200 {
			t.Fatalf("query %s: %d %s", q, code, body)
		}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		var vs []float64
		for _, x := range r.Data.Result {
			f, _ := strconv.ParseFloat(x.Value[1].(string), 64)
			vs = append(vs, f)
		}
		return vs
	}
	one := func(q string) (float64, bool) {
		vs := query(q)
		if len(vs) != 1 {
			return 0, false
		}
		return vs[0], true
	}
	for _, c := range []struct {
		q        string
		min, max float64
	}{
		{`up{job="leadpulse"}`, 1, 1},
		{`sum(leadpulse_score_partitions)`, 2, 2},
		{`sum(leadpulse_events_in_total{stage="score"})`, 1, 1e9},
		// Demo traffic is a Poisson process of 200/s.
		{`sum(rate(leadpulse_events_in_total{stage="score"}[15s]))`, 50, 1000},
		{`sum(leadpulse_actions_produced_total)`, 1, 1e9},
		{`histogram_quantile(0.99, sum by (le) (rate(leadpulse_event_to_action_seconds_bucket[1m])))`, 1e-6, 10},
		{`max(leadpulse_consumer_lag_records)`, 0, 5000},
		{`sum(leadpulse_events_bad_total) or vector(0)`, 0, 0},
		{`sum(leadpulse_rules_reloads_total)`, 0, 0},
		{`go_goroutines{job="leadpulse"}`, 10, 10000},
	} {
		err := testenv.Poll(90*time.Second, func() error {
			v, ok := one(c.q)
			if !ok || v < c.min || v > c.max {
				return fmt.Errorf("%s = %v (ok %v), want within [%g, %g]", c.q, v, ok, c.min, c.max)
			}
			t.Logf("%s = %g", c.q, v)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}

	// The alerting rules: every group and rule of the file is loaded and
	// has been evaluated without error.
	data, err := os.ReadFile(alerts)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	wantRules := 0
	for _, g := range file.Groups {
		wantRules += len(g.Rules)
	}
	type apiRule struct {
		Name, Health, State, LastError string
		LastEvaluation                 string `json:"lastEvaluation"`
	}
	var rulesSeen []apiRule
	waitFor(t, 90*time.Second, "every alerting rule to be evaluated", func() bool {
		_, body := get(base + "/api/v1/rules?type=alert")
		var r struct {
			Data struct {
				Groups []struct {
					Name  string    `json:"name"`
					Rules []apiRule `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		rulesSeen = rulesSeen[:0]
		for _, g := range r.Data.Groups {
			rulesSeen = append(rulesSeen, g.Rules...)
		}
		if len(r.Data.Groups) != len(file.Groups) || len(rulesSeen) != wantRules {
			return false
		}
		for _, x := range rulesSeen {
			if x.Health != "ok" {
				return false
			}
		}
		return true
	})
	for _, x := range rulesSeen {
		if x.LastError != "" {
			t.Errorf("alert %s: %s", x.Name, x.LastError)
		}
		// A healthy dev: the availability alerts are not even pending.
		if (x.Name == "LeadpulseTargetDown" || x.Name == "LeadpulseAbsent" || x.Name == "LeadpulseNoPartitionsAssigned") && x.State != "inactive" {
			t.Errorf("alert %s is %s against a healthy dev", x.Name, x.State)
		}
	}
	t.Logf("%d alerting rules in %d groups loaded and evaluated", len(rulesSeen), len(file.Groups))
}
