package sinks

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadpulse/leadpulse/internal/testenv"
)

// TestRedisStreamAppendsEachIDOnce: the dispatcher may deliver an action
// again (it crashed between the delivery and remembering it); the stream
// still holds it once, whatever the stream key's hash tag.
func TestRedisStreamAppendsEachIDOnce(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisConfig{})
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rc.Close() })
	for _, tc := range []struct{ stream, marker string }{
		{"leadpulse:audit", "{leadpulse:audit}:delivered:"},
		{"{tenant-7}:audit", "{tenant-7}:delivered:"},
	} {
		s := NewRedisStream(rc, tc.stream, 1000, 5*time.Second)
		a, b := newAction("audit"), newAction("audit")
		for _, batch := range [][]Action{{a}, {a, b}, {b, a}} {
			for i := range batch {
				batch[i].JSON, _ = json.Marshal(batch[i].Record)
			}
			if err := s.Write(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := rc.XRange(t.Context(), tc.stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var ids []any
		for _, e := range entries {
			ids = append(ids, e.Values["id"])
		}
		if len(ids) != 2 || ids[0] != a.Record.ID || ids[1] != b.Record.ID {
			t.Errorf("%s holds ids %v, want [%s %s]", tc.stream, ids, a.Record.ID, b.Record.ID)
		}
		if got := s.marker(a.Record.ID); got != tc.marker+a.Record.ID {
			t.Errorf("marker of %s = %q, want %q (the stream's hash slot)", tc.stream, got, tc.marker+a.Record.ID)
		}
		if ttl := rc.PTTL(t.Context(), s.marker(a.Record.ID)).Val(); ttl <= 0 || ttl > DefaultDedupeTTL {
			t.Errorf("marker TTL %v, want up to %v", ttl, DefaultDedupeTTL)
		}
	}
}
