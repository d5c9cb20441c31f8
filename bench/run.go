package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake" // the embedded broker, as in `leadpulse dev`
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/examples"
	"github.com/leadpulse/leadpulse/internal/app"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// warmupEvents are sent, unmeasured, before the latency phases when there
// is no throughput phase, so that the consumer groups have joined and the
// contacts exist before the clock runs.
const warmupEvents = 2000

// run holds one bench run's moving parts. Everything is owned by Run's
// goroutine except where a field says otherwise.
type run struct {
	cfg     Config
	rs      *rules.Ruleset
	id      string
	brokers []string
	scfg    stream.Config
	probe   string // scratch topic of the hop-floor probe
	reg     *prometheus.Registry
	rdb     *state.Redis
	mem     *state.Memory
	adm     *kadm.Client
	prod    *kgo.Client
	load    *loader
	col     *collector
	mon     *monitor
	reqs    *requests // Kafka requests by client (requests.go)
	pipe    *stream.Pipeline
	pipeErr chan error // the pipeline's Run result, once
	stopP   func()     // stops the pipeline and waits for it; idempotent
	res     *Result
	defers  []func() // cleanups, run in reverse order by close
}

// Run runs one bench: the throughput phase (preload, raw consume ceiling,
// drain through the pipeline), then a latency phase per rate, then the
// Redis write ceiling, and returns the figures. It cleans up after itself:
// the embedded broker is closed; on an external broker or Redis the topics
// and keys it created are deleted.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg, err = cfg.validate()
	if err != nil {
		return nil, err
	}
	src, name := cfg.Rules, cfg.RulesName
	if src == nil {
		src, name = examples.B2BSaaS, examples.B2BSaaSName
	}
	if name == "" {
		name = "rules"
	}
	scaled, err := ScaleRules(src, cfg.RuleCopies)
	if err != nil {
		return nil, err
	}
	rs, err := rules.Parse(name, scaled)
	if err != nil {
		return nil, fmt.Errorf("bench: rules %s: %w", name, err)
	}
	if cfg.NoMerge {
		rs.Identity().Merge = false
	}
	r := &run{cfg: cfg, rs: rs, id: strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36)}
	r.res = &Result{
		Store: "memory", Rules: name, RuleCopies: cfg.RuleCopies,
		Triggers: len(rs.Triggers), Scoring: len(rs.Scoring) + len(rs.Fit),
		Partitions: int(cfg.Partitions), Batch: cfg.BatchRecords, Keyed: !cfg.Unkeyed,
		Transactions: cfg.Unkeyed && !cfg.NoTransactions,
		Merge:        rs.Identity().Merge,
		Contacts:     cfg.Contacts, Zipf: cfg.Zipf, Mix: cfg.Mix, Anonymous: cfg.AnonymousShare,
		Lifetime:   max(cfg.Lifetime, 0),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GOGC: cmp.Or(os.Getenv("GOGC"), "100"), Started: rfc3339(time.Now()),
	}
	if r.res.Anonymous == 0 {
		r.res.Anonymous = 0.6 // traffic's default
	} else if r.res.Anonymous < 0 {
		r.res.Anonymous = 0
	}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	if err := r.measure(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "bench: "+format+"\n", args...)
}

var errPipelineStopped = errors.New("bench: the pipeline stopped")

func (r *run) setup(ctx context.Context) error {
	cfg := &r.cfg
	r.brokers = cfg.Brokers
	r.res.Broker = "embedded (kfake, TCP, in process)"
	if len(r.brokers) == 0 {
		var (
			cluster *kfake.Cluster
			err     error
		)
		as(ctx, roleBroker, func(context.Context) { cluster, err = kfake.NewCluster(kfake.NumBrokers(1)) })
		if err != nil {
			return fmt.Errorf("bench: embedded broker: %w", err)
		}
		r.defers = append(r.defers, cluster.Close)
		r.brokers = cluster.ListenAddrs()
	} else {
		r.res.Broker = strings.Join(r.brokers, ",")
	}
	pfx := "bench-" + r.id + "."
	r.reqs = newRequests()
	r.scfg = stream.Config{
		Brokers: r.brokers,
		Group:   "leadpulse-bench-" + r.id,
		Topics: stream.Topics{
			Events: pfx + "events", Keyed: pfx + "events.keyed", Actions: pfx + "actions",
			DLQ: pfx + "events.dlq", ActionsDLQ: pfx + "actions.dlq",
		},
		InputKeyed:     !cfg.Unkeyed,
		NoTransactions: cfg.NoTransactions,
		Partitions:     cfg.Partitions,
		BatchRecords:   cfg.BatchRecords,
		QueueRecords:   max(4096, 2*cfg.BatchRecords),
		FetchMaxWait:   cfg.FetchMaxWait,
		Logger:         cfg.logger(),
		KafkaOptions:   []kgo.Opt{r.reqs.hook("pipeline")},
	}
	r.probe = pfx + "probe"

	sc := stream.Scoring{Rules: r.rs}
	// The collector is made below, before the pipeline runs.
	sc.OnBatchApplied = func(times []int64, at int64) { r.col.appliedBatch(times, at) }
	if cfg.Redis != "" {
		prefix := "lpbench-" + r.id
		rdb, err := state.NewRedis(state.RedisOptions{Addrs: []string{cfg.Redis}, KeyPrefix: prefix, Logger: cfg.logger()})
		if err != nil {
			return fmt.Errorf("bench: --redis %s: %w", cfg.Redis, err)
		}
		r.rdb = rdb
		r.defers = append(r.defers, func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cleanRedis(cctx, cfg.Redis, prefix); err != nil {
				r.logf("could not delete the keys %s:* from Redis %s: %v", prefix, cfg.Redis, err)
			}
			rdb.Close()
		})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = rdb.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: --redis %s: %w", cfg.Redis, err)
		}
		sc.Redis = rdb
		r.res.Store = "redis"
		r.res.Redis = &RedisFigures{Addr: cfg.Redis}
	} else {
		r.mem = state.NewMemory()
		sc.Memory = r.mem
	}
	r.reg = prometheus.NewRegistry()
	p, _, err := app.NewPipeline(r.reg, r.scfg, sc)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.scfg = p.Config()
	r.pipe = p

	var admCl *kgo.Client
	as(ctx, roleMonitor, func(context.Context) {
		admCl, err = kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ClientID("leadpulse-bench-admin"), r.reqs.hook("bench"))
	})
	if err != nil {
		return err
	}
	r.defers = append(r.defers, admCl.Close)
	r.adm = kadm.NewClient(admCl)
	if err := stream.EnsureTopics(ctx, r.scfg); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := r.adm.CreateTopic(ctx, cfg.Partitions, -1, nil, r.probe); err != nil {
		return fmt.Errorf("bench: create topic %q: %w", r.probe, err)
	}
	if len(cfg.Brokers) > 0 {
		r.defers = append(r.defers, r.deleteTopics)
	}

	as(ctx, roleLoad, func(context.Context) {
		r.prod, err = kgo.NewClient(
			kgo.SeedBrokers(r.brokers...),
			kgo.ClientID("leadpulse-bench-load"),
			kgo.ProducerLinger(0),                                // as the pipeline's producers: latency first
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as the scoring stage checks
			kgo.MaxBufferedRecords(100_000),
			r.reqs.hook("load"),
		)
	})
	if err != nil {
		return err
	}
	r.defers = append(r.defers, r.prod.Close)
	r.load = newLoader(cfg, r.prod, r.scfg.Topics.Events)
	as(ctx, roleActions, func(context.Context) {
		r.col, err = newCollector(r.brokers, r.scfg.Topics.Actions, r.rs, r.reqs.hook("actions"))
	})
	if err != nil {
		return err
	}
	r.defers = append(r.defers, r.col.close)
	stages := []stage{{r.scfg.Group, r.scfg.Topics.Events}}
	if cfg.Unkeyed {
		stages = []stage{{r.scfg.Group + "-ingest", r.scfg.Topics.Events}, {r.scfg.Group, r.scfg.Topics.Keyed}}
	}
	r.mon = &monitor{adm: r.adm, stages: stages, every: 100 * time.Millisecond}
	return nil
}

func (r *run) deleteTopics() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t := r.scfg.Topics
	if _, err := r.adm.DeleteTopics(ctx, t.Events, t.Keyed, t.Actions, t.DLQ, t.ActionsDLQ, r.probe); err != nil {
		r.logf("could not delete the bench topics bench-%s.*: %v", r.id, err)
	}
	for _, g := range []string{r.scfg.Group, r.scfg.Group + "-ingest"} {
		_, _ = r.adm.DeleteGroup(ctx, g)
	}
}

func (r *run) close() {
	for i := len(r.defers) - 1; i >= 0; i-- {
		r.defers[i]()
	}
}

// scoreTopic is the topic the scoring stage reads and commits.
func (r *run) scoreTopic() string {
	if r.cfg.Unkeyed {
		return r.scfg.Topics.Keyed
	}
	return r.scfg.Topics.Events
}
