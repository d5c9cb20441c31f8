package admin

import (
	"container/list"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
)

// History keeps what the contact state does not: per contact, the last
// events applied (with the points each earned), the last actions emitted,
// and the engagement awards behind the score chart; and an index from the
// `email` trait to contact ids. It also fans the actions out to the live
// feed (Feed).
//
// It is fed by the pipeline's observers (stream.Scoring.OnApplied and
// OnAction, see Observe) and lives in this process' memory only: it holds
// what this process applied since it started, for the contacts of the
// partitions it owns (in `run` with several processes, each one knows its
// own partitions' contacts; the page shows what the process it talks to
// has). It is bounded: at most HistoryOptions.Contacts contacts, the least
// recently active forgotten first, and a fixed number of entries each.
type History struct {
	o      HistoryOptions
	feed   *Feed
	shards []historyShard
}

// historyShards spreads the contacts over locks, so that partitions
// recording at once rarely wait for each other; each shard forgets its
// least recently active contacts first. A History of fewer than 1,024
// contacts has one shard (exact LRU).
const historyShards = 16

type historyShard struct {
	mu       sync.Mutex
	max      int // contacts kept in this shard
	contacts map[string]*contactHistory
	lru      list.List         // *contactHistory, most recent at the front
	emails   map[string]string // lower-cased email → contact id
}

// HistoryOptions bound a History. Zero values take the defaults.
type HistoryOptions struct {
	// Contacts is the most contacts kept. default: 10,000
	Contacts int
	// Events, Firings and Awards are the most entries kept per contact.
	// defaults: 30, 30, 200
	Events, Firings, Awards int
	// NoEvents records actions only (Action: the live feed, recent
	// firings): Applied does nothing, so the contact page shows no recent
	// events, its score chart no awards, and the email search finds
	// nothing. For a process that need not pay for the per-event record
	// (about 1–3 µs of CPU an event, BenchmarkHistoryApplied); leave
	// stream.Scoring.OnApplied unset then, so that nothing is called.
	// default: false (events are recorded)
	NoEvents bool
	// NoActions also leaves actions unrecorded: Action does nothing (no
	// live feed, no recent firings). default: false
	NoActions bool
}

// What a History records (History.Records, config ui.history).
const (
	RecordsEvents  = "events"  // events and actions
	RecordsActions = "actions" // actions only
	RecordsNothing = "off"
)

// HistoryEvent is one applied event as the page shows it.
type HistoryEvent struct {
	At        string        `json:"at"`
	Type      string        `json:"type"`
	Event     string        `json:"event,omitempty"`
	Name      string        `json:"name,omitempty"`
	Path      string        `json:"path,omitempty"`
	MessageID string        `json:"messageId,omitempty"`
	Traits    []string      `json:"traits,omitempty"` // the trait keys it set
	Points    []rules.Award `json:"points,omitempty"`
	Applied   string        `json:"applied"` // wall-clock time it was applied
}

// histEvent is a HistoryEvent as recorded: times unformatted, strings
// shared with the event (they are immutable), the first award inline, so
// that recording costs little on the partition goroutine: no allocation
// for an event that earned points from at most one rule and set no traits.
type histEvent struct {
	at, applied              int64
	typ, ev, name, path, mid string
	traits                   []string
	first                    rules.Award   // the first award, if npoints > 0
	more                     []rules.Award // the awards after the first
	npoints                  int
}

func (e *histEvent) view() HistoryEvent {
	v := HistoryEvent{
		At: formatNs(e.at), Type: e.typ, Event: e.ev, Name: e.name, Path: e.path, MessageID: e.mid,
		Traits: e.traits, Applied: formatNs(e.applied),
	}
	if e.npoints > 0 {
		v.Points = append(append(make([]rules.Award, 0, e.npoints), e.first), e.more...)
	}
	return v
}

func formatNs(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

type contactHistory struct {
	id      string
	email   string
	events  ring[histEvent]
	firings ring[rules.Record]
	awards  ring[rules.AwardAt]
	elem    *list.Element
}

// ring keeps the last n values.
type ring[T any] struct {
	buf  []T
	next int
}

// at returns the slot the next value goes to, overwriting the oldest once
// n are kept; the caller fills it in place (no copy of a large T).
func (r *ring[T]) at(n int) *T {
	if len(r.buf) < n {
		var zero T
		r.buf = append(r.buf, zero)
		return &r.buf[len(r.buf)-1]
	}
	p := &r.buf[r.next]
	r.next = (r.next + 1) % len(r.buf)
	return p
}

func (r *ring[T]) add(v T, n int) { *r.at(n) = v }

// items returns the values oldest first.
func (r *ring[T]) items() []T {
	out := make([]T, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// NewHistory returns an empty History with its live feed.
func NewHistory(o HistoryOptions) *History {
	if o.Contacts <= 0 {
		o.Contacts = 10000
	}
	if o.Events <= 0 {
		o.Events = 30
	}
	if o.Firings <= 0 {
		o.Firings = 30
	}
	if o.Awards <= 0 {
		o.Awards = 200
	}
	n := historyShards
	if o.Contacts < 1024 {
		n = 1
	}
	h := &History{o: o, feed: NewFeed(0), shards: make([]historyShard, n)}
	for i := range h.shards {
		sh := &h.shards[i]
		sh.max = o.Contacts / n
		sh.contacts, sh.emails = map[string]*contactHistory{}, map[string]string{}
	}
	return h
}

// Records returns what the History records: RecordsEvents,
// RecordsActions or RecordsNothing.
func (h *History) Records() string {
	switch {
	case !h.o.NoEvents && !h.o.NoActions:
		return RecordsEvents
	case !h.o.NoActions:
		return RecordsActions
	case !h.o.NoEvents:
		return "events without actions"
	}
	return RecordsNothing
}

// Feed returns the live feed of actions the History fans out.
func (h *History) Feed() *Feed { return h.feed }

func (h *History) shard(id string) *historyShard {
	// FNV-1a: cheap and spreads ids well enough.
	x := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		x ^= uint32(id[i])
		x *= 16777619
	}
	return &h.shards[x%uint32(len(h.shards))]
}

// get returns the contact's history, made and moved to the front; sh.mu
// held.
func (sh *historyShard) get(id string) *contactHistory {
	c := sh.contacts[id]
	if c != nil {
		sh.lru.MoveToFront(c.elem)
		return c
	}
	for len(sh.contacts) >= sh.max {
		old := sh.lru.Remove(sh.lru.Back()).(*contactHistory)
		delete(sh.contacts, old.id)
		if old.email != "" && sh.emails[old.email] == old.id {
			delete(sh.emails, old.email)
		}
	}
	c = &contactHistory{id: id}
	c.elem = sh.lru.PushFront(c)
	sh.contacts[id] = c
	return c
}

// HistoryReads is what Applied reads of an event: the `path` property and
// the traits (stream.Scoring.OnAppliedReads).
var HistoryReads = event.Select{Properties: event.OnlyKeys("path"), Context: event.OnlyKeys()}

// Applied records an applied event (stream.Scoring.OnApplied). Results
// without an event (fired timers, repeats) are ignored: their actions
// arrive through Action.
func (h *History) Applied(res *rules.Result) {
	e := res.Event
	if e == nil || h.o.NoEvents {
		return
	}
	applied := time.Now().UnixNano()
	var path string
	if p, ok := e.Property("path").(string); ok {
		path = p
	}
	var (
		email  string
		traits []string
	)
	if len(e.Traits) > 0 {
		traits = make([]string, 0, len(e.Traits))
		for k := range e.Traits {
			traits = append(traits, k)
		}
		if s, ok := e.Traits["email"].(string); ok {
			email = strings.ToLower(strings.TrimSpace(s))
		}
	}
	var more []rules.Award
	if len(res.Awards) > 1 {
		more = slices.Clone(res.Awards[1:])
	}
	id := res.Contact // as identity resolved it
	if id == "" {
		id = e.Contact()
	}
	sh := h.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.get(id)
	he := c.events.at(h.o.Events)
	*he = histEvent{at: e.Time, applied: applied, typ: e.Type, ev: e.Event, name: e.Name, path: path, mid: e.MessageID,
		traits: traits, more: more, npoints: len(res.Awards)}
	if len(res.Awards) > 0 {
		he.first = res.Awards[0]
	}
	for _, a := range res.Awards {
		*c.awards.at(h.o.Awards) = rules.AwardAt{Rule: a.Rule, Points: a.Points, At: e.Time}
	}
	if email != "" && email != c.email {
		if c.email != "" && sh.emails[c.email] == id {
			delete(sh.emails, c.email)
		}
		c.email = email
		sh.emails[email] = id
	}
}

// Action records an emitted action (stream.Scoring.OnAction) and publishes
// it on the feed.
func (h *History) Action(r *rules.Record) {
	if h.o.NoActions {
		return
	}
	rec := *r
	sh := h.shard(rec.Contact)
	sh.mu.Lock()
	sh.get(rec.Contact).firings.add(rec, h.o.Firings)
	sh.mu.Unlock()
	h.feed.Publish(&rec)
}

// Forget drops what is kept about a contact (after an erasure).
func (h *History) Forget(id string) {
	sh := h.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.contacts[id]
	if c == nil {
		return
	}
	sh.lru.Remove(c.elem)
	delete(sh.contacts, id)
	if c.email != "" && sh.emails[c.email] == id {
		delete(sh.emails, c.email)
	}
}

// ContactHistory is what History knows of one contact, oldest first.
type ContactHistory struct {
	Events  []HistoryEvent  `json:"events"`
	Firings []rules.Record  `json:"firings"`
	Awards  []rules.AwardAt `json:"-"`
}

// Contact returns the contact's history (empty when none is kept).
func (h *History) Contact(id string) ContactHistory {
	sh := h.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.contacts[id]
	if c == nil {
		return ContactHistory{Events: []HistoryEvent{}, Firings: []rules.Record{}}
	}
	evs := c.events.items()
	out := ContactHistory{Events: make([]HistoryEvent, len(evs)), Firings: c.firings.items(), Awards: c.awards.items()}
	for i := range evs {
		out.Events[i] = evs[i].view()
	}
	return out
}

// ByEmail returns the contact whose `email` trait is email (case
// insensitive), among the contacts the History holds.
func (h *History) ByEmail(email string) (string, bool) {
	email = strings.ToLower(strings.TrimSpace(email))
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		id, ok := sh.emails[email]
		sh.mu.Unlock()
		if ok {
			return id, true
		}
	}
	return "", false
}

// Len returns the number of contacts held.
func (h *History) Len() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		n += len(sh.contacts)
		sh.mu.Unlock()
	}
	return n
}
