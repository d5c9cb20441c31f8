package backtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/traffic"
)

const b2bRules = "../examples/b2b-saas.yaml"

// A demo request converts: the demo-request trigger fires on the very
// event (so never predicts it), hot-lead often before it.
const demoRequested = `type == "track" && event == "Form Submitted" && properties.form == "demo"`

var generated = sync.OnceValue(func() []byte {
	// 2.5 minutes between events on average: 12,000 events span about three
	// weeks, long enough for scores to build, decay and convert.
	g := traffic.New(traffic.Config{Contacts: 300, Seed: 5, Step: 150 * time.Second})
	var b bytes.Buffer
	for range 12_000 {
		b.Write(g.AppendJSON(nil))
		b.WriteByte('\n')
	}
	return b.Bytes()
})

func fromBytes(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// stripGuards returns the rules file with every action's `if` and `cap`
// removed: the same firings (guards and caps only decide which actions of a
// firing are emitted), but every firing now emits a record of each of its
// trigger's actions, so replay's output lists them all.
func stripGuards(t *testing.T, path string) *rules.Ruleset {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	top := root.Content[0]
	for i := 0; i < len(top.Content); i += 2 {
		if top.Content[i].Value != "actions" {
			continue
		}
		acts := top.Content[i+1]
		for j := 1; j < len(acts.Content); j += 2 {
			a := acts.Content[j]
			var kept []*yaml.Node
			for k := 0; k < len(a.Content); k += 2 {
				if key := a.Content[k].Value; key != "if" && key != "cap" {
					kept = append(kept, a.Content[k], a.Content[k+1])
				}
			}
			a.Content = kept
		}
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse(path+" (guards stripped)", out)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// independent computes the backtest's figures from replay's action lines
// and the events themselves (contacts as they stand at the end: an
// anonymous id linked to a user is the user), sharing nothing with the
// package but the engine.
type independent struct {
	population, converters int
	baseRate               *float64
	triggers               map[string]Figures
}

func computeIndependently(t *testing.T, traffic []byte, horizon time.Duration) independent {
	t.Helper()
	ctx := context.Background()
	// Firings: replay the guard-free rules; each firing emits one record of
	// its trigger's first action. Checked below against the firings the
	// original rules count in replay's summary.
	free := stripGuards(t, b2bRules)
	var out bytes.Buffer
	if _, err := engine.Replay(ctx, free, bytes.NewReader(traffic), engine.ReplayOptions{Out: &out}); err != nil {
		t.Fatal(err)
	}
	orig, err := rules.LoadFile(b2bRules)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := engine.Replay(ctx, orig, bytes.NewReader(traffic), engine.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Identity links, from the events: the first event that carries both a
	// userId and an anonymousId links the anonymous id to the user. The
	// generated traffic has no conflicts (an anonymous id belongs to one
	// visitor), which replay's summary confirms below.
	owner := map[string]string{}
	lines := bufio.NewScanner(bytes.NewReader(traffic))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var e struct{ UserID, AnonymousID string }
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.UserID != "" && e.AnonymousID != "" && e.UserID != e.AnonymousID && owner[e.AnonymousID] == "" {
			owner[e.AnonymousID] = e.UserID
		}
	}
	resolve := func(id string) string {
		if u := owner[id]; u != "" {
			return u
		}
		return id
	}
	var conflicts uint64
	for _, n := range sum.Conflicts {
		conflicts += n
	}
	if conflicts != 0 || sum.Links != uint64(len(owner)) || len(owner) == 0 {
		t.Fatalf("replay made %d links with %d conflicts; the events have %d links", sum.Links, conflicts, len(owner))
	}
	firstAction := map[string]string{}
	for _, tr := range orig.Triggers {
		firstAction[tr.ID] = orig.Actions[tr.Do[0]].Name
	}
	firings := map[string]map[string][]int64{} // trigger → contact → times
	counted := map[string]uint64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var rec struct{ Action, Trigger, Contact, At string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Action != firstAction[rec.Trigger] {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, rec.At)
		if err != nil {
			t.Fatal(err)
		}
		if firings[rec.Trigger] == nil {
			firings[rec.Trigger] = map[string][]int64{}
		}
		c := resolve(rec.Contact)
		firings[rec.Trigger][c] = append(firings[rec.Trigger][c], at.UnixNano())
		counted[rec.Trigger]++
	}
	for id, n := range sum.ByTrigger {
		if counted[id] != n {
			t.Fatalf("trigger %s: %d firings from the guard-free actions, %d in replay's summary", id, counted[id], n)
		}
	}
	// Population and conversions: straight from the event lines.
	pop := map[string]bool{}
	conv := map[string]int64{}
	sc = bufio.NewScanner(bytes.NewReader(traffic))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Type, Event, UserID, AnonymousID, Timestamp string
			Properties                                  map[string]any
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		id := e.UserID
		if id == "" {
			id = e.AnonymousID
		}
		id = resolve(id)
		pop[id] = true
		if e.Type == "track" && e.Event == "Form Submitted" && e.Properties["form"] == "demo" {
			ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := conv[id]; !ok || ts.UnixNano() < c {
				conv[id] = ts.UnixNano()
			}
		}
	}
	if len(pop) != sum.Contacts {
		t.Fatalf("%d contacts in the events, %d in replay's summary", len(pop), sum.Contacts)
	}
	res := independent{population: len(pop), converters: len(conv), triggers: map[string]Figures{}}
	base := float64(len(conv)) / float64(len(pop))
	res.baseRate = &base
	h := int64(horizon)
	for _, tr := range orig.Triggers {
		fs := Figures{Trigger: tr.ID, Alerted: len(firings[tr.ID])}
		var leads []float64
		for c, ts := range firings[tr.ID] {
			first := slices.Min(ts)
			if C, ok := conv[c]; ok && C > first && C-first <= h {
				fs.Predicted++
				leads = append(leads, float64(C-first)/1e9)
			}
		}
		for c, C := range conv {
			for _, at := range firings[tr.ID][c] {
				if at >= C-h && at < C {
					fs.Caught++
					break
				}
			}
		}
		if fs.Alerted > 0 {
			v := float64(fs.Predicted) / float64(fs.Alerted)
			fs.Precision = &v
			if base > 0 {
				l := v / base
				fs.Lift = &l
			}
		}
		if len(conv) > 0 {
			v := float64(fs.Caught) / float64(len(conv))
			fs.Recall = &v
		}
		if n := len(leads); n > 0 {
			slices.Sort(leads)
			m := leads[n/2]
			if n%2 == 0 {
				m = (leads[n/2-1] + leads[n/2]) / 2
			}
			fs.LeadTime = &m
		}
		res.triggers[tr.ID] = fs
	}
	return res
}

// TestJSONAgreesWithReplay checks `--json` against the independent
// computation on generated traffic.
func TestJSONAgreesWithReplay(t *testing.T) {
	data := generated()
	ind := computeIndependently(t, data, DefaultHorizon)
	rep, err := Run(context.Background(), Options{Rules: b2bRules, Events: fromBytes(data), Conversion: demoRequested})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got jsonReport
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Population != ind.population || got.Converters != ind.converters || p(got.BaseRate) != p(ind.baseRate) {
		t.Errorf("population %d converters %d base rate %s; independently %d, %d, %s",
			got.Population, got.Converters, p(got.BaseRate), ind.population, ind.converters, p(ind.baseRate))
	}
	if len(got.Triggers) != len(ind.triggers) {
		t.Fatalf("%d triggers, want %d", len(got.Triggers), len(ind.triggers))
	}
	predicted := 0
	for _, g := range got.Triggers {
		w := ind.triggers[g.Trigger]
		gf := Figures{Trigger: g.Trigger, Alerted: g.Alerted, Predicted: g.Predicted, Caught: g.Caught,
			Precision: g.Precision, Recall: g.Recall, Lift: g.Lift, LeadTime: g.LeadTimeMedianSeconds}
		check(t, gf, want{alerted: w.Alerted, predicted: w.Predicted, caught: w.Caught, precision: w.Precision, recall: w.Recall, lift: w.Lift, lead: w.LeadTime})
		predicted += g.Predicted
	}
	// The traffic must exercise the definitions, not only agree on zeros.
	if ind.converters < 5 || predicted == 0 || ind.triggers["hot-lead"].Alerted < 5 || ind.triggers["demo-request"].Predicted != 0 || ind.triggers["demo-request"].Alerted == 0 {
		t.Errorf("generated traffic too thin: %d converters, %d predictions, hot-lead %s, demo-request %s",
			ind.converters, predicted, show(ind.triggers["hot-lead"]), show(ind.triggers["demo-request"]))
	}
}

// TestSweepEqualsReplays checks the one-replay sweep against a replay of
// the file per threshold (the threshold written into the file), on
// generated traffic with the B2B rules (hot-lead has a cooldown and sets a
// stage that no condition reads), and at the file's own threshold against
// the plain run.
func TestSweepEqualsReplays(t *testing.T) {
	data := generated()
	sw, err := ParseSweep("hot-lead=60:140:20")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	one, err := Run(ctx, Options{Rules: b2bRules, Events: fromBytes(data), Conversion: demoRequested, Sweep: sw})
	if err != nil {
		t.Fatal(err)
	}
	full, err := Run(ctx, Options{Rules: b2bRules, Events: fromBytes(data), Conversion: demoRequested, Sweep: sw, Replays: true})
	if err != nil {
		t.Fatal(err)
	}
	if one.Replays != 1 || full.Replays != 1+len(sw.Thresholds) {
		t.Errorf("replays: %d and %d", one.Replays, full.Replays)
	}
	a, b := one.Models[0], full.Models[0]
	distinct := map[string]bool{}
	for k := range sw.Thresholds {
		if show(a.Sweep[k]) != show(b.Sweep[k]) {
			t.Errorf("threshold %v: one replay %s\nreplay per threshold %s", sw.Thresholds[k], show(a.Sweep[k]), show(b.Sweep[k]))
		}
		distinct[show(a.Sweep[k])] = true
	}
	if len(distinct) < 3 {
		t.Errorf("the thresholds should give different figures on this traffic: %v", distinct)
	}
	own := a.Sweep[2] // 100, the file's threshold
	if *own.Threshold != 100 || show(own) != show(trigger(t, a, "hot-lead")) {
		t.Errorf("at the file's own threshold: sweep %s, plain run %s", show(own), show(trigger(t, a, "hot-lead")))
	}
}

// TestSweepStageCoupled: when the swept trigger sets a stage that a
// scoring rule reads, each threshold is a replay of its own.
func TestSweepStageCoupled(t *testing.T) {
	data, err := os.ReadFile(b2bRules)
	if err != nil {
		t.Fatal(err)
	}
	coupled := strings.Replace(string(data), "      - id: target-industry\n", "      - id: mql-bonus\n        if: stage == \"mql\"\n        points: 5\n      - id: target-industry\n", 1)
	path := filepath.Join(t.TempDir(), "coupled.yaml")
	if err := os.WriteFile(path, []byte(coupled), 0o644); err != nil {
		t.Fatal(err)
	}
	sw, _ := ParseSweep("hot-lead=90:110:10")
	rep, err := Run(context.Background(), Options{Rules: path, Events: fromBytes(generated()), Conversion: demoRequested, Sweep: sw})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Models[0]
	if m.SweepMethod != "a replay per threshold" || rep.Replays != 4 {
		t.Errorf("method %q, %d replays", m.SweepMethod, rep.Replays)
	}
	if show(m.Sweep[1]) != show(trigger(t, m, "hot-lead")) {
		t.Errorf("at the file's own threshold: sweep %s, plain run %s", show(m.Sweep[1]), show(trigger(t, m, "hot-lead")))
	}
}

func TestChart(t *testing.T) {
	sw, _ := ParseSweep("hot-lead=60:140:20")
	rep, err := Run(context.Background(), Options{Rules: b2bRules, Compare: b2bRules, Events: fromBytes(generated()), Conversion: demoRequested, Sweep: sw})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pngPath, svgPath := filepath.Join(dir, "c.png"), filepath.Join(dir, "c.svg")
	for _, path := range []string{pngPath, svgPath} {
		if err := rep.WriteChart(path); err != nil {
			t.Fatal(err)
		}
	}
	fh, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 250 {
		t.Errorf("PNG of %v", b)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "</svg>", "precision, b2b-saas.yaml", "recall, b2b-saas.yaml", "threshold N", "hot-lead"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if err := rep.WriteChart(filepath.Join(dir, "c.pdf")); err == nil {
		t.Error("a .pdf chart should be refused")
	}
	rep.Sweep = nil
	if err := rep.WriteChart(pngPath); err == nil {
		t.Error("a chart without a sweep should be refused")
	}
}
