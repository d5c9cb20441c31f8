package bench

import (
	"context"
	"os"
	"time"
)

// sleeper waits until a due time (Unix ns) to within tens of microseconds,
// for the open-loop senders (the load generator, the hop-floor probe).
//
// Why not a time.Timer alone: Go's runtime waits for its next timer in
// epoll_wait, whose timeout is in milliseconds, and rounds a shorter wait up
// to 1 ms (golang/go#53824): while the process is idle a timer due in 200 µs
// fires about 1 ms late. Measured on this machine (a goroutine sleeping
// exponential gaps of 200 µs mean, as the load generator does at 5,000
// events/s, beside an open TCP connection): time.Timer late by p50 933 µs,
// p99 1.1–3.6 ms; a timerfd read through the same poller late by p50
// 13–15 µs, p99 59–80 µs. The load generator stamps each event with its due
// time, so every such delay counted as the pipeline's latency (the bench's
// send lateness had a p50 of 0.36–0.42 ms at 5,000 events/s, half of the
// event → state p50), and it also sent events in bursts that a real
// producer does not. Where a timerfd is not available (not Linux) the
// timer is used as before.
//
// A sleeper belongs to one goroutine.
type sleeper struct {
	t  *time.Timer
	fd *os.File // a timerfd, read through the runtime's poller; nil without one
	h  int      // fd's descriptor
	b  [8]byte
}

// preciseWithin is the part of a wait the timerfd sleeps; what comes before
// it sleeps on a time.Timer, which ctx can interrupt.
const preciseWithin = 2 * time.Millisecond

func newSleeper() *sleeper {
	s := &sleeper{t: time.NewTimer(time.Hour)}
	s.t.Stop()
	s.fd, s.h = newTimerFD()
	return s
}

// until returns once the wall clock has reached due, or ctx's error.
func (s *sleeper) until(ctx context.Context, due int64) error {
	wait := time.Duration(due - time.Now().UnixNano())
	if wait <= 0 {
		return nil
	}
	coarse := wait
	if s.fd != nil {
		coarse = wait - preciseWithin
	}
	if coarse > 0 {
		if err := s.timer(ctx, coarse); err != nil {
			return err
		}
	}
	if s.fd == nil {
		return nil
	}
	if wait = time.Duration(due - time.Now().UnixNano()); wait > 0 {
		if !armTimerFD(s.h, wait) {
			return s.fallback(ctx, wait)
		}
		if _, err := s.fd.Read(s.b[:]); err != nil {
			return s.fallback(ctx, time.Duration(due-time.Now().UnixNano()))
		}
	}
	return nil
}

// fallback sleeps on the timer for good once the timerfd failed.
func (s *sleeper) fallback(ctx context.Context, wait time.Duration) error {
	s.close()
	if wait <= 0 {
		return nil
	}
	return s.timer(ctx, wait)
}

// timer sleeps d on the time.Timer, or until ctx is done.
func (s *sleeper) timer(ctx context.Context, d time.Duration) error {
	s.t.Reset(d)
	select {
	case <-ctx.Done():
		s.t.Stop()
		return ctx.Err()
	case <-s.t.C:
		return nil
	}
}

func (s *sleeper) close() {
	s.t.Stop()
	if s.fd != nil {
		s.fd.Close()
		s.fd = nil
	}
}
