package stream

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPool lends the scoring client the memory it decodes fetched batches
// into (kgo.WithPools): the decompressed bytes of a batch and its Records.
// A worker gives a record back (kgo.Record.Recycle) once nothing refers to
// it any more (worker.recycle); when every record of a batch is back,
// franz-go zeroes the batch's memory and puts it here for the next fetch.
//
// Why: without it every fetched batch allocated its decompressed bytes and
// its Records afresh, about a third of the bytes the process allocated while
// draining a backlog (`leadpulse bench`, memory store, broker out of
// process: s2.Decode and the Records 255 of 750 MB for 300,000 events),
// and garbage collection follows the bytes allocated.
//
// Whatever is not given back (records of a revoked partition, a parked
// user's records dropped at a rebalance) is garbage collected as before;
// the pool then makes new memory. Nothing decoded from a record may keep
// its bytes: the event decoder, the state decoder, dead letters and
// forwards copy what they keep (own), so a worker gives a batch's records
// back once it is applied, without waiting for Kafka to acknowledge its
// output (worker.recycle).
type fetchPool struct {
	mu   sync.Mutex                  // guards bufs and recs: the fetch goroutines get, the workers put
	bufs [poolClasses][][]byte       // free buffers of capacity 1<<(minClass+i), length 0
	recs [poolClasses][][]kgo.Record // free Record slices of capacity 1<<i
}

// poolClasses size classes (powers of two) of buffers from 1<<minClass
// bytes (up to 128 MiB), and of Record slices from 1 record; larger ones
// are not pooled. A class keeps at most poolKeep free slices, and none
// beyond poolKeepBytes: more are left to the garbage
// collector. The pool is a mutex and slices, not a sync.Pool, whose Put
// allocates for a slice and whose content each garbage collection drops.
const (
	poolClasses   = 18
	minClass      = 10
	poolKeep      = 256
	poolKeepBytes = 8 << 20
)

var (
	_ kgo.PoolDecompressBytes = (*fetchPool)(nil)
	_ kgo.PoolRecords         = (*fetchPool)(nil)
)

// class returns the smallest i with 1<<(base+i) >= n.
func class(n, base int) int {
	return max(bits.Len(uint(max(n, 1)-1))-base, 0)
}

// keep is how many free slices of size bytes a class keeps.
func keep(size int) int { return min(poolKeep, poolKeepBytes/size) }

// GetDecompressBytes returns a buffer that fits the batch (snappy states
// its decoded length up front), or nil: the codec then allocates what it
// needs, and that buffer comes back here.
func (p *fetchPool) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	if codec != kgo.CodecSnappy {
		return nil
	}
	n, err := s2.DecodedLen(compressed)
	if err != nil {
		return nil
	}
	c := class(n, minClass)
	if c >= poolClasses {
		return nil
	}
	if b := pop(&p.mu, &p.bufs[c]); b != nil {
		return b
	}
	return make([]byte, 0, 1<<(minClass+c))
}

// PutDecompressBytes keeps b (zeroed by franz-go) for a later batch.
func (p *fetchPool) PutDecompressBytes(b []byte) {
	c := bits.Len(uint(cap(b))) - 1 - minClass // the class b fills
	if c < 0 || c >= poolClasses {
		return
	}
	push(&p.mu, &p.bufs[c], b[:0], keep(1<<(minClass+c)))
}

// GetRecords returns n Records, reused when the pool has them.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	c := class(n, 0)
	if c >= poolClasses {
		return make([]kgo.Record, n)
	}
	if rs := pop(&p.mu, &p.recs[c]); rs != nil {
		return rs[:n]
	}
	return make([]kgo.Record, n, 1<<c)
}

// PutRecords keeps rs (zeroed by Recycle) for a later batch.
func (p *fetchPool) PutRecords(rs []kgo.Record) {
	c := bits.Len(uint(cap(rs))) - 1
	if c < 0 || c >= poolClasses || cap(rs) != 1<<c {
		return
	}
	push(&p.mu, &p.recs[c], rs, keep(int(unsafe.Sizeof(kgo.Record{}))<<c))
}

// pop takes the last slice of a free list under mu; nil if it is empty.
func pop[T any](mu *sync.Mutex, free *[][]T) []T {
	mu.Lock()
	defer mu.Unlock()
	n := len(*free)
	if n == 0 {
		return nil
	}
	s := (*free)[n-1]
	(*free)[n-1] = nil
	*free = (*free)[:n-1]
	return s
}

// push adds s to a free list under mu, unless the list holds limit already.
func push[T any](mu *sync.Mutex, free *[][]T, s []T, limit int) {
	mu.Lock()
	if len(*free) < limit {
		*free = append(*free, s)
	}
	mu.Unlock()
}
