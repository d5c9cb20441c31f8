package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// MaxLine is the longest JSONL line replay reads (1 MiB); a longer line is
// bad input.
const MaxLine = 1 << 20

// Summary is what a replay did.
type Summary struct {
	Lines      int
	Applied    uint64
	Bad        int
	BadReasons map[event.Reason]int
	Duplicates uint64
	Firings    uint64
	Emitted    uint64
	Cooldown   uint64 // edges suppressed by a cooldown (not firings)
	Suppressed uint64 // actions suppressed by a guard or a cap
	Timers     uint64
	ByTrigger  map[string]uint64 // firings per trigger id
	// Identity (SPEC §6): anonymous ids linked to a user, the links that
	// merged state, and linking events with a refused link (once per
	// event) by kind (rules.ConflictKind's names).
	Links     uint64
	Merges    uint64
	Conflicts map[string]uint64
	Contacts  int
	Clock     int64
	Elapsed   time.Duration

	// Resolve maps an id to the contact it stands for at the end of the
	// replay, through the identity links as they stand then (SPEC §6):
	// the id itself when it has been a userId or is linked to nobody, else
	// the user it was merged into (Partition.Resolve). Backtest attributes
	// firings and conversions with it.
	Resolve func(id string) string `json:"-"`
}

func (s *Summary) String() string {
	clock := "none"
	if s.Clock != state.NoTime {
		clock = time.Unix(0, s.Clock).UTC().Format(time.RFC3339)
	}
	var conflicts uint64
	detail := ""
	for _, k := range rules.ConflictKinds {
		if n := s.Conflicts[k.String()]; n > 0 {
			conflicts += n
			if detail != "" {
				detail += ", "
			}
			detail += fmt.Sprintf("%d %s", n, k)
		}
	}
	if detail != "" {
		detail = " (" + detail + ")"
	}
	return fmt.Sprintf("replay: %d lines, %d events applied, %d bad, %d duplicates, %d contacts; %d links, %d merges, %d conflicts%s; %d firings, %d actions emitted, %d actions suppressed by guards or caps, %d edges inside a cooldown, %d timers fired; clock %s; %.2fs (%.0f events/s)",
		s.Lines, s.Applied, s.Bad, s.Duplicates, s.Contacts, s.Links, s.Merges, conflicts, detail,
		s.Firings, s.Emitted, s.Suppressed, s.Cooldown, s.Timers, clock,
		s.Elapsed.Seconds(), float64(s.Lines)/max(s.Elapsed.Seconds(), 1e-9))
}

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// Until fires the timers due up to this time at the end of input (Unix
	// ns); 0 means the last event's time (the replay clock).
	Until int64
	// Out receives one action JSON line per emitted record.
	Out io.Writer
	// Errs receives one line per bad input line: "LINE: reason".
	Errs io.Writer
	// NoLinks resolves every event to its userId, else its anonymousId,
	// without identity links, merges or blocked ids, as a live process
	// does until the cross-partition hand-over is in (DESIGN.md). For
	// tests that compare live output with replay's.
	NoLinks bool
	// Observe, if set, sees every Result of the replay (applied events,
	// repeats and fired timers) after its records are written; the Result
	// is reused afterwards. Its Firings include the firings whose actions
	// were all suppressed by guards or caps, which backtest counts.
	Observe func(*rules.Result)
	// Store, if set, is the store the replay uses instead of a new
	// in-memory one, so that the caller can read the contacts as they
	// stand at the end.
	Store *state.Memory
}

// Replay runs the rules over recorded events, one JSON (or msgpack-free
// JSON-lines) event per line, deterministically, with the in-memory store.
func Replay(ctx context.Context, rs *rules.Ruleset, in io.Reader, opt ReplayOptions) (*Summary, error) {
	start := time.Now()
	store := opt.Store
	if store == nil {
		store = state.NewMemory()
	}
	out := bufio.NewWriterSize(orDiscard(opt.Out), 64<<10)
	errs := orDiscard(opt.Errs)
	sum := &Summary{BadReasons: map[event.Reason]int{}}
	var writeErr error
	p := NewPartition(rs, store, func(res *rules.Result) {
		for i := range res.Records {
			if writeErr != nil {
				return
			}
			writeErr = writeRecord(out, &res.Records[i])
		}
		if opt.Observe != nil {
			opt.Observe(res)
		}
	})
	if !opt.NoLinks {
		p.UseLinks(state.NewMemoryLinks())
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	dec := event.Decoder{SkipContext: !rs.ReadsContext()}
	for sc.Scan() {
		sum.Lines++
		line := sc.Bytes()
		if len(trimSpace(line)) == 0 {
			continue
		}
		e, err := dec.Decode(line, event.JSON, 0)
		if err != nil {
			sum.Bad++
			sum.BadReasons[event.ReasonOf(err)]++
			fmt.Fprintf(errs, "line %d: %v\n", sum.Lines, err)
			continue
		}
		if err := p.Apply(ctx, e); err != nil {
			if r := event.ReasonOf(err); r != "" { // no usable id
				sum.Bad++
				sum.BadReasons[r]++
				fmt.Fprintf(errs, "line %d: %v\n", sum.Lines, err)
				continue
			}
			return sum, err
		}
		if writeErr != nil {
			return sum, fmt.Errorf("write actions: %w", writeErr)
		}
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("read events after line %d: %w (lines are limited to %d bytes)", sum.Lines, err, MaxLine)
	}
	until := opt.Until
	if until == 0 {
		until = p.Clock()
	}
	if until != state.NoTime {
		if err := p.Advance(ctx, until); err != nil {
			return sum, err
		}
	}
	if writeErr == nil {
		writeErr = out.Flush()
	}
	if writeErr != nil {
		return sum, fmt.Errorf("write actions: %w", writeErr)
	}
	st := p.Stats()
	sum.Applied, sum.Duplicates = st.Applied, st.Duplicates
	sum.Firings, sum.Emitted, sum.Timers = st.Firings, st.Emitted, st.TimersFired
	sum.Cooldown = st.SuppressedCooldown
	sum.Suppressed = st.SuppressedGuard + st.SuppressedCap
	sum.ByTrigger = make(map[string]uint64, len(rs.Triggers))
	for i, t := range rs.Triggers {
		sum.ByTrigger[t.ID] = st.ByTrigger[i]
	}
	sum.Links, sum.Merges = st.Links, st.Merges
	sum.Conflicts = make(map[string]uint64, len(rules.ConflictKinds))
	for _, k := range rules.ConflictKinds {
		sum.Conflicts[k.String()] = st.Conflicts[k]
	}
	sum.Contacts = store.Len()
	sum.Clock = p.Clock()
	sum.Elapsed = time.Since(start)
	sum.Resolve = p.Resolve
	return sum, nil
}

func writeRecord(w io.Writer, r *rules.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
