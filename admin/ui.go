package admin

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// The web UI is one page with its script and style, embedded in the binary:
// no external assets, no CDN, no build step.
//
//go:embed ui
var uiFiles embed.FS

func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		// Everything the page loads comes from this server.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// Timeline is the body of GET /contacts/{id}/timeline: everything the page
// shows of one contact.
type Timeline struct {
	ContactResponse
	// Events are the last events applied (oldest first) and Firings the
	// last actions emitted, as this process recorded them (History).
	Events  []HistoryEvent   `json:"recent_events"`
	Firings []rules.Record   `json:"recent_firings"`
	Chart   rules.ScoreChart `json:"chart"`
	// Email is the contact's email trait, if any.
	Email string `json:"email,omitempty"`
	// History is what this process records beside the state (config
	// ui.history): "events", "actions" (no recent events, no awards in
	// the chart) or "off".
	History string `json:"history"`
}

// chartPoints is the number of samples per part of the chart.
const chartPoints = 120

func (h *handler) loadContact(w http.ResponseWriter, r *http.Request) (*state.Stored, *rules.Ruleset, bool) {
	if h.o.Contacts == nil || h.o.Rules == nil {
		writeError(w, http.StatusNotImplemented, "this process has no contact store")
		return nil, nil, false
	}
	id := r.PathValue("id")
	st, err := h.o.Contacts.Inspect(r.Context(), id)
	if err != nil {
		h.fail(w, "inspect", id, err)
		return nil, nil, false
	}
	return st, h.o.Rules(), true
}

func (h *handler) timeline(w http.ResponseWriter, r *http.Request) {
	st, rs, ok := h.loadContact(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	var hist ContactHistory
	records := RecordsNothing
	if h.o.History != nil {
		hist = h.o.History.Contact(id)
		records = h.o.History.Records()
	} else {
		hist = ContactHistory{Events: []HistoryEvent{}, Firings: []rules.Record{}}
	}
	tl := Timeline{
		ContactResponse: ContactResponse{
			ContactView: rs.Inspect(st.Contact, state.NoTime),
			Stored:      storedInfo(st),
		},
		Events:  hist.Events,
		Firings: hist.Firings,
		// Inspect bound the contact to rs already; Chart works on it too.
		Chart:   rs.Chart(st.Contact, hist.Awards, chartPoints),
		History: records,
	}
	if e, ok := tl.Traits["email"].(string); ok {
		tl.Email = e
	}
	writeJSON(w, http.StatusOK, tl)
}

func (h *handler) why(w http.ResponseWriter, r *http.Request) {
	st, rs, ok := h.loadContact(w, r)
	if !ok {
		return
	}
	at, ok := parseAt(w, r)
	if !ok {
		return
	}
	v, err := rs.Why(st.Contact, r.PathValue("trigger"), at)
	var nt *rules.ErrNoTrigger
	if errors.As(err, &nt) {
		ids := make([]string, len(rs.Triggers))
		for i, t := range rs.Triggers {
			ids[i] = t.ID
		}
		writeError(w, http.StatusNotFound, err.Error()+"; the triggers are: "+strings.Join(ids, ", "))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// SearchResponse is the body of GET /contacts?email=.
type SearchResponse struct {
	IDs []string `json:"ids"`
	// Note says where the search looked.
	Note string `json:"note"`
}

func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.URL.Query().Get("email"))
	if email == "" {
		writeError(w, http.StatusBadRequest, "give ?email=ADDRESS (for a contact id, GET /contacts/{id})")
		return
	}
	resp := SearchResponse{IDs: []string{}, Note: "searched the email traits of the contacts this process applied events to since it started (History)"}
	if h.o.History == nil || h.o.History.Records() != RecordsEvents {
		resp.Note = "this process does not record events (config ui.history), so it knows no email traits: search by contact id"
	} else {
		if id, ok := h.o.History.ByEmail(email); ok {
			resp.IDs = append(resp.IDs, id)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) feed(w http.ResponseWriter, r *http.Request) {
	if h.o.History == nil {
		writeError(w, http.StatusNotImplemented, "this process has no live feed")
		return
	}
	h.o.History.Feed().serve(w, r)
}

// RulesResponse is the body of GET /rules.
type RulesResponse struct {
	Version    RulesVersion  `json:"version"`
	LastReload *ReloadResult `json:"last_reload"`
	Triggers   []string      `json:"triggers"`
	Sinks      []string      `json:"sinks"`
}

func (h *handler) rulesStatus(w http.ResponseWriter, _ *http.Request) {
	if h.o.RulesSource == nil || h.o.Rules == nil {
		writeError(w, http.StatusNotImplemented, "this process has no rules source")
		return
	}
	v, last := h.o.RulesSource.Status()
	rs := h.o.Rules()
	resp := RulesResponse{Version: v, LastReload: last, Triggers: []string{}, Sinks: []string{}}
	for _, t := range rs.Triggers {
		resp.Triggers = append(resp.Triggers, t.ID)
	}
	seen := map[string]bool{}
	for _, a := range rs.Actions {
		for _, n := range a.Sinks() {
			if !seen[n] {
				seen[n] = true
				resp.Sinks = append(resp.Sinks, n)
			}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) rulesReload(w http.ResponseWriter, r *http.Request) {
	if h.o.RulesSource == nil {
		writeError(w, http.StatusNotImplemented, "this process has no rules source")
		return
	}
	res := h.o.RulesSource.Reload("api")
	h.o.Logger.Info("admin: rules reload asked", "result", res.Result, "remote", r.RemoteAddr)
	code := http.StatusOK
	switch res.Result {
	case "invalid":
		code = http.StatusUnprocessableEntity
	case "error":
		code = http.StatusConflict
	}
	writeJSON(w, code, res)
}

// storedInfo says where and how a contact is stored: the memory store has
// no position to show, Redis has the last accepted write's.
func storedInfo(st *state.Stored) StoredInfo {
	var s StoredInfo
	if st.Memory {
		s = StoredInfo{Store: "memory", Partition: st.Pos.Partition}
	} else {
		off := st.Pos.Offset
		s = StoredInfo{Store: "redis", Partition: st.Pos.Partition, Offset: &off, Version: st.Version, Bytes: st.Size}
	}
	switch {
	case st.TTL < 0:
		s.TTL = "none"
	case st.TTL > 0:
		s.TTL = st.TTL.Round(time.Second).String()
	}
	return s
}
