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
	"github.com/leadpulse/leadpulse/internal/tlsconf"
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
	// UI configures what the web UI (/ui/) records as the pipeline runs.
	UI UI `yaml:"ui"`
	// Sinks is the `sinks:` block, sink name → sink, kept raw: the sinks
	// package parses it (SinksSource, sinks.Parse). Here it is only checked to be a
	// mapping. default: none (no dispatch stage: the actions stay on the
	// actions topic for other consumers)
	Sinks map[string]any `yaml:"sinks"`

	file      string            // the config file; "" when loaded from memory without a name
	origin    map[string]string // key path → "FILE:LINE" or "$LEADPULSE_…"
	sinksName string            // where the sinks block was read: the file, or $LEADPULSE_SINKS
	sinksSrc  []byte            // the YAML holding it: the file (top-level key `sinks`), or the variable's value (the block alone)
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

// TLS configures TLS to Kafka or Redis: the one TLS setting, shared with
// state.RedisOptions (its fields, checks and builder live in
// internal/tlsconf).
type TLS = tlsconf.Options

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
	// MaxEventBytes is the largest event (record value) taken; a larger one
	// is dead-lettered with reason too_large, its first 16 KiB kept. The
	// producers and the topics leadpulse creates take this + 128 KiB
	// (max.message.bytes); topics that exist must take as much.
	// default: 1048576 (1 MiB), from 1024 to 67108864
	MaxEventBytes int `yaml:"max_event_bytes"`
	// UnreachableAfter is how long the brokers may not answer before
	// /readyz says not ready with the reason and a log line says so.
	// default: 5s
	UnreachableAfter Duration `yaml:"unreachable_after"`
	// HandoverTimeout bounds how long a user's events wait behind a linking
	// event for the partition of its anonymous id to answer (SPEC §6, live
	// identity); then they are applied without the merge, which follows the
	// answer. default: 10s
	HandoverTimeout Duration `yaml:"handover_timeout"`
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
	// NewContactFilterBits is the size in bits of each partition's
	// new-contact filter, which spares a new visitor's load (a round trip
	// that finds nothing) where the filter is known complete
	// (docs/redis.md); -1 turns it off. It sets the size of filters created
	// from now on; an existing one keeps its own. default: 8388608 (1 MiB
	// per partition), from 1024 to 4294967296
	NewContactFilterBits int `yaml:"new_contact_filter_bits"`
	// FlushInterval is the longest a partition working through a backlog
	// keeps the contacts changed by consecutive batches before it writes
	// them to Redis, once each, and then commits their offsets; a
	// caught-up partition writes within 100ms. A crash re-reads at most this much
	// more (repeats are skipped, actions keep their ids); Redis shows a
	// contact up to this much behind its actions. default: 1s
	FlushInterval Duration `yaml:"flush_interval"`
}

// UI configures the web UI's in-memory history (docs/ui.md).
type UI struct {
	// History is what the process records for the UI beside the contact
	// state: "events" (every applied event and every action: the contact
	// page's last events, score chart awards and email search, the live
	// feed and recent firings), "actions" (actions only: the live feed and
	// recent firings; the per-event record, about 1–3 µs of CPU an event
	// on the partitions' goroutines, is not made) or "off" (nothing; the
	// page still shows the stored state). default: events
	History string `yaml:"history"`
}

// UI history values.
const (
	UIHistoryEvents  = "events"
	UIHistoryActions = "actions"
	UIHistoryOff     = "off"
)

// Log configures the logs.
type Log struct {
	// Level is debug, info, warn or error. default: info
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value) or json. default: text
	Format string `yaml:"format"`
}
