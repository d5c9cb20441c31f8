package main

// The first hour of a new user (issue 9): messages and exit codes of the
// rough edges met on a fresh clone.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/leadpulse/leadpulse/examples"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/stream"
)

// pricingEvent is a pricing page view of u1 at the given time.
func pricingEvent(ts string) string {
	return `{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"` + ts + `"}`
}

func TestReplayTooLongLineIsBadInputAndTheRunGoesOn(t *testing.T) {
	huge := `{"type":"page","userId":"u1","properties":{"blob":"` + strings.Repeat("x", 10<<20) + `"}}`
	in := strings.Join([]string{
		pricingEvent("2026-03-02T09:00:00Z"),
		huge,
		pricingEvent("2026-03-04T09:00:00Z"),
		pricingEvent("2026-03-06T09:00:00Z"),
	}, "\n") + "\n"
	code, out, errs := runCLI(t, in, "replay", "--rules", "../../examples/spec.yaml", "-")
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, errs)
	}
	if !regexp.MustCompile(`(?m)^line 2: too_long: the line has 10485\d\d\d bytes, above the limit of 1048576`).MatchString(errs) {
		t.Errorf("stderr lacks line 2: too_long with its size:\n%.500s", errs)
	}
	// The lines after it are read: the third pricing view fires pricing-3x.
	if !strings.Contains(out, `"trigger":"pricing-3x"`) || !strings.Contains(errs, "4 lines, 3 events applied, 1 bad") {
		t.Errorf("the run did not go on after the long line:\nout: %s\nerr: %.500s", out, errs)
	}
}

func TestReplayInputErrors(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runCLI(t, "", "replay", "--rules", "../../examples/spec.yaml", dir)
	if code != 2 || !strings.Contains(errs, dir+" is a directory") || strings.Contains(errs, "bytes") {
		t.Errorf("a directory: exit %d, want 2 with %q; stderr: %s", code, "is a directory", errs)
	}
	// Input that fails while it is read is unreadable input too: exit 2.
	in := io.MultiReader(strings.NewReader(pricingEvent("2026-03-02T09:00:00Z")+"\n"), iotest.ErrReader(errors.New("disk on fire")))
	var out, errb bytes.Buffer
	code = run(context.Background(), []string{"replay", "--rules", "../../examples/spec.yaml"}, in, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "leadpulse replay: standard input: read events at line 2: disk on fire") {
		t.Errorf("a failing read: exit %d, want 2; stderr: %s", code, errb.String())
	}
}

func TestReplayBOMAndMsgpack(t *testing.T) {
	mp, err := msgpack.Marshal(map[string]any{"type": "page", "userId": "u1", "timestamp": "2026-03-03T09:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	in := "\xef\xbb\xbf" + pricingEvent("2026-03-02T09:00:00Z") + "\n" +
		string(mp) + "\n" +
		pricingEvent("2026-03-04T09:00:00Z") + "\n" +
		pricingEvent("2026-03-06T09:00:00Z") + "\n"
	code, out, errs := runCLI(t, in, "replay", "--rules", "../../examples/spec.yaml", "-")
	if code != 0 || !strings.Contains(out, `"trigger":"pricing-3x"`) {
		t.Fatalf("exit %d: the line after the byte order mark was not applied\nout: %s\nerr: %s", code, out, errs)
	}
	if strings.Contains(errs, "line 1:") {
		t.Errorf("the byte order mark made line 1 bad:\n%s", errs)
	}
	if !strings.Contains(errs, "line 2: malformed: the line starts like a msgpack map (byte 0x83); replay reads JSON lines only") {
		t.Errorf("the msgpack line is not explained:\n%s", errs)
	}
}

func TestReplayUntilBeforeTheLastEvent(t *testing.T) {
	in := pricingEvent("2026-03-02T09:00:00Z") + "\n" + pricingEvent("2026-03-06T09:00:00Z") + "\n"
	code, _, errs := runCLI(t, in, "replay", "--rules", "../../examples/spec.yaml", "--until", "2026-03-03T00:00:00Z", "-")
	want := "leadpulse replay: warning: --until 2026-03-03T00:00:00Z is before the last event's time 2026-03-06T09:00:00Z"
	if code != 0 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, want 0 with %q; stderr:\n%s", code, want, errs)
	}
	// A later --until says nothing.
	if _, _, errs := runCLI(t, in, "replay", "--rules", "../../examples/spec.yaml", "--until", "2026-03-07T00:00:00Z", "-"); strings.Contains(errs, "warning") {
		t.Errorf("a later --until warned:\n%s", errs)
	}
}

func TestRulesTestWithoutTests(t *testing.T) {
	none := writeFile(t, "none.yaml", "version: 1\nactions:\n  a: { sink: log }\n")
	code, out, _ := runCLI(t, "", "rules", "test", none)
	if code != 1 || !strings.Contains(out, "no tests in "+none) || !strings.Contains(out, "no tests: nothing was checked") || strings.Contains(out, "0 passed") {
		t.Errorf("a file without tests: exit %d, want 1 saying so:\n%s", code, out)
	}
	// Beside a file with tests, it is reported and the run passes.
	code, out, _ = runCLI(t, "", "rules", "test", none, "../../examples/spec.yaml")
	if code != 0 || !strings.Contains(out, "no tests in "+none) || !strings.Contains(out, "1 passed, 0 failed") {
		t.Errorf("with a tested file beside it: exit %d, want 0:\n%s", code, out)
	}
}

func TestRulesCheckSuggests(t *testing.T) {
	typo := writeFile(t, "typo.yaml", "version: 1\ntriggers:\n  - id: t\n    when: scroe >= 100\n    do: [a]\nactions:\n  a: { sink: log, mesage: hi }\n")
	code, out, _ := runCLI(t, "", "rules", "check", typo)
	for _, want := range []string{
		typo + `:4: t: when: bad expression "scroe >= 100": unknown name scroe (1:1); did you mean score?`,
		typo + `:7: a: unknown key "mesage" in action a; did you mean "message"?`,
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d; output lacks %q:\n%s", code, want, out)
		}
	}
	tab := writeFile(t, "tab.yaml", "version: 1\ntriggers:\n\t- id: t1\n")
	if code, out, _ := runCLI(t, "", "rules", "check", tab); code != 1 || !strings.Contains(out, tab+":3: -: not valid YAML: a tab character at line 3, column 1") {
		t.Errorf("a tab: exit %d\n%s", code, out)
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, out, errs := runCLI(t, "")
	if code != 0 || !strings.Contains(out, "Usage: leadpulse <command>") || !strings.Contains(out, "rules check") || errs != "" {
		t.Errorf("bare leadpulse: exit %d, want 0 and the overview on stdout:\n%s\nstderr: %s", code, out, errs)
	}
	code, out, _ = runCLI(t, "", "help")
	if code != 0 || !strings.Contains(out, "replay --rules=FILE") {
		t.Errorf("leadpulse help: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "help", "rules", "test")
	if code != 0 || !strings.Contains(out, "Usage: leadpulse rules test <files> ...") {
		t.Errorf("leadpulse help rules test: exit %d\n%s", code, out)
	}
	if code, _, errs := runCLI(t, "", "help", "nope"); code != 2 || !strings.Contains(errs, "nope") {
		t.Errorf("leadpulse help nope: exit %d %s", code, errs)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCLI(t, "", args...)
		if code != 0 || !regexp.MustCompile(`^leadpulse \S+ .*go1\.\d+`).MatchString(out) {
			t.Errorf("leadpulse %s: exit %d %q", args[0], code, out)
		}
	}
	// Every flag's placeholder says what it takes, not its Go type.
	typeName := regexp.MustCompile(`=(STRING|INT|INT-\d+|UINT|FLOAT|FLOAT-\d+|DURATION|BOOL)\b`)
	for _, cmd := range [][]string{{}, {"replay"}, {"rules", "check"}, {"rules", "test"}, {"dev"}, {"run"}, {"contact"}, {"forget"}, {"bench"}, {"version"}} {
		code, out, _ := runCLI(t, "", append(cmd, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d", cmd, code)
		}
		if m := typeName.FindAllString(out, -1); m != nil {
			t.Errorf("%v --help shows Go types as placeholders %v:\n%s", cmd, m, out)
		}
	}
	_, out, _ = runCLI(t, "", "dev", "--help")
	if !strings.Contains(out, "admin API") || !strings.Contains(out, "leadpulse contact ID") {
		t.Errorf("dev --help does not mention the admin API:\n%s", out)
	}
}

func TestBenchFlagMessages(t *testing.T) {
	code, _, errs := runCLI(t, "", "bench", "--events", "0", "--rate", "0")
	if code != 2 || !strings.Contains(errs, "leadpulse bench: --events 0 and --rate 0 skip both phases: nothing to measure") || strings.Contains(errs, "bench: bench") || strings.Contains(errs, "negative") {
		t.Errorf("exit %d, stderr: %s", code, errs)
	}
	// The help gives the pipeline's own default of --fetch-max-wait.
	rs, err := rules.Parse(examples.B2BSaaSName, examples.B2BSaaS)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p, err := stream.New(stream.Config{Brokers: []string{"127.0.0.1:1"}}, stream.Scoring{Rules: rs}, m)
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := runCLI(t, "", "bench", "--help")
	want := "Default: the pipeline's (" + p.Config().FetchMaxWait.String() + ")"
	if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
		t.Errorf("bench --help lacks %q:\n%s", want, out)
	}
}

// The banner's kcat example is a contact with no traits: its alert reads
// well, with no empty slots.
func TestBannerEventMessage(t *testing.T) {
	var ev map[string]any
	if err := json.Unmarshal([]byte(bannerEvent), &ev); err != nil {
		t.Fatal(err)
	}
	ev["timestamp"] = "2026-03-02T09:00:00Z" // live, the record time
	line, _ := json.Marshal(ev)
	code, out, errs := runCLI(t, string(line)+"\n", "replay", "--rules", "../../examples/b2b-saas.yaml", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var msgs []string
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var rec struct{ Action, Message string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Action == "sales-alert" {
			msgs = append(msgs, rec.Message)
		}
	}
	if len(msgs) != 1 || msgs[0] != "demo-request: u-1; score 40 = fit 0 + engagement 40" {
		t.Errorf("sales-alert messages %q, want one without empty slots", msgs)
	}
}
