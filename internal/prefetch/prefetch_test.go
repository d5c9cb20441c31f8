package prefetch

import (
	"testing"
	"unsafe"
)

// TestNeverFaults prefetches what a caller may pass: nothing, unaligned
// ranges, a range across lines, and addresses that are not mapped (a
// stale guess); a fault would crash the test.
func TestNeverFaults(t *testing.T) {
	buf := make([]byte, 1000)
	p := unsafe.Pointer(&buf[0])
	for _, tc := range []struct {
		name string
		p    unsafe.Pointer
		size uintptr
	}{
		{"nil", nil, 64},
		{"empty", p, 0},
		{"one byte", unsafe.Add(p, 63), 1},
		{"unaligned across lines", unsafe.Add(p, 60), 8},
		{"whole buffer", p, uintptr(len(buf))},
		{"unmapped low", unsafe.Add(nil, 4096), 256},
		{"unmapped high", unsafe.Add(nil, -64), 64},
	} {
		t.Run(tc.name, func(t *testing.T) { Lines(tc.p, tc.size) })
	}
	Slice([]int64(nil), 64)
	Slice(make([]int64, 100), 256)
	Ends(make([]int64, 3), 256)
	Ends(make([]int64, 1000), 256)
	String("")
	String("an id")
}
