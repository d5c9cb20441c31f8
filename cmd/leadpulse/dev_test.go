package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// syncBuffer is a bytes.Buffer that the test reads while dev writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDevCommand runs `leadpulse dev` as a user would (real TCP for Kafka and
// HTTP, demo traffic): alerts are printed within seconds, /healthz, /readyz
// and /metrics answer, and Ctrl-C (ctx) stops it cleanly with exit 0.
func TestDevCommand(t *testing.T) {
	kafka, web := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--kafka", kafka, "--http", web, "--demo-rate", "1000"}, strings.NewReader(""), &out, &errs)
	}()
	testenv.Eventually(t, 30*time.Second, func() error {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d before printing an alert; stderr:\n%s", code, errs.String())
		default:
		}
		if !strings.Contains(out.String(), " score ") {
			return fmt.Errorf("no alert; stderr:\n%s", errs.String())
		}
		return nil
	})
	line := strings.SplitN(out.String(), "\n", 2)[0]
	if !strings.Contains(line, " → ") || !strings.Contains(line, "score") {
		t.Errorf("alert line %q lacks the sink arrow or the score", line)
	}
	if code, body := get("http://" + web + "/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get("http://" + web + "/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	code, body := get("http://" + web + "/metrics")
	for _, m := range []string{`leadpulse_events_in_total{stage="score"}`, "leadpulse_actions_produced_total", "leadpulse_event_to_action_seconds_bucket", "go_goroutines"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Errorf("/metrics (%d) lacks %s", code, m)
		}
	}
	if !regexp.MustCompile(`(?m)^leadpulse_state_memory_contacts [1-9]`).MatchString(body) {
		t.Errorf("/metrics should count the contacts of the memory store (an alert was printed): %s", grepLines(body, "leadpulse_state_memory_contacts"))
	}
	if code, body := get("http://" + web + "/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile") {
		t.Errorf("/debug/pprof/heap: %d %.200s", code, body)
	}
	if !strings.Contains(errs.String(), "kcat -P -b "+kafka) {
		t.Errorf("the banner should show how to send an event with kcat:\n%s", errs.String())
	}
	// The contact of the alert, from the memory store: where it is, and no
	// made-up write position.
	if f := strings.Fields(line); len(f) > 6 {
		var o, er bytes.Buffer
		code := run(context.Background(), []string{"contact", f[6], "--http", web}, strings.NewReader(""), &o, &er)
		var v struct {
			ID     string         `json:"id"`
			Stored map[string]any `json:"stored"`
		}
		_ = json.Unmarshal(o.Bytes(), &v)
		if _, hasOffset := v.Stored["offset"]; code != 0 || v.ID != f[6] || v.Stored["store"] != "memory" || hasOffset || v.Stored["partition"] == nil {
			t.Errorf("contact %s: exit %d, stored %v, want {store: memory, partition: N} without an offset\n%s%s", f[6], code, v.Stored, o.String(), er.String())
		}
	} else {
		t.Errorf("alert line %q: no contact field", line)
	}
	var o, er bytes.Buffer
	if code := run(context.Background(), []string{"forget", "ghost", "--http", web}, strings.NewReader(""), &o, &er); code != 1 || !strings.Contains(er.String(), "not stored") || o.Len() != 0 {
		t.Errorf("forget of a contact never seen: exit %d, want 1 (not stored): %s%s", code, o.String(), er.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("dev exited %d after cancel; stderr:\n%s", code, errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of cancel")
	}
	if !strings.Contains(errs.String(), "pipeline stopped") {
		t.Errorf("no clean drain in the log:\n%s", errs.String())
	}
}

func TestDevCommandErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()
	bad := writeFile(t, "bad.yaml", "version: 1\ntriggers:\n  - id: t1\n    when: windows.nope >= 1\n    do: [x]\n")
	typo := writeFile(t, "sinks.yaml", "sinks:\n  log: { type: stdout, fromat: text }\n")
	noHook := writeFile(t, "hook.yaml", "sinks:\n  sales: { type: webhook }\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"kafka port in use", []string{"dev", "--kafka", busy, "--http", freeAddr(t)}, 2, "choose another address"},
		{"http port in use", []string{"dev", "--kafka", freeAddr(t), "--http", busy}, 2, "--http " + busy},
		{"invalid rules", []string{"dev", "--rules", bad}, 1, "bad.yaml:"},
		{"demo rate", []string{"dev", "--demo-rate", "0"}, 2, "--demo-rate"},
		{"retention", []string{"dev", "--kafka-retention-mb", "0"}, 2, "--kafka-retention-mb 0"},
		{"sinks key typo", []string{"dev", "--kafka", freeAddr(t), "--http", freeAddr(t), "--sinks", typo}, 2, "fromat"},
		{"webhook without url", []string{"dev", "--kafka", freeAddr(t), "--http", freeAddr(t), "--sinks", noHook}, 2, "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, tc.code, tc.want, errs)
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestDevRetention: the embedded broker drops the oldest records of a topic
// past --kafka-retention-mb, so that its log (kept in memory) stays
// bounded: the events topic's start offsets move up while demo traffic
// flows, and its configs say what it keeps.
func TestDevRetention(t *testing.T) {
	kafka, web := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--kafka", kafka, "--http", web, "--demo-rate", "2000", "--partitions", "2", "--kafka-retention-mb", "1"}, strings.NewReader(""), &out, &errs)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop within 30s of cancel")
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	testenv.Eventually(t, 90*time.Second, func() error {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d; stderr:\n%s", code, errs.String())
		default:
		}
		starts, err := adm.ListStartOffsets(ctx, "events")
		if err != nil {
			return err
		}
		var moved int
		starts.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset > 0 {
				moved++
			}
		})
		if moved < 2 {
			return fmt.Errorf("start offsets of events: %v; want every partition's above 0", starts)
		}
		return nil
	})
	rc, err := adm.DescribeTopicConfigs(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rc {
		for _, c := range r.Configs {
			if c.Value != nil {
				got[c.Key] = *c.Value
			}
		}
	}
	// 1 MiB over 2 partitions; segments a quarter of that.
	for k, want := range map[string]string{"retention.bytes": "524288", "segment.bytes": "131072", "retention.ms": "1800000"} {
		if got[k] != want {
			t.Errorf("events topic %s = %q, want %s", k, got[k], want)
		}
	}
}

func TestDevRetentionSizes(t *testing.T) {
	for _, tc := range []struct {
		mib                   int
		partitions            int32
		perPartition, segment string
	}{
		{16, 6, "2796202", "699050"},   // the default
		{64, 2, "33554432", "1048576"}, // segments at most 1 MiB
		{1, 64, "16384", "65536"},      // and at least 64 KiB
	} {
		topic, broker := devRetention(tc.mib, tc.partitions)
		if topic["retention.bytes"] != tc.perPartition || topic["segment.bytes"] != tc.segment || topic["retention.ms"] != "1800000" {
			t.Errorf("devRetention(%d, %d) = %v, want retention.bytes %s, segment.bytes %s", tc.mib, tc.partitions, topic, tc.perPartition, tc.segment)
		}
		// Topics made later (a kafka sink's) get the same limits.
		if broker["log.retention.bytes"] != tc.perPartition || broker["log.segment.bytes"] != tc.segment || broker["log.cleaner.backoff.ms"] == "" {
			t.Errorf("devRetention(%d, %d) broker configs = %v", tc.mib, tc.partitions, broker)
		}
	}
}
