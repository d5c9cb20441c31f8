//go:build !linux

package bench

import (
	"os"
	"time"
)

// newTimerFD: no timerfd here; sleeper uses its timer.
func newTimerFD() (*os.File, int) { return nil, -1 }

func armTimerFD(int, time.Duration) bool { return false }
