package testenv

// Groups joins ids that occur together (union-find), for tests that must
// keep every event of a person in one input partition: key each event by
// the group of its ids, and the ingest stage, which keeps the order of an
// input partition only, delivers a person's events in input order. Keyed
// by one id alone (the anonymousId, as a site's tracker does), a user's
// identify from a shared device travels in the device's partition and may
// overtake, or fall behind, the user's other events.
type Groups struct{ parent map[string]string }

// Join puts a and b in one group; an empty id joins nothing.
func (g *Groups) Join(a, b string) {
	if a == "" || b == "" {
		return
	}
	ra, rb := g.Of(a), g.Of(b)
	if ra != rb {
		if rb < ra {
			ra, rb = rb, ra
		}
		g.parent[rb] = ra
	}
}

// Of returns the representative of id's group (id itself when it joined
// nothing).
func (g *Groups) Of(id string) string {
	if g.parent == nil {
		g.parent = map[string]string{}
	}
	for {
		p, ok := g.parent[id]
		if !ok || p == id {
			return id
		}
		if gp, ok := g.parent[p]; ok && gp != p {
			g.parent[id] = gp // path halving
		}
		id = p
	}
}
