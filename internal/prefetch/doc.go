// Package prefetch asks the processor to bring memory into its caches ahead
// of the loads that need it, without waiting for it: on amd64 with the
// PREFETCHT0 instruction (the Go compiler offers no intrinsic outside the
// runtime), elsewhere not at all. A driver that knows which state its next
// events will read asks for it for several events at once, so that the
// cache misses overlap each other and the events' work instead of following
// one another (state.Contact.PrefetchHead, engine.Partition.Prefetch).
//
// A prefetch changes nothing and never faults, whatever the address.
package prefetch

import "unsafe"

// Slice asks for the elements of s, at most limit bytes of them from the
// start.
func Slice[T any](s []T, limit uintptr) {
	if len(s) == 0 {
		return
	}
	n := uintptr(len(s)) * unsafe.Sizeof(s[0])
	Lines(unsafe.Pointer(unsafe.SliceData(s)), min(n, limit))
}

// Ends asks for the first front bytes and the last element of s: a sliding
// window's entries are pruned from the front and added at the back.
func Ends[T any](s []T, front uintptr) {
	if len(s) == 0 {
		return
	}
	size := unsafe.Sizeof(s[0])
	n := uintptr(len(s)) * size
	p := unsafe.Pointer(unsafe.SliceData(s))
	if n <= 2*front {
		Lines(p, n)
		return
	}
	Lines(p, front)
	Lines(unsafe.Add(p, n-size), size)
}

// String asks for the bytes of s.
func String(s string) {
	Lines(unsafe.Pointer(unsafe.StringData(s)), uintptr(len(s)))
}
