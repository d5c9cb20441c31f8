package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

const testRules = `version: 1
windows:
  pricing_7d:
    match: type == "page" && properties.path startsWith "/pricing"
    over: 7d
scoring:
  engagement:
    half_life: 1d
    rules:
      - id: pricing
        on: type == "page" && properties.path startsWith "/pricing"
        points: 10
  fit:
    rules:
      - id: big
        if: traits.company_size >= 200
        points: 25
      - id: health
        if: traits.industry == "healthcare"
        points: 5
stages: [lead, mql]
triggers:
  - id: warm
    when: score >= 40
    set_stage: mql
    do: [alert]
  - id: quiet
    inactive: 3d
    do: [alert]
actions:
  alert:
    sink: sales
`

// memContacts serves contacts from a replayed memory store.
type memContacts struct {
	m          *state.Memory
	forgotten  []string
	applied    bool
	err        error
	inspectErr error // Inspect only
}

func (c *memContacts) Inspect(ctx context.Context, id string) (*state.Stored, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.inspectErr != nil {
		return nil, c.inspectErr
	}
	x, _ := c.m.Get(ctx, id)
	if x.Seq == 0 {
		return nil, fmt.Errorf("contact %q: %w", id, state.ErrNotFound)
	}
	b, _ := state.Encode(x)
	cp, _ := state.Decode(b)
	return &state.Stored{Contact: cp, Pos: state.Position{Partition: 2, Offset: 41}, Version: 3, TTL: -1, Size: len(b)}, nil
}

func (c *memContacts) Forget(_ context.Context, id string) (bool, error) {
	c.forgotten = append(c.forgotten, id)
	return c.applied, c.err
}

func setup(t *testing.T, token string) (*httptest.Server, *memContacts, func() error) {
	t.Helper()
	rs, err := rules.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	mem := state.NewMemory()
	p := engine.NewPartition(rs, mem, nil)
	for _, line := range []string{
		`{"type":"identify","userId":"u1","traits":{"company_size":500,"industry":"retail"},"timestamp":"2031-01-01T09:00:00Z"}`,
		`{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2031-01-01T10:00:00Z"}`,
		`{"type":"page","userId":"u1","properties":{"path":"/pricing/team"},"timestamp":"2031-01-02T10:00:00Z"}`,
	} {
		e, err := event.Decode([]byte(line), event.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	c := &memContacts{m: mem, applied: true}
	var readyErr error
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "leadpulse_test_total", Help: "test"}))
	srv := httptest.NewServer(admin.Handler(admin.Options{
		Gatherer: reg,
		Ready:    func(context.Context) error { return readyErr },
		Contacts: c,
		Rules:    func() *rules.Ruleset { return rs },
		Token:    token,
	}))
	t.Cleanup(srv.Close)
	return srv, c, func() error { readyErr = errors.New("redis unavailable"); return nil }
}

func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	srv, _, _ := setup(t, "s3cret")
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/metrics", "", 200},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/contacts/u1", "", 401},
		{"GET", "/contacts/u1", "wrong", 401},
		{"DELETE", "/contacts/u1", "", 401},
		{"GET", "/contacts/u1", "s3cret", 200},
		{"DELETE", "/contacts/u1", "s3cret", 200},
		{"POST", "/contacts/u1", "s3cret", 405},
	} {
		code, body := do(t, tc.method, srv.URL+tc.path, tc.token)
		if code != tc.want {
			t.Errorf("%s %s (token %q): %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, body)
		}
	}
	if code, body := do(t, "GET", srv.URL+"/metrics", ""); !strings.Contains(body, "leadpulse_test_total") {
		t.Errorf("/metrics: %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	srv, _, unready := setup(t, "")
	if code, _ := do(t, "GET", srv.URL+"/readyz", ""); code != 200 {
		t.Errorf("readyz %d", code)
	}
	_ = unready()
	code, body := do(t, "GET", srv.URL+"/readyz", "")
	if code != 503 || !strings.Contains(body, "not ready: redis unavailable") {
		t.Errorf("readyz when not ready: %d %q", code, body)
	}
	if code, _ := do(t, "GET", srv.URL+"/healthz", ""); code != 200 {
		t.Errorf("healthz %d while not ready; it must stay 200", code)
	}
}

func TestContactView(t *testing.T) {
	srv, _, _ := setup(t, "")
	code, body := do(t, "GET", srv.URL+"/contacts/u1", "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var v admin.ContactResponse
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	// At the latest event (Jan 2, 10:00): pricing 10 decayed a day (5) + 10.
	want := rules.ContactView{
		ID: "u1", At: "2031-01-02T10:00:00Z", Latest: "2031-01-02T10:00:00Z", Events: 3,
		Score: 40, Fit: 25, Engagement: 15, Stage: "mql",
		Points:   rules.ViewPoints{Engagement: map[string]float64{"pricing": 15}, Fit: map[string]float64{"big": 25}},
		Windows:  map[string]float64{"pricing_7d": 2},
		Traits:   map[string]any{"company_size": 500.0, "industry": "retail"},
		Timers:   []rules.ViewTimer{{Trigger: "quiet", Kind: "inactive", Due: "2031-01-05T10:00:00Z"}},
		Triggers: []rules.ViewTrigger{{ID: "warm", Kind: "when", Fired: 1, LastFire: "2031-01-02T10:00:00Z", On: true}, {ID: "quiet", Kind: "inactive"}},
	}
	got, _ := json.Marshal(v.ContactView)
	wb, _ := json.Marshal(want)
	if string(got) != string(wb) {
		t.Errorf("view\n got %s\nwant %s", got, wb)
	}
	if st := v.Stored; st.Offset == nil || *st.Offset != 41 || st.Store != "redis" || st.Partition != 2 || st.Version != 3 || st.TTL != "none" || st.Bytes == 0 {
		t.Errorf("stored %+v", v.Stored)
	}
	// ?at= decays the engagement further; windows stay as of the latest event.
	_, body = do(t, "GET", srv.URL+"/contacts/u1?at=2031-01-03T10:00:00Z", "")
	v = admin.ContactResponse{}
	_ = json.Unmarshal([]byte(body), &v)
	if v.Engagement != 7.5 || v.Score != 32.5 || v.Windows["pricing_7d"] != 2 {
		t.Errorf("at a day later: %s", body)
	}
}

func TestErrors(t *testing.T) {
	srv, c, _ := setup(t, "")
	for _, tc := range []struct {
		path string
		err  error
		want int
		msg  string
	}{
		{"/contacts/nobody", nil, 404, `contact \"nobody\" is not stored`},
		{"/contacts/u1?at=yesterday", nil, 400, "not an RFC 3339 time"},
		{"/contacts/u1", fmt.Errorf("x: %w", state.ErrUnavailable), 503, "unavailable"},
		{"/contacts/u1", fmt.Errorf("x: %w", admin.ErrUnavailable), 503, "unavailable"},
		{"/contacts/u1", errors.New("boom"), 500, "boom"},
	} {
		c.err = tc.err
		code, body := do(t, "GET", srv.URL+tc.path, "")
		if code != tc.want || !strings.Contains(body, tc.msg) || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s (%v): %d %s, want %d …%s…", tc.path, tc.err, code, body, tc.want, tc.msg)
		}
	}
}

func TestForget(t *testing.T) {
	srv, c, _ := setup(t, "")
	code, body := do(t, "DELETE", srv.URL+"/contacts/u1", "")
	if code != 200 || !strings.Contains(body, `"erased"`) || len(c.forgotten) != 1 || c.forgotten[0] != "u1" {
		t.Errorf("DELETE: %d %s %v", code, body, c.forgotten)
	}
	c.applied = false
	if code, body := do(t, "DELETE", srv.URL+"/contacts/u1", ""); code != 202 || !strings.Contains(body, `"queued"`) {
		t.Errorf("DELETE queued: %d %s", code, body)
	}
	// A contact never seen: 404, and no erasure is sent.
	c.forgotten = nil
	code, body = do(t, "DELETE", srv.URL+"/contacts/a%2Fb", "")
	if code != 404 || !strings.Contains(body, `contact \"a/b\" is not stored`) || len(c.forgotten) != 0 {
		t.Errorf("DELETE of a contact not stored: %d %s, erasures sent %v", code, body, c.forgotten)
	}
	// When the store cannot tell, the erasure goes ahead.
	c.inspectErr = fmt.Errorf("%w: partition elsewhere", admin.ErrUnavailable)
	c.applied = true
	code, body = do(t, "DELETE", srv.URL+"/contacts/a%2Fb", "")
	if code != 200 || len(c.forgotten) != 1 || c.forgotten[0] != "a/b" {
		t.Errorf("DELETE when Inspect cannot tell: %d %s %v", code, body, c.forgotten)
	}
}

// TestProfiling: /debug/pprof/ is served only with Options.Profiling, and
// behind the token like the admin API (a heap profile shows what the
// process holds).
func TestProfiling(t *testing.T) {
	serve := func(profiling bool, token string) *httptest.Server {
		srv := httptest.NewServer(admin.Handler(admin.Options{Gatherer: prometheus.NewRegistry(), Profiling: profiling, Token: token}))
		t.Cleanup(srv.Close)
		return srv
	}
	off, open, guarded := serve(false, ""), serve(true, ""), serve(true, "s3cret")
	for _, tc := range []struct {
		name        string
		srv         *httptest.Server
		path, token string
		want        int
		body        string
	}{
		{"off", off, "/debug/pprof/heap", "", 404, ""},
		{"index", open, "/debug/pprof/", "", 200, "heap"},
		{"heap", open, "/debug/pprof/heap?debug=1", "", 200, "heap profile"},
		{"goroutines", open, "/debug/pprof/goroutine?debug=1", "", 200, "goroutine profile"},
		{"no token", guarded, "/debug/pprof/heap", "", 401, "bearer token"},
		{"token", guarded, "/debug/pprof/heap?debug=1", "s3cret", 200, "heap profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, "GET", tc.srv.URL+tc.path, tc.token)
			if code != tc.want || !strings.Contains(body, tc.body) {
				t.Errorf("GET %s: %d, want %d with %q: %.200s", tc.path, code, tc.want, tc.body, body)
			}
		})
	}
}
