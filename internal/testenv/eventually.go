package testenv

import (
	"time"
)

// TB is the part of testing.TB that Eventually needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Eventually calls cond until it returns nil, and fails the test with cond's
// last error when timeout passes first. It polls every few milliseconds at
// first, then at most every 50ms: waiting on a condition instead of sleeping
// a fixed time, so a test is as fast as the system and fails only when the
// condition never holds.
func Eventually(t TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("not within %v: %v", timeout, err)
	}
}

// Poll is Eventually without a test: it returns nil once cond does, or
// cond's last error when timeout passes first.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 2 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}
