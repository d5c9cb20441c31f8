package rules_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/state"
)

// fuzzEvents are applied to every ruleset that validates: a file that loads
// must also run without panicking.
var fuzzEvents = []string{
	`{"type":"identify","userId":"u1","traits":{"industry":"healthcare","company_size":500,"email":"a@b.c","region":"emea","list":[1,"x",null]},"timestamp":"2026-03-02T09:00:00Z"}`,
	`{"type":"page","userId":"u1","properties":{"path":"/pricing","price":3},"timestamp":"2026-03-02T09:01:00Z","messageId":"m1"}`,
	`{"type":"track","userId":"u1","event":"Product Added","properties":{"price":"x","nested":{"a":[1,2]}},"context":{"ip":"1.2.3.4"},"timestamp":"2026-03-02T09:02:00Z"}`,
	`{"type":"track","userId":"u1","event":"Guide Downloaded","timestamp":"2026-03-01T09:00:00Z"}`,
}

// FuzzParse: arbitrary bytes never make Parse panic; a refusal is a
// *rules.ValidationError whose problems all point at a line; a ruleset that
// validates runs over a few events and timers without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(specRules))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang would only show as a stalled fuzzer: crash instead, so that
		// the input is saved.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse or evaluation of %q took over 10s", data)) })
		defer watchdog.Stop()
		rs, err := rules.Parse("fuzz.yaml", data)
		if err != nil {
			var ve *rules.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is a %T, want a *rules.ValidationError", err, err)
			}
			if rs != nil {
				t.Fatalf("Parse returned a ruleset and an error")
			}
			if len(ve.Problems) == 0 {
				t.Fatalf("a ValidationError without problems")
			}
			for _, p := range ve.Problems {
				if p.Line < 1 || p.File != "fuzz.yaml" || p.Rule == "" || p.Msg == "" {
					t.Fatalf("incomplete problem %+v", p)
				}
			}
			return
		}
		if rs == nil {
			t.Fatalf("Parse returned neither a ruleset nor an error")
		}
		x := rs.NewEvaluator()
		c := state.New("u1")
		for _, line := range fuzzEvents {
			e, err := event.Decode([]byte(line), event.JSON, 0)
			if err != nil {
				t.Fatal(err)
			}
			res := x.Apply(c, e)
			timers := append([]rules.TimerSet(nil), res.Timers...)
			for _, tm := range timers {
				x.Fire(c, tm.Trigger, tm.Due)
			}
		}
	})
}
