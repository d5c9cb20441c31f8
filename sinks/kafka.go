package sinks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka produces each action to a topic: key = the contact (so one
// contact's actions stay in order on one partition), value = the action
// record's JSON, headers content-type: application/json and
// idempotency-key: the action's id (consumers deduplicate by it).
//
// The client is the caller's and stays open on Close. Write waits for the
// brokers' acknowledgement of every record of the batch, at most the sink's
// timeout. Non-retriable Kafka errors (a record too large, a topic the
// client may not write, an invalid topic) are permanent; the rest transient.
type Kafka struct {
	client  *kgo.Client
	topic   string
	timeout time.Duration
}

// NewKafka returns a sink producing to topic with client; timeout 0 means
// Defaults().Timeout.
func NewKafka(client *kgo.Client, topic string, timeout time.Duration) *Kafka {
	if timeout <= 0 {
		timeout = defaults.Timeout
	}
	return &Kafka{client: client, topic: topic, timeout: timeout}
}

// Write produces the batch and waits for its acknowledgement.
func (k *Kafka) Write(parent context.Context, batch []Action) error {
	ctx, cancel := context.WithTimeout(parent, k.timeout)
	defer cancel()
	recs := make([]*kgo.Record, len(batch))
	index := make(map[*kgo.Record]int, len(batch))
	for i := range batch {
		a := &batch[i]
		recs[i] = &kgo.Record{
			Topic: k.topic,
			Key:   []byte(a.Record.Contact),
			Value: a.JSON,
			Headers: []kgo.RecordHeader{
				{Key: "content-type", Value: []byte("application/json")},
				{Key: "idempotency-key", Value: []byte(a.Record.ID)},
			},
		}
		index[recs[i]] = i
	}
	results := k.client.ProduceSync(ctx, recs...) // in completion order, not input order
	if parent.Err() != nil && results.FirstErr() != nil {
		return context.Cause(parent)
	}
	var errs []error
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		if errs == nil {
			errs = make([]error, len(batch))
		}
		errs[index[r.Record]] = k.classify(r.Err)
	}
	return batchError(errs)
}

func (k *Kafka) classify(err error) error {
	var ke *kerr.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Transient(fmt.Errorf("kafka topic %s: no acknowledgement within the sink's timeout (%v): %w", k.topic, k.timeout, err))
	case errors.As(err, &ke) && !ke.Retriable:
		return Permanent(fmt.Errorf("kafka topic %s: %w", k.topic, err))
	default:
		return Transient(fmt.Errorf("kafka topic %s: %w", k.topic, err))
	}
}

// Close does nothing: the client is the caller's.
func (k *Kafka) Close(context.Context) error { return nil }

// Dead-letter record headers, the same as the events' dead letters of
// package stream.
const (
	HeaderReason          = "error.reason"     // a Reason… constant: rejected, retries-exhausted, unknown-sink, invalid
	HeaderMessage         = "error.message"    // the reason's text: what failed, and what to check
	HeaderSourceTopic     = "source.topic"     // where the action was read (with a *kgo.Record Origin)
	HeaderSourcePartition = "source.partition" // decimal
	HeaderSourceOffset    = "source.offset"    // decimal
	HeaderSourceTimestamp = "source.timestamp" // the source record's timestamp, RFC 3339 UTC with milliseconds; the dead letter has its own (now)
)

// sourceTimeLayout is the layout of HeaderSourceTimestamp.
const sourceTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// KafkaDeadLetter returns an Options.DeadLetter that produces each
// dead-lettered action to topic (e.g. "actions.dlq") and waits for the
// acknowledgement: key = the contact, value = the action record's JSON, the
// headers of the record it was read from (when Action.Origin is the
// *kgo.Record) and the error.* and source.* headers above. The record is
// stamped when produced; the source record's time is in source.timestamp.
func KafkaDeadLetter(client *kgo.Client, topic string) func(ctx context.Context, a Action, reason error) error {
	return func(ctx context.Context, a Action, reason error) error {
		rec := &kgo.Record{Topic: topic, Key: []byte(a.Record.Contact), Value: a.JSON}
		// The dead letter gets its own timestamp (now, the producer's): the
		// source's may be older than the client's RecordDeliveryTimeout,
		// which franz-go counts from the record's timestamp, and then it
		// could never be produced (issue: an action that spent its
		// 10-minute retry budget crash-looped the process).
		if src, ok := a.Origin.(*kgo.Record); ok && src != nil {
			rec.Key = src.Key
			if rec.Value == nil {
				rec.Value = src.Value
			}
			rec.Headers = append(rec.Headers, src.Headers...)
			rec.Headers = append(rec.Headers,
				kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
				kgo.RecordHeader{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
				kgo.RecordHeader{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, src.Offset, 10)})
			if !src.Timestamp.IsZero() {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderSourceTimestamp, Value: src.Timestamp.UTC().AppendFormat(nil, sourceTimeLayout)})
			}
		}
		rec.Headers = append(rec.Headers,
			kgo.RecordHeader{Key: HeaderReason, Value: []byte(Reason(reason))},
			kgo.RecordHeader{Key: HeaderMessage, Value: []byte(reason.Error())})
		if err := client.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("sinks: dead letter to %s: %w", topic, err)
		}
		return nil
	}
}
