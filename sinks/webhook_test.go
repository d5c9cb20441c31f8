package sinks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// hook is a webhook receiver that answers with the replies of a script,
// then 200s, and keeps every request.
type hook struct {
	srv     *httptest.Server
	mu      sync.Mutex
	replies []reply // guarded by mu: the next replies, then 200
	reqs    []got   // guarded by mu
}

type reply struct {
	status int
	header map[string]string
	body   string
}

type got struct {
	header http.Header
	body   []byte
	at     time.Time
	status int
}

func newHook(t *testing.T, replies ...reply) *hook {
	h := &hook{replies: replies}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		rep := reply{status: http.StatusOK}
		if len(h.replies) > 0 {
			rep, h.replies = h.replies[0], h.replies[1:]
		}
		h.reqs = append(h.reqs, got{header: r.Header.Clone(), body: body, at: time.Now(), status: rep.status})
		h.mu.Unlock()
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) requests() []got {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]got(nil), h.reqs...)
}

// sleeps records the waits a Dispatcher asks for, and waits none.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func webhookSink(h *hook, cfg SinkConfig) *Webhook {
	cfg.URL = h.srv.URL + "/services/T000/B000/XXXXSECRET"
	cfg, err := cfg.validate("sales")
	if err != nil {
		panic(err)
	}
	return NewWebhook("sales", cfg, h.srv.Client(), nil)
}

func TestWebhookServerErrorsThenOK(t *testing.T) {
	h := newHook(t, reply{status: 500, body: "oops"}, reply{status: 502}, reply{status: 500})
	var s sleeps
	d, _ := testDispatcher(t, map[string]Sink{"sales": webhookSink(h, SinkConfig{Type: TypeWebhook})}, Options{
		Sleep:    s.sleep,
		Policies: map[string]Policy{"sales": {Retry: Retry{Initial: 100 * time.Millisecond}}},
	})
	a := newAction("sales")
	if err := d.Dispatch(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	reqs := h.requests()
	if len(reqs) != 4 || reqs[3].status != 200 {
		t.Fatalf("%d requests, want 3 failed and 1 delivered", len(reqs))
	}
	for _, r := range reqs {
		if k := r.header.Get(HeaderIdempotencyKey); k != a.Record.ID {
			t.Errorf("Idempotency-Key %q, want the action id %q on every attempt", k, a.Record.ID)
		}
	}
	// Exponential backoff with ±50% jitter: 100ms, 200ms, 400ms.
	waits := s.all()
	if len(waits) != 3 {
		t.Fatalf("waits %v, want 3", waits)
	}
	for i, base := range []time.Duration{100, 200, 400} {
		base *= time.Millisecond
		if w := waits[i]; w < base/2 || w > base*3/2+time.Millisecond {
			t.Errorf("wait %d is %v, want %v ±50%%", i, w, base)
		}
	}
	if n := testutil.ToFloat64(d.m.delivered.WithLabelValues("sales")); n != 1 {
		t.Errorf("delivered_total %v, want 1", n)
	}
	if n := testutil.ToFloat64(d.m.retried.WithLabelValues("sales")); n != 3 {
		t.Errorf("retried_total %v, want 3", n)
	}
	// The same action again (a replay) reaches the receiver no more.
	if err := d.Dispatch(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if n := len(h.requests()); n != 4 {
		t.Errorf("a replayed action was sent again: %d requests", n)
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		maxWait    time.Duration
		want       time.Duration
	}{
		{"429 seconds", 429, "1", 0, time.Second},
		{"503 seconds", 503, "7", 0, 7 * time.Second},
		{"503 http date", 503, now.Add(3 * time.Second).Format(http.TimeFormat), 0, 3 * time.Second},
		{"429 capped by max_retry_after", 429, "3600", 2 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHook(t, reply{status: tc.status, header: map[string]string{"Retry-After": tc.retryAfter}})
			cfg, err := SinkConfig{Type: TypeWebhook, URL: h.srv.URL}.validate("sales")
			if err != nil {
				t.Fatal(err)
			}
			var s sleeps
			d, _ := testDispatcher(t, map[string]Sink{"sales": NewWebhook("sales", cfg, h.srv.Client(), func() time.Time { return now })}, Options{
				Sleep:    s.sleep,
				Policies: map[string]Policy{"sales": {Retry: Retry{MaxRetryAfter: tc.maxWait}}},
			})
			if err := d.Dispatch(t.Context(), newAction("sales")); err != nil {
				t.Fatal(err)
			}
			if waits := s.all(); len(waits) != 1 || waits[0] != tc.want {
				t.Errorf("waits %v, want [%v]", waits, tc.want)
			}
		})
	}
}

// TestWebhookRetryAfterRealTime measures, on the wall clock, that a
// Retry-After: 1 was honoured.
func TestWebhookRetryAfterRealTime(t *testing.T) {
	t.Parallel()
	h := newHook(t, reply{status: 429, header: map[string]string{"Retry-After": "1"}})
	d, _ := testDispatcher(t, map[string]Sink{"sales": webhookSink(h, SinkConfig{Type: TypeWebhook})}, Options{Sleep: sleepTimer})
	if err := d.Dispatch(t.Context(), newAction("sales")); err != nil {
		t.Fatal(err)
	}
	reqs := h.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if waited := reqs[1].at.Sub(reqs[0].at); waited < time.Second {
		t.Errorf("retried after %v, before the 1s the receiver asked for", waited)
	}
}

func TestWebhookRefusedGoesToDeadLetter(t *testing.T) {
	h := newHook(t, reply{status: 400, body: `{"error":"invalid_payload","detail":"missing text"}`})
	var (
		mu     sync.Mutex
		dead   []Action
		reason error
	)
	d, _ := testDispatcher(t, map[string]Sink{"sales": webhookSink(h, SinkConfig{Type: TypeWebhook})}, Options{
		DeadLetter: func(_ context.Context, a Action, why error) error {
			mu.Lock()
			defer mu.Unlock()
			dead, reason = append(dead, a), why
			return nil
		},
	})
	a := newAction("sales")
	if err := d.Dispatch(t.Context(), a); err != nil {
		t.Fatalf("Dispatch: %v; a dead-lettered action is settled", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("%d requests: a 400 must not be retried", n)
	}
	if len(dead) != 1 || dead[0].Record.ID != a.Record.ID || string(dead[0].JSON) != string(jsonOf(a)) {
		t.Fatalf("dead letters %v, want the action", dead)
	}
	var se *StatusError
	if !errors.As(reason, &se) || se.Status != 400 || !strings.Contains(se.Body, "missing text") {
		t.Fatalf("reason %v: want a *StatusError with the status and the body", reason)
	}
	if !errors.Is(reason, ErrPermanent) || !IsPermanent(reason) || Reason(reason) != ReasonRejected {
		t.Errorf("reason %v: want permanent, kind %q (got %q)", reason, ReasonRejected, Reason(reason))
	}
	if msg := reason.Error(); !strings.Contains(msg, "400") || !strings.Contains(msg, `sink "sales"`) {
		t.Errorf("reason %q: want the sink and the status", msg)
	}
	if strings.Contains(reason.Error(), "XXXXSECRET") {
		t.Errorf("reason %q shows the webhook's secret path", reason)
	}
	if n := testutil.ToFloat64(d.m.deadLettered.WithLabelValues("sales", ReasonRejected)); n != 1 {
		t.Errorf("dead_lettered_total %v, want 1", n)
	}
}

// jsonOf is the JSON a dispatched action carries.
func jsonOf(a Action) []byte {
	if a.JSON != nil {
		return a.JSON
	}
	b, _ := json.Marshal(&a.Record)
	return b
}

func TestWebhookStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {410, true}, {413, true}, {422, true}, {301, true},
		{408, false}, {425, false}, {429, false}, {500, false}, {502, false}, {503, false}, {504, false},
	} {
		h := newHook(t, reply{status: tc.status})
		w := webhookSink(h, SinkConfig{Type: TypeWebhook})
		err := w.Write(t.Context(), []Action{newAction("sales")})
		var se *StatusError
		if err == nil || !errors.As(err, &se) || se.Status != tc.status {
			t.Errorf("%d: err %v, want a *StatusError", tc.status, err)
			continue
		}
		if IsPermanent(err) != tc.permanent || errors.Is(err, ErrTransient) == tc.permanent {
			t.Errorf("%d: permanent = %v, want %v", tc.status, IsPermanent(err), tc.permanent)
		}
	}
}

func TestWebhookSlackFormat(t *testing.T) {
	h := newHook(t)
	w := webhookSink(h, SinkConfig{Type: TypeWebhook, Format: FormatSlack})
	withMessage := newAction("sales")
	withMessage.Record.Message = "Hot lead ann@example.com scored 120 (hot-lead)"
	noMessage := newAction("sales")
	noMessage.Record.Message = ""
	noMessage.Record.Contact = "u42"
	hostile := newAction("sales")
	hostile.Record.Message = "Hot lead <!channel> & <https://evil.example|click>"
	for _, a := range []Action{withMessage, noMessage, hostile} {
		if err := w.Write(t.Context(), []Action{a}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`{"text":"Hot lead ann@example.com scored 120 (hot-lead)"}`,
		`{"text":"sales-alert: pricing-3x fired for u42 (score 120)"}`,
		`{"text":"Hot lead \u0026lt;!channel\u0026gt; \u0026amp; \u0026lt;https://evil.example|click\u0026gt;"}`,
	}
	for i, r := range h.requests() {
		if string(r.body) != want[i] {
			t.Errorf("body %s, want %s", r.body, want[i])
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func TestWebhookSignature(t *testing.T) {
	secret := "whsec_3b1f0c"
	now := time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC)
	h := newHook(t)
	cfg, err := SinkConfig{Type: TypeWebhook, URL: h.srv.URL, Secret: secret, Headers: map[string]string{"Authorization": "Bearer t0k"}}.validate("sales")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWebhook("sales", cfg, h.srv.Client(), func() time.Time { return now })
	a := newAction("sales")
	if err := w.Write(t.Context(), []Action{a}); err != nil {
		t.Fatal(err)
	}
	r := h.requests()[0]
	if string(r.body) != string(jsonOf(a)) {
		t.Errorf("body %s, want the action record", r.body)
	}
	if got := r.header.Get("Authorization"); got != "Bearer t0k" {
		t.Errorf("Authorization %q: configured headers are sent", got)
	}
	// The documented scheme, computed here by hand.
	ts := r.header.Get(HeaderTimestamp)
	if ts != "1772787600" {
		t.Errorf("%s = %q, want the Unix seconds of now", HeaderTimestamp, ts)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(r.body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.header.Get(HeaderSignature) != want {
		t.Errorf("%s = %q, want %q", HeaderSignature, r.header.Get(HeaderSignature), want)
	}
	// And as a receiver checks it.
	for _, tc := range []struct {
		name   string
		secret string
		body   string
		at     time.Time
		ok     bool
	}{
		{"valid", secret, string(r.body), now.Add(time.Minute), true},
		{"wrong secret", "other", string(r.body), now, false},
		{"tampered body", secret, strings.Replace(string(r.body), "120", "999", 1), now, false},
		{"replayed later", secret, string(r.body), now.Add(10 * time.Minute), false},
	} {
		err := VerifySignature([]byte(tc.secret), r.header, []byte(tc.body), tc.at, 0)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrSignature)) {
			t.Errorf("%s: VerifySignature = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	// No secret, no signature headers.
	h2 := newHook(t)
	if err := webhookSink(h2, SinkConfig{Type: TypeWebhook}).Write(t.Context(), []Action{a}); err != nil {
		t.Fatal(err)
	}
	if r := h2.requests()[0]; r.header.Get(HeaderSignature) != "" || r.header.Get(HeaderTimestamp) != "" {
		t.Errorf("signature headers without a secret: %v", r.header)
	}
}

// TestWebhookHangingReceiver: a receiver that never answers costs each
// attempt the sink's timeout, holds at most the sink's concurrency, and
// does not hold up another sink.
func TestWebhookHangingReceiver(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices when the client gives up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	// Requests in progress, counted on the client's side.
	ct := &countingTransport{base: srv.Client().Transport}
	client := &http.Client{Transport: ct}

	// One attempt alone: a timeout is a transient failure that says so.
	cfg, err := SinkConfig{Type: TypeWebhook, URL: srv.URL, Timeout: 50 * time.Millisecond, Policy: Policy{Concurrency: 2}}.validate("slow")
	if err != nil {
		t.Fatal(err)
	}
	slow := NewWebhook("slow", cfg, client, nil)
	err = slow.Write(t.Context(), []Action{newAction("slow")})
	if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout (50ms)") {
		t.Fatalf("Write to a hanging receiver: %v; want a transient timeout naming the sink's timeout", err)
	}

	out := &flakyWriter{}
	d, _ := testDispatcher(t, map[string]Sink{"slow": slow, "log": NewStdout(out, FormatText)}, Options{
		Policies: map[string]Policy{"slow": {Concurrency: 2, Retry: Retry{Initial: time.Millisecond, For: -1}}},
	})
	slowDone := make(chan error, 5)
	for range 5 {
		go func() { slowDone <- d.Dispatch(t.Context(), newAction("slow")) }()
	}
	untilTrue(t, "the slow sink's slots are taken", func() bool { return ct.inside.Load() == 2 })
	for range 20 {
		if err := d.Dispatch(t.Context(), newAction("log")); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 20 {
		t.Errorf("log sink wrote %d lines while the slow one hung, want 20", n)
	}
	select {
	case err := <-slowDone:
		t.Fatalf("a dispatch to the hanging receiver returned %v", err)
	default:
	}
	untilTrue(t, "attempts time out and are retried", func() bool {
		return testutil.ToFloat64(d.m.retried.WithLabelValues("slow")) >= 4
	})
	if m := ct.most.Load(); m > 2 {
		t.Errorf("%d requests at once to a sink of concurrency 2", m)
	}
	// Shutdown gives up on the hanging sink: its actions are not settled
	// (so not committed, and read again after the restart).
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Close = %v, want ErrClosed: it gave up", err)
	}
	for range 5 {
		if err := <-slowDone; !errors.Is(err, ErrClosed) {
			t.Errorf("Dispatch = %v, want an error matching ErrClosed", err)
		}
	}
}

// countingTransport counts the requests in progress, and the most at once.
type countingTransport struct {
	base         http.RoundTripper
	inside, most atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.inside.Add(1)
	defer c.inside.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return c.base.RoundTrip(r)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"-5", 0},
		{"soon", 0},
		{"Fri, 06 Mar 2026 09:00:30 GMT", 30 * time.Second},
		{"Fri, 06 Mar 2026 08:59:00 GMT", 0}, // in the past
		{"Friday, 06-Mar-26 09:01:00 GMT", time.Minute},
	} {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/XXXX": "https://hooks.slack.com/services/…",
		"https://user:pw@example.com/hook?token=abc":      "https://example.com/hook/…",
		"http://127.0.0.1:8080":                           "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/hook":                      "http://127.0.0.1:8080/hook",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWebhookRedirectIsRefused(t *testing.T) {
	h := newHook(t, reply{status: http.StatusFound, header: map[string]string{"Location": "/elsewhere"}})
	cfg, err := SinkConfig{Type: TypeWebhook, URL: h.srv.URL + "/old"}.validate("sales")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWebhook("sales", cfg, nil, nil) // its own client
	defer w.Close(t.Context())
	err = w.Write(t.Context(), []Action{withJSON(newAction("sales"))})
	var se *StatusError
	if !IsPermanent(err) || !errors.As(err, &se) || se.Status != http.StatusFound || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("Write = %v, want a permanent 302 that says to fix the url", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("%d requests: the redirect was followed", n)
	}
}
