package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnsureTopics creates the pipeline's topics that are missing, with
// cfg.Partitions partitions, cfg.ReplicationFactor and cfg.TopicConfigs, and
// leaves existing ones as they are. It needs the CreateTopics permission
// only for topics that are missing.
func EnsureTopics(ctx context.Context, cfg Config) error {
	cfg, err := cfg.validate()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(cfg.clientOpts("admin")...)
	if err != nil {
		return fmt.Errorf("stream: kafka client: %w", err)
	}
	defer cl.Close()
	return ensureTopics(ctx, kadm.NewClient(cl), &cfg)
}

func (c *Config) topics() []string {
	ts := []string{c.Topics.Events, c.Topics.Actions, c.Topics.DLQ, c.Topics.ActionsDLQ}
	if !c.InputKeyed {
		ts = append(ts, c.Topics.Keyed)
	}
	return ts
}

func ensureTopics(ctx context.Context, adm *kadm.Client, cfg *Config) error {
	want := cfg.topics()
	have, err := adm.ListTopics(ctx, want...)
	if err != nil {
		return fmt.Errorf("stream: list topics at %v: %w (check that the brokers are reachable)", cfg.Brokers, err)
	}
	var missing []string
	for _, t := range want {
		if d, ok := have[t]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
		} else if d.Err != nil {
			return fmt.Errorf("stream: describe topic %q: %w", t, d.Err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	configs := make(map[string]*string, len(cfg.TopicConfigs)+1)
	for k, v := range cfg.TopicConfigs {
		configs[k] = kadm.StringPtr(v)
	}
	if _, set := configs["max.message.bytes"]; !set {
		// Room for an event of MaxEventBytes with its key and headers; the
		// broker's default (message.max.bytes, 1,048,588) is about 1 MiB.
		configs["max.message.bytes"] = kadm.StringPtr(strconv.Itoa(cfg.MaxRecordBytes()))
	}
	resp, err := adm.CreateTopics(ctx, cfg.Partitions, cfg.ReplicationFactor, configs, missing...)
	if err != nil {
		return fmt.Errorf("stream: create topics %v: %w", missing, err)
	}
	for _, t := range missing {
		r := resp[t]
		switch {
		case r.Err == nil:
			cfg.Logger.Info("stream: created topic", "topic", t, "partitions", cfg.Partitions)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
			// Another instance created it meanwhile.
		default:
			return fmt.Errorf("stream: create topic %q: %w %s (create it yourself, or grant this client CreateTopics)", t, r.Err, r.ErrMessage)
		}
	}
	return nil
}

// retriableTopicsError reports whether EnsureTopics failed because the
// brokers did not answer (worth waiting for) rather than refused.
func retriableTopicsError(err error) bool {
	if errors.Is(err, ErrConfig) {
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return true
}

// partitionCount returns the number of partitions of topic.
func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	d, ok := td[topic]
	if !ok {
		return 0, fmt.Errorf("topic %q not found", topic)
	}
	if d.Err != nil {
		return 0, d.Err
	}
	return len(d.Partitions), nil
}
