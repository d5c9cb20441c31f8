package tlsconf_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/internal/tlsconf"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    tlsconf.Options
		want string // "" for no problem
	}{
		{"off", tlsconf.Options{}, ""},
		{"on with a CA", tlsconf.Options{Enabled: true, CAFile: "ca.pem"}, ""},
		{"ca file without tls", tlsconf.Options{CAFile: "ca.pem"}, "kafka.tls.ca_file is set but kafka.tls.enabled is false"},
		{"cert without key", tlsconf.Options{Enabled: true, CertFile: "c.pem"}, `kafka.tls.cert_file "c.pem" and kafka.tls.key_file ""`},
		{"insecure with ca", tlsconf.Options{Enabled: true, InsecureSkipVerify: true, CAFile: "ca.pem"}, "kafka.tls.insecure_skip_verify contradicts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.o.Check("kafka.tls")
			if tc.want == "" {
				if len(ps) != 0 {
					t.Fatalf("problems %v, want none", ps)
				}
				return
			}
			if len(ps) == 0 || !strings.Contains(ps[0].Msg, tc.want) || !strings.HasPrefix(ps[0].Keys[0], "kafka.tls.") {
				t.Fatalf("problems %+v, want the first to say %q", ps, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	if tc, err := (tlsconf.Options{}).Config("tls"); tc != nil || err != nil {
		t.Errorf("TLS off: %v, %v; want nil, nil", tc, err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    tlsconf.Options
		want string
	}{
		{"missing ca", tlsconf.Options{Enabled: true, CAFile: "/nonexistent/ca.pem"}, "tls.ca_file: open"},
		{"ca not pem", tlsconf.Options{Enabled: true, CAFile: notPEM}, "no PEM certificate"},
		{"missing key pair", tlsconf.Options{Enabled: true, CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}, "tls.cert_file/key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.o.Config("tls"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Config error %v, want %q", err, tc.want)
			}
		})
	}
	tc, err := (tlsconf.Options{Enabled: true, ServerName: "redis.internal"}).Config("tls")
	if err != nil || tc.ServerName != "redis.internal" || tc.MinVersion == 0 {
		t.Errorf("Config = %+v, %v", tc, err)
	}
}
