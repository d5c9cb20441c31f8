package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errs)
	return code, out.String(), errs.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const specEvents = `{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-02T09:00:00Z","messageId":"a"}
not json
{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-04T09:00:00Z","messageId":"b"}
{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-04T09:00:00Z","messageId":"b"}
{"type":"page","properties":{"path":"/pricing"},"timestamp":"2026-03-05T09:00:00Z"}
{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-06T09:00:00Z","messageId":"c"}
`

func TestReplayCommand(t *testing.T) {
	code, out, errs := runCLI(t, specEvents, "replay", "--rules", "../../examples/spec.yaml", "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one action line, got %d:\n%s", len(lines), out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "action", "trigger", "contact", "at", "score", "fit", "engagement", "stage", "explain"} {
		if _, ok := rec[f]; !ok {
			t.Errorf("action record lacks %q: %s", f, lines[0])
		}
	}
	if rec["trigger"] != "pricing-3x" || rec["action"] != "sales-alert" || rec["contact"] != "u1" || rec["at"] != "2026-03-06T09:00:00Z" {
		t.Errorf("unexpected record: %s", lines[0])
	}
	// 10 points each, half-life 30d: 10·2^(-4/30) + 10·2^(-2/30) + 10.
	if rec["engagement"] != 28.666 || rec["message"] != "Hot lead  scored 28.67 (pricing-3x)" {
		t.Errorf("engagement/message: %v / %q", rec["engagement"], rec["message"])
	}
	for _, want := range []string{"line 2: malformed", "line 5: no_contact", "1 duplicates", "2 bad"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestReplayUntil(t *testing.T) {
	events := `{"type":"track","userId":"u1","event":"Product Added","timestamp":"2026-03-02T09:00:00Z"}` + "\n"
	_, out, _ := runCLI(t, events, "replay", "--rules", "../../examples/spec.yaml", "-")
	if strings.Contains(out, "abandoned-cart") {
		t.Fatalf("timer fired before its due time without --until:\n%s", out)
	}
	code, out, errs := runCLI(t, events, "replay", "--rules", "../../examples/spec.yaml", "--until", "2026-03-02T10:00:00Z", "-")
	if code != 0 || !strings.Contains(out, `"trigger":"abandoned-cart"`) || !strings.Contains(out, `"at":"2026-03-02T10:00:00Z"`) {
		t.Fatalf("exit %d, out:\n%s\nerr:\n%s", code, out, errs)
	}
	code, _, errs = runCLI(t, events, "replay", "--rules", "../../examples/spec.yaml", "--until", "tomorrow", "-")
	if code != 2 || !strings.Contains(errs, "RFC 3339") {
		t.Errorf("bad --until: exit %d, %s", code, errs)
	}
}

func TestRulesCheck(t *testing.T) {
	code, out, _ := runCLI(t, "", "rules", "check", "../../examples/spec.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("spec example: exit %d\n%s", code, out)
	}
	bad := writeFile(t, "bad.yaml", `version: 1
triggers:
  - id: t1
    when: windows.nope >= 3
    do: [missing]
`)
	code, out, _ = runCLI(t, "", "rules", "check", bad)
	want := bad + ":4: t1: unknown window \"nope\"\n" + bad + ":5: t1: unknown action \"missing\" in `do`; define it under `actions:`\n"
	if code != 1 || out != want {
		t.Fatalf("exit %d, got:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestRulesTest(t *testing.T) {
	code, out, _ := runCLI(t, "", "rules", "test", "../../examples/spec.yaml")
	if code != 0 || !strings.Contains(out, "1 passed, 0 failed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	failing := writeFile(t, "failing.yaml", `version: 1
windows:
  views: { match: 'type == "page"', over: 1h }
triggers:
  - id: two-views
    when: windows.views >= 2
    do: [log]
actions:
  log: { sink: log }
tests:
  - name: expects a firing that does not happen
    events:
      - { type: page, userId: u1, timestamp: "2026-03-02T09:00:00Z" }
    expect:
      - { trigger: two-views, contact: u1, at: "2026-03-02T09:00:00Z" }
`)
	code, out, _ = runCLI(t, "", "rules", "test", failing)
	for _, want := range []string{"FAIL", "expected:", "trigger=two-views contact=u1 at=2026-03-02T09:00:00Z", "got:", "(none)", "0 passed, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := runCLI(t, "", "replay"); code != 2 {
		t.Errorf("replay without --rules: exit %d, want 2", code)
	}
	if code, _, errs := runCLI(t, "", "replay", "--rules", "../../examples/spec.yaml", "/nonexistent.jsonl"); code != 2 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing events file: exit %d %s", code, errs)
	}
	if code, _, _ := runCLI(t, "", "nope"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}
