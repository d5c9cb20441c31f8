package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// startDev runs `leadpulse dev` with args until the test ends; it returns
// standard output, standard error and the exit code's channel.
func startDev(t *testing.T, args ...string) (out, errs *syncBuffer, done chan int, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errs, done = &syncBuffer{}, &syncBuffer{}, make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"dev", "--kafka", freeAddr(t), "--http", freeAddr(t)}, args...), strings.NewReader(""), out, errs)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("dev exited %d after cancel; stderr:\n%s", code, errs.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("dev did not stop within 30s of cancel")
		}
	}
	t.Cleanup(stop)
	return out, errs, done, stop
}

func waitStderr(t *testing.T, errs *syncBuffer, done chan int, what string, ok func(string) bool) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d before %s; stderr:\n%s", code, what, errs.String())
		default:
		}
		if !ok(errs.String()) {
			return fmt.Errorf("no %s yet; stderr:\n%s", what, errs.String())
		}
		return nil
	})
}

// TestDevShippedSinksExample: `dev --sinks deploy/kubernetes/sinks.example.yaml`
// (the sinks alone at the top level, as LEADPULSE_SINKS holds them) starts,
// and the banner says where each sink delivers instead of "printed below".
// No demo traffic: its webhooks are not on loopback.
func TestDevShippedSinksExample(t *testing.T) {
	_, errs, done, stop := startDev(t, "--no-demo", "--sinks", "../../deploy/kubernetes/sinks.example.yaml")
	waitStderr(t, errs, done, "banner", func(s string) bool { return strings.Contains(s, "Send your own events") })
	stop()
	banner := errs.String()
	for _, want := range []string{
		"sales        → webhook https://hooks.slack.com/services/… (slack)",
		"email        → kafka topic email-sends",
		"log          → standard output (json), the default",
		`each delivery to another sink is logged here (level INFO, "sinks: delivered"`,
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "XXXXXXXX") {
		t.Errorf("banner shows a webhook URL's secret path:\n%s", banner)
	}
	if strings.Contains(banner, "Alerts are printed below") {
		t.Errorf("banner says alerts are printed below, but they go to the sinks:\n%s", banner)
	}
}

// TestDevWebhookDeliveriesLogged: with the shipped example's shape pointed at
// a local webhook, every delivery is logged (sink, action, contact) and
// reaches the receiver.
func TestDevWebhookDeliveriesLogged(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
	}))
	defer srv.Close()
	example, err := os.ReadFile("../../deploy/kubernetes/sinks.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local := regexp.MustCompile(`https://hooks\.slack\.com/\S+`).ReplaceAllString(string(example), srv.URL+"/hook")
	local = strings.ReplaceAll(local, "rate: 1/s", "rate: 100/s")
	file := writeFile(t, "sinks.yaml", local)

	_, errs, done, stop := startDev(t, "--demo-rate", "1000", "--sinks", file)
	delivered := regexp.MustCompile(`level=INFO msg="sinks: delivered" sink=sales\S* id=\S+ action=\S+ contact=\S+`)
	waitStderr(t, errs, done, "logged webhook delivery", delivered.MatchString)
	stop()
	if posts.Load() == 0 {
		t.Errorf("a delivery was logged but the webhook received nothing:\n%s", errs.String())
	}
	if strings.Contains(errs.String(), `sinks: delivered" sink=log `) {
		t.Errorf("stdout sink deliveries are printed; they should not be logged too")
	}
}
