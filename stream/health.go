package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// health tells whether the brokers answer, for /readyz: every client of the
// pipeline reports its connections and requests through franz-go hooks, the
// poll loops report fetch errors, and a stage reports a problem of its own
// (ingest output that cannot be produced). The brokers are unreachable when
// no request has been answered for UnreachableAfter, or fetches have failed
// for that long; a stage problem counts at once.
//
// Consumers always have a fetch in flight (FetchMaxWait 100ms) and a group
// heartbeat every 3s, so a healthy client is answered well within the
// default 5s. The hooks run on franz-go's goroutines; mu guards everything.
type health struct {
	brokers []string
	after   time.Duration
	log     *slog.Logger
	now     func() time.Time // wall clock, not Config.Clock (tests fake live time)

	mu         sync.Mutex
	lastOK     time.Time        // last answered request (or the start)
	lastErr    error            // last failed connection or request since lastOK
	fetchSince time.Time        // first fetch error since the last clean poll; zero: none
	fetchErr   error            // the last of those
	stages     map[string]error // stage → its problem now
	down       bool             // what was last logged
}

func newHealth(brokers []string, after time.Duration, log *slog.Logger) *health {
	return &health{brokers: brokers, after: after, log: log, now: time.Now, lastOK: time.Now(), stages: map[string]error{}}
}

var (
	_ kgo.HookBrokerConnect = (*health)(nil)
	_ kgo.HookBrokerE2E     = (*health)(nil)
)

// start counts the silence from now: a stage starts talking to the brokers.
func (h *health) start() {
	h.mu.Lock()
	h.lastOK, h.lastErr, h.down = h.now(), nil, false
	h.fetchSince, h.fetchErr = time.Time{}, nil
	clear(h.stages)
	h.mu.Unlock()
}

// OnBrokerConnect implements kgo.HookBrokerConnect: a failed dial.
func (h *health) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	h.lastErr = fmt.Errorf("connect to broker %s:%d: %w", meta.Host, meta.Port, err)
	h.mu.Unlock()
}

// OnBrokerE2E implements kgo.HookBrokerE2E: a request answered, or not.
func (h *health) OnBrokerE2E(meta kgo.BrokerMetadata, _ int16, e kgo.BrokerE2E) {
	err := e.Err()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.lastOK, h.lastErr = h.now(), nil
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	h.lastErr = fmt.Errorf("request to broker %s:%d: %w", meta.Host, meta.Port, err)
}

// fetched records the outcome of one poll: err is a fetch error of it, or
// nil for a poll without one.
func (h *health) fetched(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.fetchSince, h.fetchErr = time.Time{}, nil
		return
	}
	if h.fetchSince.IsZero() {
		h.fetchSince = h.now()
	}
	h.fetchErr = err
}

// stage sets (err != nil) or clears a stage's own problem.
func (h *health) stage(name string, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	if err == nil {
		delete(h.stages, name)
	} else {
		h.stages[name] = err
	}
	h.mu.Unlock()
	h.check()
}

// problem returns why the brokers count as unreachable now, or nil.
func (h *health) problem() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.problemLocked()
}

func (h *health) problemLocked() error {
	now := h.now()
	for name, err := range h.stages {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, name, err)
	}
	if silent := now.Sub(h.lastOK); silent > h.after {
		why := "no request answered"
		if h.lastErr != nil {
			why = h.lastErr.Error()
		}
		return fmt.Errorf("%w: brokers %s have not answered for %v: %s (check that they run and that this host reaches them)",
			ErrUnreachable, strings.Join(h.brokers, ","), silent.Round(time.Second), why)
	}
	if !h.fetchSince.IsZero() && now.Sub(h.fetchSince) > h.after {
		return fmt.Errorf("%w: fetches failing for %v: %w", ErrUnreachable, now.Sub(h.fetchSince).Round(time.Second), h.fetchErr)
	}
	return nil
}

// check logs a change between reachable and unreachable.
func (h *health) check() {
	if h == nil {
		return
	}
	h.mu.Lock()
	err := h.problemLocked()
	was := h.down
	h.down = err != nil
	h.mu.Unlock()
	switch {
	case err != nil && !was:
		h.log.Error("stream: brokers unreachable; /readyz reports not ready until they answer", "err", err)
	case err == nil && was:
		h.log.Info("stream: brokers answer again; ready")
	}
}

// watch runs check every second until ctx is done.
func (h *health) watch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.check()
		}
	}
}

// ErrUnreachable is matched by the readiness error of a pipeline or dispatch
// stage whose brokers do not answer.
var ErrUnreachable = errors.New("kafka unreachable")
