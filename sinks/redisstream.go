package sinks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStream appends each action to a Redis stream: XADD key MAXLEN ~ cap
// * id <action id> action <action record JSON>. A batch is one pipeline
// (one round trip; on a cluster, one per node).
//
// Each action id is appended once, even when the dispatcher delivers it
// again (a crash between a delivery and its remembering): one script per
// action appends it only if its marker key does not exist, and sets the
// marker (kept DefaultDedupeTTL) in the same atomic step. The marker,
// StreamKey{hash tag}:delivered:ID, shares the stream's hash slot, so this
// holds on a cluster too. The stream thus holds every action exactly once.
//
// Error replies that mean the server is busy or failing over (LOADING,
// READONLY, OOM, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, NOREPLICAS) and
// network errors are transient; other error replies (WRONGTYPE: the key
// holds something else; NOPERM) are permanent. The client is the caller's
// and stays open on Close.
type RedisStream struct {
	client  redis.UniversalClient
	stream  string
	maxLen  int64 // -1: no cap
	timeout time.Duration
}

// NewRedisStream returns a sink appending to stream with client. maxLen 0
// means Defaults().MaxLen, -1 no cap; timeout 0 means Defaults().Timeout.
func NewRedisStream(client redis.UniversalClient, stream string, maxLen int64, timeout time.Duration) *RedisStream {
	if maxLen == 0 {
		maxLen = defaults.MaxLen
	}
	if timeout <= 0 {
		timeout = defaults.Timeout
	}
	return &RedisStream{client: client, stream: stream, maxLen: maxLen, timeout: timeout}
}

// Write appends the batch in one pipeline.
func (s *RedisStream) Write(parent context.Context, batch []Action) error {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	cmds := make([]*redis.Cmd, len(batch))
	ttl := DefaultDedupeTTL.Milliseconds()
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range batch {
			a := &batch[i]
			// EVAL, not EVALSHA: a pipelined EVALSHA cannot fall back
			// after NOSCRIPT, and the script is short.
			cmds[i] = appendOnce.Eval(ctx, p, []string{s.stream, s.marker(a.Record.ID)}, a.Record.ID, a.JSON, max(s.maxLen, 0), ttl)
		}
		return nil
	})
	var errs []error
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			if parent.Err() != nil {
				return context.Cause(parent)
			}
			if errs == nil {
				errs = make([]error, len(batch))
			}
			errs[i] = s.classify(err)
		}
	}
	return batchError(errs)
}

// appendOnce appends an action to the stream unless its marker exists, and
// sets the marker. XADD comes first, so that a refused append (OOM) leaves
// no marker behind. KEYS: the stream, the marker. ARGV: id, the action's
// JSON, MAXLEN (0: no cap), the marker's TTL in ms. Returns 1 appended, 0
// already there.
var appendOnce = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[1], 'action', ARGV[2])
else
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'action', ARGV[2])
end
redis.call('SET', KEYS[2], 1, 'PX', ARGV[4])
return 1
`)

// marker is the key that says the action id is in the stream: in the
// stream key's hash slot (its hash tag, or the whole key as the tag).
func (s *RedisStream) marker(id string) string {
	tag := s.stream
	if i := strings.IndexByte(s.stream, '{'); i >= 0 {
		if j := strings.IndexByte(s.stream[i+1:], '}'); j > 0 {
			tag = s.stream[i+1 : i+1+j]
		}
	}
	return "{" + tag + "}:delivered:" + id
}

// busyReplies are the error replies of a server that will serve again.
var busyReplies = []string{"LOADING", "READONLY", "OOM", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS"}

func (s *RedisStream) classify(err error) error {
	wrapped := fmt.Errorf("redis stream %s: %w", s.stream, err)
	if rerr, ok := err.(redis.Error); ok && err != redis.Nil {
		msg := rerr.Error()
		for _, p := range busyReplies {
			if strings.HasPrefix(msg, p) {
				return Transient(wrapped)
			}
		}
		if strings.HasPrefix(msg, "WRONGTYPE") {
			wrapped = fmt.Errorf("%w; the key %s holds another type: point stream at a free key", wrapped, s.stream)
		}
		return Permanent(wrapped)
	}
	return Transient(wrapped)
}

// Close does nothing: the client is the caller's.
func (s *RedisStream) Close(context.Context) error { return nil }
