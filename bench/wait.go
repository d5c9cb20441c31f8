package bench

import (
	"context"
	"fmt"
	"time"
)

// waitFor polls cond every `every` until it holds, the pipeline stops, ctx
// ends or timeout passes.
func (r *run) waitFor(ctx context.Context, timeout, every time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case err := <-r.pipeErr:
			r.pipeErr <- err // for the cleanup
			return fmt.Errorf("%w: %v", errPipelineStopped, err)
		case <-ctx.Done():
			return fmt.Errorf("bench: waited %v: %w", timeout, ctx.Err())
		case <-t.C:
		}
	}
}

// waitCommitted waits until the scoring stage has committed n records.
func (r *run) waitCommitted(ctx context.Context, n int64, timeout time.Duration) error {
	var (
		got     int64
		lastErr error
	)
	err := r.waitFor(ctx, timeout, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
		// Errors (the group not created yet, a timeout) are retried.
		c, err := committed(ctx, r.adm, r.scfg.Group, r.scoreTopic())
		if err != nil {
			lastErr = err
			return false, nil
		}
		got = c
		return c >= n, nil
	})
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (last offset fetch: %v)", err, lastErr)
		}
		return fmt.Errorf("bench: the scoring stage committed %d of %d events: %w", got, n, err)
	}
	return nil
}

// waitActions waits until the action reader has read every action on the
// topic (the scoring stage produced them before it committed).
func (r *run) waitActions(ctx context.Context) error {
	end, err := endOffsets(ctx, r.adm, r.scfg.Topics.Actions)
	if err != nil {
		return err
	}
	return r.waitFor(ctx, time.Minute, 2*time.Millisecond, func(context.Context) (bool, error) {
		return r.col.caughtUp(end), nil
	})
}

// settled waits until the pipeline has committed every acknowledged event
// (t1 is then, b the pipeline's stats then, lag the consumer lag read then:
// the monitor's last tick may be older than the end) and the actions of the
// phase have arrived. lag.ok is false when the lag could not be read.
func (r *run) settled(ctx context.Context) (t1 time.Time, b pipelineStats, lag endLag, err error) {
	if err := r.waitCommitted(ctx, r.load.acked.Load(), 10*time.Minute); err != nil {
		return t1, b, lag, err
	}
	// Identity hand-overs put records of their own on the scoring topic
	// (requests, answers, forwards), some after the last event: wait until
	// the group has committed up to the topic's end too.
	err = r.waitFor(ctx, time.Minute, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
		c, err := committed(ctx, r.adm, r.scfg.Group, r.scoreTopic())
		if err != nil {
			return false, nil
		}
		end, err := endOffsets(ctx, r.adm, r.scoreTopic())
		if err != nil {
			return false, nil
		}
		var n int64
		for _, o := range end {
			n += o
		}
		return c >= n, nil
	})
	if err != nil {
		return t1, b, lag, fmt.Errorf("bench: the scoring stage did not commit up to the end of its topic (identity hand-overs): %w", err)
	}
	t1 = time.Now()
	lag.LagSample, lag.ok = r.mon.sample(ctx)
	b = r.stats()
	return t1, b, lag, r.waitActions(ctx)
}

// endLag is the lag sampled at the end of a phase.
type endLag struct {
	LagSample
	ok bool
}
