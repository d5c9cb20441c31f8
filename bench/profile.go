package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
)

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: --memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("bench: --memprofile: %w", err)
	}
	return nil
}

// startProfile starts a CPU profile or an execution trace into a new file at
// path and returns an idempotent stop that also closes the file.
func startProfile(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { stop(); f.Close() }) }, nil
}

// Roles of the bench's goroutines, as the pprof label "role" of a CPU
// profile (--cpuprofile): `go tool pprof -tagroot=role FILE` splits the
// process' CPU by who spends it, and -tagfocus=role=pipeline keeps one.
// Goroutines inherit the labels of the goroutine that starts them, so the
// embedded broker's connection goroutines are "broker" and a franz-go
// client's are those of the role that made it.
//
// Why: with the broker, the load generator, the action reader and the
// pipeline in one process, the CPU per event of a latency phase (about
// 130 µs at 5,000 events/s against 8 µs in a drain) says nothing about the
// pipeline until it is split.
const (
	roleBroker   = "broker"   // the embedded kfake cluster
	roleLoad     = "load"     // the load generator and its producer
	rolePipeline = "pipeline" // stream.Pipeline: its clients and workers
	roleActions  = "actions"  // the action reader (collector)
	roleProbe    = "probe"    // the hop-floor probe's clients
	roleMonitor  = "monitor"  // lag monitor, trimming, admin requests
)

// as runs f with the pprof label role, which the goroutines f starts
// inherit.
func as(ctx context.Context, role string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("role", role), f)
}
