package state

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// partOf2 puts ids starting with "q" in partition 1 of 2, the others in 0.
func partOf2(id string) int32 {
	if strings.HasPrefix(id, "q") {
		return 1
	}
	return 0
}

func scope(from int64) FilterScope {
	return FilterScope{Partition: 0, Partitions: 2, From: from, PartitionOf: partOf2}
}

func mustOpen(t *testing.T, c *Cache, s FilterScope) {
	t.Helper()
	if err := c.OpenFilter(t.Context(), s); err != nil {
		t.Fatalf("open filter %+v: %v", s, err)
	}
}

// write stores contact id with Seq seq as applied through the record at
// pos, as its partition's owner does.
func write(t *testing.T, c *Cache, id string, seq uint64, pos Position) {
	t.Helper()
	ct := mustGet(t, c, id)
	ct.Seq = seq
	ct.MarkApplied(pos)
	if err := c.Put(t.Context(), ct); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, c, pos)
}

// TestFilter checks when a partition's new-contact filter is used, and
// that it never says "not stored" of a contact a write stored before it
// was read: the new owner of a partition re-reads the records after the
// committed offset, and only the stored applied position (Contact.Applied)
// tells it which of them a contact holds already.
func TestFilter(t *testing.T) {
	type want struct {
		id   string
		seq  uint64 // the stored Seq, 0 when the contact is new
		load bool   // a round trip: not known to be new
	}
	at := func(o int64) Position { return Position{Partition: 0, Offset: o} }
	cases := []struct {
		name  string
		setup func(t *testing.T, r *Redis) // the partition's earlier owners
		scope FilterScope                  // the reader's
		use   bool                         // the reader uses the filter
		want  []want
	}{
		{
			name:  "empty store: created",
			setup: func(*testing.T, *Redis) {},
			scope: scope(0), use: true,
			want: []want{{id: "n"}},
		},
		{
			// The case the filter must never get wrong: the write landed,
			// the offset commit did not; the next owner reads the records
			// from offset 2 again and must find them applied.
			name: "owner died after its write, before its offset commit",
			setup: func(t *testing.T, r *Redis) {
				a := NewCache(r, CacheOptions{})
				mustOpen(t, a, scope(0))
				write(t, a, "a", 7, at(4))
			},
			scope: scope(2), use: true,
			want: []want{{id: "a", seq: 7, load: true}, {id: "n"}},
		},
		{
			name: "contacts of the partition stored without a filter",
			setup: func(t *testing.T, r *Redis) {
				write(t, NewCache(r, CacheOptions{}), "x", 3, at(4))
			},
			scope: scope(2), use: false,
			want: []want{{id: "x", seq: 3, load: true}, {id: "n", load: true}},
		},
		{
			name: "only other partitions' contacts stored",
			setup: func(t *testing.T, r *Redis) {
				write(t, NewCache(r, CacheOptions{}), "q1", 3, Position{Partition: 1, Offset: 1})
			},
			scope: scope(0), use: true,
			want: []want{{id: "n"}},
		},
		{
			// An older version does not keep the filter: once its offsets
			// are committed past F, the filter is not complete.
			name: "an owner that kept no filter committed past it",
			setup: func(t *testing.T, r *Redis) {
				a := NewCache(r, CacheOptions{})
				mustOpen(t, a, scope(0))
				write(t, a, "a", 7, at(4))
				write(t, NewCache(r, CacheOptions{}), "y", 2, at(9)) // never opened
			},
			scope: scope(10), use: false,
			want: []want{{id: "y", seq: 2, load: true}, {id: "n", load: true}},
		},
		{
			// Its writes are re-read (no offset commit), but its
			// contacts' applied positions must be loaded: it marked the
			// filter unusable when it took the partition.
			name: "an owner with the filter turned off died before its offset commit",
			setup: func(t *testing.T, r *Redis) {
				a := NewCache(r, CacheOptions{})
				mustOpen(t, a, scope(0))
				write(t, a, "a", 7, at(4))
				b := NewCache(r, CacheOptions{FilterBits: -1})
				mustOpen(t, b, scope(5))
				write(t, b, "y", 2, at(7))
			},
			scope: scope(5), use: false,
			want: []want{{id: "y", seq: 2, load: true}, {id: "a", seq: 7, load: true}},
		},
		{
			name: "erased contact: its bit stays",
			setup: func(t *testing.T, r *Redis) {
				a := NewCache(r, CacheOptions{})
				mustOpen(t, a, scope(0))
				write(t, a, "e", 7, at(1))
				if err := a.Delete(t.Context(), "e"); err != nil {
					t.Fatal(err)
				}
			},
			scope: scope(2), use: true,
			want: []want{{id: "e", load: true}, {id: "n"}},
		},
		{
			// Contacts change partitions with their number: the new
			// layout's filters are only created where none is stored.
			name: "repartitioned",
			setup: func(t *testing.T, r *Redis) {
				a := NewCache(r, CacheOptions{})
				mustOpen(t, a, scope(0))
				write(t, a, "a", 7, at(4))
			},
			scope: FilterScope{Partition: 0, Partitions: 3, From: 0, PartitionOf: func(string) int32 { return 0 }},
			use:   false,
			want:  []want{{id: "a", seq: 7, load: true}, {id: "n", load: true}},
		},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx := t.Context()
					r := newRedis(t, b.addrs)
					tc.setup(t, r)
					d := NewCache(r, CacheOptions{})
					mustOpen(t, d, tc.scope)
					if got := d.flt != nil; got != tc.use {
						t.Fatalf("filter used: %v, want %v", got, tc.use)
					}
					// Warm the connections up: their handshakes are not loads.
					if err := NewCache(r, CacheOptions{}).Prefetch(ctx, []string{"warm-up"}); err != nil {
						t.Fatal(err)
					}
					rt := countRoundTrips(r)
					for _, w := range tc.want {
						before := r.Stats().Skipped
						if err := d.Prefetch(ctx, []string{w.id}); err != nil {
							t.Fatal(err)
						}
						cmds, pipes := rt.take()
						if got := cmds+pipes > 0; got != w.load {
							t.Errorf("%s: loaded %v, want %v", w.id, got, w.load)
						}
						if skipped := r.Stats().Skipped - before; skipped != map[bool]uint64{true: 0, false: 1}[w.load] {
							t.Errorf("%s: %d loads skipped counted", w.id, skipped)
						}
						c := mustGet(t, d, w.id)
						if c.Seq != w.seq {
							t.Errorf("%s: Seq %d, want %d", w.id, c.Seq, w.seq)
						}
						if w.seq > 0 && !c.Covers(at(3)) {
							t.Errorf("%s: applied %+v does not cover the record re-read at offset 3", w.id, c.Applied)
						}
					}
				})
			}
		})
	}
}

// TestFilterKept checks that an owner keeps the filter for the next: the
// contacts it writes are loaded by the next owner, those it never wrote
// are not, and a Get of a contact known to be new makes no round trip.
func TestFilterKept(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			r := newRedis(t, b.addrs)
			a := NewCache(r, CacheOptions{FilterBits: 4096})
			mustOpen(t, a, scope(0))
			var ids []string
			for i := range 50 {
				ids = append(ids, "c"+strings.Repeat("x", i))
			}
			if err := a.Prefetch(ctx, ids); err != nil {
				t.Fatal(err)
			}
			a.PrefetchAhead(ctx, []string{"ahead"})
			if a.ah != nil || !a.Cached([]byte("ahead")) {
				t.Fatal("a contact known to be new was loaded ahead, or not cached")
			}
			for i, id := range ids {
				c := mustGet(t, a, id)
				c.Seq = uint64(i + 1)
				a.Put(ctx, c)
			}
			mustCommit(t, a, Position{Partition: 0, Offset: 100})
			if got := r.Stats().Skipped; got != 51 {
				t.Fatalf("%d loads skipped, want 51 (50 prefetched, one ahead)", got)
			}

			// The next owner, re-reading from offset 90.
			d := NewCache(r, CacheOptions{})
			mustOpen(t, d, scope(90))
			if d.flt == nil || d.flt.m != 4096 {
				t.Fatalf("next owner's filter: %+v, want the stored one of 4096 bits", d.flt)
			}
			if err := d.Prefetch(ctx, ids); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				if c := mustGet(t, d, id); c.Seq != uint64(i+1) {
					t.Fatalf("%s: Seq %d, want %d", id, c.Seq, i+1)
				}
			}
			rt := countRoundTrips(r)
			if c := mustGet(t, d, "never"); c.Seq != 0 {
				t.Fatal("a contact never written is not new")
			}
			if cmds, pipes := rt.take(); cmds+pipes != 0 {
				t.Fatalf("Get of a contact known to be new: %d calls, %d pipelines", cmds, pipes)
			}
		})
	}
}

// cmdLog records the scripts and pipelines a client sends, in order.
type cmdLog struct {
	mu  sync.Mutex
	log []string
}

func (h *cmdLog) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *cmdLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.note(cmd)
		return next(ctx, cmd)
	}
}
func (h *cmdLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.note(c)
		}
		return next(ctx, cmds)
	}
}

func (h *cmdLog) note(cmd redis.Cmder) {
	name := cmd.Name()
	if a := cmd.Args(); (name == "evalsha" || name == "eval") && len(a) > 1 {
		switch a[1] {
		case markFilterScript.Hash():
			name = "mark"
		case casScript.Hash():
			name = "cas"
		}
	}
	h.mu.Lock()
	h.log = append(h.log, name)
	h.mu.Unlock()
}

// TestFilterBitsBeforeBlobs checks that a write sends its new contacts'
// bits, and has them acknowledged, before their blobs: a blob that landed
// without its bit would be "not stored" for the next owner.
func TestFilterBitsBeforeBlobs(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			r := newRedis(t, b.addrs)
			a := NewCache(r, CacheOptions{})
			mustOpen(t, a, scope(0))
			h := new(cmdLog)
			r.c.AddHook(h)
			for i, id := range []string{"a", "b"} {
				c := mustGet(t, a, id)
				c.Seq = uint64(i + 1)
				a.Put(ctx, c)
			}
			mustCommit(t, a, Position{Partition: 0, Offset: 3})
			h.mu.Lock()
			log := slices.Clone(h.log)
			h.mu.Unlock()
			m, c := slices.Index(log, "mark"), slices.Index(log, "cas")
			if m < 0 || c < 0 || m > c {
				t.Fatalf("commands %v: want the filter's mark before the compare-and-set", log)
			}
			k := r.filterKeys(2, 0)
			for _, id := range []string{"a", "b"} {
				i := a.flt.index(id)
				if bit, err := r.c.GetBit(ctx, k.bits, int64(i)).Result(); err != nil || bit != 1 {
					t.Fatalf("%s's bit %d in Redis: %d, %v", id, i, bit, err)
				}
			}
			if f, err := r.c.HGet(ctx, k.meta, "f").Result(); err != nil || f != "4" {
				t.Fatalf("F after a write at offset 3: %q, %v; want 4", f, err)
			}
		})
	}
}
