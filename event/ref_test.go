package event

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// This file keeps the JSON decoder as it was before the hand-written scanner
// (scan.go): goccy/go-json into the Event struct, for every record. It is the
// reference that TestScannerMatchesReference and FuzzScannerMatchesReference
// hold the package's decoder to: the same Event, or the same error, for every
// input. Do not "fix" it: it is what the decoder must stay equal to.

// refDecode is Decode as it was.
func refDecode(b []byte, f Format, fallback int64, skipContext bool) (*Event, error) {
	e := new(Event)
	if err := refDecodeInto(e, b, f, fallback, skipContext); err != nil {
		return nil, err
	}
	return e, nil
}

// refDecodeInto is decodeInto as it was.
func refDecodeInto(e *Event, b []byte, f Format, fallback int64, skipContext bool) error {
	if f == Auto {
		f = Detect(b)
	}
	var err error
	if f == Msgpack {
		err = decodeMsgpack(e, b)
	} else {
		err = refDecodeJSON(e, b, skipContext)
	}
	for _, m := range []*map[string]any{&e.Properties, &e.Traits, &e.Context} {
		if len(*m) == 0 {
			*m = nil
		}
	}
	if err != nil {
		return err
	}
	if err := refCheckUTF8(e, b, f); err != nil {
		return err
	}
	return refResolve(e, fallback)
}

// refResolve is Event.Resolve as it was.
func refResolve(e *Event, fallback int64) error {
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
		t, err := refParseTime("timestamp", e.RawTimestamp)
		if err != nil {
			return err
		}
		e.Time = t
	case e.RawOriginalTimestamp != "":
		t, err := refParseTime("originalTimestamp", e.RawOriginalTimestamp)
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

func refDecodeJSON(e *Event, b []byte, skipContext bool) error {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(b), utf8BOM))
	if len(trimmed) == 0 {
		return &Error{Reason: ReasonMalformed, Msg: "the record is empty; each line or record must be one JSON event object"}
	}
	if trimmed[0] != '{' {
		return &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("not a JSON object (it starts with %q); each line or record must be one event object {...}, not an array or a bare value", trimmed[0])}
	}
	var err error
	if skipContext {
		if err = json.Unmarshal(trimmed, &withoutContext{Event: e}); err != nil {
			*e = Event{}
			err = json.Unmarshal(trimmed, e)
		}
	} else {
		err = json.Unmarshal(trimmed, e)
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &Error{Reason: ReasonMalformed, Msg: fmt.Sprintf("field %q is a JSON %s; %s", te.Field, te.Value, wantType(te.Field)), Err: err}
	}
	return &Error{Reason: ReasonMalformed, Msg: "not valid JSON for an event; each line or record must be one complete JSON object", Err: err}
}

func refCheckUTF8(e *Event, b []byte, f Format) error {
	if !strings.ContainsRune(e.Type+e.UserID+e.AnonymousID+e.PreviousID+e.Event+e.MessageID, utf8.RuneError) {
		return nil
	}
	var field string
	if f == Msgpack {
		field = msgpackBadText(b)
	} else {
		field = jsonBadText(b)
	}
	if field == "" {
		return nil
	}
	return &Error{Reason: ReasonBadUTF8, Msg: fmt.Sprintf("field %q is not valid UTF-8 text (an invalid byte, or an escaped lone surrogate); send ids and names as UTF-8", field)}
}

// refParseTime is parseTime as it was, before parseUTC.
func refParseTime(field, s string) (int64, error) {
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
