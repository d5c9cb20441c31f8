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
// and emits the next event of its journey; event time advances by an
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
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
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
	c := g.pick()
	g.cur.reset(g.now)
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

func (g *Generator) pick() *contact {
	var i int
	if g.zipf != nil {
		i = int(g.zipf.Uint64())
	} else {
		i = g.rng.IntN(len(g.contacts))
	}
	c := g.contacts[i]
	if c == nil {
		c = g.newContact(i)
		g.contacts[i] = c
	}
	return c
}

func (g *Generator) appendMessageID(dst []byte) []byte {
	dst = append(dst, g.idPrefix...)
	return strconv.AppendUint(dst, g.seq, 10)
}

func appendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
}

// ---- contacts and journeys ----

// Personas.
const (
	// b2b
	reader uint8 = iota
	developer
	buyer
	jobSeeker
	// ecommerce
	browser
	shopper
	regular
	loyal
)

// contact is one simulated visitor.
type contact struct {
	anonID   string
	userID   string // set when identified
	persona  uint8
	known    bool   // will identify
	idQueued bool   // an identify is planned or sent
	idAt     uint64 // the event number of the identify
	sessions int
	pending  []op // the rest of the current session, from next
	next     int
	prevPage int // index in the page table of the last page, -1 at session start
	ua       uint8
	ip       string
	campaign int8 // campaign of the current session, -1 for none

	// profile, drawn when the contact is first seen and sent when it
	// identifies
	first, last, company, industry, title, region, tier uint8
	size                                                float64
	ltv                                                 float64
	newsletter                                          bool
	email                                               string

	// journey state
	trial, project, willProject bool
	trialAt                     int
	formDone                    bool  // the one demo or contact form
	milestones, webinars        uint8 // guides or videos; webinars
	cooloff                     int   // shop sessions left without buying
	reviews                     int
	refunded                    bool
	cart                        [6]uint8 // products in the cart
	cartN                       int
	cartValue                   float64
	orders                      int
	lastOrder                   uint8
}

// op is one step of a session.
type op struct{ kind, arg uint8 }

// Step kinds.
const (
	opPage uint8 = iota
	opIdentify
	opGuide
	opWebinar
	opVideo
	opTrial
	opProject
	opForm
	opView
	opAdd
	opCheckout
	opOrder
	opReview
	opRefund
)

func (g *Generator) newContact(i int) *contact {
	// Each contact draws from its own stream so that a contact's profile
	// does not depend on when it is first seen.
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), uint64(i)+1))
	c := &contact{prevPage: -1, campaign: -1}
	var b [24]byte
	// Multiplying by an odd constant is a bijection on uint64, so ids are
	// distinct for distinct contacts; the seed varies them between runs.
	id := (uint64(i)+1)*0x9e3779b97f4a7c15 ^ uint64(g.cfg.Seed)*0xbf58476d1ce4e5b9
	c.anonID = string(strconv.AppendUint(append(b[:0], "anon-"...), id, 36))
	c.known = r.Float64() >= g.cfg.AnonymousShare
	c.ua = uint8(r.IntN(len(userAgents)))
	c.ip = ipOf(r)
	p := r.Float64()
	if g.ecom {
		switch {
		case p < 0.40:
			c.persona = browser
		case p < 0.75:
			c.persona = shopper
		case p < 0.95:
			c.persona = regular
		default:
			c.persona = loyal
		}
	} else {
		switch {
		case p < 0.40:
			c.persona = reader
		case p < 0.65:
			c.persona = developer
		case p < 0.90:
			c.persona = buyer
		default:
			c.persona = jobSeeker
		}
	}
	c.first = uint8(r.IntN(len(firstNames)))
	c.last = uint8(r.IntN(len(lastNames)))
	c.company = uint8(r.IntN(len(companies)))
	c.industry = uint8(r.IntN(len(industries)))
	c.size = companySizes[r.IntN(len(companySizes))]
	c.region = pickWeighted(r, regionWeights)
	switch c.persona {
	case developer:
		c.title = devTitles[r.IntN(len(devTitles))]
	case buyer:
		c.title = buyerTitles[r.IntN(len(buyerTitles))]
	default:
		c.title = uint8(r.IntN(len(titles)))
	}
	c.tier = pickWeighted(r, tierWeights)
	if c.persona == loyal {
		c.tier = 2 + uint8(r.IntN(2)) // gold or platinum
	}
	c.ltv = math.Round(r.Float64()*r.Float64()*3000*100) / 100
	if c.persona == loyal {
		c.ltv += 1000
	}
	c.newsletter = r.IntN(3) == 0
	c.willProject = r.IntN(10) < 6
	return c
}

func ipOf(r *rand.Rand) string {
	var b [16]byte
	d := append(b[:0], "10."...)
	d = strconv.AppendUint(d, uint64(r.IntN(256)), 10)
	d = append(d, '.')
	d = strconv.AppendUint(d, uint64(r.IntN(256)), 10)
	d = append(d, '.')
	d = strconv.AppendUint(d, uint64(1+r.IntN(254)), 10)
	return string(d)
}

func pickWeighted(r *rand.Rand, w []float64) uint8 {
	p := r.Float64()
	for i, x := range w {
		if p < x {
			return uint8(i)
		}
		p -= x
	}
	return uint8(len(w) - 1)
}

func (g *Generator) chance(p float64) bool { return g.rng.Float64() < p }

func (c *contact) add(kind, arg uint8) {
	c.pending = append(c.pending, op{kind: kind, arg: arg})
}

func (g *Generator) pages(c *contact, list []uint8, lo, hi int) {
	n := lo + g.rng.IntN(hi-lo+1)
	for range n {
		c.add(opPage, list[g.rng.IntN(len(list))])
	}
}

// identifyOnce queues an identify if the contact will identify and has not.
func (c *contact) identifyOnce() bool {
	if !c.known {
		return false
	}
	if !c.idQueued {
		c.add(opIdentify, 0)
		c.idQueued = true
	}
	return true
}

func (g *Generator) startSession(c *contact) {
	c.prevPage = -1
	c.campaign = -1
	if g.chance(0.25) {
		c.campaign = int8(g.rng.IntN(len(campaigns)))
	}
}

// b2bSession plans the contact's next visit to the B2B site. Most visits
// are light; the milestones of a journey (a guide, a webinar, the trial, the
// one form fill) happen a few times in a contact's life at most, so that a
// contact that keeps coming back does not keep firing the rules.
func (g *Generator) b2bSession(c *contact) {
	g.startSession(c)
	if c.sessions > 0 && g.chance(0.45) {
		// a light visit: one or two pages
		switch c.persona {
		case developer:
			g.pages(c, docsPages, 1, 2)
		case jobSeeker:
			g.pages(c, careersPages, 1, 2)
		default:
			g.pages(c, blogPages, 1, 2)
		}
		return
	}
	switch c.persona {
	case reader:
		g.pages(c, blogPages, 1, 4)
		if g.chance(0.2) {
			g.pages(c, docsPages, 1, 2)
		}
		if g.chance(0.1) {
			g.pages(c, pricingPages, 1, 1)
		}
		if c.sessions >= 1 && !c.idQueued && g.chance(0.3) && c.identifyOnce() {
			c.add(opForm, formNewsletter)
		}
	case developer:
		if g.chance(0.3) {
			g.pages(c, productPages, 1, 1)
		}
		g.pages(c, docsPages, 2, 6)
		if c.milestones < 3 && g.chance(0.25) {
			c.add(opVideo, uint8(g.rng.IntN(len(videos))))
			c.milestones++
		}
		if g.chance(0.1) {
			g.pages(c, pricingPages, 1, 1)
		}
		switch {
		case !c.trial && c.sessions >= 2 && c.identifyOnce():
			c.add(opTrial, 0)
			c.trial, c.trialAt = true, c.sessions
		case c.trial && !c.project && c.willProject && c.sessions > c.trialAt:
			c.add(opProject, uint8(g.rng.IntN(len(templates))))
			c.project = true
		case c.trial && !c.formDone && c.sessions > c.trialAt+3 && g.chance(0.15):
			g.pages(c, pricingPages, 1, 2)
			c.add(opForm, formDemo)
			c.add(opPage, pageThankYou)
			c.formDone = true
		}
	case buyer:
		g.pages(c, blogPages, 0, 2)
		if g.chance(0.3) {
			g.pages(c, productPages, 1, 2)
		}
		if c.milestones < 2 && g.chance(0.3) {
			c.identifyOnce()
			c.add(opGuide, uint8(g.rng.IntN(len(guides))))
			c.milestones++
		}
		g.pages(c, pricingPages, 1, 2)
		if c.userID != "" && c.webinars < 2 && g.chance(0.25) {
			c.add(opWebinar, uint8(g.rng.IntN(len(webinars))))
			c.webinars++
		}
		if !c.formDone && c.sessions >= 3 && g.chance(0.35) && c.identifyOnce() {
			form := uint8(formContact)
			if g.chance(0.5) {
				form = formDemo
			}
			c.add(opForm, form)
			c.add(opPage, pageThankYou)
			c.formDone = true
		}
	case jobSeeker:
		g.pages(c, careersPages, 1, 3)
		if g.chance(0.4) {
			g.pages(c, blogPages, 1, 1)
		}
	}
}

// shopSession plans the contact's next visit to the shop. After an order a
// shopper only browses for a while.
func (g *Generator) shopSession(c *contact) {
	g.startSession(c)
	c.add(opPage, shopHome)
	if g.chance(0.6) {
		c.add(opPage, uint8(shopCategory0+g.rng.IntN(len(categories))))
	}
	views := 1 + g.rng.IntN(4)
	if c.persona == browser {
		views = 1 + g.rng.IntN(3)
	}
	first := uint8(g.rng.IntN(len(products)))
	for i := range views {
		p := first
		if i > 0 {
			p = uint8(g.rng.IntN(len(products)))
		}
		c.add(opView, p)
	}
	if c.orders > 0 && c.reviews < c.orders && g.chance(0.2) {
		c.add(opReview, c.lastOrder)
		c.reviews++
	}
	if c.orders > 0 && !c.refunded && g.chance(0.03) {
		c.add(opRefund, 0)
		c.refunded = true
	}
	if c.cooloff > 0 {
		c.cooloff--
		return
	}
	var pAdd, pCheckout, pOrder float64
	var cooloff int
	switch c.persona {
	case browser:
		pAdd, pCheckout, pOrder, cooloff = 0.08, 0.2, 0.5, 20
	case shopper:
		pAdd, pCheckout, pOrder, cooloff = 0.4, 0.4, 0.6, 12
	case regular:
		pAdd, pCheckout, pOrder, cooloff = 0.5, 0.6, 0.8, 8
	case loyal:
		pAdd, pCheckout, pOrder, cooloff = 0.7, 0.8, 0.9, 4
	}
	if !g.chance(pAdd) {
		return
	}
	c.add(opAdd, first)
	if g.chance(0.35) {
		c.add(opAdd, uint8(g.rng.IntN(len(products))))
	}
	if !g.chance(pCheckout) {
		return
	}
	c.identifyOnce()
	c.add(opCheckout, 0)
	if g.chance(pOrder) {
		c.add(opOrder, 0)
		c.cooloff = cooloff/2 + g.rng.IntN(cooloff)
	}
}

// emit fills g.cur with the event of one step.
func (g *Generator) emit(c *contact, o op) {
	r := &g.cur
	r.anonID = c.anonID
	r.userID = c.userID
	r.ua = userAgents[c.ua]
	r.ip = c.ip
	r.campaign = c.campaign
	r.site = site
	if g.ecom {
		r.site = shop
	}
	switch o.kind {
	case opPage:
		pg := &pageTable[o.arg]
		r.typ, r.name = "page", pg.name
		r.str("path", pg.path)
		r.url("url", r.site, pg.path)
		r.str("title", pg.title)
		if c.prevPage >= 0 {
			r.url("referrer", r.site, pageTable[c.prevPage].path)
		} else if c.campaign >= 0 {
			r.str("referrer", campaigns[c.campaign].referrer)
		}
		c.prevPage = int(o.arg)
	case opIdentify:
		if c.userID == "" {
			c.idAt = g.seq
			c.userID = "u-" + c.anonID[len("anon-"):]
			c.email = firstNames[c.first] + "." + lastNames[c.last] + "@" + companies[c.company].domain
		}
		r.userID = c.userID
		r.typ = "identify"
		if g.cfg.SharedDevices > 0 && g.chance(g.cfg.SharedDevices) {
			if o := g.contacts[g.rng.IntN(len(g.contacts))]; o != nil && o != c && o.userID != "" && g.seq > o.idAt+1000 {
				r.anonID = o.anonID
			}
		}
		r.tstr("email", c.email)
		r.tstr("first_name", firstNamesCap[c.first])
		r.tstr("last_name", lastNamesCap[c.last])
		r.tstr("region", regions[c.region])
		if g.ecom {
			if c.tier > 0 {
				r.tstr("loyalty_tier", tiers[c.tier])
			}
			r.tnum("lifetime_value", c.ltv)
			r.traits = append(r.traits, field{key: "newsletter", kind: kBool, b: c.newsletter})
		} else {
			r.tstr("company", companies[c.company].name)
			r.tstr("industry", industries[c.industry])
			r.tnum("company_size", c.size)
			r.tstr("title", titles[c.title])
		}
	case opGuide:
		r.track("Guide Downloaded")
		r.str("guide", guides[o.arg])
		r.str("format", "pdf")
	case opWebinar:
		r.track("Webinar Attended")
		r.str("webinar", webinars[o.arg])
		r.num("minutes", float64(20+g.rng.IntN(41)))
	case opVideo:
		v := &videos[o.arg]
		r.track("Video Watched")
		r.str("video", v.name)
		r.num("minutes", math.Round(v.minutes*(0.4+0.6*g.rng.Float64())*10)/10)
	case opTrial:
		r.track("Trial Started")
		r.str("plan", plans[g.rng.IntN(len(plans))])
		r.num("trial_days", 14)
	case opProject:
		r.track("Project Created")
		r.str("template", templates[o.arg])
	case opForm:
		r.track("Form Submitted")
		r.str("form", forms[o.arg])
		r.str("path", pageTable[formPages[o.arg]].path)
	case opView:
		p := &products[o.arg]
		r.track("Product Viewed")
		r.productProps(p)
	case opAdd:
		p := &products[o.arg]
		r.track("Product Added")
		r.productProps(p)
		r.num("quantity", 1)
		r.str("cart_id", c.anonID)
		if c.cartN < len(c.cart) {
			c.cart[c.cartN] = o.arg
			c.cartN++
		}
		c.cartValue += p.price
	case opCheckout:
		r.track("Checkout Started")
		r.num("value", round2(c.cartValue))
		r.num("products", float64(c.cartN))
		r.str("currency", "EUR")
	case opOrder:
		r.track("Order Completed")
		r.props = append(r.props, field{key: "order_id", kind: kSeq, prefix: "o-", n: float64(g.seq)})
		r.num("revenue", round2(c.cartValue))
		r.num("products", float64(c.cartN))
		r.str("currency", "EUR")
		if c.cartN > 0 {
			c.lastOrder = c.cart[0]
		}
		c.orders++
		c.cartN, c.cartValue = 0, 0
	case opReview:
		r.track("Product Reviewed")
		r.str("product_id", products[o.arg].id)
		r.num("rating", float64(3+g.rng.IntN(3)))
	case opRefund:
		r.track("Order Refunded")
		r.str("reason", "size")
	}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// ---- the event being built ----

type kind uint8

const (
	kStr kind = iota
	kNum
	kBool
	kURL // prefix + s
	kSeq // prefix + n as a whole number
)

// field is one key of properties or traits.
type field struct {
	key    string
	kind   kind
	s      string
	prefix string
	n      float64
	b      bool
}

// rawEvent is the event being built, reused from one event to the next.
type rawEvent struct {
	typ, userID, anonID, event, name string
	t                                int64
	props, traits                    []field
	ua, ip, site                     string
	campaign                         int8
}

func (r *rawEvent) reset(t int64) {
	r.typ, r.userID, r.anonID, r.event, r.name = "", "", "", "", ""
	r.t = t
	r.props = r.props[:0]
	r.traits = r.traits[:0]
}

func (r *rawEvent) track(name string) { r.typ, r.event = "track", name }
func (r *rawEvent) str(k, v string)   { r.props = append(r.props, field{key: k, s: v}) }
func (r *rawEvent) num(k string, v float64) {
	r.props = append(r.props, field{key: k, kind: kNum, n: v})
}
func (r *rawEvent) url(k, prefix, path string) {
	r.props = append(r.props, field{key: k, kind: kURL, prefix: prefix, s: path})
}
func (r *rawEvent) tstr(k, v string) { r.traits = append(r.traits, field{key: k, s: v}) }
func (r *rawEvent) tnum(k string, v float64) {
	r.traits = append(r.traits, field{key: k, kind: kNum, n: v})
}

func (r *rawEvent) productProps(p *product) {
	r.str("product_id", p.id)
	r.str("name", p.name)
	r.str("category", categories[p.category])
	r.num("price", p.price)
	r.str("currency", "EUR")
}

func (f *field) value() any {
	switch f.kind {
	case kNum:
		return f.n
	case kBool:
		return f.b
	case kURL:
		return f.prefix + f.s
	case kSeq:
		return f.prefix + strconv.FormatUint(uint64(f.n), 10)
	}
	return f.s
}

func fieldsMap(fs []field) map[string]any {
	m := make(map[string]any, len(fs))
	for i := range fs {
		m[fs[i].key] = fs[i].value()
	}
	return m
}

func appendFields(dst []byte, fs []field) []byte {
	dst = append(dst, '{')
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.key)
		dst = append(dst, ':')
		switch f.kind {
		case kNum:
			dst = strconv.AppendFloat(dst, f.n, 'f', -1, 64)
		case kBool:
			dst = strconv.AppendBool(dst, f.b)
		case kURL:
			dst = append(dst, '"')
			dst = appendEscaped(dst, f.prefix)
			dst = appendEscaped(dst, f.s)
			dst = append(dst, '"')
		case kSeq:
			dst = append(dst, '"')
			dst = appendEscaped(dst, f.prefix)
			dst = strconv.AppendUint(dst, uint64(f.n), 10)
			dst = append(dst, '"')
		default:
			dst = appendString(dst, f.s)
		}
	}
	return append(dst, '}')
}

const libraryName, libraryVersion = "analytics.js", "5.2.1"

func (r *rawEvent) contextMap() map[string]any {
	m := map[string]any{
		"ip":        r.ip,
		"userAgent": r.ua,
		"locale":    "en-US",
		"library":   map[string]any{"name": libraryName, "version": libraryVersion},
	}
	if r.campaign >= 0 {
		c := &campaigns[r.campaign]
		m["campaign"] = map[string]any{"source": c.source, "medium": c.medium, "name": c.name}
	}
	return m
}

func (r *rawEvent) appendContext(dst []byte) []byte {
	dst = append(dst, `{"ip":`...)
	dst = appendString(dst, r.ip)
	dst = append(dst, `,"userAgent":`...)
	dst = appendString(dst, r.ua)
	dst = append(dst, `,"locale":"en-US","library":{"name":"`+libraryName+`","version":"`+libraryVersion+`"}`...)
	if r.campaign >= 0 {
		c := &campaigns[r.campaign]
		dst = append(dst, `,"campaign":{"source":`...)
		dst = appendString(dst, c.source)
		dst = append(dst, `,"medium":`...)
		dst = appendString(dst, c.medium)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, c.name)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s with JSON string escaping (no quotes).
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// ---- the sites ----

const (
	site = "https://www.example.com"
	shop = "https://shop.example.com"
)

type page struct{ path, title, name string }

// pageTable holds every page of both sites; the lists below index it.
var (
	pageTable                                                      []page
	blogPages, docsPages, pricingPages, productPages, careersPages []uint8
	pageThankYou, pageDemo, pageContact, pageNewsletter, shopHome  uint8
	shopCategory0                                                  int
)

func addPage(path, title, name string) uint8 {
	pageTable = append(pageTable, page{path, title, name})
	return uint8(len(pageTable) - 1)
}

func addPages(list *[]uint8, name string, pages ...string) {
	for i := 0; i+1 < len(pages); i += 2 {
		*list = append(*list, addPage(pages[i], pages[i+1], name))
	}
}

func init() {
	addPages(&blogPages, "Blog",
		"/blog/pipeline-hygiene", "Pipeline hygiene in five steps",
		"/blog/intent-signals", "Intent signals that predict a deal",
		"/blog/release-notes-2026-01", "Release notes: January 2026",
		"/blog/lead-scoring-101", "Lead scoring 101",
		"/blog/kafka-for-marketers", "Kafka for marketers",
		"/blog/roadmap", "What we are building next",
		"/blog/customer-story-northwind", "How Northwind doubled pipeline",
		"/blog/gdpr-and-tracking", "GDPR and first-party tracking",
		"/blog/sales-marketing-alignment", "Sales and marketing, aligned",
		"/blog/real-time-alerts", "Why alerts must be real-time",
		"/blog/benchmarks", "Our benchmarks, explained",
		"/blog/hiring-engineers", "We are hiring engineers",
	)
	addPages(&docsPages, "Docs",
		"/docs/quickstart", "Quickstart",
		"/docs/concepts", "Concepts",
		"/docs/rules", "Writing rules",
		"/docs/rules/windows", "Windows",
		"/docs/rules/scoring", "Scoring",
		"/docs/rules/triggers", "Triggers",
		"/docs/sdk/javascript", "JavaScript SDK",
		"/docs/sdk/go", "Go SDK",
		"/docs/sdk/python", "Python SDK",
		"/docs/api/events", "Events API",
		"/docs/api/webhooks", "Webhooks",
		"/docs/integrations/salesforce", "Salesforce",
		"/docs/integrations/hubspot", "HubSpot",
		"/docs/deploy/kubernetes", "Deploy on Kubernetes",
		"/docs/security", "Security",
	)
	addPages(&pricingPages, "Pricing",
		"/pricing", "Pricing",
		"/pricing", "Pricing",
		"/pricing/teams", "Pricing: Teams",
		"/pricing/enterprise", "Pricing: Enterprise",
		"/pricing/compare", "Compare plans",
	)
	addPages(&productPages, "Product",
		"/", "Home",
		"/product", "Product",
		"/product/integrations", "Integrations",
		"/customers", "Customers",
		"/security", "Security and compliance",
	)
	addPages(&careersPages, "Careers",
		"/careers", "Careers",
		"/careers/openings/senior-go-engineer", "Senior Go Engineer",
		"/careers/openings/account-executive-emea", "Account Executive, EMEA",
		"/careers/openings/product-designer", "Product Designer",
		"/about", "About us",
	)
	pageThankYou = addPage("/thank-you", "Thank you", "Thank You")
	pageDemo = addPage("/demo", "Book a demo", "Demo")
	pageContact = addPage("/contact", "Contact sales", "Contact")
	pageNewsletter = addPage("/newsletter", "Newsletter", "Newsletter")
	formPages = [...]uint8{formNewsletter: pageNewsletter, formContact: pageContact, formDemo: pageDemo}

	shopHome = addPage("/", "Home", "Home")
	shopCategory0 = len(pageTable)
	for _, c := range categories {
		addPage("/c/"+c, strings.ToUpper(c[:1])+c[1:], "Category")
	}
	for _, n := range firstNames {
		firstNamesCap = append(firstNamesCap, strings.ToUpper(n[:1])+n[1:])
	}
	for _, n := range lastNames {
		lastNamesCap = append(lastNamesCap, strings.ToUpper(n[:1])+n[1:])
	}
	if len(pageTable) > 255 || len(products) > 255 {
		panic("traffic: page or product table too large for uint8 indices")
	}
}

const (
	formNewsletter = iota
	formContact
	formDemo
)

var (
	forms     = [...]string{formNewsletter: "newsletter", formContact: "contact", formDemo: "demo"}
	formPages [3]uint8
)

type company struct{ name, domain string }

var (
	firstNames                  = []string{"ada", "bo", "chen", "dana", "elif", "femi", "gita", "hugo", "ines", "jonas", "kai", "lena", "mateo", "noor", "olga", "priya", "quinn", "rosa", "sven", "tomas", "uma", "vik", "wen", "yara"}
	firstNamesCap, lastNamesCap []string // for traits; the lower-case forms make emails
	lastNames                   = []string{"rossi", "smith", "tanaka", "kowalski", "nguyen", "garcia", "muller", "okafor", "silva", "larsen", "haddad", "kim", "dubois", "novak", "patel", "ivanova"}
	companies                   = []company{
		{"Northwind", "northwind.io"}, {"Acme", "acme.com"}, {"Globex", "globex.co.jp"},
		{"Initech", "initech.com"}, {"Hooli", "hooli.com"}, {"Umbrella", "umbrella.de"},
		{"Stark Industries", "stark.com"}, {"Wayne Enterprises", "wayne.com"},
		{"Cyberdyne", "cyberdyne.ai"}, {"Soylent", "soylent.fr"}, {"Tyrell", "tyrell.sg"},
		{"Vandelay", "vandelay.com"}, {"Pied Piper", "piedpiper.com"}, {"Massive Dynamic", "massive.co.uk"},
		{"Aperture", "aperture.com.au"}, {"Oscorp", "oscorp.in"},
	}
	industries   = []string{"software", "fintech", "healthcare", "retail", "manufacturing", "education", "media", "logistics"}
	companySizes = []float64{5, 12, 40, 90, 150, 250, 600, 1200, 4000, 15000}
	titles       = []string{
		"VP Engineering", "Head of Data", "Director of Marketing", "CTO", "Founder",
		"Product Manager", "Software Engineer", "Staff Engineer", "Engineering Manager",
		"Marketing Operations Manager", "Data Analyst", "Account Executive", "CS Student", "Marketing Intern",
	}
	devTitles     = []uint8{6, 7, 8, 3, 1, 10}
	buyerTitles   = []uint8{0, 1, 2, 3, 4, 5, 9}
	regions       = []string{"emea", "apac", "amer"}
	regionWeights = []float64{0.35, 0.2, 0.45}
	tiers         = []string{"", "silver", "gold", "platinum"}
	tierWeights   = []float64{0.6, 0.25, 0.12, 0.03}

	userAgents = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
	}
	campaigns = []struct{ source, medium, name, referrer string }{
		{"google", "cpc", "brand-search", "https://www.google.com/"},
		{"linkedin", "paid-social", "q1-abm", "https://www.linkedin.com/"},
		{"newsletter", "email", "monthly-digest", "https://mail.example.com/"},
		{"g2", "referral", "reviews", "https://www.g2.com/"},
	}
	guides   = []string{"buyers-guide", "roi-calculator", "state-of-pipelines-2026", "security-whitepaper"}
	webinars = []string{"scaling-pipelines", "real-time-scoring", "abm-playbook"}
	videos   = []struct {
		name    string
		minutes float64
	}{{"product-tour", 12}, {"pipelines-deep-dive", 35}, {"customer-story", 8}, {"rules-workshop", 55}}
	plans     = []string{"team", "business"}
	templates = []string{"blank", "web-tracking", "salesforce-sync", "hubspot-sync"}

	categories = []string{"shoes", "jackets", "bags", "shirts", "accessories", "socks", "watches"}
	products   = []product{
		{"p-100", "Trail Runner", 0, 89}, {"p-101", "City Sneaker", 0, 119}, {"p-102", "Leather Boot", 0, 189},
		{"p-200", "Rain Shell", 1, 149}, {"p-201", "Down Parka", 1, 279}, {"p-202", "Denim Jacket", 1, 99},
		{"p-300", "Weekender", 2, 219}, {"p-301", "Tote", 2, 59}, {"p-302", "Backpack", 2, 129},
		{"p-400", "Oxford Shirt", 3, 69}, {"p-401", "Linen Shirt", 3, 79}, {"p-402", "Flannel", 3, 59},
		{"p-500", "Belt", 4, 45}, {"p-501", "Wool Scarf", 4, 39}, {"p-502", "Sunglasses", 4, 129},
		{"p-600", "Merino Socks", 5, 19.5}, {"p-601", "Running Socks 3-pack", 5, 24},
		{"p-700", "Field Watch", 6, 249}, {"p-701", "Dive Watch", 6, 459},
	}
)

type product struct {
	id, name string
	category uint8
	price    float64
}
