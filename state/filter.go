package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// The new-contact filter.
//
// A batch that holds a contact not in its partition's Cache waits for a
// round trip to Redis (Prefetch). For a new visitor — most misses when a
// partition keeps up — that round trip finds nothing, and on a busy host it
// is the partition's slowest wait (redis-server off the CPU: 10–25 ms; see
// DESIGN.md, "Redis: contacts known to be new"). The filter lets the owner
// of a partition know, without asking, that a contact is certainly not
// stored: a bitmap per partition with one bit per contact id (a hash of it
// modulo the bitmap's size), set for every contact ever written. A clear
// bit means "not stored"; a set bit means "maybe" (a load, as without the
// filter).
//
// Soundness: a clear bit must never be read for a contact whose write
// landed before the owner read the filter, or the owner would apply again
// the records its stored position (Contact.Applied) says were applied, and
// overwrite its history. Hence:
//
//   - A write sets the bits of its new contacts, and Redis acknowledges
//     them, before it sends their blobs (Cache: the flight's send). In Redis
//     Cluster the bitmap and the contacts are in different slots, so no
//     script can do both: the bits are a round trip of their own, on the
//     write's goroutine (off the partition's).
//   - The filter is used only where it is known complete. Its metadata
//     holds F: every contact touched by a record of the partition before
//     offset F, and stored, has its bit set. The owner that creates the
//     filter does so only when Redis holds no contact of the partition
//     (SCAN), with F at its first record; each write raises F to the offset
//     after its position, in the same script that sets its bits. A later
//     owner uses the filter only if its first record is at or before F:
//     records before that it does not apply again, and their contacts all
//     have their bits. A writer that does not keep the filter (an older
//     version, the filter turned off) never raises F, so once its offsets
//     are committed past F the filter is no longer used; a new-version
//     owner that does not keep it marks it unusable (F = -1) when it takes
//     the partition. The keys name the number of partitions: after a
//     repartition contacts change partitions, and the new layout's filters
//     are only created where no contact of the partition is stored.
//   - Erasure (forget) and retention (TTL) leave bits set: a "maybe" for a
//     contact that is gone costs a load that finds nothing.
//
// Keys (prefix "lp", N partitions, partition p), in one slot:
//
//	lp:{f<N>.<p>}:m   hash: f = F (-1: not usable), m = the bitmap's size in bits
//	lp:{f<N>.<p>}:b   string: the bitmap (bit i is SETBIT's offset i)

// DefaultFilterBits is the default size of a partition's new-contact
// filter: 8,388,608 bits, 1 MiB in Redis and in each owner's memory. With n
// contacts stored for the partition, a new contact is loaded anyway (a
// false "maybe") with probability about n/8.4M: 1.2% at 100,000 contacts.
const DefaultFilterBits = 1 << 23

// maxFilterBits bounds FilterBits: Redis strings hold up to 512 MB.
const maxFilterBits = 1 << 32

// filterScanLimit bounds the contact keys a SCAN examines when it looks
// for a contact of the partition before creating its filter; past it the
// filter is not created (a store that large without one of the
// partition's contacts is not one the filter's creation is meant for).
const filterScanLimit = 1_000_000

// FilterScope is what the owner of a partition tells the Cache when it
// opens the partition's new-contact filter (OpenFilter).
type FilterScope struct {
	Partition int32
	// Partitions is the number of partitions of the contact-keyed topic;
	// 0 or less: unknown, no filter.
	Partitions int
	// From is the offset of the first record the owner applies: at or
	// after the partition's committed offset, so that every write its
	// earlier owners' committed offsets depend on has landed.
	From int64
	// PartitionOf returns a contact's partition (Kafka's partitioner on the
	// contact id), to find stored contacts of Partition before the filter
	// is created.
	PartitionOf func(id string) int32
}

// filterKeys are the Redis keys of one partition's filter.
type filterKeys struct{ meta, bits string }

func (r *Redis) filterKeys(partitions int, p int32) filterKeys {
	tag := r.prefix + ":{f" + strconv.Itoa(partitions) + "." + strconv.FormatInt(int64(p), 10) + "}:"
	return filterKeys{meta: tag + "m", bits: tag + "b"}
}

// filter is the owner's copy of its partition's filter.
type filter struct {
	keys filterKeys
	m    uint64 // size in bits
	bits []byte // bit i: bits[i/8] & (0x80 >> (i%8)), as Redis' SETBIT
}

// index is id's bit: hashID, fixed, so that every process maps an id to
// the same bit.
func (f *filter) index(id string) uint64 { return hashID(id) % f.m }

// has reports whether id's bit is set: false means certainly not stored.
func (f *filter) has(id string) bool {
	i := f.index(id)
	return f.bits[i>>3]&(0x80>>(i&7)) != 0
}

// add sets id's bit and returns its index, and whether it was clear (a
// contact new to the filter).
func (f *filter) add(id string) (uint64, bool) {
	i := f.index(id)
	b := &f.bits[i>>3]
	mask := byte(0x80 >> (i & 7))
	if *b&mask != 0 {
		return i, false
	}
	*b |= mask
	return i, true
}

// openFilterScript reads a filter, creating its metadata first if it has
// none and ARGV[1] is not "".
//
// KEYS: meta, bits. ARGV: F to create with ("" to only read), size in
// bits. Returns {} when there is no filter, else {F, size, bitmap}.
var openFilterScript = redis.NewScript(`
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 'm', ARGV[2])
end
local meta = redis.call('HMGET', KEYS[1], 'f', 'm')
if not meta[1] then
  return {}
end
return {meta[1], meta[2] or '', redis.call('GET', KEYS[2]) or ''}
`)

// markFilterScript sets bits of a filter and raises its F, unless the
// filter is gone or not usable (F < 0).
//
// KEYS: meta, bits. ARGV: the new F, then the bits' offsets. Returns 1 if
// it did.
var markFilterScript = redis.NewScript(`
local f = tonumber(redis.call('HGET', KEYS[1], 'f'))
if not f or f < 0 then
  return 0
end
for i = 2, #ARGV do
  redis.call('SETBIT', KEYS[2], ARGV[i], 1)
end
if tonumber(ARGV[1]) > f then
  redis.call('HSET', KEYS[1], 'f', ARGV[1])
end
return 1
`)

// openFilter reads (creating it if Redis holds no contact of the
// partition) the filter of s's partition. It returns nil, with the reason,
// when the filter is not usable; then it is marked so (F = -1).
func (r *Redis) openFilter(ctx context.Context, s FilterScope, size uint64) (*filter, string, error) {
	k := r.filterKeys(s.Partitions, s.Partition)
	keys := []string{k.meta, k.bits}
	sz := strconv.FormatUint(size, 10)
	v, err := openFilterScript.Run(ctx, r.c, keys, "", sz).StringSlice()
	if err != nil {
		return nil, "", r.err("open filter", err)
	}
	if len(v) == 0 {
		stored, err := r.storedIn(ctx, s)
		if err != nil {
			return nil, "", err
		}
		create := strconv.FormatInt(s.From, 10)
		if stored {
			create = "-1"
		}
		if v, err = openFilterScript.Run(ctx, r.c, keys, create, sz).StringSlice(); err != nil {
			return nil, "", r.err("open filter", err)
		}
		if len(v) == 0 {
			return nil, "", fmt.Errorf("state: filter %s: not created", k.meta)
		}
	}
	if len(v) != 3 {
		return nil, "", fmt.Errorf("state: filter %s: unexpected reply %q", k.meta, v)
	}
	f, err1 := strconv.ParseInt(v[0], 10, 64)
	m, err2 := strconv.ParseUint(v[1], 10, 64)
	if err1 != nil || err2 != nil || m == 0 || m > maxFilterBits {
		return nil, "", fmt.Errorf("state: filter %s holds f=%q m=%q: delete it (DEL %s %s) and the next owner of the partition recreates it if it can", k.meta, v[0], v[1], k.meta, k.bits)
	}
	switch {
	case f < 0:
		return nil, "marked unusable (it was created on a store that held the partition's contacts, or an owner did not keep it)", nil
	case s.From > f:
		return nil, fmt.Sprintf("complete through offset %d only, and the partition resumes at %d (an owner did not keep it)", f, s.From), r.poisonFilter(ctx, k)
	}
	fl := &filter{keys: k, m: m, bits: make([]byte, (m+7)/8)}
	copy(fl.bits, v[2])
	// Every write runs markFilterScript first: try it now (bit 0, F not
	// raised), so that an ACL that refuses it turns the filter off here
	// rather than failing the partition's writes.
	fl.bits[0] |= 0x80
	if err := r.markFilter(ctx, k, s.From, []uint64{0}); err != nil {
		return nil, "", err
	}
	return fl, "", nil
}

// poisonFilterScript marks a partition's filter unusable (F = -1), if it
// exists. KEYS: meta, bits.
var poisonFilterScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'f', '-1')
end
return 1
`)

// poisonFilter marks a partition's filter unusable: its owner does not
// keep it (turned off, or not usable for it).
func (r *Redis) poisonFilter(ctx context.Context, k filterKeys) error {
	return r.err("mark filter unusable", poisonFilterScript.Run(ctx, r.c, []string{k.meta, k.bits}).Err())
}

// markFilter sets bits of a partition's filter and raises its F to next.
func (r *Redis) markFilter(ctx context.Context, k filterKeys, next int64, bits []uint64) error {
	args := make([]any, 0, 1+len(bits))
	args = append(args, next)
	for _, b := range bits {
		args = append(args, b)
	}
	return r.err("filter", markFilterScript.Run(ctx, r.c, []string{k.meta, k.bits}, args...).Err())
}

// storedIn reports whether Redis holds a contact of s's partition (or may:
// more than filterScanLimit contact keys, none of the partition's).
func (r *Redis) storedIn(ctx context.Context, s FilterScope) (bool, error) {
	var found, seen atomic.Int64
	var mu sync.Mutex // PartitionOf is the caller's, for one goroutine
	head, tail := r.prefix+":{", "}:c"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, head+"*"+tail, 1000).Iterator()
		for found.Load() == 0 && it.Next(ctx) {
			key := it.Val()
			if seen.Add(1) > filterScanLimit {
				found.Store(1)
				break
			}
			id, ok := strings.CutPrefix(key, head)
			if id, ok2 := strings.CutSuffix(id, tail); ok && ok2 {
				mu.Lock()
				mine := s.PartitionOf(id) == s.Partition
				mu.Unlock()
				if mine {
					found.Store(1)
				}
			}
		}
		return it.Err()
	}
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, r.c)
	}
	if err != nil {
		return false, r.err("scan for contacts", err)
	}
	return found.Load() != 0, nil
}
