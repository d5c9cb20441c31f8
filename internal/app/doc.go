// Package app is the composition layer that `leadpulse run`, `leadpulse
// dev` and `leadpulse bench` share: the metrics registry, the scoring
// pipeline with its topics, the dispatch stage through the sinks, the
// readiness check, the admin/metrics HTTP server and the demo producer.
// cmd/leadpulse keeps flags, messages and exit codes; the parts are wired
// here once, so that the three modes cannot drift.
package app
