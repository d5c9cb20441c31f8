package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/leadpulse/leadpulse/backtest"
	"github.com/leadpulse/leadpulse/rules"
)

type backtestCmd struct {
	Rules       string `required:"" placeholder:"FILE" help:"Rules file (YAML) to measure."`
	Compare     string `placeholder:"FILE2" help:"A second rules file, measured on the same traffic and shown side by side."`
	Conversion  string `placeholder:"EXPR" help:"An event condition; a matching event is a conversion of its contact, e.g. 'type == \"track\" && event == \"Order Completed\"'."`
	Conversions string `placeholder:"FILE.csv" help:"Conversions as rows contact,time (RFC 3339), e.g. closed-won deals exported from a CRM; a first row that is not a time is a header."`
	Horizon     string `default:"30d" placeholder:"D" help:"How long after a firing a conversion counts as predicted (30d, 72h, 2w)."`
	Sweep       string `placeholder:"TRIGGER=FROM:TO:STEP" help:"The figures of a 'when: score >= N' trigger for each threshold N from FROM to TO (both included) by STEP."`
	JSON        bool   `name:"json" help:"Print JSON (ratios unrounded, times in seconds, null where undefined) instead of the table."`
	Chart       string `placeholder:"FILE.svg|.png" help:"Draw precision and recall against the sweep's threshold to this file (needs --sweep)."`
	Events      string `arg:"" help:"Recorded events as JSON lines; - for standard input."`
}

func (c *backtestCmd) Run(e *env) error {
	usage := func(format string, args ...any) error {
		return &exitError{code: 2, msg: "leadpulse backtest: " + fmt.Sprintf(format, args...)}
	}
	opt := backtest.Options{Rules: c.Rules, Compare: c.Compare, Conversion: c.Conversion, Errs: e.stderr}
	if (c.Conversion == "") == (c.Conversions == "") {
		return usage("give the conversions: --conversion EXPR or --conversions FILE.csv (one of them)")
	}
	for _, f := range []string{c.Rules, c.Compare} {
		if _, err := os.Stat(f); f != "" && err != nil {
			return usage("%v", err)
		}
	}
	h, err := rules.ParseDuration(c.Horizon)
	if err != nil {
		return usage("--horizon: %v", err)
	}
	opt.Horizon = h
	if c.Sweep != "" {
		if opt.Sweep, err = backtest.ParseSweep(c.Sweep); err != nil {
			return usage("%v", err)
		}
	}
	if c.Chart != "" {
		if err := backtest.ChartFormat(c.Chart); err != nil {
			return usage("%v", err)
		}
		if opt.Sweep == nil {
			return usage("--chart needs --sweep: it draws precision and recall for each threshold of the sweep")
		}
	}
	if c.Conversions != "" {
		f, err := os.Open(c.Conversions)
		if err != nil {
			return usage("%v", err)
		}
		opt.Conversions, err = backtest.ReadConversions(c.Conversions, f)
		f.Close()
		if err != nil {
			return &exitError{code: 1, msg: "leadpulse backtest: " + err.Error()}
		}
	}
	if c.Events == "-" {
		// Every replay reads the traffic again: keep standard input.
		data, err := io.ReadAll(e.stdin)
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
		opt.Events = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	} else {
		if _, err := os.Stat(c.Events); err != nil {
			return usage("%v", err)
		}
		opt.Events = func() (io.ReadCloser, error) { return os.Open(c.Events) }
	}
	start := time.Now()
	rep, err := backtest.Run(e.ctx, opt)
	if err != nil {
		var ve *rules.ValidationError
		var se *backtest.SweepError
		var ce *backtest.ConditionError
		switch {
		case errors.As(err, &ve), errors.As(err, &se), errors.As(err, &ce):
			return &exitError{code: 1, msg: err.Error()}
		}
		return err
	}
	if s := rep.Summary; s != nil {
		fmt.Fprintf(e.stderr, "backtest: %d lines, %d events applied, %d bad, %d duplicates; %d replays; %.2fs\n",
			s.Lines, s.Applied, s.Bad, s.Duplicates, rep.Replays, time.Since(start).Seconds())
	}
	if c.JSON {
		err = rep.WriteJSON(e.stdout)
	} else {
		err = rep.WriteTable(e.stdout)
	}
	if err != nil {
		return err
	}
	if c.Chart != "" {
		if err := rep.WriteChart(c.Chart); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
		fmt.Fprintf(e.stderr, "backtest: chart written to %s\n", c.Chart)
	}
	return nil
}
