package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/traffic"
)

// loader produces the generated clickstream to the events topic.
//
// Every event carries its produce time as its own `timestamp`: the
// generator's JSON is re-stamped with the time the event is sent (preload:
// the wall clock at generation; open loop: the scheduled send time). The
// scoring stage stamps each action with the `at` of the event that caused
// it, so the action's arrival on the actions topic minus its `at` is the
// event-to-action latency, with no table of sent events to match against.
// Event times therefore follow the wall clock, as in production, and live
// timers behave as they would there.
//
// One generator serves the whole run, so that the latency phases continue
// the contacts' journeys (warm state) with fresh messageIds.
type loader struct {
	gen   *traffic.Generator
	cl    *kgo.Client
	topic string
	keyed bool
	rng   *rand.Rand

	raw []byte // the generator's output

	// A sample of contact ids, for the Redis ceiling's blobs. Written by
	// the producing goroutine only.
	sample   []string
	sampleAt map[string]struct{}

	// late is the open loop's send lateness (µs): an event's due time →
	// its record handed to the producer. Written by openLoop's goroutine,
	// read after it returns.
	late *hdrhistogram.Histogram

	produced atomic.Int64 // records handed to the client
	acked    atomic.Int64 // records acknowledged
	failed   atomic.Int64 // records Kafka refused
	errMu    sync.Mutex
	firstErr error
}

const sampleContacts = 1000

func newLoader(cfg *Config, cl *kgo.Client, topic string) *loader {
	g := traffic.New(traffic.Config{
		Contacts:       cfg.Contacts,
		Seed:           cfg.Seed,
		Zipf:           cfg.Zipf,
		AnonymousShare: cfg.AnonymousShare,
		Mix:            cfg.Mix,
		Lifetime:       max(cfg.Lifetime, 0), // negative: no turnover
		// A few identifies from a device another visitor identified on
		// (identity conflicts).
		SharedDevices: 0.02,
		// Event times are replaced by send times; the step only decides
		// the generator's own resolution (ns below 10ms).
		Step: time.Millisecond,
	})
	return &loader{
		gen: g, cl: cl, topic: topic, keyed: !cfg.Unkeyed,
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		raw:      make([]byte, 0, 1024),
		sampleAt: make(map[string]struct{}, sampleContacts),
	}
}

var (
	tsField     = []byte(`,"timestamp":"`)
	userField   = []byte(`"userId":"`)
	anonField   = []byte(`"anonymousId":"`)
	msgIDField  = []byte(`,"messageId":"`)
	errNoStamp  = errors.New("bench: generated event without a timestamp field")
	errNoContac = errors.New("bench: generated event without userId or anonymousId")
)

// next generates the next event stamped with t (Unix ns) and returns its
// record: value (a new slice the record owns) and, when keyed, the contact
// as key.
func (l *loader) next(t int64) (*kgo.Record, error) {
	l.raw = l.gen.AppendJSON(l.raw[:0])
	b := l.raw
	i := bytes.Index(b, tsField)
	if i < 0 {
		return nil, errNoStamp
	}
	i += len(tsField)
	j := bytes.IndexByte(b[i:], '"')
	if j < 0 {
		return nil, errNoStamp
	}
	j += i
	v := make([]byte, 0, len(b)+8)
	v = append(v, b[:i]...)
	v = time.Unix(0, t).UTC().AppendFormat(v, time.RFC3339Nano)
	v = append(v, b[j:]...)

	r := &kgo.Record{Topic: l.topic, Value: v}
	contact, err := contactOf(v)
	if err != nil {
		return nil, err
	}
	if l.keyed {
		r.Key = contact
	}
	if len(l.sample) < sampleContacts {
		if _, ok := l.sampleAt[string(contact)]; !ok {
			s := string(contact)
			l.sampleAt[s] = struct{}{}
			l.sample = append(l.sample, s)
		}
	}
	return r, nil
}

// contactOf returns the contact of a generated event (userId, else
// anonymousId), read from the fields before messageId, where the generator
// writes them. The generator writes no escapes in ids.
func contactOf(v []byte) ([]byte, error) {
	head := v
	if k := bytes.Index(v, msgIDField); k >= 0 {
		head = v[:k]
	}
	for _, f := range [][]byte{userField, anonField} {
		if k := bytes.Index(head, f); k >= 0 {
			k += len(f)
			if e := bytes.IndexByte(head[k:], '"'); e >= 0 {
				return head[k : k+e], nil
			}
		}
	}
	return nil, errNoContac
}

func (l *loader) produce(ctx context.Context, r *kgo.Record) {
	l.produced.Add(1)
	l.cl.Produce(ctx, r, l.done)
}

func (l *loader) done(_ *kgo.Record, err error) {
	if err == nil {
		l.acked.Add(1)
		return
	}
	l.failed.Add(1)
	l.errMu.Lock()
	if l.firstErr == nil {
		l.firstErr = err
	}
	l.errMu.Unlock()
}

func (l *loader) err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.firstErr == nil {
		return nil
	}
	return fmt.Errorf("bench: %d events not produced to %q: %w", l.failed.Load(), l.topic, l.firstErr)
}

// preload produces n events as fast as the client takes them, each stamped
// with the wall clock, and waits for their acknowledgement.
func (l *loader) preload(ctx context.Context, n int) error {
	for range n {
		r, err := l.next(time.Now().UnixNano())
		if err != nil {
			return err
		}
		l.produce(ctx, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := l.cl.Flush(ctx); err != nil {
		return err
	}
	return l.err()
}

// openLoop produces events at rate events/s for d, as a Poisson process
// (exponential gaps), open loop: each event is stamped with its scheduled
// send time, and an event that could not be sent on time still carries the
// time it was due, so a stalled producer or client shows in the latency
// instead of hiding it (no coordinated omission). It returns the stamps of
// the first and last event and how late the sending got at worst.
//
// With enough set, the phase goes on after d, a second at a time, until
// enough reports true or maxD has passed.
func (l *loader) openLoop(ctx context.Context, rate float64, d, maxD time.Duration, enough func() bool) (first, last int64, sent int, behind time.Duration, err error) {
	mean := float64(time.Second) / rate
	start := time.Now().Add(5 * time.Millisecond)
	end := start.Add(d).UnixNano()
	limit := start.Add(max(d, maxD)).UnixNano()
	next := start.UnixNano()
	first, last = next, next
	sl := newSleeper() // not a bare time.Timer: see sleeper
	defer sl.close()
	l.late = newHist()
	// r is the record due at next, made before its time comes: the stamp
	// is the due time, known in advance, so generating an event (about
	// 6 µs) no longer sits between its due time and its send, where the
	// latency it measures would count it.
	r, err := l.next(next)
	if err != nil {
		return first, last, sent, behind, err
	}
	for {
		if next >= end {
			if enough == nil || end >= limit || enough() {
				break
			}
			end = min(end+int64(time.Second), limit)
		}
		if err := sl.until(ctx, next); err != nil {
			return first, last, sent, behind, err
		}
		now := time.Now().UnixNano()
		behind = max(behind, time.Duration(now-next))
		for next <= now && next < end {
			l.produce(ctx, r)
			_ = l.late.RecordValue(max((time.Now().UnixNano()-next)/int64(time.Microsecond), histLowest))
			last = next
			sent++
			next += max(int64(l.rng.ExpFloat64()*mean), 1)
			if r, err = l.next(next); err != nil {
				return first, last, sent, behind, err
			}
		}
	}
	if err := l.cl.Flush(ctx); err != nil {
		return first, last, sent, behind, err
	}
	return first, last, sent, behind, l.err()
}
