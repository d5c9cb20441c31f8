package state

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Stored is one contact as Redis holds it, for inspection.
type Stored struct {
	Contact *Contact      // the decoded state; points by rule are Contact.Points
	Pos     Position      // position of the last accepted write
	Version int64         // accepted writes so far
	TTL     time.Duration // time left before the contact expires; -1 if it never does
	Size    int           // bytes of the msgpack blob
	// Memory is set for a contact held in a process' memory store (leadpulse
	// dev): Pos.Partition is its partition, and there is no write position,
	// version, TTL or size.
	Memory bool
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
	c, err := decodeString(blob)
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
