package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/config"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/sinks"
	"github.com/leadpulse/leadpulse/stream"
)

// webUI is the admin UI's share of a command's wiring (dev and run): the
// per-contact history and live feed fed by the pipeline's observers, and
// the rules source that SIGHUP, POST /rules/reload and the file watch
// reload through.
type webUI struct {
	hist *admin.History
	src  *admin.RulesSource
	wg   sync.WaitGroup
}

// newWebUI returns the UI parts and sets the pipeline's observers in sc
// that history (config ui.history: events, actions or off) asks for. An
// observer left unset costs the partitions nothing: with "actions", the
// per-event record (1–3 µs of CPU an event) is not made.
func newWebUI(sc *stream.Scoring, history string) *webUI {
	o := admin.HistoryOptions{
		NoEvents:  history == config.UIHistoryActions || history == config.UIHistoryOff,
		NoActions: history == config.UIHistoryOff,
	}
	u := &webUI{hist: admin.NewHistory(o)}
	if !o.NoEvents {
		sc.OnApplied, sc.OnAppliedReads = u.hist.Applied, admin.HistoryReads
	}
	if !o.NoActions {
		sc.OnAction = u.hist.Action
	}
	return u
}

// rules makes the rules source once the pipeline exists. path is "" for
// rules without a file (dev's bundled example), content their text.
func (u *webUI) rules(path string, content []byte, p *stream.Pipeline, sinkCfg sinks.Config, reg prometheus.Registerer, log *slog.Logger) error {
	if path != "" && content == nil {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		content = b
	}
	var err error
	u.src, err = admin.NewRulesSource(admin.RulesSourceOptions{
		Path: path, Content: content, Running: p.Rules(), Registerer: reg, Logger: log,
		Apply: func(rs *rules.Ruleset) error {
			if err := p.SetRules(rs); err != nil {
				return err
			}
			for _, w := range unknownSinks(rs, sinkCfg) {
				log.Warn("leadpulse: " + w)
			}
			return nil
		},
	})
	return err
}

// options adds the UI's parts to the admin server's options.
func (u *webUI) options(o admin.Options) admin.Options {
	o.History, o.RulesSource = u.hist, u.src
	return o
}

// watch reloads the rules when the file changes, until ctx is done; wait
// joins it.
func (u *webUI) watch(ctx context.Context) {
	u.wg.Go(func() { u.src.Watch(ctx, 0, 0) })
}

func (u *webUI) wait() { u.wg.Wait() }

func uiURL(addr string) string { return fmt.Sprintf("http://%s/ui/", addr) }
