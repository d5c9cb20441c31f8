package config

import (
	"net"
	"os"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// DefaultHTTP is the default of http. The defaults of the kafka, pipeline
// and redis keys are those of stream.Defaults and state.DefaultRedisOptions,
// which own them.
const DefaultHTTP = "127.0.0.1:8080"

// validate fills the defaults and records every contradiction or bad value.
func (c *Config) validate(ps *problems) {
	k := &c.Kafka
	sd, rd := stream.Defaults(), state.DefaultRedisOptions()
	if len(k.Brokers) == 0 {
		k.Brokers = StringList(sd.Brokers)
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			ps.add(c, []string{"kafka.brokers"}, "%q is not host:port (e.g. kafka-1.internal:9092)", b)
		}
	}
	if k.Group == "" {
		k.Group = sd.Group
	}
	t := &k.Topics
	for _, d := range []struct {
		p   *string
		def string
	}{{&t.Events, sd.Topics.Events}, {&t.Keyed, sd.Topics.Keyed}, {&t.Actions, sd.Topics.Actions}, {&t.DLQ, sd.Topics.DLQ}, {&t.ActionsDLQ, sd.Topics.ActionsDLQ}} {
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
		k.Partitions = sd.Partitions
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
	c.duration(ps, "kafka.fetch_max_wait", &k.FetchMaxWait, sd.FetchMaxWait)
	c.duration(ps, "kafka.transaction_timeout", &k.TransactionTimeout, sd.TransactionTimeout)
	if k.TransactionTimeout.D() < time.Second {
		ps.add(c, []string{"kafka.transaction_timeout"}, "%v: want 1s or more (the broker aborts an ingest transaction open longer)", k.TransactionTimeout.D())
	}
	if k.HeartbeatInterval >= k.SessionTimeout {
		ps.add(c, []string{"kafka.heartbeat_interval", "kafka.session_timeout"}, "kafka.heartbeat_interval (%v) is not below kafka.session_timeout (%v): members would be evicted between heartbeats; keep the interval at most a third of the timeout", k.HeartbeatInterval, k.SessionTimeout)
	}

	p := &c.Pipeline
	c.positive(ps, "pipeline.batch_records", &p.BatchRecords, sd.BatchRecords)
	c.positive(ps, "pipeline.queue_records", &p.QueueRecords, sd.QueueRecords)
	c.positive(ps, "pipeline.poll_records", &p.PollRecords, sd.PollRecords)
	if p.QueueRecords < p.BatchRecords {
		ps.add(c, []string{"pipeline.queue_records", "pipeline.batch_records"}, "pipeline.queue_records (%d) is below pipeline.batch_records (%d): a partition could never fill a batch; raise the first or lower the second", p.QueueRecords, p.BatchRecords)
	}
	c.duration(ps, "pipeline.timer_delay", &p.TimerDelay, sd.TimerDelay)
	c.duration(ps, "pipeline.tick", &p.Tick, sd.Tick)
	c.duration(ps, "pipeline.timer_horizon", &p.TimerHorizon, sd.TimerHorizon)
	c.duration(ps, "pipeline.drain_timeout", &p.DrainTimeout, sd.DrainTimeout)
	c.positive(ps, "pipeline.max_event_bytes", &p.MaxEventBytes, sd.MaxEventBytes)
	if p.MaxEventBytes > 0 && (p.MaxEventBytes < 1024 || p.MaxEventBytes > 64<<20) {
		ps.add(c, []string{"pipeline.max_event_bytes"}, "%d: want a size from 1024 to %d bytes (default %d)", p.MaxEventBytes, 64<<20, sd.MaxEventBytes)
	}
	c.duration(ps, "pipeline.unreachable_after", &p.UnreachableAfter, sd.UnreachableAfter)
	c.duration(ps, "pipeline.handover_timeout", &p.HandoverTimeout, sd.HandoverTimeout)
	if p.TimerHorizon < p.Tick {
		ps.add(c, []string{"pipeline.timer_horizon", "pipeline.tick"}, "pipeline.timer_horizon (%v) is shorter than pipeline.tick (%v): timers would be loaded after they are due", p.TimerHorizon, p.Tick)
	}
	if p.DrainTimeout >= k.RebalanceTimeout {
		ps.add(c, []string{"pipeline.drain_timeout", "kafka.rebalance_timeout"}, "pipeline.drain_timeout (%v) is not below kafka.rebalance_timeout (%v): a partition still draining would be given to another member; lower the first or raise the second", p.DrainTimeout, k.RebalanceTimeout)
	}

	r := &c.Redis
	if len(r.Addr) == 0 {
		r.Addr = StringList(rd.Addrs)
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
		r.KeyPrefix = rd.KeyPrefix
	}
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		ps.add(c, []string{"redis.key_prefix"}, "%q must not contain '{' or '}' (Redis Cluster hash tags)", r.KeyPrefix)
	}
	switch {
	case r.TTL == 0:
		r.TTL = Duration(rd.TTL)
	case r.TTL > 0 && r.TTL.D() < time.Millisecond:
		ps.add(c, []string{"redis.ttl"}, "%v: want at least 1ms, or a negative duration to keep contacts forever", r.TTL)
	}
	c.duration(ps, "redis.dial_timeout", &r.DialTimeout, rd.DialTimeout)
	c.duration(ps, "redis.read_timeout", &r.ReadTimeout, rd.ReadTimeout)
	c.duration(ps, "redis.write_timeout", &r.WriteTimeout, rd.WriteTimeout)
	if r.PoolSize < 0 {
		ps.add(c, []string{"redis.pool_size"}, "%d: want 1 or more, or 0 for the default", r.PoolSize)
	}
	switch {
	case r.MaxRetries == 0:
		r.MaxRetries = rd.MaxRetries
	case r.MaxRetries < -1:
		ps.add(c, []string{"redis.max_retries"}, "%d: want -1 (no retries) or more", r.MaxRetries)
	}
	c.positive(ps, "redis.cache_capacity", &r.CacheCapacity, state.DefaultCacheCapacity)
	switch fb := r.NewContactFilterBits; {
	case fb == 0:
		r.NewContactFilterBits = state.DefaultFilterBits
	case fb == -1:
	case fb < 1024 || int64(fb) > 1<<32:
		ps.add(c, []string{"redis.new_contact_filter_bits"}, "%d: want -1 (off) or a size from 1024 to %d bits (default %d)", fb, int64(1<<32), state.DefaultFilterBits)
	}
	c.duration(ps, "redis.flush_interval", &r.FlushInterval, stream.DefaultFlushInterval)
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
	c.UI.History = strings.ToLower(c.UI.History)
	switch c.UI.History {
	case "":
		c.UI.History = UIHistoryEvents
	case UIHistoryEvents, UIHistoryActions, UIHistoryOff:
	default:
		ps.add(c, []string{"ui.history"}, "%q: want events (record every applied event and action for the UI), actions (actions only) or off", c.UI.History)
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
	for _, p := range t.Check(at) {
		ps.add(c, p.Keys, "%s", p.Msg)
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
