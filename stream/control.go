package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// Control records travel on the scoring stage's topic (Topics.Keyed, or
// Topics.Events with InputKeyed) among the events, keyed by contact, and
// are applied by the partition's owner in order with the contact's events.
// A record with the header HeaderControl is a control record; its value is
// ignored.
//
//	leadpulse-control: forget   erase everything held about the contact
//	                            (the key): state.Store.Delete, which for
//	                            Redis is Cache.Delete → Redis.Erase. Events
//	                            after it start a fresh contact.
//
// Any other control value, or a control record without a key, goes to the
// DLQ with reason "control".
const (
	HeaderControl = "leadpulse-control"
	ControlForget = "forget"
)

// ReasonControl is the dead-letter reason of a control record the scoring
// stage does not understand.
const ReasonControl event.Reason = "control"

// ErrNotRunning is returned by the admin calls of a Pipeline that is not
// consuming (not started yet, or stopped).
var ErrNotRunning = errors.New("stream: the pipeline is not running")

// SetRules makes the partitions run rs from their next batch on. Each
// partition switches between two batches, when the previous batch's
// actions, state and offset are committed: its contacts are re-aligned to
// rs as they are next used (state.Contact.Bind keeps the state of rules that
// still exist), and its timer index is rebuilt from the stored timers. The
// actions of a batch are all computed under one rules file.
func (p *Pipeline) SetRules(rs *rules.Ruleset) error {
	if rs == nil {
		return configError("SetRules: no rules")
	}
	p.rules.Store(rs)
	if s := p.scorer.Load(); s != nil {
		s.mu.Lock()
		ws := make([]*worker, 0, len(s.workers))
		for _, w := range s.workers {
			ws = append(ws, w)
		}
		s.mu.Unlock()
		for _, w := range ws {
			w.signal() // wake idle partitions: they switch at once
		}
	}
	return nil
}

// Rules returns the rules the partitions run (or switch to at their next
// batch).
func (p *Pipeline) Rules() *rules.Ruleset { return p.rules.Load() }

// Partitions returns the number of partitions of the scoring topic
// assigned to this process.
func (p *Pipeline) Partitions() int { return int(p.parts.Load()) }

// runningScorer returns the scoring stage once it is consuming.
func (p *Pipeline) runningScorer() (*scorer, error) {
	// scoreReady is set after the stage's client exists: reading it first
	// orders the reads of s.cl and s.adm after their writes.
	if !p.scoreReady.Load() {
		return nil, ErrNotRunning
	}
	s := p.scorer.Load()
	if s == nil {
		return nil, ErrNotRunning
	}
	return s, nil
}

// Inspect returns a copy of the contact's state. With Redis it is the
// committed state (state.Redis.Inspect; a batch in progress is not seen);
// with memory it is asked of the partition that owns the contact, between
// two of its batches, and must be owned by this process. A contact that is
// not stored is an error matching state.ErrNotFound.
func (p *Pipeline) Inspect(ctx context.Context, id string) (*state.Stored, error) {
	if p.sc.Redis != nil {
		return p.sc.Redis.Inspect(ctx, id)
	}
	s, err := p.runningScorer()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	part := partitionOfKey(s.cfg.scoreTopic(), id, s.nparts)
	w := s.workers[part]
	s.mu.Unlock()
	if w == nil {
		return nil, fmt.Errorf("%w: contact %q belongs to partition %d, which is not assigned to this process", ErrNotRunning, id, part)
	}
	type result struct {
		c   *state.Contact
		err error
	}
	reply := make(chan result, 1)
	req := func(ctx context.Context) {
		c, err := w.store.Get(ctx, id)
		if err != nil {
			reply <- result{err: err}
			return
		}
		if c.Seq == 0 {
			reply <- result{err: fmt.Errorf("stream: contact %q: %w", id, state.ErrNotFound)}
			return
		}
		b, err := state.Encode(c) // a copy the caller may change
		if err == nil {
			c, err = state.Decode(b)
		}
		reply <- result{c: c, err: err}
	}
	select {
	case w.reqs <- req:
	case <-w.done:
		return nil, fmt.Errorf("%w: partition %d is being handed over", ErrNotRunning, part)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-reply:
		if r.err != nil {
			return nil, r.err
		}
		// The memory store keeps no Kafka position (Contact.Pos is zero):
		// say where the contact is, and that it is in memory.
		return &state.Stored{Contact: r.c, Pos: state.Position{Partition: part}, Memory: true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Erasure is a Forget request on its way.
type Erasure struct {
	Contact   string
	Partition int32 // where the control record was written
	Offset    int64
	// Applied is true once the scoring group committed past the control
	// record: the contact's state is erased (a later event starts a new
	// one).
	Applied bool
}

// Forget asks for the erasure of everything held about the contact: it
// writes a forget control record to the contact's partition of the
// scoring topic, so that whichever process owns the partition erases the
// contact in order with its events, and then waits, until ctx is done,
// for the scoring group to commit past it. It returns the erasure with
// Applied false when ctx ended first: the erasure still happens when the
// partition's owner reaches the record.
func (p *Pipeline) Forget(ctx context.Context, id string) (Erasure, error) {
	e := Erasure{Contact: id}
	if id == "" {
		return e, configError("Forget: no contact id")
	}
	s, err := p.runningScorer()
	if err != nil {
		return e, err
	}
	topic := s.cfg.scoreTopic()
	rec := &kgo.Record{Topic: topic, Key: []byte(id), Headers: []kgo.RecordHeader{{Key: HeaderControl, Value: []byte(ControlForget)}}}
	if err := s.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return e, fmt.Errorf("stream: forget %q: produce the control record to %q: %w", id, topic, err)
	}
	e.Partition, e.Offset = rec.Partition, rec.Offset
	for {
		offs, err := s.adm.FetchOffsets(ctx, s.cfg.Group)
		if err == nil {
			if o, ok := offs.Lookup(topic, e.Partition); ok && o.Err == nil && o.At > e.Offset {
				e.Applied = true
				return e, nil
			}
		}
		select {
		case <-ctx.Done():
			return e, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// partitionOfKey is the partition Kafka's default partitioner (murmur2)
// gives the key among n; 0 when n is unknown.
func partitionOfKey(topic, key string, n int) int32 {
	if n <= 0 {
		return 0
	}
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Key: []byte(key)}, n))
}

// knownControls are the control header's values controlOf returns without
// copying the header.
var knownControls = [...]string{ControlForward, ControlForget, ControlLinkRequest, ControlHandover,
	ControlRefused, ControlLinked, ControlUnlink, ControlUnmerge}

// controlOf returns the control header's value, if r is a control record.
func controlOf(r *kgo.Record) (string, bool) {
	for i := range r.Headers {
		if r.Headers[i].Key == HeaderControl {
			v := r.Headers[i].Value
			for _, c := range knownControls {
				if string(v) == c {
					return c, true // no copy of the value for each record
				}
			}
			return string(v), true
		}
	}
	return "", false
}

// control checks a control record of the batch; it dead-letters one that
// cannot be applied and reports whether to apply it.
func (w *worker) control(r *kgo.Record, ctl string) bool {
	dlq := w.cfg.Topics.DLQ
	if ctl != ControlForget && !isIdentityControl(ctl) || len(r.Key) == 0 {
		w.m.bad(stageScore, ReasonControl)
		w.deadLetter(deadLetter(dlq, r, ReasonControl, fmt.Sprintf(
			"control record %s=%q with key %q: the only control is %s=%s, keyed by the contact to erase", HeaderControl, ctl, r.Key, HeaderControl, ControlForget)))
		return false
	}
	if w.nparts > 0 {
		if want := w.partitionOf(string(r.Key)); want != r.Partition {
			w.m.bad(stageScore, ReasonMisrouted)
			w.deadLetter(deadLetter(dlq, r, ReasonMisrouted, fmt.Sprintf(
				"forget of contact %q belongs in partition %d of %d (murmur2 of the contact), not %d: produce it with Kafka's default partitioner",
				r.Key, want, w.nparts, r.Partition)))
			return false
		}
	}
	return true
}

// swapRules makes the worker run rs from now on; called between batches,
// when everything before is committed.
func (w *worker) swapRules(ctx context.Context, rs *rules.Ruleset) error {
	clock := w.eng.Clock()
	w.rs = rs
	w.eng = w.newEngine(rs)
	if skip, sel := !rs.ReadsContext(), w.s.sc.reads(rs); skip != w.dec.SkipContext || !sel.Equal(w.dec.Select) {
		w.dec.SkipContext, w.dec.Select = skip, sel
		w.forgetHeldEvents() // decoded with the keys the old rules read
	}
	if clock != state.NoTime {
		// Nothing is indexed yet: this only carries the clock over.
		if err := w.eng.Advance(ctx, clock); err != nil {
			return err
		}
	}
	w.stats = rules.Stats{ByTrigger: make([]uint64, len(rs.Triggers))}
	w.skipped = 0
	w.firings = w.firings[:0]
	for _, t := range rs.Triggers {
		w.firings = append(w.firings, w.m.firings.WithLabelValues(t.ID))
	}
	// Trigger positions may have changed: index the stored timers again.
	if w.cache != nil {
		upTo := w.loaded
		w.loaded = state.NoTime
		if upTo != state.NoTime {
			if err := w.loadTimers(ctx, upTo); err != nil {
				return err
			}
		}
	} else {
		w.indexMemoryTimers()
	}
	w.log.Info("stream: partition switched to new rules", "rules", rs.File, "triggers", len(rs.Triggers))
	return nil
}

// serve runs the admin requests waiting for the worker, between batches.
func (w *worker) serve(ctx context.Context) {
	for {
		select {
		case f := <-w.reqs:
			f(ctx)
		default:
			return
		}
	}
}
