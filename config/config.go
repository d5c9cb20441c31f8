// Package config is the deployment config of `leadpulse run` (SPEC §4): one
// YAML file, every key of which an environment variable can override.
//
//	kafka:
//	  brokers: [127.0.0.1:9092]
//	  group: leadpulse
//	  topics: { events: events, actions: actions, dlq: events.dlq }
//	redis:
//	  addr: 127.0.0.1:6379          # or a list of cluster nodes
//	rules: rules.yaml
//	http: 127.0.0.1:8080           # /metrics, /healthz, /readyz, admin API
//	sinks:
//	  log: { type: stdout }
//
// The zero value of every field means the default written beside it
// (`// default: …`); Load fills the defaults and refuses contradictions,
// naming both settings and where each was set (FILE:LINE, or the
// environment variable). Unknown keys are refused with their line, and so
// are unknown LEADPULSE_* variables.
//
// # Environment
//
// Each key's variable is LEADPULSE_ followed by its YAML path in upper case,
// dots and dashes turned into underscores: kafka.brokers is
// LEADPULSE_KAFKA_BROKERS, kafka.topics.dlq LEADPULSE_KAFKA_TOPICS_DLQ,
// redis.tls.ca_file LEADPULSE_REDIS_TLS_CA_FILE, admin_token
// LEADPULSE_ADMIN_TOKEN (Vars lists them all). A variable wins over the
// file. Lists (kafka.brokers, redis.addr) are comma-separated, maps
// (kafka.topic_configs) are k=v pairs separated by commas, durations are Go
// durations (500ms, 30s, 2160h), and LEADPULSE_SINKS is a YAML mapping
// (e.g. `{log: {type: stdout}}`).
//
// Relative file paths (rules, tls.*_file) are relative to the config file's
// directory when they come from the file or are defaults, and to the
// working directory when they come from the environment.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// EnvPrefix starts the name of every environment variable of the config.
const EnvPrefix = "LEADPULSE_"

// Config is the deployment config of `leadpulse run`.
type Config struct {
	// Kafka is where the events come from and the actions go.
	Kafka Kafka `yaml:"kafka"`
	// Pipeline tunes the live pipeline's batches, queues and live time.
	Pipeline Pipeline `yaml:"pipeline"`
	// Redis keeps every contact's state.
	Redis Redis `yaml:"redis"`
	// Rules is the rules file (SPEC §2). It is loaded and validated at
	// start (a file that does not validate stops the start, with its
	// FILE:LINE problems), and again on SIGHUP (a file that does not
	// validate is logged and the last valid rules keep running).
	// default: "rules.yaml" beside the config file
	Rules string `yaml:"rules"`
	// HTTP is the host:port of /metrics, /healthz, /readyz and the admin
	// API (/contacts/ID). An address beyond loopback requires admin_token.
	// default: "127.0.0.1:8080"
	HTTP string `yaml:"http"`
	// AdminToken, when set, is required as `Authorization: Bearer TOKEN` by
	// the admin API (/contacts/…); /metrics, /healthz and /readyz stay
	// open. Prefer LEADPULSE_ADMIN_TOKEN to writing it in the file.
	// default: "" (no token; then http must be a loopback address)
	AdminToken string `yaml:"admin_token"`
	// Log configures the process' logs (standard error).
	Log Log `yaml:"log"`
	// Sinks is the `sinks:` block, sink name → sink, kept raw: the sinks
	// package parses it (DecodeSinks). Here it is only checked to be a
	// mapping. default: none (no dispatch stage: the actions stay on the
	// actions topic for other consumers)
	Sinks map[string]any `yaml:"sinks"`

	file      string            // the config file; "" when loaded from memory without a name
	origin    map[string]string // key path → "FILE:LINE" or "$LEADPULSE_…"
	sinksName string            // where the sinks block was read: the file, or $LEADPULSE_SINKS
	sinksSrc  []byte            // the YAML holding it (top-level key `sinks`)
}

// Kafka configures the Kafka clients, the consumer groups and the topics.
type Kafka struct {
	// Brokers are the seed brokers, host:port (a YAML list, or one string).
	// Corresponds to Kafka's bootstrap.servers. default: [127.0.0.1:9092]
	Brokers StringList `yaml:"brokers"`
	// Group is the scoring stage's consumer group (Kafka's group.id); the
	// ingest and dispatch stages use Group+"-ingest" and Group+"-dispatch".
	// Processes with the same group share the partitions. default: "leadpulse"
	Group string `yaml:"group"`
	// Topics names the topics of SPEC §5. default: see Topics
	Topics Topics `yaml:"topics"`
	// InputKeyed skips the ingest hop: the scoring stage reads topics.events
	// directly, which every producer must then key by contact with Kafka's
	// default partitioner (murmur2). default: false
	InputKeyed bool `yaml:"input_keyed"`
	// Partitions is the partition count of the topics this process creates
	// because they are missing (Kafka's num.partitions); existing topics are
	// used as they are. default: 6
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor of created topics (Kafka's
	// default.replication.factor). default: 0, the broker's default
	ReplicationFactor int16 `yaml:"replication_factor"`
	// TopicConfigs are the configs of created topics, e.g. retention.ms.
	// default: none (the broker's defaults)
	TopicConfigs map[string]string `yaml:"topic_configs"`
	// TLS secures the connections to the brokers (Kafka's
	// security.protocol SSL, or SASL_SSL with sasl). default: plain TCP
	TLS TLS `yaml:"tls"`
	// SASL authenticates to the brokers (Kafka's sasl.mechanism).
	// default: none
	SASL SASL `yaml:"sasl"`
	// SessionTimeout is how long the group coordinator waits for a
	// heartbeat before it gives a silent member's partitions to the others
	// (Kafka's session.timeout.ms): the longest a crashed process' partitions
	// wait. default: 45s
	SessionTimeout Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often members heartbeat (Kafka's
	// heartbeat.interval.ms); keep it at most a third of session_timeout.
	// default: 3s
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// RebalanceTimeout bounds how long a member may take to give partitions
	// back in a rebalance: its partitions' drain (Kafka's
	// rebalance.timeout.ms / max.poll.interval.ms). default: 60s
	RebalanceTimeout Duration `yaml:"rebalance_timeout"`
	// FetchMaxWait is how long a broker holds a fetch that has no new data
	// (Kafka's fetch.max.wait.ms). default: 100ms
	FetchMaxWait Duration `yaml:"fetch_max_wait"`
	// TransactionalID is the ingest stage's Kafka transactional.id: each
	// process needs its own, kept across its restarts (see
	// stream.Config.TransactionalID). default: "" → Group + "-ingest-" +
	// the host name
	TransactionalID string `yaml:"transactional_id"`
	// TransactionTimeout is Kafka's transaction.timeout.ms for the ingest
	// transactions: how long a crashed process' open transaction can hold
	// back the keyed topic. default: 10s
	TransactionTimeout Duration `yaml:"transaction_timeout"`
	// NoTransactions produces the keyed topic without transactions
	// (brokers without them): after a crash some keyed records repeat, and
	// only their messageId dedupes them. default: false
	NoTransactions bool `yaml:"no_transactions"`
}

// Topics names the topics of SPEC §5.
type Topics struct {
	// Events is the input. default: "events"
	Events string `yaml:"events"`
	// Keyed is the contact-keyed topic between ingest and scoring (unused
	// with input_keyed). default: "events.keyed"
	Keyed string `yaml:"keyed"`
	// Actions receives one JSON record per action (SPEC §3). default: "actions"
	Actions string `yaml:"actions"`
	// DLQ receives bad input with its reason in headers. default: "events.dlq"
	DLQ string `yaml:"dlq"`
	// ActionsDLQ receives the actions no sink accepted. default: "actions.dlq"
	ActionsDLQ string `yaml:"actions_dlq"`
}

// TLS configures TLS to Kafka or Redis.
type TLS struct {
	// Enabled turns TLS on; the other fields need it. default: false
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that sign the server certificates.
	// default: "" (the system's roots)
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key (mutual
	// TLS; Kafka's ssl.keystore). Set both or neither. default: none
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in the server certificate.
	// default: "" (the host dialled)
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate: for tests only.
	// default: false
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASL configures SASL authentication to Kafka.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's
	// sasl.mechanism). PLAIN sends the password as it is: use it with tls.
	// default: "" (no SASL)
	Mechanism string `yaml:"mechanism"`
	// Username and Password are the credentials (Kafka's
	// sasl.jaas.config). Prefer LEADPULSE_KAFKA_SASL_PASSWORD to the file.
	// default: none; required with a mechanism
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Pipeline tunes the live pipeline (stream.Config).
type Pipeline struct {
	// BatchRecords is the most records a partition applies before it
	// produces their actions and commits state and offset. default: 4000
	BatchRecords int `yaml:"batch_records"`
	// QueueRecords bounds the records fetched and waiting for one
	// partition; a full queue pauses fetching that partition. default: 4096
	QueueRecords int `yaml:"queue_records"`
	// PollRecords is the most records one poll takes (Kafka's
	// max.poll.records). default: 10000
	PollRecords int `yaml:"poll_records"`
	// TimerDelay is how long after its due time (wall clock) a timer of a
	// caught-up partition fires. default: 500ms
	TimerDelay Duration `yaml:"timer_delay"`
	// Tick is how often an idle partition checks for due timers.
	// default: 200ms
	Tick Duration `yaml:"tick"`
	// TimerHorizon is how far ahead of a partition's clock stored timers are
	// loaded from Redis. default: 1m
	TimerHorizon Duration `yaml:"timer_horizon"`
	// DrainTimeout bounds the final flush and commit of the partitions on
	// SIGTERM and on revoke. default: 30s
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// Redis configures the state store (state.RedisOptions; docs/redis.md).
type Redis struct {
	// Addr is one host:port (a standalone server), or a list of Redis
	// Cluster seed nodes. default: 127.0.0.1:6379
	Addr StringList `yaml:"addr"`
	// Cluster uses the Cluster protocol with one seed address (a managed
	// cluster's configuration endpoint). default: false (cluster with two or
	// more addresses)
	Cluster bool `yaml:"cluster"`
	// Username is the ACL user (AUTH username password). default: "" (the
	// default user)
	Username string `yaml:"username"`
	// Password authenticates (Redis' requirepass). Prefer
	// LEADPULSE_REDIS_PASSWORD to the file. default: "" (no AUTH)
	Password string `yaml:"password"`
	// DB is the database of a standalone server (SELECT). default: 0
	DB int `yaml:"db"`
	// TLS secures the connections. default: plain TCP
	TLS TLS `yaml:"tls"`
	// KeyPrefix starts every key; no '{' or '}'. default: "lp"
	KeyPrefix string `yaml:"key_prefix"`
	// TTL is the retention of an idle contact (its state expires TTL after
	// its last write); negative keeps contacts forever. It must exceed the
	// rules' longest `within` and `inactive`. default: 2160h (90 days)
	TTL Duration `yaml:"ttl"`
	// DialTimeout bounds opening a connection. default: 5s
	DialTimeout Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound a reply and a send. default: 3s each
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// PoolSize is the most connections per node. default: 0, 10 per CPU
	PoolSize int `yaml:"pool_size"`
	// MaxRetries is how often a failed call is retried on the network, with
	// backoff, before it is reported; -1 disables retries. default: 3
	MaxRetries int `yaml:"max_retries"`
	// CacheCapacity is the most contacts each partition keeps in memory in
	// front of Redis. default: 20000
	CacheCapacity int `yaml:"cache_capacity"`
}

// Log configures the logs.
type Log struct {
	// Level is debug, info, warn or error. default: info
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value) or json. default: text
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as a Go duration string ("500ms",
// "30s", "2160h") in YAML and in the environment.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration; write e.g. 500ms, 30s, 5m or 2160h", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// StringList is a list of strings that YAML may also give as one string.
type StringList []string

// UnmarshalYAML reads a sequence of strings, or one string.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		*l = nil
		return nil
	case n.Kind == yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case n.Kind == yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want host:port or a list of them", n.Line)}}
}

// ErrInvalid is matched (errors.Is) by every error of Load about the
// config's content.
var ErrInvalid = errors.New("invalid deployment config")

// Problem is one thing wrong with the config.
type Problem struct {
	Where string // "FILE:LINE", "$LEADPULSE_…", or the file name alone (a default)
	Key   string // the YAML path, e.g. kafka.sasl.mechanism; "" for a syntax error
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem of a config; the config is refused whole.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Load reads the config file at path, applies the LEADPULSE_* variables of
// environ (os.Environ()), fills the defaults and validates. A config that
// does not validate returns an *Error with every problem.
func Load(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read deployment config: %w", err)
	}
	return Parse(path, data, environ)
}

// Parse is Load for a config held in memory; name is the file name used in
// messages and to resolve relative paths.
func Parse(name string, data []byte, environ []string) (*Config, error) {
	c := &Config{file: name, origin: map[string]string{}}
	var ps problems
	c.decode(data, &ps)
	if len(ps) == 0 {
		c.applyEnv(environ, &ps)
	}
	if len(ps) == 0 {
		c.resolvePaths()
		c.validate(&ps)
	}
	if len(ps) > 0 {
		return nil, &Error{Problems: ps}
	}
	return c, nil
}

type problems []Problem

// add records a problem with keys[0] and says where the first key that was
// set came from.
func (ps *problems) add(c *Config, keys []string, format string, args ...any) {
	where := ""
	for _, k := range keys {
		if w := c.origin[k]; w != "" {
			where = w
			break
		}
	}
	if where == "" {
		where = c.file
	}
	*ps = append(*ps, Problem{Where: where, Key: keys[0], Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) decode(data []byte, ps *problems) {
	if len(bytes.TrimSpace(data)) == 0 {
		return
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		*ps = append(*ps, yamlProblems(c.file, err)...)
		return
	}
	if len(root.Content) == 1 {
		top := root.Content[0]
		if top.Kind != yaml.MappingNode && !(top.Kind == yaml.ScalarNode && top.Tag == "!!null") {
			*ps = append(*ps, Problem{Where: fmt.Sprintf("%s:%d", c.file, top.Line), Msg: "the deployment config is a YAML mapping (kafka:, redis:, rules:, http:, sinks:)"})
			return
		}
		c.recordOrigins(top, "")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		*ps = append(*ps, yamlProblems(c.file, err)...)
		return
	}
	if c.Sinks != nil || c.origin["sinks"] != "" {
		c.sinksName, c.sinksSrc = c.file, data
	}
}

// recordOrigins notes the line of every key of the file.
func (c *Config) recordOrigins(n *yaml.Node, prefix string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		c.origin[path] = fmt.Sprintf("%s:%d", c.file, k.Line)
		if prefix == "" && k.Value == "sinks" {
			continue // the sinks package's business
		}
		c.recordOrigins(v, path)
	}
}

var (
	lineRe    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRe = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// yamlProblems turns a YAML error into FILE:LINE problems, naming unknown
// keys by their place in the config.
func yamlProblems(file string, err error) []Problem {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var ps []Problem
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		where := file
		if sm := lineRe.FindStringSubmatch(m); sm != nil {
			where, m = file+":"+sm[1], sm[2]
		}
		if sm := unknownRe.FindStringSubmatch(m); sm != nil {
			in := sectionOf[strings.TrimPrefix(sm[2], "config.")]
			if in == "" {
				m = fmt.Sprintf("unknown key %q at the top level; the keys are %s", sm[1], strings.Join(keysOf(reflect.TypeFor[Config]()), ", "))
			} else {
				m = fmt.Sprintf("unknown key %q in %s:; the keys there are %s", sm[1], in, strings.Join(keysOf(typeOfSection[in]), ", "))
			}
		}
		ps = append(ps, Problem{Where: where, Msg: m})
	}
	return ps
}

// sectionOf maps a struct type name to its YAML path (the first one: TLS is
// both kafka.tls and redis.tls), for messages about unknown keys.
var (
	sectionOf     = map[string]string{}
	typeOfSection = map[string]reflect.Type{}
)

func init() {
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" || f.Type.Kind() != reflect.Struct {
				continue
			}
			path := join(prefix, name)
			if _, ok := sectionOf[f.Type.Name()]; !ok {
				sectionOf[f.Type.Name()] = path
				typeOfSection[path] = f.Type
			} else {
				sectionOf[f.Type.Name()] += " or " + path
				typeOfSection[sectionOf[f.Type.Name()]] = f.Type
			}
			walk(f.Type, path)
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

func keysOf(t reflect.Type) []string {
	var ks []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" {
			ks = append(ks, n)
		}
	}
	return ks
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Var is one config key and the environment variable that overrides it.
type Var struct {
	Key string // YAML path: kafka.sasl.password
	Env string // LEADPULSE_KAFKA_SASL_PASSWORD
}

// EnvName returns the environment variable of a YAML path: LEADPULSE_ and
// the path in upper case with dots and dashes as underscores.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// Vars lists every key of the config with its environment variable, in
// the order of the Config struct.
func Vars() []Var {
	var vs []Var
	eachLeaf(reflect.TypeFor[Config](), "", func(key string, _ []int) {
		vs = append(vs, Var{Key: key, Env: EnvName(key)})
	})
	return vs
}

// eachLeaf calls f for every leaf key (not a nested section) with its field
// index path.
func eachLeaf(t reflect.Type, prefix string, f func(key string, index []int)) {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name := yamlName(sf)
			if name == "" {
				continue
			}
			idx := append(slices.Clone(index), i)
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, join(prefix, name), idx)
				continue
			}
			f(join(prefix, name), idx)
		}
	}
	walk(t, prefix, nil)
}

var durationType = reflect.TypeFor[Duration]()

// applyEnv sets the keys whose variable is in environ, and refuses unknown
// LEADPULSE_ variables.
func (c *Config) applyEnv(environ []string, ps *problems) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	known := map[string]bool{}
	root := reflect.ValueOf(c).Elem()
	eachLeaf(root.Type(), "", func(key string, index []int) {
		name := EnvName(key)
		known[name] = true
		raw, ok := env[name]
		if !ok {
			return
		}
		fv := root.FieldByIndex(index)
		if err := c.setFromEnv(fv, name, raw); err != nil {
			*ps = append(*ps, Problem{Where: "$" + name, Key: key, Msg: err.Error()})
			return
		}
		c.origin[key] = "$" + name
	})
	var unknown []string
	for k := range env {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		msg := "unknown variable: every LEADPULSE_ variable names a config key (see `leadpulse run --help` and the README)"
		if s := closest(k, known); s != "" {
			msg = fmt.Sprintf("unknown variable; did you mean %s?", s)
		}
		*ps = append(*ps, Problem{Where: "$" + k, Msg: msg})
	}
}

func (c *Config) setFromEnv(fv reflect.Value, name, raw string) error {
	switch {
	case fv.Type() == durationType:
		d, err := parseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration; write e.g. 500ms, 30s, 5m or 2160h", raw)
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(raw)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		fv.SetBool(b)
	case fv.CanInt():
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number (%d-bit)", raw, fv.Type().Bits())
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		var list []string
		for s := range strings.SplitSeq(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		fv.Set(reflect.ValueOf(list).Convert(fv.Type()))
	case fv.Type() == reflect.TypeFor[map[string]string]():
		m := map[string]string{}
		for kv := range strings.SplitSeq(raw, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("%q: want key=value pairs separated by commas, e.g. retention.ms=604800000,segment.bytes=1073741824", kv)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		fv.Set(reflect.ValueOf(m))
	case fv.Type() == reflect.TypeFor[map[string]any]():
		// A YAML mapping (flow or block); parsed strictly by DecodeSinks.
		var m map[string]any
		if err := yaml.Unmarshal([]byte(raw), &m); err != nil {
			return fmt.Errorf("want a YAML mapping such as {log: {type: stdout}}: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		fv.Set(reflect.ValueOf(m))
		var b bytes.Buffer
		b.WriteString("sinks:\n")
		for line := range strings.SplitSeq(raw, "\n") {
			b.WriteString("  ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
		c.sinksName, c.sinksSrc = "$"+name, b.Bytes()
	default:
		return fmt.Errorf("cannot be set from the environment (a bug: type %s)", fv.Type())
	}
	return nil
}

// closest returns the known name nearest to name, if it is near.
func closest(name string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// resolvePaths makes relative file paths that come from the file (or are
// defaults) relative to the file's directory.
func (c *Config) resolvePaths() {
	if c.file == "" {
		return
	}
	dir := filepath.Dir(c.file)
	if c.Rules == "" {
		c.Rules = "rules.yaml"
	}
	for key, p := range map[string]*string{
		"rules":               &c.Rules,
		"kafka.tls.ca_file":   &c.Kafka.TLS.CAFile,
		"kafka.tls.cert_file": &c.Kafka.TLS.CertFile,
		"kafka.tls.key_file":  &c.Kafka.TLS.KeyFile,
		"redis.tls.ca_file":   &c.Redis.TLS.CAFile,
		"redis.tls.cert_file": &c.Redis.TLS.CertFile,
		"redis.tls.key_file":  &c.Redis.TLS.KeyFile,
	} {
		if *p == "" || filepath.IsAbs(*p) || strings.HasPrefix(c.origin[key], "$") {
			continue
		}
		*p = filepath.Join(dir, *p)
	}
}

// Defaults.
const (
	DefaultBroker = "127.0.0.1:9092"
	DefaultGroup  = "leadpulse"
	DefaultRedis  = "127.0.0.1:6379"
	DefaultHTTP   = "127.0.0.1:8080"
)

// validate fills the defaults and records every contradiction or bad value.
func (c *Config) validate(ps *problems) {
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		k.Brokers = StringList{DefaultBroker}
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			ps.add(c, []string{"kafka.brokers"}, "%q is not host:port (e.g. kafka-1.internal:9092)", b)
		}
	}
	if k.Group == "" {
		k.Group = DefaultGroup
	}
	t := &k.Topics
	for _, d := range []struct {
		p   *string
		def string
	}{{&t.Events, "events"}, {&t.Keyed, "events.keyed"}, {&t.Actions, "actions"}, {&t.DLQ, "events.dlq"}, {&t.ActionsDLQ, "actions.dlq"}} {
		if *d.p == "" {
			*d.p = d.def
		}
	}
	seen := map[string]string{}
	for _, n := range []struct{ key, topic string }{
		{"kafka.topics.events", t.Events}, {"kafka.topics.keyed", t.Keyed}, {"kafka.topics.actions", t.Actions},
		{"kafka.topics.dlq", t.DLQ}, {"kafka.topics.actions_dlq", t.ActionsDLQ},
	} {
		if n.key == "kafka.topics.keyed" && k.InputKeyed {
			continue
		}
		if other, dup := seen[n.topic]; dup {
			ps.add(c, []string{n.key, other}, "%s and %s are both %q: each stage needs its own topic", other, n.key, n.topic)
		}
		seen[n.topic] = n.key
	}
	if k.Partitions == 0 {
		k.Partitions = 6
	} else if k.Partitions < 0 {
		ps.add(c, []string{"kafka.partitions"}, "%d: give the partition count of created topics, 1 or more", k.Partitions)
	}
	if k.ReplicationFactor < 0 {
		ps.add(c, []string{"kafka.replication_factor"}, "%d: give 1 or more, or 0 for the broker's default", k.ReplicationFactor)
	}
	c.validateTLS(ps, "kafka.tls", &k.TLS)
	s := &k.SASL
	s.Mechanism = strings.ToUpper(strings.TrimSpace(s.Mechanism))
	switch s.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		ps.add(c, []string{"kafka.sasl.mechanism"}, "%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
	}
	if s.Mechanism != "" && (s.Username == "" || s.Password == "") {
		ps.add(c, []string{"kafka.sasl.mechanism", "kafka.sasl.username"}, "kafka.sasl.mechanism is %s but kafka.sasl.username or kafka.sasl.password is empty: give both (LEADPULSE_KAFKA_SASL_USERNAME, LEADPULSE_KAFKA_SASL_PASSWORD)", s.Mechanism)
	}
	if s.Mechanism == "" && (s.Username != "" || s.Password != "") {
		ps.add(c, []string{"kafka.sasl.username", "kafka.sasl.password", "kafka.sasl.mechanism"}, "kafka.sasl.username/password are set but kafka.sasl.mechanism is empty: set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, or remove the credentials")
	}
	c.duration(ps, "kafka.session_timeout", &k.SessionTimeout, 45*time.Second)
	c.duration(ps, "kafka.heartbeat_interval", &k.HeartbeatInterval, 3*time.Second)
	c.duration(ps, "kafka.rebalance_timeout", &k.RebalanceTimeout, 60*time.Second)
	c.duration(ps, "kafka.fetch_max_wait", &k.FetchMaxWait, 100*time.Millisecond)
	c.duration(ps, "kafka.transaction_timeout", &k.TransactionTimeout, 10*time.Second)
	if k.TransactionTimeout.D() < time.Second {
		ps.add(c, []string{"kafka.transaction_timeout"}, "%v: want 1s or more (the broker aborts an ingest transaction open longer)", k.TransactionTimeout.D())
	}
	if k.HeartbeatInterval >= k.SessionTimeout {
		ps.add(c, []string{"kafka.heartbeat_interval", "kafka.session_timeout"}, "kafka.heartbeat_interval (%v) is not below kafka.session_timeout (%v): members would be evicted between heartbeats; keep the interval at most a third of the timeout", k.HeartbeatInterval, k.SessionTimeout)
	}

	p := &c.Pipeline
	c.positive(ps, "pipeline.batch_records", &p.BatchRecords, 4000)
	c.positive(ps, "pipeline.queue_records", &p.QueueRecords, 4096)
	c.positive(ps, "pipeline.poll_records", &p.PollRecords, 10000)
	if p.QueueRecords < p.BatchRecords {
		ps.add(c, []string{"pipeline.queue_records", "pipeline.batch_records"}, "pipeline.queue_records (%d) is below pipeline.batch_records (%d): a partition could never fill a batch; raise the first or lower the second", p.QueueRecords, p.BatchRecords)
	}
	c.duration(ps, "pipeline.timer_delay", &p.TimerDelay, 500*time.Millisecond)
	c.duration(ps, "pipeline.tick", &p.Tick, 200*time.Millisecond)
	c.duration(ps, "pipeline.timer_horizon", &p.TimerHorizon, time.Minute)
	c.duration(ps, "pipeline.drain_timeout", &p.DrainTimeout, 30*time.Second)
	if p.TimerHorizon < p.Tick {
		ps.add(c, []string{"pipeline.timer_horizon", "pipeline.tick"}, "pipeline.timer_horizon (%v) is shorter than pipeline.tick (%v): timers would be loaded after they are due", p.TimerHorizon, p.Tick)
	}
	if p.DrainTimeout >= k.RebalanceTimeout {
		ps.add(c, []string{"pipeline.drain_timeout", "kafka.rebalance_timeout"}, "pipeline.drain_timeout (%v) is not below kafka.rebalance_timeout (%v): a partition still draining would be given to another member; lower the first or raise the second", p.DrainTimeout, k.RebalanceTimeout)
	}

	r := &c.Redis
	if len(r.Addr) == 0 {
		r.Addr = StringList{DefaultRedis}
	}
	for _, a := range r.Addr {
		if _, _, err := net.SplitHostPort(a); err != nil {
			ps.add(c, []string{"redis.addr"}, "%q is not host:port (e.g. redis.internal:6379)", a)
		}
	}
	if r.DB != 0 && (r.Cluster || len(r.Addr) > 1) {
		ps.add(c, []string{"redis.db", "redis.addr", "redis.cluster"}, "redis.db is %d but redis.addr lists %d nodes or redis.cluster is set: Redis Cluster only has database 0", r.DB, len(r.Addr))
	}
	if r.DB < 0 {
		ps.add(c, []string{"redis.db"}, "%d: want 0 or more", r.DB)
	}
	if r.KeyPrefix == "" {
		r.KeyPrefix = "lp"
	}
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		ps.add(c, []string{"redis.key_prefix"}, "%q must not contain '{' or '}' (Redis Cluster hash tags)", r.KeyPrefix)
	}
	switch {
	case r.TTL == 0:
		r.TTL = Duration(state.DefaultTTL)
	case r.TTL > 0 && r.TTL.D() < time.Millisecond:
		ps.add(c, []string{"redis.ttl"}, "%v: want at least 1ms, or a negative duration to keep contacts forever", r.TTL)
	}
	c.duration(ps, "redis.dial_timeout", &r.DialTimeout, 5*time.Second)
	c.duration(ps, "redis.read_timeout", &r.ReadTimeout, 3*time.Second)
	c.duration(ps, "redis.write_timeout", &r.WriteTimeout, 3*time.Second)
	if r.PoolSize < 0 {
		ps.add(c, []string{"redis.pool_size"}, "%d: want 1 or more, or 0 for the default", r.PoolSize)
	}
	switch {
	case r.MaxRetries == 0:
		r.MaxRetries = 3
	case r.MaxRetries < -1:
		ps.add(c, []string{"redis.max_retries"}, "%d: want -1 (no retries) or more", r.MaxRetries)
	}
	c.positive(ps, "redis.cache_capacity", &r.CacheCapacity, state.DefaultCacheCapacity)
	c.validateTLS(ps, "redis.tls", &r.TLS)

	if c.Rules == "" {
		c.Rules = "rules.yaml"
	}
	if c.HTTP == "" {
		c.HTTP = DefaultHTTP
	}
	if host, _, err := net.SplitHostPort(c.HTTP); err != nil {
		ps.add(c, []string{"http"}, "%q is not host:port (e.g. 127.0.0.1:8080)", c.HTTP)
	} else if !loopback(host) && c.AdminToken == "" {
		ps.add(c, []string{"http", "admin_token"}, "http %s listens beyond loopback but admin_token is empty: anyone who reaches it could read and erase contacts; set admin_token (LEADPULSE_ADMIN_TOKEN), or bind http to 127.0.0.1", c.HTTP)
	}
	c.Log.Level = strings.ToLower(c.Log.Level)
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		ps.add(c, []string{"log.level"}, "%q: want debug, info, warn or error", c.Log.Level)
	}
	c.Log.Format = strings.ToLower(c.Log.Format)
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		ps.add(c, []string{"log.format"}, "%q: want text or json", c.Log.Format)
	}
}

func (c *Config) validateTLS(ps *problems, at string, t *TLS) {
	if !t.Enabled {
		for _, f := range []struct{ name, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"server_name", t.ServerName}} {
			if f.v != "" {
				ps.add(c, []string{at + "." + f.name, at + ".enabled"}, "%s.%s is set but %s.enabled is false: enable TLS or remove %s.%s", at, f.name, at, at, f.name)
			}
		}
		if t.InsecureSkipVerify {
			ps.add(c, []string{at + ".insecure_skip_verify", at + ".enabled"}, "%s.insecure_skip_verify is set but %s.enabled is false", at, at)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		ps.add(c, []string{at + ".cert_file", at + ".key_file"}, "%s.cert_file %q and %s.key_file %q: set both (a client certificate and its key) or neither", at, t.CertFile, at, t.KeyFile)
	}
	if t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != "") {
		ps.add(c, []string{at + ".insecure_skip_verify", at + ".ca_file", at + ".server_name"}, "%s.insecure_skip_verify contradicts %s.ca_file/%s.server_name: verification is either skipped or configured", at, at, at)
	}
	for _, f := range []struct{ name, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.v == "" {
			continue
		}
		if _, err := os.Stat(f.v); err != nil {
			ps.add(c, []string{at + "." + f.name}, "%v", err)
		}
	}
}

func (c *Config) duration(ps *problems, key string, d *Duration, def time.Duration) {
	switch {
	case *d == 0:
		*d = Duration(def)
	case *d < 0:
		ps.add(c, []string{key}, "%v: want a positive duration, or leave it out for the default (%v)", *d, def)
	}
}

func (c *Config) positive(ps *problems, key string, n *int, def int) {
	switch {
	case *n == 0:
		*n = def
	case *n < 0:
		ps.add(c, []string{key}, "%d: want 1 or more, or leave it out for the default (%d)", *n, def)
	}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// File returns the config file's name.
func (c *Config) File() string { return c.file }

// Where says where a key was set: "FILE:LINE", "$LEADPULSE_…", or "" for a
// default.
func (c *Config) Where(key string) string { return c.origin[key] }

// DecodeSinks decodes the sinks: block strictly into a T (sinks.Config):
// an unknown key is an error with its line in the file (or in
// LEADPULSE_SINKS). It returns the zero T when there is no sinks: block.
func DecodeSinks[T any](c *Config) (T, error) {
	var doc struct {
		Sinks T              `yaml:"sinks"`
		Rest  map[string]any `yaml:",inline"`
	}
	if c.sinksSrc == nil {
		return doc.Sinks, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(c.sinksSrc))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		ps := yamlProblems(c.sinksName, err)
		for i := range ps {
			ps[i].Key = "sinks"
		}
		return doc.Sinks, &Error{Problems: ps}
	}
	return doc.Sinks, nil
}

// KafkaOptions are the franz-go options of the TLS, SASL and group
// settings, for every client the process makes.
func (c *Config) KafkaOptions() ([]kgo.Opt, error) {
	k := &c.Kafka
	var opts []kgo.Opt
	if k.TLS.Enabled {
		tc, err := tlsConfig("kafka.tls", &k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := k.SASL
	switch s.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
	}
	opts = append(opts,
		kgo.SessionTimeout(k.SessionTimeout.D()),
		kgo.HeartbeatInterval(k.HeartbeatInterval.D()),
		kgo.RebalanceTimeout(k.RebalanceTimeout.D()),
	)
	return opts, nil
}

// tlsConfig builds a client TLS config; kgo sets the server name per broker
// when it is empty.
func tlsConfig(at string, t *TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.ca_file: %w", ErrInvalid, at, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s.ca_file %s: no PEM certificate in it", ErrInvalid, at, t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.cert_file/key_file: %w", ErrInvalid, at, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Stream returns the pipeline's configuration, with the Kafka options of
// KafkaOptions and log as its logger.
func (c *Config) Stream(log *slog.Logger) (stream.Config, error) {
	opts, err := c.KafkaOptions()
	if err != nil {
		return stream.Config{}, err
	}
	k, p := &c.Kafka, &c.Pipeline
	rf := k.ReplicationFactor
	if rf == 0 {
		rf = -1
	}
	return stream.Config{
		Brokers: slices.Clone(k.Brokers),
		Group:   k.Group,
		Topics: stream.Topics{
			Events: k.Topics.Events, Keyed: k.Topics.Keyed, Actions: k.Topics.Actions,
			DLQ: k.Topics.DLQ, ActionsDLQ: k.Topics.ActionsDLQ,
		},
		InputKeyed:         k.InputKeyed,
		Partitions:         k.Partitions,
		ReplicationFactor:  rf,
		TopicConfigs:       k.TopicConfigs,
		BatchRecords:       p.BatchRecords,
		QueueRecords:       p.QueueRecords,
		PollRecords:        p.PollRecords,
		FetchMaxWait:       k.FetchMaxWait.D(),
		NoTransactions:     k.NoTransactions,
		TransactionalID:    k.TransactionalID,
		TransactionTimeout: k.TransactionTimeout.D(),
		TimerDelay:         p.TimerDelay.D(),
		Tick:               p.Tick.D(),
		TimerHorizon:       p.TimerHorizon.D(),
		DrainTimeout:       p.DrainTimeout.D(),
		Logger:             log,
		KafkaOptions:       opts,
	}, nil
}

// RedisOptions returns the state store's options, with log as its logger.
func (c *Config) RedisOptions(log *slog.Logger) state.RedisOptions {
	r := &c.Redis
	return state.RedisOptions{
		Addrs:    slices.Clone(r.Addr),
		Cluster:  r.Cluster,
		Username: r.Username,
		Password: r.Password,
		DB:       r.DB,
		TLS: state.TLSOptions{
			Enabled: r.TLS.Enabled, CAFile: r.TLS.CAFile, CertFile: r.TLS.CertFile, KeyFile: r.TLS.KeyFile,
			ServerName: r.TLS.ServerName, InsecureSkipVerify: r.TLS.InsecureSkipVerify,
		},
		KeyPrefix:    r.KeyPrefix,
		TTL:          r.TTL.D(),
		DialTimeout:  r.DialTimeout.D(),
		ReadTimeout:  r.ReadTimeout.D(),
		WriteTimeout: r.WriteTimeout.D(),
		PoolSize:     r.PoolSize,
		MaxRetries:   r.MaxRetries,
		Logger:       log,
	}
}

// CacheOptions returns the options of the per-partition caches.
func (c *Config) CacheOptions() state.CacheOptions {
	return state.CacheOptions{Capacity: c.Redis.CacheCapacity}
}

// Logger returns a logger to w as log: says.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

const redacted = "<redacted>"

var secretKey = regexp.MustCompile(`(?i)secret|password|token|authorization|api[-_]?key`)

// Redacted returns a copy of the config with the passwords, the admin token
// and the sinks' secrets (keys named like secret, password, token,
// authorization; webhook URLs' paths) replaced, for printing.
func (c *Config) Redacted() *Config {
	r := *c
	if r.Kafka.SASL.Password != "" {
		r.Kafka.SASL.Password = redacted
	}
	if r.Redis.Password != "" {
		r.Redis.Password = redacted
	}
	if r.AdminToken != "" {
		r.AdminToken = redacted
	}
	if r.Sinks != nil {
		r.Sinks, _ = redactAny(r.Sinks, "").(map[string]any)
	}
	return &r
}

func redactAny(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = redactAny(vv, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = redactAny(vv, key)
		}
		return out
	case string:
		if secretKey.MatchString(key) && x != "" {
			return redacted
		}
		if strings.EqualFold(key, "url") {
			if i := strings.Index(x, "://"); i >= 0 {
				if j := strings.IndexByte(x[i+3:], '/'); j >= 0 {
					return x[:i+3+j] + "/" + redacted
				}
			}
		}
	}
	return v
}
