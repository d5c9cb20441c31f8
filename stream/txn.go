package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ingestTxn makes each ingest poll one Kafka transaction (unless
// Config.NoTransactions): the poll's keyed records and dead letters, and the
// input offsets, commit together or not at all (franz-go's
// GroupTransactSession, KIP-447). A crash anywhere in between leaves an
// open transaction that the broker aborts — at once when the process comes
// back with the same transactional id, else after TransactionTimeout — and
// the input is read again from the last committed offsets; consumers of the
// keyed topic read with read_committed and never see the aborted records.
type ingestTxn struct {
	cl   *kgo.Client
	sess *kgo.GroupTransactSession // nil with NoTransactions
	cfg  *Config
}

func newIngestTxn(cfg *Config, opts []kgo.Opt) (*ingestTxn, error) {
	if cfg.NoTransactions {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		return &ingestTxn{cl: cl, cfg: cfg}, nil
	}
	opts = append(opts,
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, err
	}
	return &ingestTxn{cl: sess.Client(), sess: sess, cfg: cfg}, nil
}

func (t *ingestTxn) id() string {
	if t.sess == nil {
		return "(none: no_transactions)"
	}
	return t.cfg.TransactionalID
}

// begin opens the poll's transaction, if the poll produces anything.
func (t *ingestTxn) begin(records int) error {
	if t.sess == nil || records == 0 {
		return nil
	}
	if err := t.sess.Begin(); err != nil {
		return fmt.Errorf("begin a transaction (transactional id %q): %w", t.cfg.TransactionalID, err)
	}
	return nil
}

// abort ends the open transaction without committing (a produce failed), so
// that nothing of the poll becomes visible; the error that caused it is the
// caller's to report.
func (t *ingestTxn) abort(ctx context.Context) {
	if t.sess == nil {
		return
	}
	_, _ = t.sess.End(ctx, kgo.TryAbort)
}

// end commits the poll's transaction: the produced records and the polled
// input offsets together. When the group rebalanced meanwhile, the session
// aborts instead and rewinds to the committed offsets, so the records are
// read and produced again by whoever owns them: not an error. A returned
// error is fatal for the stage (franz-go: none is retryable).
func (t *ingestTxn) end(ctx context.Context, records int, m *Metrics, log *slog.Logger) error {
	if records == 0 {
		return nil
	}
	committed, err := t.sess.End(ctx, kgo.TryCommit)
	switch {
	case err != nil:
		m.offsetCommits.WithLabelValues(stageIngest, "error").Inc()
		return fmt.Errorf("commit the transaction (transactional id %q): %w (nothing of it is visible; the input is read again on restart)", t.cfg.TransactionalID, t.explain(err))
	case !committed:
		m.offsetCommits.WithLabelValues(stageIngest, "aborted").Inc()
		log.Info("stream: ingest: transaction aborted by a rebalance; its input is read again by the partitions' owner")
	default:
		m.offsetCommits.WithLabelValues(stageIngest, "ok").Inc()
	}
	return nil
}

// explain adds the likely cause to an error that says this process was
// fenced: another one took the same transactional id.
func (t *ingestTxn) explain(err error) error {
	if t.sess != nil && (errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)) {
		return fmt.Errorf("%w: another process uses transactional id %q; give each process its own (kafka.transactional_id, LEADPULSE_KAFKA_TRANSACTIONAL_ID)", err, t.cfg.TransactionalID)
	}
	return err
}
