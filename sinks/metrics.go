package sinks

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// unrouted is the sink label of actions no sink took (reason unknown-sink,
// invalid).
const unrouted = "unrouted"

// metrics are the Dispatcher's collectors; the package doc lists them.
type metrics struct {
	delivered    *prometheus.CounterVec   // sink
	retried      *prometheus.CounterVec   // sink
	failed       *prometheus.CounterVec   // sink, kind
	deadLettered *prometheus.CounterVec   // sink, reason
	duplicates   *prometheus.CounterVec   // sink
	latency      *prometheus.HistogramVec // sink
	inFlight     *prometheus.GaugeVec     // sink
	dedupeErrors *prometheus.CounterVec   // op
}

// routeMetrics are one sink's collectors, curried once.
type routeMetrics struct {
	delivered, retried, duplicates prometheus.Counter
	transient, permanent           prometheus.Counter
	latency                        prometheus.Observer
	inFlight                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_sink_delivered_total",
			Help: "Actions delivered, by sink.",
		}, []string{"sink"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_sink_retried_total",
			Help: "Retries of actions after a transient failure, by sink.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_sink_failed_total",
			Help: "Failed delivery attempts (one per action and attempt), by sink and kind (transient: retried; permanent: dead-lettered).",
		}, []string{"sink", "kind"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_sink_dead_lettered_total",
			Help: "Actions sent to the dead letter, by sink (unrouted: none took it) and reason (rejected, retries-exhausted, unknown-sink, invalid).",
		}, []string{"sink", "reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_sink_duplicates_total",
			Help: "Actions not delivered because their id was already delivered, by sink.",
		}, []string{"sink"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadpulse_sink_delivery_seconds",
			Help:    "Time from Dispatch to delivery of an action, retries and rate limit waits included, by sink.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"sink"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadpulse_sink_in_flight_actions",
			Help: "Actions the dispatcher holds for a sink: waiting for a slot or the rate limit, being written, or waiting to retry.",
		}, []string{"sink"}),
		dedupeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadpulse_sink_dedupe_errors_total",
			Help: "Failed calls to the delivered-ids store, by op (lookup: retried; remember: the action may be delivered again if replayed).",
		}, []string{"op"}),
	}
	for _, op := range []string{"lookup", "remember"} {
		m.dedupeErrors.WithLabelValues(op)
	}
	for _, r := range []string{ReasonUnknownSink, ReasonInvalid} {
		m.deadLettered.WithLabelValues(unrouted, r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.delivered, m.retried, m.failed, m.deadLettered, m.duplicates, m.latency, m.inFlight, m.dedupeErrors} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, errors.New("sinks: the dispatcher's metrics are already registered: make one Dispatcher per registry")
				}
				return nil, err
			}
		}
	}
	return m, nil
}

// route returns the collectors of the sink called name, with every series
// it can have made (at zero), so dashboards see the sink before its first
// action.
func (m *metrics) route(name string) routeMetrics {
	for _, r := range []string{ReasonRejected, ReasonExhausted} {
		m.deadLettered.WithLabelValues(name, r)
	}
	return routeMetrics{
		delivered:  m.delivered.WithLabelValues(name),
		retried:    m.retried.WithLabelValues(name),
		duplicates: m.duplicates.WithLabelValues(name),
		transient:  m.failed.WithLabelValues(name, "transient"),
		permanent:  m.failed.WithLabelValues(name, "permanent"),
		latency:    m.latency.WithLabelValues(name),
		inFlight:   m.inFlight.WithLabelValues(name),
	}
}
