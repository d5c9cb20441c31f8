package state

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetRedisLogger sends go-redis' own log lines (a failed dial of its
// connection pool, a Sentinel or Cluster topology change) to log, at level
// WARN with the message "redis client" and the line as "detail", instead of
// go-redis' default: unstructured lines on standard error beside slog's.
//
// go-redis has one logger per process (redis.SetLogger), so this is
// process-wide: the composition root (run, dev, bench) calls it once,
// before the first client is made. A nil log is slog.Default().
func SetRedisLogger(log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	redis.SetLogger(redisLog{log})
}

// redisLog adapts a *slog.Logger to go-redis' logging interface.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	// go-redis starts most lines with "redis: ", which the message says.
	detail := strings.TrimPrefix(strings.TrimSpace(fmt.Sprintf(format, v...)), "redis: ")
	l.log.WarnContext(ctx, "redis client", "detail", detail)
}
