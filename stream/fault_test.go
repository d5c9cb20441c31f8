package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/stream"
	"github.com/leadpulse/leadpulse/traffic"
)

// garbage is one kind of bad record and the dead-letter reason it must get.
type garbage struct {
	reason event.Reason
	make   func(t *testing.T, i int) *kgo.Record
}

var garbageKinds = []garbage{
	{event.ReasonMalformed, func(_ *testing.T, i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, "GET /pricing HTTP/1.1 #%d", i)}
	}},
	{event.ReasonNoType, func(_ *testing.T, i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"userId":"g%d","timestamp":"2026-01-05T10:00:00Z"}`, i)}
	}},
	{event.ReasonUnknownType, func(_ *testing.T, i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"type":"click","userId":"g%d","timestamp":"2026-01-05T10:00:00Z"}`, i)}
	}},
	{event.ReasonNoContact, func(_ *testing.T, i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"type":"page","properties":{"path":"/p%d"},"timestamp":"2026-01-05T10:00:00Z"}`, i)}
	}},
	{event.ReasonBadTime, func(_ *testing.T, i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"type":"page","userId":"g%d","timestamp":"last tuesday"}`, i)}
	}},
	{stream.ReasonTooLarge, func(t *testing.T, i int) *kgo.Record {
		return &kgo.Record{Value: sizedEvent(t, "g"+strconv.Itoa(i), 1_200_000)}
	}},
	{event.ReasonBadUTF8, func(t *testing.T, i int) *kgo.Record {
		id := "g\xff" + strconv.Itoa(i)
		if i%2 == 0 { // msgpack
			b, err := msgpack.Marshal(map[string]any{"type": "page", "userId": id, "timestamp": "2026-01-05T10:00:00Z"})
			if err != nil {
				t.Fatal(err)
			}
			return &kgo.Record{Value: b, Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(event.ContentTypeMsgpack)}}}
		}
		return &kgo.Record{Value: []byte(`{"type":"page","userId":"` + id + `","timestamp":"2026-01-05T10:00:00Z"}`)}
	}},
}

// TestFaultInjection (issue 10, "done when"): good generated traffic with 5%
// garbage of seven kinds mixed in — not JSON, no type, unknown type, no
// contact, bad time, 1.2 MB records, invalid UTF-8 in ids (JSON and
// msgpack) — goes through the live pipeline over kfake. Every bad record is
// on the dead-letter topic with its reason, the good ones produce exactly
// the actions replay prints for them, and the pipeline never stops.
func TestFaultInjection(t *testing.T) {
	rs := loadRules(t, shopRules)
	g := traffic.New(trafficCfg)
	rnd := rand.New(rand.NewPCG(10, 10))
	const good = 2000
	var (
		recs    []*kgo.Record
		lines   [][]byte
		wantBad = map[event.Reason]int{}
		last    time.Time
	)
	for i := 0; i < good; {
		if rnd.IntN(100) < 5 {
			k := garbageKinds[len(recs)%len(garbageKinds)]
			r := k.make(t, len(recs))
			r.Topic, r.Key = "events", []byte("garbage")
			recs = append(recs, r)
			wantBad[k.reason]++
			continue
		}
		e := g.Next()
		r, js := eventRecord(t, e, i%5 == 2)
		recs = append(recs, r)
		lines = append(lines, js)
		last = e.Timestamp()
		i++
	}
	nbad := len(recs) - good
	for _, k := range garbageKinds {
		if wantBad[k.reason] == 0 {
			t.Fatalf("no garbage of kind %s; the mix needs more records", k.reason)
		}
	}
	want, replayBad := replay(t, rs, lines)
	if len(replayBad) != 0 || len(want) < 50 {
		t.Fatalf("replay of the good records: %d actions, bad %v", len(want), replayBad)
	}

	addr := startKafka(t)
	adm := kadm.NewClient(client(t, addr))
	// The input topic is the user's, and takes the 1.2 MB records.
	if _, err := adm.CreateTopic(context.Background(), 6, -1, map[string]*string{"max.message.bytes": kadm.StringPtr(strconv.Itoa(4 << 20))}, "events"); err != nil {
		t.Fatal(err)
	}
	clock := newClock(traffic.DefaultStart.Add(-time.Hour)) // before every due time, as replay's clock
	cfg := testConfig(t, addr, clock)
	if err := stream.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	produce(t, addr, recs, bigProducer())
	r := start(t, cfg, stream.Scoring{Rules: rs}, nil)

	waitEndOffsets(t, addr, "events.keyed", good, 60*time.Second)
	dlq := newConsumer(t, addr, "events.dlq")
	dlq.until(nbad, 60*time.Second)
	clock.set(last.Add(500 * time.Millisecond)) // replay ends with the clock at the last event; + TimerDelay
	actions := newConsumer(t, addr, "actions")
	actions.until(len(want), 60*time.Second)
	actions.poll(300 * time.Millisecond) // nothing more may come
	sameActions(t, decodeActions(t, actions.recs), want)

	gotBad := map[event.Reason]int{}
	for _, d := range dlq.recs {
		reason := event.Reason(header(d, stream.HeaderReason))
		gotBad[reason]++
		if header(d, stream.HeaderSourceTopic) != "events" || header(d, stream.HeaderMessage) == "" || header(d, stream.HeaderSourceTimestamp) == "" {
			t.Errorf("dead letter %s without its source or message: %v", reason, d.Headers)
		}
		if reason == stream.ReasonTooLarge && (header(d, stream.HeaderOriginalSize) != "1200000" || len(d.Value) != stream.DeadLetterHeadBytes) {
			t.Errorf("too_large dead letter: %s=%q, %d bytes of value", stream.HeaderOriginalSize, header(d, stream.HeaderOriginalSize), len(d.Value))
		}
	}
	for _, k := range garbageKinds {
		if gotBad[k.reason] != wantBad[k.reason] {
			t.Errorf("dead letters %s: %d, want %d", k.reason, gotBad[k.reason], wantBad[k.reason])
		}
	}
	if len(gotBad) != len(garbageKinds) {
		t.Errorf("dead-letter reasons %v, want only the seven kinds", gotBad)
	}
	t.Logf("%d good events (%d actions) and %d bad records (%v): all accounted for", good, len(want), nbad, gotBad)
	waitCommitted(t, addr, "leadpulse-ingest", "events", int64(len(recs)))
	r.notExited(t)
	r.shutdown(t) // Run returns nil after a clean drain, or the test fails
}
