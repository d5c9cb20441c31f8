package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/state"
	"github.com/leadpulse/leadpulse/stream"
)

// ServeHTTP serves the admin/metrics server on ln until the returned
// function, which shuts it down (within 5s) and waits for it. cmd names the
// command in the logs.
func ServeHTTP(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger, cmd string) (shutdown func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("leadpulse "+cmd+": http server stopped", "err", err)
		}
	})
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		wg.Wait()
	}
}

// Contacts adapts the pipeline to the admin API: a pipeline that is not
// running is admin.ErrUnavailable.
type Contacts struct{ P *stream.Pipeline }

// Inspect returns a contact's stored state.
func (c Contacts) Inspect(ctx context.Context, id string) (*state.Stored, error) {
	st, err := c.P.Inspect(ctx, id)
	if errors.Is(err, stream.ErrNotRunning) {
		err = fmt.Errorf("%w: %w", admin.ErrUnavailable, err)
	}
	return st, err
}

// Forget erases a contact, or queues its erasure.
func (c Contacts) Forget(ctx context.Context, id string) (bool, error) {
	er, err := c.P.Forget(ctx, id)
	if errors.Is(err, stream.ErrNotRunning) {
		err = fmt.Errorf("%w: %w", admin.ErrUnavailable, err)
	}
	return er.Applied, err
}
