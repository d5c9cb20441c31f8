// Package action holds the action record (SPEC §3), the one value that
// flows from the rules evaluator through the stream runtime to the sinks.
// It is a leaf package: the sinks and the stream runtime read actions
// without importing the rules compiler.
package action

// Record is one emitted action, as SPEC §3 defines it: a line of replay
// output, a record value on the actions topic, a webhook body.
type Record struct {
	ID         string             `json:"id"`
	Action     string             `json:"action"`
	Trigger    string             `json:"trigger"`
	Contact    string             `json:"contact"`
	At         string             `json:"at"` // RFC 3339, UTC
	Score      float64            `json:"score"`
	Fit        float64            `json:"fit"`
	Engagement float64            `json:"engagement"`
	Stage      string             `json:"stage"`
	Message    string             `json:"message,omitempty"`
	Sink       string             `json:"sink,omitempty"` // the sink chosen by `sink`/`route`
	Explain    map[string]float64 `json:"explain"`

	AtNanos int64 `json:"-"`
}
