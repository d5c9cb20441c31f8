// Package event decodes and validates the tracking events leadpulse consumes
// (SPEC §1): Segment-spec objects as JSON or msgpack, turned into one typed
// Event with its contact key and event time resolved.
//
// Decoding never panics on bad input: every failure is an *Error whose Reason
// says which rule of SPEC §1 the input broke, so that callers can count bad
// input by reason and send it to a dead-letter place.
package event

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Event is one decoded tracking event. Properties, Traits and Context keep the
// free-form JSON values (string, float64, bool, nil, []any, map[string]any),
// whether the event came as JSON or msgpack, because rules may read any field
// of them. An event decoded with a Select that lists keys of an object
// holds only those, outside the map (which is nil): read them with
// Property, Trait and ContextValue, which read the maps otherwise.
type Event struct {
	Type        string         `json:"type" msgpack:"type"`
	UserID      string         `json:"userId,omitempty" msgpack:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty" msgpack:"anonymousId,omitempty"`
	PreviousID  string         `json:"previousId,omitempty" msgpack:"previousId,omitempty"` // on `alias`: the earlier id userId now stands for
	Event       string         `json:"event,omitempty" msgpack:"event,omitempty"`
	Name        string         `json:"name,omitempty" msgpack:"name,omitempty"`
	MessageID   string         `json:"messageId,omitempty" msgpack:"messageId,omitempty"`
	Properties  map[string]any `json:"properties,omitempty" msgpack:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty" msgpack:"traits,omitempty"`
	Context     map[string]any `json:"context,omitempty" msgpack:"context,omitempty"`

	// RawTimestamp and RawOriginalTimestamp are the texts as received;
	// Time is the resolved event time (see Resolve).
	RawTimestamp         string `json:"timestamp,omitempty" msgpack:"timestamp,omitempty"`
	RawOriginalTimestamp string `json:"originalTimestamp,omitempty" msgpack:"originalTimestamp,omitempty"`

	// Time is the event time in Unix nanoseconds, set by Resolve.
	Time int64 `json:"-" msgpack:"-"`

	// picks hold the values of the selected keys when the event was
	// decoded with a Select that lists keys (see Property).
	picks picks
}

// Types are the event types SPEC §1 accepts.
var Types = []string{"track", "page", "screen", "identify", "group", "alias"}

func knownType(t string) bool {
	switch t {
	case "track", "page", "screen", "identify", "group", "alias":
		return true
	}
	return false
}

// Contact is the contact key: userId when present, else anonymousId.
func (e *Event) Contact() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

// Timestamp returns the resolved event time.
func (e *Event) Timestamp() time.Time { return time.Unix(0, e.Time).UTC() }

// Reason classifies bad input. The values are stable: they are metric label
// values and dead-letter header values.
type Reason string

// The kinds of bad input of SPEC §1.
const (
	ReasonMalformed   Reason = "malformed"    // not valid JSON or msgpack, or a field of the wrong type
	ReasonNoType      Reason = "no_type"      // type missing
	ReasonUnknownType Reason = "unknown_type" // type not one of Types
	ReasonNoContact   Reason = "no_contact"   // neither userId nor anonymousId
	ReasonBadTime     Reason = "bad_time"     // timestamp unreadable, or no time at all
)

// Reasons lists every Reason, for metrics that pre-declare their labels.
var Reasons = []Reason{ReasonMalformed, ReasonNoType, ReasonUnknownType, ReasonNoContact, ReasonBadTime, ReasonBadUTF8}

// Error is bad input: it says why the event was refused.
type Error struct {
	Reason Reason
	Msg    string
	Err    error // the underlying decode or parse error, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a bad-input error, or "" if err is not one.
func ReasonOf(err error) Reason {
	if err == nil {
		return "" // without errors.As, whose target escapes: no allocation per event
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Resolve validates the event and sets Time. fallback is the time to use when
// the event has neither timestamp nor originalTimestamp (live: the Kafka record
// time); pass 0 where there is none (replay), which makes such an event bad.
// A timestamp that is present but unreadable makes the event bad even if
// originalTimestamp is readable; so does a time of exactly the Unix epoch or
// outside the years 1678–2262 (see parseTime).
func (e *Event) Resolve(fallback int64) error {
	if e.Type == "" {
		return &Error{Reason: ReasonNoType, Msg: `the event has no "type"; set it to one of track, page, screen, identify, group, alias`}
	}
	if !knownType(e.Type) {
		return &Error{Reason: ReasonUnknownType, Msg: fmt.Sprintf("type %q is not one of track, page, screen, identify, group, alias", e.Type)}
	}
	if e.UserID == "" && e.AnonymousID == "" {
		return &Error{Reason: ReasonNoContact, Msg: `the event names no contact; set "userId" or "anonymousId"`}
	}
	switch {
	case e.RawTimestamp != "":
		t, err := parseTime("timestamp", e.RawTimestamp)
		if err != nil {
			return err
		}
		e.Time = t
	case e.RawOriginalTimestamp != "":
		t, err := parseTime("originalTimestamp", e.RawOriginalTimestamp)
		if err != nil {
			return err
		}
		e.Time = t
	case fallback != 0:
		e.Time = fallback
	default:
		return &Error{Reason: ReasonBadTime, Msg: `the event has no time; set "timestamp" (RFC 3339, e.g. "2026-03-02T09:00:00Z")`}
	}
	return nil
}

// The event times that Time can hold: Unix nanoseconds in an int64.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// parseTime reads an RFC 3339 time into Unix nanoseconds. A time that Time
// cannot hold is bad, and so is the Unix epoch itself: Time 0 means "no time"
// (see Resolve's fallback), and a zero timestamp is a sender's placeholder.
func parseTime(field, s string) (int64, error) {
	if ns, ok := parseUTC(s); ok && ns != 0 {
		return ns, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, &Error{Reason: ReasonBadTime, Msg: fmt.Sprintf(`%s %q is not RFC 3339; send e.g. "2026-03-02T09:00:00Z" or "2026-03-02T10:00:00.123+01:00"`, field, s), Err: err}
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, &Error{Reason: ReasonBadTime, Msg: fmt.Sprintf("%s %q is outside the years 1678–2262 that leadpulse can hold; send the real event time", field, s)}
	}
	ns := t.UnixNano()
	if ns == 0 {
		return 0, &Error{Reason: ReasonBadTime, Msg: fmt.Sprintf("%s %q is the Unix epoch, a placeholder rather than an event time; send the real event time", field, s)}
	}
	return ns, nil
}

// parseUTC reads the form most senders write, YYYY-MM-DDTHH:MM:SS, up to
// nine digits of fraction, then Z, in the years 1700–2200, into Unix
// nanoseconds: exactly what time.Parse(time.RFC3339Nano) gives for it, at a
// fraction of the cost. ok is false for anything else, which parseTime
// leaves to time.Parse.
func parseUTC(s string) (ns int64, ok bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || len(s) > len("2006-01-02T15:04:05.999999999Z") || s[len(s)-1] != 'Z' ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	num := func(s string) int {
		n := 0
		for i := 0; i < len(s); i++ {
			d := s[i] - '0'
			if d > 9 {
				return -1
			}
			n = n*10 + int(d)
		}
		return n
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 1700 || year > 2200 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return 0, false
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; frac != "" {
		if len(frac) < 2 || frac[0] != '.' {
			return 0, false
		}
		if nsec = num(frac[1:]); nsec < 0 {
			return 0, false
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	// Days from 1970-01-01 to the date (the proleptic Gregorian calendar,
	// as time.Date counts them), with the year starting in March.
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	doy := (153*((month+9)%12)+2)/5 + day - 1
	days := era*146097 + yoe*365 + yoe/4 - yoe/100 + doy - 719468
	return (int64(days)*86400+int64(hour*3600+minute*60+sec))*1e9 + int64(nsec), true
}

// daysIn is the number of days of month in year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
