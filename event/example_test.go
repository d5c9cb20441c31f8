package event_test

import (
	"fmt"
	"time"

	"github.com/leadpulse/leadpulse/event"
)

func ExampleDecode() {
	line := []byte(`{"type":"page","userId":"u1","anonymousId":"a-77","properties":{"path":"/pricing"},` +
		`"timestamp":"2026-03-02T10:00:00+01:00"}`)

	// Replay passes 0: there is no record time to fall back on.
	e, err := event.Decode(line, event.Auto, 0)
	if err != nil {
		fmt.Println("bad input:", event.ReasonOf(err), err)
		return
	}
	fmt.Println(e.Contact(), e.Type, e.Properties["path"], e.Timestamp().Format(time.RFC3339))
	// Output: u1 page /pricing 2026-03-02T09:00:00Z
}

func ExampleDecode_recordTime() {
	// Live, the Kafka record time stands in for an event without a time.
	recordTime := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC).UnixNano()
	e, err := event.Decode([]byte(`{"type":"track","anonymousId":"a-77","event":"Guide Downloaded"}`), event.Auto, recordTime)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Contact(), e.Type, e.Event, e.Timestamp().Format(time.RFC3339))
	// Output: a-77 track Guide Downloaded 2026-03-02T09:30:00Z
}

func ExampleReasonOf() {
	for _, line := range []string{
		`{"type":"page","timestamp":"2026-03-02T09:00:00Z"}`,
		`{"type":"page","userId":"u1","timestamp":"yesterday"}`,
		`[1,2,3]`,
	} {
		_, err := event.Decode([]byte(line), event.Auto, 0)
		fmt.Println(event.ReasonOf(err))
	}
	// Output:
	// no_contact
	// bad_time
	// malformed
}
