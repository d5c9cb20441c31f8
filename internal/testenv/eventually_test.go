package testenv_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

type fakeTB struct{ msg string }

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	n := 0
	testenv.Eventually(t, 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}

	var f fakeTB
	testenv.Eventually(&f, 20*time.Millisecond, func() error { return errors.New("count is 1, want 2") })
	if !strings.Contains(f.msg, "count is 1, want 2") {
		t.Errorf("failure message %q does not carry the last error", f.msg)
	}
}
