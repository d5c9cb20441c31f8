package bench

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// newTimerFD returns a non-blocking timerfd as a file the runtime's poller
// waits on, or nil.
func newTimerFD() (*os.File, int) {
	h, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, -1
	}
	return os.NewFile(uintptr(h), "bench-timerfd"), h
}

// armTimerFD makes the timerfd h expire once, d from now.
func armTimerFD(h int, d time.Duration) bool {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(d, time.Microsecond)))}
	return unix.TimerfdSettime(h, 0, &its, nil) == nil
}
