package sinks

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Deduper remembers the ids of delivered actions, so that an action read
// again from the actions topic (a crash or rebalance before the offset
// commit, a re-emission after the scoring stage replays a batch) is not
// delivered twice.
//
// The Dispatcher asks Delivered before the first attempt and calls Remember
// only after a successful delivery. A crash between the delivery and the
// Remember (or a Remember that fails) leaves a window in which the action
// can be delivered again when it is replayed: webhook receivers close it by
// deduplicating on the Idempotency-Key header, Kafka and Redis consumers on
// the idempotency-key header or the id field.
type Deduper interface {
	// Delivered reports, for each id, whether it was remembered as
	// delivered.
	Delivered(ctx context.Context, ids []string) ([]bool, error)
	// Remember records ids as delivered.
	Remember(ctx context.Context, ids []string) error
}

// DefaultDedupeTTL is how long RedisDedupe remembers a delivered action: a
// week, longer than any realistic replay of the actions topic (Kafka's
// default retention is 7 days too). An action replayed after that is
// delivered again.
const DefaultDedupeTTL = 7 * 24 * time.Hour

// DefaultDedupePrefix starts the keys of RedisDedupe.
const DefaultDedupePrefix = "leadpulse:delivered:"

// RedisDedupe remembers delivered action ids in Redis, one key per action:
// PREFIX{ID} (the id is the hash tag, so on a cluster the keys spread over
// the slots by action id), set with SET NX EX TTL, read with EXISTS, both
// pipelined per batch. It is shared by every dispatcher process, so a
// partition that moves to another process keeps its memory.
type RedisDedupe struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisDedupe returns a Deduper on client. prefix "" means
// DefaultDedupePrefix; ttl 0 means DefaultDedupeTTL.
func NewRedisDedupe(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisDedupe {
	if prefix == "" {
		prefix = DefaultDedupePrefix
	}
	if ttl <= 0 {
		ttl = DefaultDedupeTTL
	}
	return &RedisDedupe{client: client, prefix: prefix, ttl: ttl}
}

// Key is the Redis key remembering action id.
func (r *RedisDedupe) Key(id string) string { return r.prefix + "{" + id + "}" }

// Delivered implements Deduper.
func (r *RedisDedupe) Delivered(ctx context.Context, ids []string) ([]bool, error) {
	cmds := make([]*redis.IntCmd, len(ids))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Exists(ctx, r.Key(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sinks: dedupe lookup in Redis: %w", err)
	}
	out := make([]bool, len(ids))
	for i, c := range cmds {
		out[i] = c.Val() > 0
	}
	return out, nil
}

// Remember implements Deduper.
func (r *RedisDedupe) Remember(ctx context.Context, ids []string) error {
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.SetNX(ctx, r.Key(id), 1, r.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sinks: dedupe remember in Redis: %w", err)
	}
	return nil
}

// DefaultMemoryDedupeSize is how many ids a MemoryDedupe remembers by
// default (about 10 MB with 64-byte ids).
const DefaultMemoryDedupeSize = 100_000

// MemoryDedupe remembers the last N delivered action ids in memory, the
// oldest forgotten first. For dev and tests: it is lost on restart and not
// shared between processes.
type MemoryDedupe struct {
	mu   sync.Mutex          // guards all below
	ids  map[string]struct{} // the remembered ids
	ring []string            // the same, in the order remembered; next overwrites the oldest
	next int
}

// NewMemoryDedupe remembers up to size ids (0: DefaultMemoryDedupeSize).
func NewMemoryDedupe(size int) *MemoryDedupe {
	if size <= 0 {
		size = DefaultMemoryDedupeSize
	}
	return &MemoryDedupe{ids: make(map[string]struct{}, min(size, 1024)), ring: make([]string, size)}
}

// Delivered implements Deduper.
func (m *MemoryDedupe) Delivered(_ context.Context, ids []string) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(ids))
	for i, id := range ids {
		_, out[i] = m.ids[id]
	}
	return out, nil
}

// Remember implements Deduper.
func (m *MemoryDedupe) Remember(_ context.Context, ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if _, ok := m.ids[id]; ok {
			continue
		}
		if old := m.ring[m.next]; old != "" {
			delete(m.ids, old)
		}
		m.ring[m.next] = id
		m.ids[id] = struct{}{}
		m.next = (m.next + 1) % len(m.ring)
	}
	return nil
}
