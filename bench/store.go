package bench

import (
	"context"
	"math"

	"github.com/leadpulse/leadpulse/state"
)

// stateFigures measures the stored contacts: count and mean encoded size.
func (r *run) stateFigures(ctx context.Context) {
	var size, n int
	if r.mem != nil {
		r.res.State.Contacts = r.mem.Len()
		r.mem.Range(func(c *state.Contact) bool {
			if b, err := state.Encode(c); err == nil {
				size += len(b)
				n++
			}
			return n < 1000
		})
	} else if r.rdb != nil {
		for _, b := range r.blobs(ctx) {
			size += len(b)
			n++
		}
	}
	if n > 0 {
		r.res.State.BlobBytes = size / n
	}
}

// blobs returns the encoded state of up to 1000 contacts of the run, read
// back from Redis.
func (r *run) blobs(ctx context.Context) [][]byte {
	var out [][]byte
	for _, id := range r.load.sample {
		st, err := r.rdb.Inspect(ctx, id)
		if err != nil {
			continue
		}
		b, err := state.Encode(st.Contact)
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out
}

func (r *run) redisCeiling(ctx context.Context) error {
	rf := r.res.Redis
	ph := r.res.Drain
	if ph == nil && len(r.res.Rates) > 0 {
		ph = r.res.Rates[0]
	}
	if ph == nil || ph.Redis == nil || ph.Redis.Written == 0 {
		return nil
	}
	blobs := r.blobs(ctx)
	if len(blobs) == 0 {
		r.logf("redis ceiling skipped: no stored contact could be read back")
		return nil
	}
	batch := 1
	if ph.Redis.Commits > 0 {
		batch = int(math.Round(float64(ph.Redis.Written) / float64(ph.Redis.Commits)))
	}
	r.logf("redis ceiling: %d pipelined SETs", ph.Redis.Written)
	c, err := redisCeiling(ctx, r.cfg.Redis, "lpbench-"+r.id, blobs, int64(ph.Redis.Written), batch, int(r.cfg.Partitions))
	if err != nil {
		return err
	}
	rf.Ceiling = c
	rf.WrittenPerSec = ph.Redis.WrittenPerSec
	if c != nil {
		rf.Ratio = ratio(rf.WrittenPerSec, c.PerSec)
	}
	return nil
}
