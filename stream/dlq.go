package stream

import (
	"bytes"
	"fmt"
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
	// HeaderSourceTimestamp is the timestamp of the record read, RFC 3339
	// in UTC with milliseconds: a dead letter is produced with its own
	// timestamp (now), so that retention and delivery timeouts count from
	// when it was written, not from when the event happened.
	HeaderSourceTimestamp = "source.timestamp"
	// HeaderOriginalSize is the size in bytes of a value cut to its first
	// DeadLetterHeadBytes (reason too_large).
	HeaderOriginalSize = "error.original_size"
)

// DeadLetterHeadBytes is how much of a too large value its dead letter
// keeps: enough to see what it was and who sent it.
const DeadLetterHeadBytes = 16 << 10

// sourceTimeLayout is the layout of HeaderSourceTimestamp.
const sourceTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// ContentTypeJSON is the content-type header of action records.
const ContentTypeJSON = "application/json"

var jsonHeader = []kgo.RecordHeader{{Key: "content-type", Value: []byte(ContentTypeJSON)}}

// deadLetter returns the dead-letter record for r. It has no timestamp of
// its own, so the producer stamps it now; r's is in HeaderSourceTimestamp.
func deadLetter(topic string, r *kgo.Record, reason event.Reason, msg string) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+6)
	hs = append(hs, r.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
	)
	if !r.Timestamp.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: HeaderSourceTimestamp, Value: r.Timestamp.UTC().AppendFormat(nil, sourceTimeLayout)})
	}
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: hs}
}

// tooLarge is the dead letter of a record whose value exceeds max.
func tooLarge(topic string, r *kgo.Record, max int) *kgo.Record {
	dl := deadLetter(topic, r, ReasonTooLarge, fmt.Sprintf(
		"the value is %d bytes, above the limit of %d (max_event_bytes); only its first %d bytes are kept here: send smaller events (drop large properties), or raise max_event_bytes and the topics' max.message.bytes",
		len(r.Value), max, min(len(r.Value), DeadLetterHeadBytes)))
	truncate(dl, r)
	return dl
}

// truncate cuts dl's value (from r) to its head, its key too, and records
// the original size.
func truncate(dl, r *kgo.Record) {
	if len(dl.Value) > DeadLetterHeadBytes {
		dl.Value = dl.Value[:DeadLetterHeadBytes:DeadLetterHeadBytes]
	}
	if len(dl.Key) > DeadLetterHeadBytes {
		dl.Key = dl.Key[:DeadLetterHeadBytes:DeadLetterHeadBytes]
	}
	dl.Headers = append(dl.Headers, kgo.RecordHeader{Key: HeaderOriginalSize, Value: strconv.AppendInt(nil, int64(len(r.Value)), 10)})
}

// header returns the value of r's last header k, or "".
func header(r *kgo.Record, k string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == k {
			return string(r.Headers[i].Value)
		}
	}
	return ""
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
		// Without a string of the value: this runs for every record.
		v := h.Value
		if i := bytes.IndexByte(v, ';'); i >= 0 {
			v = v[:i]
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(v, []byte(event.ContentTypeMsgpack)), bytes.EqualFold(v, []byte("application/x-msgpack")), bytes.EqualFold(v, []byte("application/vnd.msgpack")):
			return event.Msgpack
		case bytes.EqualFold(v, []byte(ContentTypeJSON)):
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
