package state

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSetRedisLogger: with Redis down, go-redis' own lines (its pool's
// failed dials) come through slog, structured, without a doubled "redis:".
func TestSetRedisLogger(t *testing.T) {
	var buf lockedBuffer
	SetRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { SetRedisLogger(nil) })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, MaxRetries: -1, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Ping(ctx); err == nil {
		t.Fatal("Ping of a closed port succeeded")
	}
	out := buf.String()
	if !strings.Contains(out, `"level":"WARN","msg":"redis client","detail":"connection pool: failed to dial`) {
		t.Errorf("go-redis' dial failure did not come through slog as WARN redis client: %q", out)
	}
	if strings.Contains(out, "redis: redis:") || strings.Contains(out, `"detail":"redis: `) {
		t.Errorf("doubled redis prefix: %q", out)
	}
}
