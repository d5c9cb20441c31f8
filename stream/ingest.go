package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
)

// ingest is the first stage: it reads Topics.Events in its own consumer
// group, decodes and validates each record, and re-produces the good ones to
// Topics.Keyed keyed by contact (same value, headers and timestamp) and the
// bad ones to Topics.DLQ. Each poll's output is acknowledged by Kafka before
// the poll's offsets are committed, and BlockRebalanceOnPoll keeps a
// rebalance out until then, so a revoked partition is never committed.
//
// The stage is stateless and one loop is enough for it (a decode costs
// about a microsecond); the producer keeps the order of each input
// partition's records for each contact.
type ingest struct {
	cfg   *Config
	m     *Metrics
	log   *slog.Logger
	rules func() *rules.Ruleset // for the identity section's blocked ids
}

// contactKey is the key of an event on the keyed topic: its contact as the
// scoring stage resolves it, the usable userId else the usable anonymousId
// (identity.blocked ids are not identities, SPEC §6), so that an event with
// a blocked userId such as "null" goes to its anonymous id's partition. An
// event with no usable id keeps its raw contact: scoring dead-letters it.
func contactKey(rs *rules.Ruleset, e *event.Event) string {
	if rs != nil {
		user, anon := rs.Identity().Usable(e.UserID, e.AnonymousID)
		if user != "" {
			return user
		}
		if anon != "" {
			return anon
		}
	}
	return e.Contact()
}

func (in *ingest) run(ctx, work context.Context, ready func()) error {
	cfg := in.cfg
	opts := append(cfg.clientOpts("ingest"),
		kgo.ConsumerGroup(cfg.ingestGroup()),
		kgo.ConsumeTopics(cfg.Topics.Events),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), // input written in transactions counts once committed
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			in.rebalanced("assigned", m)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			in.rebalanced("revoked", m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			in.rebalanced("lost", m)
		}),
	)
	tx, err := newIngestTxn(cfg, opts)
	if err != nil {
		return fmt.Errorf("stream: ingest: kafka client: %w", err)
	}
	cl := tx.cl
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("stream: ingest: no broker of %v answers: %w (check --kafka / brokers and the network)", cfg.Brokers, err)
	}
	ready()
	in.log.Info("stream: ingest running", "topic", cfg.Topics.Events, "group", cfg.ingestGroup(), "to", cfg.Topics.Keyed, "transactional_id", tx.id())

	var (
		out     []*kgo.Record
		ev      event.Event
		commits = map[string]map[int32]kgo.EpochOffset{}
	)
	for {
		fs, ok := poll(ctx, cl, cfg.PollRecords, in.log, stageIngest)
		if !ok {
			break
		}
		out = out[:0]
		clear(commits)
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			for _, r := range p.Records {
				if err := event.DecodeInto(&ev, r.Value, formatOf(r), recordTime(r)); err != nil {
					in.m.bad(stageIngest, event.ReasonOf(err))
					out = append(out, badInput(cfg.Topics.DLQ, r, err))
					continue
				}
				out = append(out, &kgo.Record{
					Topic:     cfg.Topics.Keyed,
					Key:       []byte(contactKey(in.rules(), &ev)),
					Value:     r.Value,
					Headers:   r.Headers,
					Timestamp: r.Timestamp,
				})
			}
			last := p.Records[len(p.Records)-1]
			if commits[p.Topic] == nil {
				commits[p.Topic] = map[int32]kgo.EpochOffset{}
			}
			commits[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
			in.m.eventsInStage[stageIngest].Add(float64(len(p.Records)))
			in.m.lag.WithLabelValues(p.Topic, partLabel(p.Partition)).Set(float64(max(p.HighWatermark-last.Offset-1, 0)))
		})
		if err := tx.begin(len(out)); err != nil {
			cl.AllowRebalance()
			return fmt.Errorf("stream: ingest: %w", err)
		}
		if len(out) > 0 {
			if err := cl.ProduceSync(work, out...).FirstErr(); err != nil {
				tx.abort(work)
				in.m.produceErrors.WithLabelValues(cfg.Topics.Keyed).Inc()
				cl.AllowRebalance()
				return fmt.Errorf("stream: ingest: produce to %q/%q: %w (the input offsets were not committed; they are read again on restart)",
					cfg.Topics.Keyed, cfg.Topics.DLQ, tx.explain(err))
			}
		}
		if tx.sess != nil {
			if err := tx.end(work, len(out), in.m, in.log); err != nil {
				cl.AllowRebalance()
				return fmt.Errorf("stream: ingest: %w", err)
			}
		} else {
			commitPoll(work, cl, commits, in.m, stageIngest, in.log,
				"the records may be read again (keyed records repeat, and the scoring stage drops repeats by messageId)")
		}
		cl.AllowRebalance()
	}
	in.log.Info("stream: ingest stopped")
	return nil
}

func (in *ingest) rebalanced(kind string, m map[string][]int32) {
	for t, ps := range m {
		in.m.rebalanceCount.WithLabelValues(stageIngest, kind).Add(float64(len(ps)))
		if kind != "assigned" {
			for _, p := range ps {
				in.m.lag.DeleteLabelValues(t, partLabel(p))
			}
		}
		in.log.Info("stream: ingest partitions "+kind, "topic", t, "partitions", ps)
	}
}

// poll polls once. ok is false when the client closed or ctx is done: the
// caller stops (AllowRebalance is called, or leaving the group on Close
// would wait forever). Fetch errors are logged; the client retries them.
func poll(ctx context.Context, cl *kgo.Client, n int, log *slog.Logger, stage string) (fs kgo.Fetches, ok bool) {
	fs = cl.PollRecords(ctx, n)
	if fs.IsClientClosed() || ctx.Err() != nil {
		cl.AllowRebalance()
		return fs, false
	}
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			log.Warn("stream: "+stage+": fetch failed; the client retries", "topic", t, "partition", p, "err", err)
		}
	})
	return fs, true
}

// commitPoll commits a poll's offsets, if any, counting the outcome; a
// failure is logged with what it means (again) for the stage.
func commitPoll(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset, m *Metrics, stage string, log *slog.Logger, again string) {
	if len(offsets) == 0 {
		return
	}
	if err := commitSync(ctx, cl, offsets); err != nil {
		m.offsetCommits.WithLabelValues(stage, "error").Inc()
		log.Warn("stream: "+stage+": offset commit failed; "+again, "err", err)
		return
	}
	m.offsetCommits.WithLabelValues(stage, "ok").Inc()
}

// commitSync commits offsets and returns the first error, including the
// per-partition ones.
func commitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && rerr == nil {
					rerr = fmt.Errorf("topic %q partition %d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	return rerr
}
