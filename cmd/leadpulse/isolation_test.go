package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// silentBroker accepts TCP connections and never answers: a broker that is
// stalled, or something else listening on its port.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// inProcessRun runs `leadpulse run` in this process against the brokers,
// with a real Redis, until the test ends.
type inProcessRun struct {
	http   string
	stderr syncBuffer
	done   chan int
}

func startRun(t *testing.T, brokers string) *inProcessRun {
	t.Helper()
	redis := testenv.RedisServer(t)
	rulesPath, _ := filepath.Abs(shopRulesFile)
	r := &inProcessRun{http: freeAddr(t), done: make(chan int, 1)}
	cfg := writeFile(t, "leadpulse.yaml", fmt.Sprintf("kafka:\n  brokers: [%s]\nredis:\n  addr: %s\nrules: %s\nhttp: %s\nsinks:\n  log: { type: stdout, default: true }\n",
		brokers, redis, rulesPath, r.http))
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	go func() { r.done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &out, &r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			t.Error("run did not stop within 60s of cancel")
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", tail(r.stderr.String(), 6000))
		}
	})
	return r
}

// waitFor polls url until ok says so, failing after timeout or when the
// process exits.
func (r *inProcessRun) waitFor(t *testing.T, path string, timeout time.Duration, ok func(code int, body string) bool) (int, string) {
	t.Helper()
	var code int
	var body string
	testenv.Eventually(t, timeout, func() error {
		code, body = get("http://" + r.http + path)
		if ok(code, body) {
			return nil
		}
		select {
		case exit := <-r.done:
			r.done <- exit
			t.Fatalf("run exited %d; last %s: %d %s", exit, path, code, body)
		default:
		}
		return fmt.Errorf("%s: %d %q", path, code, body)
	})
	return code, body
}

// waitLog waits until the process has logged a line containing s.
func (r *inProcessRun) waitLog(t *testing.T, s string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(r.stderr.String(), s) {
			return fmt.Errorf("no log line with %q:\n%s", s, r.stderr.String())
		}
		return nil
	})
}

func (r *inProcessRun) running(t *testing.T) {
	t.Helper()
	select {
	case exit := <-r.done:
		r.done <- exit
		t.Fatalf("run exited %d", exit)
	default:
	}
}

// TestRunHealthWithSilentBroker (issue 10, item 4): with a broker that
// accepts TCP and never answers, /healthz answers at once (the HTTP
// server starts before the topics are made), /readyz says not ready with
// the reason, a log line says so, and the process waits rather than exits.
// Before, neither answered while startup was stuck, and the process exited
// after about 40 s.
func TestRunHealthWithSilentBroker(t *testing.T) {
	r := startRun(t, silentBroker(t))
	r.waitFor(t, "/healthz", 10*time.Second, func(code int, _ string) bool { return code == http.StatusOK })
	_, body := r.waitFor(t, "/readyz", 30*time.Second, func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "kafka unreachable")
	})
	if !strings.Contains(body, "have not answered") {
		t.Errorf("/readyz body %q: want the reason", body)
	}
	r.waitLog(t, "brokers unreachable")
	r.running(t)
}

// TestRunHealthWhenBrokerGoes (issue 10, item 4): a running process whose
// broker goes away reports not ready with the reason within seconds, logs
// it, and keeps running. Before, /readyz said ready through the outage.
func TestRunHealthWhenBrokerGoes(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	r := startRun(t, cluster.ListenAddrs()[0])
	r.waitFor(t, "/readyz", 30*time.Second, func(code int, _ string) bool { return code == http.StatusOK })
	cluster.Close()
	_, body := r.waitFor(t, "/readyz", 30*time.Second, func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "kafka unreachable")
	})
	t.Logf("/readyz after the broker went: %s", body)
	r.waitLog(t, "brokers unreachable")
	if code, _ := get("http://" + r.http + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d while the broker is away; the process itself is healthy", code)
	}
	r.running(t)
}

// TestDevAdminToken (issue 10, item 6): `dev --http` beyond loopback needs
// a token, as `run` does; --admin-token puts the admin API behind it.
func TestDevAdminToken(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		code, _, errs := runCLI(t, "", "dev", "--kafka", freeAddr(t), "--http", addr, "--no-demo")
		if code != 2 || !strings.Contains(errs, "--admin-token") {
			t.Errorf("dev --http %s without a token: exit %d, stderr %q; want 2 naming --admin-token", addr, code, errs)
		}
	}

	web := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errs syncBuffer
	go func() {
		done <- run(ctx, []string{"dev", "--kafka", freeAddr(t), "--http", web, "--no-demo", "--admin-token", "tok3n"}, strings.NewReader(""), &out, &errs)
	}()
	defer func() {
		cancel()
		<-done
	}()
	testenv.Eventually(t, 30*time.Second, func() error {
		if code, body := get("http://" + web + "/readyz"); code != http.StatusOK {
			return fmt.Errorf("dev not ready: %d %s; stderr:\n%s", code, body, errs.String())
		}
		return nil
	})
	if code, _ := get("http://" + web + "/contacts/u1"); code != http.StatusUnauthorized {
		t.Errorf("/contacts without the token: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", "http://"+web+"/contacts/u1", nil)
	req.Header.Set("Authorization", "Bearer tok3n")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("/contacts with the token: 401")
	}
}
