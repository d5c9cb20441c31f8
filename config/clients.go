package config

import (
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// KafkaOptions are the franz-go options of the TLS, SASL and group
// settings, for every client the process makes.
func (c *Config) KafkaOptions() ([]kgo.Opt, error) {
	k := &c.Kafka
	var opts []kgo.Opt
	if k.TLS.Enabled {
		tc, err := k.TLS.Config("kafka.tls")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := k.SASL
	switch s.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
	}
	opts = append(opts,
		kgo.SessionTimeout(k.SessionTimeout.D()),
		kgo.HeartbeatInterval(k.HeartbeatInterval.D()),
		kgo.RebalanceTimeout(k.RebalanceTimeout.D()),
	)
	return opts, nil
}

// Stream returns the pipeline's configuration, with the Kafka options of
// KafkaOptions and log as its logger.
func (c *Config) Stream(log *slog.Logger) (stream.Config, error) {
	opts, err := c.KafkaOptions()
	if err != nil {
		return stream.Config{}, err
	}
	k, p := &c.Kafka, &c.Pipeline
	rf := k.ReplicationFactor
	if rf == 0 {
		rf = -1
	}
	return stream.Config{
		Brokers: slices.Clone(k.Brokers),
		Group:   k.Group,
		Topics: stream.Topics{
			Events: k.Topics.Events, Keyed: k.Topics.Keyed, Actions: k.Topics.Actions,
			DLQ: k.Topics.DLQ, ActionsDLQ: k.Topics.ActionsDLQ,
		},
		InputKeyed:         k.InputKeyed,
		Partitions:         k.Partitions,
		ReplicationFactor:  rf,
		TopicConfigs:       k.TopicConfigs,
		BatchRecords:       p.BatchRecords,
		QueueRecords:       p.QueueRecords,
		PollRecords:        p.PollRecords,
		FetchMaxWait:       k.FetchMaxWait.D(),
		NoTransactions:     k.NoTransactions,
		TransactionalID:    k.TransactionalID,
		TransactionTimeout: k.TransactionTimeout.D(),
		TimerDelay:         p.TimerDelay.D(),
		Tick:               p.Tick.D(),
		TimerHorizon:       p.TimerHorizon.D(),
		DrainTimeout:       p.DrainTimeout.D(),
		MaxEventBytes:      p.MaxEventBytes,
		UnreachableAfter:   p.UnreachableAfter.D(),
		HandoverTimeout:    p.HandoverTimeout.D(),
		Logger:             log,
		KafkaOptions:       opts,
	}, nil
}

// RedisOptions returns the state store's options, with log as its logger.
func (c *Config) RedisOptions(log *slog.Logger) state.RedisOptions {
	r := &c.Redis
	return state.RedisOptions{
		Addrs:        slices.Clone(r.Addr),
		Cluster:      r.Cluster,
		Username:     r.Username,
		Password:     r.Password,
		DB:           r.DB,
		TLS:          r.TLS,
		KeyPrefix:    r.KeyPrefix,
		TTL:          r.TTL.D(),
		DialTimeout:  r.DialTimeout.D(),
		ReadTimeout:  r.ReadTimeout.D(),
		WriteTimeout: r.WriteTimeout.D(),
		PoolSize:     r.PoolSize,
		MaxRetries:   r.MaxRetries,
		Logger:       log,
	}
}

// CacheOptions returns the options of the per-partition caches.
func (c *Config) CacheOptions() state.CacheOptions {
	return state.CacheOptions{Capacity: c.Redis.CacheCapacity, FilterBits: c.Redis.NewContactFilterBits}
}

// Logger returns a logger to w as log: says.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
