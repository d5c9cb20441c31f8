package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake" // embedded Kafka-compatible broker for dev
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/examples"
	"github.com/leadpulse/leadpulse/internal/app"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// devCmd is `leadpulse dev` (SPEC §4): everything embedded for a first run.
type devCmd struct {
	Rules      string  `type:"existingfile" placeholder:"FILE" help:"Rules file (YAML). Default: the bundled examples/b2b-saas.yaml."`
	Kafka      string  `default:"127.0.0.1:9092" placeholder:"ADDR" help:"Address the embedded Kafka-compatible broker listens on (plain TCP, no auth). Default: 127.0.0.1:9092."`
	HTTP       string  `name:"http" default:"127.0.0.1:8080" placeholder:"ADDR" help:"Address of /metrics, /healthz, /readyz and the admin API (GET and DELETE /contacts/ID, which leadpulse contact ID and leadpulse forget ID call). Default: 127.0.0.1:8080. An address beyond loopback needs --admin-token."`
	AdminToken string  `name:"admin-token" env:"LEADPULSE_ADMIN_TOKEN" placeholder:"TOKEN" help:"Require Authorization: Bearer TOKEN on the admin API (/contacts/…: read and erase contacts). Required when --http listens beyond loopback."`
	Redis      string  `placeholder:"ADDR" help:"Keep contact state in the Redis at ADDR (host:port) instead of in memory."`
	NoDemo     bool    `help:"Produce no demo traffic: send your own events to the events topic."`
	DemoRate   float64 `default:"100" placeholder:"N" help:"Demo events per second (a realistic B2B site, 1,000 visitors). Default: 100."`
	Partitions int32   `default:"6" placeholder:"N" help:"Partitions of each topic. Default: 6."`
	Retention  int     `name:"kafka-retention-mb" default:"16" placeholder:"MIB" help:"MiB of records the embedded broker keeps of each topic (all its partitions together), the oldest dropped first; records older than 30 minutes go anyway. The broker keeps its log in this process' memory: this bounds it (about twice this per busy topic). Default: 16."`
	Sinks      string  `type:"existingfile" placeholder:"FILE" help:"YAML file with the sinks (docs/config.md#sinks): a sinks: block, or the sinks alone as in deploy/kubernetes/sinks.example.yaml. Deliveries to webhook, kafka and redis-stream sinks are logged on standard error. Default: every action to standard output (log: {type: stdout, format: text, default: true})."`
}

// bannerEvent is the event the banner's kcat example sends: a demo request
// of a contact the bundled rules know nothing else about (its alert must
// read well without traits: TestBannerEventMessage).
const bannerEvent = `{"type":"track","userId":"u-1","event":"Form Submitted","properties":{"form":"demo"}}`

// devSinks is the dev sinks block: every action printed as a readable line.
var devSinks = sinks.Config{"log": {Type: sinks.TypeStdout, Format: sinks.FormatText, Default: true}}

// devRetentionMs caps every dev topic in time: 30 minutes.
const devRetentionMs = 30 * 60 * 1000

// devCleanerMs is how often the embedded broker applies retention
// (corresponds to Kafka's log.cleaner.backoff.ms). Between two passes a
// topic grows past its cap by what arrives meanwhile: at 2,000 events/s
// about 1 MB a second per topic (30 MB with the earlier 30s). A pass walks
// the index of every retained batch: well under a millisecond.
const devCleanerMs = 2000

// devRetention returns the embedded broker's limits for topics of
// partitions partitions that keep mib MiB each (--kafka-retention-mb),
// as topic configs (the pipeline's topics) and broker defaults (topics
// made later, e.g. a kafka sink's). kfake keeps every record in memory:
// the segments of a partition are byte slices grown by doubling, so a
// topic holds up to about twice its retained bytes, and its retention
// drops whole segments only; segments of a quarter of the partition's
// share (64 KiB to 1 MiB) keep that slack small. At 2,000 events/s the
// earlier 8 MiB per partition and 1 MiB segments held about 200 MB of
// log (heap profile, scripts/dev-memory.sh): most of dev's heap.
func devRetention(mib int, partitions int32) (topic, broker map[string]string) {
	perPartition := (int64(mib) << 20) / int64(max(partitions, 1))
	segment := min(max(perPartition/4, 64<<10), 1<<20)
	topic = map[string]string{
		"retention.ms":    strconv.Itoa(devRetentionMs),
		"retention.bytes": strconv.FormatInt(perPartition, 10),
		"segment.bytes":   strconv.FormatInt(segment, 10),
	}
	broker = map[string]string{"log.cleaner.backoff.ms": strconv.Itoa(devCleanerMs)}
	for k, v := range topic {
		broker["log."+k] = v
	}
	return topic, broker
}

func (d *devCmd) Run(e *env) error {
	ctx := e.ctx
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rs, rulesName, err := d.loadRules(e)
	if err != nil {
		return err
	}
	if d.DemoRate <= 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --demo-rate %v: give events per second above 0, or --no-demo", d.DemoRate)}
	}

	if d.Retention <= 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --kafka-retention-mb %d: give the MiB of records to keep of each topic, 1 or more", d.Retention)}
	}
	topicConfigs, brokerConfigs := devRetention(d.Retention, d.Partitions)

	// The admin API reads and erases contacts: beyond loopback, only with
	// a token, as `run` requires.
	if host, _, err := net.SplitHostPort(d.HTTP); err == nil && !isLoopback(host) && d.AdminToken == "" {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --http %s listens beyond loopback without a token: anyone who reaches it could read and erase contacts; pass --admin-token TOKEN (or LEADPULSE_ADMIN_TOKEN), or bind --http to 127.0.0.1", d.HTTP)}
	}
	// Listen first, so that a port in use fails before anything starts.
	httpLn, err := net.Listen("tcp", d.HTTP)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --http %s: %v%s", d.HTTP, err, inUseHint(err, "--http 127.0.0.1:8081"))}
	}
	defer httpLn.Close()
	var kafkaErr error
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, d.Kafka)
			kafkaErr = err
			return l, err
		}),
		kfake.BrokerConfigs(brokerConfigs),
		// The topics of kafka sinks (e.g. email-sends) are made when first
		// written to, with the sinks' client's AllowAutoTopicCreation.
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		if kafkaErr != nil {
			err = kafkaErr
		}
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --kafka %s: %v%s", d.Kafka, err, inUseHint(err, "--kafka 127.0.0.1:19092"))}
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]

	sc := stream.Scoring{Rules: rs}
	ui := newWebUI(&sc, "events") // dev records everything (config ui.history: events)
	reg := app.NewRegistry()
	var rdb *state.Redis
	if d.Redis != "" {
		state.SetRedisLogger(log) // go-redis' own lines through slog, not beside it
		if rdb, err = state.NewRedis(state.RedisOptions{Addrs: []string{d.Redis}}); err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --redis %s: %v", d.Redis, err)}
		}
		defer rdb.Close()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := rdb.Ping(pctx)
		cancel()
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --redis %s: %v", d.Redis, err)}
		}
		sc.Redis = rdb
	} else {
		// The store is made here to be counted in /metrics: what a dev
		// process holds grows with it (scripts/dev-memory.sh reads it).
		sc.Memory = state.NewMemory()
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "leadpulse_state_memory_contacts",
			Help: "Contacts held in the in-memory store (leadpulse dev without --redis).",
		}, func() float64 { return float64(sc.Memory.Len()) }))
	}
	sinkCfg := devSinks
	if d.Sinks != "" {
		if sinkCfg, err = sinks.LoadFile(d.Sinks); err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: --sinks %s: %v", d.Sinks, err)}
		}
	}

	cfg := stream.Config{
		Brokers:      []string{addr},
		Partitions:   d.Partitions,
		TopicConfigs: topicConfigs,
		Logger:       log,
	}
	p, metrics, err := app.NewPipeline(reg, cfg, sc)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: %v", err)}
	}
	cfg = p.Config()
	var bundled []byte
	if d.Rules == "" {
		bundled = examples.B2BSaaS
	}
	if err := ui.rules(d.Rules, bundled, p, sinkCfg, reg, log); err != nil {
		return err
	}

	// The dispatch stage delivers the actions through the sinks.
	out := &lineCounter{w: e.stdout}
	dispatch, err := app.OpenDispatch(cfg, sinkCfg, metrics, app.DispatchOptions{
		Deps: sinks.Deps{Stdout: out}, Registerer: reg, Logger: log,
		LogDeliveries: loggedSinks(sinkCfg),
		KafkaOptions:  []kgo.Opt{kgo.AllowAutoTopicCreation()},
	})
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse dev: %v", err)} // it names the sinks
	}
	defer dispatch.Close()

	// HTTP first: /healthz and /readyz answer while the topics are made.
	srv := &http.Server{Handler: admin.Handler(ui.options(admin.Options{
		Gatherer: reg, Ready: app.Ready(p, dispatch.Stage, rdb), Contacts: app.Contacts{P: p}, Rules: p.Rules, Token: d.AdminToken, Logger: log,
		Profiling: true, // /debug/pprof/: what a dev process holds (docs/commands.md#dev)
	})), ReadHeaderTimeout: 5 * time.Second}
	defer app.ServeHTTP(ctx, srv, httpLn, log, "dev")()
	if err := app.EnsureTopics(ctx, p); err != nil {
		return err
	}

	store := "in memory"
	if rdb != nil {
		store = "in Redis at " + d.Redis
	}
	demo := fmt.Sprintf("demo traffic: %.0f events/s from a B2B site", d.DemoRate)
	if d.NoDemo {
		demo = "no demo traffic (--no-demo)"
	}
	fmt.Fprintf(e.stderr, `leadpulse dev
  kafka    %s  topics %s → %s → %s, bad input on %s
  rules    %s
  state    %s
  ui       %s  contacts, scores, why, live actions
  http     http://%s/metrics  /healthz  /readyz, admin API /contacts/ID (leadpulse contact ID, leadpulse forget ID)
  %s
%sSend your own events:
  echo '%s' | kcat -P -b %s -t %s
  kcat -C -b %s -t %s -o end        # watch the actions
Ctrl-C stops (after applying and committing what was read).
`, addr, cfg.Topics.Events, cfg.Topics.Keyed, cfg.Topics.Actions, cfg.Topics.DLQ, rulesName, store, uiURL(httpLn.Addr().String()), httpLn.Addr(), demo,
		sinksBanner(d.Sinks, sinkCfg), bannerEvent, addr, cfg.Topics.Events, addr, cfg.Topics.Actions)

	pctx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	ui.watch(pctx) // --rules FILE is reloaded when it changes
	defer func() { stopPipeline(); ui.wait() }()
	if !d.NoDemo {
		dctx, stopDemo := context.WithCancel(ctx)
		var demoDone sync.WaitGroup
		defer func() { stopDemo(); demoDone.Wait() }()
		demoDone.Go(func() {
			if err := app.RunDemo(dctx, addr, cfg.Topics.Events, d.DemoRate, log); err != nil {
				log.Error("leadpulse dev: demo traffic stopped", "err", err)
			}
		})
	}
	var (
		dispatchErr  error
		dispatchDone sync.WaitGroup
	)
	dispatchDone.Go(func() { dispatchErr = dispatch.Run(pctx, stopPipeline, log, "dev") })
	err = p.Run(pctx)
	stopPipeline()
	dispatchDone.Wait()
	fmt.Fprintf(e.stderr, "leadpulse dev: stopped; %d actions printed\n", out.count())
	return errors.Join(err, dispatchErr)
}

func (d *devCmd) loadRules(e *env) (*rules.Ruleset, string, error) {
	if d.Rules != "" {
		rs, err := loadRules(e, d.Rules)
		return rs, d.Rules, err
	}
	rs, err := rules.Parse(examples.B2BSaaSName, examples.B2BSaaS)
	if err != nil {
		return nil, "", fmt.Errorf("the bundled rules do not load (a bug): %w", err)
	}
	return rs, examples.B2BSaaSName + " (bundled)", nil
}

// loggedSinks are the sinks whose deliveries dev logs: all but stdout
// sinks, whose actions are printed anyway.
func loggedSinks(cfg sinks.Config) []string {
	var out []string
	for name, sc := range cfg {
		if sc.Type != sinks.TypeStdout {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// sinksBanner is the banner's part about where the actions go: printed
// below with the default sinks; with --sinks FILE, each sink and where
// its deliveries show.
func sinksBanner(file string, cfg sinks.Config) string {
	if file == "" {
		return "Alerts are printed below as they fire. "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  sinks    %s\n", file)
	stdout := false
	for _, name := range slices.Sorted(mapKeys(cfg)) {
		sc := cfg[name]
		def := ""
		if sc.Default {
			def = ", the default"
		}
		fmt.Fprintf(&b, "           %-12s → %s%s\n", name, sc.Destination(), def)
		stdout = stdout || sc.Type == sinks.TypeStdout
	}
	b.WriteString("Actions go to these sinks: ")
	if stdout {
		b.WriteString("those of standard output sinks are printed below, ")
	}
	if len(loggedSinks(cfg)) > 0 {
		b.WriteString(`each delivery to another sink is logged here (level INFO, "sinks: delivered"; failures "sinks: not delivered" with the reason, and retries), `)
	}
	b.WriteString("and all are counted in /metrics (leadpulse_sink_*).\n")
	return b.String()
}

// isLoopback reports whether host (of host:port) is a loopback address;
// "" (every interface) is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func inUseHint(err error, alt string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Sprintf(" (is another Kafka or leadpulse dev running? choose another address, e.g. %s)", alt)
	}
	return ""
}

// lineCounter counts the lines written through it: the actions the stdout
// sink printed.
type lineCounter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (c *lineCounter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += bytes.Count(b, []byte{'\n'})
	return c.w.Write(b)
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
