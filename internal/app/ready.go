package app

import (
	"context"
	"fmt"

	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// Ready is /readyz: the pipeline consumes and owns partitions, the dispatch
// stage (when there is one) consumes, the brokers answer (the stages' own
// reason when not: stream.ErrUnreachable), and Redis (when there is one)
// answers.
// dispatch and rdb may be nil.
func Ready(p *stream.Pipeline, dispatch *stream.Dispatch, rdb *state.Redis) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := p.NotReady(); err != nil {
			return err // not running, topics, not consuming, or kafka unreachable (with the reason)
		}
		if dispatch != nil {
			if err := dispatch.NotReady(); err != nil {
				return err
			}
		}
		if p.Partitions() == 0 {
			return fmt.Errorf("no partition of %s is assigned to this process (a rebalance in progress, or more processes than partitions)", ScoreTopic(p.Config()))
		}
		if rdb != nil {
			return rdb.Ping(ctx)
		}
		return nil
	}
}

// ScoreTopic is the topic the scoring stage reads.
func ScoreTopic(c stream.Config) string {
	if c.InputKeyed {
		return c.Topics.Events
	}
	return c.Topics.Keyed
}
