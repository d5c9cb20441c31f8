package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/leadpulse/leadpulse/action"
)

// Stdout writes one line per action to a writer (the process's standard
// output in production): the action record's JSON (format json), or a
// readable line (format text):
//
//	2026-03-06 09:00:00.000  pricing-3x         sales-alert      → sales      u1               score  120.0  Hot lead a@b.c scored 120 (pricing-3x)
//
// A batch is one write call, under a lock, so lines of concurrent Writes
// never interleave. Write errors are transient.
type Stdout struct {
	mu   sync.Mutex // guards w and buf
	w    io.Writer
	buf  bytes.Buffer
	text bool
}

// NewStdout returns a sink writing to w in format (json or text; "" is
// json).
func NewStdout(w io.Writer, format string) *Stdout {
	return &Stdout{w: w, text: format == FormatText}
}

// Write writes the batch's lines.
func (s *Stdout) Write(ctx context.Context, batch []Action) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	for i := range batch {
		a := &batch[i]
		if s.text {
			appendText(&s.buf, &a.Record)
		} else {
			line := a.JSON
			if bytes.IndexByte(line, '\n') >= 0 { // pretty-printed upstream: compact to one line
				var c bytes.Buffer
				if err := json.Compact(&c, line); err != nil {
					return Permanent(fmt.Errorf("stdout: action %s: %w", a.Record.ID, err))
				}
				line = c.Bytes()
			}
			s.buf.Write(line)
		}
		s.buf.WriteByte('\n')
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return Transient(fmt.Errorf("stdout: %w", err))
	}
	return nil
}

func appendText(b *bytes.Buffer, r *action.Record) {
	sink := r.Sink
	if sink == "" {
		sink = "-"
	}
	msg := r.Message
	if msg == "" {
		msg = "(no message)"
	}
	at := r.At
	if t, err := time.Parse(time.RFC3339Nano, r.At); err == nil {
		at = t.UTC().Format("2006-01-02 15:04:05.000")
	}
	fmt.Fprintf(b, "%s  %-18s %-16s → %-10s %-16s score %6.1f  %s", at, r.Trigger, r.Action, sink, r.Contact, r.Score, msg)
}

// Close does nothing: the writer is the caller's.
func (s *Stdout) Close(context.Context) error { return nil }
