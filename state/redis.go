package state

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/leadpulse/leadpulse/internal/tlsconf"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
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
	"+zadd +zrem +zscore +zrangebyscore +sadd +smembers +evalsha +eval +script|load"

// Redis is the production store's connection to Redis (standalone or
// Cluster) and its batch operations: a per-partition Cache (NewCache) is the
// state.Store the engine uses, and it reads and writes through Redis.
//
// Redis also serves the admin side: Inspect and Erase one contact, and
// DueTimers for the new owner of a partition. It is safe for concurrent use.
//
// # Keys
//
// With the default prefix "lp":
//
//	lp:{<contact>}:c     hash: s = msgpack blob (Encode), p = partition, o = offset
//	                     of the last accepted write, v = writes so far; TTL = retention
//	lp:timers:<p>        sorted set: contact -> earliest pending timer (Unix ms), partition p
//	lp:timer-partitions  set: the partitions that have a timers sorted set (for Erase)
//
// The braces hash-tag the contact, so that in Redis Cluster everything about
// one contact lives in one slot and the compare-and-set is one script.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	ttlMS  int64  // retention in ms; 0 keeps contacts forever
	addr   string // the configured addresses, for error messages
	first  string // the first address, probed by Ping's diagnosis
	tls    *tls.Config
	log    *slog.Logger

	// Counters; written by any caller, read by Stats.
	commits, written, rejected, loaded, erased, failed atomic.Uint64
}

// RedisStats are the store's counters since NewRedis, for metrics.
type RedisStats struct {
	Commits  uint64 // write round trips (Commit calls with dirty contacts)
	Written  uint64 // contact writes accepted
	Rejected uint64 // contact writes rejected as stale by the compare-and-set
	Loaded   uint64 // contacts read from Redis (cache misses, DueTimers)
	Erased   uint64 // contacts erased
	Failed   uint64 // calls that failed with an *Error
}

// NewRedis returns a store for the Redis that opts describe. It does no I/O,
// so a process can start while Redis is down; call Ping to check the
// connection, the credentials and the server before reporting ready.
func NewRedis(opts RedisOptions) (*Redis, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	tc, err := o.TLS.Config("tls")
	if err != nil {
		return nil, configError("redis %w", err)
	}
	uo := &redis.UniversalOptions{
		Addrs:         o.Addrs,
		IsClusterMode: o.Cluster,
		ClientName:    "leadpulse",
		Username:      o.Username,
		Password:      o.Password,
		DB:            o.DB,
		TLSConfig:     tc,
		DialTimeout:   o.DialTimeout,
		ReadTimeout:   o.ReadTimeout,
		WriteTimeout:  o.WriteTimeout,
		PoolSize:      o.PoolSize,
		MaxRetries:    o.MaxRetries,
		// One dial per attempt: MaxRetries already retries with backoff, and
		// go-redis' own 5 dials per attempt would multiply the two (up to 20
		// dials, seconds, before a caller hears of an outage or a bad cert).
		DialerRetries: 1,
		// Maintenance notifications are a Redis Enterprise/Cloud feature;
		// probing for them on every connection of an OSS server is noise.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// Honour the caller's context deadline on every call: a partition
		// goroutine bounds its commit with one.
		ContextTimeoutEnabled: true,
	}
	r := &Redis{
		c:      redis.NewUniversalClient(uo),
		prefix: o.KeyPrefix,
		addr:   strings.Join(o.Addrs, ","),
		first:  o.Addrs[0],
		tls:    tc,
		log:    o.Logger,
	}
	if o.TTL > 0 {
		r.ttlMS = o.TTL.Milliseconds()
	}
	return r, nil
}

// Close closes the connections. Calls after Close fail.
func (r *Redis) Close() error { return r.c.Close() }

// Client returns the go-redis client of the store, for the other users of
// the same Redis in a process (the sinks' dedupe and redis-stream sinks).
// It belongs to the store: Close closes it.
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Stats returns the counters.
func (r *Redis) Stats() RedisStats {
	return RedisStats{
		Commits:  r.commits.Load(),
		Written:  r.written.Load(),
		Rejected: r.rejected.Load(),
		Loaded:   r.loaded.Load(),
		Erased:   r.erased.Load(),
		Failed:   r.failed.Load(),
	}
}

func (r *Redis) err(op string, err error) error {
	if err == nil {
		return nil
	}
	err = classify(op, r.addr, err)
	if !errors.Is(err, context.Canceled) {
		r.failed.Add(1)
	}
	return err
}

func (r *Redis) contactKey(id string) string { return r.prefix + ":{" + id + "}:c" }

func (r *Redis) timersKey(p int32) string {
	return r.prefix + ":timers:" + strconv.FormatInt(int64(p), 10)
}

func (r *Redis) partitionsKey() string { return r.prefix + ":timer-partitions" }

// Ping checks that every node answers with these credentials, loads the
// scripts, and checks the server version (6.2 or later, for ZADD LT). Use it
// for readiness: a failure is ErrUnavailable or ErrConfig.
func (r *Redis) Ping(ctx context.Context) error {
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		err = cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
	} else {
		err = r.c.Ping(ctx).Err()
	}
	if err != nil {
		return r.err("ping", r.diagnose(ctx, err))
	}
	for _, s := range []*redis.Script{casScript, repairScript} {
		if err := s.Load(ctx, r.c).Err(); err != nil {
			return r.err("script load", err)
		}
	}
	info, err := r.c.Info(ctx, "server").Result()
	if err != nil {
		if redis.IsPermissionError(err) {
			return nil // INFO is not needed for the store to work; skip the version check
		}
		return r.err("info", err)
	}
	if v, ok := infoField(info, "redis_version"); ok && !atLeast(v, 6, 2) {
		return &Error{Op: "ping", Addr: r.addr, Kind: ErrConfig,
			Err: fmt.Errorf("server is Redis %s", v), Hint: "Redis 6.2 or later (or a compatible server) is required"}
	}
	return nil
}

// diagnose looks behind a connection failure that has no clear cause (a
// timeout, a connection closed at once) for a TLS mismatch, which otherwise
// looks like an outage: a TLS client gets no answer from a plain server, and
// a TLS server drops a plain client. It probes the first address once, so it
// belongs to Ping (startup, readiness), not to the hot path.
func (r *Redis) diagnose(ctx context.Context, err error) error {
	if kind, _ := kindOf(err, r.addr); kind != ErrUnavailable || errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d := &net.Dialer{}
	if r.tls != nil {
		c, derr := d.DialContext(ctx, "tcp", r.first)
		if derr != nil {
			return err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		var buf [8]byte
		if _, werr := c.Write([]byte("PING\r\n")); werr != nil {
			return err
		}
		if n, _ := c.Read(buf[:]); n > 0 && (buf[0] == '+' || buf[0] == '-') {
			return &Error{Op: "ping", Addr: r.addr, Kind: ErrConfig, Err: err,
				Hint: "the server at " + r.first + " answered a plain-text PING: it does not speak TLS on this port; disable tls, or use the server's TLS port"}
		}
		return err
	}
	td := &tls.Dialer{NetDialer: d, Config: &tls.Config{InsecureSkipVerify: true}} // a probe: nothing is sent but the handshake
	c, derr := td.DialContext(ctx, "tcp", r.first)
	var opErr *net.OpError
	if derr == nil || errors.As(derr, &opErr) && opErr.Op == "remote error" {
		if c != nil {
			c.Close()
		}
		return &Error{Op: "ping", Addr: r.addr, Kind: ErrConfig, Err: err,
			Hint: "the server at " + r.first + " completed a TLS handshake: it requires TLS; set tls.enabled (and tls.ca_file)"}
	}
	return err
}

func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return true // unknown scheme: let the commands decide
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// casScript writes one contact's blob unless Redis holds newer state.
//
// The order is the Kafka position of the batch: for the same partition, an
// older offset is rejected (a replayed batch, a zombie instance that lost the
// partition). The same offset is accepted only from a writer that read the
// stored version: that is the owner committing a timer firing or a retry,
// which build on what is stored, while a writer that did not see the stored
// state cannot prove it is not behind. A write whose bytes equal the stored
// blob at the same offset is a retry whose first attempt landed: reported as
// done. A different partition is accepted: after a repartition the contact's
// events come from another partition, whose offsets are not comparable.
//
// Offsets are compared as decimal strings (length, then bytes), exact beyond
// Lua's 2^53.
//
// KEYS[1] the contact's hash. ARGV: blob, partition, offset, the version the
// writer read (0: none), retention in ms (0: none). Returns {1, version}
// written, {2, version} already stored, {0, partition, offset, version}
// rejected.
var casScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'p', 'o', 'v')
local ver = tonumber(cur[3]) or 0
if cur[1] == ARGV[2] then
  local so, no = cur[2] or '', ARGV[3]
  local c
  if #no ~= #so then
    c = (#no > #so) and 1 or -1
  elseif no == so then
    c = 0
  else
    c = (no > so) and 1 or -1
  end
  if c < 0 or (c == 0 and tonumber(ARGV[4]) ~= ver) then
    if c == 0 and redis.call('HGET', KEYS[1], 's') == ARGV[1] then
      return {2, ver}
    end
    return {0, cur[1], so, ver}
  end
end
ver = ver + 1
redis.call('HSET', KEYS[1], 's', ARGV[1], 'p', ARGV[2], 'o', ARGV[3], 'v', ver)
if ARGV[5] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return {1, ver}
`)

// repairScript corrects one timer entry that DueTimers found stale, unless a
// writer changed it since it was read.
//
// KEYS[1] a partition's timers sorted set. ARGV: contact, score read, new
// score ("" removes). Returns 1 if repaired.
var repairScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
`)

// dueScore is a timer's score in its sorted set: the due time in Unix
// milliseconds, rounded down. A float64 holds it exactly (nanoseconds would
// round), and rounding down keeps an entry from ever being late.
func dueScore(due int64) int64 {
	ms := due / 1e6
	if due < 0 && due%1e6 != 0 {
		ms--
	}
	return ms
}

// earliest returns the earliest due time of the timers, NoTime if none.
func earliest(ts []Timer) int64 {
	e := NoTime
	for _, t := range ts {
		if e == NoTime || t.Due < e {
			e = t.Due
		}
	}
	return e
}

// loaded is one contact read from Redis.
type loaded struct {
	c     *Contact
	ver   int64 // writes so far; 0 when not stored
	found bool
}

// load reads the contacts in one pipelined round trip (one per node in
// Cluster). Contacts that are not stored come back as New(id).
func (r *Redis) load(ctx context.Context, ids []string, out []loaded) error {
	pipe := r.c.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, r.contactKey(id), "s", "v")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return r.err("load", err)
	}
	r.loaded.Add(uint64(len(ids)))
	for i, cmd := range cmds {
		vals := cmd.Val()
		s, ok := vals[0].(string)
		if !ok {
			out[i] = loaded{c: New(ids[i])}
			continue
		}
		c, err := Decode([]byte(s))
		if err != nil {
			return fmt.Errorf("state: contact %q in redis key %s: %w", ids[i], r.contactKey(ids[i]), err)
		}
		if c.ID != ids[i] {
			return fmt.Errorf("state: redis key %s holds contact %q, not %q: erase the key", r.contactKey(ids[i]), c.ID, ids[i])
		}
		var ver int64
		if v, ok := vals[1].(string); ok {
			ver, _ = strconv.ParseInt(v, 10, 64)
		}
		out[i] = loaded{c: c, ver: ver, found: true}
	}
	return nil
}

// pending is one contact's write in a commit.
type pending struct {
	id   string
	blob []byte
	ver  int64 // the version the writer read
	due  int64 // earliest timer, NoTime if none
}

type outcome int8

const (
	notSent  outcome = iota // the write failed or was not attempted: still dirty
	written                 // accepted
	same                    // already stored by an earlier attempt
	rejected                // Redis holds newer state
)

type wrote struct {
	out    outcome
	ver    int64    // the stored version after the call
	stored Position // rejected: the stored position
}

// write is a commit's round trip: for each contact, the compare-and-set
// script (EVALSHA), then its timer entry (ZADD LT) in the partition's sorted
// set, all in one pipeline.
//
// The blob and the timer entry live in different slots, so in Cluster they
// cannot share a script, and the pipeline cannot make the ZADD depend on the
// script's verdict. The timer index is therefore kept conservative: an entry
// is only ever added or lowered by writers (LT), never raised or removed, so
// it is never later than the blob's earliest timer, whatever the order in
// which writes land; a rejected write leaves at worst an early entry.
// DueTimers treats the blob as the truth and repairs stale entries.
func (r *Redis) write(ctx context.Context, pos Position, ws []pending) ([]wrote, error) {
	res := make([]wrote, len(ws))
	idx := make([]int, len(ws))
	for i := range idx {
		idx[i] = i
	}
	r.commits.Add(1)
	noScript, err := r.writeOnce(ctx, pos, ws, idx, res)
	if len(noScript) > 0 {
		// Redis restarted or failed over and lost its script cache: load
		// the script (on every master in Cluster) and send those again.
		r.log.Info("state: redis script cache was empty, reloading the compare-and-set script", "partition", pos.Partition)
		if lerr := casScript.Load(ctx, r.c).Err(); lerr != nil {
			err = cmp.Or(err, lerr)
		} else {
			noScript, err2 := r.writeOnce(ctx, pos, ws, noScript, res)
			err = cmp.Or(err, err2)
			if len(noScript) > 0 {
				err = cmp.Or(err, error(redis.ErrNoScript))
			}
		}
	}
	var conflicts int
	for i := range res {
		switch res[i].out {
		case written, same:
			r.written.Add(1)
		case rejected:
			conflicts++
		}
	}
	if conflicts > 0 {
		r.rejected.Add(uint64(conflicts))
	}
	return res, r.err("commit", err)
}

// writeOnce sends the writes of ws[idx] and fills res. It returns the
// indexes refused with NOSCRIPT, and the first other error.
func (r *Redis) writeOnce(ctx context.Context, pos Position, ws []pending, idx []int, res []wrote) (noScript []int, err error) {
	pipe := r.c.Pipeline()
	tk := r.timersKey(pos.Partition)
	p := strconv.FormatInt(int64(pos.Partition), 10)
	o := strconv.FormatInt(pos.Offset, 10)
	ttl := strconv.FormatInt(r.ttlMS, 10)
	cas := make([]*redis.Cmd, len(idx))
	zadd := make([]*redis.IntCmd, len(idx))
	timers := false
	for j, i := range idx {
		w := &ws[i]
		cas[j] = casScript.EvalSha(ctx, pipe, []string{r.contactKey(w.id)}, w.blob, p, o, w.ver, ttl)
		if w.due != NoTime {
			timers = true
			zadd[j] = pipe.ZAddArgs(ctx, tk, redis.ZAddArgs{LT: true, Members: []redis.Z{{Score: float64(dueScore(w.due)), Member: w.id}}})
		}
	}
	var side []redis.Cmder
	if timers {
		side = append(side, pipe.SAdd(ctx, r.partitionsKey(), p))
		if r.ttlMS > 0 {
			side = append(side, pipe.PExpire(ctx, tk, time.Duration(r.ttlMS)*time.Millisecond))
		}
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	for j, i := range idx {
		cerr := cas[j].Err()
		if cerr != nil {
			res[i] = wrote{}
			if redis.HasErrorPrefix(cerr, "NOSCRIPT") {
				noScript = append(noScript, i)
			} else if err == nil {
				err = fmt.Errorf("contact %q: %w", ws[i].id, cerr)
			}
			continue
		}
		w, perr := parseCAS(cas[j].Val())
		if perr != nil {
			return nil, perr
		}
		if w.out != rejected && zadd[j] != nil && zadd[j].Err() != nil {
			// The blob is stored but its timer is not indexed: keep the
			// contact dirty, so the retry (a "same" write) adds the entry.
			if err == nil {
				err = fmt.Errorf("timer index of contact %q: %w", ws[i].id, zadd[j].Err())
			}
			w.out = notSent
		}
		res[i] = w
	}
	for _, c := range side {
		if cerr := c.Err(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return noScript, err
}

func parseCAS(v any) (wrote, error) {
	a, ok := v.([]any)
	if !ok || len(a) < 2 {
		return wrote{}, fmt.Errorf("state: unexpected compare-and-set reply %v", v)
	}
	code, _ := a[0].(int64)
	switch code {
	case 1, 2:
		ver, _ := a[1].(int64)
		out := written
		if code == 2 {
			out = same
		}
		return wrote{out: out, ver: ver}, nil
	case 0:
		if len(a) < 4 {
			break
		}
		ps, _ := a[1].(string)
		offs, _ := a[2].(string)
		p, _ := strconv.ParseInt(ps, 10, 32)
		o, _ := strconv.ParseInt(offs, 10, 64)
		ver, _ := a[3].(int64)
		return wrote{out: rejected, ver: ver, stored: Position{Partition: int32(p), Offset: o}}, nil
	}
	return wrote{}, fmt.Errorf("state: unexpected compare-and-set reply %v", v)
}

// Stored is one contact as Redis holds it, for inspection.
type Stored struct {
	Contact *Contact      // the decoded state; points by rule are Contact.Points
	Pos     Position      // position of the last accepted write
	Version int64         // accepted writes so far
	TTL     time.Duration // time left before the contact expires; -1 if it never does
	Size    int           // bytes of the msgpack blob
}

// Inspect reads one contact's full state, as committed (a partition's Cache
// may hold newer, uncommitted changes). It returns ErrNotFound when the
// contact is not stored.
func (r *Redis) Inspect(ctx context.Context, id string) (*Stored, error) {
	key := r.contactKey(id)
	pipe := r.c.Pipeline()
	all := pipe.HGetAll(ctx, key)
	pttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.err("inspect", err)
	}
	h := all.Val()
	blob, ok := h["s"]
	if !ok {
		return nil, fmt.Errorf("state: contact %q: %w", id, ErrNotFound)
	}
	c, err := Decode([]byte(blob))
	if err != nil {
		return nil, fmt.Errorf("state: contact %q in redis key %s: %w", id, key, err)
	}
	s := &Stored{Contact: c, Size: len(blob), TTL: pttl.Val()}
	if p, err := strconv.ParseInt(h["p"], 10, 32); err == nil {
		s.Pos.Partition = int32(p)
	}
	s.Pos.Offset, _ = strconv.ParseInt(h["o"], 10, 64)
	s.Version, _ = strconv.ParseInt(h["v"], 10, 64)
	if s.TTL < 0 {
		s.TTL = -1
	}
	return s, nil
}

// Erase deletes everything held about the contact: its blob (which holds
// its windows, points, timers, caps and messageId dedupe set) and its entry
// in the timers sorted set of every partition, so that a later event starts
// a fresh contact. Erasing a contact that is not stored is not an error.
//
// Erase does not reach into a partition's Cache: use Cache.Delete from the
// partition's owner, which calls Erase. Events still in Kafka would rebuild
// the contact if they were replayed.
func (r *Redis) Erase(ctx context.Context, id string) error {
	parts, err := r.c.SMembers(ctx, r.partitionsKey()).Result()
	if err != nil {
		return r.err("erase", err)
	}
	pipe := r.c.Pipeline()
	pipe.Del(ctx, r.contactKey(id))
	for _, ps := range parts {
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil {
			continue
		}
		pipe.ZRem(ctx, r.timersKey(int32(p)), id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return r.err("erase", err)
	}
	r.erased.Add(1)
	return nil
}

// TimerRef is a pending timer found in Redis.
type TimerRef struct {
	Contact string
	Trigger string
	Due     int64  // Unix nanoseconds of event time
	Set     uint64 // the contact's Seq when it was set: ties fire in set order
}

// loadChunk bounds the contacts one DueTimers round trip reads.
const loadChunk = 1000

// DueTimers returns the timers due at or before upTo (Unix nanoseconds) of
// the contacts indexed in partition's sorted set, ordered by due time, then
// contact, then set order, as committed. The new owner of a partition calls
// it to find and fire the timers the previous owner left.
//
// The sorted set is an index, the blobs are the truth: each candidate's blob
// is read, and only its real timers are returned. Entries found stale (the
// contact expired, was erased, has no timer that early any more, or is now
// written from another partition) are repaired, unless a writer changed the
// entry since it was read.
func (r *Redis) DueTimers(ctx context.Context, partition int32, upTo int64) ([]TimerRef, error) {
	tk := r.timersKey(partition)
	zs, err := r.c.ZRangeByScoreWithScores(ctx, tk, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(dueScore(upTo), 10)}).Result()
	if err != nil {
		return nil, r.err("due timers", err)
	}
	var refs []TimerRef
	for len(zs) > 0 {
		chunk := zs[:min(len(zs), loadChunk)]
		zs = zs[len(chunk):]
		ids := make([]string, len(chunk))
		for i, z := range chunk {
			ids[i], _ = z.Member.(string)
		}
		got := make([]loaded, len(ids))
		if err := r.load(ctx, ids, got); err != nil {
			return nil, err
		}
		pipe := r.c.Pipeline()
		repairs := 0
		for i, z := range chunk {
			c := got[i].c
			e := NoTime
			if got[i].found && c.Pos.Partition == partition {
				e = earliest(c.Timers)
				for _, t := range c.Timers {
					if t.Due <= upTo {
						refs = append(refs, TimerRef{Contact: c.ID, Trigger: t.Trigger, Due: t.Due, Set: t.Set})
					}
				}
			}
			read := strconv.FormatInt(int64(z.Score), 10)
			switch {
			case e == NoTime:
				repairScript.Eval(ctx, pipe, []string{tk}, ids[i], read, "")
			case float64(dueScore(e)) != z.Score:
				repairScript.Eval(ctx, pipe, []string{tk}, ids[i], read, dueScore(e))
			default:
				continue
			}
			repairs++
		}
		if repairs > 0 {
			// EVAL, not EVALSHA: repairs are rare, and a pipelined EVALSHA
			// cannot fall back after NOSCRIPT.
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, r.err("due timers repair", err)
			}
		}
	}
	slices.SortFunc(refs, func(a, b TimerRef) int {
		return cmp.Or(cmp.Compare(a.Due, b.Due), strings.Compare(a.Contact, b.Contact), cmp.Compare(a.Set, b.Set))
	})
	return refs, nil
}
