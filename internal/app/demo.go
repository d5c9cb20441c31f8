package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/traffic"
)

// demoContacts is the size of the demo site's audience: small enough that
// journeys progress (first alerts within seconds at 100 events/s), large
// enough to keep alerts coming for an hour.
const demoContacts = 1000

// RunDemo produces generated B2B traffic to topic at rate events/s until ctx
// is done. Event times are wall-clock times: each event is produced when
// the clock reaches its generated timestamp (a Poisson process of the rate).
func RunDemo(ctx context.Context, addr, topic string, rate float64, log *slog.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("leadpulse-demo"), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = cl.Flush(fctx)
		cl.Close()
	}()
	now := time.Now()
	g := traffic.New(traffic.Config{
		Contacts: demoContacts,
		Seed:     now.UnixNano(), // fresh messageIds on every run (Redis remembers the old ones)
		Start:    now,
		Step:     time.Duration(float64(time.Second) / rate),
	})
	var (
		failed    int
		failMu    sync.Mutex
		lastWarn  time.Time
		timer     = time.NewTimer(0)
		nextEvent = g.Next()
	)
	defer timer.Stop()
	for {
		if wait := time.Until(nextEvent.Timestamp()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return nil
		}
		b, err := event.EncodeJSON(nextEvent)
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(nextEvent.Contact()), Value: b}, func(_ *kgo.Record, err error) {
			if err == nil || errors.Is(err, context.Canceled) {
				return
			}
			failMu.Lock()
			defer failMu.Unlock()
			failed++
			if time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				log.Warn("leadpulse dev: demo events not produced", "failed", failed, "err", err)
			}
		})
		nextEvent = g.Next()
	}
}
