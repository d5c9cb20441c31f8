package config_test

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestRedactedSinks (issue 10, item 7): `run --check` prints no header
// value of a sink, whatever its name, and no credentials of a URL.
func TestRedactedSinks(t *testing.T) {
	c := mustParse(t, specExample+
		"  hook: {type: webhook, url: \"https://alice:s3cr3t@hooks.example.com:8443/T0/B0?sig=q1w2\", headers: {Cookie: sess=c00kie, X-Auth: xauth1, X-Custom-Auth: custom2, Accept: application/json}}\n"+
		"  bare: {type: webhook, url: \"http://bob:pa55@10.0.0.1\"}\n")
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"alice", "s3cr3t", "q1w2", "/B0", "c00kie", "xauth1", "custom2", "application/json", "bob", "pa55"} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, out)
		}
	}
	for _, kept := range []string{"hooks.example.com:8443", "http://<redacted>@10.0.0.1", "Cookie", "X-Custom-Auth"} {
		if !strings.Contains(out, kept) {
			t.Errorf("redacted config lost %q:\n%s", kept, out)
		}
	}
}
