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
//	DELETE /contacts/{id}  erase everything held about the contact; 404 when
//	                       it is not stored
//	                       firings, score chart and merged ids (the page's view)
//	GET    /contacts/{id}/why/{trigger}  why the trigger did (not) fire (rules.WhyView)
//	GET    /contacts?email=ADDR  the contact ids whose email trait is ADDR
//	GET    /feed           live feed of actions, Server-Sent Events (?trigger=, ?sink=)
//	GET    /rules          the running rules' version, triggers, last reload
//	POST   /rules/reload   reload the rules file now (422 with the problems
//	                       when it does not validate; the running rules stay)
//	GET    /ui/            the web UI: contact explorer and live feed (one
//	                       page, embedded; GET / redirects to it)
//	GET    /debug/pprof/   Go runtime profiles (net/http/pprof: heap, allocs,
//	                       goroutine, profile, trace), with Options.Profiling
//
// When Options.Token is set, every route but /metrics, /healthz, /readyz
// and the page itself requires the header `Authorization: Bearer TOKEN`
// (401 otherwise), so that probes and scrapers need no secret. /feed also
// takes the token as ?token=TOKEN, for EventSource clients, which cannot
// set headers (the page itself streams with fetch and the header). Errors
// are JSON: {"error": "…"}.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
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
	// History feeds the timeline's events and firings, the email search
	// and the live feed. default: nil (empty timelines, /feed answers 501)
	History *History
	// RulesSource serves /rules and /rules/reload. default: nil (501)
	RulesSource *RulesSource
	// Profiling serves the Go runtime's profiles under /debug/pprof/
	// (net/http/pprof; `go tool pprof http://ADDR/debug/pprof/heap`),
	// behind Token like the admin API: a profile shows what the process
	// holds and spends, e.g. the broker's log in dev. default: false (404)
	Profiling bool
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
	mux.HandleFunc("GET /contacts/{id}/timeline", h.auth(h.timeline))
	mux.HandleFunc("GET /contacts/{id}/why/{trigger}", h.auth(h.why))
	mux.HandleFunc("GET /contacts", h.auth(h.search))
	mux.HandleFunc("GET /feed", h.authQuery(h.feed))
	mux.HandleFunc("GET /rules", h.auth(h.rulesStatus))
	mux.HandleFunc("POST /rules/reload", h.auth(h.rulesReload))
	if o.Profiling {
		// Registered on this mux, not http.DefaultServeMux (which the
		// package's init fills and nothing here serves).
		mux.HandleFunc("GET /debug/pprof/", h.auth(pprof.Index))
		mux.HandleFunc("GET /debug/pprof/cmdline", h.auth(pprof.Cmdline))
		mux.HandleFunc("GET /debug/pprof/profile", h.auth(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", h.auth(pprof.Symbol))
		mux.HandleFunc("GET /debug/pprof/trace", h.auth(pprof.Trace))
	}
	mux.Handle("GET /ui/", uiHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
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
	return h.authWith(next, false)
}

// authQuery is auth that also takes ?token=TOKEN.
func (h *handler) authQuery(next http.HandlerFunc) http.HandlerFunc {
	return h.authWith(next, true)
}

func (h *handler) authWith(next http.HandlerFunc, query bool) http.HandlerFunc {
	if h.o.Token == "" {
		return next
	}
	want := []byte(h.o.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		got := bearer(r.Header.Get("Authorization"))
		if q := r.URL.Query().Get("token"); query && q != "" && r.Header.Get("Authorization") == "" {
			got = []byte(q)
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
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
	// Stored says where the state lives: with Redis, the Kafka position of
	// its last write, its version, remaining TTL and size; in memory (dev),
	// its partition.
	Stored StoredInfo `json:"stored"`
}

// StoredInfo is the storage side of a contact.
type StoredInfo struct {
	Store     string `json:"store"` // "redis", or "memory" (leadpulse dev without --redis)
	Partition int32  `json:"partition"`
	// Offset is the position of the last accepted write in Partition;
	// absent for the memory store, which keeps none.
	Offset  *int64 `json:"offset,omitempty"`
	Version int64  `json:"version,omitempty"`
	TTL     string `json:"ttl,omitempty"` // "" when unknown, "none" when it never expires
	Bytes   int    `json:"bytes,omitempty"`
}

func (h *handler) getContact(w http.ResponseWriter, r *http.Request) {
	if h.o.Contacts == nil || h.o.Rules == nil {
		writeError(w, http.StatusNotImplemented, "this process has no contact store")
		return
	}
	id := r.PathValue("id")
	at, ok := parseAt(w, r)
	if !ok {
		return
	}
	st, err := h.o.Contacts.Inspect(r.Context(), id)
	if err != nil {
		h.fail(w, "inspect", id, err)
		return
	}
	resp := ContactResponse{ContactView: h.o.Rules().Inspect(st.Contact, at), Stored: storedInfo(st)}
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
	// A contact that is not stored is 404, like GET: nothing to erase, and
	// a mistyped id does not pass for an erasure. Only a definite "not
	// stored" answers so; when the store cannot tell (the partition is
	// elsewhere, the pipeline is starting), the erasure goes ahead, since
	// it is ordered with the contact's events wherever they are.
	if _, err := h.o.Contacts.Inspect(ctx, id); errors.Is(err, state.ErrNotFound) {
		writeError(w, http.StatusNotFound, "contact "+quote(id)+" is not stored (never seen, erased, or expired): nothing to erase")
		return
	}
	applied, err := h.o.Contacts.Forget(ctx, id)
	if err != nil {
		h.fail(w, "forget", id, err)
		return
	}
	if h.o.History != nil {
		h.o.History.Forget(id)
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

// parseAt reads the optional ?at=RFC3339 of a contact view: the time the
// scores are computed at (state.NoTime, the contact's latest event, when
// absent). On a bad value it answers 400 and returns false.
func parseAt(w http.ResponseWriter, r *http.Request) (int64, bool) {
	s := r.URL.Query().Get("at")
	if s == "" {
		return state.NoTime, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		writeError(w, http.StatusBadRequest, "at="+s+" is not an RFC 3339 time (e.g. 2026-03-02T09:00:00Z)")
		return 0, false
	}
	return t.UnixNano(), true
}
