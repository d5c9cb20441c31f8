package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/config"
	"github.com/leadpulse/leadpulse/internal/app"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// runCmds are `leadpulse run` and the admin commands that talk to it.
type runCmds struct {
	Run     runCmd     `cmd:"" help:"Production: the live pipeline on real Kafka brokers and Redis, with sinks, metrics and the admin API, from a deployment config."`
	Contact contactCmd `cmd:"" help:"Show a contact's state (score, fit, engagement by rule, windows, stage, timers, last firings) from a running process' admin API."`
	Forget  forgetCmd  `cmd:"" help:"Erase everything held about a contact, through a running process' admin API."`
}

// runCmd is `leadpulse run --config FILE` (SPEC §4).
type runCmd struct {
	Config string `required:"" type:"existingfile" placeholder:"FILE" help:"Deployment config (YAML: kafka, redis, rules, http, sinks; see docs/config.md). Every key can be set by an environment variable LEADPULSE_<PATH>, e.g. LEADPULSE_KAFKA_BROKERS=k1:9092,k2:9092, LEADPULSE_REDIS_ADDR, LEADPULSE_RULES, LEADPULSE_HTTP, LEADPULSE_ADMIN_TOKEN."`
	Check  bool   `help:"Check the config, the rules and the sinks without connecting to anything, print the effective config (secrets redacted) and exit: 0 when valid."`
	// WatchRules reloads the rules file when it changes (besides SIGHUP and
	// POST /rules/reload).
	WatchRules bool `default:"true" negatable:"" help:"Reload the rules file when it changes (polled every second, once it has settled); --no-watch-rules leaves reloads to SIGHUP and POST /rules/reload. Default: on."`
}

func (r *runCmd) Run(e *env) error {
	cfg, err := config.Load(r.Config, os.Environ())
	if err != nil {
		return &exitError{code: 2, msg: "leadpulse run: the deployment config does not validate:\n" + err.Error()}
	}
	log := cfg.Logger(e.stderr)
	state.SetRedisLogger(log) // go-redis' own lines through slog, not beside it
	if _, err := os.Stat(cfg.Rules); errors.Is(err, fs.ErrNotExist) {
		return &exitError{code: 2, msg: missingRules(cfg)}
	}
	rs, err := loadRules(e, cfg.Rules)
	if err != nil {
		return err // FILE:LINE: RULE-ID: message lines, exit 1
	}
	var sinkCfg sinks.Config
	if len(cfg.Sinks) > 0 {
		// FILE:LINE (or $LEADPULSE_SINKS:LINE): sinks.NAME: message
		if sinkCfg, err = sinks.Parse(cfg.SinksSource()); err != nil {
			return &exitError{code: 2, msg: "leadpulse run: " + err.Error()}
		}
	}
	scfg, err := cfg.Stream(log)
	if err != nil {
		return &exitError{code: 2, msg: "leadpulse run: " + err.Error()}
	}
	if r.Check {
		enc := yaml.NewEncoder(e.stdout)
		enc.SetIndent(2)
		if err := enc.Encode(cfg.Redacted()); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "leadpulse run: %s is valid (rules %s: %d triggers, %d actions; %d sinks)\n", r.Config, cfg.Rules, len(rs.Triggers), len(rs.Actions), len(sinkCfg))
		for _, w := range unknownSinks(rs, sinkCfg) {
			fmt.Fprintln(e.stderr, "warning: "+w)
		}
		return nil
	}
	return runLive(e, r, cfg, scfg, rs, sinkCfg, log)
}

func runLive(e *env, r *runCmd, cfg *config.Config, scfg stream.Config, rs *rules.Ruleset, sinkCfg sinks.Config, log *slog.Logger) error {
	ctx := e.ctx
	rdb, err := state.NewRedis(cfg.RedisOptions(log))
	if err != nil {
		return &exitError{code: 2, msg: "leadpulse run: " + err.Error()}
	}
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pctx)
	cancel()
	switch {
	case errors.Is(err, state.ErrConfig):
		return &exitError{code: 2, msg: "leadpulse run: " + err.Error()}
	case err != nil && ctx.Err() == nil:
		log.Warn("leadpulse run: Redis is not reachable yet; partitions wait for it and /readyz says not ready", "err", err)
	}

	// Listen first, so that a port in use fails before anything starts.
	httpLn, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse run: http %s (%s): %v", cfg.HTTP, whereOr(cfg, "http"), err)}
	}
	defer httpLn.Close()

	reg := app.NewRegistry()
	app.RegisterRedisStats(reg, rdb)

	sc := stream.Scoring{Rules: rs, Redis: rdb, Cache: cfg.CacheOptions(), FlushInterval: cfg.Redis.FlushInterval.D()}
	ui := newWebUI(&sc, cfg.UI.History)
	p, metrics, err := app.NewPipeline(reg, scfg, sc)
	if err != nil {
		return &exitError{code: 2, msg: "leadpulse run: " + err.Error()}
	}
	if err := ui.rules(cfg.Rules, nil, p, sinkCfg, reg, log); err != nil {
		return &exitError{code: 2, msg: "leadpulse run: " + err.Error()}
	}
	// The pipeline creates the missing topics when it starts (waiting, not
	// ready, while the brokers do not answer): the HTTP server answers
	// /healthz and /readyz meanwhile.
	scfg = p.Config()

	var dispatch *app.Dispatch
	if len(sinkCfg) > 0 {
		dispatch, err = app.OpenDispatch(scfg, sinkCfg, metrics, app.DispatchOptions{
			Deps:       sinks.Deps{Redis: rdb.Client(), Stdout: e.stdout},
			Dedupe:     sinks.NewRedisDedupe(rdb.Client(), cfg.Redis.KeyPrefix+":delivered:", 0),
			Registerer: reg,
			Logger:     log,
		})
		if err != nil {
			return &exitError{code: 2, msg: "leadpulse run: " + err.Error()} // it names the sinks
		}
		defer dispatch.Close()
	} else {
		log.Info("leadpulse run: no sinks configured: actions stay on the actions topic (no dispatch stage)", "topic", scfg.Topics.Actions)
	}
	for _, w := range unknownSinks(rs, sinkCfg) {
		log.Warn("leadpulse run: " + w)
	}

	var stage *stream.Dispatch
	if dispatch != nil {
		stage = dispatch.Stage
	}
	srv := &http.Server{
		Handler: admin.Handler(ui.options(admin.Options{
			Gatherer: reg, Ready: app.Ready(p, stage, rdb), Contacts: app.Contacts{P: p}, Rules: p.Rules, Token: cfg.AdminToken, Logger: log,
		})),
		ReadHeaderTimeout: 5 * time.Second,
	}
	defer app.ServeHTTP(ctx, srv, httpLn, log, "run")()

	pctx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()

	// SIGHUP reloads the rules; a file that does not validate is logged
	// problem by problem and the last valid rules keep running (SPEC §2).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var work sync.WaitGroup // joined before the HTTP server stops (wg)
	work.Go(func() {
		for {
			select {
			case <-pctx.Done():
				return
			case <-hup:
				ui.src.Reload("sighup")
			}
		}
	})
	if r.WatchRules {
		ui.watch(pctx) // the rules file is reloaded when it changes
	}

	log.Info("leadpulse run: started", "config", cfg.File(), "brokers", strings.Join(scfg.Brokers, ","), "group", scfg.Group,
		"topics", fmt.Sprintf("%s → %s → %s", scfg.Topics.Events, app.ScoreTopic(scfg), scfg.Topics.Actions),
		"redis", strings.Join(cfg.Redis.Addr, ","), "rules", cfg.Rules, "sinks", strings.Join(slices.Sorted(mapKeys(sinkCfg)), ","),
		"http", httpLn.Addr().String(), "admin_token", cfg.AdminToken != "")

	var dispatchErr error
	if dispatch != nil {
		work.Go(func() { dispatchErr = dispatch.Run(pctx, stopPipeline, log, "run") })
	}
	err = p.Run(pctx)
	stopPipeline()
	work.Wait()
	ui.wait()
	if err = errors.Join(err, dispatchErr); err != nil {
		return err
	}
	log.Info("leadpulse run: stopped")
	return nil
}

// missingRules says that the config's rules file does not exist, where the
// config names it, and what to do: the file may be made at deploy time
// (deploy/kubernetes: kustomize's configMapGenerator mounts rules.yaml from
// examples/b2b-saas.yaml), so outside the cluster LEADPULSE_RULES points the
// config at a rules file.
func missingRules(cfg *config.Config) string {
	where := cfg.Where("rules")
	switch {
	case where == "":
		where = "the default rules: rules.yaml, beside " + cfg.File()
	case strings.HasPrefix(where, "$"):
		where = "set by " + where
	default:
		where = "rules: at " + where + ", relative to the config file"
	}
	return fmt.Sprintf(`leadpulse run: rules file %s does not exist (%s).
It may be made at deploy time: deploy/kubernetes's kustomization generates rules.yaml (the
leadpulse-rules ConfigMap, from examples/b2b-saas.yaml) and mounts it beside config.yaml.
To check or run this config elsewhere, point it at a rules file, e.g.
  LEADPULSE_RULES=examples/b2b-saas.yaml leadpulse run --config %s --check`, cfg.Rules, where, cfg.File())
}

// unknownSinks lists the sinks the rules name that are not configured,
// when no sink is the default to catch them.
func unknownSinks(rs *rules.Ruleset, cfg sinks.Config) []string {
	if len(cfg) == 0 || cfg.DefaultSink() != "" {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range rs.Actions {
		for _, n := range a.Sinks() {
			if _, ok := cfg[n]; ok || seen[n] {
				continue
			}
			seen[n] = true
			out = append(out, fmt.Sprintf("action %q of %s routes to sink %q, which is not under sinks: and no sink is default: true; its actions will be dead-lettered", a.Name, rs.File, n))
		}
	}
	slices.Sort(out)
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func whereOr(cfg *config.Config, key string) string {
	if w := cfg.Where(key); w != "" {
		return w
	}
	return "default"
}

// adminFlags locate a process' admin API.
type adminFlags struct {
	HTTP  string `name:"http" default:"127.0.0.1:8080" env:"LEADPULSE_HTTP" placeholder:"ADDR" help:"Admin API of the process: its http address (host:port, or a URL). Default: 127.0.0.1:8080."`
	Token string `env:"LEADPULSE_ADMIN_TOKEN" placeholder:"TOKEN" help:"Bearer token of the admin API (the process' admin_token)."`
}

// call sends one request to the admin API and returns the status and body.
func (f *adminFlags) call(ctx context.Context, method, path string) (int, []byte, error) {
	return admin.Client{Addr: f.HTTP, Token: f.Token}.Do(ctx, method, path)
}

// apiError turns an error answer into an exit: 1 for a contact not found,
// 2 for everything else.
func apiError(cmd string, code int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	exit := 2
	if code == http.StatusNotFound {
		exit = 1
	}
	return &exitError{code: exit, msg: fmt.Sprintf("leadpulse %s: %d %s: %s", cmd, code, http.StatusText(code), msg)}
}

// contactCmd is `leadpulse contact ID`.
type contactCmd struct {
	ID         string `arg:"" help:"The contact id (the events' userId, else anonymousId)."`
	At         string `placeholder:"TIME" help:"Compute the scores at this RFC 3339 time (default: the contact's latest event time)."`
	Why        string `placeholder:"TRIGGER" help:"Why did (or didn't) TRIGGER fire for the contact: its condition with the current value of each name, arming, cooldown, guards and caps, where a sequence or absence stands."`
	JSON       bool   `name:"json" help:"With --why: print the JSON answer instead of text."`
	adminFlags `embed:""`
}

func (c *contactCmd) Run(e *env) error {
	path := "/contacts/" + url.PathEscape(c.ID)
	if c.Why != "" {
		path += "/why/" + url.PathEscape(c.Why)
	}
	if c.At != "" {
		path += "?at=" + url.QueryEscape(c.At)
	}
	code, body, err := c.call(e.ctx, http.MethodGet, path)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse contact: %v (is `leadpulse run` or `leadpulse dev` serving its admin API at --http %s?)", err, c.HTTP)}
	}
	if code != http.StatusOK {
		return apiError("contact", code, body)
	}
	if c.Why == "" || c.JSON {
		_, err = e.stdout.Write(body)
		return err
	}
	// --why without --json: the why view as text.
	var v rules.WhyView
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("the answer is not a why view: %w", err)
	}
	_, err = io.WriteString(e.stdout, v.Text())
	return err
}

// forgetCmd is `leadpulse forget ID`.
type forgetCmd struct {
	ID         string `arg:"" help:"The contact id to erase."`
	adminFlags `embed:""`
}

func (c *forgetCmd) Run(e *env) error {
	code, body, err := c.call(e.ctx, http.MethodDelete, "/contacts/"+url.PathEscape(c.ID))
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse forget: %v (is `leadpulse run` or `leadpulse dev` serving its admin API at --http %s?)", err, c.HTTP)}
	}
	switch code {
	case http.StatusOK:
		fmt.Fprintf(e.stdout, "%s: erased\n", c.ID)
	case http.StatusAccepted:
		fmt.Fprintf(e.stdout, "%s: erasure queued; it is applied when the process that owns the contact's partition reaches it\n", c.ID)
	default:
		return apiError("forget", code, body)
	}
	return nil
}
