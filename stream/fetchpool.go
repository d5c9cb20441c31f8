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
// its bytes: the event decoder, the state decoder and the dead letters copy
// what they keep (dead letters and forwards, which point into them, are
// acknowledged by Kafka before the records are given back: worker.recycle,
// output.go).
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
	p.mu.Lock()
	if free := p.bufs[c]; len(free) > 0 {
		b := free[len(free)-1]
		free[len(free)-1] = nil
		p.bufs[c] = free[:len(free)-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return make([]byte, 0, 1<<(minClass+c))
}

// PutDecompressBytes keeps b (zeroed by franz-go) for a later batch.
func (p *fetchPool) PutDecompressBytes(b []byte) {
	c := bits.Len(uint(cap(b))) - 1 - minClass // the class b fills
	if c < 0 || c >= poolClasses {
		return
	}
	p.mu.Lock()
	if len(p.bufs[c]) < keep(1<<(minClass+c)) {
		p.bufs[c] = append(p.bufs[c], b[:0])
	}
	p.mu.Unlock()
}

// GetRecords returns n Records, reused when the pool has them.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	c := class(n, 0)
	if c >= poolClasses {
		return make([]kgo.Record, n)
	}
	p.mu.Lock()
	if free := p.recs[c]; len(free) > 0 {
		rs := free[len(free)-1]
		free[len(free)-1] = nil
		p.recs[c] = free[:len(free)-1]
		p.mu.Unlock()
		return rs[:n]
	}
	p.mu.Unlock()
	return make([]kgo.Record, n, 1<<c)
}

// PutRecords keeps rs (zeroed by Recycle) for a later batch.
func (p *fetchPool) PutRecords(rs []kgo.Record) {
	c := bits.Len(uint(cap(rs))) - 1
	if c < 0 || c >= poolClasses || cap(rs) != 1<<c {
		return
	}
	p.mu.Lock()
	if len(p.recs[c]) < keep(int(unsafe.Sizeof(kgo.Record{}))<<c) {
		p.recs[c] = append(p.recs[c], rs)
	}
	p.mu.Unlock()
}
