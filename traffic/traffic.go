// Package traffic generates realistic, deterministic clickstream: the demo
// traffic of `leadpulse dev`, the input of `leadpulse bench` and of the replay
// benchmarks.
//
// A Generator simulates a population of contacts, each with a persona and a
// journey. On a B2B site ("b2b") anonymous visitors read the blog and the
// docs, compare plans on /pricing, download guides, watch product videos,
// start trials and create projects, fill demo and contact forms (sending
// `identify` with email, company, industry, company_size, title and region
// first), and job seekers read /careers. In a shop ("ecommerce") shoppers
// view products, add them to the cart (with price), start checkouts, complete
// orders (identifying with email, loyalty tier and lifetime value), review and
// now and then refund them. Journeys are paced so that the example rules
// (examples/b2b-saas.yaml, examples/ecommerce.yaml) fire now and then: some
// contacts become hot leads, carts are abandoned, trials stall.
//
// Every call of Next or AppendJSON picks a contact (uniformly, or Zipf-skewed)
// and emits the next event of its journey. With Config.Lifetime visitors come
// and go: a contact leaves after about Lifetime events and a new visitor
// takes its slot, so a long stream keeps bringing new journeys instead of
// wearing out the same ones; event time advances by an
// exponentially distributed gap of mean Step, so time strictly increases. The
// same Config always yields the same events, whichever of Next and AppendJSON
// is used to read them.
//
// AppendJSON writes straight from the generator's reusable state: it
// allocates only when a contact is first seen or identifies (its ids, email
// and session buffer), which amortizes to a few bytes an event (see
// BenchmarkAppendJSON: about 1µs and 0 allocs an event).
package traffic

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/leadpulse/leadpulse/event"
)

// Mixes of traffic.
const (
	MixB2B       = "b2b"
	MixEcommerce = "ecommerce"
)

// Config shapes the traffic. The zero value is the default.
type Config struct {
	// Contacts is the number of distinct visitors. default: 10_000. A visitor
	// who identifies sends under its anonymousId before `identify` and under
	// its userId (with the anonymousId) after, as Segment does; leadpulse keys
	// by userId first, so it sees up to twice as many contact keys.
	Contacts int
	// Seed seeds the generator; the same Config yields the same events.
	// default: 1 (0 means the default)
	Seed int64
	// Start is the time of the first event. default: 2026-01-05T09:00:00Z
	Start time.Time
	// Step is the mean event-time gap between consecutive events. The gaps
	// are exponentially distributed, in whole milliseconds like browser
	// timestamps (at least 1ms), or in nanoseconds (at least 1ns) when Step
	// is below 10ms. default: 100ms
	Step time.Duration
	// Zipf is the skew of the choice of contact: 0 chooses uniformly; a value
	// s > 1 chooses contact k with probability proportional to 1/(k+1)^s, so
	// a few contacts send most events. default: 0; values in (0, 1] are
	// raised to 1.01, the smallest skew accepted.
	Zipf float64
	// AnonymousShare is the share of contacts that never identify and send
	// only an anonymousId. default: 0.6; a negative value means 0 (every
	// contact identifies sooner or later).
	AnonymousShare float64
	// Mix is the kind of site: "b2b" or "ecommerce". default: "b2b"; an
	// unknown value means "b2b".
	Mix string
	// Lifetime turns on visitor turnover: a visitor leaves after about this
	// many events and a new visitor, with a fresh anonymousId and profile,
	// takes its place, so that the live population stays at Contacts while
	// the stream keeps bringing new visitors, about one per Lifetime events,
	// as a real site's traffic does. Each visitor's lifetime is drawn
	// (exponentially distributed, mean Lifetime, at least 1 event) when it
	// arrives; it leaves at the end of the session in which the lifetime is
	// spent, never in the middle of one, so it sends a little more than its
	// lifetime. A visitor who left never comes back. default: 0 — visitors
	// never leave: the same Contacts visitors send every event, and in a
	// long stream use up what their journeys can do (a trigger's cooldown,
	// an action's cap), as a site without new visitors would.
	Lifetime int
	// SharedDevices is the share of identifies sent from a device another
	// contact identified on before (at least 1,000 events before, as a
	// shared device changes hands between sessions): the identify carries
	// that contact's anonymousId, already merged into its user, which SPEC
	// §6 counts as a conflict (merged_elsewhere). default: 0 (none)
	SharedDevices float64
}

// DefaultStart is the default time of the first event.
var DefaultStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func (c *Config) defaults() {
	if c.Contacts <= 0 {
		c.Contacts = 10_000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.Step <= 0 {
		c.Step = 100 * time.Millisecond
	}
	if c.Zipf > 0 && c.Zipf <= 1 {
		c.Zipf = 1.01
	}
	if c.Zipf < 0 {
		c.Zipf = 0
	}
	switch {
	case c.AnonymousShare == 0:
		c.AnonymousShare = 0.6
	case c.AnonymousShare < 0:
		c.AnonymousShare = 0
	case c.AnonymousShare > 1:
		c.AnonymousShare = 1
	}
	if c.Mix != MixEcommerce {
		c.Mix = MixB2B
	}
	if c.Lifetime < 0 {
		c.Lifetime = 0
	}
}

// Generator produces the events. It is not safe for concurrent use.
type Generator struct {
	cfg      Config
	ecom     bool
	rng      *rand.Rand
	zipf     *rand.Zipf
	now      int64   // event time of the last event, Unix ns
	step     float64 // mean gap, ns
	unit     float64 // time resolution, ns: 1ms, or 1ns when Step < 10ms
	seq      uint64  // events emitted
	idPrefix string  // messageId prefix, "m<seed>-"
	contacts []*contact
	cur      rawEvent

	// Turnover (Config.Lifetime): the number the next arriving visitor is
	// created with (newContact's i; the first population is 0 to
	// Contacts-1), and the visitors seen so far and those who left.
	nextVisitor uint64
	visitors    uint64
	left        uint64
}

// New returns a generator for cfg (zero fields take their defaults).
func New(cfg Config) *Generator {
	cfg.defaults()
	seed := uint64(cfg.Seed)
	g := &Generator{
		cfg:      cfg,
		ecom:     cfg.Mix == MixEcommerce,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		step:     float64(cfg.Step),
		unit:     float64(time.Millisecond),
		idPrefix: "m" + strconv.FormatInt(cfg.Seed, 10) + "-",
		contacts: make([]*contact, cfg.Contacts),

		nextVisitor: uint64(cfg.Contacts),
	}
	if cfg.Step < 10*time.Millisecond {
		g.unit = 1
	}
	g.now = cfg.Start.UnixNano() // the first event is at Start exactly
	if cfg.Zipf > 0 && cfg.Contacts > 1 {
		g.zipf = rand.NewZipf(g.rng, cfg.Zipf, 1, uint64(cfg.Contacts-1))
	}
	g.cur.props = make([]field, 0, 12)
	g.cur.traits = make([]field, 0, 12)
	return g
}

// Next returns the next event, fully populated: RawTimestamp (RFC 3339) and
// Time agree, MessageID is unique, Properties, Traits and Context hold the
// JSON types a decoder would produce (string, float64, bool, map[string]any).
func (g *Generator) Next() *event.Event {
	g.advance()
	r := &g.cur
	e := &event.Event{
		Type:         r.typ,
		UserID:       r.userID,
		AnonymousID:  r.anonID,
		Event:        r.event,
		Name:         r.name,
		MessageID:    string(g.appendMessageID(nil)),
		RawTimestamp: string(appendTime(nil, r.t)),
		Time:         r.t,
	}
	if len(r.props) > 0 {
		e.Properties = fieldsMap(r.props)
	}
	if len(r.traits) > 0 {
		e.Traits = fieldsMap(r.traits)
	}
	e.Context = r.contextMap()
	return e
}

// AppendJSON appends the next event as one JSON object (no newline) to dst.
func (g *Generator) AppendJSON(dst []byte) []byte {
	g.advance()
	r := &g.cur
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, r.typ)
	if r.userID != "" {
		dst = append(dst, `,"userId":`...)
		dst = appendString(dst, r.userID)
	}
	if r.anonID != "" {
		dst = append(dst, `,"anonymousId":`...)
		dst = appendString(dst, r.anonID)
	}
	if r.event != "" {
		dst = append(dst, `,"event":`...)
		dst = appendString(dst, r.event)
	}
	if r.name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, r.name)
	}
	dst = append(dst, `,"messageId":"`...)
	dst = g.appendMessageID(dst)
	dst = append(dst, `","timestamp":"`...)
	dst = appendTime(dst, r.t)
	dst = append(dst, '"')
	if len(r.props) > 0 {
		dst = append(dst, `,"properties":`...)
		dst = appendFields(dst, r.props)
	}
	if len(r.traits) > 0 {
		dst = append(dst, `,"traits":`...)
		dst = appendFields(dst, r.traits)
	}
	dst = append(dst, `,"context":`...)
	dst = r.appendContext(dst)
	return append(dst, '}')
}

// advance moves the clock, picks a contact and fills g.cur with its next
// event.
func (g *Generator) advance() {
	if g.seq > 0 {
		gap := int64(g.rng.ExpFloat64()*g.step/g.unit) * int64(g.unit)
		if gap < int64(g.unit) {
			gap = int64(g.unit)
		}
		g.now += gap
	}
	g.seq++
	i, c := g.pick()
	g.cur.reset(g.now)
	if len(c.pending) == 0 && g.cfg.Lifetime > 0 && c.events >= c.lifetime {
		// The visitor has spent its lifetime and its last session is over:
		// it leaves, and a new visitor takes its slot (and its share of
		// the traffic, with Zipf).
		c = g.newContact(g.nextVisitor)
		g.nextVisitor++
		g.contacts[i] = c
		g.left++
	}
	c.events++
	if len(c.pending) == 0 {
		c.pending = c.pending[:0]
		c.next = 0
		if g.ecom {
			g.shopSession(c)
		} else {
			g.b2bSession(c)
		}
		c.sessions++
	}
	op := c.pending[c.next]
	c.next++
	if c.next == len(c.pending) {
		c.pending = c.pending[:0]
		c.next = 0
	}
	g.emit(c, op)
}

// pick chooses the slot of the population that sends the next event and
// returns it with its visitor, created on first use.
func (g *Generator) pick() (int, *contact) {
	var i int
	if g.zipf != nil {
		i = int(g.zipf.Uint64())
	} else {
		i = g.rng.IntN(len(g.contacts))
	}
	c := g.contacts[i]
	if c == nil {
		c = g.newContact(uint64(i))
		g.contacts[i] = c
	}
	return i, c
}

// Visitors returns how many distinct visitors have sent an event so far:
// at most Config.Contacts without turnover, and with it (Config.Lifetime)
// that plus every visitor who arrived in the place of one who left.
func (g *Generator) Visitors() int { return int(g.visitors) }

// Left returns how many visitors have left so far (Config.Lifetime); each
// was replaced by a new visitor. 0 without turnover.
func (g *Generator) Left() int { return int(g.left) }

func (g *Generator) appendMessageID(dst []byte) []byte {
	dst = append(dst, g.idPrefix...)
	return strconv.AppendUint(dst, g.seq, 10)
}

// ---- contacts and journeys ----

// ---- the event being built ----

// ---- the sites ----
