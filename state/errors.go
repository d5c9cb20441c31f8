package state

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// The kinds of store failure a caller acts on. Every error the Redis store
// returns for a failed Redis call is an *Error that matches exactly one of
// ErrUnavailable or ErrConfig with errors.Is (or neither, for a bug), and
// still matches its cause (context.DeadlineExceeded, syscall.ECONNREFUSED, …).
var (
	// ErrUnavailable means Redis could not be reached or asked us to come
	// back: connection refused or lost, timeout, LOADING, CLUSTERDOWN,
	// TRYAGAIN, MASTERDOWN, READONLY during a failover. Retry the same call
	// later, with backoff; nothing was lost that Commit acknowledged.
	ErrUnavailable = errors.New("redis unavailable, retry later")

	// ErrConfig means retrying will not help until an operator changes
	// something: NOAUTH, WRONGPASS, NOPERM, a TLS handshake that failed
	// verification, an unknown host, an unreadable certificate file, a
	// contradiction in RedisOptions, Redis too old, Redis out of memory.
	ErrConfig = errors.New("redis configuration is wrong")

	// ErrConflict is matched by a *ConflictError: Commit found contacts whose
	// stored state is newer than the batch's and left them alone.
	ErrConflict = errors.New("stale contact writes rejected")

	// ErrNotFound is returned by Redis.Inspect for a contact that is not
	// stored (never seen, erased, or expired after the retention TTL).
	ErrNotFound = errors.New("contact not found")
)

// Error is a failed Redis call, with what to check.
type Error struct {
	Op   string // what the store was doing: "load", "commit", "erase", "due timers", "ping", …
	Addr string // the configured addresses, for the message
	Kind error  // ErrUnavailable, ErrConfig, or nil when the cause is a bug
	Hint string // what to check or change; may be empty
	Err  error  // the cause, as go-redis or the network reported it
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("state: redis ")
	b.WriteString(e.Op)
	if e.Addr != "" {
		b.WriteString(" (")
		b.WriteString(e.Addr)
		b.WriteString(")")
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so that errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// Conflict is one contact whose write Commit rejected.
type Conflict struct {
	Contact string
	Stored  Position // the position of the newer state Redis holds
}

// ConflictError lists the contacts of one Commit whose stored state was newer
// than the batch (a replayed batch, or a zombie instance that lost its
// partition). Their stored state was kept and the cache dropped its copy, so
// the next Get reads the newer state. Every other contact of the batch was
// written: the caller logs, counts and carries on (commit the Kafka offset).
type ConflictError struct {
	Pos      Position // the position the batch was committed as
	Contacts []Conflict
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state: commit at partition %d offset %d: %d stale contact writes rejected, Redis holds newer state (replayed batch, or another instance owns this partition):",
		e.Pos.Partition, e.Pos.Offset, len(e.Contacts))
	for i, c := range e.Contacts {
		if i == 5 {
			fmt.Fprintf(&b, " … and %d more", len(e.Contacts)-i)
			break
		}
		fmt.Fprintf(&b, " %q (stored at offset %d)", c.Contact, c.Stored.Offset)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// configError is a contradiction or bad value in RedisOptions.
func configError(format string, args ...any) error {
	return &Error{Op: "config", Kind: ErrConfig, Err: fmt.Errorf(format, args...)}
}

// classify turns what go-redis returned into an *Error whose Kind says
// whether to retry, and whose Hint says what to check. Errors that are
// already classified pass through.
func classify(op, addr string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Op: op, Addr: addr, Err: err} // the caller gave up: neither kind
	}
	kind, hint := kindOf(err, addr)
	return &Error{Op: op, Addr: addr, Kind: kind, Hint: hint, Err: err}
}

func kindOf(err error, addr string) (kind error, hint string) {
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		verErr  *tls.CertificateVerificationError
		hostErr x509.HostnameError
		uaErr   x509.UnknownAuthorityError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		netErr  net.Error
		rErr    redis.Error
	)
	switch {
	// Configuration: retrying cannot help.
	case redis.IsAuthError(err) || redis.HasErrorPrefix(err, "AUTH") ||
		redis.HasErrorPrefix(err, "invalid password") || redis.HasErrorPrefix(err, "invalid username"):
		return ErrConfig, "check redis username and password: the server refused them or requires them"
	case redis.IsPermissionError(err):
		return ErrConfig, "the ACL user lacks a command or key: grant it the ACL rules listed in docs/redis.md (ACL) on the key prefix's keys"
	case redis.IsOOMError(err):
		return ErrConfig, "Redis reached maxmemory: raise maxmemory, shorten the retention ttl, or add shards; keep maxmemory-policy noeviction so that contacts are never dropped silently"
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return ErrConfig, "a key under the key prefix holds another type: another application shares the prefix, set redis key_prefix"
	case redis.HasErrorPrefix(err, "unknown command") || redis.HasErrorPrefix(err, "syntax error") ||
		redis.HasErrorPrefix(err, "GT, LT, and/or NX options"):
		return ErrConfig, "Redis 6.2 or later (or a compatible server) is required"
	case errors.As(err, &verErr) || errors.As(err, &hostErr) || errors.As(err, &uaErr) || errors.As(err, &invErr):
		return ErrConfig, "the server's TLS certificate did not verify: check tls.ca_file and tls.server_name"
	case errors.As(err, &recErr):
		return ErrConfig, "the server does not speak TLS: disable tls, or use the server's TLS port"
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return ErrConfig, "the server refused the TLS handshake: check tls.cert_file and tls.key_file (client certificate) and the server's tls-auth-clients"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return ErrConfig, "the Redis host name does not resolve: check redis addr"

	// Unavailable: retry later.
	case redis.IsLoadingError(err):
		return ErrUnavailable, "Redis is loading its dataset after a restart"
	case redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsReadOnlyError(err):
		return ErrUnavailable, "a cluster failover or resharding is in progress"
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return ErrUnavailable, "Redis lost its script cache (restart or failover) during the call"
	case redis.HasErrorPrefix(err, "BUSY"):
		return ErrUnavailable, "Redis is busy running a long script"
	case redis.IsMaxClientsError(err):
		return ErrUnavailable, "Redis reached maxclients: raise it, or lower redis pool_size across instances"
	case errors.Is(err, redis.ErrPoolTimeout):
		return ErrUnavailable, "every connection of the pool stayed busy: Redis is slow, or raise redis pool_size"
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrUnavailable, "nothing listens at " + addr + ": check that Redis runs there"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return ErrUnavailable, "Redis did not answer in time: check its load and the network, or raise redis read_timeout"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &opErr) || errors.As(err, &dnsErr):
		return ErrUnavailable, "the connection was lost; if it happens on every connection, check whether the server requires TLS (set tls.enabled)"
	case errors.Is(err, redis.ErrClosed):
		return nil, "the store was closed"
	case errors.As(err, &rErr):
		return nil, ""
	}
	return nil, ""
}
