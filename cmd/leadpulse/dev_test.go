package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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
