package traffic

import (
	"math"
	"math/rand/v2"
	"strconv"
)

import ()

// contact is one simulated visitor.
type contact struct {
	anonID   string
	userID   string // set when identified
	persona  uint8
	known    bool   // will identify
	idQueued bool   // an identify is planned or sent
	idAt     uint64 // the event number of the identify
	sessions int
	events   int  // events sent
	lifetime int  // events to send before leaving (Config.Lifetime)
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

// newContact creates visitor number i: 0 to Contacts-1 are the first
// population, the numbers after them the visitors who arrive later
// (turnover). The number decides the visitor's ids and profile.
func (g *Generator) newContact(i uint64) *contact {
	g.visitors++
	// Each contact draws from its own stream so that a contact's profile
	// does not depend on when it is first seen.
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), i+1))
	c := &contact{prevPage: -1, campaign: -1}
	var b [24]byte
	// Multiplying by an odd constant is a bijection on uint64, so ids are
	// distinct for distinct contacts; the seed varies them between runs.
	id := (i+1)*0x9e3779b97f4a7c15 ^ uint64(g.cfg.Seed)*0xbf58476d1ce4e5b9
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
	if g.cfg.Lifetime > 0 {
		// Drawn last, from the visitor's own stream: without turnover
		// every other draw, and so the traffic, stays what it was.
		c.lifetime = max(1, int(math.Round(r.ExpFloat64()*float64(g.cfg.Lifetime))))
	}
	return c
}
