package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadpulse/leadpulse/rules"
)

// Feed fans actions out to the live feed's subscribers (GET /feed, Server-
// Sent Events). Publishing never blocks the pipeline: each subscriber has a
// bounded queue, and actions that do not fit are dropped for that
// subscriber and counted (the page shows the count), so a slow browser
// costs only itself.
type Feed struct {
	queue int

	mu   sync.Mutex
	subs map[*subscriber]struct{}

	published atomic.Uint64
}

type subscriber struct {
	ch      chan *rules.Record
	dropped atomic.Uint64
}

// NewFeed returns a feed whose subscribers queue up to queue actions each.
// default: 8192
func NewFeed(queue int) *Feed {
	if queue <= 0 {
		queue = 8192
	}
	return &Feed{queue: queue, subs: map[*subscriber]struct{}{}}
}

// Publish sends r to every subscriber that has room; r must not change
// afterwards.
func (f *Feed) Publish(r *rules.Record) {
	f.published.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		select {
		case s.ch <- r:
		default:
			s.dropped.Add(1)
		}
	}
}

// Subscribers returns the number of open feeds.
func (f *Feed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *Feed) subscribe() *subscriber {
	s := &subscriber{ch: make(chan *rules.Record, f.queue)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

func (f *Feed) unsubscribe(s *subscriber) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
}

// feedBatch bounds the actions written between two flushes.
const feedBatch = 512

// serve streams the feed as Server-Sent Events until the client goes away:
// `event: action` with the action record (SPEC §3 fields, plus `sink`) as
// data, `event: dropped` with the count of actions this subscriber lost,
// and a comment every 15s to keep proxies from closing an idle stream.
// ?trigger=ID and ?sink=NAME filter on the server side (the page filters on
// its side too, so that a filter change needs no reconnect).
func (f *Feed) serve(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	trigger, sink := r.URL.Query().Get("trigger"), r.URL.Query().Get("sink")
	s := f.subscribe()
	defer f.unsubscribe(s)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": leadpulse live feed of actions\nretry: 2000\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	var reported uint64
	write := func(rec *rules.Record) {
		if (trigger != "" && rec.Trigger != trigger) || (sink != "" && rec.Sink != sink) {
			return
		}
		b, _ := json.Marshal(rec)
		fmt.Fprintf(w, "event: action\nid: %s\ndata: %s\n\n", rec.ID, b)
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case rec := <-s.ch:
			write(rec)
			// Write what else is queued, then flush once: at 1,000
			// actions/s a flush per action would cost a syscall each.
			for n := 1; n < feedBatch; n++ {
				select {
				case rec := <-s.ch:
					write(rec)
					continue
				default:
				}
				break
			}
		}
		if d := s.dropped.Load(); d != reported {
			reported = d
			fmt.Fprintf(w, "event: dropped\ndata: %d\n\n", d)
		}
		fl.Flush()
	}
}
