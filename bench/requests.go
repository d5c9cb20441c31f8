package bench

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requests counts the Kafka requests the run's clients write, by client
// and request kind (franz-go's HookBrokerWrite), so that a phase reports
// how many broker requests each event costs: at low rates the broker's and
// the clients' work per request, not the work per event, is most of the
// process' CPU (each request is a few syscalls and goroutine wake-ups on
// both sides, and with the embedded broker both sides are this process).
type requests struct {
	mu sync.Mutex
	n  map[requestKind]*atomic.Int64
}

type requestKind struct {
	client string
	key    int16
}

// RequestRate is how many requests of one kind one client sent per event
// of a phase.
type RequestRate struct {
	// Client is who sent them: pipeline (every client of the pipeline),
	// load (the load generator's producer), actions (the action reader),
	// bench (the bench's admin client: lag monitor, trimming).
	Client string `json:"client"`
	// Request is the Kafka request (Produce, Fetch, OffsetCommit, …).
	Request  string  `json:"request"`
	Count    int64   `json:"count"`
	PerEvent float64 `json:"per_event"`
}

func newRequests() *requests { return &requests{n: map[requestKind]*atomic.Int64{}} }

// hook returns the client option that counts client's requests.
func (q *requests) hook(client string) kgo.Opt { return kgo.WithHooks(requestHook{q, client}) }

type requestHook struct {
	q      *requests
	client string
}

func (h requestHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	k := requestKind{h.client, key}
	h.q.mu.Lock()
	c := h.q.n[k]
	if c == nil {
		c = new(atomic.Int64)
		h.q.n[k] = c
	}
	h.q.mu.Unlock()
	c.Add(1)
}

func (q *requests) snapshot() map[requestKind]int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := make(map[requestKind]int64, len(q.n))
	for k, c := range q.n {
		m[k] = c.Load()
	}
	return m
}

// perEvent returns the requests sent between snapshots a and b per event,
// most first.
func perEvent(a, b map[requestKind]int64, events int64) []RequestRate {
	if events <= 0 {
		return nil
	}
	var out []RequestRate
	for k, n := range b {
		if d := n - a[k]; d > 0 {
			out = append(out, RequestRate{Client: k.client, Request: kmsg.NameForKey(k.key), Count: d, PerEvent: float64(d) / float64(events)})
		}
	}
	slices.SortFunc(out, func(x, y RequestRate) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Client, y.Client), cmp.Compare(x.Request, y.Request))
	})
	return out
}
