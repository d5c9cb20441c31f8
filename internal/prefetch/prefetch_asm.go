//go:build amd64

package prefetch

import "unsafe"

// Lines asks the processor to bring the cache lines of the size
// bytes at p into its caches, without waiting for them (PREFETCHT0): the
// loads that need them later find them there. A nil p or a zero size does
// nothing; a prefetch never faults. See the package doc.
//
//go:noescape
func Lines(p unsafe.Pointer, size uintptr)
