package admin

import (
	"container/list"
	"strings"
	"sync"
	"time"

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
}

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
// shared with the event (they are immutable), so that recording costs
// little on the partition goroutine.
type histEvent struct {
	at, applied              int64
	typ, ev, name, path, mid string
	traits                   []string
	points                   []rules.Award
}

func (e *histEvent) view() HistoryEvent {
	return HistoryEvent{
		At: formatNs(e.at), Type: e.typ, Event: e.ev, Name: e.name, Path: e.path, MessageID: e.mid,
		Traits: e.traits, Points: e.points, Applied: formatNs(e.applied),
	}
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

func (r *ring[T]) add(v T, n int) {
	if len(r.buf) < n {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
}

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

// Applied records an applied event (stream.Scoring.OnApplied). Results
// without an event (fired timers, repeats) are ignored: their actions
// arrive through Action.
func (h *History) Applied(res *rules.Result) {
	e := res.Event
	if e == nil {
		return
	}
	he := histEvent{at: e.Time, applied: time.Now().UnixNano(), typ: e.Type, ev: e.Event, name: e.Name, mid: e.MessageID}
	if p, ok := e.Properties["path"].(string); ok {
		he.path = p
	}
	var email string
	if len(e.Traits) > 0 {
		he.traits = make([]string, 0, len(e.Traits))
		for k := range e.Traits {
			he.traits = append(he.traits, k)
		}
		if s, ok := e.Traits["email"].(string); ok {
			email = strings.ToLower(strings.TrimSpace(s))
		}
	}
	if len(res.Awards) > 0 {
		he.points = append([]rules.Award(nil), res.Awards...)
	}
	id := res.Contact // as identity resolved it
	if id == "" {
		id = e.Contact()
	}
	sh := h.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.get(id)
	c.events.add(he, h.o.Events)
	for _, a := range res.Awards {
		c.awards.add(rules.AwardAt{Rule: a.Rule, Points: a.Points, At: e.Time}, h.o.Awards)
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
