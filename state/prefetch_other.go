//go:build !amd64

package state

import "unsafe"

// prefetchLines is a no-op where leadpulse has no prefetch instruction
// (see prefetch_asm.go): the loads that need the lines wait for them.
func prefetchLines(p unsafe.Pointer, size uintptr) {}
