package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/sinks"
)

// Dispatch is the last stage of SPEC §5: its own consumer group
// (Config.Group + "-dispatch") on the actions topic, handing each action to
// a sinks.Dispatcher, which routes it to the sink the rules named, retries,
// deduplicates by action id and dead-letters what cannot be delivered.
// Being a separate group with its own client, a slow or failing sink holds
// back only this stage: scoring keeps producing actions, which wait in
// Kafka.
//
// Per poll, the actions of one contact are dispatched one after the other,
// in order, and different contacts concurrently (at most MaxInFlight at
// once); the poll's offsets are committed only when every action of the
// poll is settled (delivered, already delivered, or dead-lettered). A
// crash before the commit reads the actions again, and the dispatcher's
// dedupe store keeps them from being delivered twice.
type Dispatch struct {
	cfg   Config
	d     *sinks.Dispatcher
	m     *Metrics
	ready atomic.Bool

	// MaxInFlight bounds the contacts dispatched at once. default: 256
	MaxInFlight int
}

// NewDispatch returns the dispatch stage over d; Run starts it. m may be
// nil. The caller owns d and closes it after Run returns.
func NewDispatch(cfg Config, d *sinks.Dispatcher, m *Metrics) (*Dispatch, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, configError("no sinks dispatcher: NewDispatch needs one")
	}
	if m == nil {
		if m, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	cfg.health = newHealth(cfg.Brokers, cfg.UnreachableAfter, cfg.Logger)
	return &Dispatch{cfg: cfg, d: d, m: m, MaxInFlight: 256}, nil
}

// DispatchGroup is the consumer group of the dispatch stage.
func (c *Config) DispatchGroup() string { return c.Group + "-dispatch" }

// Ready reports whether the stage reached a broker and is consuming.
func (s *Dispatch) Ready() bool { return s.ready.Load() }

// Run consumes the actions topic until ctx is done, then settles what it
// has polled (within Config.DrainTimeout) and leaves the group.
func (s *Dispatch) Run(ctx context.Context) error {
	cfg := &s.cfg
	log := cfg.Logger
	work, stopWork := drainContext(ctx, cfg.DrainTimeout)
	defer stopWork()
	cl, err := kgo.NewClient(append(cfg.clientOpts("dispatch"),
		kgo.ConsumerGroup(cfg.DispatchGroup()),
		kgo.ConsumeTopics(cfg.Topics.Actions),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return fmt.Errorf("stream: dispatch: kafka client: %w", err)
	}
	defer cl.Close()
	if !ping(ctx, cl, log, stageDispatch, cfg.Brokers) {
		return nil
	}
	s.ready.Store(true)
	defer s.ready.Store(false)
	log.Info("stream: dispatch running", "topic", cfg.Topics.Actions, "group", cfg.DispatchGroup(), "sinks", s.d.Sinks())

	commits := map[string]map[int32]kgo.EpochOffset{}
	for {
		fs, ok := poll(ctx, cl, cfg.PollRecords, cfg.health, log, stageDispatch)
		if !ok {
			break
		}
		clear(commits)
		var recs []*kgo.Record
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			recs = append(recs, p.Records...)
			last := p.Records[len(p.Records)-1]
			if commits[p.Topic] == nil {
				commits[p.Topic] = map[int32]kgo.EpochOffset{}
			}
			commits[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
			s.m.eventsInStage[stageDispatch].Add(float64(len(p.Records)))
			s.m.lag.WithLabelValues(p.Topic, partLabel(p.Partition)).Set(float64(max(p.HighWatermark-last.Offset-1, 0)))
		})
		if err := s.settle(work, recs, log); err != nil {
			cl.AllowRebalance()
			if work.Err() != nil || errors.Is(err, sinks.ErrClosed) {
				log.Warn("stream: dispatch: stopped with actions unsettled; they are read again on restart", "err", err)
				break
			}
			return fmt.Errorf("stream: dispatch: %w (the actions' offsets were not committed; they are read again on restart)", err)
		}
		commitPoll(work, cl, commits, s.m, stageDispatch, log, "the actions may be read again (delivered ones are deduplicated)")
		cl.AllowRebalance()
	}
	log.Info("stream: dispatch stopped")
	return nil
}

// settle dispatches one poll's actions: per contact in order, contacts
// concurrently. It returns the first error that leaves an action unsettled.
func (s *Dispatch) settle(ctx context.Context, recs []*kgo.Record, log *slog.Logger) error {
	byContact := map[string][]sinks.Action{}
	var order []string
	for _, r := range recs {
		a, err := sinks.DecodeAction(r.Value)
		if err != nil {
			if err := s.d.DeadLetter(ctx, sinks.Action{JSON: r.Value, Origin: r}, err); err != nil {
				return err
			}
			continue
		}
		a.Origin = r
		k := a.Record.Contact
		if _, ok := byContact[k]; !ok {
			order = append(order, k)
		}
		byContact[k] = append(byContact[k], a)
	}
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		slots    = make(chan struct{}, max(s.MaxInFlight, 1))
	)
	for _, k := range order {
		acts := byContact[k]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			for i := range acts {
				if err := s.d.Dispatch(ctx, acts[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}
