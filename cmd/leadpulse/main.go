// Command leadpulse is the one binary of leadpulse: replay, rules check and
// test, dev, run, bench, contact and forget (see the README and docs/). It is
// wiring only: flags, messages and exit codes; the parts are composed in
// internal/app.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong" // declarative CLI: subcommands, flags and help from struct tags

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/rules"
)

type cli struct {
	Replay replayCmd `cmd:"" help:"Run the rules over recorded events offline, deterministically."`
	Rules  rulesCmd  `cmd:"" help:"Check and test rules files."`
	Dev    devCmd    `cmd:"" help:"Run everything embedded: a Kafka-compatible broker, the pipeline, demo traffic; print alerts as they fire."`
	Live   runCmds   `embed:""` // run, contact, forget (run.go)
	Bench  benchCmd  `cmd:"" help:"Measure throughput and event-to-action latency beside their ceilings (raw consume, raw Redis writes)."`

	Backtest backtestCmd `cmd:"" help:"Replay recorded traffic and measure each trigger against what converted: precision, recall, lift, lead time; sweep a score threshold; compare two rules files."`
}

type rulesCmd struct {
	Check rulesCheckCmd `cmd:"" help:"Validate rules files; print FILE:LINE: RULE-ID: message for each problem."`
	Test  rulesTestCmd  `cmd:"" help:"Run the tests: section of rules files."`
}

// exitError carries an exit code through kong.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("leadpulse"),
		kong.Description("Real-time behavioural lead scoring and triggers on Kafka."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		return exit
	}
	if err != nil {
		fmt.Fprintf(stderr, "leadpulse: %v\n", err)
		return 2
	}
	if err := kctx.Run(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "leadpulse: %v\n", err)
		return 1
	}
	return 0
}

type replayCmd struct {
	Rules  string `required:"" type:"existingfile" help:"Rules file (YAML)."`
	Until  string `help:"At the end of input, fire timers due up to this RFC 3339 time (default: the last event's time)."`
	Events string `arg:"" optional:"" default:"-" help:"Events as JSON lines; - for standard input."`
}

func (r *replayCmd) Run(e *env) error {
	rs, err := loadRules(e, r.Rules)
	if err != nil {
		return err
	}
	opt := engine.ReplayOptions{Out: e.stdout, Errs: e.stderr}
	if r.Until != "" {
		t, err := time.Parse(time.RFC3339Nano, r.Until)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse replay: --until %q is not an RFC 3339 time (for example 2026-03-07T00:00:00Z)", r.Until)}
		}
		opt.Until = t.UnixNano()
	}
	in := e.stdin
	if r.Events != "-" {
		f, err := os.Open(r.Events)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse replay: %v", err)}
		}
		defer f.Close()
		in = f
	}
	sum, err := engine.Replay(e.ctx, rs, in, opt)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, sum.String())
	return nil
}

func loadRules(e *env, path string) (*rules.Ruleset, error) {
	rs, err := rules.LoadFile(path)
	if err != nil {
		var ve *rules.ValidationError
		if errors.As(err, &ve) {
			return nil, &exitError{code: 1, msg: ve.Error()}
		}
		return nil, &exitError{code: 2, msg: fmt.Sprintf("leadpulse: %v", err)}
	}
	return rs, nil
}

type rulesCheckCmd struct {
	Files []string `arg:"" help:"Rules files."`
}

func (r *rulesCheckCmd) Run(e *env) error {
	failed := false
	for _, f := range r.Files {
		rs, err := rules.LoadFile(f)
		if err != nil {
			failed = true
			fmt.Fprintln(e.stdout, err)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: ok (%d windows, %d scoring rules, %d triggers, %d actions, %d tests)\n",
			f, len(rs.Windows), len(rs.Scoring)+len(rs.Fit), len(rs.Triggers), len(rs.Actions), len(rs.Tests))
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

type rulesTestCmd struct {
	Files []string `arg:"" help:"Rules files."`
}

func (r *rulesTestCmd) Run(e *env) error {
	passed, failed := 0, 0
	for _, f := range r.Files {
		rs, err := rules.LoadFile(f)
		if err != nil {
			failed++
			fmt.Fprintln(e.stdout, err)
			continue
		}
		for _, res := range engine.RunTests(e.ctx, rs) {
			if res.Passed() {
				passed++
				fmt.Fprintf(e.stdout, "ok   %s: %s\n", f, res.Test.Name)
				continue
			}
			failed++
			fmt.Fprintf(e.stdout, "FAIL %s: %s\n", f, res.Test.Name)
			for _, msg := range res.Errors {
				fmt.Fprintln(e.stdout, msg)
			}
		}
	}
	fmt.Fprintf(e.stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}
