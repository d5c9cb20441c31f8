package state

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

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
