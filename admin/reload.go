package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadpulse/leadpulse/rules"
)

// RulesSource is the rules file a process runs and reloads: on SIGHUP (the
// commands call Reload), on `POST /rules/reload`, and when the file changes
// (Watch). Every way goes through Reload, so they behave alike: a file that
// does not validate is refused with its problems and the running rules stay
// (SPEC §2); a valid one is handed to Apply (stream.Pipeline.SetRules).
type RulesSource struct {
	path  string
	apply func(*rules.Ruleset) error
	log   *slog.Logger
	count *prometheus.CounterVec

	mu      sync.Mutex // serialises reloads; guards the fields below
	version RulesVersion
	last    *ReloadResult
	refused string // hash of the last content refused, counted once
}

// RulesVersion identifies the rules running: the file, the SHA-256 of its
// content (the first 12 hex digits) and when it was loaded.
type RulesVersion struct {
	File     string `json:"file"`
	Hash     string `json:"hash"`
	LoadedAt string `json:"loaded_at"`
	Triggers int    `json:"triggers"`
	Actions  int    `json:"actions"`
	// Reloadable is false for rules that have no file (dev's bundled
	// example).
	Reloadable bool `json:"reloadable"`
}

// ReloadResult is the outcome of one reload.
type ReloadResult struct {
	// Result is "ok" (switched), "unchanged" (same content as running),
	// "invalid" (does not validate; Problems say why) or "error" (cannot
	// read the file, or the switch failed; Error says why).
	Result   string   `json:"result"`
	Via      string   `json:"via"` // sighup, file, api
	At       string   `json:"at"`
	Hash     string   `json:"hash,omitempty"`
	Problems []string `json:"problems,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// RulesSourceOptions configure NewRulesSource.
type RulesSourceOptions struct {
	// Path is the rules file; "" for rules without a file (Reload then
	// answers "error": nothing to reload from).
	Path string
	// Content is the running rules' file content (for its hash).
	Content []byte
	// Running are the rules running now.
	Running *rules.Ruleset
	// Apply switches the process to new rules. Required.
	Apply func(*rules.Ruleset) error
	// Registerer, when set, gets leadpulse_rules_reloads_total{result}.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// NewRulesSource returns the source of the running rules.
func NewRulesSource(o RulesSourceOptions) (*RulesSource, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &RulesSource{path: o.Path, apply: o.Apply, log: o.Logger}
	if o.Registerer != nil {
		s.count = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_rules_reloads_total",
			Help: "Rules reloads (SIGHUP, file change, POST /rules/reload), by result: ok, or invalid (the last valid rules keep running; a content refused again is counted once).",
		}, []string{"result"})
		if err := o.Registerer.Register(s.count); err != nil {
			return nil, err
		}
		s.count.WithLabelValues("ok")
		s.count.WithLabelValues("invalid")
	}
	s.version = versionOf(o.Running, o.Content, o.Path != "")
	return s, nil
}

func versionOf(rs *rules.Ruleset, content []byte, reloadable bool) RulesVersion {
	return RulesVersion{
		File: rs.File, Hash: hashOf(content), LoadedAt: time.Now().UTC().Format(time.RFC3339),
		Triggers: len(rs.Triggers), Actions: len(rs.Actions), Reloadable: reloadable,
	}
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Status returns the running rules' version and the last reload's result
// (nil before the first).
func (s *RulesSource) Status() (RulesVersion, *ReloadResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version, s.last
}

// Reload reads the file again and switches to it when it validates and
// differs from the running rules. via says what asked (sighup, file, api).
func (s *RulesSource) Reload(via string) ReloadResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := ReloadResult{Via: via, At: time.Now().UTC().Format(time.RFC3339)}
	defer func() { s.last = &res }()
	if s.path == "" {
		res.Result, res.Error = "error", "these rules were not loaded from a file (leadpulse dev without --rules): nothing to reload; start with --rules FILE"
		return res
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		res.Result, res.Error = "error", fmt.Sprintf("cannot read the rules file: %v; keeping the running rules", err)
		s.counted("invalid")
		s.log.Error("rules reload: cannot read the rules file; keeping the running rules", "via", via, "rules", s.path, "err", err)
		return res
	}
	res.Hash = hashOf(data)
	if res.Hash == s.version.Hash {
		res.Result = "unchanged"
		return res
	}
	rs, err := rules.Parse(s.path, data)
	if err != nil {
		res.Result = "invalid"
		if s.refused != res.Hash {
			s.refused = res.Hash
			s.counted("invalid")
		}
		var ve *rules.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				res.Problems = append(res.Problems, p.String())
			}
		} else {
			res.Problems = []string{err.Error()}
		}
		s.log.Error("rules reload: the rules file does not validate; keeping the last valid rules", "via", via, "rules", s.path, "problems", len(res.Problems))
		for _, p := range res.Problems {
			s.log.Error("rules reload: " + p)
		}
		return res
	}
	if err := s.apply(rs); err != nil {
		res.Result, res.Error = "error", "rules not switched: "+err.Error()
		s.log.Error("rules reload: rules not switched", "via", via, "err", err)
		return res
	}
	res.Result = "ok"
	s.counted("ok")
	s.version = versionOf(rs, data, true)
	s.log.Info("rules reloaded; each partition switches at its next batch", "via", via, "rules", s.path, "hash", res.Hash,
		"windows", len(rs.Windows), "triggers", len(rs.Triggers), "actions", len(rs.Actions))
	return res
}

func (s *RulesSource) counted(result string) {
	if s.count != nil {
		s.count.WithLabelValues(result).Inc()
	}
}

// Watch reloads the rules when the file changes, until ctx is done. It
// polls the file's size and modification time every interval (default 1s)
// and reloads once they have stayed the same for settle (default 500ms),
// so that an editor's several writes make one reload. A change of content
// only is needed: Reload skips a file whose hash is the running one.
//
// Polling rather than inotify (fsnotify): it needs no dependency, costs
// one stat a second, and follows the file however it is replaced — an
// editor's write-to-temp-and-rename and a Kubernetes ConfigMap's symlink
// swap both break an inotify watch on the file itself.
func (s *RulesSource) Watch(ctx context.Context, interval, settle time.Duration) {
	if s.path == "" {
		return
	}
	if interval <= 0 {
		interval = time.Second
	}
	if settle <= 0 {
		settle = 500 * time.Millisecond
	}
	type stamp struct {
		size int64
		mod  time.Time
		ok   bool
	}
	look := func() stamp {
		fi, err := os.Stat(s.path) // follows symlinks
		if err != nil {
			return stamp{}
		}
		return stamp{fi.Size(), fi.ModTime(), true}
	}
	seen := look()
	if s.changedSinceLoad() {
		// Changed between the load and this watch: reload at the first
		// tick, once settled, like any later change.
		seen = stamp{}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := look()
		if now == seen || !now.ok {
			continue
		}
		// Changed: wait until it settles.
		for {
			t := time.NewTimer(settle)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			again := look()
			if again == now {
				break
			}
			now = again
		}
		seen = now
		s.Reload("file")
	}
}

// changedSinceLoad reports whether the file's content is neither the
// running rules' nor the last content refused.
func (s *RulesSource) changedSinceLoad() bool {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false
	}
	h := hashOf(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	return h != s.version.Hash && h != s.refused
}
