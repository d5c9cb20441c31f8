package traffic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// TestTurnoverOffKeepsOutput: without Lifetime (the default, and any value
// below 1) the generator writes exactly what it wrote before turnover
// existed. The hashes are of the first 50,000 events of each config as the
// generator of commit a72496d wrote them; replay, engine and stream tests
// and the recorded example traffic rely on that output.
func TestTurnoverOffKeepsOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"default", Config{}, "61b296bf59096d64dc3a997da08bfe156f95307d42adac112796c83043523662"},
		{"ecommerce", Config{Mix: MixEcommerce, Seed: 3}, "9da83d1c5262f5102934d180ba7fcfa9b8629af353d687176456c808fc5a7e78"},
		{"zipf", Config{Contacts: 500, Zipf: 1.3, Seed: 7}, "1d12df6b8639aafe4c59779e7a86ea52f0d8632fa3f6b2e775fdafd8776292b3"},
		{"shared devices", Config{Contacts: 80, Seed: 21, Step: time.Millisecond, SharedDevices: 0.05, AnonymousShare: 0.2},
			"d8a9dab16bd0e5ce04b2cfe707c7a1d991fe3987733a55b6781750d8a7ec4d2b"},
		{"negative lifetime is off", Config{Lifetime: -5}, "61b296bf59096d64dc3a997da08bfe156f95307d42adac112796c83043523662"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(tc.cfg)
			h := sha256.New()
			var buf []byte
			for range 50_000 {
				buf = g.AppendJSON(buf[:0])
				h.Write(buf)
				h.Write([]byte{'\n'})
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
				t.Errorf("output of %+v changed: sha256 %s, want %s", tc.cfg, got, tc.want)
			}
			if g.Left() != 0 {
				t.Errorf("%d visitors left without turnover", g.Left())
			}
			if n := tc.cfg.Contacts; n > 0 && g.Visitors() > n {
				t.Errorf("%d visitors from %d contacts without turnover", g.Visitors(), n)
			}
		})
	}
}

// TestTurnover: with Lifetime L the live population stays at Contacts
// (no more than Contacts visitors are between their first and their last
// event at any point of the stream, and nearly that many once every slot
// has been seen: a slot is vacant to the eye only from its visitor's last
// event to its successor's first), new visitors arrive at about one per L events, a visitor
// who left never sends again, and the stream is the same for the same seed.
func TestTurnover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		n        int
		minLive  float64 // share of Contacts live in the third quarter, at least
		minEvery float64 // a new visitor every minEvery..maxEvery events
		maxEvery float64
	}{
		// Sessions are 1 to about 10 events and a visitor leaves at the end
		// of one, so it sends its lifetime plus what is left of its last
		// session: a little more than L events.
		{"b2b", Config{Contacts: 500, Lifetime: 20}, 100_000, 0.9, 20, 25},
		{"b2b long lives", Config{Contacts: 300, Lifetime: 200, Seed: 4}, 100_000, 0.95, 190, 215},
		{"ecommerce", Config{Contacts: 400, Lifetime: 30, Mix: MixEcommerce, Seed: 2}, 100_000, 0.9, 30, 36},
		// With Zipf the rarely picked slots are vacant to the eye for
		// longer: their visitors send seldom.
		{"zipf", Config{Contacts: 1000, Lifetime: 20, Zipf: 1.2, Seed: 9}, 100_000, 0.8, 20, 25},
		// A visitor of one session: a slot is vacant one pick in two or
		// three.
		{"one event lives", Config{Contacts: 100, Lifetime: 1, Seed: 5}, 50_000, 0.5, 1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(tc.cfg)
			type span struct{ first, last int }
			seen := map[string]*span{}
			var order []string
			for i := range tc.n {
				e := g.Next()
				id := e.AnonymousID
				s := seen[id]
				if s == nil {
					s = &span{first: i}
					seen[id] = s
					order = append(order, id)
				}
				s.last = i
			}
			if len(seen) != g.Visitors() {
				t.Errorf("%d distinct anonymousIds, Visitors() = %d", len(seen), g.Visitors())
			}
			if g.Visitors()-g.Left() > tc.cfg.Contacts {
				t.Errorf("Visitors %d − Left %d > Contacts %d", g.Visitors(), g.Left(), tc.cfg.Contacts)
			}
			// The live population at every 1,000th event: the visitors
			// between their first and last event.
			var firsts, lasts []int
			for _, id := range order {
				firsts = append(firsts, seen[id].first)
				lasts = append(lasts, seen[id].last)
			}
			minLive := tc.cfg.Contacts
			for k := 0; k < tc.n; k += 1000 {
				live := 0
				for j := range firsts {
					if firsts[j] <= k && k <= lasts[j] {
						live++
					}
				}
				if live > tc.cfg.Contacts {
					t.Fatalf("event %d: %d visitors live, more than Contacts %d", k, live, tc.cfg.Contacts)
				}
				// Near the end of the stream a visitor's later events
				// are not seen: measure in the third quarter.
				if k >= tc.n/2 && k < tc.n*3/4 {
					minLive = min(minLive, live)
				}
			}
			if float64(minLive) < tc.minLive*float64(tc.cfg.Contacts) {
				t.Errorf("as few as %d of %d contacts live in the third quarter, want at least %.0f%%", minLive, tc.cfg.Contacts, tc.minLive*100)
			}
			// Arrivals: one new visitor per about Lifetime events.
			every := float64(tc.n) / float64(g.Left())
			if every < tc.minEvery || every > tc.maxEvery {
				t.Errorf("a new visitor every %.1f events (%d left in %d events), want %v..%v", every, g.Left(), tc.n, tc.minEvery, tc.maxEvery)
			}
			// Deterministic per seed, different across seeds.
			a, b := lines(tc.cfg, 5000), lines(tc.cfg, 5000)
			for i := range a {
				if !bytes.Equal(a[i], b[i]) {
					t.Fatalf("event %d differs between two runs of the same config:\n%s\n%s", i, a[i], b[i])
				}
			}
			other := tc.cfg
			other.Seed += 100
			if c := lines(other, 50); bytes.Equal(a[0], c[0]) && bytes.Equal(a[49], c[49]) {
				t.Errorf("seeds %d and %d give the same events", tc.cfg.Seed, other.Seed)
			}
		})
	}
}

// TestTurnoverKeepsJourneys: with turnover the stream is still the site's:
// every kind of event appears, visitors still identify (so user contacts
// keep arriving too), and no visitor sends after its slot was taken.
func TestTurnoverKeepsJourneys(t *testing.T) {
	g := New(Config{Contacts: 1000, Lifetime: 40, Seed: 3})
	shapes := map[string]int{}
	users := map[string]bool{}
	for range 100_000 {
		e := g.Next()
		shapes[shape(e)]++
		if e.UserID != "" {
			users[e.UserID] = true
		}
	}
	for _, s := range []string{"identify", "track Trial Started", "track Form Submitted demo", "track Guide Downloaded", "page /pricing"} {
		if shapes[s] == 0 {
			t.Errorf("no %q in 100,000 events with turnover: %v", s, keys(shapes))
		}
	}
	// About 2,500 visitors pass, 40% of whom will identify; many leave
	// before they do.
	if len(users) < 300 {
		t.Errorf("%d identified visitors among %d, want hundreds", len(users), g.Visitors())
	}
}
