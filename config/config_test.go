package config_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/config"
	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// specExample is the deployment config of SPEC §4, word for word.
const specExample = `kafka:
  brokers: [127.0.0.1:9092]
  group: leadpulse
  topics: { events: events, actions: actions, dlq: events.dlq }
redis:
  addr: 127.0.0.1:6379          # or a list of cluster nodes
rules: rules.yaml
http: 127.0.0.1:8080           # /metrics, /healthz, /readyz, admin API
sinks:
  sales: { type: webhook, url: "https://hooks.example.com/T000/B000", format: slack }
  email: { type: kafka, topic: email-sends }
  log:   { type: stdout }
`

func parse(t *testing.T, yml string, env ...string) (*config.Config, error) {
	t.Helper()
	return config.Parse("/etc/leadpulse/leadpulse.yaml", []byte(yml), env)
}

func mustParse(t *testing.T, yml string, env ...string) *config.Config {
	t.Helper()
	c, err := parse(t, yml, env...)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
	}{
		{"empty file", ""},
		{"only comments", "# nothing set\n"},
		{"empty sections", "kafka: {}\nredis: {}\npipeline: {}\nlog: {}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yml)
			k := c.Kafka
			check := func(name string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			check("kafka.brokers", []string(k.Brokers), []string{"127.0.0.1:9092"})
			check("kafka.group", k.Group, "leadpulse")
			check("kafka.topics", k.Topics, config.Topics{Events: "events", Keyed: "events.keyed", Actions: "actions", DLQ: "events.dlq", ActionsDLQ: "actions.dlq"})
			check("kafka.partitions", k.Partitions, int32(6))
			check("kafka.session_timeout", k.SessionTimeout.D(), 45*time.Second)
			check("kafka.heartbeat_interval", k.HeartbeatInterval.D(), 3*time.Second)
			check("kafka.rebalance_timeout", k.RebalanceTimeout.D(), time.Minute)
			check("kafka.fetch_max_wait", k.FetchMaxWait.D(), 100*time.Millisecond)
			check("pipeline", c.Pipeline, config.Pipeline{BatchRecords: 4000, QueueRecords: 4096, PollRecords: 10000,
				TimerDelay: config.Duration(500 * time.Millisecond), Tick: config.Duration(200 * time.Millisecond),
				TimerHorizon: config.Duration(time.Minute), DrainTimeout: config.Duration(30 * time.Second),
				MaxEventBytes: 1 << 20, UnreachableAfter: config.Duration(5 * time.Second), HandoverTimeout: config.Duration(30 * time.Second)})
			check("redis.addr", []string(c.Redis.Addr), []string{"127.0.0.1:6379"})
			check("redis.key_prefix", c.Redis.KeyPrefix, "lp")
			check("redis.ttl", c.Redis.TTL.D(), state.DefaultTTL)
			check("redis.max_retries", c.Redis.MaxRetries, 3)
			check("redis.cache_capacity", c.Redis.CacheCapacity, state.DefaultCacheCapacity)
			check("redis.new_contact_filter_bits", c.Redis.NewContactFilterBits, state.DefaultFilterBits)
			check("redis.flush_interval", c.Redis.FlushInterval.D(), stream.DefaultFlushInterval)
			check("rules", c.Rules, "/etc/leadpulse/rules.yaml")
			check("http", c.HTTP, "127.0.0.1:8080")
			check("log", c.Log, config.Log{Level: "info", Format: "text"})
			check("ui.history", c.UI.History, config.UIHistoryEvents)
			check("sinks", len(c.Sinks), 0)
			sc, err := c.Stream(nil)
			if err != nil {
				t.Fatal(err)
			}
			check("stream replication factor", sc.ReplicationFactor, int16(-1))
		})
	}
}

func TestSpecExample(t *testing.T) {
	c := mustParse(t, specExample)
	if got := []string(c.Redis.Addr); !reflect.DeepEqual(got, []string{"127.0.0.1:6379"}) {
		t.Errorf("redis.addr %v", got)
	}
	if c.Kafka.Topics.DLQ != "events.dlq" || c.Kafka.Topics.Keyed != "events.keyed" {
		t.Errorf("topics %+v", c.Kafka.Topics)
	}
	if len(c.Sinks) != 3 {
		t.Errorf("sinks %v", c.Sinks)
	}
	if c.Where("redis.addr") != "/etc/leadpulse/leadpulse.yaml:6" {
		t.Errorf("Where(redis.addr) = %q", c.Where("redis.addr"))
	}
	// A list of cluster nodes.
	c = mustParse(t, "redis:\n  addr: [r1:6379, r2:6379, r3:6379]\n")
	if o := c.RedisOptions(nil); len(o.Addrs) != 3 {
		t.Errorf("cluster addrs %v", o.Addrs)
	}
}

func TestEnvOverrides(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yml   string
		env   []string
		check func(t *testing.T, c *config.Config)
	}{
		{"brokers comma-separated", specExample, []string{"LEADPULSE_KAFKA_BROKERS=k1:9092, k2:9092,,k3:9092"}, func(t *testing.T, c *config.Config) {
			if got := []string(c.Kafka.Brokers); !reflect.DeepEqual(got, []string{"k1:9092", "k2:9092", "k3:9092"}) {
				t.Errorf("brokers %v", got)
			}
			if c.Where("kafka.brokers") != "$LEADPULSE_KAFKA_BROKERS" {
				t.Errorf("Where = %q", c.Where("kafka.brokers"))
			}
		}},
		{"group, topics, redis addr list", specExample, []string{"LEADPULSE_KAFKA_GROUP=scoring-eu", "LEADPULSE_KAFKA_TOPICS_DLQ=bad", "LEADPULSE_REDIS_ADDR=r1:6379,r2:6379"}, func(t *testing.T, c *config.Config) {
			if c.Kafka.Group != "scoring-eu" || c.Kafka.Topics.DLQ != "bad" || len(c.Redis.Addr) != 2 {
				t.Errorf("got %q %q %v", c.Kafka.Group, c.Kafka.Topics.DLQ, c.Redis.Addr)
			}
		}},
		{"rules from env is relative to the working directory", specExample, []string{"LEADPULSE_RULES=conf/r.yaml"}, func(t *testing.T, c *config.Config) {
			if c.Rules != "conf/r.yaml" {
				t.Errorf("rules %q", c.Rules)
			}
		}},
		{"http and token", specExample, []string{"LEADPULSE_HTTP=0.0.0.0:9000", "LEADPULSE_ADMIN_TOKEN=s3cr3t#x y"}, func(t *testing.T, c *config.Config) {
			if c.HTTP != "0.0.0.0:9000" || c.AdminToken != "s3cr3t#x y" {
				t.Errorf("http %q token %q", c.HTTP, c.AdminToken)
			}
		}},
		{"durations, ints, bools", "", []string{"LEADPULSE_KAFKA_SESSION_TIMEOUT=10s", "LEADPULSE_KAFKA_HEARTBEAT_INTERVAL=1s", "LEADPULSE_PIPELINE_BATCH_RECORDS=200", "LEADPULSE_KAFKA_INPUT_KEYED=true", "LEADPULSE_REDIS_TLS_ENABLED=1", "LEADPULSE_REDIS_TTL=-1s"}, func(t *testing.T, c *config.Config) {
			if c.Kafka.SessionTimeout.D() != 10*time.Second || c.Pipeline.BatchRecords != 200 || !c.Kafka.InputKeyed || !c.Redis.TLS.Enabled || c.Redis.TTL.D() != -time.Second {
				t.Errorf("got %+v %+v", c.Kafka, c.Pipeline)
			}
		}},
		{"sasl from env", "", []string{"LEADPULSE_KAFKA_SASL_MECHANISM=scram-sha-512", "LEADPULSE_KAFKA_SASL_USERNAME=u", "LEADPULSE_KAFKA_SASL_PASSWORD=p"}, func(t *testing.T, c *config.Config) {
			if c.Kafka.SASL != (config.SASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}) {
				t.Errorf("sasl %+v", c.Kafka.SASL)
			}
		}},
		{"topic configs", "", []string{"LEADPULSE_KAFKA_TOPIC_CONFIGS=retention.ms=600000, segment.bytes=1048576"}, func(t *testing.T, c *config.Config) {
			if !reflect.DeepEqual(c.Kafka.TopicConfigs, map[string]string{"retention.ms": "600000", "segment.bytes": "1048576"}) {
				t.Errorf("topic configs %v", c.Kafka.TopicConfigs)
			}
		}},
		{"sinks from env win over the file", specExample, []string{"LEADPULSE_SINKS={log: {type: stdout, default: true}}"}, func(t *testing.T, c *config.Config) {
			if len(c.Sinks) != 1 || c.Sinks["log"] == nil {
				t.Errorf("sinks %v", c.Sinks)
			}
		}},
		{"other variables are left alone", "", []string{"HOME=/root", "LEADPULSEX=1", "PATH=/bin"}, func(t *testing.T, c *config.Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParse(t, tc.yml, tc.env...))
		})
	}
}

// TestProblems: contradictions name both settings and where they were set;
// every problem of a config is reported at once.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		yml  string
		env  []string
		want []string // substrings, each of one problem, in order
	}{
		{"unknown top-level key", "kafka:\n  brokers: [a:1]\nredis_addr: x\n", nil,
			[]string{`leadpulse.yaml:3: unknown key "redis_addr" at the top level; the keys are kafka, pipeline, redis, rules, http, admin_token, log, ui, sinks`}},
		{"unknown nested key", "kafka:\n  group: g\n  brokerz: [a:1]\n", nil,
			[]string{`leadpulse.yaml:3: unknown key "brokerz" in kafka:; did you mean "brokers"? the keys there are brokers, group, topics`}},
		{"unknown key in tls", "redis:\n  tls:\n    enabled: true\n    ca: x\n", nil,
			[]string{`leadpulse.yaml:4: unknown key "ca" in kafka.tls or redis.tls:`}},
		{"bad duration", "kafka:\n  session_timeout: 10\n", nil,
			[]string{`leadpulse.yaml:2: "10" is not a duration`}},
		{"sinks is not a mapping", "sinks: [log]\n", nil, []string{`leadpulse.yaml:1:`}},
		{"not a mapping", "- a\n- b\n", nil, []string{`leadpulse.yaml:1: the deployment config is a YAML mapping`}},
		{"queue below batch", "pipeline:\n  batch_records: 500\n  queue_records: 100\n", nil,
			[]string{`leadpulse.yaml:3: pipeline.queue_records: pipeline.queue_records (100) is below pipeline.batch_records (500)`}},
		{"heartbeat not below session", "kafka:\n  session_timeout: 2s\n  heartbeat_interval: 3s\n", nil,
			[]string{`leadpulse.yaml:3: kafka.heartbeat_interval: kafka.heartbeat_interval (3s) is not below kafka.session_timeout (2s)`}},
		{"drain not below rebalance", "pipeline:\n  drain_timeout: 90s\n", nil,
			[]string{`pipeline.drain_timeout: pipeline.drain_timeout (1m30s) is not below kafka.rebalance_timeout (1m0s)`}},
		{"sasl without credentials", "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-256\n", nil,
			[]string{`leadpulse.yaml:3: kafka.sasl.mechanism: kafka.sasl.mechanism is SCRAM-SHA-256 but kafka.sasl.username or kafka.sasl.password is empty`}},
		{"credentials without mechanism", "", []string{"LEADPULSE_KAFKA_SASL_USERNAME=u", "LEADPULSE_KAFKA_SASL_PASSWORD=p"},
			[]string{`$LEADPULSE_KAFKA_SASL_USERNAME: kafka.sasl.username: kafka.sasl.username/password are set but kafka.sasl.mechanism is empty`}},
		{"unknown mechanism", "kafka:\n  sasl: {mechanism: GSSAPI, username: u, password: p}\n", nil,
			[]string{`kafka.sasl.mechanism: "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`}},
		{"tls file without tls", "kafka:\n  tls:\n    ca_file: /etc/ssl/ca.pem\n", nil,
			[]string{`leadpulse.yaml:3: kafka.tls.ca_file: kafka.tls.ca_file is set but kafka.tls.enabled is false`, `no such file`}},
		{"cert without key", "redis:\n  tls: {enabled: true, cert_file: c.pem}\n", nil,
			[]string{`redis.tls.cert_file: redis.tls.cert_file "/etc/leadpulse/c.pem" and redis.tls.key_file "": set both`, `no such file`}},
		{"insecure with a CA", "redis:\n  tls: {enabled: true, insecure_skip_verify: true, server_name: r}\n", nil,
			[]string{`redis.tls.insecure_skip_verify contradicts redis.tls.ca_file/redis.tls.server_name`}},
		{"http beyond loopback without a token", "http: 0.0.0.0:8080\n", nil,
			[]string{`leadpulse.yaml:1: http: http 0.0.0.0:8080 listens beyond loopback but admin_token is empty`}},
		{"two stages on one topic", "kafka:\n  topics: {events: in, actions: in}\n", nil,
			[]string{`kafka.topics.actions: kafka.topics.events and kafka.topics.actions are both "in"`}},
		{"db with a cluster", "redis:\n  addr: [a:1, b:2]\n  db: 3\n", nil,
			[]string{`leadpulse.yaml:3: redis.db: redis.db is 3 but redis.addr lists 2 nodes`}},
		{"bad addresses", "kafka:\n  brokers: kafka\nredis:\n  addr: redis\n", nil,
			[]string{`kafka.brokers: "kafka" is not host:port`, `redis.addr: "redis" is not host:port`}},
		{"negative numbers", "pipeline:\n  batch_records: -1\nkafka:\n  partitions: -2\n", nil,
			[]string{`kafka.partitions: -2`, `pipeline.batch_records: -1`}},
		{"log", "log: {level: loud, format: xml}\n", nil, []string{`log.level: "loud"`, `log.format: "xml"`}},
		{"ui history", "ui: {history: some}\n", nil, []string{`leadpulse.yaml:1: ui.history: "some": want events`}},
		{"unknown variable", "", []string{"LEADPULSE_KAFKA_BROKER=k:1"},
			[]string{`$LEADPULSE_KAFKA_BROKER: unknown variable; did you mean LEADPULSE_KAFKA_BROKERS?`}},
		{"bad variable values", "", []string{"LEADPULSE_PIPELINE_BATCH_RECORDS=lots", "LEADPULSE_KAFKA_SESSION_TIMEOUT=soon", "LEADPULSE_KAFKA_INPUT_KEYED=maybe"},
			[]string{`$LEADPULSE_KAFKA_INPUT_KEYED: kafka.input_keyed: "maybe" is not true or false`, `$LEADPULSE_KAFKA_SESSION_TIMEOUT: kafka.session_timeout: "soon" is not a duration`, `$LEADPULSE_PIPELINE_BATCH_RECORDS: pipeline.batch_records: "lots" is not a whole number`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.yml, tc.env...)
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want config.ErrInvalid", err)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %T is not *config.Error", err)
			}
			if len(ce.Problems) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", len(ce.Problems), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i < len(ce.Problems) && !strings.Contains(ce.Problems[i].String(), w) {
					t.Errorf("problem %d:\n got %s\nwant …%s…", i, ce.Problems[i], w)
				}
			}
		})
	}
}

func TestPathsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "rules.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "lp.yaml")
	if err := os.WriteFile(path, []byte("rules: rules.yaml\nkafka:\n  tls: {enabled: true, ca_file: ca.pem}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules != filepath.Join(dir, "rules.yaml") || c.Kafka.TLS.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("rules %q ca %q", c.Rules, c.Kafka.TLS.CAFile)
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yaml"), nil); err == nil || errors.Is(err, config.ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}
}

// TestVars: every key has its own variable, derived from its YAML path, and
// the README documents each one.
func TestVars(t *testing.T) {
	vars := config.Vars()
	seen := map[string]string{}
	for _, v := range vars {
		if want := "LEADPULSE_" + strings.ToUpper(strings.ReplaceAll(v.Key, ".", "_")); v.Env != want {
			t.Errorf("%s: env %s, want %s", v.Key, v.Env, want)
		}
		if other, dup := seen[v.Env]; dup {
			t.Errorf("%s and %s share %s", other, v.Key, v.Env)
		}
		seen[v.Env] = v.Key
	}
	for _, must := range []string{"LEADPULSE_KAFKA_BROKERS", "LEADPULSE_KAFKA_GROUP", "LEADPULSE_REDIS_ADDR", "LEADPULSE_RULES", "LEADPULSE_HTTP", "LEADPULSE_ADMIN_TOKEN", "LEADPULSE_SINKS", "LEADPULSE_KAFKA_TOPICS_EVENTS", "LEADPULSE_KAFKA_SASL_PASSWORD", "LEADPULSE_REDIS_TLS_CA_FILE"} {
		if seen[must] == "" {
			t.Errorf("no variable %s", must)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if !strings.Contains(string(readme), v.Env) {
			t.Errorf("README.md does not document %s (%s)", v.Env, v.Key)
		}
	}
}

// TestSinksSource: the sinks: block reaches sinks.Parse with its name, so
// that its problems carry FILE:LINE, from the file or from LEADPULSE_SINKS.
func TestSinksSource(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        []string
		want       string // "" valid
	}{
		{"file", "rules: r.yaml\nsinks:\n  log: {type: stdout}\n  hook: {type: webhook, url: \"https://h.example/x\"}\n", nil, ""},
		{"unknown key in the file", "kafka: {group: g}\nsinks:\n  log:\n    type: stdout\n    colour: red\n", nil, "leadpulse.yaml:5: field colour not found"},
		{"invalid setting in the file", "kafka: {group: g}\nsinks:\n  log: {type: stdout}\n  hook:\n    type: webhook\n", nil, "leadpulse.yaml:4: sinks.hook: type webhook needs url"},
		{"env", "", []string{"LEADPULSE_SINKS={log: {type: stdout}}"}, ""},
		{"unknown key in env", "", []string{"LEADPULSE_SINKS=log:\n  type: stdout\n  colour: red\n"}, "$LEADPULSE_SINKS:3: field colour not found"},
		{"invalid setting in env", "", []string{"LEADPULSE_SINKS=log: {type: stdout}\nhook: {type: pigeon}\n"}, "$LEADPULSE_SINKS:2: sinks.hook: unknown type \"pigeon\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.file, tc.env...)
			name, src := c.SinksSource()
			got, err := sinks.Parse(name, src)
			if tc.want == "" {
				if err != nil || got["log"].Type != sinks.TypeStdout {
					t.Fatalf("Parse = %v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if name, src := mustParse(t, "").SinksSource(); src != nil {
		t.Errorf("no sinks: SinksSource = %q, %q", name, src)
	}
}

func TestRedacted(t *testing.T) {
	c := mustParse(t, specExample+"  hook: {type: webhook, url: \"https://hooks.slack.com/services/T0/B0/XYZ\", secret: abc, headers: {Authorization: Bearer x}}\n",
		"LEADPULSE_REDIS_PASSWORD=pw", "LEADPULSE_ADMIN_TOKEN=tok", "LEADPULSE_KAFKA_SASL_MECHANISM=PLAIN", "LEADPULSE_KAFKA_SASL_USERNAME=u", "LEADPULSE_KAFKA_SASL_PASSWORD=kpw")
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"pw", "tok", "kpw", "abc", "XYZ", "Bearer x"} {
		if strings.Contains(out, ": "+secret+"\n") || strings.Contains(out, secret+"\"") || strings.Contains(out, "/XYZ") {
			t.Errorf("redacted config shows %q:\n%s", secret, out)
		}
	}
	if c.Redis.Password != "pw" {
		t.Error("Redacted changed the config")
	}
	if !strings.Contains(out, "session_timeout: 45s") {
		t.Errorf("durations are not written as durations:\n%s", out)
	}
}

// TestKafkaSecurity connects with the config's TLS and SASL options to an
// embedded broker that requires them.
func TestKafkaSecurity(t *testing.T) {
	dir := t.TempDir()
	srvTLS := makeCerts(t, dir)
	for _, tc := range []struct {
		name string
		tls  bool
		mech string
	}{
		{"SCRAM-SHA-256", false, "SCRAM-SHA-256"},
		{"SCRAM-SHA-512 over TLS", true, "SCRAM-SHA-512"},
		{"PLAIN over TLS", true, "PLAIN"},
		{"TLS only", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.NumBrokers(1)}
			if tc.mech != "" {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser(tc.mech, "lp", "secret"))
			}
			if tc.tls {
				opts = append(opts, kfake.TLS(srvTLS))
			}
			cluster, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			env := []string{"LEADPULSE_KAFKA_BROKERS=" + cluster.ListenAddrs()[0]}
			if tc.mech != "" {
				env = append(env, "LEADPULSE_KAFKA_SASL_MECHANISM="+tc.mech, "LEADPULSE_KAFKA_SASL_USERNAME=lp", "LEADPULSE_KAFKA_SASL_PASSWORD=secret")
			}
			if tc.tls {
				env = append(env, "LEADPULSE_KAFKA_TLS_ENABLED=true", "LEADPULSE_KAFKA_TLS_CA_FILE="+filepath.Join(dir, "ca.pem"))
			}
			c := mustParse(t, "", env...)
			kopts, err := c.KafkaOptions()
			if err != nil {
				t.Fatal(err)
			}
			ping := func(extra ...kgo.Opt) error {
				cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(c.Kafka.Brokers...), kgo.RequestRetries(0)}, kopts...), extra...)...)
				if err != nil {
					return err
				}
				defer cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return cl.Ping(ctx)
			}
			if err := ping(); err != nil {
				t.Fatalf("ping with the config's options: %v", err)
			}
			if tc.mech != "" {
				bad := mustParse(t, "", append(env, "LEADPULSE_KAFKA_SASL_PASSWORD=wrong")...)
				kopts, _ = bad.KafkaOptions()
				if err := ping(); err == nil {
					t.Error("a wrong password was accepted")
				}
			}
		})
	}
}

// makeCerts writes a CA (ca.pem) and returns a server TLS config for
// 127.0.0.1 signed by it.
func makeCerts(t *testing.T, dir string) *tls.Config {
	t.Helper()
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
