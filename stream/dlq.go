package stream

import (
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
)

// Dead-letter record headers: why the record was refused and where it came
// from. The record keeps the original key, value, timestamp and headers.
const (
	HeaderReason          = "error.reason"     // an event.Reason, or "misrouted"
	HeaderMessage         = "error.message"    // what is wrong and what to fix
	HeaderSourceTopic     = "source.topic"     // where the record was read
	HeaderSourcePartition = "source.partition" // decimal
	HeaderSourceOffset    = "source.offset"    // decimal
)

// ContentTypeJSON is the content-type header of action records.
const ContentTypeJSON = "application/json"

var jsonHeader = []kgo.RecordHeader{{Key: "content-type", Value: []byte(ContentTypeJSON)}}

// deadLetter returns the dead-letter record for r.
func deadLetter(topic string, r *kgo.Record, reason event.Reason, msg string) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+5)
	hs = append(hs, r.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
	)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}
}

// badInput is the dead letter of a record that does not decode.
func badInput(topic string, r *kgo.Record, err error) *kgo.Record {
	reason := event.ReasonOf(err)
	if reason == "" {
		reason = event.ReasonMalformed
	}
	return deadLetter(topic, r, reason, err.Error())
}

// formatOf reads the record's content-type header: application/msgpack (or
// x-msgpack) and application/json pin the decoder; anything else (or none)
// lets it look at the first byte.
func formatOf(r *kgo.Record) event.Format {
	for i := range r.Headers {
		h := &r.Headers[i]
		if !strings.EqualFold(h.Key, "content-type") {
			continue
		}
		v := string(h.Value)
		if i := strings.IndexByte(v, ';'); i >= 0 {
			v = v[:i]
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case event.ContentTypeMsgpack, "application/x-msgpack", "application/vnd.msgpack":
			return event.Msgpack
		case ContentTypeJSON:
			return event.JSON
		}
	}
	return event.Auto
}

// recordTime is the record's timestamp in Unix nanoseconds, the fallback
// event time; 0 when the record has none.
func recordTime(r *kgo.Record) int64 {
	if r.Timestamp.IsZero() || r.Timestamp.UnixMilli() <= 0 {
		return 0
	}
	return r.Timestamp.UnixNano()
}
