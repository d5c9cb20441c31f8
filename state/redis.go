package state

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

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
	// The loads a partition goroutine waited for (Cache.Prefetch, Get):
	// round trips and nanoseconds; and the loads the new-contact filter
	// spared (Cache: the contact is certainly not stored).
	waits, waitNS, skipped atomic.Uint64
}

// RedisStats are the store's counters since NewRedis, for metrics.
type RedisStats struct {
	Commits  uint64 // write round trips (Commit calls with dirty contacts)
	Written  uint64 // contact writes accepted
	Rejected uint64 // contact writes rejected as stale by the compare-and-set
	Loaded   uint64 // contacts read from Redis (cache misses, DueTimers)
	Erased   uint64 // contacts erased
	Failed   uint64 // calls that failed with an *Error
	// LoadWaits are the load round trips a partition goroutine waited
	// for (Cache.Prefetch and Get; not the loads ahead), and LoadWait the
	// time it waited in them.
	LoadWaits uint64
	LoadWait  time.Duration
	// Skipped are contacts not loaded because the partition's new-contact
	// filter showed they are not stored (state/filter.go).
	Skipped uint64
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

		LoadWaits: r.waits.Load(),
		LoadWait:  time.Duration(r.waitNS.Load()),
		Skipped:   r.skipped.Load(),
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

// casScript writes contacts' blobs, each unless Redis holds newer state
// for it.
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
// KEYS the contacts' hashes (one in Cluster, where each contact has a slot
// of its own; up to casChunk in standalone Redis). ARGV: partition, offset,
// retention in ms (0: none), then for each key its blob and the version the
// writer read (0: none). Returns, for each key, {1, version} written,
// {2, version} already stored, {0, partition, offset, version} rejected.
//
// Several contacts per call save the script's own cost (dispatch, the Lua
// call, the MULTI/EXEC that wraps its effects in the AOF) per contact:
// BenchmarkRedisFlush/cas-only, AOF everysec, server CPU 16–18 µs per
// contact with one per call, 12–14 with 64, on a shared 2-core machine
// (load average 6–11); most of the cost is the per-contact calls.
var casScript = redis.NewScript(`
local p, no, ttl = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i, key in ipairs(KEYS) do
  local blob, rv = ARGV[2*i+2], tonumber(ARGV[2*i+3])
  local cur = redis.call('HMGET', key, 'p', 'o', 'v')
  local ver = tonumber(cur[3]) or 0
  local r
  if cur[1] == p then
    local so = cur[2] or ''
    local c
    if #no ~= #so then
      c = (#no > #so) and 1 or -1
    elseif no == so then
      c = 0
    else
      c = (no > so) and 1 or -1
    end
    if c < 0 or (c == 0 and rv ~= ver) then
      if c == 0 and redis.call('HGET', key, 's') == blob then
        r = {2, ver}
      else
        r = {0, cur[1], so, ver}
      end
    end
  end
  if not r then
    ver = ver + 1
    redis.call('HSET', key, 's', blob, 'p', p, 'o', no, 'v', ver)
    if ttl == '0' then
      redis.call('PERSIST', key)
    else
      redis.call('PEXPIRE', key, ttl)
    end
    r = {1, ver}
  end
  out[i] = r
end
return out
`)

// casChunk is the most contacts one compare-and-set call writes in
// standalone Redis. A script runs alone on the server, and the other
// partitions' Prefetch reads wait behind it (a write now runs while its
// partition applies the next batch, so reads and writes meet): 16 contacts
// (~16 KB, what the server reads of a connection at a time) hold them for
// a fraction of a millisecond. Larger chunks did not measurably lower the
// server's CPU per contact (BenchmarkRedisFlush, 1 to 256 per call: within
// the noise of a shared machine).
const casChunk = 16

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

// waitLoad is load on the partition goroutine, counted as a wait.
func (r *Redis) waitLoad(ctx context.Context, ids []string, out []loaded) error {
	t0 := time.Now()
	err := r.load(ctx, ids, out)
	r.waits.Add(1)
	r.waitNS.Add(uint64(time.Since(t0)))
	return err
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
		c, err := decodeString(s)
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

// decodeString decodes a blob that go-redis returned as a string, without
// copying it to a byte slice first: Decode only reads its input, and copies
// what the contact keeps (decode.go; TestDecodeKeepsNoBlobBytes). A load
// copied every blob it read (~1.6 KB a B2B contact) for nothing.
func decodeString(s string) (*Contact, error) {
	return Decode(unsafe.Slice(unsafe.StringData(s), len(s)))
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

// write is a commit's round trip: the timer entries (ZADD LT in the
// partition's sorted set) of the contacts that have timers, then each
// contact's compare-and-set script (EVALSHA), in one pipeline.
//
// The blob and the timer entry live in different slots, so in Cluster they
// cannot share a script, and the pipeline cannot make the ZADD depend on the
// script's verdict. The timer index is therefore kept conservative: an entry
// is only ever added or lowered by writers (LT), never raised or removed, so
// it is never later than the blob's earliest timer; a rejected write leaves
// at worst an early entry. DueTimers treats the blob as the truth and
// repairs stale entries.
//
// That holds only if a blob never lands without its entry: a writer killed
// mid-pipeline (SIGKILL, OOM kill, a cut connection) lands a prefix of its
// commands, and a blob whose new, earlier timer is not indexed is never
// found by the next owner's DueTimers, so the timer never fires. Hence the
// entries go first: on one connection (standalone) Redis runs a pipeline in
// order, so every prefix that holds a blob holds its entry; in Cluster the
// nodes run their parts independently, so the entries are a round trip of
// their own, and a contact whose entry failed is not written (it stays
// dirty).
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
	tk := r.timersKey(pos.Partition)
	p := strconv.FormatInt(int64(pos.Partition), 10)
	o := strconv.FormatInt(pos.Offset, 10)
	ttl := strconv.FormatInt(r.ttlMS, 10)
	_, cluster := r.c.(*redis.ClusterClient)

	// The timer entries first (see write), in one ZADD.
	pipe := r.c.Pipeline()
	var members []redis.Z
	for _, i := range idx {
		if w := &ws[i]; w.due != NoTime {
			members = append(members, redis.Z{Score: float64(dueScore(w.due)), Member: w.id})
		}
	}
	var zadd *redis.IntCmd
	var side []redis.Cmder
	if len(members) > 0 {
		zadd = pipe.ZAddArgs(ctx, tk, redis.ZAddArgs{LT: true, Members: members})
		side = append(side, pipe.SAdd(ctx, r.partitionsKey(), p))
		if r.ttlMS > 0 {
			side = append(side, pipe.PExpire(ctx, tk, time.Duration(r.ttlMS)*time.Millisecond))
		}
		if cluster {
			_, _ = pipe.Exec(ctx) // each command's own error is read below
			pipe = r.c.Pipeline()
		}
	}
	indexErr := func() error {
		if zadd == nil {
			return nil
		}
		return zadd.Err()
	}
	chunk := casChunk
	if cluster {
		chunk = 1 // each contact has a slot of its own
	}
	type call struct {
		cmd *redis.Cmd
		idx []int // the indexes of ws it writes
	}
	var calls []call
	send := idx
	if cluster && indexErr() != nil {
		// Not indexed: not written either.
		send = nil
		for _, i := range idx {
			if ws[i].due == NoTime {
				send = append(send, i)
				continue
			}
			res[i] = wrote{}
			if err == nil {
				err = fmt.Errorf("timer index of contact %q: %w", ws[i].id, indexErr())
			}
		}
	}
	for len(send) > 0 {
		n := min(len(send), chunk)
		part := send[:n:n]
		send = send[n:]
		keys := make([]string, n)
		args := make([]any, 3, 3+2*n)
		args[0], args[1], args[2] = p, o, ttl
		for k, i := range part {
			keys[k] = r.contactKey(ws[i].id)
			args = append(args, ws[i].blob, ws[i].ver)
		}
		calls = append(calls, call{cmd: casScript.EvalSha(ctx, pipe, keys, args...), idx: part})
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx) // each command's own error is read below
	}
	for _, c := range calls {
		if cerr := c.cmd.Err(); cerr != nil {
			for _, i := range c.idx {
				res[i] = wrote{}
			}
			if redis.HasErrorPrefix(cerr, "NOSCRIPT") {
				noScript = append(noScript, c.idx...)
			} else if err == nil {
				err = fmt.Errorf("contact %q: %w", ws[c.idx[0]].id, cerr)
			}
			continue
		}
		replies, ok := c.cmd.Val().([]any)
		if !ok || len(replies) != len(c.idx) {
			return nil, fmt.Errorf("state: unexpected compare-and-set reply %v for %d contacts", c.cmd.Val(), len(c.idx))
		}
		for k, i := range c.idx {
			w, perr := parseCAS(replies[k])
			if perr != nil {
				return nil, perr
			}
			if w.out != rejected && ws[i].due != NoTime && indexErr() != nil {
				// The blob is stored but its timer is not indexed: keep the
				// contact dirty, so the retry (a "same" write) adds the entry.
				if err == nil {
					err = fmt.Errorf("timer index of contact %q: %w", ws[i].id, indexErr())
				}
				w.out = notSent
			}
			res[i] = w
		}
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
