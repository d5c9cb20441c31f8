package stream

import (
	"errors"
	"fmt"
	"testing"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/state"
)

func TestRetryable(t *testing.T) {
	down := fmt.Errorf("redis: %w", state.ErrUnavailable)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"store unavailable (Get, Commit)", fmt.Errorf("engine: load contact: %w", down), true},
		{"a failed Put after the contact changed", fmt.Errorf("%w: contact \"u1\": %w", engine.ErrDiverged, down), false},
		{"a store misconfigured", fmt.Errorf("x: %w", state.ErrConfig), false},
		{"a bug", errors.New("boom"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
