package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Conversions are the rows of a --conversions CSV file.
type Conversions struct {
	File string
	Rows []Row
	// Header is true when the first row was a header (its time is not
	// RFC 3339).
	Header bool
}

// Row is one conversion: a contact id (resolved through the identity links
// as they stand at the end of the replay) and its time.
type Row struct {
	Line    int
	Contact string
	Time    int64 // Unix ns
}

// BadRowError is a row of a conversions file that cannot be read.
type BadRowError struct {
	File string
	Line int
	Msg  string
}

func (e *BadRowError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ReadConversions reads rows `contact,time` (RFC 3339), as exported from a
// CRM (closed-won deals, say). A first row whose time is not RFC 3339 is a
// header; columns after the second are ignored. Any other unreadable row is
// an error naming its line: a conversions file is small and hand-checked,
// and silently dropping a deal would bias every figure.
func ReadConversions(file string, r io.Reader) (*Conversions, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	c := &Conversions{File: file}
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &BadRowError{File: file, Line: pe.Line, Msg: pe.Err.Error()}
			}
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) < 2 {
			return nil, &BadRowError{File: file, Line: line, Msg: fmt.Sprintf("want contact,time; got %q", strings.Join(rec, ","))}
		}
		id, ts := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		t, terr := time.Parse(time.RFC3339Nano, ts)
		if terr != nil {
			if first {
				c.Header, first = true, false
				continue
			}
			return nil, &BadRowError{File: file, Line: line, Msg: fmt.Sprintf("time %q is not RFC 3339 (for example 2026-03-07T14:00:00Z)", ts)}
		}
		first = false
		if id == "" {
			return nil, &BadRowError{File: file, Line: line, Msg: "empty contact id"}
		}
		c.Rows = append(c.Rows, Row{Line: line, Contact: id, Time: t.UnixNano()})
	}
	return c, nil
}
