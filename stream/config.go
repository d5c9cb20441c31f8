package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrConfig is matched (errors.Is) by every error about a contradictory or
// impossible Config: fix the setting the message names.
var ErrConfig = errors.New("stream: invalid configuration")

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// Topics names the topics of SPEC §5. The zero value is the default.
type Topics struct {
	// Events is the input: tracking events keyed any way. default: "events"
	Events string
	// Keyed is the contact-keyed topic the ingest stage writes and the
	// scoring stage reads. default: "events.keyed"
	Keyed string
	// Actions receives one JSON record per fired action (SPEC §3), keyed by
	// contact. default: "actions"
	Actions string
	// DLQ receives bad input with its reason in headers. default: "events.dlq"
	DLQ string
	// ActionsDLQ receives the actions the dispatch stage could not deliver,
	// with the reason in headers. default: "actions.dlq"
	ActionsDLQ string
}

// Config configures the live pipeline. The zero value (with Brokers) runs
// both stages with the defaults below.
type Config struct {
	// Brokers are the seed brokers. default: 127.0.0.1:9092
	// (corresponds to Kafka's bootstrap.servers)
	Brokers []string
	// Group is the scoring stage's consumer group; the ingest stage uses
	// Group + "-ingest". default: "leadpulse" (Kafka's group.id)
	Group string
	// Topics names the topics. default: see Topics.
	Topics Topics

	// InputKeyed skips the ingest hop: the scoring stage reads Topics.Events
	// directly, which every producer must then key by contact (userId, else
	// anonymousId) with Kafka's default partitioner (murmur2, as the Java
	// client and franz-go do; kcat's and librdkafka's default
	// consistent_random (CRC32) is NOT the same: use `-X
	// partitioner=murmur2_random`). A record found in another partition than
	// murmur2 of its contact says goes to the DLQ with reason "misrouted",
	// so that one contact is never scored in two places. default: false
	InputKeyed bool

	// NoTransactions turns off the ingest stage's Kafka transactions: the
	// keyed records are produced, then the input offsets committed, so a
	// crash in between produces some keyed records twice, and the scoring
	// stage can drop such a repeat only by its messageId. For brokers
	// without transactions (e.g. Azure Event Hubs). default: false: each
	// poll's keyed records and input offsets commit in one transaction
	NoTransactions bool
	// TransactionalID is the ingest stage's Kafka transactional.id. Each
	// process needs its own (two processes with one id fence each other),
	// and keeping it across a restart lets the restarted process abort at
	// once what its crashed predecessor left open; a new id leaves that
	// transaction holding back read_committed consumers of the keyed topic
	// until TransactionTimeout. default: Group + "-ingest-" + the host
	// name (stable for a StatefulSet pod or a VM; set one per process when
	// several run on one host)
	TransactionalID string
	// TransactionTimeout is how long the broker lets an ingest transaction
	// stay open before aborting it (Kafka's transaction.timeout.ms): the
	// longest a crashed process' open transaction blocks the keyed topic
	// when no process restarts with its TransactionalID. It must exceed the
	// time one poll takes to produce (milliseconds) and stay within the
	// broker's transaction.max.timeout.ms. default: 10s (Kafka Streams'
	// default under exactly-once)
	TransactionTimeout time.Duration

	// Partitions is the partition count of topics this process creates
	// because they are missing. Existing topics are used as they are.
	// default: 6 (Kafka's num.partitions for CreateTopics)
	Partitions int32
	// ReplicationFactor of created topics. default: -1, the broker's
	// default.replication.factor
	ReplicationFactor int16
	// TopicConfigs are the configs of created topics, e.g. retention.ms and
	// segment.bytes. default: none (the broker's defaults)
	TopicConfigs map[string]string

	// BatchRecords is the most records a partition applies before it
	// produces the batch's actions, commits the store and commits the
	// offset. It bounds a batch under a backlog only: a caught-up partition
	// applies what it has. Larger batches coalesce more writes of one
	// contact into one store write (leadpulse bench with Redis: 81k events/s
	// at 1,000, 134k at 4,000; p99 at 5,000 events/s unchanged).
	// default: 4000
	BatchRecords int
	// QueueRecords bounds the records buffered for one partition between
	// the poll loop and the partition's goroutine. When a queue holds this
	// many, fetching that partition pauses (PauseFetchPartitions) until it
	// is half empty; one poll's records may land on top. default: 4096
	QueueRecords int
	// PollRecords is the most records one poll takes from the client.
	// default: 10000
	PollRecords int
	// FetchMaxWait is how long a broker holds a fetch that has no new data
	// (corresponds to Kafka's fetch.max.wait.ms). It also bounds how long a
	// partition whose fetching resumes after backpressure waits, because a
	// client has one fetch in flight per broker: with 1s, caught-up
	// partitions held a drain back for a second at a time (measured by
	// `leadpulse bench`: 95k–165k events/s drained against 197k–212k with
	// 50ms). default: 100ms
	FetchMaxWait time.Duration
	// CommitInterval is how often the scoring stage commits its offsets:
	// the partitions' durable positions are coalesced into one
	// asynchronous commit at most this often, and committed synchronously
	// when a partition is revoked or the process stops. A crash re-reads
	// at most this much; repeats are dropped by messageId. default: 100ms
	CommitInterval time.Duration

	// TimerDelay is how long after its due time (wall clock) a timer of a
	// caught-up partition fires: the allowance for events stamped before the
	// due time that are still on their way to the partition (producer linger,
	// the ingest hop). default: 500ms
	TimerDelay time.Duration
	// Tick is how often an idle partition checks whether timers are due.
	// default: 200ms
	Tick time.Duration
	// TimerHorizon is how far ahead of a partition's clock the timers stored
	// in Redis are loaded into the partition's timer index (on assignment,
	// then again as the clock moves); memory stores load all at once.
	// default: 1m
	TimerHorizon time.Duration
	// DrainTimeout bounds the final flush and commit of each partition on
	// shutdown and revoke. default: 30s
	DrainTimeout time.Duration
	// HandoverTimeout bounds how long a user's events wait behind a linking
	// event for the anonymous id's partition to answer (SPEC §6, live). On
	// expiry they are applied without the merge, which happens when the
	// answer comes. Keep it above TransactionTimeout: an ingest process
	// killed mid-transaction holds every answer back until the broker
	// aborts its transaction. default: 30s
	HandoverTimeout time.Duration

	// MaxEventBytes is the largest record value taken as an event. A larger
	// record is dead-lettered with reason too_large before anything is
	// produced: its first DeadLetterHeadBytes are kept, the rest is cut, and
	// the original size is in the header error.original_size. The
	// producers' batch limit (franz-go ProducerBatchMaxBytes, Kafka's
	// max.request.size) and the max.message.bytes of the topics this
	// process creates are set MaxEventBytes + 128 KiB, room for the key and
	// headers; topics that already exist must allow as much (Kafka's broker
	// default, message.max.bytes, is 1,048,588 bytes). default: 1 MiB
	// (1,048,576)
	MaxEventBytes int
	// UnreachableAfter is how long the brokers may fail to answer (failed
	// connections or requests, no reply, fetch errors) before /readyz says
	// not ready with the reason and a log line says so. default: 5s
	UnreachableAfter time.Duration

	// Clock is the wall clock of live time (SPEC §2); tests inject theirs.
	// default: time.Now
	Clock func() time.Time
	// Logger receives the pipeline's logs (never one per event).
	// default: slog.Default()
	Logger *slog.Logger
	// KafkaOptions are extra franz-go options for every client the
	// pipeline makes (TLS, SASL, timeouts). default: none
	KafkaOptions []kgo.Opt

	// health is told by every client's hooks whether the brokers answer;
	// set by New and NewDispatch.
	health *health
}

// defaults are the values a zero field of Config takes: the one place they
// are written (config reads them through Defaults).
var defaults = Config{
	Brokers:            []string{"127.0.0.1:9092"},
	Group:              "leadpulse",
	Topics:             Topics{Events: "events", Keyed: "events.keyed", Actions: "actions", DLQ: "events.dlq", ActionsDLQ: "actions.dlq"},
	Partitions:         6,
	ReplicationFactor:  -1,
	BatchRecords:       4000,
	QueueRecords:       4096,
	PollRecords:        10000,
	FetchMaxWait:       100 * time.Millisecond,
	CommitInterval:     100 * time.Millisecond,
	TimerDelay:         500 * time.Millisecond,
	Tick:               200 * time.Millisecond,
	TimerHorizon:       time.Minute,
	DrainTimeout:       30 * time.Second,
	HandoverTimeout:    30 * time.Second,
	TransactionTimeout: 10 * time.Second,
	MaxEventBytes:      DefaultMaxEventBytes,
	UnreachableAfter:   5 * time.Second,
}

// Defaults returns the Config whose every field holds its default: what a
// zero field means. Clock, Logger and KafkaOptions stay nil.
func Defaults() Config {
	d := defaults
	d.Brokers = slices.Clone(defaults.Brokers)
	return d
}

// validate fills the defaults and rejects contradictions.
func (c Config) validate() (Config, error) {
	if len(c.Brokers) == 0 {
		c.Brokers = slices.Clone(defaults.Brokers)
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return c, configError("brokers: an empty address; list host:port of one or more brokers")
		}
	}
	if c.Group == "" {
		c.Group = defaults.Group
	}
	if c.Topics.Events == "" {
		c.Topics.Events = defaults.Topics.Events
	}
	if c.Topics.Keyed == "" {
		c.Topics.Keyed = defaults.Topics.Keyed
	}
	if c.Topics.Actions == "" {
		c.Topics.Actions = defaults.Topics.Actions
	}
	if c.Topics.DLQ == "" {
		c.Topics.DLQ = defaults.Topics.DLQ
	}
	if c.Topics.ActionsDLQ == "" {
		c.Topics.ActionsDLQ = defaults.Topics.ActionsDLQ
	}
	t := c.Topics
	names := map[string]string{}
	for _, n := range []struct{ key, topic string }{
		{"topics.events", t.Events}, {"topics.keyed", t.Keyed}, {"topics.actions", t.Actions}, {"topics.dlq", t.DLQ},
		{"topics.actions_dlq", t.ActionsDLQ},
	} {
		if n.key == "topics.keyed" && c.InputKeyed {
			continue // not used
		}
		if other, dup := names[n.topic]; dup {
			return c, configError("%s and %s are both %q: each stage needs its own topic", other, n.key, n.topic)
		}
		names[n.topic] = n.key
	}
	if c.TransactionalID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.TransactionalID = c.Group + "-ingest-" + host
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = defaults.TransactionTimeout
	}
	if c.TransactionTimeout < time.Second {
		return c, configError("transaction_timeout is %v: give at least 1s (the broker aborts an ingest transaction open longer)", c.TransactionTimeout)
	}
	if c.Partitions == 0 {
		c.Partitions = defaults.Partitions
	}
	if c.Partitions < 0 {
		return c, configError("partitions is %d: give the partition count of created topics (1 or more)", c.Partitions)
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = defaults.ReplicationFactor
	}
	if c.BatchRecords <= 0 {
		c.BatchRecords = defaults.BatchRecords
	}
	if c.QueueRecords <= 0 {
		c.QueueRecords = defaults.QueueRecords
	}
	if c.PollRecords <= 0 {
		c.PollRecords = defaults.PollRecords
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = defaults.FetchMaxWait
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = defaults.CommitInterval
	}
	if c.QueueRecords < c.BatchRecords {
		return c, configError("queue_records (%d) is below batch_records (%d): a partition could never fill a batch; raise queue_records or lower batch_records", c.QueueRecords, c.BatchRecords)
	}
	if c.TimerDelay == 0 {
		c.TimerDelay = defaults.TimerDelay
	}
	if c.TimerDelay < 0 {
		return c, configError("timer_delay is %v: it is a wait after the due time, 0 or more", c.TimerDelay)
	}
	if c.Tick <= 0 {
		c.Tick = defaults.Tick
	}
	if c.TimerHorizon <= 0 {
		c.TimerHorizon = defaults.TimerHorizon
	}
	if c.TimerHorizon < c.Tick {
		return c, configError("timer_horizon (%v) is shorter than tick (%v): timers would be loaded after they are due; raise timer_horizon", c.TimerHorizon, c.Tick)
	}
	if c.HandoverTimeout <= 0 {
		c.HandoverTimeout = defaults.HandoverTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = defaults.DrainTimeout
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = defaults.MaxEventBytes
	}
	if c.MaxEventBytes < 1024 || c.MaxEventBytes > maxMaxEventBytes {
		return c, configError("max_event_bytes is %d: give a size from 1024 to %d bytes (default %d)", c.MaxEventBytes, maxMaxEventBytes, DefaultMaxEventBytes)
	}
	if c.UnreachableAfter <= 0 {
		c.UnreachableAfter = defaults.UnreachableAfter
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// scoreTopic is the topic the scoring stage reads.
func (c *Config) scoreTopic() string {
	if c.InputKeyed {
		return c.Topics.Events
	}
	return c.Topics.Keyed
}

func (c *Config) ingestGroup() string { return c.Group + "-ingest" }

// DefaultMaxEventBytes is the default Config.MaxEventBytes: 1 MiB.
const DefaultMaxEventBytes = 1 << 20

// maxMaxEventBytes keeps MaxEventBytes and its headroom under franz-go's
// BrokerMaxWriteBytes (100 MiB).
const maxMaxEventBytes = 64 << 20

// recordHeadroom is the room above MaxEventBytes for a record's key,
// headers and batch framing: what the producers and created topics allow.
const recordHeadroom = 128 << 10

// MaxRecordBytes is the producer batch limit and the max.message.bytes of
// created topics: MaxEventBytes plus room for key, headers and framing.
func (c *Config) MaxRecordBytes() int { return c.MaxEventBytes + recordHeadroom }

// clientOpts are the options every client of the pipeline shares.
func (c *Config) clientOpts(role string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID("leadpulse-" + role),
		kgo.ProducerLinger(0), // latency first: batches form while a request is in flight
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.FetchMaxWait(c.FetchMaxWait),
		// A record up to MaxEventBytes (plus key and headers) must fit a
		// produce batch: franz-go's default (1,000,012) is below 1 MiB.
		kgo.ProducerBatchMaxBytes(int32(c.MaxRecordBytes())),
		kgo.WithLogger(kgoLogger{c.Logger.With("client", role)}),
	}
	if c.health != nil {
		opts = append(opts, kgo.WithHooks(c.health))
	}
	return append(opts, c.KafkaOptions...)
}
