package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

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

// keyOnly is what ingest decodes of an event: its ids, types and times,
// and none of the keys of properties, traits and context, which are still
// checked, so that ingest refuses what decoding in full refuses.
var keyOnly = event.Select{Properties: event.OnlyKeys(), Traits: event.OnlyKeys(), Context: event.OnlyKeys()}

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
	if !ping(ctx, cl, in.log, stageIngest, cfg.Brokers) {
		return nil
	}
	ready()
	in.log.Info("stream: ingest running", "topic", cfg.Topics.Events, "group", cfg.ingestGroup(), "to", cfg.Topics.Keyed, "transactional_id", tx.id())

	var (
		out     []*kgo.Record
		src     = map[*kgo.Record]*kgo.Record{} // output record → the input record it came from
		ev      event.Event
		commits = map[string]map[int32]kgo.EpochOffset{}
	)
	for {
		fs, ok := poll(ctx, cl, cfg.PollRecords, cfg.health, in.log, stageIngest)
		if !ok {
			break
		}
		out = out[:0]
		clear(src)
		clear(commits)
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			for _, r := range p.Records {
				var o *kgo.Record
				if len(r.Value) > cfg.MaxEventBytes {
					in.m.bad(stageIngest, ReasonTooLarge)
					o = tooLarge(cfg.Topics.DLQ, r, cfg.MaxEventBytes)
				} else if err := event.DecodeIntoSelect(&ev, r.Value, formatOf(r), recordTime(r), keyOnly); err != nil {
					in.m.bad(stageIngest, event.ReasonOf(err))
					o = badInput(cfg.Topics.DLQ, r, err)
				} else {
					o = &kgo.Record{
						Topic:     cfg.Topics.Keyed,
						Key:       []byte(contactKey(in.rules(), &ev)),
						Value:     r.Value,
						Headers:   r.Headers,
						Timestamp: r.Timestamp,
					}
				}
				out = append(out, o)
				src[o] = r
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
		if len(out) > 0 && !in.produce(work, cl, out, src) {
			// Shutting down (or the drain timed out) with output
			// unacknowledged: the offsets are not committed, the records
			// are read again on restart.
			tx.abort(work)
			cl.AllowRebalance()
			in.log.Warn("stream: ingest: stopped with records not produced; they are read again on restart")
			break
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

// produce produces one poll's output and waits until every record is
// acknowledged or settled otherwise, so that the poll's offsets can be
// committed; false when ctx ended first. One record Kafka refuses never
// stops the stage (issue: a 1 MB record crash-looped the process): a
// refused keyed record goes to the DLQ with the refusal as its reason
// (too_large or produce_failed), a refused dead letter is sent again with its
// value cut, and one refused even so is logged and counted. Failures that say
// the cluster is unreachable or busy (retriable errors, timeouts) are
// retried with backoff, and /readyz reports them meanwhile.
//
// A broker refuses a batch as a whole, so each refused record is sent
// again alone before it counts as refused; a record that was only in the
// wrong batch may then land after a later record of its contact (only
// where a topic takes less than MaxRecordBytes).
func (in *ingest) produce(ctx context.Context, cl *kgo.Client, out []*kgo.Record, src map[*kgo.Record]*kgo.Record) bool {
	h := in.cfg.health
	wait := 200 * time.Millisecond
	for attempt := 1; len(out) > 0; attempt++ {
		res := cl.ProduceSync(ctx, out...)
		if ctx.Err() != nil {
			return false
		}
		var retry, again, refused []*kgo.Record
		var lastErr error
		for _, r := range res {
			if r.Err == nil {
				continue
			}
			if retriableProduce(r.Err) {
				in.m.produceErrors.WithLabelValues(r.Record.Topic).Inc()
				retry, lastErr = append(retry, r.Record), r.Err
				continue
			}
			refused = append(refused, r.Record)
		}
		// A broker refuses a whole batch for one record in it: send each
		// refused record again alone, so that only the culprit is
		// dead-lettered.
		for _, rec := range refused {
			err := cl.ProduceSync(ctx, rec).FirstErr()
			switch {
			case err == nil:
				continue
			case ctx.Err() != nil:
				return false
			case retriableProduce(err):
				retry, lastErr = append(retry, rec), err
			default:
				if dl := in.refused(rec, src[rec], err); dl != nil {
					again = append(again, dl)
					src[dl] = src[rec]
				}
			}
			in.m.produceErrors.WithLabelValues(rec.Topic).Inc()
		}
		if len(retry) == 0 {
			h.stage(stageIngest, nil)
			out, wait, attempt = again, 200*time.Millisecond, 0
			continue
		}
		h.stage(stageIngest, fmt.Errorf("producing to %s: %w", retry[0].Topic, lastErr))
		if attempt == 1 || attempt%10 == 0 {
			in.log.Warn("stream: ingest: Kafka does not take records; retrying (the input is not committed meanwhile)",
				"records", len(retry), "attempt", attempt, "wait", wait, "err", lastErr)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
		out = append(retry, again...)
	}
	return true
}

// refused returns what to produce instead of rec, which Kafka refused with
// err (not retriable), read from the input record from; nil when there is
// nothing left to try (then it is logged and counted).
func (in *ingest) refused(rec, from *kgo.Record, err error) *kgo.Record {
	dlq := in.cfg.Topics.DLQ
	reason := ReasonProduceFailed
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		reason = ReasonTooLarge
	}
	msg := fmt.Sprintf("Kafka refused the record for %s: %v", rec.Topic, err)
	if from == nil {
		from = rec
	}
	switch {
	case rec.Topic != dlq:
		in.m.bad(stageIngest, reason)
		dl := deadLetter(dlq, from, reason, msg)
		if reason == ReasonTooLarge {
			truncate(dl, from)
		}
		return dl
	case header(rec, HeaderOriginalSize) == "":
		// The dead letter itself was refused: send its head only.
		dl := deadLetter(dlq, from, event.Reason(header(rec, HeaderReason)), header(rec, HeaderMessage)+"; the dead letter was refused too: "+msg)
		truncate(dl, from)
		return dl
	}
	in.m.deadLetterLost.Inc()
	in.log.Error("stream: ingest: Kafka refused a record and its dead letter; it is skipped",
		"topic", from.Topic, "partition", from.Partition, "offset", from.Offset, "err", err)
	return nil
}

// retriableProduce reports whether a produce error is the cluster's (busy,
// unreachable, a leader moving) rather than the record's.
func retriableProduce(err error) bool {
	if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, kgo.ErrRecordRetries) || errors.Is(err, kerr.UnknownTopicOrPartition) {
		return true
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	var ne net.Error
	return errors.As(err, &ne)
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
func poll(ctx context.Context, cl *kgo.Client, n int, h *health, log *slog.Logger, stage string) (fs kgo.Fetches, ok bool) {
	fs = cl.PollRecords(ctx, n)
	if fs.IsClientClosed() || ctx.Err() != nil {
		cl.AllowRebalance()
		return fs, false
	}
	var failed error
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			failed = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
			log.Warn("stream: "+stage+": fetch failed; the client retries", "topic", t, "partition", p, "err", err)
		}
	})
	h.fetched(failed)
	return fs, true
}

// ping waits until a broker answers cl, retrying with backoff (up to 30s
// apart) and logging; false when ctx ended first.
func ping(ctx context.Context, cl *kgo.Client, log *slog.Logger, stage string, brokers []string) bool {
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := cl.Ping(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("stream: "+stage+": no broker answers yet; retrying (check the brokers and the network)", "brokers", brokers, "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
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
