package state

import (
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/internal/tlsconf"
)

// DefaultTTL is how long an idle contact is kept: 90 days after its last
// write. It must exceed the longest `within` and `inactive` of the rules, or
// the contact expires with its timer before the timer fires.
const DefaultTTL = 90 * 24 * time.Hour

// RedisOptions configures the Redis store. The zero value connects to a
// standalone Redis at 127.0.0.1:6379, without auth or TLS, and keeps idle
// contacts for DefaultTTL.
type RedisOptions struct {
	// Addrs are the Redis nodes, host:port. One address is a standalone
	// server (or a proxy in front of one); two or more are seed nodes of a
	// Redis Cluster.
	// default: ["127.0.0.1:6379"]
	Addrs []string

	// Cluster uses the Cluster protocol with a single seed address (a
	// managed cluster's configuration endpoint).
	// default: false (cluster only with two or more addrs)
	Cluster bool

	// Username is the ACL user, as in `AUTH username password` (Redis 6+).
	// default: "" (the "default" user)
	Username string

	// Password authenticates the user; corresponds to Redis' requirepass for
	// the default user.
	// default: "" (no AUTH)
	Password string

	// DB is the database number of a standalone server (SELECT). Redis
	// Cluster only has database 0.
	// default: 0
	DB int

	// TLS secures the connections.
	// default: plain TCP
	TLS TLSOptions

	// KeyPrefix starts every key the store writes, so that several
	// deployments (or other applications) can share one Redis. It must not
	// contain '{' or '}', which Redis Cluster reads as a hash tag.
	// default: "lp"
	KeyPrefix string

	// TTL is the retention of an idle contact: its state expires TTL after
	// its last write. A negative TTL keeps contacts forever.
	// default: DefaultTTL (90 days)
	TTL time.Duration

	// DialTimeout bounds opening a connection.
	// default: 5s (go-redis' default)
	DialTimeout time.Duration

	// ReadTimeout bounds waiting for a reply; WriteTimeout bounds sending a
	// command. A commit of a large batch is one reply per contact, so keep
	// them above a large batch's round trip.
	// default: 3s each
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	// PoolSize is the most connections per Redis node. Each partition's
	// Commit and Prefetch hold one connection per node while they run.
	// default: 10 per GOMAXPROCS (go-redis' default)
	PoolSize int

	// MaxRetries is how often go-redis retries a command or pipeline that
	// failed on the network (redialling once per retry), with backoff from
	// 8ms to 512ms, before the store reports ErrUnavailable. Retries are
	// safe: every write is idempotent. -1 disables retries.
	// default: 3
	MaxRetries int

	// Logger receives the store's warnings (rejected stale writes, a script
	// reloaded after a Redis restart); never a line per contact.
	// default: slog.Default()
	Logger *slog.Logger
}

// TLSOptions configures TLS to Redis (the same setting as Kafka's TLS in
// config: one type, one check, one builder).
type TLSOptions = tlsconf.Options

// redisDefaults are the values a zero field of RedisOptions takes: the one
// place they are written (config reads them through DefaultRedisOptions).
// DialTimeout and MaxRetries are go-redis' own defaults, written out so that
// config can show them.
var redisDefaults = RedisOptions{
	Addrs:        []string{"127.0.0.1:6379"},
	KeyPrefix:    "lp",
	TTL:          DefaultTTL,
	DialTimeout:  5 * time.Second,
	ReadTimeout:  3 * time.Second,
	WriteTimeout: 3 * time.Second,
	MaxRetries:   3,
}

// DefaultRedisOptions returns the RedisOptions whose every field holds its
// default: what a zero field means. Logger stays nil.
func DefaultRedisOptions() RedisOptions {
	d := redisDefaults
	d.Addrs = slices.Clone(redisDefaults.Addrs)
	return d
}

// validate fills the defaults and rejects contradictions, naming both
// settings.
func (o RedisOptions) validate() (RedisOptions, error) {
	if len(o.Addrs) == 0 {
		o.Addrs = slices.Clone(redisDefaults.Addrs)
	}
	for i, a := range o.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return o, configError("redis addrs[%d] %q: want host:port: %w", i, a, err)
		}
	}
	cluster := o.Cluster || len(o.Addrs) > 1
	if cluster && o.DB != 0 {
		return o, configError("redis db is %d but addrs lists %d nodes (or cluster is set): Redis Cluster only has database 0", o.DB, len(o.Addrs))
	}
	if o.DB < 0 {
		return o, configError("redis db %d: want 0 or more", o.DB)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = redisDefaults.KeyPrefix
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return o, configError("redis key_prefix %q: must not contain '{' or '}' (Redis Cluster hash tags)", o.KeyPrefix)
	}
	if o.TTL == 0 {
		o.TTL = redisDefaults.TTL
	} else if o.TTL > 0 && o.TTL < time.Millisecond {
		return o, configError("redis ttl %v: want at least 1ms, or negative for no expiry", o.TTL)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial_timeout", o.DialTimeout}, {"read_timeout", o.ReadTimeout}, {"write_timeout", o.WriteTimeout}} {
		if d.v < 0 {
			return o, configError("redis %s %v: want a positive duration, or 0 for the default", d.name, d.v)
		}
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = redisDefaults.DialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = redisDefaults.ReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = redisDefaults.WriteTimeout
	}
	if o.PoolSize < 0 {
		return o, configError("redis pool_size %d: want 1 or more, or 0 for the default", o.PoolSize)
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = redisDefaults.MaxRetries
	}
	if o.MaxRetries < -1 {
		return o, configError("redis max_retries %d: want -1 (no retries), 0 (default 3) or more", o.MaxRetries)
	}
	if ps := o.TLS.Check("tls"); len(ps) > 0 {
		return o, configError("redis %s", ps[0].Msg)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// ACLRules are the Redis ACL rules the store needs, besides a password and
// the key pattern (~PREFIX:*): the commands it sends, and those its scripts
// call. INFO is optional (Ping checks the server version with it); a Cluster
// client also needs +cluster|slots +cluster|shards; on Redis 7.2+,
// +client|setinfo spares a refused command per connection (go-redis ignores
// the refusal).
const ACLRules = "-@all +ping +hello +auth +client|setname +info " +
	"+hmget +hgetall +hget +hset +del +pttl +pexpire +persist " +
	"+exists +get +setbit +scan " +
	"+zadd +zrem +zscore +zrangebyscore +sadd +smembers +evalsha +eval +script|load"
