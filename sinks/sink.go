package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/action"
)

// Sink delivers action records to one downstream system. It is the whole
// contract a new sink implements; retries, rate limits, concurrency,
// deduplication and dead letters are the Dispatcher's, the same for every
// sink.
//
// Write makes one attempt to deliver the batch (the Dispatcher never passes
// an empty one) and returns nil when every action was delivered. Otherwise it
// returns an error that says what to do next:
//
//   - a *BatchError with one entry per action (nil where delivered), when
//     the actions of the batch fared differently;
//   - an error matching ErrPermanent (see Permanent): retrying cannot help,
//     the action goes to the dead letter with the error as its reason;
//   - an error matching ErrTransient (see Transient), or any other error:
//     the Dispatcher retries it with backoff;
//   - the context's error when ctx was done: the Dispatcher stops without
//     settling the action.
//
// Every Action given to Write has its JSON set (the Dispatcher fills it).
// Write may be called from several goroutines at once (up to the sink's
// Policy.Concurrency). Close is called once, after the last Write has
// returned; it releases what the sink made itself (not the clients passed
// in through Deps, which belong to the caller).
type Sink interface {
	Write(ctx context.Context, batch []Action) error
	Close(ctx context.Context) error
}

// Action is one action record on its way to a sink: the decoded record, and
// its JSON (SPEC §3) as read from the actions topic, which sinks send as it
// is so that no field is lost or reordered in transit.
type Action struct {
	Record action.Record
	// JSON is the record's encoding. When nil, the Dispatcher fills it by
	// marshalling Record.
	JSON []byte
	// Origin is the caller's, passed through untouched to DeadLetter: e.g.
	// the *kgo.Record the action was read from, whose topic, partition and
	// offset KafkaDeadLetter puts in headers. Sinks ignore it.
	Origin any
}

// DecodeAction decodes a record value of the actions topic. An error matches
// ErrInvalidAction and ErrPermanent: such a value can never be delivered and
// belongs in the dead letter.
func DecodeAction(value []byte) (Action, error) {
	var a Action
	if err := json.Unmarshal(value, &a.Record); err != nil {
		return a, &PermanentError{Err: fmt.Errorf("%w: not an action record (SPEC §3 JSON): %w", ErrInvalidAction, err)}
	}
	if a.Record.ID == "" {
		return a, &PermanentError{Err: fmt.Errorf("%w: no \"id\"; every action record carries its deterministic id", ErrInvalidAction)}
	}
	a.JSON = value
	return a, nil
}

// Errors. All are matched with errors.Is; the typed errors below with
// errors.As.
var (
	// ErrTransient is matched by errors a retry may cure: 5xx and 429
	// replies, network errors, timeouts, a broker or server that is busy.
	ErrTransient = errors.New("transient delivery failure")
	// ErrPermanent is matched by errors no retry can cure: the action goes to
	// the dead letter with the error as its reason.
	ErrPermanent = errors.New("permanent delivery failure")

	// ErrUnknownSink: the record names a sink that is not configured and no
	// default sink is set. Add the sink to the deployment config's `sinks:`
	// or fix the action's `sink`/`route` in the rules. Also ErrPermanent.
	ErrUnknownSink = errors.New("sinks: no such sink")
	// ErrInvalidAction: the record cannot be delivered as it is (no id, not
	// JSON). Also ErrPermanent.
	ErrInvalidAction = errors.New("sinks: invalid action record")
	// ErrRetriesExhausted: transient failures went on past the sink's
	// retry budget (Retry.For, Retry.Attempts). The last failure is wrapped
	// too. Also ErrPermanent.
	ErrRetriesExhausted = errors.New("sinks: retries exhausted")
	// ErrDeadLetter: the DeadLetter callback failed, so an action is neither
	// delivered nor dead-lettered: do not commit its offset.
	ErrDeadLetter = errors.New("sinks: dead letter failed")
	// ErrClosed: the Dispatcher is closed, or its Close gave up waiting and
	// cancelled the work in flight. Nothing returned with it is settled.
	ErrClosed = errors.New("sinks: dispatcher closed")
	// ErrConfig is matched by every configuration error; the message names
	// the setting (or both conflicting settings) to fix.
	ErrConfig = errors.New("sinks: invalid configuration")
)

// TransientError is a failure worth retrying. RetryAfter, when positive, is
// how long the peer asked us to wait (HTTP Retry-After); the Dispatcher
// waits that long instead of its backoff, up to Retry.MaxRetryAfter.
type TransientError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *TransientError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %v)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}
func (e *TransientError) Unwrap() error        { return e.Err }
func (e *TransientError) Is(target error) bool { return target == ErrTransient }

// PermanentError is a failure no retry can cure.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string        { return e.Err.Error() }
func (e *PermanentError) Unwrap() error        { return e.Err }
func (e *PermanentError) Is(target error) bool { return target == ErrPermanent }

// Transient marks err as worth retrying (nil stays nil).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// Permanent marks err as not worth retrying (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err says the action must go to the dead
// letter. The outermost mark wins (a PermanentError wrapping a
// TransientError is permanent); an error with no mark is treated as
// transient: when in doubt, retry. A joined error is permanent when all its
// parts are.
func IsPermanent(err error) bool {
	for err != nil {
		switch e := err.(type) {
		case *PermanentError:
			return true
		case *TransientError:
			return false
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			errs := e.Unwrap()
			for _, part := range errs {
				if !IsPermanent(part) {
					return false
				}
			}
			return len(errs) > 0
		default:
			return err == ErrPermanent
		}
	}
	return false
}

// retryAfter is the wait a transient err asks for (0: use the backoff).
func retryAfter(err error) time.Duration {
	var te *TransientError
	if errors.As(err, &te) {
		return te.RetryAfter
	}
	return 0
}

// BatchError is the outcome of a Write whose actions fared differently:
// Errs has one entry per action of the batch, nil where it was delivered.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	failed, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if first == nil {
		return "sinks: batch: no failure"
	}
	return fmt.Sprintf("sinks: %d of %d actions failed; first: %v", failed, len(e.Errs), first)
}

// Unwrap returns the failures (errors.Is/As look through them).
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// StatusError is a webhook's reply other than 2xx. It is wrapped in a
// TransientError (408, 425, 429, 5xx) or a PermanentError (any other).
type StatusError struct {
	URL    string // without query string and credentials
	Status int
	Body   string // the start of the reply's body, at most 512 bytes
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhook %s replied %d", e.URL, e.Status)
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	switch {
	case e.Status >= 300 && e.Status < 400:
		b.WriteString("; the receiver redirects: set the sink's url to the final address")
	case e.Status == 401 || e.Status == 403:
		b.WriteString("; check the sink's url and secret, and the receiver's credentials")
	case e.Status == 404 || e.Status == 410:
		b.WriteString("; check the sink's url: the receiver does not know it")
	case e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 425 && e.Status != 429:
		b.WriteString("; the receiver refused the request: check the sink's format and the receiver's expectations")
	}
	return b.String()
}

// Dead-letter reasons, for a header of the dead-letter record (see Reason).
const (
	ReasonRejected    = "rejected"          // the sink refused the action (a permanent error)
	ReasonExhausted   = "retries-exhausted" // transient failures outlasted the retry budget
	ReasonUnknownSink = "unknown-sink"      // no sink of that name, and no default
	ReasonInvalid     = "invalid"           // not a deliverable action record
)

// Reason names the kind of a dead-letter reason: one of the Reason…
// constants. Put it in a header of the dead-letter record, and the error's
// text beside it.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrInvalidAction):
		return ReasonInvalid
	case errors.Is(err, ErrUnknownSink):
		return ReasonUnknownSink
	case errors.Is(err, ErrRetriesExhausted):
		return ReasonExhausted
	default:
		return ReasonRejected
	}
}

// batchError is the error of a batch whose per-action errors are errs (nil
// when every action was accepted): one action's error as it is, several as
// a *BatchError.
func batchError(errs []error) error {
	switch {
	case errs == nil:
		return nil
	case len(errs) == 1:
		return errs[0]
	default:
		return &BatchError{Errs: errs}
	}
}
