package stream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// TestCommitterCommitsAtOnceWhenIdle checks that the interval spaces
// commits out rather than delaying each one: with an interval of an hour, a
// note after an idle spell is committed at once (before, it waited the whole
// hour), and flush commits a note made within the hour.
func TestCommitterCommitsAtOnceWhenIdle(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cm := newCommitter(cl, "t", time.Hour, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); cm.run(ctx, stop) }()
	defer func() { close(stop); <-done }()

	committedAt := func(want int64) func() error {
		return func() error {
			fo, err := adm.FetchOffsets(ctx, "g")
			if err != nil {
				return err
			}
			o, ok := fo.Lookup("t", 0)
			if !ok || o.At != want {
				return fmt.Errorf("committed offset %+v (found %v), want %d", o.Offset, ok, want)
			}
			return nil
		}
	}
	cm.note(0, kgo.EpochOffset{Epoch: -1, Offset: 5})
	testenv.Eventually(t, 30*time.Second, committedAt(5))

	// Within the hour: noted, committed by flush (run waits for the hour).
	cm.note(0, kgo.EpochOffset{Epoch: -1, Offset: 9})
	if err := cm.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := committedAt(9)(); err != nil {
		t.Fatal(err)
	}
}
