package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// benchBatch is the contacts per flush or load: a typical batch of records
// from one partition touches about this many distinct contacts.
const benchBatch = 1000

// benchRedis starts a redis-server configured as in production (AOF,
// fsync every second), so that the server's CPU per write (serverCPU)
// includes appending to the AOF.
func benchRedis(b *testing.B) (*Redis, redis.UniversalClient) {
	b.Helper()
	addr := testenv.StartRedis(b, testenv.RedisConfig{Args: []string{"--appendonly", "yes", "--appendfsync", "everysec"}}).Addr
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	if err := r.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	raw := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { _ = raw.Close() })
	return r, raw
}

func benchContacts(prefix string) ([]*Contact, [][]byte) {
	cs := make([]*Contact, benchBatch)
	blobs := make([][]byte, benchBatch)
	for i := range cs {
		cs[i] = typicalContact(fmt.Sprintf("%s%d", prefix, i))
		b, err := Encode(cs[i])
		if err != nil {
			panic(err)
		}
		blobs[i] = b
	}
	return cs, blobs
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(benchBatch*b.N)/b.Elapsed().Seconds(), "contacts/s")
}

// serverCPU returns the CPU seconds the redis-server has used (INFO cpu:
// used_cpu_user + used_cpu_sys): the store's cost that the client's
// ns/op does not show, and on a machine where the server shares the cores
// with the pipeline, the cost that limits throughput.
func serverCPU(b *testing.B, raw redis.UniversalClient) float64 {
	info, err := raw.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}

// reportServerCPU reports the server's CPU µs per contact since cpu0.
func reportServerCPU(b *testing.B, raw redis.UniversalClient, cpu0 float64) {
	b.ReportMetric((serverCPU(b, raw)-cpu0)*1e6/float64(benchBatch*b.N), "server-µs/contact")
}

// BenchmarkRedisFlush measures Commit's write rate against raw pipelined SET
// of blobs of the same size, one batch of benchBatch contacts per op.
func BenchmarkRedisFlush(b *testing.B) {
	r, raw := benchRedis(b)
	ctx := context.Background()
	// The framework runs each sub-benchmark several times (ramp-up,
	// -count) against this one server: offsets must keep growing, or the
	// compare-and-set rejects the writes being measured.
	off := int64(0)

	b.Run("commit", func(b *testing.B) { // encode + compare-and-set + timer index
		cs, blobs := benchContacts("commit")
		b.SetBytes(int64(len(blobs[0]) * benchBatch))
		cache := NewCache(r, CacheOptions{})
		cpu0 := serverCPU(b, raw)
		for b.Loop() {
			for _, c := range cs {
				cache.Put(ctx, c)
			}
			off++
			if err := cache.Commit(ctx, Position{Partition: 1, Offset: off}); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
		reportServerCPU(b, raw, cpu0)
	})
	b.Run("cas-only", func(b *testing.B) { // compare-and-set + timer index of encoded blobs
		cs, blobs := benchContacts("cas")
		b.SetBytes(int64(len(blobs[0]) * benchBatch))
		ws := make([]pending, len(cs))
		for i, c := range cs {
			ws[i] = pending{id: c.ID, blob: blobs[i], due: earliest(c.Timers)}
		}
		cpu0 := serverCPU(b, raw)
		for b.Loop() {
			off++
			res, err := r.write(ctx, Position{Partition: 2, Offset: off}, ws)
			if err != nil {
				b.Fatal(err)
			}
			if o := res[0].out; o != written && o != same { // same: a go-redis retry after a timeout found it landed
				b.Fatalf("write not accepted: %+v", res[0])
			}
		}
		reportRate(b)
		reportServerCPU(b, raw, cpu0)
	})
	b.Run("raw-set", func(b *testing.B) {
		cs, blobs := benchContacts("raw")
		b.SetBytes(int64(len(blobs[0]) * benchBatch))
		cpu0 := serverCPU(b, raw)
		for b.Loop() {
			pipe := raw.Pipeline()
			for i, c := range cs {
				pipe.Set(ctx, "raw:"+c.ID, blobs[i], 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
		reportServerCPU(b, raw, cpu0)
	})
}

// BenchmarkRedisLoad measures Prefetch (a cold cache loading a batch:
// pipelined HMGET + decode) against raw pipelined GET of blobs of the same
// size.
func BenchmarkRedisLoad(b *testing.B) {
	r, raw := benchRedis(b)
	ctx := context.Background()
	cs, blobs := benchContacts("load")
	ids := make([]string, len(cs))
	seed := NewCache(r, CacheOptions{})
	pipe := raw.Pipeline()
	for i, c := range cs {
		ids[i] = c.ID
		seed.Put(ctx, c)
		pipe.Set(ctx, "raw:"+c.ID, blobs[i], 0)
	}
	if err := seed.Commit(ctx, Position{Partition: 0, Offset: 1}); err != nil {
		b.Fatal(err)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}

	b.Run("prefetch", func(b *testing.B) {
		b.SetBytes(int64(len(blobs[0]) * benchBatch))
		for b.Loop() {
			cache := NewCache(r, CacheOptions{})
			if err := cache.Prefetch(ctx, ids); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run("raw-get", func(b *testing.B) {
		b.SetBytes(int64(len(blobs[0]) * benchBatch))
		for b.Loop() {
			pipe := raw.Pipeline()
			for _, id := range ids {
				pipe.Get(ctx, "raw:"+id)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
}

// BenchmarkCodecB2B measures Encode and Decode of typicalContact (the shape
// the flush and load benchmarks write: windows of ten entries, fifty seen ids).
func BenchmarkCodecB2B(b *testing.B) {
	c := typicalContact("bench@example.com")
	blob, err := Encode(c)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			if _, err := Encode(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			if _, err := Decode(blob); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Logf("typical contact: %d bytes encoded", len(blob))
}

// BenchmarkCodecReflect is the baseline of BenchmarkCodecB2B: the same
// contact through msgpack's reflection (legacyContact has the struct tags
// and not the hand-written codec). The gap between the two is why
// codec_fast.go exists; if it closes, delete the hand codec.
func BenchmarkCodecReflect(b *testing.B) {
	c := (*legacyContact)(typicalContact("bench@example.com"))
	c.V = Version
	blob, err := msgpack.Marshal(c)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			if _, err := msgpack.Marshal(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			var back legacyContact
			if err := msgpack.Unmarshal(blob, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Logf("typical contact by reflection: %d bytes encoded", len(blob))
}
