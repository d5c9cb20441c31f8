package rules_test

import (
	"errors"
	"flag"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// specRules is the example rules file of SPEC §2, verbatim.
const specRules = `version: 1

windows:                       # per-contact sliding windows in event time, exact
  pricing_views_7d:
    match: type == "page" && properties.path startsWith "/pricing"
    over: 7d
  cart_value_1d:
    match: type == "track" && event == "Product Added"
    over: 24h
    sum: properties.price      # default aggregate is count; also sum: EXPR, distinct: EXPR

scoring:                       # score = fit + engagement
  engagement:                  # points per matching event; optional exponential decay
    half_life: 30d
    rules:
      - id: pricing-page
        on: type == "page" && properties.path startsWith "/pricing"
        points: 10
        limit: { points: 30, per: 7d }   # at most 30 points from this rule in any 7 days (clipped)
      - id: demo-request
        on: type == "track" && event == "Form Submitted" && properties.form == "demo"
        points: 40
      - id: careers-page
        on: type == "page" && properties.path startsWith "/careers"
        points: -15
  fit:                         # points held while a condition on the contact's traits is true
    rules:
      - id: healthcare
        if: traits.industry == "healthcare"
        points: 15
      - id: large-company
        if: traits.company_size >= 200
        points: 10

stages: [subscriber, lead, mql, sql, customer]   # optional; a contact only moves forward

triggers:
  - id: hot-lead               # edge-triggered: fires when ` + "`when`" + ` turns true, re-arms when false
    when: score >= 100
    set_stage: mql
    do: [sales-alert]
    cooldown: 24h              # an edge inside the cooldown is suppressed, not deferred
  - id: pricing-3x
    when: windows.pricing_views_7d >= 3
    do: [sales-alert]
  - id: guide-then-pricing     # steps in order, first to last within ` + "`within`" + `
    sequence:
      - type == "track" && event == "Guide Downloaded"
      - type == "page" && properties.path startsWith "/pricing"
    within: 2d
    do: [sales-alert]
  - id: abandoned-cart         # absence: ` + "`after` not followed by `unless` within `within`" + `;
    after: type == "track" && event == "Product Added"     # each new ` + "`after`" + ` restarts the wait
    unless: type == "track" && event == "Order Completed"
    within: 1h
    do: [cart-reminder]
  - id: gone-quiet             # no event at all for 30 days after the last one
    inactive: 30d
    do: [re-engage]

actions:
  sales-alert:
    sink: sales                # a sink named in the deployment config (the default of ` + "`route`" + `)
    route:                     # optional: pick the sink by a trait (multi-location teams)
      by: traits.region
      to: { emea: sales-emea, apac: sales-apac }
    message: "Hot lead {{ traits.email }} scored {{ score }} ({{ trigger }})"
  cart-reminder:
    sink: email
    if: traits.unsubscribed != true        # guard: consent, suppression
    cap: { max: 3, per: 7d }               # frequency cap per contact
  re-engage:
    sink: email

tests:                         # run by ` + "`leadpulse rules test`" + `
  - name: three pricing visits in a week alert sales
    events:
      - { type: page, userId: u1, properties: { path: /pricing }, timestamp: "2026-03-02T09:00:00Z" }
      - { type: page, userId: u1, properties: { path: /pricing }, timestamp: "2026-03-04T09:00:00Z" }
      - { type: page, userId: u1, properties: { path: /pricing }, timestamp: "2026-03-06T09:00:00Z" }
    expect:
      - { trigger: pricing-3x, contact: u1, at: "2026-03-06T09:00:00Z" }
`

func TestParseSpecExample(t *testing.T) {
	rs, err := rules.Parse("spec.yaml", []byte(specRules))
	if err != nil {
		t.Fatalf("the SPEC's example does not validate:\n%v", err)
	}
	var got []string
	for _, w := range rs.Windows {
		got = append(got, "window "+w.Name+" "+time.Duration(w.Over).String()+" "+[]string{"count", "sum", "distinct"}[w.Agg])
	}
	got = append(got, "half_life "+time.Duration(rs.HalfLife).String())
	for _, r := range rs.Scoring {
		got = append(got, "engagement "+r.ID+" "+ftoa(r.Points)+" limit "+ftoa(r.LimitMax)+"/"+time.Duration(r.LimitPer).String())
	}
	for _, r := range rs.Fit {
		got = append(got, "fit "+r.ID+" "+ftoa(r.Points))
	}
	got = append(got, "stages "+strings.Join(rs.Stages, ","))
	for _, tr := range rs.Triggers {
		s := "trigger " + tr.ID + " " + tr.Kind.String() + " stage=" + tr.SetStage + " cooldown=" + time.Duration(tr.Cooldown).String() +
			" within=" + time.Duration(tr.Within).String() + " quiet=" + time.Duration(tr.Quiet).String() + " do="
		for _, ai := range tr.Do {
			s += rs.Actions[ai].Name + ";"
		}
		got = append(got, s)
	}
	for _, a := range rs.Actions {
		got = append(got, "action "+a.Name+" sink="+a.Sink+" cap="+ftoa(float64(a.CapMax))+"/"+time.Duration(a.CapPer).String())
	}
	for _, c := range rs.Tests {
		got = append(got, "test "+c.Name+" events="+ftoa(float64(len(c.Events)))+" expect="+c.Expect[0].Trigger)
	}
	want := []string{
		"window pricing_views_7d 168h0m0s count",
		"window cart_value_1d 24h0m0s sum",
		"half_life 720h0m0s",
		"engagement pricing-page 10 limit 30/168h0m0s",
		"engagement demo-request 40 limit 0/0s",
		"engagement careers-page -15 limit 0/0s",
		"fit healthcare 15",
		"fit large-company 10",
		"stages subscriber,lead,mql,sql,customer",
		"trigger hot-lead when stage=mql cooldown=24h0m0s within=0s quiet=0s do=sales-alert;",
		"trigger pricing-3x when stage= cooldown=0s within=0s quiet=0s do=sales-alert;",
		"trigger guide-then-pricing sequence stage= cooldown=0s within=48h0m0s quiet=0s do=sales-alert;",
		"trigger abandoned-cart absence stage= cooldown=0s within=1h0m0s quiet=0s do=cart-reminder;",
		"trigger gone-quiet inactive stage= cooldown=0s within=0s quiet=720h0m0s do=re-engage;",
		"action sales-alert sink=sales cap=0/0s",
		"action cart-reminder sink=email cap=3/168h0m0s",
		"action re-engage sink=email cap=0/0s",
		"test three pricing visits in a week alert sales events=3 expect=pricing-3x",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("compiled:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rs.Triggers[3].Unless == nil || rs.Actions[0].RouteTo["emea"] != "sales-emea" || rs.Actions[0].RouteTo["apac"] != "sales-apac" {
		t.Errorf("unless or route lost: %+v %+v", rs.Triggers[3], rs.Actions[0])
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// TestYAML12 pins that rules files are YAML 1.2: `on` is a plain key, and
// YAML 1.1 booleans (on/off/yes/no) stay strings.
func TestYAML12(t *testing.T) {
	rs, err := rules.Parse("y.yaml", []byte(`version: 1
scoring:
  engagement:
    rules:
      - id: a
        on: type == "page"
        points: 1
      - { id: b, on: 'type == "track"', points: 2 }
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Scoring) != 2 || rs.Scoring[0].On == nil || rs.Scoring[1].On == nil || rs.Scoring[1].Points != 2 {
		t.Errorf("engagement rules %+v", rs.Scoring)
	}
	_, err = rules.Parse("y.yaml", []byte("version: 1\noff: 1\nyes: 2\n"))
	wantProblems(t, err, []string{
		`y.yaml:2: -: unknown key "off" in the rules file`,
		`y.yaml:3: -: unknown key "yes" in the rules file`,
	})
}

// wantProblems checks that err is a *rules.ValidationError with exactly
// these problems, each given as the prefix of its formatted line
// (FILE:LINE: RULE-ID: message).
func wantProblems(t *testing.T, err error, want []string) {
	t.Helper()
	var ve *rules.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want a *rules.ValidationError", err, err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}
	if !ok {
		t.Errorf("problems:\n  %s\nwant (prefixes):\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if err.Error() != strings.Join(got, "\n") {
		t.Errorf("Error() = %q, want the problems one per line", err.Error())
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name string
		src  string   // the whole file
		want []string // prefixes of the problem lines, in order
	}{
		{
			name: "unknown window in a contact condition",
			src: `version: 1
windows:
  views: { match: type == "page", over: 1d }
triggers:
  - id: hot
    when: windows.views >= 1 && windows.nope >= 3
    do: [a]
actions:
  a:
    sink: s
    if: windows.gone > 1
    message: "{{ windows.missing }}"
scoring:
  fit:
    rules:
      - id: f
        if: windows.absent > 0
        points: 1
`,
			want: []string{
				`t.yaml:6: hot: unknown window "nope"`,
				`t.yaml:11: a: unknown window "gone"`,
				`t.yaml:12: a: unknown window "missing"`,
				`t.yaml:17: f: unknown window "absent"`,
			},
		},
		{
			name: "unknown window in an event condition (contact.windows)",
			src: `version: 1
windows:
  views: { match: type == "page" && contact.windows.views == 0, over: 1d }
  s: { match: type == "x", over: 1d, sum: 'contact.windows.nope ?? 1' }
scoring:
  engagement:
    rules:
      - { id: a, on: contact.windows.veiws == 0, points: 1 }
triggers:
  - { id: q, sequence: ['contact.windows.gone > 1'], within: 1h, do: [x] }
  - { id: ab, after: 'contact.windows.views > 1', unless: 'contact.windows["lost"] > 0', within: 1h, do: [x] }
actions:
  x: { sink: s }
`,
			want: []string{
				`t.yaml:4: s: unknown window "nope"`,
				`t.yaml:8: a: unknown window "veiws"`,
				`t.yaml:10: q: unknown window "gone"`,
				`t.yaml:11: ab: unknown window "lost"`,
			},
		},
		{
			name: "unknown action",
			src: `version: 1
triggers:
  - id: t
    when: score > 1
    do: [a, nope]
  - id: u
    when: score > 2
    do: other
actions:
  a: { sink: s }
`,
			want: []string{
				`t.yaml:5: t: unknown action "nope" in ` + "`do`",
				`t.yaml:8: u: unknown action "other" in ` + "`do`",
			},
		},
		{
			name: "bad expressions everywhere",
			src: `version: 1
windows:
  w: { match: 'type ==', over: 1d }
  s: { match: type == "x", over: 1d, sum: 'properties.price +' }
scoring:
  engagement:
    rules:
      - { id: e, on: 'score > 1', points: 1 }
  fit:
    rules:
      - { id: f, if: 'properties.path == "/"', points: 1 }
triggers:
  - id: w
    when: score
    do: [a]
  - id: q
    sequence: ['event == "a"', 'properties.path matches "("']
    within: 1h
    do: [a]
  - id: ab
    after: 'event =='
    unless: 'event ~ 1'
    within: 1h
    do: [a]
actions:
  a:
    sink: s
    route: { by: 'traits.region +', to: { x: y } }
    message: "{{ score + }}"
`,
			want: []string{
				`t.yaml:3: w: match: bad expression "type ==": `,
				`t.yaml:4: s: sum: bad expression "properties.price +": `,
				`t.yaml:8: e: on: bad expression "score > 1": unknown name score`,
				`t.yaml:11: f: if: bad expression "properties.path == \"/\"": unknown name properties`,
				`t.yaml:14: w: when: bad expression "score": expected bool`,
				`t.yaml:17: q: sequence step: bad expression "properties.path matches \"(\"": pattern "(": error parsing regexp`,
				`t.yaml:21: ab: after: bad expression "event ==": `,
				`t.yaml:22: ab: unless: bad expression "event ~ 1": `,
				`t.yaml:28: a: route.by: bad expression "traits.region +": `,
				`t.yaml:29: a: message: bad expression "score +": `,
			},
		},
		{
			name: "bad durations",
			src: `version: 1
windows:
  a: { match: type == "x", over: 7 days }
  b: { match: type == "x", over: 0s }
  c: { match: type == "x", over: -1d }
  d: { match: type == "x", over: 5 }
  e: { match: type == "x", over: 1x }
  f: { match: type == "x", over: 0.0000001ms }
  g: { match: type == "x", over: 40000d }
scoring:
  engagement:
    half_life: d
    rules:
      - { id: r, on: type == "x", points: 1, limit: { points: 1, per: 1y } }
triggers:
  - { id: s, sequence: [type == "x"], within: "", do: [a] }
  - { id: i, inactive: 1 day, do: [a], cooldown: 1h1 }
actions:
  a: { sink: s, cap: { max: 1, per: 0ms } }
`,
			want: []string{
				`t.yaml:3: a: over: bad duration "7 days": unknown unit " days"`,
				`t.yaml:4: b: over: bad duration "0s": must be more than zero`,
				`t.yaml:5: c: over: bad duration "-1d": expected a number`,
				`t.yaml:6: d: over: bad duration "5": "5" has no unit`,
				`t.yaml:7: e: over: bad duration "1x": unknown unit "x"`,
				`t.yaml:8: f: over: bad duration "0.0000001ms": must be more than zero`,
				`t.yaml:9: g: over: bad duration "40000d": more than 100 years`,
				`t.yaml:12: -: half_life: bad duration "d": expected a number`,
				`t.yaml:14: r: limit.per: bad duration "1y": unknown unit "y"`,
				`t.yaml:16: s: within must be a non-empty string`,
				`t.yaml:17: i: inactive: bad duration "1 day": unknown unit " day"`,
				`t.yaml:17: i: cooldown: bad duration "1h1": "1" has no unit`,
				`t.yaml:19: a: cap.per: bad duration "0ms": must be more than zero`,
			},
		},
		{
			name: "duplicate ids",
			src: `version: 1
scoring:
  engagement:
    rules:
      - { id: x, on: type == "a", points: 1 }
      - { id: x, on: type == "b", points: 1 }
  fit:
    rules:
      - { id: x, if: traits.a == 1, points: 1 }
stages: [lead, lead]
triggers:
  - { id: t, when: score > 1, do: [a] }
  - { id: t, when: score > 2, do: [a] }
actions:
  a: { sink: s }
  a: { sink: t }
`,
			want: []string{
				`t.yaml:6: x: duplicate scoring rule id (first at line 5)`,
				`t.yaml:9: x: duplicate scoring rule id (first at line 5)`,
				`t.yaml:10: lead: stage listed twice`,
				`t.yaml:13: t: duplicate trigger id (first at line 12)`,
				`t.yaml:16: -: key "a" given twice in actions`,
			},
		},
		{
			name: "unknown stage",
			src: `version: 1
stages: [lead, mql]
triggers:
  - { id: t, when: score > 1, set_stage: sql }
`,
			want: []string{`t.yaml:4: t: unknown stage "sql"; stages are lead, mql`},
		},
		{
			name: "set_stage without stages",
			src: `version: 1
triggers:
  - { id: t, when: score > 1, set_stage: sql }
`,
			want: []string{`t.yaml:3: t: set_stage "sql" but the file has no ` + "`stages:`" + ` list`},
		},
		{
			name: "unknown keys name their rule",
			src: `version: 1
trigger: []
windows:
  w: { match: type == "x", over: 1d, ovre: 2d }
scoring:
  engagement:
    half_lif: 1d
    rules:
      - { id: e, on: type == "x", point: 1, points: 1 }
      - { id: l, on: type == "x", points: 1, limit: { points: 1, per: 1d, max: 2 } }
  fit:
    rules:
      - { id: f, if: traits.a == 1, points: 1, when: 1 }
triggers:
  - { id: t, when: score > 1, do: [a], cooldwn: 1h }
actions:
  a: { sink: s, sinks: t, route: { by: traits.r, to: { x: y }, default: z }, cap: { max: 1, per: 1d, burst: 2 } }
tests:
  - { name: c, events: [], expect: [{ trigger: t, when: x }], extra: 1 }
`,
			want: []string{
				`t.yaml:2: -: unknown key "trigger" in the rules file`,
				`t.yaml:4: w: unknown key "ovre" in window w`,
				`t.yaml:7: -: unknown key "half_lif" in scoring.engagement`,
				`t.yaml:9: e: unknown key "point" in an engagement rule`,
				`t.yaml:10: l: unknown key "max" in limit`,
				`t.yaml:13: f: unknown key "when" in a fit rule`,
				`t.yaml:15: t: unknown key "cooldwn" in a trigger`,
				`t.yaml:17: a: unknown key "sinks" in action a`,
				`t.yaml:17: a: unknown key "default" in route`,
				`t.yaml:17: a: unknown key "burst" in cap`,
				`t.yaml:19: c: unknown key "extra" in a test`,
				`t.yaml:19: c: unknown key "when" in an expectation`,
			},
		},
		{
			name: "missing required keys",
			src: `version: 1
windows:
  w: { sum: properties.price }
scoring:
  engagement:
    rules:
      - { on: type == "x" }
      - { id: l, on: type == "x", points: 1, limit: {} }
  fit:
    rules:
      - { id: f }
triggers:
  - { id: k, do: [a] }
  - { id: n, when: score > 1 }
  - { id: s, sequence: [type == "x"], do: [a] }
  - { id: b, after: type == "x", do: [a] }
actions:
  a: { message: hi }
  r: { route: {} , cap: {} }
tests:
  - { name: c }
  - { name: d, events: [], expect: [{ contact: u1 }] }
`,
			want: []string{
				`t.yaml:3: w: window needs ` + "`match:`",
				`t.yaml:3: w: window needs ` + "`over:`",
				`t.yaml:7: #line7: missing ` + "`id:`",
				`t.yaml:7: #line7: engagement rule needs ` + "`points:`",
				`t.yaml:8: l: limit needs ` + "`points:`",
				`t.yaml:8: l: limit needs ` + "`per:`",
				`t.yaml:11: f: fit rule needs ` + "`if:`",
				`t.yaml:11: f: fit rule needs ` + "`points:`",
				`t.yaml:13: k: trigger needs one of ` + "`when:`, `sequence:`, `after:` or `inactive:`",
				`t.yaml:14: n: trigger needs ` + "`do:`",
				`t.yaml:15: s: sequence needs ` + "`within:`",
				`t.yaml:16: b: absence trigger needs ` + "`within:`",
				`t.yaml:18: a: action needs ` + "`sink:`",
				`t.yaml:19: r: route needs ` + "`by:`",
				`t.yaml:19: r: route needs ` + "`to:`",
				`t.yaml:19: r: action needs ` + "`sink:`",
				`t.yaml:19: r: cap needs ` + "`max:`",
				`t.yaml:19: r: cap needs ` + "`per:`",
				`t.yaml:21: c: test needs ` + "`events:`",
				`t.yaml:21: c: test needs ` + "`expect:`",
				`t.yaml:22: d: expectation needs ` + "`trigger:`",
			},
		},
		{
			name: "empty names", // found by FuzzParse: a problem always names its rule or "-"
			src: `version: 1
windows:
  "": { match: type == "x", over: 1d }
actions:
  "": { sink: s }
`,
			want: []string{
				`t.yaml:3: -: a window needs a name`,
				`t.yaml:5: -: an action needs a name`,
			},
		},
		{
			name: "missing version",
			src:  "windows: {}\n",
			want: []string{"t.yaml:1: -: missing `version: 1`"},
		},
		{
			name: "unsupported version",
			src:  "version: 2\n",
			want: []string{`t.yaml:1: -: unsupported version "2"`},
		},
		{
			name: "a trigger with two kinds",
			src: `version: 1
triggers:
  - { id: a, when: score > 1, after: type == "x", within: 1h, do: [x] }
  - { id: b, sequence: [type == "x"], inactive: 1d, within: 1h, do: [x] }
actions:
  x: { sink: s }
`,
			want: []string{
				`t.yaml:3: a: trigger has when and after: give exactly one kind`,
				`t.yaml:4: b: trigger has sequence and inactive: give exactly one kind`,
			},
		},
		{
			name: "keys that go with another kind",
			src: `version: 1
triggers:
  - { id: a, when: score > 1, within: 1h, do: [x] }
  - { id: b, inactive: 1d, unless: type == "x", do: [x] }
actions:
  x: { sink: s }
`,
			want: []string{
				"t.yaml:3: a: `within:` goes with `sequence:` or `after:`",
				"t.yaml:4: b: `unless:` goes with `after:`",
			},
		},
		{
			name: "a fit rule cannot reference score or fit",
			src: `version: 1
scoring:
  fit:
    rules:
      - { id: a, if: score >= 50, points: 1 }
      - { id: b, if: fit > 0 && traits.x == 1, points: 1 }
      - { id: ok, if: traits.score > 1 && engagement > 1 && stage == "x", points: 1 }
`,
			want: []string{
				"t.yaml:5: a: a fit rule cannot depend on `score` or `fit`",
				"t.yaml:6: b: a fit rule cannot depend on `score` or `fit`",
			},
		},
		{
			name: "names of the wrong environment",
			src: `version: 1
windows:
  w: { match: windows.w > 1, over: 1d }
triggers:
  - { id: a, when: event == "x", do: [x] }
actions:
  x: { sink: s }
`,
			want: []string{
				`t.yaml:3: w: match: bad expression "windows.w > 1": unknown name windows`,
				`t.yaml:5: a: when: bad expression "event == \"x\"": `,
			},
		},
		{
			name: "numbers and limits",
			src: `version: 1
windows:
  w: { match: type == "x", over: 1d, sum: properties.a, distinct: properties.b, count: 5 }
scoring:
  engagement:
    rules:
      - { id: e, on: type == "x", points: ten, limit: { points: 0, per: 1d } }
      - { id: f, on: type == "x", points: 1, limit: { points: -5, per: 1d } }
actions:
  a: { sink: s, cap: { max: 0, per: 1d } }
  b: { sink: s, cap: { max: 1.5, per: 1d } }
  c: { sink: s, cap: { max: 10001, per: 1d } }
`,
			want: []string{
				"t.yaml:3: w: a window aggregates one way: give `sum:` or `distinct:`, not both",
				"t.yaml:3: w: `count` takes no expression",
				`t.yaml:7: e: points must be a number, not "ten"`,
				`t.yaml:7: e: limit.points must be more than zero`,
				`t.yaml:8: f: limit.points must be more than zero`,
				`t.yaml:10: a: cap.max must be a whole number from 1 to 10000`,
				`t.yaml:11: b: cap.max must be a whole number from 1 to 10000`,
				`t.yaml:12: c: cap.max must be a whole number from 1 to 10000`,
			},
		},
		{
			name: "tests section",
			src: `version: 1
triggers:
  - { id: t, when: score > 1, do: [a] }
actions:
  a: { sink: s }
tests:
  - name: c
    events: [5, { type: page }]
    until: yesterday
    expect:
      - { trigger: nope, at: "2026-13-01T00:00:00Z" }
`,
			want: []string{
				`t.yaml:8: c: an event must be a mapping of Segment fields`,
				`t.yaml:9: c: until "yesterday" is not an RFC 3339 time`,
				`t.yaml:11: c: unknown trigger "nope"`,
				`t.yaml:11: c: at "2026-13-01T00:00:00Z" is not an RFC 3339 time`,
			},
		},
		{
			name: "a tab in the indentation is named with its line",
			src:  "version: 1\ntriggers:\n\t- id: t1\n",
			want: []string{"t.yaml:3: -: not valid YAML: a tab character at line 3, column 1; YAML indents with spaces only"},
		},
		{
			name: "did you mean: keys, names in expressions, windows, actions, triggers",
			src: `version: 1
windows:
  pricing_views: { match: 'type == "page"', over: 1d }
scoring:
  engagement:
    rules:
      - id: r1
        on: type == "page" && scroe > 1
        pionts: 10
triggers:
  - id: hot
    when: scroe >= 100 && windows.pricing_view >= 1
    do: [sales-alrt]
  - id: ctx
    when: contact.score > 1
    do: [sales-alert]
actions:
  sales-alert: { sink: s, message: "{{ traits.email }} {{ engagment }}" }
tests:
  - name: c
    events: []
    expect: [{ trigger: hott }]
`,
			want: []string{
				`t.yaml:7: r1: engagement rule needs ` + "`points:`",
				`t.yaml:8: r1: on: bad expression "type == \"page\" && scroe > 1": unknown name scroe (1:19); in an event condition the contact's values are under ` + "`contact.`" + `: did you mean contact.score?`,
				`t.yaml:9: r1: unknown key "pionts" in an engagement rule; did you mean "points"? expected one of id, on, points, limit`,
				`t.yaml:12: hot: when: bad expression "scroe >= 100 && windows.pricing_view >= 1": unknown name scroe (1:1); did you mean score?`,
				`t.yaml:13: hot: unknown action "sales-alrt" in ` + "`do`" + `; did you mean "sales-alert"? define it under ` + "`actions:`",
				`t.yaml:15: ctx: when: bad expression "contact.score > 1": type string has no field score (1:9); in a contact condition ` + "`contact`" + ` is the contact's id and its values are top-level names: did you mean score?`,
				`t.yaml:18: sales-alert: message: bad expression "engagment": unknown name engagment (1:1); did you mean engagement?`,
				`t.yaml:22: c: unknown trigger "hott"; did you mean "hot"?`,
			},
		},
		{
			name: "a window name with a typo",
			src: `version: 1
windows:
  pricing_views: { match: 'type == "page"', over: 1d }
triggers:
  - { id: t, when: windows.pricing_view >= 1, do: [a] }
actions:
  a: { sink: s }
`,
			want: []string{`t.yaml:5: t: unknown window "pricing_view"; did you mean "pricing_views"?`},
		},
		{
			name: "optional groups in a message",
			src: `version: 1
actions:
  a: { sink: s, message: "x [[ {{ score }}" }
  b: { sink: s, message: "x ]] {{ score }}" }
  c: { sink: s, message: "[[ [[ {{ score }} ]] ]]" }
  d: { sink: s, message: "x [[ no value ]]" }
  e: { sink: s, message: "ok [[ ({{ score }}) ]]{{ '[[' }}" }
`,
			want: []string{
				"t.yaml:3: a: message: `[[` without `]]`",
				"t.yaml:4: b: message: `]]` without `[[`",
				"t.yaml:5: c: message: `[[` inside `[[ ]]`",
				"t.yaml:6: d: message: `[[ ]]` without a `{{ }}`",
			},
		},
		{
			name: "identity section",
			src: `version: 1
identity:
  merge: yes
  max_anonymous: 0
  blocked: [guest, { a: 1 }, GUEST]
  link: true
`,
			want: []string{
				`t.yaml:3: identity: merge must be true or false, not "yes"`,
				`t.yaml:4: identity: max_anonymous must be a whole number from 1 to 10000 (to keep anonymous and known ids apart, set ` + "`merge: false`" + `)`,
				`t.yaml:5: identity: a blocked id must be a string`,
				`t.yaml:5: identity: blocked id "GUEST" listed twice (first at line 5; ids match without regard to case)`,
				`t.yaml:6: identity: unknown key "link" in identity; expected one of merge, max_anonymous, blocked`,
			},
		},
		{
			name: "identity values of the wrong shape",
			src: `version: 1
identity:
  max_anonymous: 2.5
  blocked: guest
`,
			want: []string{
				`t.yaml:3: identity: max_anonymous must be a whole number from 1 to 10000`,
				`t.yaml:4: identity: blocked must be a list`,
			},
		},
		{
			name: "identity not a mapping",
			src:  "version: 1\nidentity: [merge]\n",
			want: []string{`t.yaml:2: identity: identity must be a mapping`},
		},
		{
			name: "not YAML",
			src:  "version: 1\nwindows: [\n",
			want: []string{`t.yaml:2: -: not valid YAML: line 2: `},
		},
		{
			name: "empty file",
			src:  "",
			want: []string{"t.yaml:1: -: empty rules file"},
		},
		{
			name: "not a mapping",
			src:  "- version: 1\n",
			want: []string{"t.yaml:1: -: the rules file must be a mapping", "t.yaml:1: -: missing `version: 1`"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := rules.Parse("t.yaml", []byte(c.src))
			if rs != nil {
				t.Errorf("a file that does not validate returned a ruleset")
			}
			wantProblems(t, err, c.want)
		})
	}
}

// TestValidationGolden pins the exact text of every problem of a small bad
// file, reported all at once, in line order.
func TestValidationGolden(t *testing.T) {
	_, err := rules.LoadFile("testdata/bad.yaml")
	var ve *rules.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("LoadFile: %v (%T), want a *rules.ValidationError", err, err)
	}
	got := err.Error() + "\n"
	if *update {
		if err := os.WriteFile("testdata/bad.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, rerr := os.ReadFile("testdata/bad.golden")
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got != string(want) {
		t.Errorf("problems of testdata/bad.yaml:\ngot:\n%s\nwant:\n%s", got, want)
	}
	for i, p := range ve.Problems {
		if p.File != "testdata/bad.yaml" || p.Line < 1 || p.Rule == "" || p.Msg == "" {
			t.Errorf("problem %d incomplete: %+v", i, p)
		}
		if i > 0 && p.Line < ve.Problems[i-1].Line {
			t.Errorf("problem %d out of line order: %+v after %+v", i, p, ve.Problems[i-1])
		}
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := rules.LoadFile("testdata/does-not-exist.yaml")
	var ve *rules.ValidationError
	if err == nil || errors.As(err, &ve) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second},
		{"24h", 24 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
		{"2w", 14 * 24 * time.Hour},
		{"1ms", time.Millisecond},
		{"36500d", 36500 * 24 * time.Hour},
	}
	for _, c := range good {
		if got, err := rules.ParseDuration(c.in); err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []string{"", "7", "d", "7 d", " 7d", "-1d", "+1d", "0s", "0d0h", "1e3s", "1x", "1D", "1.2.3h", ".", "0.0000001ms", "40000d", "1h 30m"}
	for _, in := range bad {
		if got, err := rules.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestReadsContext(t *testing.T) {
	for _, tc := range []struct {
		cond string
		want bool
	}{
		{`type == "page"`, false},
		{`context.campaign.source == "ads"`, true},
		{`properties.path startsWith "/p" && context.ip != nil`, true},
	} {
		rs, err := rules.Parse("c.yaml", []byte("version: 1\nwindows:\n  w:\n    match: '"+tc.cond+"'\n    over: 1h\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.ReadsContext(); got != tc.want {
			t.Errorf("%s: ReadsContext %v, want %v", tc.cond, got, tc.want)
		}
	}
	rs, err := rules.Parse("c.yaml", []byte("version: 1\ntriggers:\n  - id: t\n    when: event.context.ip == \"1\"\n    do: [a]\nactions:\n  a: { sink: s }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !rs.ReadsContext() {
		t.Error("event.context in a contact condition is not seen")
	}
}

// TestIdentitySection: defaults without the section; a `blocked` list
// replaces the default and matches without regard to case.
func TestIdentitySection(t *testing.T) {
	def, err := rules.Parse("d.yaml", []byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := def.Identity()
	if !id.Merge || id.MaxAnonymous != 100 || id.Line != 0 {
		t.Errorf("default identity: %+v", id)
	}
	for _, s := range []string{"", "null", "NULL", "Undefined", "anonymous", "unknown", "Guest", "none", "0", "-1"} {
		if !id.IsBlocked(s) {
			t.Errorf("default list: %q not blocked", s)
		}
	}
	for _, s := range []string{"u1", "guest1", "nul", "00", "anon-1"} {
		if id.IsBlocked(s) {
			t.Errorf("default list: %q blocked", s)
		}
	}

	rs, err := rules.Parse("i.yaml", []byte(`version: 1
identity:
  merge: false
  max_anonymous: 3
  blocked: [Visitor, "n/a", null]
`))
	if err != nil {
		t.Fatal(err)
	}
	id = rs.Identity()
	if id.Merge || id.MaxAnonymous != 3 || id.Line != 3 {
		t.Errorf("identity: %+v", id)
	}
	if want := []string{"Visitor", "n/a", "null"}; !reflect.DeepEqual(id.Blocked, want) {
		t.Errorf("blocked = %q, want %q", id.Blocked, want)
	}
	for s, want := range map[string]bool{"visitor": true, "VISITOR": true, "N/A": true, "null": true, "guest": false, "0": false, "": true} {
		if got := id.IsBlocked(s); got != want {
			t.Errorf("IsBlocked(%q) = %v, want %v (the file's list replaces the default)", s, got, want)
		}
	}
	if u, a := id.Usable("VISITOR", "a1"); u != "" || a != "a1" {
		t.Errorf("Usable(VISITOR, a1) = %q, %q", u, a)
	}
}

// TestReads: the keys of properties and context that the expressions name,
// in either environment; all of an object's keys when one reads it whole;
// every trait always (an event's traits are copied into its contact).
func TestReads(t *testing.T) {
	all := []string(nil)
	for _, tc := range []struct {
		name  string
		rules string
		props []string // nil: all
		ctx   []string
	}{
		{"nothing", "windows:\n  w:\n    match: 'type == \"page\"'\n    over: 1h\n", []string{}, []string{}},
		{"event condition", "windows:\n  w:\n    match: 'properties.path startsWith \"/p\" && context.campaign.source == \"ads\" && properties[\"plan\"] == \"pro\"'\n    over: 1h\n",
			[]string{"path", "plan"}, []string{"campaign"}},
		{"sum and distinct", "windows:\n  s:\n    match: type == \"track\"\n    sum: properties.minutes\n    over: 1h\n  d:\n    match: type == \"page\"\n    distinct: properties.path\n    over: 1h\n", []string{"minutes", "path"}, []string{}},
		{"whole properties", "windows:\n  w:\n    match: 'len(properties) > 2 && properties.path == \"/\"'\n    over: 1h\n", all, []string{}},
		{"contact condition", "triggers:\n  - id: t\n    when: event.properties.form == \"demo\" && event.context.ip == \"1\" && event.traits.email != nil\n    do: [a]\nactions:\n  a: { sink: s }\n",
			[]string{"form"}, []string{"ip"}},
		{"message", "triggers:\n  - id: t\n    when: score > 1\n    do: [a]\nactions:\n  a: { sink: s, message: \"{{ event.properties.sku }} {{ event.context }}\" }\n",
			[]string{"sku"}, all},
		{"contact traits are not event properties", "scoring:\n  fit:\n    rules:\n      - id: f\n        if: traits.industry == \"x\"\n        points: 1\n", []string{}, []string{}},
	} {
		rs, err := rules.Parse("r.yaml", []byte("version: 1\n"+tc.rules))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sel := rs.Reads()
		for _, x := range []struct {
			what string
			keys event.Keys
			want []string
		}{{"properties", sel.Properties, tc.props}, {"context", sel.Context, tc.ctx}, {"traits", sel.Traits, nil}} {
			if (x.want == nil) != x.keys.All() || x.want != nil && !slices.Equal(x.keys.Names(), x.want) {
				t.Errorf("%s: %s: all %v, names %q; want %q (nil: all)", tc.name, x.what, x.keys.All(), x.keys.Names(), x.want)
			}
		}
	}
}
