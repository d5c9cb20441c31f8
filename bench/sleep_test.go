package bench

import (
	"context"
	"errors"
	"runtime/pprof"
	"testing"
	"time"
)

// The sleeper never returns before the due time, returns at once for a
// past one, and gives up with ctx.
func TestSleeperUntil(t *testing.T) {
	s := newSleeper()
	defer s.close()
	ctx := context.Background()
	for _, d := range []time.Duration{-time.Millisecond, 0, 50 * time.Microsecond, 300 * time.Microsecond, 3 * time.Millisecond} {
		due := time.Now().Add(d).UnixNano()
		if err := s.until(ctx, due); err != nil {
			t.Fatalf("until(+%v): %v", d, err)
		}
		if now := time.Now().UnixNano(); now < due {
			t.Errorf("until(+%v) returned %v before the due time", d, time.Duration(due-now))
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.until(cctx, time.Now().Add(time.Hour).UnixNano()); !errors.Is(err, context.Canceled) {
		t.Errorf("until with a cancelled ctx: %v, want context.Canceled", err)
	}
}

// Without a timerfd (other systems, or after one failed) the timer alone
// serves.
func TestSleeperFallback(t *testing.T) {
	s := newSleeper()
	s.close()
	due := time.Now().Add(time.Millisecond).UnixNano()
	if err := s.until(context.Background(), due); err != nil {
		t.Fatal(err)
	}
	if now := time.Now().UnixNano(); now < due {
		t.Errorf("returned %v before the due time", time.Duration(due-now))
	}
}

// as runs f with the role label in its context (pprof.Do sets it on the
// goroutine too, and the goroutines f starts inherit it), so that a CPU
// profile splits by role.
func TestAsLabelsRole(t *testing.T) {
	got := make(chan string, 1)
	as(context.Background(), roleLoad, func(ctx context.Context) {
		go func() {
			v, _ := pprof.Label(ctx, "role")
			got <- v
		}()
	})
	if v := <-got; v != roleLoad {
		t.Errorf("role label = %q, want %q", v, roleLoad)
	}
}
