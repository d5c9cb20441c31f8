package stream

import (
	"math/bits"
	"sync"

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
// what they keep (dead letters and forwards are produced before the records
// they copy from are given back).
type fetchPool struct {
	bufs [poolClasses]sync.Pool // []byte of capacity 1<<(minClass+i), length 0
	recs [poolClasses]sync.Pool // []kgo.Record of capacity 1<<i
}

// poolClasses size classes (powers of two) of buffers from 1<<minClass
// bytes, and of Record slices from 1 record; larger ones are not pooled.
const (
	poolClasses = 18
	minClass    = 10
)

var (
	_ kgo.PoolDecompressBytes = (*fetchPool)(nil)
	_ kgo.PoolRecords         = (*fetchPool)(nil)
)

// class returns the smallest i with 1<<(base+i) >= n.
func class(n, base int) int {
	return max(bits.Len(uint(max(n, 1)-1))-base, 0)
}

// GetDecompressBytes returns a buffer that fits the batch (snappy states
// its decoded length up front), or nil: the codec then allocates what it
// needs, and that buffer comes back here.
func (p *fetchPool) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	n, err := s2.DecodedLen(compressed)
	if codec != kgo.CodecSnappy || err != nil {
		return nil
	}
	if c := class(n, minClass); c < poolClasses {
		if b, ok := p.bufs[c].Get().([]byte); ok {
			return b
		}
		return make([]byte, 0, 1<<(minClass+c))
	}
	return nil
}

// PutDecompressBytes keeps b (zeroed by franz-go) for a later batch.
func (p *fetchPool) PutDecompressBytes(b []byte) {
	c := bits.Len(uint(cap(b))) - 1 - minClass // the class b fills
	if c >= 0 && c < poolClasses {
		p.bufs[c].Put(b[:0]) //nolint:staticcheck // a slice header per batch, beside its buffer
	}
}

// GetRecords returns n Records, reused when the pool has them.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	if c := class(n, 0); c < poolClasses {
		if rs, ok := p.recs[c].Get().([]kgo.Record); ok {
			return rs[:n]
		}
		return make([]kgo.Record, n, 1<<c)
	}
	return make([]kgo.Record, n)
}

// PutRecords keeps rs (zeroed by Recycle) for a later batch.
func (p *fetchPool) PutRecords(rs []kgo.Record) {
	c := bits.Len(uint(cap(rs))) - 1
	if c >= 0 && c < poolClasses && cap(rs) == 1<<c {
		p.recs[c].Put(rs) //nolint:staticcheck // as PutDecompressBytes
	}
}
