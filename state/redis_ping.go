package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ping checks that every node answers with these credentials, loads the
// scripts, and checks the server version (6.2 or later, for ZADD LT). Use it
// for readiness: a failure is ErrUnavailable or ErrConfig.
func (r *Redis) Ping(ctx context.Context) error {
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		err = cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
	} else {
		err = r.c.Ping(ctx).Err()
	}
	if err != nil {
		return r.err("ping", r.diagnose(ctx, err))
	}
	for _, s := range []*redis.Script{casScript, repairScript} {
		if err := s.Load(ctx, r.c).Err(); err != nil {
			return r.err("script load", err)
		}
	}
	info, err := r.c.Info(ctx, "server").Result()
	if err != nil {
		if redis.IsPermissionError(err) {
			return nil // INFO is not needed for the store to work; skip the version check
		}
		return r.err("info", err)
	}
	if v, ok := infoField(info, "redis_version"); ok && !atLeast(v, 6, 2) {
		return &Error{Op: "ping", Addr: r.addr, Kind: ErrConfig,
			Err: fmt.Errorf("server is Redis %s", v), Hint: "Redis 6.2 or later (or a compatible server) is required"}
	}
	return nil
}

// diagnose looks behind a connection failure that has no clear cause (a
// timeout, a connection closed at once) for a TLS mismatch, which otherwise
// looks like an outage: a TLS client gets no answer from a plain server, and
// a TLS server drops a plain client. It probes the first address once, so it
// belongs to Ping (startup, readiness), not to the hot path.
func (r *Redis) diagnose(ctx context.Context, err error) error {
	if kind, _ := kindOf(err, r.addr); kind != ErrUnavailable || errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d := &net.Dialer{}
	if r.tls != nil {
		c, derr := d.DialContext(ctx, "tcp", r.first)
		if derr != nil {
			return err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		var buf [8]byte
		if _, werr := c.Write([]byte("PING\r\n")); werr != nil {
			return err
		}
		if n, _ := c.Read(buf[:]); n > 0 && (buf[0] == '+' || buf[0] == '-') {
			return &Error{Op: "ping", Addr: r.addr, Kind: ErrConfig, Err: err,
				Hint: "the server at " + r.first + " answered a plain-text PING: it does not speak TLS on this port; disable tls, or use the server's TLS port"}
		}
		return err
	}
	td := &tls.Dialer{NetDialer: d, Config: &tls.Config{InsecureSkipVerify: true}} // a probe: nothing is sent but the handshake
	c, derr := td.DialContext(ctx, "tcp", r.first)
	var opErr *net.OpError
	if derr == nil || errors.As(derr, &opErr) && opErr.Op == "remote error" {
		if c != nil {
			c.Close()
		}
		return &Error{Op: "ping", Addr: r.addr, Kind: ErrConfig, Err: err,
			Hint: "the server at " + r.first + " completed a TLS handshake: it requires TLS; set tls.enabled (and tls.ca_file)"}
	}
	return err
}

func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return true // unknown scheme: let the commands decide
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}
