package sinks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/action"
)

// Webhook request headers (see the package doc, "Webhook signatures").
const (
	HeaderIdempotencyKey = "Idempotency-Key"       // the action's id: receivers deduplicate by it
	HeaderSignature      = "X-Leadpulse-Signature" // sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
	HeaderTimestamp      = "X-Leadpulse-Timestamp" // Unix seconds when the request was signed
)

// DefaultSignatureTolerance is how old a signed request VerifySignature
// accepts by default: replays of older requests are refused.
const DefaultSignatureTolerance = 5 * time.Minute

// bodyExcerpt is how much of a refused request's reply goes into the error.
const bodyExcerpt = 512

// Webhook POSTs each action to a URL: the action record as JSON, or a Slack
// incoming-webhook message. One request per action; Write makes one attempt
// (the Dispatcher retries).
//
// Replies: 2xx delivered; 408, 425, 429 and 5xx transient (429 and 503 with
// their Retry-After, in seconds or as an HTTP date); any other status
// permanent, with the status and the start of the body in the reason
// (*StatusError). Network errors and timeouts are transient.
type Webhook struct {
	name     string
	url      string
	redacted string // url without credentials, query or path beyond its first segment
	format   string
	secret   []byte
	headers  http.Header
	timeout  time.Duration
	client   *http.Client
	own      bool // client made here: Close closes its idle connections
	now      func() time.Time
}

// NewWebhook returns the webhook sink called name, as cfg (validated, see
// Build) says. client nil: a client of its own; now nil: time.Now.
func NewWebhook(name string, cfg SinkConfig, client *http.Client, now func() time.Time) *Webhook {
	w := &Webhook{
		name:     name,
		url:      cfg.URL,
		redacted: redactURL(cfg.URL),
		format:   cfg.Format,
		timeout:  cfg.Timeout,
		client:   client,
		now:      now,
		headers:  http.Header{},
	}
	if cfg.Secret != "" {
		w.secret = []byte(cfg.Secret)
	}
	for k, v := range cfg.Headers {
		w.headers.Set(k, v)
	}
	if w.format == "" {
		w.format = defaults.Format
	}
	if w.timeout <= 0 {
		w.timeout = defaults.Timeout
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = max(cfg.Concurrency, defaults.Concurrency)
		w.client = &http.Client{
			Transport: tr,
			// A redirect would turn the POST into a GET (301, 302, 303) and
			// "deliver" nothing: answer with the 3xx, a permanent failure
			// that says to fix the url.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		w.own = true
	}
	return w
}

// MaxBatch is 1: a webhook sends one action per request.
func (w *Webhook) MaxBatch() int { return 1 }

// Write POSTs each action of the batch, one after the other.
func (w *Webhook) Write(ctx context.Context, batch []Action) error {
	if len(batch) == 1 {
		return w.post(ctx, &batch[0])
	}
	errs := make([]error, len(batch))
	failed := false
	for i := range batch {
		if errs[i] = w.post(ctx, &batch[i]); errs[i] != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			failed = true
		}
	}
	if failed {
		return &BatchError{Errs: errs}
	}
	return nil
}

// Close closes the idle connections of a client the sink made itself.
func (w *Webhook) Close(context.Context) error {
	if w.own {
		w.client.CloseIdleConnections()
	}
	return nil
}

// Body returns the request body of a, as the sink's format says.
func (w *Webhook) Body(a *Action) ([]byte, error) {
	if w.format == FormatSlack {
		return json.Marshal(slackMessage{Text: slackEscape(SummaryText(&a.Record))})
	}
	if a.JSON != nil {
		return a.JSON, nil
	}
	return json.Marshal(&a.Record)
}

type slackMessage struct {
	Text string `json:"text"`
}

// SummaryText is what a person reads about an action: its rendered message,
// or when it has none, "ACTION: TRIGGER fired for CONTACT (score N)".
func SummaryText(r *action.Record) string {
	if r.Message != "" {
		return r.Message
	}
	return fmt.Sprintf("%s: %s fired for %s (score %s)", r.Action, r.Trigger, r.Contact, strconv.FormatFloat(r.Score, 'f', -1, 64))
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to,
// so that text from contacts' traits cannot make links or mentions
// (<!channel>).
func slackEscape(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (w *Webhook) post(parent context.Context, a *Action) error {
	body, err := w.Body(a)
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: encode action %s: %w", w.redacted, a.Record.ID, err))
	}
	ctx, cancel := context.WithTimeout(parent, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: %w", w.redacted, err))
	}
	for k, v := range w.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "leadpulse")
	req.Header.Set(HeaderIdempotencyKey, a.Record.ID)
	if w.secret != nil {
		ts := w.now().Unix()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if parent.Err() != nil {
			return context.Cause(parent)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, which may hold a token
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return Transient(fmt.Errorf("webhook %s: no reply within the sink's timeout (%v): %w", w.redacted, w.timeout, err))
		}
		return Transient(fmt.Errorf("webhook %s: %w", w.redacted, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, bodyExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{URL: w.redacted, Status: resp.StatusCode, Body: strings.TrimSpace(string(excerpt))}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return &TransientError{Err: se, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), w.now())}
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code >= 500:
		return &TransientError{Err: se}
	default:
		return &PermanentError{Err: se}
	}
}

// ParseRetryAfter reads an HTTP Retry-After value: delay-seconds, or an
// HTTP date (then the wait is the date less now). It returns 0 when v is
// empty, unreadable, or in the past: the caller then uses its backoff.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Sign returns the X-Leadpulse-Signature value of a request with the given
// body, signed at ts (Unix seconds): "sha256=" and the hex HMAC-SHA256,
// keyed by secret, of the decimal ts, a ".", and the body.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrSignature is matched by the errors of VerifySignature.
var ErrSignature = errors.New("webhook signature does not verify")

// VerifySignature checks a received webhook request as its receiver should:
// h holds its X-Leadpulse-Timestamp and X-Leadpulse-Signature, body is the
// raw body as received. It refuses a signature that does not match, and a
// timestamp more than tolerance away from now (a replayed request);
// tolerance 0 means DefaultSignatureTolerance.
func VerifySignature(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	tsText, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if tsText == "" || sig == "" {
		return fmt.Errorf("%w: missing %s or %s header", ErrSignature, HeaderTimestamp, HeaderSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrSignature, HeaderTimestamp, tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, more than %v from now (%s): a replay, or a clock off", ErrSignature,
			time.Unix(ts, 0).UTC().Format(time.RFC3339), tolerance, now.UTC().Format(time.RFC3339))
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return fmt.Errorf("%w: the HMAC differs: check the secret, and that the body is verified byte for byte as received", ErrSignature)
	}
	return nil
}

// redactURL keeps the scheme, the host and the first path segment of u:
// incoming-webhook URLs carry their token in the path (Slack's
// /services/T…/B…/…) or the query.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable url)"
	}
	out := u.Scheme + "://" + u.Host
	path := strings.TrimPrefix(u.EscapedPath(), "/")
	if path == "" {
		return out
	}
	first, rest, _ := strings.Cut(path, "/")
	out += "/" + first
	if rest != "" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}
