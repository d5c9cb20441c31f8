//go:build !unix

package engine

import "time"

// cpuTime is unknown here: the benchmarks report 0 CPU ns/op.
func cpuTime() time.Duration { return 0 }
