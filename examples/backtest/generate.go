//go:build ignore

// generate writes the backtest example: recorded B2B traffic
// (b2b-traffic.jsonl, from the traffic generator, without the fields that
// no example rule reads: `context`, and the url, title and referrer
// properties) and the closed-won deals a CRM would
// export for it (closed-deals.csv). Deals follow behaviour, as they do in
// life, but loosely: a demo request often closes, a contact form less often,
// a trial with a project now and then, anyone else rarely; each closes 5 to
// 50 days after the step that made it likely. A few deals are keyed by the
// cookie's anonymous id (captured by a form), and a few belong to contacts
// who never visited (offline deals): backtest ignores and counts those.
//
//	go run examples/backtest/generate.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/leadpulse/leadpulse/traffic"
)

func main() {
	const events = 16000
	g := traffic.New(traffic.Config{Contacts: 700, Seed: 2026, Step: 4 * time.Minute, AnonymousShare: 0.5})
	tf, err := os.Create("examples/backtest/b2b-traffic.jsonl")
	check(err)
	w := bufio.NewWriter(tf)
	rng := rand.New(rand.NewPCG(2026, 7))
	type deal struct {
		id, anon string
		at       time.Time
		amount   int
	}
	best := map[string]*deal{} // userId → its likeliest deal
	anonOf := map[string]string{}
	for range events {
		e := g.Next()
		e.Context = nil
		line := map[string]any{"type": e.Type, "messageId": e.MessageID, "timestamp": e.RawTimestamp}
		for k, v := range map[string]string{"userId": e.UserID, "anonymousId": e.AnonymousID, "event": e.Event, "name": e.Name} {
			if v != "" {
				line[k] = v
			}
		}
		if e.Properties != nil {
			delete(e.Properties, "url") // no rule reads them: a smaller file
			delete(e.Properties, "title")
			delete(e.Properties, "referrer")
			line["properties"] = e.Properties
		}
		if e.Traits != nil {
			line["traits"] = e.Traits
		}
		b, err := json.Marshal(line)
		check(err)
		w.Write(b)
		w.WriteByte('\n')
		if e.UserID == "" {
			continue
		}
		if e.AnonymousID != "" {
			anonOf[e.UserID] = e.AnonymousID
		}
		p := 0.0
		switch {
		case e.Type == "track" && e.Event == "Form Submitted" && e.Properties["form"] == "demo":
			p = 0.7
		case e.Type == "track" && e.Event == "Form Submitted" && e.Properties["form"] == "contact":
			p = 0.6
		case e.Type == "track" && e.Event == "Project Created":
			p = 0.35
		case e.Type == "track" && e.Event == "Webinar Attended":
			p = 0.15
		case e.Type == "identify":
			p = 0.03
		}
		if p == 0 || best[e.UserID] != nil || rng.Float64() >= p {
			continue
		}
		at := time.Unix(0, e.Time).UTC().Add(time.Duration(5+rng.IntN(46)) * 24 * time.Hour).Add(time.Duration(rng.IntN(9*60)) * time.Minute)
		best[e.UserID] = &deal{id: e.UserID, at: at, amount: 5000 + 1000*rng.IntN(60)}
	}
	check(w.Flush())
	check(tf.Close())

	var deals []*deal
	for _, d := range best {
		deals = append(deals, d)
	}
	sort.Slice(deals, func(i, j int) bool {
		return deals[i].at.Before(deals[j].at) || deals[i].at.Equal(deals[j].at) && deals[i].id < deals[j].id
	})
	cf, err := os.Create("examples/backtest/closed-deals.csv")
	check(err)
	cw := bufio.NewWriter(cf)
	fmt.Fprintln(cw, "contact_id,closed_won_at,amount_eur")
	for i, d := range deals {
		id := d.id
		if i%9 == 4 && anonOf[d.id] != "" {
			id = anonOf[d.id] // the CRM knew the visitor by the form's cookie id
		}
		fmt.Fprintf(cw, "%s,%s,%d\n", id, d.at.Format(time.RFC3339), d.amount)
	}
	for i, at := range []string{"2026-01-20T10:00:00Z", "2026-02-03T15:30:00Z", "2026-02-17T09:15:00Z"} {
		fmt.Fprintf(cw, "offline-deal-%d,%s,%d\n", i+1, at, 20000+5000*i)
	}
	check(cw.Flush())
	check(cf.Close())
	fmt.Printf("%d events, %d deals\n", events, len(deals)+3)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
