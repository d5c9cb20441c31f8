//go:build !amd64

package prefetch

import "unsafe"

// Lines is a no-op where leadpulse has no prefetch instruction
// (see the package doc): the loads that need the lines wait for them.
func Lines(p unsafe.Pointer, size uintptr) {}
