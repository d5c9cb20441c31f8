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
	cmds := make([]*redis.StringCmd, len(batch))
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range batch {
			a := &batch[i]
			args := &redis.XAddArgs{Stream: s.stream, Values: []any{"id", a.Record.ID, "action", a.JSON}}
			if s.maxLen > 0 {
				args.MaxLen, args.Approx = s.maxLen, true
			}
			cmds[i] = p.XAdd(ctx, args)
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
