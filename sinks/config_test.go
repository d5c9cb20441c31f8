package sinks

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The `sinks:` block of SPEC §4, and more.
const deployment = `
sinks:
  sales: { type: webhook, url: "https://hooks.example.com/T000/B000", format: slack }
  email: { type: kafka, topic: email-sends }
  log:   { type: stdout }
  crm:
    type: webhook
    url: https://crm.example.com/leadpulse
    secret: whsec_123
    headers: { Authorization: "Bearer abc" }
    timeout: 5s
    concurrency: 8
    rate: 10/s
    burst: 5
    retry: { initial: 1s, max: 1m, for: 1h, attempts: 20, max_retry_after: 2m }
  audit: { type: redis-stream, stream: "leadpulse:audit", maxlen: -1, default: true }
`

func TestConfigYAML(t *testing.T) {
	var doc struct {
		Sinks Config `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(deployment), &doc); err != nil {
		t.Fatal(err)
	}
	cfg, err := doc.Sinks.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Sinks["sales"].Timeout != 0 {
		t.Error("Validate changed its receiver")
	}
	def := Policy{Concurrency: 4, Batch: 100, Retry: Retry{Initial: 200 * time.Millisecond, Max: 30 * time.Second, For: 10 * time.Minute, MaxRetryAfter: 5 * time.Minute}}
	hookDef := def
	hookDef.Batch = 1
	for _, tc := range []struct {
		name string
		want SinkConfig
	}{
		{"sales", SinkConfig{Type: TypeWebhook, URL: "https://hooks.example.com/T000/B000", Format: FormatSlack, Timeout: 10 * time.Second, Policy: hookDef}},
		{"email", SinkConfig{Type: TypeKafka, Topic: "email-sends", Timeout: 10 * time.Second, Policy: def}},
		{"log", SinkConfig{Type: TypeStdout, Format: FormatJSON, Policy: def}},
		{"audit", SinkConfig{Type: TypeRedisStream, Stream: "leadpulse:audit", MaxLen: -1, Default: true, Timeout: 10 * time.Second, Policy: def}},
	} {
		if got := cfg[tc.name]; !equalSink(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
	crm := cfg["crm"]
	want := Policy{Concurrency: 8, Rate: Rate{N: 10, Per: time.Second}, Burst: 5, Batch: 1,
		Retry: Retry{Initial: time.Second, Max: time.Minute, For: time.Hour, Attempts: 20, MaxRetryAfter: 2 * time.Minute}}
	if crm.Policy != want || crm.Secret != "whsec_123" || crm.Headers["Authorization"] != "Bearer abc" || crm.Timeout != 5*time.Second {
		t.Errorf("crm: %+v", crm)
	}
	if d := cfg.DefaultSink(); d != "audit" {
		t.Errorf("DefaultSink = %q", d)
	}
}

func equalSink(a, b SinkConfig) bool {
	return a.Type == b.Type && a.URL == b.URL && a.Format == b.Format && a.Timeout == b.Timeout && a.Topic == b.Topic &&
		a.Stream == b.Stream && a.MaxLen == b.MaxLen && a.Default == b.Default && a.Policy == b.Policy
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{
		"email": {Type: TypeKafka},
		"audit": {Type: TypeRedisStream},
	}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg["email"].Topic; got != "email" {
		t.Errorf("kafka topic default %q, want the sink's name", got)
	}
	if got := cfg["audit"]; got.Stream != "leadpulse:audit" || got.MaxLen != defaults.MaxLen {
		t.Errorf("redis-stream defaults: %+v", got)
	}
}

func TestConfigContradictions(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // every one appears in the message
	}{
		{"no type", Config{"x": {}}, []string{"sinks.x", "no type"}},
		{"unknown type", Config{"x": {Type: "smtp"}}, []string{"sinks.x", `"smtp"`, "webhook, kafka"}},
		{"webhook without url", Config{"x": {Type: TypeWebhook}}, []string{"sinks.x", "needs url"}},
		{"webhook bad url", Config{"x": {Type: TypeWebhook, URL: "ftp://x/y"}}, []string{"not an http or https address"}},
		{"url on kafka", Config{"x": {Type: TypeKafka, URL: "https://x"}}, []string{"url is set", "type is kafka", "only for type webhook"}},
		{"secret on stdout", Config{"x": {Type: TypeStdout, Secret: "s"}}, []string{"secret", "type is stdout"}},
		{"slack on stdout", Config{"x": {Type: TypeStdout, Format: FormatSlack}}, []string{"format slack is for type webhook, but type is stdout; use json or text"}},
		{"text on webhook", Config{"x": {Type: TypeWebhook, URL: "https://x", Format: FormatText}}, []string{"format text is for type stdout, but type is webhook; use json or slack"}},
		{"unknown format on webhook", Config{"x": {Type: TypeWebhook, URL: "https://x", Format: "xml"}}, []string{`unknown format "xml" for type webhook; use json or slack`}},
		{"unknown format on stdout", Config{"x": {Type: TypeStdout, Format: "xml"}}, []string{`unknown format "xml" for type stdout; use json or text`}},
		{"format on kafka", Config{"x": {Type: TypeKafka, Format: FormatJSON}}, []string{"format is set", "type is kafka"}},
		{"topic on redis", Config{"x": {Type: TypeRedisStream, Topic: "t"}}, []string{"topic", "type is redis-stream"}},
		{"maxlen on kafka", Config{"x": {Type: TypeKafka, MaxLen: 5}}, []string{"maxlen", "type is kafka"}},
		{"timeout on stdout", Config{"x": {Type: TypeStdout, Timeout: time.Second}}, []string{"timeout", "type is stdout"}},
		{"batch on webhook", Config{"x": {Type: TypeWebhook, URL: "https://x", Policy: Policy{Batch: 10}}}, []string{"batch is 10", "type is webhook"}},
		{"reserved header", Config{"x": {Type: TypeWebhook, URL: "https://x", Headers: map[string]string{"idempotency-key": "1"}}}, []string{"headers", "set by the webhook"}},
		{"burst without rate", Config{"x": {Type: TypeStdout, Policy: Policy{Burst: 3}}}, []string{"burst is 3", "rate is not set"}},
		{"initial over max", Config{"x": {Type: TypeStdout, Policy: Policy{Retry: Retry{Initial: time.Minute, Max: time.Second}}}}, []string{"retry.initial (1m0s)", "retry.max (1s)"}},
		{"negative concurrency", Config{"x": {Type: TypeStdout, Policy: Policy{Concurrency: -1}}}, []string{"concurrency is -1"}},
		{"two defaults", Config{"a": {Type: TypeStdout, Default: true}, "b": {Type: TypeStdout, Default: true}}, []string{"sinks.a", "sinks.b", "default: true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Validate()
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Rate
		perSec  float64
		wantErr bool
	}{
		{"10/s", Rate{10, time.Second}, 10, false},
		{"600/m", Rate{600, time.Minute}, 10, false},
		{"3600/h", Rate{3600, time.Hour}, 1, false},
		{"1/2s", Rate{1, 2 * time.Second}, 0.5, false},
		{"2.5/s", Rate{2.5, time.Second}, 2.5, false},
		{"", Rate{}, 0, false},
		{"10", Rate{}, 0, true},
		{"-1/s", Rate{}, 0, true},
		{"ten/s", Rate{}, 0, true},
		{"10/fortnight", Rate{}, 0, true},
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
			continue
		}
		if !tc.wantErr && !got.Unlimited() && got.PerSecond() != tc.perSec {
			t.Errorf("%q: PerSecond %v, want %v", tc.in, got.PerSecond(), tc.perSec)
		}
		if !tc.wantErr && !got.Unlimited() {
			back, _ := ParseRate(got.String())
			if back != got {
				t.Errorf("%q: String %q reads back as %v", tc.in, got.String(), back)
			}
		}
	}
}

func TestBuild(t *testing.T) {
	_, err := Build(Config{"email": {Type: TypeKafka}}, Deps{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "Deps.Kafka") {
		t.Errorf("kafka sink without a client: %v", err)
	}
	_, err = Build(Config{"audit": {Type: TypeRedisStream}}, Deps{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "Deps.Redis") {
		t.Errorf("redis-stream sink without a client: %v", err)
	}
	sinks, err := Build(Config{"log": {Type: TypeStdout, Format: FormatText}, "sales": {Type: TypeWebhook, URL: "https://x/y"}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sinks["log"].(*Stdout); !ok {
		t.Errorf("log is %T", sinks["log"])
	}
	if w, ok := sinks["sales"].(*Webhook); !ok || w.timeout != defaults.Timeout {
		t.Errorf("sales is %T %+v", sinks["sales"], sinks["sales"])
	}
}

// Validate fills defaults that validate again unchanged (Open validates,
// then NewDispatcher validates the policies once more).
func TestValidateIdempotent(t *testing.T) {
	var doc struct {
		Sinks Config `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(deployment), &doc); err != nil {
		t.Fatal(err)
	}
	once, err := doc.Sinks.Validate()
	if err != nil {
		t.Fatal(err)
	}
	twice, err := once.Validate()
	if err != nil {
		t.Fatal(err)
	}
	for name := range once {
		if !equalSink(once[name], twice[name]) {
			t.Errorf("%s: %+v then %+v", name, once[name], twice[name])
		}
	}
}

// TestDefaultsFilled: a zero field takes the value Defaults() gives, and
// validate is the one place that fills it (idempotent on its own output).
func TestDefaultsFilled(t *testing.T) {
	d := Defaults()
	for name, tc := range map[string]struct {
		in   SinkConfig
		want func(SinkConfig) bool
	}{
		"webhook": {SinkConfig{Type: TypeWebhook, URL: "https://h.example/x"}, func(c SinkConfig) bool {
			return c.Format == d.Format && c.Timeout == d.Timeout && c.Batch == 1 && c.Concurrency == d.Concurrency && c.Retry == d.Retry
		}},
		"kafka": {SinkConfig{Type: TypeKafka}, func(c SinkConfig) bool {
			return c.Topic == "k" && c.Timeout == d.Timeout && c.Batch == d.Batch && c.Retry == d.Retry
		}},
		"redis-stream": {SinkConfig{Type: TypeRedisStream}, func(c SinkConfig) bool {
			return c.Stream == "leadpulse:k" && c.MaxLen == d.MaxLen && c.Timeout == d.Timeout
		}},
		"stdout": {SinkConfig{Type: TypeStdout}, func(c SinkConfig) bool {
			return c.Format == d.Format && c.Timeout == 0 && c.Batch == d.Batch
		}},
	} {
		got, err := tc.in.validate("k")
		if err != nil || !tc.want(got) {
			t.Errorf("%s: validate = %+v, %v", name, got, err)
			continue
		}
		again, err := got.validate("k")
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%s: validate is not idempotent: %+v, %v", name, again, err)
		}
	}
}
