package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/internal/testenv"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// eventually waits for cond up to timeout (testenv.Eventually).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New("waiting for " + what)
	})
}

// uiEnv is an admin server over a memory store fed through an engine
// partition whose results go to a History, as the pipeline's observers do.
type uiEnv struct {
	srv  *httptest.Server
	hist *admin.History
	src  *admin.RulesSource
	reg  *prometheus.Registry
	file string
	rs   atomic.Pointer[rules.Ruleset]
	part *engine.Partition
}

func newUIEnv(t *testing.T, token string) *uiEnv {
	t.Helper()
	return newUIEnvWith(t, token, admin.HistoryOptions{})
}

func newUIEnvWith(t *testing.T, token string, ho admin.HistoryOptions) *uiEnv {
	t.Helper()
	e := &uiEnv{hist: admin.NewHistory(ho), reg: prometheus.NewRegistry()}
	e.file = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(e.file, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.LoadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	e.rs.Store(rs)
	e.src, err = admin.NewRulesSource(admin.RulesSourceOptions{
		Path: e.file, Content: []byte(testRules), Running: rs, Registerer: e.reg,
		Apply: func(rs *rules.Ruleset) error { e.rs.Store(rs); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	mem := state.NewMemory()
	e.part = engine.NewPartition(rs, mem, func(res *rules.Result) {
		e.hist.Applied(res)
		for i := range res.Records {
			e.hist.Action(&res.Records[i])
		}
	})
	e.srv = httptest.NewServer(admin.Handler(admin.Options{
		Gatherer: e.reg, Contacts: &memContacts{m: mem, applied: true}, Rules: func() *rules.Ruleset { return e.rs.Load() },
		Token: token, History: e.hist, RulesSource: e.src,
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *uiEnv) apply(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		ev, err := event.Decode([]byte(l), event.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.part.Apply(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

var u1Events = []string{
	`{"type":"identify","userId":"u1","traits":{"company_size":500,"email":"Ada@Example.com"},"timestamp":"2031-01-01T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2031-01-01T10:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"path":"/pricing/team"},"timestamp":"2031-01-01T11:00:00Z"}`,
}

func getJSON(t *testing.T, url, token string, v any) int {
	t.Helper()
	code, body := do(t, "GET", url, token)
	if code == 200 && v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, body)
		}
	}
	return code
}

func TestTimelineAndSearch(t *testing.T) {
	e := newUIEnv(t, "")
	e.apply(t, u1Events...)
	var tl admin.Timeline
	if code := getJSON(t, e.srv.URL+"/contacts/u1/timeline", "", &tl); code != 200 {
		t.Fatalf("timeline: %d", code)
	}
	if len(tl.Events) != 3 || tl.Events[1].Path != "/pricing" || len(tl.Events[1].Points) != 1 || tl.Events[1].Points[0].Points != 10 {
		t.Errorf("events %+v", tl.Events)
	}
	// 25 fit + 10·0.5^(1/24) + 10 = 44.715 ≥ 40: warm fired at 11:00.
	if len(tl.Firings) != 1 || tl.Firings[0].Trigger != "warm" || tl.Firings[0].At != "2031-01-01T11:00:00Z" {
		t.Errorf("firings %+v", tl.Firings)
	}
	if n := len(tl.Chart.Score); n == 0 || tl.Chart.Score[n-1] != tl.Score || len(tl.Chart.Awards) != 2 || len(tl.Chart.ProjScore) == 0 {
		t.Errorf("chart: score %v (view %v), awards %v", tl.Chart.Score, tl.Score, tl.Chart.Awards)
	}
	var sr admin.SearchResponse
	if code := getJSON(t, e.srv.URL+"/contacts?email=ada@example.COM", "", &sr); code != 200 || len(sr.IDs) != 1 || sr.IDs[0] != "u1" {
		t.Errorf("search by email: %d %+v", code, sr)
	}
	if code := getJSON(t, e.srv.URL+"/contacts?email=nobody@example.com", "", &sr); code != 200 || len(sr.IDs) != 0 {
		t.Errorf("search for an unknown email: %d %+v", code, sr)
	}
	if code, _ := do(t, "GET", e.srv.URL+"/contacts/nobody/timeline", ""); code != 404 {
		t.Errorf("timeline of an unknown contact: %d", code)
	}
	// Erasure forgets the history.
	if code, _ := do(t, "DELETE", e.srv.URL+"/contacts/u1", ""); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if len(e.hist.Contact("u1").Events) != 0 {
		t.Error("history kept after erasure")
	}
}

// ui.history: actions and off. The page keeps working on the stored
// state; what is not recorded is empty and the timeline says why.
func TestTimelineWithoutEventHistory(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       admin.HistoryOptions
		want    string
		firings int
	}{
		{"actions", admin.HistoryOptions{NoEvents: true}, admin.RecordsActions, 1},
		{"off", admin.HistoryOptions{NoEvents: true, NoActions: true}, admin.RecordsNothing, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUIEnvWith(t, "", tc.o)
			e.apply(t, u1Events...)
			var tl admin.Timeline
			if code := getJSON(t, e.srv.URL+"/contacts/u1/timeline", "", &tl); code != 200 {
				t.Fatalf("timeline: %d", code)
			}
			if tl.History != tc.want || len(tl.Events) != 0 || len(tl.Firings) != tc.firings || len(tl.Chart.Awards) != 0 {
				t.Errorf("history %q, %d events, %d firings, %d awards; want %q, 0, %d, 0", tl.History, len(tl.Events), len(tl.Firings), len(tl.Chart.Awards), tc.want, tc.firings)
			}
			if tl.Events == nil || tl.Firings == nil {
				t.Error("events or firings null; the page wants lists")
			}
			// The stored state is whole: the score counts every event.
			if tl.Score < 40 || len(tl.Chart.Score) == 0 {
				t.Errorf("score %v, chart %v", tl.Score, tl.Chart.Score)
			}
			var sr admin.SearchResponse
			if code := getJSON(t, e.srv.URL+"/contacts?email=ada@example.com", "", &sr); code != 200 || len(sr.IDs) != 0 || !strings.Contains(sr.Note, "ui.history") {
				t.Errorf("search by email: %d %+v", code, sr)
			}
		})
	}
	e := newUIEnv(t, "")
	e.apply(t, u1Events...)
	var tl admin.Timeline
	if getJSON(t, e.srv.URL+"/contacts/u1/timeline", "", &tl); tl.History != admin.RecordsEvents {
		t.Errorf("default history %q, want %q", tl.History, admin.RecordsEvents)
	}
}

// With identity links, the timeline shows the merged ids, and the events
// of a merged anonymous id are the user's (SPEC §6).
func TestTimelineMergedIDs(t *testing.T) {
	e := newUIEnv(t, "")
	e.part.UseLinks(state.NewMemoryLinks())
	e.apply(t,
		`{"type":"page","anonymousId":"a1","properties":{"path":"/pricing"},"timestamp":"2031-01-01T09:00:00Z"}`,
		`{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"email":"u1@x.io"},"timestamp":"2031-01-01T10:00:00Z"}`,
		`{"type":"page","anonymousId":"a1","properties":{"path":"/pricing/team"},"timestamp":"2031-01-01T11:00:00Z"}`,
	)
	var tl admin.Timeline
	if code := getJSON(t, e.srv.URL+"/contacts/u1/timeline", "", &tl); code != 200 {
		t.Fatalf("timeline: %d", code)
	}
	if len(tl.Merged) != 1 || tl.Merged[0] != "a1" {
		t.Errorf("merged ids %v, want [a1]", tl.Merged)
	}
	// The identify and the later anonymous page are u1's events.
	if len(tl.Events) != 2 || tl.Events[1].Path != "/pricing/team" {
		t.Errorf("u1's events %+v", tl.Events)
	}
	// Both pricing awards count in u1's score (10·0.5^(2/24) + 10).
	if tl.Engagement < 19 || tl.Engagement > 20 {
		t.Errorf("u1's engagement %v, want the merged points", tl.Engagement)
	}
}

func TestWhyEndpoint(t *testing.T) {
	e := newUIEnv(t, "tok")
	e.apply(t, u1Events[:2]...)
	var v rules.WhyView
	if code := getJSON(t, e.srv.URL+"/contacts/u1/why/warm", "tok", &v); code != 200 {
		t.Fatalf("why: %d", code)
	}
	// 25 + 10 = 35 < 40.
	if v.Holds == nil || *v.Holds || len(v.Values) != 1 || v.Values[0].Name != "score" || v.Values[0].Value != 35.0 {
		t.Errorf("why warm: %+v", v)
	}
	if !strings.Contains(v.Verdict, "score = 35") {
		t.Errorf("verdict %q", v.Verdict)
	}
	if code, body := do(t, "GET", e.srv.URL+"/contacts/u1/why/nope", "tok"); code != 404 || !strings.Contains(body, "warm, quiet") {
		t.Errorf("unknown trigger: %d %s", code, body)
	}
	if code, _ := do(t, "GET", e.srv.URL+"/contacts/u1/why/warm", ""); code != 401 {
		t.Errorf("why without the token: %d", code)
	}
}

// externalRef finds references to assets elsewhere (the SVG namespace URI
// is a name, not a reference).
var externalRef = regexp.MustCompile(`(?:src|href)=["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|fetch\(\s*["'](?:https?:)?//`)

func TestUIPage(t *testing.T) {
	e := newUIEnv(t, "tok")
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/app.css"} {
		code, body := do(t, "GET", e.srv.URL+p, "") // the page needs no token: it asks for it
		if code != 200 || len(body) < 500 {
			t.Errorf("%s: %d (%d bytes)", p, code, len(body))
		}
		if m := externalRef.FindString(body); m != "" {
			t.Errorf("%s refers to an external asset: %s", p, m)
		}
	}
	resp, err := http.Get(e.srv.URL + "/")
	if err != nil || resp.Request.URL.Path != "/ui/" {
		t.Errorf("/ does not lead to /ui/: %v", err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

func TestFeedSSE(t *testing.T) {
	e := newUIEnv(t, "tok")
	if code, _ := do(t, "GET", e.srv.URL+"/feed", ""); code != 401 {
		t.Fatalf("feed without a token: %d", code)
	}
	// EventSource clients pass the token in the query; with a filter.
	req, _ := http.NewRequest("GET", e.srv.URL+"/feed?token=tok&trigger=warm", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	eventually(t, 10*time.Second, "the feed subscriber", func() bool { return e.hist.Feed().Subscribers() == 1 })
	e.hist.Action(&rules.Record{ID: "x1", Trigger: "other", Contact: "u9", Action: "alert"})
	e.apply(t, u1Events...)
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() && len(got) < 2 {
		if line := sc.Text(); strings.HasPrefix(line, "event: ") || strings.HasPrefix(line, "data: ") {
			got = append(got, line)
		}
	}
	if len(got) != 2 || got[0] != "event: action" || !strings.Contains(got[1], `"trigger":"warm"`) || !strings.Contains(got[1], `"contact":"u1"`) {
		t.Errorf("feed (filtered to warm) gave %q", got)
	}
}

func TestFeedSlowSubscriberDoesNotBlock(t *testing.T) {
	f := admin.NewFeed(4)
	done := make(chan struct{})
	go func() {
		for range 1000 {
			f.Publish(&rules.Record{ID: "a"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked without subscribers")
	}
}

func TestHistoryBounds(t *testing.T) {
	h := admin.NewHistory(admin.HistoryOptions{Contacts: 2, Events: 3})
	for i, id := range []string{"a", "b", "a", "c"} { // c evicts b, the least recent
		for k := range 5 {
			e := &event.Event{Type: "page", UserID: id, Time: int64(i*10+k) * 1e9, Traits: map[string]any{"email": id + "@x"}}
			h.Applied(&rules.Result{Event: e})
		}
	}
	if h.Len() != 2 {
		t.Errorf("contacts held: %d, want 2", h.Len())
	}
	if got := h.Contact("a").Events; len(got) != 3 || got[2].At != "1970-01-01T00:00:24Z" {
		t.Errorf("a's events: %+v", got)
	}
	if _, ok := h.ByEmail("b@x"); ok || len(h.Contact("b").Events) != 0 {
		t.Error("b was not evicted with its email")
	}
	if id, ok := h.ByEmail("C@X"); !ok || id != "c" {
		t.Errorf("email of c: %q %v", id, ok)
	}
}

const invalidRules = "version: 1\ntriggers:\n  - id: t1\n    when: windows.nope >= 1\n    do: [x]\n"

// reloads reads leadpulse_rules_reloads_total{result} from the registry.
func reloads(e *uiEnv, result string) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "leadpulse_rules_reloads_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.Label[0].GetValue() == result {
				return m.Counter.GetValue()
			}
		}
	}
	return -1
}

func TestReloadEndpoint(t *testing.T) {
	e := newUIEnv(t, "tok")
	var rr admin.RulesResponse
	getJSON(t, e.srv.URL+"/rules", "tok", &rr)
	if rr.Version.Hash == "" || rr.LastReload != nil || len(rr.Triggers) != 2 || rr.Sinks[0] != "sales" {
		t.Fatalf("rules before: %+v", rr)
	}
	first := rr.Version.Hash
	post := func() (int, admin.ReloadResult) {
		code, body := do(t, "POST", e.srv.URL+"/rules/reload", "tok")
		var res admin.ReloadResult
		_ = json.Unmarshal([]byte(body), &res)
		return code, res
	}
	for _, tc := range []struct {
		name    string
		content string
		code    int
		result  string
		hash    bool // the running version changed
	}{
		{"unchanged", testRules, 200, "unchanged", false},
		{"invalid", invalidRules, 422, "invalid", false},
		{"valid", strings.Replace(testRules, "score >= 40", "score >= 30", 1), 200, "ok", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.rs.Load()
			if err := os.WriteFile(e.file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			code, res := post()
			if code != tc.code || res.Result != tc.result || res.Via != "api" {
				t.Fatalf("POST /rules/reload: %d %+v", code, res)
			}
			if tc.result == "invalid" && (len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "rules.yaml:4: t1:")) {
				t.Errorf("problems %q", res.Problems)
			}
			if changed := e.rs.Load() != before; changed != tc.hash {
				t.Errorf("running rules changed: %v, want %v", changed, tc.hash)
			}
			getJSON(t, e.srv.URL+"/rules", "tok", &rr)
			if (rr.Version.Hash != first) != tc.hash || rr.LastReload == nil || rr.LastReload.Result != tc.result {
				t.Errorf("GET /rules after: %+v (last %+v)", rr.Version, rr.LastReload)
			}
		})
	}
	if reloads(e, "ok") != 1 || reloads(e, "invalid") != 1 {
		t.Errorf("reloads counted: ok %v invalid %v", reloads(e, "ok"), reloads(e, "invalid"))
	}
	if code, _ := do(t, "POST", e.srv.URL+"/rules/reload", ""); code != 401 {
		t.Errorf("reload without the token: %d", code)
	}
}

func TestReloadOnFileChange(t *testing.T) {
	e := newUIEnv(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.src.Watch(ctx, 20*time.Millisecond, 50*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	last := func() string {
		_, r := e.src.Status()
		if r == nil {
			return ""
		}
		return r.Result + "/" + r.Via
	}
	// An invalid file is refused and the running rules stay.
	start := e.rs.Load()
	writeLater(t, e.file, invalidRules)
	eventually(t, 20*time.Second, "the invalid file to be refused", func() bool { return last() == "invalid/file" })
	if e.rs.Load() != start {
		t.Fatal("an invalid file replaced the running rules")
	}
	// A valid one is picked up. Replaced by rename, as editors and
	// Kubernetes do: the watch follows the path, not the inode.
	tmp := e.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Replace(testRules, "score >= 40", "score >= 30", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	bump(t, tmp)
	if err := os.Rename(tmp, e.file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the valid file to be loaded", func() bool { return last() == "ok/file" })
	if e.rs.Load() == start || !strings.Contains(e.rs.Load().File, "rules.yaml") {
		t.Fatal("the valid file was not applied")
	}
	if reloads(e, "ok") != 1 || reloads(e, "invalid") != 1 {
		t.Errorf("reloads counted: ok %v invalid %v", reloads(e, "ok"), reloads(e, "invalid"))
	}
}

// writeLater writes a file with a modification time surely different from
// the previous one (coarse file system clocks).
func writeLater(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	bump(t, path)
}

func bump(t *testing.T, path string) {
	t.Helper()
	later := time.Now().Add(time.Duration(time.Now().UnixNano()%1000+1) * time.Millisecond)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

// A change made between the load and the start of the watch is not missed:
// the watch compares the file with the running rules, not only with what
// it saw first.
func TestReloadOnFileChangedBeforeWatch(t *testing.T) {
	e := newUIEnv(t, "")
	start := e.rs.Load()
	writeLater(t, e.file, strings.Replace(testRules, "score >= 40", "score >= 30", 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.src.Watch(ctx, 20*time.Millisecond, 50*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, 20*time.Second, "the file changed before the watch to be loaded", func() bool {
		_, r := e.src.Status()
		return r != nil && r.Result == "ok" && r.Via == "file"
	})
	if e.rs.Load() == start {
		t.Fatal("the changed file was not applied")
	}
}
