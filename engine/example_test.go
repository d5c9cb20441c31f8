package engine_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/rules"
)

// Replay three pricing visits through a one-trigger rules file and print
// the action line it emits.
func ExampleReplay() {
	rs, err := rules.Parse("pricing.yaml", []byte(`
version: 1
windows:
  pricing_views_7d:
    match: type == "page" && properties.path startsWith "/pricing"
    over: 7d
triggers:
  - id: pricing-3x
    when: windows.pricing_views_7d >= 3
    do: [sales-alert]
actions:
  sales-alert:
    sink: sales
    message: "{{ contact }} compared plans {{ windows.pricing_views_7d }} times"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	events := strings.NewReader(`{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-02T09:00:00Z"}
{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-04T09:00:00Z"}
{"type":"page","userId":"u1","properties":{"path":"/pricing"},"timestamp":"2026-03-06T09:00:00Z"}
`)
	sum, err := engine.Replay(context.Background(), rs, events, engine.ReplayOptions{Out: os.Stdout})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Applied, "events,", sum.Emitted, "action")
	// Output:
	// {"id":"f9cdb0c963ab9eb4e838faf9629a7701","action":"sales-alert","trigger":"pricing-3x","contact":"u1","at":"2026-03-06T09:00:00Z","score":0,"fit":0,"engagement":0,"stage":"","message":"u1 compared plans 3 times","sink":"sales","explain":{}}
	// 3 events, 1 action
}
