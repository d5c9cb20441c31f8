package sinks_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/leadpulse/leadpulse/sinks"
)

// A dispatcher over the `sinks:` block of a deployment config: each action
// goes to the sink its record names, once.
func ExampleOpen() {
	cfg := sinks.Config{
		"log": {Type: sinks.TypeStdout, Format: sinks.FormatText, Default: true},
	}
	d, err := sinks.Open(cfg, sinks.Deps{Stdout: os.Stdout}, sinks.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	// A record value of the actions topic.
	a, err := sinks.DecodeAction([]byte(`{"id":"9f2c","action":"sales-alert","trigger":"pricing-3x","contact":"u1",` +
		`"at":"2026-03-06T09:00:00Z","score":120,"fit":25,"engagement":95,"stage":"mql",` +
		`"message":"Hot lead ann@example.com scored 120 (pricing-3x)","sink":"sales","explain":{"pricing-page":30}}`))
	if err != nil {
		fmt.Println(err) // a dead letter
		return
	}
	// The same action read twice (a redelivery after a crash): delivered once.
	for range 2 {
		if err := d.Dispatch(ctx, a); err != nil {
			fmt.Println("not settled, do not commit:", err)
		}
	}
	if err := d.Close(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2026-03-06 09:00:00.000  pricing-3x         sales-alert      → sales      u1               score  120.0  Hot lead ann@example.com scored 120 (pricing-3x)
}

// A receiver of a signed webhook checks the signature over the raw body.
func ExampleVerifySignature() {
	secret := []byte("whsec_3b1f0c")
	body := []byte(`{"id":"9f2c","action":"sales-alert"}`)
	now := time.Unix(1772787600, 0)

	// What the webhook sink sends.
	h := http.Header{}
	h.Set(sinks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(sinks.HeaderSignature, sinks.Sign(secret, now.Unix(), body))

	fmt.Println(sinks.VerifySignature(secret, h, body, now.Add(30*time.Second), 0))
	fmt.Println(sinks.VerifySignature(secret, h, []byte(`{"id":"9f2c","action":"forged"}`), now, 0) != nil)
	// Output:
	// <nil>
	// true
}
