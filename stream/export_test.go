package stream

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
)

// CrashIngestMidTransaction does what the ingest stage does for one poll of
// up to n records — begin a transaction, produce the keyed records and wait
// for Kafka's acknowledgement — and then dies: the client is closed without
// ending the transaction, as a SIGKILL would leave it. It returns the
// number of keyed records Kafka acknowledged inside the open transaction.
func CrashIngestMidTransaction(ctx context.Context, cfg Config, n int) (int, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return 0, err
	}
	opts := append(cfg.clientOpts("ingest"),
		kgo.ConsumerGroup(cfg.ingestGroup()),
		kgo.ConsumeTopics(cfg.Topics.Events),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	tx, err := newIngestTxn(&cfg, opts)
	if err != nil {
		return 0, err
	}
	defer tx.cl.Close() // no End: the transaction stays open at the broker
	var out []*kgo.Record
	var ev event.Event
	for len(out) == 0 {
		fs := tx.cl.PollRecords(ctx, n)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if event.DecodeInto(&ev, r.Value, formatOf(r), recordTime(r)) == nil {
				out = append(out, &kgo.Record{Topic: cfg.Topics.Keyed, Key: []byte(ev.Contact()), Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp})
			}
		})
	}
	if err := tx.begin(len(out)); err != nil {
		return 0, err
	}
	if err := tx.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	return len(out), nil
}
