package stream

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
)

// Metrics are the pipeline's Prometheus collectors; the package doc lists
// them. Make one per process with NewMetrics and share it between stages.
type Metrics struct {
	eventsIn       *prometheus.CounterVec // stage
	badEvents      *prometheus.CounterVec // stage, reason
	latency        prometheus.Histogram   // record timestamp → action acknowledged
	timerDelay     prometheus.Histogram   // due time → action acknowledged
	lag            *prometheus.GaugeVec   // topic, partition
	queueDepth     *prometheus.GaugeVec   // partition
	queueCap       prometheus.Gauge       //
	firings        *prometheus.CounterVec // trigger
	actions        *prometheus.CounterVec // action
	suppressed     prometheus.Counter     //
	storeCommits   *prometheus.CounterVec // result
	casRejections  prometheus.Counter     //
	skipped        prometheus.Counter     // records re-read whose contact already held them
	offsetCommits  *prometheus.CounterVec // stage, result
	batchDuration  prometheus.Histogram   //
	partitions     prometheus.Gauge       //
	pauses         prometheus.Counter     //
	produceErrors  *prometheus.CounterVec // topic
	deadLetterLost prometheus.Counter     //
	dispatchQueued *prometheus.GaugeVec   // sink
	eventsInStage  map[string]prometheus.Counter
	badByStage     map[string]map[event.Reason]prometheus.Counter
	rebalanceCount *prometheus.CounterVec // kind

	// Identity (SPEC §6) across partitions.
	links     prometheus.Counter     // accepted links
	merges    prometheus.Counter     // links that brought state
	conflicts *prometheus.CounterVec // kind
	handover  prometheus.Histogram   // link-request produced → answer applied
	parked    prometheus.Gauge       // users held behind a linking event
	forwarded prometheus.Counter     // events of retired anonymous ids forwarded to their user
	held      prometheus.Counter     // records held behind a parked user
	dropped   prometheus.Counter     // linking events not queued behind a late link (engine.MaxQueuedLinks)
	timeouts  prometheus.Counter     // hand-overs given up waiting for
}

// Stage label values.
const (
	stageIngest   = "ingest"
	stageScore    = "score"
	stageDispatch = "dispatch"
)

// ReasonMisrouted is the dead-letter reason of a record that the scoring
// stage found in another partition than murmur2 of its contact: its producer
// did not key it by contact with Kafka's default partitioner.
const ReasonMisrouted event.Reason = "misrouted"

// ReasonTooLarge is the dead-letter reason of a record whose value exceeds
// Config.MaxEventBytes, or that Kafka refused as too large; the dead letter
// keeps the first DeadLetterHeadBytes of the value.
const ReasonTooLarge event.Reason = "too_large"

// ReasonProduceFailed is the dead-letter reason of an input record whose
// keyed copy Kafka refused for another reason than its size (the error is in
// error.message).
const ReasonProduceFailed event.Reason = "produce_failed"

// NewMetrics makes the collectors and registers them with reg (nil: not
// registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_events_in_total",
			Help: "Records read from Kafka, by stage (ingest, score).",
		}, []string{"stage"}),
		badEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_events_bad_total",
			Help: "Bad input sent to the dead-letter topic, by stage and reason.",
		}, []string{"stage", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leadpulse_event_to_action_seconds",
			Help:    "From the Kafka timestamp of the event that caused an action to the action's acknowledgement by Kafka.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		timerDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leadpulse_timer_delay_seconds",
			Help:    "From a timer's due time (event time) to its action's acknowledgement by Kafka, for timers fired by the wall clock.",
			Buckets: []float64{.1, .25, .5, .75, 1, 1.5, 2, 5, 10, 30, 60},
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadpulse_consumer_lag_records",
			Help: "Records in the partition not yet applied and committed (high watermark minus next offset), by topic and partition.",
		}, []string{"topic", "partition"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadpulse_partition_queue_records",
			Help: "Records fetched and waiting for their partition's goroutine, by partition.",
		}, []string{"partition"}),
		queueCap: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "leadpulse_partition_queue_capacity_records",
			Help: "Records a partition queue holds before fetching that partition pauses.",
		}),
		firings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_trigger_firings_total",
			Help: "Trigger firings (past their cooldown), by trigger.",
		}, []string{"trigger"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_actions_produced_total",
			Help: "Action records acknowledged by Kafka on the actions topic, by action.",
		}, []string{"action"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadpulse_actions_suppressed_total",
			Help: "Actions not emitted: cooldown edges, false guards, caps reached.",
		}),
		storeCommits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_store_commits_total",
			Help: "State store commits, by result (ok, error, conflict).",
		}, []string{"result"}),
		casRejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadpulse_store_cas_rejections_total",
			Help: "Contact writes the store's compare-and-set rejected because it held newer state.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadpulse_records_skipped_total",
			Help: "Records read again (after a crash or rebalance) whose contact's committed state already held them: skipped, not applied twice.",
		}),
		offsetCommits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_offset_commits_total",
			Help: "Kafka offset commits, by stage and result (ok, error).",
		}, []string{"stage", "result"}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leadpulse_score_batch_seconds",
			Help:    "Time to apply one batch, hand its actions to the producer (not waiting for the acknowledgement) and commit store and offset.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "leadpulse_score_partitions",
			Help: "Partitions of the scoring stage assigned to this process.",
		}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadpulse_fetch_pauses_total",
			Help: "Times a full partition queue paused fetching (backpressure).",
		}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_produce_errors_total",
			Help: "Records Kafka did not acknowledge, by topic.",
		}, []string{"topic"}),
		dispatchQueued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadpulse_dispatch_queued_actions",
			Help: "Actions read and not yet settled (delivered, deduplicated or dead-lettered), by sink lane of the dispatch stage; \"\" is the lane of actions no sink takes.",
		}, []string{"sink"}),
		deadLetterLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadpulse_dead_letters_refused_total",
			Help: "Input records Kafka refused both as keyed records and as (cut) dead letters: logged and skipped.",
		}),
		rebalanceCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_partitions_rebalanced_total",
			Help: "Partitions assigned, revoked or lost, by stage and kind.",
		}, []string{"stage", "kind"}),
	}
	// Pre-declare the label values that are known, so that dashboards see
	// zeros rather than nothing.
	m.eventsInStage = map[string]prometheus.Counter{}
	m.badByStage = map[string]map[event.Reason]prometheus.Counter{}
	for _, s := range []string{stageIngest, stageScore, stageDispatch} {
		m.eventsInStage[s] = m.eventsIn.WithLabelValues(s)
		m.badByStage[s] = map[event.Reason]prometheus.Counter{}
		for _, r := range append(append([]event.Reason{}, event.Reasons...), ReasonMisrouted, ReasonTooLarge, ReasonProduceFailed) {
			m.badByStage[s][r] = m.badEvents.WithLabelValues(s, string(r))
		}
		for _, res := range []string{"ok", "error"} {
			m.offsetCommits.WithLabelValues(s, res)
		}
	}
	for _, res := range []string{"ok", "error", "conflict"} {
		m.storeCommits.WithLabelValues(res)
	}
	m.links = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadpulse_identity_links_total",
		Help: "Anonymous ids linked to a user (identity), with or without state.",
	})
	m.merges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadpulse_identity_merges_total",
		Help: "Links whose anonymous id had state, merged into the user's.",
	})
	m.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadpulse_identity_conflicts_total",
		Help: "Linking events with a refused link, by the kind of the first: merged_elsewhere, known, max_anonymous.",
	}, []string{"kind"})
	for _, k := range rules.ConflictKinds {
		m.conflicts.WithLabelValues(k.String())
	}
	m.handover = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "leadpulse_identity_handover_seconds",
		Help:    "From a link request produced by the user's partition to the anonymous id's answer applied there (merge or conflict).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.parked = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "leadpulse_identity_parked_contacts",
		Help: "Users whose events wait behind a linking event for the anonymous id's owner to answer.",
	})
	m.forwarded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadpulse_identity_forwarded_total",
		Help: "Events carrying only a merged anonymous id, forwarded to the partition of its user.",
	})
	m.held = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadpulse_identity_held_events_total",
		Help: "Records of a parked user (read after its linking event) held until the hand-over completes.",
	})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadpulse_identity_links_dropped_total",
		Help: "Linking events of a user whose late hand-over already had " + strconv.Itoa(engine.MaxQueuedLinks) + " links queued behind it: their ids were not linked (they link at the user's next event carrying them).",
	})
	m.timeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadpulse_identity_handover_timeouts_total",
		Help: "Linking events applied without their merge after identity handover_timeout; the merge follows when the answer comes.",
	})
	if reg != nil {
		for _, c := range m.collectors() {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.eventsIn, m.badEvents, m.latency, m.timerDelay, m.lag, m.queueDepth, m.queueCap,
		m.firings, m.actions, m.suppressed, m.storeCommits, m.casRejections, m.skipped, m.offsetCommits, m.batchDuration,
		m.partitions, m.pauses, m.produceErrors, m.deadLetterLost, m.dispatchQueued, m.rebalanceCount,
		m.links, m.merges, m.conflicts, m.handover, m.parked, m.forwarded, m.held, m.dropped, m.timeouts}
}

func (m *Metrics) bad(stage string, r event.Reason) {
	if c, ok := m.badByStage[stage][r]; ok {
		c.Inc()
		return
	}
	m.badEvents.WithLabelValues(stage, string(r)).Inc()
}

func partLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }

// kgoLogger sends franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	k.l.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}
