package rules_test

import (
	"fmt"

	"github.com/leadpulse/leadpulse/rules"
)

// A rules file that does not validate is refused whole, with every problem
// as FILE:LINE: RULE-ID: message.
func ExampleParse() {
	_, err := rules.Parse("broken.yaml", []byte(`version: 1
triggers:
  - id: hot-lead
    when: score >= 100
    cooldown: 1 day
    do: [sales-alert]
`))
	fmt.Println(err)
	// Output:
	// broken.yaml:5: hot-lead: cooldown: bad duration "1 day": unknown unit " day"; use ms, s, m, h, d or w
	// broken.yaml:6: hot-lead: unknown action "sales-alert" in `do`; define it under `actions:`
}
