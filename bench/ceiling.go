package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Ceiling is what the same hardware does with the same data and no
// processing: the bound a figure is compared with.
type Ceiling struct {
	// What was measured, in words.
	What string `json:"what"`
	// Ops is the number of records read or blobs written.
	Ops int64 `json:"ops"`
	// Seconds is the time they took.
	Seconds float64 `json:"seconds"`
	// PerSec is Ops/Seconds.
	PerSec float64 `json:"per_sec"`
	// CPUMicrosPerOp is the process's CPU time per op (client and, with
	// the embedded broker, broker).
	CPUMicrosPerOp float64 `json:"cpu_us_per_op"`
}

// rawConsume reads n records of topic from the start with a plain franz-go
// consumer (no group, no decoding, no commits) and times it: the broker's
// and the client's own limit for the records the pipeline reads.
func rawConsume(ctx context.Context, brokers []string, topic string, n int64) (*Ceiling, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("leadpulse-bench-ceiling"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond), // the pipeline's default (stream.Config.FetchMaxWait); a backlog is fetched at once either way
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// The clock starts once the client is connected and knows the
	// metadata, and stops at the n-th record: the fetches the client makes
	// ahead of its polls are inside, whatever the size of n.
	if err := cl.Ping(ctx); err != nil {
		return nil, fmt.Errorf("bench: raw consume of %q: %w", topic, err)
	}
	var (
		got   int64
		bytes int64
		u0    = takeUsage()
	)
	for got < n {
		fs := cl.PollRecords(ctx, 10_000) // stream.Config.PollRecords
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: raw consume of %q: read %d of %d records: %w", topic, got, n, err)
		}
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("bench: raw consume of %q: %w", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
		})
	}
	u1 := takeUsage()
	secs := u1.wall.Sub(u0.wall).Seconds()
	return &Ceiling{
		What:           fmt.Sprintf("raw consume: a plain franz-go consumer reading the same %d records (%d B average) from the same broker, no processing", n, bytes/max(n, 1)),
		Ops:            got,
		Seconds:        secs,
		PerSec:         float64(got) / secs,
		CPUMicrosPerOp: float64((u1.cpu - u0.cpu).Microseconds()) / float64(got),
	}, nil
}

// hopFloor produces to topic at rate records/s for d (open loop, Poisson,
// linger 0 as the pipeline's producers) and reads them back with a plain
// consumer: the latency of one produce→fetch hop of the broker, the floor
// under each of the pipeline's hops.
func hopFloor(ctx context.Context, brokers []string, topic string, rate float64, d time.Duration, size int) (*hdrhistogram.Histogram, error) {
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("leadpulse-bench-probe"), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("leadpulse-bench-probe-reader"),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	// Wait until the reader is positioned at the end, so it misses nothing.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = cons.Ping(pctx)
	cancel()
	if err != nil {
		return nil, err
	}
	h := newHist()
	var (
		mu   sync.Mutex
		want int64
		got  int64
		done = make(chan struct{})
	)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(done)
		for {
			fs := cons.PollFetches(rctx)
			if rctx.Err() != nil {
				return
			}
			now := time.Now().UnixNano()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					t := int64(binary.BigEndian.Uint64(r.Value))
					_ = h.RecordValue(max((now-t)/int64(time.Microsecond), histLowest))
				}
				got++
			})
			mu.Unlock()
		}
	}()
	// Let the reader's first (empty) fetch reach the broker.
	time.Sleep(200 * time.Millisecond)
	rng := rand.New(rand.NewPCG(7, 7))
	mean := float64(time.Second) / rate
	next := time.Now().UnixNano()
	end := next + int64(d)
	sl := newSleeper() // as the load generator's (sleeper)
	defer sl.close()
	for next < end {
		if err := sl.until(ctx, next); err != nil {
			return nil, err
		}
		now := time.Now().UnixNano()
		for next <= now && next < end {
			v := make([]byte, max(size, 8))
			binary.BigEndian.PutUint64(v, uint64(next))
			prod.Produce(ctx, &kgo.Record{Topic: topic, Value: v}, nil)
			want++
			next += max(int64(rng.ExpFloat64()*mean), 1)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		g := got
		mu.Unlock()
		if g >= want {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	cons.Close()
	<-done
	return h, nil
}

// redisCeiling writes n blobs to Redis with pipelined SETs of batch
// commands, from conc connections at once (as the pipeline's partitions
// commit at once), under keys prefix:ceiling:<i> that it deletes
// afterwards. The blobs are real encoded contacts of the run, cycled.
func redisCeiling(ctx context.Context, addr, prefix string, blobs [][]byte, n int64, batch, conc int) (*Ceiling, error) {
	if len(blobs) == 0 || n <= 0 {
		return nil, nil
	}
	batch = max(batch, 1)
	conc = max(conc, 1)
	rc := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conc + 1})
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("bench: redis ceiling: %w", err)
	}
	key := func(i int64) string { return prefix + ":ceiling:" + strconv.FormatInt(i, 10) }
	var size int64
	for _, b := range blobs {
		size += int64(len(b))
	}
	u0 := takeUsage()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	per := (n + int64(conc) - 1) / int64(conc)
	for w := range conc {
		lo, hi := int64(w)*per, min(int64(w+1)*per, n)
		if lo >= hi {
			continue
		}
		wg.Go(func() {
			for i := lo; i < hi; i += int64(batch) {
				pipe := rc.Pipeline()
				for j := i; j < min(i+int64(batch), hi); j++ {
					pipe.Set(ctx, key(j), blobs[j%int64(len(blobs))], 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					errMu.Lock()
					first = err
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	u1 := takeUsage()
	// Delete the scratch keys, also after a failure.
	for i := int64(0); i < n; i += 1000 {
		keys := make([]string, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			keys = append(keys, key(j))
		}
		rc.Unlink(context.WithoutCancel(ctx), keys...)
	}
	if first != nil {
		return nil, fmt.Errorf("bench: redis ceiling: %w", first)
	}
	secs := u1.wall.Sub(u0.wall).Seconds()
	return &Ceiling{
		What: fmt.Sprintf("raw pipelined SET of %d encoded contacts of this run (%d B average) to the same Redis, %d per pipeline, %d connections",
			n, size/int64(len(blobs)), batch, conc),
		Ops:            n,
		Seconds:        secs,
		PerSec:         float64(n) / secs,
		CPUMicrosPerOp: float64((u1.cpu - u0.cpu).Microseconds()) / float64(n),
	}, nil
}

// cleanRedis deletes every key under prefix (the bench's contacts, timer
// index and scratch keys).
func cleanRedis(ctx context.Context, addr, prefix string) error {
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	iter := rc.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	keys := make([]string, 0, 1000)
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := rc.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		return rc.Unlink(ctx, keys...).Err()
	}
	return nil
}
