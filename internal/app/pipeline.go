package app

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// NewRegistry is the metrics registry of a process: the Go runtime and
// process collectors, to which the pipeline, the sinks and the store add
// theirs.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewPipeline registers the pipeline's metrics on reg and makes the
// scoring pipeline of cfg. Its error wraps stream.ErrConfig for a setting to
// fix. The pipeline's effective config (defaults filled) is p.Config().
func NewPipeline(reg prometheus.Registerer, cfg stream.Config, sc stream.Scoring) (*stream.Pipeline, *stream.Metrics, error) {
	m, err := stream.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	p, err := stream.New(cfg, sc, m)
	if err != nil {
		return nil, nil, err
	}
	return p, m, nil
}

// EnsureTopics creates the pipeline's missing topics.
func EnsureTopics(ctx context.Context, p *stream.Pipeline) error {
	return stream.EnsureTopics(ctx, p.Config())
}

// RegisterRedisStats exports the store's counters.
func RegisterRedisStats(reg prometheus.Registerer, rdb *state.Redis) {
	for _, c := range []struct {
		name, help string
		get        func(state.RedisStats) uint64
	}{
		{"leadpulse_redis_commits_total", "Write round trips to Redis (partition commits with changed contacts).", func(s state.RedisStats) uint64 { return s.Commits }},
		{"leadpulse_redis_contacts_written_total", "Contact writes Redis accepted.", func(s state.RedisStats) uint64 { return s.Written }},
		{"leadpulse_redis_contacts_loaded_total", "Contacts read from Redis (cache misses, timers of new partitions).", func(s state.RedisStats) uint64 { return s.Loaded }},
		{"leadpulse_redis_loads_skipped_total", "Contact loads not made because the partition's new-contact filter showed the contact is not stored (new visitors).", func(s state.RedisStats) uint64 { return s.Skipped }},
		{"leadpulse_redis_contacts_erased_total", "Contacts erased (forget).", func(s state.RedisStats) uint64 { return s.Erased }},
		{"leadpulse_redis_errors_total", "Redis calls that failed (unavailable, misconfigured).", func(s state.RedisStats) uint64 { return s.Failed }},
	} {
		get := c.get
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 {
			return float64(get(rdb.Stats()))
		}))
	}
}
