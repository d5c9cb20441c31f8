package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/traffic"
)

// ErrConfig is matched (errors.Is) by every error about an impossible or
// contradictory Config: fix the setting the message names.
var ErrConfig = errors.New("bench: invalid configuration")

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// Config is one bench run. The zero value is the representative run of
// `make bench`: 300,000 keyed B2B events over 10,000 contacts drained as fast
// as possible, then 5 s of open-loop traffic at 5,000 events/s, through the
// embedded broker and the memory store with the bundled B2B rules.
type Config struct {
	// ---- load ----

	// Contacts is the number of simulated visitors (traffic.Config.Contacts).
	// default: 10_000
	Contacts int
	// Zipf skews the choice of contact: 0 is uniform, s > 1 picks contact k
	// with probability ∝ 1/(k+1)^s (traffic.Config.Zipf). default: 0
	Zipf float64
	// Mix is the kind of site: "b2b" or "ecommerce" (traffic.Config.Mix).
	// The default rules are the B2B example's; with "ecommerce" give Rules
	// (examples/ecommerce.yaml). default: "b2b"
	Mix string
	// AnonymousShare is the share of contacts that never identify
	// (traffic.Config.AnonymousShare). default: 0.6; negative means 0
	AnonymousShare float64
	// Seed seeds the generator. default: 1
	Seed int64
	// Lifetime is visitor turnover (traffic.Config.Lifetime): a simulated
	// visitor leaves after about this many events (exponentially
	// distributed, at the end of a session) and a new visitor with a fresh
	// id takes its place, so the live population stays at Contacts while
	// new visitors keep arriving, about one per Lifetime events, as on a
	// real site. Without turnover the same Contacts visitors send every
	// event of a long phase and use up what their journeys can fire
	// (cooldowns, caps): at 5,000 events/s over 10,000 contacts the actions
	// per event fell tenfold within minutes, and a phase could not collect
	// Samples actions. With it the actions per event stay level (Phase.ByMinute).
	// The store keeps the contacts of the visitors who left, as a real
	// store does, so it grows by about one contact (two for a visitor who
	// identified) per Lifetime events: State.Contacts. default:
	// DefaultLifetime; negative turns turnover off.
	Lifetime int
	// Unkeyed produces records without a key, so that the ingest stage
	// (decode, key by contact, re-produce) runs. default: false — records
	// are keyed by contact with Kafka's default partitioner (murmur2) and
	// the scoring stage reads them directly (stream.Config.InputKeyed).
	Unkeyed bool
	// NoTransactions runs the ingest stage without Kafka transactions
	// (stream.Config.NoTransactions), to measure what they cost; it matters
	// only with Unkeyed. default: false — transactions, as in production
	NoTransactions bool
	// NoMerge runs the rules with identity.merge false (SPEC §6): no links,
	// no hand-overs between partitions, to measure what merging costs.
	// default: false — the rules' own identity section
	NoMerge bool

	// Events is the size of the throughput phase: this many events are
	// produced first, then the pipeline starts and drains them as fast as it
	// can; the raw consume ceiling reads the same records. default: 300_000;
	// negative skips the phase.
	Events int
	// Rates are the offered rates (events/s) of the latency phases, run one
	// after the other in the same pipeline: open loop, Poisson arrivals,
	// each event stamped with its scheduled send time. default: [5000]; a
	// single 0 (or negative) skips the latency phases.
	Rates []float64
	// Duration is the length of each latency phase. default: 5s
	Duration time.Duration
	// Samples, when above 0, lengthens each latency phase beyond Duration,
	// a second at a time, until it has this many samples of each latency:
	// events (event → state applied) and actions (event → action read); at
	// most 10 minutes. A p99 needs about 10,000. With few contacts the
	// actions per event fall as the contacts use up their triggers
	// (cooldowns, caps) unless visitors come and go (Lifetime, on by
	// default). default: 0 (Duration)
	Samples int

	// ---- where ----

	// Brokers are the seed brokers of an external Kafka; the bench creates
	// its own topics there (named bench-<run>-*) and deletes them at the
	// end. default: none — an embedded broker (franz-go's kfake) listening
	// on 127.0.0.1 over TCP in this process.
	Brokers []string
	// Redis is the host:port of a Redis for contact state; the bench writes
	// under its own key prefix (lpbench-<run>) and erases it at the end.
	// default: "" — the in-memory store.
	Redis string
	// Rules is the rules file's content. default: the bundled
	// examples/b2b-saas.yaml
	Rules []byte
	// RulesName names Rules in output. default: the bundled file's path
	RulesName string
	// RuleCopies scales the rules: every scoring rule (engagement and fit)
	// and every trigger appears this many times with distinct ids (see
	// ScaleRules). default: 1
	RuleCopies int

	// ---- pipeline ----

	// Partitions of every topic the bench creates. default: 6
	Partitions int32
	// BatchRecords is stream.Config.BatchRecords: the most records a
	// partition applies per produce/commit round. default: 1000
	BatchRecords int

	// FetchMaxWait is stream.Config.FetchMaxWait: how long the broker holds
	// a fetch of partitions that have no new data. default: the pipeline's
	// own default (1s)
	FetchMaxWait time.Duration

	// ---- output ----

	// Log receives progress lines (phase starts and ends); the pipeline's
	// own logs go there at warning level. default: discarded
	Log io.Writer
	// CPUProfile, when set, is written with a CPU profile of the measured
	// phases (the drain and the latency phases; not the preload nor the
	// ceilings). default: none
	CPUProfile string
	// Trace, when set, is written with an execution trace of the measured
	// phases (go tool trace; -pprof=sync, net or sched show where the
	// goroutines wait). default: none
	Trace string
	// MemProfile, when set, is written with a heap profile (allocations
	// since the start, by site) at the end of the measured phases.
	// default: none
	MemProfile string
}

// Defaults of Config.
const (
	DefaultEvents     = 300_000
	DefaultRate       = 5000
	DefaultDuration   = 5 * time.Second
	DefaultContacts   = 10_000
	DefaultPartitions = 6
	DefaultBatch      = 1000
	// DefaultLifetime is the mean events a simulated visitor sends before
	// leaving (Config.Lifetime): about eight visits of a few pages. Over
	// 10,000 contacts at 5,000 events/s, 120 new visitors a second.
	DefaultLifetime = 40
)

func (c Config) validate() (Config, error) {
	if c.Contacts == 0 {
		c.Contacts = DefaultContacts
	}
	if c.Contacts < 0 {
		return c, configError("contacts %d: give the number of simulated visitors, 1 or more", c.Contacts)
	}
	if c.Zipf < 0 {
		return c, configError("zipf %v: 0 for uniform, or a skew above 1", c.Zipf)
	}
	switch c.Mix {
	case "":
		c.Mix = traffic.MixB2B
	case traffic.MixB2B, traffic.MixEcommerce:
	default:
		return c, configError("mix %q: want %q or %q", c.Mix, traffic.MixB2B, traffic.MixEcommerce)
	}
	if c.AnonymousShare > 1 {
		return c, configError("anonymous share %v: a share of contacts, 0 to 1", c.AnonymousShare)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Events == 0 {
		c.Events = DefaultEvents
	}
	if c.Events < 0 {
		c.Events = 0
	}
	switch {
	case len(c.Rates) == 0:
		c.Rates = []float64{DefaultRate}
	case len(c.Rates) == 1 && c.Rates[0] <= 0:
		c.Rates = nil
	default:
		for _, r := range c.Rates {
			if r <= 0 {
				return c, configError("rate %v in a list of rates: every rate must be above 0 (a single 0 skips the latency phases)", r)
			}
		}
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Duration < 100*time.Millisecond {
		return c, configError("duration %v: each latency phase needs at least 100ms", c.Duration)
	}
	if c.Samples < 0 {
		return c, configError("samples %d: want 0 (phases of --duration) or the samples each latency phase should give", c.Samples)
	}
	if c.Events == 0 && len(c.Rates) == 0 {
		return c, configError("both phases are skipped (no events for the throughput phase, rate 0 for the latency phases): nothing to measure; keep one of them")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return c, configError("brokers: an empty address; list host:port of one or more brokers")
		}
	}
	if c.RuleCopies == 0 {
		c.RuleCopies = 1
	}
	if c.RuleCopies < 0 || c.RuleCopies > 1000 {
		return c, configError("rule copies %d: want 1 to 1000", c.RuleCopies)
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Partitions < 0 {
		return c, configError("partitions %d: want 1 or more", c.Partitions)
	}
	if c.BatchRecords == 0 {
		c.BatchRecords = DefaultBatch
	}
	if c.BatchRecords < 0 {
		return c, configError("batch %d: want 1 or more records", c.BatchRecords)
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c, nil
}

// logger is the pipeline's logger: warnings and errors only, so that a bench
// run prints its own progress and not the pipeline's.
func (c *Config) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
