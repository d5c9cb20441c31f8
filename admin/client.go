package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls the admin API of a running process (`leadpulse contact`,
// `leadpulse forget`).
type Client struct {
	// Addr is the process' http address: host:port, or a URL.
	Addr string
	// Token is the bearer token (the process' admin_token); "" sends none.
	Token string
}

// Do sends one request to path (e.g. /contacts/ID) and returns the status
// and the body (at most 16 MiB). It gives up after 30s.
func (c Client) Do(ctx context.Context, method, path string) (int, []byte, error) {
	base := c.Addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	cl := &http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}
