package event

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
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
	return e.Resolve(fallback)
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
