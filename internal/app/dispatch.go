package app

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/stream"
)

// Dispatch is the dispatch stage: it reads the actions topic and delivers
// each action through the sinks.
type Dispatch struct {
	Stage      *stream.Dispatch
	Dispatcher *sinks.Dispatcher
	client     *kgo.Client // the sinks' Kafka producer and dead-letter writer
}

// DispatchOptions are what the dispatch stage needs besides the pipeline's
// config and the sinks.
type DispatchOptions struct {
	// Deps are the sinks' connections; Kafka is set by OpenDispatch.
	Deps       sinks.Deps
	Dedupe     sinks.Deduper
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// KafkaOptions are added to the options of the sinks' Kafka client (dev:
	// kgo.AllowAutoTopicCreation, for the kafka sinks' topics).
	KafkaOptions []kgo.Opt
	// LogDeliveries names the sinks whose each delivery is logged
	// (sinks.Options.LogDeliveries).
	LogDeliveries []string
}

// OpenDispatch opens the sinks of sinkCfg and the dispatch stage of cfg (the
// pipeline's effective config), with a Kafka client of cfg's brokers and
// options for the kafka sinks and the actions DLQ. Close releases it.
func OpenDispatch(cfg stream.Config, sinkCfg sinks.Config, m *stream.Metrics, o DispatchOptions) (*Dispatch, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID("leadpulse-sinks"),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(10 * time.Second)}, slices.Concat(cfg.KafkaOptions, o.KafkaOptions)...)...)
	if err != nil {
		return nil, err
	}
	o.Deps.Kafka = cl
	dispatcher, err := sinks.Open(sinkCfg, o.Deps, sinks.Options{
		Dedupe:        o.Dedupe,
		Registerer:    o.Registerer,
		Logger:        o.Logger,
		LogDeliveries: o.LogDeliveries,
		DeadLetter:    sinks.KafkaDeadLetter(cl, cfg.Topics.ActionsDLQ),
	})
	if err != nil {
		cl.Close()
		return nil, err
	}
	stage, err := stream.NewDispatch(cfg, dispatcher, m)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &Dispatch{Stage: stage, Dispatcher: dispatcher, client: cl}, nil
}

// Close closes the Kafka client of the sinks (after Run returned).
func (d *Dispatch) Close() { d.client.Close() }

// Run runs the dispatch stage until ctx is done, then closes the sinks. If
// the stage fails, it stops the process through stop: without it no action
// reaches a sink, and a supervisor should restart the process rather than
// let it score on unseen. cmd names the command in the logs.
func (d *Dispatch) Run(ctx context.Context, stop func(), log *slog.Logger, cmd string) error {
	err := d.Stage.Run(ctx)
	if err != nil {
		log.Error("leadpulse "+cmd+": the dispatch stage failed; stopping", "err", err)
		stop()
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if cerr := d.Dispatcher.Close(cctx); cerr != nil {
		log.Warn("leadpulse "+cmd+": sinks closed with work unsettled", "err", cerr)
	}
	return err
}
