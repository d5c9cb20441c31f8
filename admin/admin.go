// Package admin is the HTTP side of a leadpulse process (`leadpulse run`
// and `leadpulse dev`): metrics, health, readiness, and the admin API on
// contacts.
//
//	GET    /metrics        Prometheus exposition of the registry given
//	GET    /healthz        200 "ok" while the process serves
//	GET    /readyz         200 "ready", or 503 with the reason (Options.Ready)
//	GET    /contacts/{id}  the contact as the rules see it (rules.ContactView) and
//	                       where it is stored; ?at=RFC3339 computes the scores
//	                       at that time (default: the contact's latest event)
//	DELETE /contacts/{id}  erase everything held about the contact
//
// When Options.Token is set, /contacts/… requires the header
// `Authorization: Bearer TOKEN` (401 otherwise); /metrics, /healthz and
// /readyz never do, so that probes and scrapers need no secret. Errors are
// JSON: {"error": "…"}.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// ErrUnavailable, wrapped by a Contacts error, makes the API answer 503
// Service Unavailable (the store or the pipeline is not there yet).
var ErrUnavailable = errors.New("unavailable")

// Contacts is where the admin API finds and erases contacts (the
// commands adapt stream.Pipeline to it).
type Contacts interface {
	// Inspect returns a copy of the contact's stored state; an error
	// matching state.ErrNotFound when there is none.
	Inspect(ctx context.Context, id string) (*state.Stored, error)
	// Forget erases the contact. applied is false when the erasure is
	// queued but not yet done (it will be).
	Forget(ctx context.Context, id string) (applied bool, err error)
}

// Options configure Handler. Gatherer is required.
type Options struct {
	// Gatherer is what /metrics exposes (a *prometheus.Registry).
	Gatherer prometheus.Gatherer
	// Ready returns nil when the process is ready to take traffic, or the
	// reason it is not; it is called with a context bounded by ReadyTimeout.
	// default: always ready
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds one Ready call. default: 2s
	ReadyTimeout time.Duration
	// Contacts serves /contacts/…. default: nil (/contacts answers 501)
	Contacts Contacts
	// Rules returns the rules the contact views are computed with (the ones
	// running). Required with Contacts.
	Rules func() *rules.Ruleset
	// Token, when set, is required as a bearer token by /contacts/….
	// default: "" (no authentication: bind to loopback)
	Token string
	// ForgetTimeout bounds how long DELETE waits for the erasure to be
	// applied before it answers 202 Accepted. default: 10s
	ForgetTimeout time.Duration
	// Logger receives one line per erasure and per failed request.
	// default: slog.Default()
	Logger *slog.Logger
}

// Handler returns the admin HTTP handler.
func Handler(o Options) http.Handler {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Second
	}
	if o.ForgetTimeout <= 0 {
		o.ForgetTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.HandleFunc("GET /contacts/{id}", h.auth(h.getContact))
	mux.HandleFunc("DELETE /contacts/{id}", h.auth(h.deleteContact))
	return mux
}

type handler struct{ o Options }

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	if h.o.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), h.o.ReadyTimeout)
		defer cancel()
		if err := h.o.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	io.WriteString(w, "ready\n")
}

func (h *handler) auth(next http.HandlerFunc) http.HandlerFunc {
	if h.o.Token == "" {
		return next
	}
	want := []byte(h.o.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare(bearer(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="leadpulse admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer TOKEN (admin_token, LEADPULSE_ADMIN_TOKEN; `leadpulse contact --token`)")
			return
		}
		next(w, r)
	}
}

// bearer returns the token of an Authorization header of the Bearer
// scheme, or nil. The scheme is matched case-insensitively (RFC 9110,
// 11.1: "bearer", "BEARER"), and spaces before the token are skipped.
func bearer(h string) []byte {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	return []byte(strings.TrimLeft(token, " "))
}

// ContactResponse is the body of GET /contacts/{id}.
type ContactResponse struct {
	rules.ContactView
	// Stored says where the state lives: the Kafka position of its last
	// write, and with Redis its version, remaining TTL and size.
	Stored StoredInfo `json:"stored"`
}

// StoredInfo is the storage side of a contact.
type StoredInfo struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Version   int64  `json:"version,omitempty"`
	TTL       string `json:"ttl,omitempty"` // "" when unknown, "none" when it never expires
	Bytes     int    `json:"bytes,omitempty"`
}

func (h *handler) getContact(w http.ResponseWriter, r *http.Request) {
	if h.o.Contacts == nil || h.o.Rules == nil {
		writeError(w, http.StatusNotImplemented, "this process has no contact store")
		return
	}
	id := r.PathValue("id")
	at := state.NoTime
	if s := r.URL.Query().Get("at"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "at="+s+" is not an RFC 3339 time (e.g. 2026-03-02T09:00:00Z)")
			return
		}
		at = t.UnixNano()
	}
	st, err := h.o.Contacts.Inspect(r.Context(), id)
	if err != nil {
		h.fail(w, "inspect", id, err)
		return
	}
	resp := ContactResponse{
		ContactView: h.o.Rules().Inspect(st.Contact, at),
		Stored:      StoredInfo{Partition: st.Pos.Partition, Offset: st.Pos.Offset, Version: st.Version, Bytes: st.Size},
	}
	switch {
	case st.TTL < 0:
		resp.Stored.TTL = "none"
	case st.TTL > 0:
		resp.Stored.TTL = st.TTL.Round(time.Second).String()
	}
	writeJSON(w, http.StatusOK, resp)
}

// ForgetResponse is the body of DELETE /contacts/{id}: 200 when erased,
// 202 when queued (it will be applied when the partition's owner reaches
// it).
type ForgetResponse struct {
	Contact string `json:"contact"`
	Status  string `json:"status"` // "erased" or "queued"
}

func (h *handler) deleteContact(w http.ResponseWriter, r *http.Request) {
	if h.o.Contacts == nil {
		writeError(w, http.StatusNotImplemented, "this process has no contact store")
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), h.o.ForgetTimeout)
	defer cancel()
	applied, err := h.o.Contacts.Forget(ctx, id)
	if err != nil {
		h.fail(w, "forget", id, err)
		return
	}
	if !applied {
		h.o.Logger.Info("admin: contact erasure queued", "contact", id, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusAccepted, ForgetResponse{Contact: id, Status: "queued"})
		return
	}
	h.o.Logger.Info("admin: contact erased", "contact", id, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, ForgetResponse{Contact: id, Status: "erased"})
}

func (h *handler) fail(w http.ResponseWriter, op, id string, err error) {
	switch {
	case errors.Is(err, state.ErrNotFound):
		writeError(w, http.StatusNotFound, "contact "+quote(id)+" is not stored (never seen, erased, or expired)")
	case errors.Is(err, ErrUnavailable) || errors.Is(err, state.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		h.o.Logger.Warn("admin: "+op+" failed", "contact", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		h.o.Logger.Warn("admin: "+op+" failed", "contact", id, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{strings.TrimSpace(msg)})
}
