package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sink types, the values of SinkConfig.Type.
const (
	TypeWebhook     = "webhook"
	TypeKafka       = "kafka"
	TypeRedisStream = "redis-stream"
	TypeStdout      = "stdout"
)

// Formats, the values of SinkConfig.Format.
const (
	FormatJSON  = "json"  // webhook, stdout: the action record as it is (SPEC §3)
	FormatSlack = "slack" // webhook: a Slack incoming-webhook message {"text": …}
	FormatText  = "text"  // stdout: one readable line per action
)

// Config is the deployment config's `sinks:` block (SPEC §4): sink name →
// sink. Rules name sinks with an action's `sink` or `route`.
//
//	sinks:
//	  sales: { type: webhook, url: "https://hooks.slack.com/…", format: slack, secret: "…", timeout: 5s, concurrency: 4, rate: 10/s }
//	  email: { type: kafka, topic: email-sends }
//	  audit: { type: redis-stream, stream: "leadpulse:audit", maxlen: 100000 }
//	  log:   { type: stdout, format: text, default: true }
type Config map[string]SinkConfig

// SinkConfig configures one sink. The zero value of every field but Type
// (and URL for a webhook) means the default written beside it.
type SinkConfig struct {
	// Type is webhook, kafka, redis-stream or stdout. Required.
	Type string `yaml:"type"`
	// Default makes this sink receive the actions whose record names no
	// sink, or a sink that is not configured (a `route` to a team without a
	// sink). At most one sink is the default. default: false (such actions
	// go to the dead letter with reason unknown-sink)
	Default bool `yaml:"default"`

	// URL is where a webhook POSTs (http or https). Required for webhook;
	// only for webhook.
	URL string `yaml:"url"`
	// Format is, for a webhook, json (the action record as the body) or
	// slack (a Slack incoming-webhook message {"text": …} rendering the
	// action's message); for stdout, json (one record per line) or text (one
	// readable line). default: json
	Format string `yaml:"format"`
	// Secret, when set, signs every webhook request: see the package doc,
	// "Webhook signatures". Only for webhook. default: none (no signature
	// headers)
	Secret string `yaml:"secret"`
	// Headers are extra HTTP headers of every webhook request (e.g.
	// Authorization). Only for webhook. default: none
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one attempt: a webhook request (connect, send, reply),
	// or one Write of a kafka or redis-stream batch. A timed-out attempt is a
	// transient failure. default: 10s
	Timeout time.Duration `yaml:"timeout"`

	// Topic is the Kafka topic a kafka sink produces to, keyed by contact.
	// Only for kafka. default: the sink's name
	Topic string `yaml:"topic"`

	// Stream is the Redis stream key of a redis-stream sink. Only for
	// redis-stream. default: "leadpulse:" + the sink's name
	Stream string `yaml:"stream"`
	// MaxLen caps the stream at about this many entries (XADD MAXLEN ~:
	// Redis trims whole macro nodes, so the length may exceed it a little).
	// -1: no cap. Only for redis-stream. default: 1000000
	MaxLen int64 `yaml:"maxlen"`

	// Policy is how the Dispatcher delivers to this sink; its keys sit
	// beside the others (concurrency, rate, burst, batch, retry).
	Policy `yaml:",inline"`
}

// Policy is how the Dispatcher delivers to one sink. The zero value means
// the defaults below.
type Policy struct {
	// Concurrency is the most Writes in progress to the sink at once, over
	// all Dispatch calls: a slow or hanging sink holds only its own slots,
	// and the other sinks keep flowing. default: 4
	Concurrency int `yaml:"concurrency"`
	// Rate limits the actions written to the sink, e.g. "10/s", "600/m",
	// "1/2s" (a token bucket of Burst tokens). default: unlimited
	Rate Rate `yaml:"rate"`
	// Burst is the token bucket's size: how many actions may go at once
	// after a quiet spell. Only with rate. default: 1 with a rate (evenly
	// spaced)
	Burst int `yaml:"burst"`
	// Batch is the most actions of one Dispatch call given to one Write. A
	// webhook sends one action per request, so its batch is always 1.
	// default: 100 (webhook: 1)
	Batch int `yaml:"batch"`
	// Retry is the retry policy of transient failures.
	Retry Retry `yaml:"retry"`
}

// Retry is the retry policy of transient failures: exponential backoff
// with jitter (each wait is drawn from ±50% of the current interval, which
// doubles from Initial up to Max), or the wait the sink asked for (HTTP
// Retry-After). When the budget (For, Attempts) is spent, the action goes to
// the dead letter with reason retries-exhausted.
type Retry struct {
	// Initial is the first backoff interval. default: 200ms
	Initial time.Duration `yaml:"initial"`
	// Max caps the backoff interval (before jitter). default: 30s
	Max time.Duration `yaml:"max"`
	// For is how long an action keeps being retried after its first
	// attempt. Negative: until delivered or shut down (a sink that is down
	// then holds its actions, and the consumer's offsets, until it is
	// back). default: 10m
	For time.Duration `yaml:"for"`
	// Attempts caps the attempts (first one included). default: 0, no cap
	// but For
	Attempts int `yaml:"attempts"`
	// MaxRetryAfter caps a wait asked for by the sink (Retry-After), so that
	// a receiver cannot park the dispatcher for a day. default: 5m
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
}

// Rate is a number of actions per period, written "N/UNIT" or "N/DURATION":
// "10/s", "600/m", "1000/h", "1/2s", "2.5/s". The zero Rate is unlimited.
type Rate struct {
	N   float64
	Per time.Duration
}

// ParseRate reads a Rate.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "unlimited" {
		return Rate{}, nil
	}
	num, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q has no period; write a count and a period such as 10/s, 600/m or 1/2s", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return Rate{}, fmt.Errorf("rate %q: %q is not a positive number; write e.g. 10/s", s, num)
	}
	per = strings.TrimSpace(per)
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m", "min":
		d = time.Minute
	case "h":
		d = time.Hour
	case "d":
		d = 24 * time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return Rate{}, fmt.Errorf("rate %q: period %q is not s, m, h, d or a positive duration such as 2s", s, per)
		}
	}
	return Rate{N: n, Per: d}, nil
}

// UnmarshalText reads a Rate from YAML, JSON or an environment variable.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText writes the Rate as ParseRate reads it.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r Rate) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	n := strconv.FormatFloat(r.N, 'g', -1, 64)
	switch r.Per {
	case time.Second:
		return n + "/s"
	case time.Minute:
		return n + "/m"
	case time.Hour:
		return n + "/h"
	}
	return n + "/" + r.Per.String()
}

// Unlimited reports whether r sets no limit.
func (r Rate) Unlimited() bool { return r.N <= 0 || r.Per <= 0 }

// PerSecond is the rate in actions per second.
func (r Rate) PerSecond() float64 {
	if r.Unlimited() {
		return math.Inf(1)
	}
	return r.N / r.Per.Seconds()
}

// defaults are the values a zero field of SinkConfig takes: the one place
// they are written (Defaults returns them, validate fills them, the sink
// constructors read them). Format applies to webhook and stdout, Timeout to
// all but stdout, MaxLen to redis-stream; a webhook's Batch is always 1.
var defaults = SinkConfig{
	Format:  FormatJSON,
	Timeout: 10 * time.Second,
	MaxLen:  1_000_000,
	Policy: Policy{
		Concurrency: 4,
		Batch:       100,
		Retry: Retry{
			Initial:       200 * time.Millisecond,
			Max:           30 * time.Second,
			For:           10 * time.Minute,
			MaxRetryAfter: 5 * time.Minute,
		},
	},
}

// Defaults returns the SinkConfig whose every field with a default holds
// it: what a zero field means (see the field's doc for the types it
// applies to). Type, URL, Topic and Stream have none of their own.
func Defaults() SinkConfig { return defaults }

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// settingError is an invalid setting of one sink. Parse sets where, the
// sink's FILE:LINE, which then replaces ErrConfig's words in the message.
type settingError struct {
	sink  string
	where string // "FILE:LINE"; "" for a Config built in code
	err   error  // a configError
}

func (e *settingError) Error() string {
	if e.where == "" {
		return e.err.Error()
	}
	return e.where + ": " + strings.TrimPrefix(e.err.Error(), ErrConfig.Error()+": ")
}

func (e *settingError) Unwrap() error { return e.err }

// validate fills the defaults of p and rejects impossible values; at names
// the sink in messages ("sinks.sales").
func (p Policy) validate(at string) (Policy, error) {
	if p.Concurrency < 0 {
		return p, configError("%s: concurrency is %d; give the most writes at once (1 or more), or leave it out for %d", at, p.Concurrency, defaults.Concurrency)
	}
	if p.Concurrency == 0 {
		p.Concurrency = defaults.Concurrency
	}
	if p.Rate.N < 0 || p.Rate.Per < 0 {
		return p, configError("%s: rate %v is negative; write e.g. 10/s, or leave it out for no limit", at, p.Rate)
	}
	if p.Burst < 0 {
		return p, configError("%s: burst is %d; give the token bucket's size (1 or more)", at, p.Burst)
	}
	if p.Burst > 0 && p.Rate.Unlimited() {
		return p, configError("%s: burst is %d but rate is not set: burst sizes the rate limit's bucket; set rate (e.g. 10/s) or remove burst", at, p.Burst)
	}
	if p.Burst == 0 && !p.Rate.Unlimited() {
		p.Burst = 1
	}
	if p.Batch < 0 {
		return p, configError("%s: batch is %d; give the most actions per write (1 or more)", at, p.Batch)
	}
	if p.Batch == 0 {
		p.Batch = defaults.Batch
	}
	r := &p.Retry
	if r.Initial < 0 || r.Max < 0 || r.MaxRetryAfter < 0 {
		return p, configError("%s: retry.initial, retry.max and retry.max_retry_after must not be negative", at)
	}
	if r.Attempts < 0 {
		return p, configError("%s: retry.attempts is %d; give the most attempts (1 or more), or leave it out for no cap but retry.for", at, r.Attempts)
	}
	if r.Initial == 0 {
		r.Initial = defaults.Retry.Initial
	}
	if r.Max == 0 {
		r.Max = max(defaults.Retry.Max, r.Initial)
	}
	if r.Initial > r.Max {
		return p, configError("%s: retry.initial (%v) is more than retry.max (%v): raise retry.max or lower retry.initial", at, r.Initial, r.Max)
	}
	if r.For == 0 {
		r.For = defaults.Retry.For
	}
	if r.MaxRetryAfter == 0 {
		r.MaxRetryAfter = defaults.Retry.MaxRetryAfter
	}
	return p, nil
}

// only reports a setting made for a type other than t.
func only(at, t, key string, set bool, want ...string) error {
	if set && !slices.Contains(want, t) {
		return configError("%s: %s is set but type is %s: %s is only for type %s; remove it or change type", at, key, t, key, strings.Join(want, " or "))
	}
	return nil
}

// validate fills the defaults of the sink called name and rejects
// contradictions.
func (c SinkConfig) validate(name string) (SinkConfig, error) {
	at := "sinks." + name
	if strings.TrimSpace(name) == "" {
		return c, configError("sinks: a sink with an empty name; give every sink a name that rules can use in `sink:`")
	}
	switch c.Type {
	case TypeWebhook, TypeKafka, TypeRedisStream, TypeStdout:
	case "":
		return c, configError("%s: no type; set type to webhook, kafka, redis-stream or stdout", at)
	default:
		return c, configError("%s: unknown type %q; use webhook, kafka, redis-stream or stdout", at, c.Type)
	}
	t := c.Type
	for _, err := range []error{
		only(at, t, "url", c.URL != "", TypeWebhook),
		only(at, t, "secret", c.Secret != "", TypeWebhook),
		only(at, t, "headers", len(c.Headers) > 0, TypeWebhook),
		only(at, t, "format", c.Format != "", TypeWebhook, TypeStdout),
		only(at, t, "timeout", c.Timeout != 0, TypeWebhook, TypeKafka, TypeRedisStream),
		only(at, t, "topic", c.Topic != "", TypeKafka),
		only(at, t, "stream", c.Stream != "", TypeRedisStream),
		only(at, t, "maxlen", c.MaxLen != 0, TypeRedisStream),
	} {
		if err != nil {
			return c, err
		}
	}
	if c.Timeout < 0 {
		return c, configError("%s: timeout is %v; give how long one attempt may take (e.g. 5s), or leave it out for %v", at, c.Timeout, defaults.Timeout)
	}
	if c.Timeout == 0 && t != TypeStdout {
		c.Timeout = defaults.Timeout
	}
	switch t {
	case TypeWebhook:
		if c.URL == "" {
			return c, configError("%s: type webhook needs url (the http or https address to POST to)", at)
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, configError("%s: url %q is not an http or https address", at, redactURL(c.URL))
		}
		if c.Format, err = checkFormat(at, t, c.Format); err != nil {
			return c, err
		}
		for k := range c.Headers {
			if !validHeaderName(k) {
				return c, configError("%s: headers: %q is not a valid HTTP header name", at, k)
			}
			switch http.CanonicalHeaderKey(k) {
			case "Content-Type", "Idempotency-Key", "Content-Length", HeaderSignature, HeaderTimestamp:
				return c, configError("%s: headers: %s is set by the webhook itself; remove it from headers", at, k)
			}
		}
		if c.Batch > 1 {
			return c, configError("%s: batch is %d but type is webhook, which sends one action per request; remove batch", at, c.Batch)
		}
		c.Batch = 1
	case TypeStdout:
		var err error
		if c.Format, err = checkFormat(at, t, c.Format); err != nil {
			return c, err
		}
	case TypeKafka:
		if c.Topic == "" {
			c.Topic = name
		}
	case TypeRedisStream:
		if c.Stream == "" {
			c.Stream = "leadpulse:" + name
		}
		if c.MaxLen < -1 {
			return c, configError("%s: maxlen is %d; give the stream's approximate cap, or -1 for none", at, c.MaxLen)
		}
		if c.MaxLen == 0 {
			c.MaxLen = defaults.MaxLen
		}
	}
	p, err := c.Policy.validate(at)
	if err != nil {
		return c, err
	}
	c.Policy = p
	return c, nil
}

// Destination says where the sink delivers, for people: "webhook
// https://hooks.slack.com/<redacted> (slack)", "kafka topic email-sends",
// "redis stream leadpulse:audit", "standard output (text)". Secrets in a
// webhook URL are redacted. c is a validated SinkConfig (Validate).
func (c SinkConfig) Destination() string {
	switch c.Type {
	case TypeWebhook:
		return fmt.Sprintf("webhook %s (%s)", redactURL(c.URL), c.Format)
	case TypeKafka:
		return "kafka topic " + c.Topic
	case TypeRedisStream:
		return "redis stream " + c.Stream
	case TypeStdout:
		return fmt.Sprintf("standard output (%s)", c.Format)
	}
	return c.Type
}

// formatsOf are the formats of the types that take one.
var formatsOf = map[string][]string{
	TypeWebhook: {FormatJSON, FormatSlack},
	TypeStdout:  {FormatJSON, FormatText},
}

// checkFormat checks a sink's format against its type, and fills the
// default.
func checkFormat(at, typ, format string) (string, error) {
	ok := formatsOf[typ]
	switch {
	case format == "":
		return defaults.Format, nil
	case slices.Contains(ok, format):
		return format, nil
	}
	use := strings.Join(ok, " or ")
	for other, fs := range formatsOf {
		if other != typ && slices.Contains(fs, format) {
			return "", configError("%s: format %s is for type %s, but type is %s; use %s", at, format, other, typ, use)
		}
	}
	return "", configError("%s: unknown format %q for type %s; use %s", at, format, typ, use)
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

// Validate fills the defaults of every sink and rejects contradictions,
// within a sink or between sinks (two defaults). The returned Config is a
// copy; c is not changed.
func (c Config) Validate() (Config, error) {
	out := make(Config, len(c))
	def := ""
	for _, name := range c.names() {
		sc, err := c[name].validate(name)
		if err != nil {
			return nil, &settingError{sink: name, err: err}
		}
		if sc.Default {
			if def != "" {
				return nil, &settingError{sink: name, err: configError("sinks.%s and sinks.%s both say default: true; only one sink can be the default", def, name)}
			}
			def = name
		}
		out[name] = sc
	}
	return out, nil
}

// DefaultSink is the name of the sink marked `default: true`, or "".
func (c Config) DefaultSink() string {
	for _, name := range c.names() {
		if c[name].Default {
			return name
		}
	}
	return ""
}

// Policies returns each sink's Policy (as configured; the Dispatcher fills
// the defaults).
func (c Config) Policies() map[string]Policy {
	out := make(map[string]Policy, len(c))
	for name, sc := range c {
		out[name] = sc.Policy
	}
	return out
}

func (c Config) names() []string {
	names := make([]string, 0, len(c))
	for name := range c {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Deps are the clients and the I/O that Build gives the sinks. The clients
// belong to the caller: sinks use them and never close them.
type Deps struct {
	// HTTP sends webhook requests. default: a client of its own per
	// webhook, with Go's default transport settings and as many idle
	// connections per host as the sink's concurrency
	HTTP *http.Client
	// Kafka produces for kafka sinks. Required when one is configured. Give
	// it a bounded kgo.RecordDeliveryTimeout (Kafka's delivery.timeout.ms)
	// or kgo.RecordRetries, or a broker outage blocks a Write until the
	// sink's timeout instead of surfacing as a retried failure.
	Kafka *kgo.Client
	// Redis writes for redis-stream sinks (a *redis.Client or a
	// *redis.ClusterClient). Required when one is configured.
	Redis redis.UniversalClient
	// Stdout is where stdout sinks write. default: os.Stdout
	Stdout io.Writer
	// Now is the wall clock of signature timestamps and Retry-After dates.
	// default: time.Now
	Now func() time.Time
}

// Build validates cfg and makes its sinks. On error, the sinks made so far
// are closed.
func Build(cfg Config, deps Deps) (map[string]Sink, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	if deps.Stdout == nil {
		deps.Stdout = os.Stdout
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	out := make(map[string]Sink, len(cfg))
	fail := func(err error) (map[string]Sink, error) {
		var errs []error
		errs = append(errs, err)
		for _, s := range out {
			errs = append(errs, s.Close(context.Background()))
		}
		return nil, errors.Join(errs...)
	}
	for _, name := range cfg.names() {
		sc := cfg[name]
		var s Sink
		switch sc.Type {
		case TypeWebhook:
			s = NewWebhook(name, sc, deps.HTTP, deps.Now)
		case TypeKafka:
			if deps.Kafka == nil {
				return fail(configError("sinks.%s: type kafka needs a Kafka client (Deps.Kafka): is kafka.brokers set?", name))
			}
			s = NewKafka(deps.Kafka, sc.Topic, sc.Timeout)
		case TypeRedisStream:
			if deps.Redis == nil {
				return fail(configError("sinks.%s: type redis-stream needs a Redis client (Deps.Redis): is redis.addr set?", name))
			}
			s = NewRedisStream(deps.Redis, sc.Stream, sc.MaxLen, sc.Timeout)
		case TypeStdout:
			s = NewStdout(deps.Stdout, sc.Format)
		}
		out[name] = s
	}
	return out, nil
}
