package stream

import (
	"bytes"
	"context"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/state"
)

// A held record must survive its batch going back to the pool: hold copies
// it out, and the copy keeps its bytes when the batch's memory is zeroed.
func TestHoldDetachesPooledRecord(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		headers []kgo.RecordHeader
	}{
		{"no key, no headers", nil, nil},
		{"key", []byte("user-1"), nil},
		{"key and headers", []byte("user-1"), []kgo.RecordHeader{
			{Key: HeaderControl, Value: []byte(ControlForward)}, {Key: HeaderFrom, Value: []byte("2:17")}, {Key: "empty"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One buffer for key, value and header values, as a fetched
			// batch's decompressed bytes are.
			var batch []byte
			batch = append(batch, tt.key...)
			value := []byte(`{"type":"track","event":"Signed Up","userId":"user-1"}`)
			batch = append(batch, value...)
			r := &kgo.Record{Topic: "t", Partition: 2, Offset: 41, LeaderEpoch: 3, Context: context.Background()}
			if tt.key != nil {
				r.Key = batch[:len(tt.key)]
			}
			r.Value = batch[len(tt.key):]
			for _, h := range tt.headers {
				at := len(batch)
				batch = append(batch, h.Value...)
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: batch[at:]})
			}
			want := *r
			want.Key, want.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
			want.Headers = nil
			for _, h := range r.Headers {
				want.Headers = append(want.Headers, kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)})
			}

			w := &worker{}
			e := event.Event{Type: "track", Event: "Signed Up", UserID: "user-1"}
			h := w.hold(r, &e)
			clear(batch) // the pool zeroes the batch once every record is back

			if h.r == r {
				t.Fatal("hold kept the pooled record itself")
			}
			if len(w.used) != 1 || w.used[0] != r {
				t.Errorf("used = %v; want the pooled record, to recycle", w.used)
			}
			if h.r.Context != nil {
				t.Error("the copy keeps the pool's context: its Recycle would give the batch back twice")
			}
			if !bytes.Equal(h.r.Key, want.Key) || (want.Key == nil) != (h.r.Key == nil) || !bytes.Equal(h.r.Value, want.Value) {
				t.Errorf("copy key %q value %q; want %q %q", h.r.Key, h.r.Value, want.Key, want.Value)
			}
			if len(h.r.Headers) != len(want.Headers) {
				t.Fatalf("copy headers %v; want %v", h.r.Headers, want.Headers)
			}
			for i, hd := range h.r.Headers {
				if hd.Key != want.Headers[i].Key || !bytes.Equal(hd.Value, want.Headers[i].Value) {
					t.Errorf("header %d = %s=%q; want %s=%q", i, hd.Key, hd.Value, want.Headers[i].Key, want.Headers[i].Value)
				}
			}
			if h.r.Offset != 41 || h.r.Partition != 2 || h.r.LeaderEpoch != 3 || h.r.Topic != "t" {
				t.Errorf("copy position %s/%d@%d epoch %d; want t/2@41 epoch 3", h.r.Topic, h.r.Partition, h.r.Offset, h.r.LeaderEpoch)
			}
			if h.e == nil || h.e.Event != "Signed Up" || e.Event != "" {
				t.Errorf("held event %+v, left %+v; want the event taken over", h.e, e)
			}
			// Appending to a copied field must not run into the next one.
			_ = append(h.r.Key, 'x')
			if !bytes.Equal(h.r.Value, want.Value) {
				t.Errorf("appending to the key changed the value: %q", h.r.Value)
			}
		})
	}
}

func TestFetchPoolSizes(t *testing.T) {
	var p fetchPool
	for _, n := range []int{0, 1, 100, 1 << 10, 1<<10 + 1, 300_000} {
		src := s2.EncodeSnappy(nil, make([]byte, n))
		b := p.GetDecompressBytes(src, kgo.CodecSnappy)
		if cap(b) < n || len(b) != 0 {
			t.Errorf("GetDecompressBytes for %d bytes: len %d cap %d; want len 0, cap ≥ %d", n, len(b), cap(b), n)
		}
		p.PutDecompressBytes(b[:cap(b)])
		if again := p.GetDecompressBytes(src, kgo.CodecSnappy); cap(again) < n {
			t.Errorf("after a put, GetDecompressBytes for %d bytes: cap %d", n, cap(again))
		}
	}
	if b := p.GetDecompressBytes([]byte("not snappy"), kgo.CodecZstd); b != nil {
		t.Errorf("zstd: got a buffer of cap %d; want nil (the codec sizes it)", cap(b))
	}
	for _, n := range []int{1, 36, 64, 65, 5000} {
		rs := p.GetRecords(n)
		if len(rs) != n {
			t.Errorf("GetRecords(%d): len %d", n, len(rs))
		}
		p.PutRecords(rs)
		if again := p.GetRecords(n); len(again) != n {
			t.Errorf("after a put, GetRecords(%d): len %d", n, len(again))
		}
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in     string
		bits   int
		want   int64
		wantOK bool
	}{
		{"0", 64, 0, true},
		{"17", 32, 17, true},
		{"-1", 64, -1, true},
		{"+5", 64, 5, true},
		{"9223372036854775807", 64, 9223372036854775807, true},
		{"9223372036854775808", 64, 0, false},
		{"-9223372036854775808", 64, -9223372036854775808, true},
		{"-9223372036854775809", 64, 0, false},
		{"99999999999999999999", 64, 0, false},
		{"2147483647", 32, 2147483647, true},
		{"2147483648", 32, 0, false},
		{"-2147483648", 32, -2147483648, true},
		{"", 64, 0, false},
		{"-", 64, 0, false},
		{"1a", 64, 0, false},
		{" 1", 64, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInt([]byte(tt.in), tt.bits)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseInt(%q, %d) = %d, %v; want %d, %v", tt.in, tt.bits, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestPositionText(t *testing.T) {
	for _, p := range []state.Position{{}, {Partition: 5, Offset: 123456789}, {Partition: 2147483647, Offset: 9223372036854775807}} {
		b := appendPos(nil, p)
		if len(b) > posBytes {
			t.Errorf("appendPos(%v) wrote %d bytes; posBytes is %d", p, len(b), posBytes)
		}
		got, err := parsePos(b)
		if err != nil || got != p {
			t.Errorf("parsePos(%q) = %v, %v; want %v", b, got, err, p)
		}
	}
	for _, bad := range []string{"", "1", "1:", ":1", "a:1", "1:b", "2147483648:1"} {
		if _, err := parsePos([]byte(bad)); err == nil {
			t.Errorf("parsePos(%q): no error", bad)
		}
	}
}

// Output made from a pooled record (dead letters, forwards) must keep its
// bytes when the record goes back to the pool, which now happens once its
// batch is applied, before Kafka acknowledges the output (worker.recycle):
// the output owns a copy (own).
func TestOutputOwnsFetchedBytes(t *testing.T) {
	tests := []struct {
		name string
		make func(w *worker, r *kgo.Record) *kgo.Record
	}{
		{"dead letter", func(w *worker, r *kgo.Record) *kgo.Record {
			w.deadLetter(deadLetter("dlq", r, ReasonControl, "a bad control record"))
			return w.out[len(w.out)-1]
		}},
		{"too large", func(w *worker, r *kgo.Record) *kgo.Record {
			w.deadLetter(tooLarge("dlq", r, 8))
			return w.out[len(w.out)-1]
		}},
		{"forward", func(w *worker, r *kgo.Record) *kgo.Record {
			return w.forward(r, "user-1", "anon-1", state.Position{Partition: 1, Offset: 9})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batch []byte
			batch = append(batch, "anon-1"...)
			batch = append(batch, `{"type":"page","anonymousId":"anon-1"}`...)
			batch = append(batch, "application/json"...)
			r := &kgo.Record{Topic: "t", Partition: 1, Offset: 9, Context: context.Background(),
				Key: batch[:6], Value: batch[6 : len(batch)-16],
				Headers: []kgo.RecordHeader{{Key: "content-type", Value: batch[len(batch)-16:]}}}

			w := &worker{}
			out := tt.make(w, r)
			want := *out
			want.Key, want.Value = bytes.Clone(out.Key), bytes.Clone(out.Value)
			want.Headers = nil
			for _, h := range out.Headers {
				want.Headers = append(want.Headers, kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)})
			}
			clear(batch) // the pool zeroes the batch once every record is back

			if !bytes.Equal(out.Key, want.Key) || !bytes.Equal(out.Value, want.Value) {
				t.Errorf("output key %q value %q after the batch was zeroed; want %q %q", out.Key, out.Value, want.Key, want.Value)
			}
			if len(out.Headers) != len(want.Headers) {
				t.Fatalf("output headers %v; want %v", out.Headers, want.Headers)
			}
			for i, h := range out.Headers {
				if h.Key != want.Headers[i].Key || !bytes.Equal(h.Value, want.Headers[i].Value) {
					t.Errorf("header %d = %s=%q after the batch was zeroed; want %s=%q", i, h.Key, h.Value, want.Headers[i].Key, want.Headers[i].Value)
				}
			}
			if len(out.Value) == 0 || len(out.Headers) == 0 {
				t.Fatal("the output took no bytes of the record: the test checks nothing")
			}
		})
	}
}
