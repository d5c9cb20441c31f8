package traffic

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
)

func lines(cfg Config, n int) [][]byte {
	g := New(cfg)
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.AppendJSON(nil)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"b2b", Config{Contacts: 500}},
		{"ecommerce", Config{Contacts: 500, Mix: MixEcommerce}},
		{"zipf", Config{Contacts: 500, Zipf: 1.3, Seed: 7}},
		{"fast", Config{Contacts: 500, Step: 50 * time.Microsecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := lines(tc.cfg, 3000), lines(tc.cfg, 3000)
			for i := range a {
				if !bytes.Equal(a[i], b[i]) {
					t.Fatalf("event %d differs between two runs of the same config:\n%s\n%s", i, a[i], b[i])
				}
			}
			other := tc.cfg
			other.Seed += 100
			c := lines(other, 3000)
			same := 0
			for i := range a {
				if bytes.Equal(a[i], c[i]) {
					same++
				}
			}
			if same > 0 {
				t.Errorf("seed %d and %d share %d of 3000 events", tc.cfg.Seed, other.Seed, same)
			}
		})
	}
}

// Next and AppendJSON read the same stream: the JSON decodes to the event
// Next returns.
func TestNextMatchesAppendJSON(t *testing.T) {
	for _, mix := range []string{MixB2B, MixEcommerce} {
		t.Run(mix, func(t *testing.T) {
			cfg := Config{Contacts: 300, Mix: mix}
			g1, g2 := New(cfg), New(cfg)
			for i := range 5000 {
				want := g1.Next()
				line := g2.AppendJSON(nil)
				got, err := event.Decode(line, event.JSON, 0)
				if err != nil {
					t.Fatalf("event %d: %v\n%s", i, err, line)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("event %d: Next and AppendJSON differ:\nNext: %+v\nJSON: %+v\n%s", i, want, got, line)
				}
			}
		})
	}
}

func TestEventsDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"b2b default", Config{}},
		{"ecommerce", Config{Mix: MixEcommerce, Seed: 3}},
		{"zipf fast", Config{Zipf: 2, Step: time.Microsecond}},
		{"all identify", Config{AnonymousShare: -1, Contacts: 100}},
		{"turnover", Config{Contacts: 200, Lifetime: 10, Seed: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(tc.cfg)
			ids := map[string]bool{}
			var last int64
			var buf []byte
			for i := range 20000 {
				buf = g.AppendJSON(buf[:0])
				e, err := event.Decode(buf, event.Auto, 0)
				if err != nil {
					t.Fatalf("event %d does not decode: %v\n%s", i, err, buf)
				}
				if i == 0 {
					start := tc.cfg.Start
					if start.IsZero() {
						start = DefaultStart
					}
					if e.Time != start.UnixNano() {
						t.Errorf("first event at %s, want Start %s", e.Timestamp(), start)
					}
				}
				if e.Time <= last {
					t.Fatalf("event %d: time %d does not increase (previous %d)", i, e.Time, last)
				}
				last = e.Time
				if ids[e.MessageID] {
					t.Fatalf("event %d: messageId %q repeated", i, e.MessageID)
				}
				ids[e.MessageID] = true
				if e.AnonymousID == "" {
					t.Fatalf("event %d has no anonymousId: %s", i, buf)
				}
				if ts, _ := time.Parse(time.RFC3339, e.RawTimestamp); ts.UnixNano() != e.Time {
					t.Fatalf("event %d: timestamp %q is not RFC 3339 at Time", i, e.RawTimestamp)
				}
			}
		})
	}
}

// shape names an event for the mix test: "page /blog", "track Form Submitted
// demo", "identify".
func shape(e *event.Event) string {
	switch e.Type {
	case "page":
		p, _ := e.Properties["path"].(string)
		if i := strings.IndexByte(p[1:], '/'); i >= 0 {
			p = p[:i+1]
		}
		return "page " + p
	case "track":
		if f, ok := e.Properties["form"].(string); ok {
			return "track " + e.Event + " " + f
		}
		return "track " + e.Event
	}
	return e.Type
}

func TestMixHasEveryShape(t *testing.T) {
	for _, tc := range []struct {
		mix  string
		want []string
	}{
		{MixB2B, []string{
			"page /blog", "page /docs", "page /pricing", "page /careers", "page /thank-you",
			"identify", "track Guide Downloaded", "track Webinar Attended", "track Video Watched",
			"track Trial Started", "track Project Created",
			"track Form Submitted demo", "track Form Submitted contact", "track Form Submitted newsletter",
		}},
		{MixEcommerce, []string{
			"page /", "page /c", "identify", "track Product Viewed", "track Product Added",
			"track Checkout Started", "track Order Completed", "track Product Reviewed", "track Order Refunded",
		}},
	} {
		t.Run(tc.mix, func(t *testing.T) {
			g := New(Config{Contacts: 1000, Mix: tc.mix})
			seen := map[string]int{}
			regions := map[string]int{}
			anon, known := map[string]bool{}, map[string]bool{}
			for range 100_000 {
				e := g.Next()
				seen[shape(e)]++
				anon[e.AnonymousID] = true
				if e.UserID != "" {
					known[e.AnonymousID] = true
				}
				switch e.Type {
				case "identify":
					for _, k := range []string{"email", "region"} {
						if _, ok := e.Traits[k].(string); !ok {
							t.Fatalf("identify without trait %s: %v", k, e.Traits)
						}
					}
					regions[e.Traits["region"].(string)]++
					if tc.mix == MixB2B {
						if _, ok := e.Traits["company_size"].(float64); !ok {
							t.Fatalf("company_size is not a number: %v", e.Traits)
						}
						for _, k := range []string{"industry", "title", "company"} {
							if _, ok := e.Traits[k].(string); !ok {
								t.Fatalf("identify without trait %s: %v", k, e.Traits)
							}
						}
					}
				case "track":
					if e.Event == "Product Added" {
						if p, ok := e.Properties["price"].(float64); !ok || p <= 0 {
							t.Fatalf("Product Added without a price: %v", e.Properties)
						}
					}
					if e.Event == "Form Submitted" && e.UserID == "" {
						t.Fatalf("a form fill before identify: %+v", e)
					}
				}
			}
			var missing []string
			for _, s := range tc.want {
				if seen[s] == 0 {
					missing = append(missing, s)
				}
			}
			if len(missing) > 0 {
				t.Errorf("no event of shape %q in 100000; saw %v", missing, keys(seen))
			}
			for _, r := range []string{"emea", "apac", "amer"} {
				if regions[r] == 0 {
					t.Errorf("no identify in region %s: %v", r, regions)
				}
			}
			share := 1 - float64(len(known))/float64(len(anon))
			if share < 0.6 || share > 0.85 {
				t.Errorf("share of contacts never identified = %.2f, want a little above AnonymousShare 0.6", share)
			}
		})
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

func TestZipfSkews(t *testing.T) {
	for _, tc := range []struct {
		name           string
		zipf           float64
		minTop, maxTop float64 // share of events of the busiest contact
	}{
		{"uniform", 0, 0, 0.002},
		{"zipf 1.2", 1.2, 0.10, 0.6},
		{"zipf 2", 2, 0.4, 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 50_000
			g := New(Config{Contacts: 5000, Zipf: tc.zipf})
			count := map[string]int{}
			for range n {
				count[g.Next().AnonymousID]++
			}
			if len(count) > 5000 {
				t.Errorf("%d distinct anonymousIds from 5000 contacts", len(count))
			}
			top := 0
			for _, c := range count {
				top = max(top, c)
			}
			share := float64(top) / n
			if share < tc.minTop || share > tc.maxTop {
				t.Errorf("busiest contact has %.4f of the events, want %.4f..%.4f (%d contacts seen)", share, tc.minTop, tc.maxTop, len(count))
			}
		})
	}
}

func TestStep(t *testing.T) {
	g := New(Config{Step: time.Second, Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)})
	const n = 20000
	var first, last int64
	for i := range n {
		e := g.Next()
		if i == 0 {
			first = e.Time
		}
		last = e.Time
		if e.Time%int64(time.Millisecond) != 0 {
			t.Fatalf("timestamp %s is not in whole milliseconds", e.RawTimestamp)
		}
	}
	mean := time.Duration((last - first) / (n - 1))
	if mean < 950*time.Millisecond || mean > 1050*time.Millisecond {
		t.Errorf("mean gap %s, want about 1s", mean)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"b2b", Config{}},
		{"ecommerce", Config{Mix: MixEcommerce}},
		{"b2b-zipf", Config{Zipf: 1.2}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := New(tc.cfg)
			buf := make([]byte, 0, 1024)
			// Warm up: meet every contact once so the loop measures the
			// steady state.
			for range 10 * g.cfg.Contacts {
				buf = g.AppendJSON(buf[:0])
			}
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int64
			for b.Loop() {
				buf = g.AppendJSON(buf[:0])
				bytes += int64(len(buf))
			}
			b.SetBytes(bytes / int64(max(b.N, 1)))
		})
	}
}

func BenchmarkNext(b *testing.B) {
	g := New(Config{})
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Next()
	}
}

// TestSharedDevices: with SharedDevices, some identifies carry the
// anonymousId of another contact who identified before (a conflict in
// SPEC §6); without, every identify carries the contact's own.
func TestSharedDevices(t *testing.T) {
	for _, share := range []float64{0, 0.3} {
		g := New(Config{Contacts: 400, Seed: 7, AnonymousShare: 0.2, SharedDevices: share})
		shared := 0
		for range 20_000 {
			e := g.Next()
			if e.Type == "identify" && e.AnonymousID != "anon-"+e.UserID[len("u-"):] {
				shared++
			}
		}
		if share == 0 && shared != 0 || share > 0 && shared == 0 {
			t.Errorf("SharedDevices %v: %d identifies from another contact's device", share, shared)
		}
	}
}
