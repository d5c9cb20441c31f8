package admin

import (
	"container/list"
	"strings"
	"sync"
	"sync/atomic"
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
	o    HistoryOptions
	feed *Feed

	mu       sync.Mutex
	contacts map[string]*contactHistory
	lru      list.List         // *contactHistory, most recent at the front
	emails   map[string]string // lower-cased email → contact id
	recorded atomic.Uint64
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

type contactHistory struct {
	id      string
	email   string
	events  ring[HistoryEvent]
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
	return &History{o: o, feed: NewFeed(0), contacts: map[string]*contactHistory{}, emails: map[string]string{}}
}

// Feed returns the live feed of actions the History fans out.
func (h *History) Feed() *Feed { return h.feed }

// get returns the contact's history, made and moved to the front; h.mu held.
func (h *History) get(id string) *contactHistory {
	c := h.contacts[id]
	if c != nil {
		h.lru.MoveToFront(c.elem)
		return c
	}
	for len(h.contacts) >= h.o.Contacts {
		old := h.lru.Remove(h.lru.Back()).(*contactHistory)
		delete(h.contacts, old.id)
		if old.email != "" && h.emails[old.email] == old.id {
			delete(h.emails, old.email)
		}
	}
	c = &contactHistory{id: id}
	c.elem = h.lru.PushFront(c)
	h.contacts[id] = c
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
	he := HistoryEvent{
		At:        time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano),
		Type:      e.Type,
		Event:     e.Event,
		Name:      e.Name,
		MessageID: e.MessageID,
		Applied:   time.Now().UTC().Format(time.RFC3339Nano),
	}
	if p, ok := e.Properties["path"].(string); ok {
		he.Path = p
	}
	for k := range e.Traits {
		he.Traits = append(he.Traits, k)
	}
	if len(res.Awards) > 0 {
		he.Points = append([]rules.Award(nil), res.Awards...)
	}
	email, _ := e.Traits["email"].(string)
	email = strings.ToLower(strings.TrimSpace(email))
	id := res.Contact // as identity resolved it
	if id == "" {
		id = e.Contact()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.get(id)
	c.events.add(he, h.o.Events)
	for _, a := range res.Awards {
		c.awards.add(rules.AwardAt{Rule: a.Rule, Points: a.Points, At: e.Time}, h.o.Awards)
	}
	if email != "" && email != c.email {
		if c.email != "" && h.emails[c.email] == id {
			delete(h.emails, c.email)
		}
		c.email = email
		h.emails[email] = id
	}
	h.recorded.Add(1)
}

// Action records an emitted action (stream.Scoring.OnAction) and publishes
// it on the feed.
func (h *History) Action(r *rules.Record) {
	rec := *r
	h.mu.Lock()
	h.get(rec.Contact).firings.add(rec, h.o.Firings)
	h.mu.Unlock()
	h.feed.Publish(&rec)
}

// Forget drops what is kept about a contact (after an erasure).
func (h *History) Forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.contacts[id]
	if c == nil {
		return
	}
	h.lru.Remove(c.elem)
	delete(h.contacts, id)
	if c.email != "" && h.emails[c.email] == id {
		delete(h.emails, c.email)
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
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.contacts[id]
	if c == nil {
		return ContactHistory{Events: []HistoryEvent{}, Firings: []rules.Record{}}
	}
	return ContactHistory{Events: c.events.items(), Firings: c.firings.items(), Awards: c.awards.items()}
}

// ByEmail returns the contact whose `email` trait is email (case
// insensitive), among the contacts the History holds.
func (h *History) ByEmail(email string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.emails[strings.ToLower(strings.TrimSpace(email))]
	return id, ok
}

// Len returns the number of contacts held.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.contacts)
}
