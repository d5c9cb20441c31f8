package stream

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// Identity across partitions (SPEC §6; DESIGN.md "Identity, live"): the
// records the scoring workers send one another on the scoring topic, all
// control records (HeaderControl) keyed by the contact whose partition
// applies them.
//
//	link-request  key A  from U's owner: link A to U (HeaderUser, HeaderLink,
//	                     HeaderTime, HeaderFull)
//	handover      key U  from A's owner: A's state (the value; empty when A
//	                     had none) for the link (HeaderAnon, HeaderLink)
//	link-refused  key U  from A's owner: a conflict (HeaderKind)
//	linked        key U  from A's owner: A was U's already
//	forward       key U  from A's owner: an event carrying only the retired
//	                     A, unchanged (HeaderAnon, HeaderFrom: its record)
//	unlink        key A  from U's owner, when U is erased (HeaderUser)
//	unmerge       key U  from A's owner, when the merged A is erased: take
//	                     A off U's list (HeaderAnon, HeaderFrom: the erasure's
//	                     record)
//
// The engine keeps every fact in contact state (engine/live.go); the worker
// holds a parked user's records in memory and does not commit its offset
// past the first of them, so that a crash re-reads them.
const (
	ControlLinkRequest = "link-request"
	ControlHandover    = "handover"
	ControlRefused     = "link-refused"
	ControlLinked      = "linked"
	ControlForward     = "forward"
	ControlUnlink      = "unlink"
	ControlUnmerge     = "unmerge"

	HeaderUser = "leadpulse-user"
	HeaderAnon = "leadpulse-anon"
	HeaderLink = "leadpulse-link"
	HeaderTime = "leadpulse-time"
	HeaderFull = "leadpulse-full"
	HeaderKind = "leadpulse-kind"
	HeaderFrom = "leadpulse-forwarded-from"
)

// parked is a user held behind its linking event.
type parked struct {
	recs  []held    // the linking event first, then every later record of the user
	since time.Time // when parked (the timeout counts from here)
	asked time.Time // when the pending request was produced (zero: before a restart)
}

// held is a record of a parked user with the event decoded when it was
// read, so that its release does not decode it again (in a backlog's drain
// about a third of the records are held while the anonymous ids'
// partitions catch up). e is nil when the partition held maxHeldEvents
// decoded events already: the release decodes the record again, as it did
// before the events were kept. Nothing of it is persisted: after a crash
// or a rebalance the records are read again from Kafka (the offset is not
// committed past the first held record).
type held struct {
	r *kgo.Record
	e *event.Event
}

// maxHeldEvents bounds the decoded events a partition keeps with its held
// records: about 420 bytes each beside the record (estimated; the bench's B2B events,
// context skipped, only the properties the rules read kept: the 360-byte
// Event and its texts, a traits map on identify events; 570 when every
// property was kept in a map), so at most about 7 MB a partition. 16,384 covers the
// parked users of the bench's backlog (300,000 events on 6 partitions held
// up to 54,000 records at once); held records beyond it keep only the
// record, and their release decodes it again, as before.
const maxHeldEvents = 16384

// hold returns r as a held record, taking over the decoded event *e (its
// maps are the held record's now; *e is reset) while the partition keeps
// fewer than maxHeldEvents. A fetched record is copied out of its batch,
// which goes back to the fetchPool without waiting for the hand-over
// (fetchpool.go): a backlog's parked users hold records of nearly every
// batch.
func (w *worker) hold(r *kgo.Record, e *event.Event) held {
	keep := w.heldEvents < maxHeldEvents
	var h held
	switch {
	case r.Context != nil && keep: // the record's copy and the event in one allocation
		b := new(heldBox)
		detach(&b.r, r)
		h = held{r: &b.r, e: &b.e}
	case r.Context != nil:
		h.r = new(kgo.Record)
		detach(h.r, r)
	case keep:
		h = held{r: r, e: new(event.Event)}
	default:
		h.r = r
	}
	if r.Context != nil {
		w.used = append(w.used, r)
	}
	if keep {
		*h.e = *e
		*e = event.Event{}
		w.heldEvents++
	}
	return h
}

// heldBox is a held record's copy beside its decoded event.
type heldBox struct {
	r kgo.Record
	e event.Event
}

// detach makes c a copy of r that shares no memory with r's fetched batch,
// and no pool (Context nil: Recycle does nothing): its key, value and
// header values in one new buffer.
func detach(c, r *kgo.Record) {
	*c = *r
	c.Context = nil
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, r.Key...)
	buf = append(buf, r.Value...)
	c.Key, c.Value = buf[:len(r.Key):len(r.Key)], buf[len(r.Key):len(buf):len(buf)]
	if r.Key == nil {
		c.Key = nil
	}
	if len(r.Headers) > 0 {
		c.Headers = make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			at := len(buf)
			buf = append(buf, h.Value...)
			c.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: buf[at:len(buf):len(buf)]}
		}
	}
}

// own gives out, a record to produce, its own copy of its key, value and
// header values, which may point into a fetched record's batch (a dead
// letter's or a forward's): in one new buffer, with a new header slice.
func own(out *kgo.Record) {
	src := *out
	detach(out, &src)
}

// forgetHeldEvents drops the decoded events of the held records: their
// release decodes the records again (the rules changed which keys of
// properties and context, or whether `context`, the partition decodes).
func (w *worker) forgetHeldEvents() {
	for _, p := range w.parked {
		for i := range p.recs {
			if e := p.recs[i].e; e != nil {
				w.dec.Recycle(e)
				p.recs[i].e = nil
			}
		}
	}
	w.heldEvents = 0
}

func isIdentityControl(ctl string) bool {
	switch ctl {
	case ControlLinkRequest, ControlHandover, ControlRefused, ControlLinked, ControlUnlink, ControlUnmerge:
		return true
	}
	return false
}

// headerBytes returns the value of r's header k, in place (nil when
// absent).
func headerBytes(r *kgo.Record, k string) []byte {
	for i := range r.Headers {
		if r.Headers[i].Key == k {
			return r.Headers[i].Value
		}
	}
	return nil
}

func headerOf(r *kgo.Record, k string) string { return string(headerBytes(r, k)) }

func fmtPos(p state.Position) string { return string(appendPos(nil, p)) }

func appendPos(b []byte, p state.Position) []byte {
	b = strconv.AppendInt(b, int64(p.Partition), 10)
	b = append(b, ':')
	return strconv.AppendInt(b, p.Offset, 10)
}

func parsePos(s []byte) (state.Position, error) {
	a, b, ok := bytes.Cut(s, []byte(":"))
	p, ok1 := parseInt(a, 32)
	o, ok2 := parseInt(b, 64)
	if !ok || !ok1 || !ok2 {
		return state.Position{}, fmt.Errorf("position %q is not PARTITION:OFFSET", s)
	}
	return state.Position{Partition: int32(p), Offset: o}, nil
}

// parseInt is strconv.ParseInt(string(b), 10, bitSize) without the copy
// of b (decimal digits with an optional sign).
func parseInt(b []byte, bitSize int) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg || len(b) > 0 && b[0] == '+' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	limit := uint64(1) << (bitSize - 1)
	if n > limit || n == limit && !neg {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// controlValues are the control header's values, shared by the records
// this worker produces (the producer only reads them).
var controlValues = func() map[string][]byte {
	m := map[string][]byte{}
	for _, c := range knownControls {
		m[c] = []byte(c)
	}
	return m
}()

// control is a control record being built: its header values share one
// buffer, so that a record costs a few allocations rather than one per
// header and number.
type control struct {
	r   *kgo.Record
	buf []byte
}

// newControl starts a control record of kind ctl keyed by key, with room
// for n more headers whose values take about size bytes.
func (w *worker) newControl(key, ctl string, n, size int) control {
	v := controlValues[ctl]
	if v == nil {
		v = []byte(ctl)
	}
	hs := make([]kgo.RecordHeader, 1, 1+n)
	hs[0] = kgo.RecordHeader{Key: HeaderControl, Value: v}
	return control{r: &kgo.Record{Topic: w.topic, Key: []byte(key), Headers: hs}, buf: make([]byte, 0, size)}
}

// add adds header k with the value appended to buf since at. A buffer that
// had to grow leaves the earlier values in the old one, unchanged.
func (c *control) add(k string, at int) *control {
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: k, Value: c.buf[at:len(c.buf):len(c.buf)]})
	return c
}

func (c *control) str(k, v string) *control {
	at := len(c.buf)
	c.buf = append(c.buf, v...)
	return c.add(k, at)
}

func (c *control) pos(k string, p state.Position) *control {
	at := len(c.buf)
	c.buf = appendPos(c.buf, p)
	return c.add(k, at)
}

func (c *control) int(k string, n int64) *control {
	at := len(c.buf)
	c.buf = strconv.AppendInt(c.buf, n, 10)
	return c.add(k, at)
}

// posBytes is the most bytes appendPos writes.
const posBytes = 11 + 1 + 20

func (w *worker) sendRequest(q *engine.LinkRequest) {
	full := "0"
	if q.Full {
		full = "1"
	}
	c := w.newControl(q.Anon, ControlLinkRequest, 4, len(q.User)+posBytes+20+1)
	c.str(HeaderUser, q.User).pos(HeaderLink, q.Link).int(HeaderTime, q.Time).str(HeaderFull, full)
	w.out = append(w.out, c.r)
	w.meta = append(w.meta, outMeta{})
}

// heldContact reports whether the user's records are held (engine hook).
func (w *worker) heldContact(id string) bool {
	return w.parkedUser(id) != nil
}

// parkedUser returns the parked user id, or nil: the filter first, which
// answers most events without the map. Every event of a partition asks,
// and while a backlog drains the map holds hundreds of users whose
// lookups miss the caches (2.7% of the bench drain's CPU profile).
func (w *worker) parkedUser(id string) *parked {
	if len(w.parked) == 0 || !w.parkedIDs.maybe(id) {
		return nil
	}
	return w.parked[id]
}

// park holds user's records behind p.
func (w *worker) park(user string, p *parked) {
	if _, ok := w.parked[user]; !ok {
		w.parkedIDs.add(user)
	}
	w.parked[user] = p
}

// unpark forgets user's entry in the parked users.
func (w *worker) unpark(user string) {
	if _, ok := w.parked[user]; ok {
		delete(w.parked, user)
		w.parkedIDs.remove(user)
	}
}

// parkFilter tells the ids surely not parked: a count of parked ids by
// the low bits of their hash (a count that reaches 255 stays there: the
// filter then says maybe for its ids for good, which only costs the map
// lookup). 16 KB keeps the false positives at a few percent with
// hundreds of users parked.
type parkFilter struct {
	seed maphash.Seed
	n    [1 << 14]uint8
}

func (f *parkFilter) slot(id string) *uint8 {
	return &f.n[maphash.String(f.seed, id)&(uint64(len(f.n))-1)]
}

func (f *parkFilter) maybe(id string) bool { return *f.slot(id) != 0 }

func (f *parkFilter) add(id string) {
	if s := f.slot(id); *s < 255 {
		*s++
	}
}

func (f *parkFilter) remove(id string) {
	if s := f.slot(id); *s > 0 && *s < 255 {
		*s--
	}
}

func (f *parkFilter) reset() { clear(f.n[:]) }

// applyEvent applies one event record (a forward too) or holds it behind
// its parked user. key is the event's contact (ContactOf) when the caller
// has resolved it, else "".
func (w *worker) applyEvent(ctx context.Context, e *event.Event, r *kgo.Record, key string, noLink bool) error {
	le := &engine.LiveEvent{Event: e, Pos: state.Position{Partition: w.part, Offset: r.Offset}, NoLink: noLink}
	if key == "" {
		key = w.eng.ContactOf(e)
	}
	if ctl, _ := controlOf(r); ctl == ControlForward {
		from, err := parsePos(headerBytes(r, HeaderFrom))
		if err != nil {
			w.m.bad(stageScore, ReasonControl)
			w.deadLetter(deadLetter(w.cfg.Topics.DLQ, r, ReasonControl, "forward without a valid "+HeaderFrom+": "+err.Error()))
			w.used = append(w.used, r)
			return nil
		}
		le.Into, le.From, key = string(r.Key), from, string(r.Key)
	}
	if p := w.parkedUser(key); p != nil && !noLink {
		p.recs = append(p.recs, w.hold(r, e))
		w.m.held.Inc()
		return nil
	}
	w.cause = recordTime(r)
	var out engine.LinkOutcome
	var bad error
	err := w.retry(ctx, "apply event", func() error {
		var err error
		out, err = w.eng.ApplyLive(ctx, le)
		if err != nil && event.ReasonOf(err) != "" { // ReasonOf allocates, even for nil
			bad, err = err, nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if w.fatal != nil {
		return w.fatal
	}
	if !out.Parked {
		w.used = append(w.used, r) // applied, skipped, dead-lettered or forwarded
		if bad == nil && out.Forward == "" && w.s.sc.OnBatchApplied != nil {
			w.applied = append(w.applied, e.Time) // reportApplied
		}
	}
	if len(out.Dropped) > 0 {
		w.m.dropped.Inc()
		w.log.Warn("stream: identity links dropped: the user's late hand-over already has the most links queued behind it; the ids link at the user's next event that carries them (is the anonymous ids' partition stalled?)",
			"user", out.Contact, "ids", out.Dropped, "queued", engine.MaxQueuedLinks, "offset", r.Offset)
	}
	switch {
	case bad != nil:
		w.m.bad(stageScore, event.ReasonOf(bad))
		w.deadLetter(badInput(w.cfg.Topics.DLQ, r, bad))
	case out.Parked:
		now := time.Now()
		p := &parked{recs: []held{w.hold(r, e)}, since: now}
		if out.Request != nil {
			p.asked = now
			w.sendRequest(out.Request)
		}
		w.park(out.Contact, p)
		w.m.parked.Inc()
	case out.Forward != "":
		f := w.forward(r, out.Forward, e.AnonymousID, le.Pos)
		w.out = append(w.out, f)
		w.meta = append(w.meta, outMeta{})
		w.m.forwarded.Inc()
	}
	return nil
}

// forward makes the forward of r, an event that carries only the retired
// anonymous id anon, to its user to, produced as at position from: r's
// value and headers (but identity control headers) with its own copy of
// their bytes (own), since r goes back to the fetch pool before the
// forward is acknowledged (recycle).
func (w *worker) forward(r *kgo.Record, to, anon string, from state.Position) *kgo.Record {
	f := &kgo.Record{Topic: w.topic, Key: []byte(to), Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		if h.Key != HeaderControl && h.Key != HeaderFrom && h.Key != HeaderAnon {
			f.Headers = append(f.Headers, h)
		}
	}
	vs := make([]byte, 0, len(anon)+posBytes)
	vs = append(vs, anon...)
	a := vs[:len(vs):len(vs)]
	pos := appendPos(vs[len(vs):], from)
	f.Headers = append(f.Headers,
		kgo.RecordHeader{Key: HeaderControl, Value: controlValues[ControlForward]},
		kgo.RecordHeader{Key: HeaderAnon, Value: a},
		kgo.RecordHeader{Key: HeaderFrom, Value: pos})
	own(f)
	return f
}

// applyIdentity applies an identity control record.
func (w *worker) applyIdentity(ctx context.Context, ctl string, r *kgo.Record) error {
	pos := state.Position{Partition: w.part, Offset: r.Offset}
	key := string(r.Key)
	bad := func(err error) error {
		w.m.bad(stageScore, ReasonControl)
		w.deadLetter(deadLetter(w.cfg.Topics.DLQ, r, ReasonControl, fmt.Sprintf("%s record of %q: %v", ctl, key, err)))
		return nil
	}
	switch ctl {
	case ControlLinkRequest:
		link, err := parsePos(headerBytes(r, HeaderLink))
		if err != nil {
			return bad(err)
		}
		t, ok := parseInt(headerBytes(r, HeaderTime), 64)
		if !ok {
			return bad(fmt.Errorf("%s %q is not a time in Unix nanoseconds", HeaderTime, headerBytes(r, HeaderTime)))
		}
		q := &engine.LinkRequest{Anon: key, User: headerOf(r, HeaderUser), Link: link, Time: t, Full: string(headerBytes(r, HeaderFull)) == "1"}
		var ans engine.AnswerKind
		var kind rules.ConflictKind
		var blob []byte
		var skipped bool
		w.cause = 0
		if err := w.retry(ctx, "answer a link request", func() error {
			var err error
			ans, kind, blob, skipped, err = w.eng.LinkRequested(ctx, q, pos)
			return err
		}); err != nil {
			return err
		}
		if skipped {
			return nil
		}
		ctlAns := [...]string{ControlHandover, ControlLinked, ControlRefused}[ans]
		if w.log.Enabled(ctx, slog.LevelDebug) { // the positions' text for nothing otherwise
			w.log.Debug("stream: link request answered", "anon", q.Anon, "user", q.User, "link", fmtPos(q.Link), "answer", ctlAns, "kind", kind.String(), "pos", fmtPos(pos))
		}
		k := kind.String()
		a := w.newControl(q.User, ctlAns, 3, len(q.Anon)+posBytes+len(k))
		a.str(HeaderAnon, q.Anon).pos(HeaderLink, q.Link).str(HeaderKind, k)
		a.r.Value = blob
		w.out = append(w.out, a.r)
		w.meta = append(w.meta, outMeta{})
	case ControlHandover, ControlRefused, ControlLinked:
		link, err := parsePos(headerBytes(r, HeaderLink))
		if err != nil {
			return bad(err)
		}
		ans, kind := engine.AnswerHandover, rules.ConflictKind(0)
		switch ctl {
		case ControlLinked:
			ans = engine.AnswerLinked
		case ControlRefused:
			ans = engine.AnswerRefused
			k, ok := conflictKind(headerBytes(r, HeaderKind))
			if !ok {
				return bad(fmt.Errorf("unknown conflict kind %q", headerBytes(r, HeaderKind)))
			}
			kind = k
		}
		var a engine.Answered
		if err := w.retry(ctx, "apply a link answer", func() error {
			var err error
			a, err = w.eng.Answer(ctx, key, headerOf(r, HeaderAnon), link, ans, kind, r.Value)
			return err
		}); err != nil {
			return err
		}
		if a.Repeat {
			return nil
		}
		p := w.parked[key]
		if p != nil && !p.asked.IsZero() {
			w.m.handover.Observe(time.Since(p.asked).Seconds())
		}
		switch {
		case a.Next != nil:
			w.sendRequest(a.Next)
			if p != nil {
				p.asked = time.Now()
			}
		case a.Released && p != nil && !a.Late:
			return w.release(ctx, key)
		}
	case ControlUnlink:
		return w.retry(ctx, "unlink", func() error { _, err := w.eng.Unlink(ctx, key, headerOf(r, HeaderUser)); return err })
	case ControlUnmerge:
		from, err := parsePos(headerBytes(r, HeaderFrom))
		if err != nil {
			return bad(err)
		}
		return w.retry(ctx, "unmerge", func() error {
			_, err := w.eng.Unmerge(ctx, key, headerOf(r, HeaderAnon), from)
			return err
		})
	}
	return nil
}

func conflictKind(s []byte) (rules.ConflictKind, bool) {
	for _, k := range rules.ConflictKinds {
		if k.String() == string(s) {
			return k, true
		}
	}
	return 0, false
}

// release applies a parked user's held records: the linking event without
// linking again (its links are answered), then the rest, which may park
// the user again.
func (w *worker) release(ctx context.Context, user string) error {
	p := w.parked[user]
	w.unpark(user)
	w.m.parked.Dec()
	for i, h := range p.recs {
		if q := w.parked[user]; q != nil {
			q.recs = append(q.recs, p.recs[i:]...)
			return nil
		}
		e := h.e
		if e != nil {
			w.heldEvents--
		} else {
			e = &w.relEv
			if err := w.dec.DecodeInto(e, h.r.Value, formatOf(h.r), recordTime(h.r)); err != nil {
				return fmt.Errorf("stream: partition %d: a held record at offset %d no longer decodes: %w", w.part, h.r.Offset, err)
			}
		}
		p.recs[i] = held{}
		err := w.applyEvent(ctx, e, h.r, "", i == 0)
		w.dec.Recycle(e) // held again (the user parked again): reset already
		if err != nil {
			return err
		}
	}
	return nil
}

// expire applies the held records of users parked longer than
// HandoverTimeout without their merge (SPEC §6: an event of U applied
// before the merge comes before it); the merge follows the answer.
func (w *worker) expire(ctx context.Context) error {
	if len(w.parked) == 0 {
		return nil
	}
	limit := time.Now().Add(-w.cfg.HandoverTimeout)
	for user, p := range w.parked {
		if p.since.After(limit) {
			continue
		}
		if err := w.retry(ctx, "give up a hand-over", func() error { return w.eng.GiveUp(ctx, user) }); err != nil {
			return err
		}
		w.m.timeouts.Inc()
		w.log.Warn("stream: identity hand-over timed out: the user's events are applied without the merge, which follows the answer (is the anonymous id's partition stalled?)",
			"user", user, "held", len(p.recs), "waited", time.Since(p.since).Round(time.Millisecond))
		if err := w.release(ctx, user); err != nil {
			return err
		}
	}
	return nil
}

// commitOffset is the offset the partition may commit after applying up
// to next: not past the first held record.
func (w *worker) commitOffset(next int64) int64 {
	for _, p := range w.parked {
		if len(p.recs) > 0 && p.recs[0].r.Offset < next {
			next = p.recs[0].r.Offset
		}
	}
	return next
}

// dropParked forgets the held records (the partition is revoked or lost:
// its next owner reads them again from the committed offset).
func (w *worker) dropParked() {
	if n := len(w.parked); n > 0 {
		w.m.parked.Sub(float64(n))
		clear(w.parked)
		w.parkedIDs.reset()
	}
	w.heldEvents = 0
}

// forget erases a contact (a forget control record) and asks the owners of
// the anonymous ids merged into it to erase their tombstones, or, for a
// merged anonymous id, its user's owner to take it off the user's list
// (SPEC §6 (d)).
func (w *worker) forget(ctx context.Context, id string, offset int64) error {
	var merged []string
	var into string
	if err := w.retry(ctx, "erase contact", func() error {
		var err error
		merged, into, err = w.eng.EraseLive(ctx, id)
		return err
	}); err != nil {
		return err
	}
	for _, a := range merged {
		c := w.newControl(a, ControlUnlink, 1, len(id))
		w.out = append(w.out, c.str(HeaderUser, id).r)
		w.meta = append(w.meta, outMeta{})
	}
	if into != "" {
		c := w.newControl(into, ControlUnmerge, 2, len(id)+posBytes)
		w.out = append(w.out, c.str(HeaderAnon, id).pos(HeaderFrom, state.Position{Partition: w.part, Offset: offset}).r)
		w.meta = append(w.meta, outMeta{})
	}
	w.log.Info("stream: contact erased", "contact", id, "offset", offset, "merged_ids", len(merged), "merged_into", into)
	return nil
}
