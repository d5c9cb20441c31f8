package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// MaxLine is the longest JSONL line replay decodes (1 MiB); a longer line is
// bad input (ReasonTooLong), reported and skipped like any other.
const MaxLine = 1 << 20

// ReasonTooLong is the bad-input reason of a replay line longer than
// MaxLine. Live, the broker's record size limit plays that part.
const ReasonTooLong event.Reason = "too_long"

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
	// were all suppressed by guards or caps, which backtest counts. Its
	// Event holds only what the rules read: the properties and context
	// keys of rules.Ruleset.Reads (and no context when no rule reads it).
	Observe func(*rules.Result)
	// Store, if set, is the store the replay uses instead of a new
	// in-memory one, so that the caller can read the contacts as they
	// stand at the end.
	Store *state.Memory
}

// Replay runs the rules over recorded events, one JSON event per line (JSON
// lines; a UTF-8 byte order mark is skipped), deterministically, with the
// in-memory store. msgpack is not read: its bytes may hold newlines, so it
// cannot be split into lines; a line that starts like a msgpack map is bad
// input that says so. Bad lines (malformed, too long, …) are reported on
// opt.Errs with their number and skipped. An error is returned only when
// reading in or writing Out fails, or ctx ends.
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
	// The partition is the store's and the link table's only user until
	// the replay returns: their lock-free views.
	p := NewPartition(rs, store.Owned(), func(res *rules.Result) {
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
		p.UseLinks(state.NewMemoryLinks().Owned())
	}
	lines := &lineReader{r: bufio.NewReaderSize(in, 64<<10), max: MaxLine}
	// Only the properties and context keys the rules read are kept
	// (rules.Ruleset.Reads); the rest of each event is checked, not kept.
	dec := event.Decoder{SkipContext: !rs.ReadsContext(), Select: rs.Reads(), MaxSpare: 3 * readAhead}
	bad := func(line int, err error) {
		sum.Bad++
		sum.BadReasons[event.ReasonOf(err)]++
		fmt.Fprintf(errs, "line %d: %v\n", line, err)
	}
	// Lines are read and decoded readAhead at a time, so that their
	// contacts' state is asked for before the first is applied
	// (Partition.Prefetch); then they are taken in order, each as if it
	// had just been read: what a replay prints, and when, is the same.
	batch := make([]aheadLine, readAhead)
	evs := make([]*event.Event, 0, readAhead)
	for eof := false; !eof; {
		n := 0
		evs = evs[:0]
		for n < len(batch) && !eof {
			l := &batch[n]
			l.line, l.err, l.ok = sum.Lines+n+1, nil, false
			line, size, err := lines.next()
			switch {
			case err == io.EOF:
				eof = true
				continue
			case err != nil:
				l.err, eof = &ReadError{Line: l.line, Err: err}, true
			case size > MaxLine:
				l.err = &event.Error{Reason: ReasonTooLong, Msg: fmt.Sprintf(
					"the line has %d bytes, above the limit of %d (1 MiB) for one event; an event that large is almost certainly a concatenation or an embedded payload: split it, one event per line", size, MaxLine)}
			case len(trimSpace(line)) == 0:
			case event.Detect(line) == event.Msgpack:
				l.err = &event.Error{Reason: event.ReasonMalformed, Msg: fmt.Sprintf(
					"the line starts like a msgpack map (byte 0x%02x); replay reads JSON lines only (msgpack is read live, from Kafka record values): convert the events to JSON, one object per line", line[0])}
			default:
				if err := dec.DecodeInto(&l.e, line, event.JSON, 0); err != nil {
					l.err = err
				} else {
					l.ok = true
					evs = append(evs, &l.e)
				}
			}
			n++
		}
		p.Prefetch(evs)
		for i := range batch[:n] {
			l := &batch[i]
			if _, ok := l.err.(*ReadError); ok {
				return sum, l.err
			}
			sum.Lines = l.line
			switch {
			case l.err != nil:
				bad(l.line, l.err)
			case l.ok:
				err := p.Apply(ctx, &l.e)
				dec.Recycle(&l.e)
				if err != nil {
					if event.ReasonOf(err) != "" { // no usable id
						bad(l.line, err)
						continue
					}
					return sum, err
				}
				if writeErr != nil {
					return sum, fmt.Errorf("write actions: %w", writeErr)
				}
			}
		}
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

// readAhead is how many lines replay reads and decodes before it applies
// the first of them (see Replay).
const readAhead = 16

// aheadLine is a line read ahead: its number, and its event (ok) or why
// it is bad, or the ReadError that ends the input; neither for a blank
// line.
type aheadLine struct {
	line int
	e    event.Event
	ok   bool
	err  error
}

// ReadError is a failure to read the events (not a bad line): the input
// cannot be read on from Line on.
type ReadError struct {
	Line int // the line being read
	Err  error
}

func (e *ReadError) Error() string { return fmt.Sprintf("read events at line %d: %v", e.Line, e.Err) }
func (e *ReadError) Unwrap() error { return e.Err }

// lineReader splits its input into lines of at most max bytes; a longer
// line is read to its end and dropped, and next reports its size.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// next returns the next line without its newline, and its size in bytes;
// line is nil when size > max. It returns io.EOF after the last line (a
// last line without a newline is a line).
func (l *lineReader) next() (line []byte, size int, err error) {
	l.buf = l.buf[:0]
	chunk, err := l.r.ReadSlice('\n')
	if err == nil && len(chunk) <= l.max+1 {
		// The whole line is in the reader's buffer (the common case):
		// no copy. It stays valid until the next read.
		return chunk[:len(chunk)-1], len(chunk) - 1, nil
	}
	for first := true; ; first = false {
		if !first {
			chunk, err = l.r.ReadSlice('\n')
		}
		size += len(chunk)
		if size <= l.max+1 { // +1: the newline does not count
			l.buf = append(l.buf, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if size == 0 {
				return nil, 0, io.EOF
			}
		case err != nil:
			return nil, 0, err
		default:
			size-- // the newline
		}
		if size > l.max {
			return nil, size, nil
		}
		return bytes.TrimSuffix(l.buf, []byte{'\n'}), size, nil
	}
}

func writeRecord(w *bufio.Writer, r *rules.Record) error {
	// encoding/json's bytes without its reflection (action.Record.AppendJSON).
	b, err := r.AppendJSON(w.AvailableBuffer())
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
