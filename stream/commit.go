package stream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// committer coalesces the scoring stage's offset commits. A worker notes the
// next offset of its partition once a batch's actions are acknowledged and
// its state is durable (note); one goroutine (run) commits every noted
// partition in one asynchronous request at most every Config.CommitInterval.
// A worker that stops with its partition (revoke, shutdown) commits what is
// noted synchronously (flush) before it returns, so a partition's next owner
// starts where its state ends.
//
// Why: a synchronous commit per batch blocked each worker for a round trip,
// and franz-go serializes the commits of one client, so the workers queued
// behind each other's commits: at 5,000 events/s a scoring batch took 3.5 ms
// with them and 0.4 ms without (leadpulse bench, DESIGN.md Performance). A
// crash loses at most the interval's commits: those records are read again,
// and repeats are dropped by messageId with the same action ids (DESIGN.md,
// Order of commits).
//
// issueMu orders requests: every commit is issued under it, and franz-go
// keeps issued commits in order, so an older offset never lands after a
// newer one.
type committer struct {
	cl       *kgo.Client
	topic    string
	interval time.Duration
	m        *Metrics
	log      *slog.Logger

	mu      sync.Mutex // guards pending
	pending map[int32]kgo.EpochOffset

	issueMu sync.Mutex
	wake    chan struct{} // 1-buffered: a partition was noted
}

func newCommitter(cl *kgo.Client, topic string, interval time.Duration, m *Metrics, log *slog.Logger) *committer {
	return &committer{
		cl: cl, topic: topic, interval: interval, m: m, log: log,
		pending: map[int32]kgo.EpochOffset{}, wake: make(chan struct{}, 1),
	}
}

// note records that partition p is applied, acknowledged and durable up to
// eo.Offset (the next offset to read).
func (c *committer) note(p int32, eo kgo.EpochOffset) {
	c.mu.Lock()
	c.pending[p] = eo
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// drop forgets what is noted for p: the partition was lost, its next owner
// commits.
func (c *committer) drop(p int32) {
	c.mu.Lock()
	delete(c.pending, p)
	c.mu.Unlock()
}

// take removes and returns what is noted; nil if nothing.
func (c *committer) take() map[string]map[int32]kgo.EpochOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return nil
	}
	ps := c.pending
	c.pending = map[int32]kgo.EpochOffset{}
	return map[string]map[int32]kgo.EpochOffset{c.topic: ps}
}

// run commits what is noted, at most once per interval, until stop closes.
// A note that comes an interval or more after the previous commit is
// committed at once: the interval spaces commits out, it is not a delay
// (before, every note waited a whole interval, which held the end of a
// backlog's committed progress back by up to 100 ms).
func (c *committer) run(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTimer(c.interval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		}
		if wait := c.interval - time.Since(last); wait > 0 {
			t.Reset(wait)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
		last = time.Now()
		c.issue(ctx, false)
	}
}

// flush commits what is noted and waits for the broker's answer.
func (c *committer) flush(ctx context.Context) error {
	return c.issue(ctx, true)
}

func (c *committer) issue(ctx context.Context, wait bool) error {
	c.issueMu.Lock()
	defer c.issueMu.Unlock()
	offsets := c.take()
	if offsets == nil {
		return nil
	}
	if wait {
		err := commitSync(ctx, c.cl, offsets)
		c.count(offsets, err)
		return err
	}
	c.cl.CommitOffsets(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			err = commitError(resp)
		}
		c.count(offsets, err)
	})
	return nil
}

func (c *committer) count(offsets map[string]map[int32]kgo.EpochOffset, err error) {
	if err != nil {
		c.m.offsetCommits.WithLabelValues(stageScore, "error").Inc()
		c.log.Warn("stream: offset commit failed; records after the last committed offsets may be applied again after a restart or rebalance (repeats are dropped by messageId, actions keep their ids)", "offsets", offsets[c.topic], "err", err)
		return
	}
	c.m.offsetCommits.WithLabelValues(stageScore, "ok").Inc()
}

// commitError is the first partition error of a commit response.
func commitError(resp *kmsg.OffsetCommitResponse) error {
	if resp == nil {
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
