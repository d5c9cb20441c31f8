package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// sizedEvent returns a valid track event of contact whose JSON is exactly n
// bytes (a padding property of random letters fills it up, which the
// producer's compression cannot shrink much).
func sizedEvent(t testing.TB, contact string, n int) []byte {
	t.Helper()
	head := fmt.Sprintf(`{"type":"track","userId":%q,"event":"Padded","messageId":"m-%s-%d","timestamp":"2026-01-05T10:00:00Z","properties":{"pad":"`, contact, contact, n)
	tail := `"}}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("event of %d bytes is too small", n)
	}
	rnd := rand.New(rand.NewPCG(uint64(n), 1))
	padding := make([]byte, pad)
	for i := range padding {
		padding[i] = 'a' + byte(rnd.IntN(26))
	}
	b := []byte(head + string(padding) + tail)
	if _, err := event.Decode(b, event.JSON, 0); err != nil {
		t.Fatalf("sized event does not decode: %v", err)
	}
	return b
}

// bigProducer is a client whose batches take records of up to 2 MiB.
func bigProducer() kgo.Opt { return kgo.ProducerBatchMaxBytes(2 << 20) }

// notExited fails the test if the pipeline's Run has returned.
func (r *running) notExited(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("the pipeline stopped: %v", err)
	default:
	}
}

// TestEventSizeLimit (issue 10, item 1): a valid event of 1,000,019 bytes,
// above franz-go's default producer limit, is keyed and scored; one above
// MaxEventBytes (1.2 MB) goes to the DLQ with reason too_large, its head
// kept and its original size in a header, before anything is produced; and
// the pipeline keeps running. On the code before, the first record stopped
// the process (MESSAGE_TOO_LARGE from the producer, treated as fatal).
func TestEventSizeLimit(t *testing.T) {
	rs, err := rules.Parse("r.yaml", []byte("version: 1\ntriggers:\n  - id: any\n    when: windows.n >= 1\n    do: [a]\nwindows:\n  n: { match: 'type == \"track\"', over: 1d }\nactions:\n  a: { sink: log }\n"))
	if err != nil {
		t.Fatal(err)
	}
	addr := startKafka(t)
	cfg := testConfig(t, addr, newClock(traffic.DefaultStart))
	// The input topic is the user's: it takes records of several MiB.
	cfg.TopicConfigs = map[string]string{"max.message.bytes": strconv.Itoa(4 << 20)}
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	big := sizedEvent(t, "big", 1_000_019)
	huge := sizedEvent(t, "huge", 1_200_000)
	small := sizedEvent(t, "small", 300)
	produce(t, addr, []*kgo.Record{
		{Topic: "events", Key: []byte("k"), Value: big},
		{Topic: "events", Key: []byte("k"), Value: huge, Headers: []kgo.RecordHeader{{Key: "sender", Value: []byte("site-1")}}},
		{Topic: "events", Key: []byte("k"), Value: small},
	}, bigProducer())

	r := start(t, cfg, stream.Scoring{Rules: rs}, nil)
	keyed := map[string][]byte{}
	for _, r := range newConsumer(t, addr, "events.keyed").until(2, 20*time.Second) {
		keyed[string(r.Key)] = r.Value
	}
	if len(keyed) != 2 || !bytes.Equal(keyed["big"], big) || !bytes.Equal(keyed["small"], small) {
		t.Errorf("keyed records: %d bytes of big, %d of small; want %d and %d", len(keyed["big"]), len(keyed["small"]), len(big), len(small))
	}
	dl := newConsumer(t, addr, "events.dlq").until(1, 20*time.Second)[0]
	if reason := header(dl, stream.HeaderReason); reason != "too_large" {
		t.Errorf("dead letter reason %q, want too_large", reason)
	}
	if size := header(dl, stream.HeaderOriginalSize); size != "1200000" {
		t.Errorf("dead letter %s = %q, want 1200000", stream.HeaderOriginalSize, size)
	}
	if len(dl.Value) != stream.DeadLetterHeadBytes || !bytes.HasPrefix(huge, dl.Value) {
		t.Errorf("dead letter value: %d bytes, want the first %d of the record", len(dl.Value), stream.DeadLetterHeadBytes)
	}
	if header(dl, "sender") != "site-1" || header(dl, stream.HeaderSourceOffset) != "1" {
		t.Errorf("dead letter headers %v: want the record's own and its source", dl.Headers)
	}
	newConsumer(t, addr, "actions").until(2, 20*time.Second)
	r.notExited(t)
}

// TestProduceRefusalIsPerRecord (issue 10, item 1): a record Kafka refuses
// (here the keyed topic takes at most 100 kB, a stricter limit than the
// pipeline's) is dead-lettered with the refusal as its reason, and the
// records after it flow on; the process does not stop.
func TestProduceRefusalIsPerRecord(t *testing.T) {
	addr := startKafka(t)
	cfg := testConfig(t, addr, newClock(traffic.DefaultStart))
	adm := kadm.NewClient(client(t, addr))
	if _, err := adm.CreateTopic(context.Background(), 3, -1, map[string]*string{"max.message.bytes": kadm.StringPtr("100000")}, "events.keyed"); err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// Topics the pipeline creates take MaxEventBytes + 128 KiB, whatever the
	// broker's default (about 1 MiB).
	rc, err := adm.DescribeTopicConfigs(context.Background(), "events.dlq")
	if err != nil {
		t.Fatal(err)
	}
	var maxBytes string
	for _, c := range rc[0].Configs {
		if c.Key == "max.message.bytes" {
			maxBytes = c.MaybeValue()
		}
	}
	if want := strconv.Itoa(stream.DefaultMaxEventBytes + 128<<10); maxBytes != want {
		t.Errorf("events.dlq max.message.bytes %q, want %s", maxBytes, want)
	}
	mid := sizedEvent(t, "mid", 300_000)
	produce(t, addr, []*kgo.Record{
		{Topic: "events", Value: sizedEvent(t, "a", 300)},
		{Topic: "events", Value: mid},
		{Topic: "events", Value: sizedEvent(t, "b", 300)},
	}, bigProducer())
	r := start(t, cfg, stream.Scoring{Rules: loadRules(t, b2bRules)}, nil)
	dl := newConsumer(t, addr, "events.dlq").until(1, 20*time.Second)[0]
	if reason := header(dl, stream.HeaderReason); reason != "too_large" {
		t.Errorf("dead letter reason %q, want too_large", reason)
	}
	if msg := header(dl, stream.HeaderMessage); !strings.Contains(msg, "refused") || !strings.Contains(msg, "MESSAGE_TOO_LARGE") {
		t.Errorf("dead letter message %q: want Kafka's refusal", msg)
	}
	if header(dl, stream.HeaderOriginalSize) != "300000" || !bytes.HasPrefix(mid, dl.Value) {
		t.Errorf("dead letter: size header %q, %d bytes of value", header(dl, stream.HeaderOriginalSize), len(dl.Value))
	}
	keyed := newConsumer(t, addr, "events.keyed").until(2, 20*time.Second)
	if string(keyed[0].Key)+string(keyed[1].Key) != "ab" && string(keyed[0].Key)+string(keyed[1].Key) != "ba" {
		t.Errorf("keyed %q %q, want a and b", keyed[0].Key, keyed[1].Key)
	}
	waitCommitted(t, addr, "leadpulse-ingest", "events", 3)
	r.notExited(t)
}
