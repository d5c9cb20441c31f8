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
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong" // declarative CLI: subcommands, flags and help from struct tags

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

type cli struct {
	Replay replayCmd `cmd:"" help:"Run the rules over recorded events offline, deterministically."`
	Rules  rulesCmd  `cmd:"" help:"Check and test rules files."`
	Dev    devCmd    `cmd:"" help:"Run everything embedded: a Kafka-compatible broker, the pipeline, demo traffic, metrics and the admin API; print alerts as they fire."`
	Live   runCmds   `embed:""` // run, contact, forget (run.go)
	Bench  benchCmd  `cmd:"" help:"Measure throughput and event-to-action latency beside their ceilings (raw consume, raw Redis writes)."`

	Backtest backtestCmd `cmd:"" help:"Replay recorded traffic and measure each trigger against what converted: precision, recall, lift, lead time; sweep a score threshold; compare two rules files."`

	Help    helpCmd    `cmd:"" help:"Show the help of a command, e.g. leadpulse help rules test."`
	Version versionCmd `cmd:"" help:"Print the version of this binary."`

	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`
}

// helpCmd is `leadpulse help [COMMAND...]`: the same as COMMAND --help.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"The command, e.g. rules test."`
}

func (h *helpCmd) Run(e *env) error {
	if code := e.help(h.Command); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// versionCmd is `leadpulse version`.
type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	_, err := fmt.Fprintln(e.stdout, versionString())
	return err
}

// version is set at link time by release builds
// (-ldflags "-X main.version=v1.2.3"); otherwise the module version or the
// VCS revision the go command stamped into the binary stands for it.
var version = ""

// versionString is "leadpulse VERSION (commit REV[, modified], TIME) GOVERSION OS/ARCH".
func versionString() string {
	v, rev, at, modified := version, "", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	var build []string
	if rev != "" {
		c := "commit " + rev[:min(len(rev), 12)]
		if modified {
			c += ", modified"
		}
		build = append(build, c)
	}
	if at != "" {
		build = append(build, at)
	}
	s := "leadpulse " + v
	if len(build) > 0 {
		s += " (" + strings.Join(build, ", ") + ")"
	}
	return s + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
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
	// help prints the help of the command path (nil: the overview) and
	// returns the exit code.
	help func(path []string) int
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
		kong.Vars{"version": versionString()},
	)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// help parses COMMAND --help: kong prints the help and calls Exit(0).
	help := func(path []string) int {
		exit = -1
		_, err := parser.Parse(append(slices.Clone(path), "--help"))
		if exit >= 0 {
			return exit
		}
		if err != nil {
			fmt.Fprintf(stderr, "leadpulse help: %v\n", err)
			return 2
		}
		return 0
	}
	if len(args) == 0 {
		// Bare `leadpulse`: the overview of the commands, not an error.
		return help(nil)
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		return exit
	}
	if err != nil {
		fmt.Fprintf(stderr, "leadpulse: %v\n", err)
		return 2
	}
	if err := kctx.Run(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, help: help}); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, ee.msg)
			}
			return ee.code
		}
		// The one place that names the command: the commands return their
		// errors without "leadpulse CMD:" (an exitError's message is whole).
		fmt.Fprintf(stderr, "%s: %v\n", commandName(kctx.Command()), err)
		return 1
	}
	return 0
}

// commandName is "leadpulse" and the command's words without its
// arguments: kong's "contact <id>" → "leadpulse contact".
func commandName(cmd string) string {
	words := []string{"leadpulse"}
	for w := range strings.FieldsSeq(cmd) {
		if !strings.HasPrefix(w, "<") {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

type replayCmd struct {
	Rules  string `required:"" type:"existingfile" placeholder:"FILE" help:"Rules file (YAML)."`
	Until  string `placeholder:"TIME" help:"At the end of input, fire timers due up to this RFC 3339 time (default: the last event's time; an earlier time is warned about, the clock never goes back)."`
	Events string `arg:"" optional:"" default:"-" placeholder:"EVENTS" help:"Events as JSON lines (a UTF-8 byte order mark is skipped; msgpack is not read); - for standard input."`
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
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse replay: %s is a directory; give a file of JSON lines, or - for standard input", r.Events)}
		}
		in = f
	}
	sum, err := engine.Replay(e.ctx, rs, in, opt)
	if err != nil {
		var re *engine.ReadError
		if errors.As(err, &re) {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse replay: %s: %v", r.eventsName(), re)}
		}
		return err
	}
	if opt.Until != 0 && sum.Clock != state.NoTime && opt.Until < sum.Clock {
		// The clock only moves forward: timers up to the last event's time
		// have fired as the events were read.
		fmt.Fprintf(e.stderr, "leadpulse replay: warning: --until %s is before the last event's time %s; timers due up to %s fired (the replay clock never goes back): give a later --until, or leave it out\n",
			r.Until, fmtTime(sum.Clock), fmtTime(sum.Clock))
	}
	fmt.Fprintln(e.stderr, sum.String())
	return nil
}

func (r *replayCmd) eventsName() string {
	if r.Events == "-" {
		return "standard input"
	}
	return r.Events
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

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

// Run runs the tests. A file without tests says so; when no file has any
// test (nothing was checked) the exit is 1, so that a CI step cannot pass
// by testing nothing; `rules check` is the command that only validates.
func (r *rulesTestCmd) Run(e *env) error {
	passed, failed := 0, 0
	for _, f := range r.Files {
		rs, err := rules.LoadFile(f)
		if err != nil {
			failed++
			fmt.Fprintln(e.stdout, err)
			continue
		}
		if len(rs.Tests) == 0 {
			fmt.Fprintf(e.stdout, "no tests in %s: add a tests: section (see docs/rules.md), or use `leadpulse rules check` to validate only\n", f)
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
	if passed+failed == 0 {
		fmt.Fprintln(e.stdout, "no tests: nothing was checked")
		return &exitError{code: 1}
	}
	fmt.Fprintf(e.stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}
