// Package tlsconf is the one TLS client setting of leadpulse: the Kafka
// clients (config's kafka.tls) and the Redis store (state.RedisOptions.TLS,
// config's redis.tls) share its fields, its checks and its builder, so that
// the two cannot drift.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Options configures TLS to a server. The zero value is plain TCP.
type Options struct {
	// Enabled turns TLS on; the other fields need it. default: false
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that sign the server certificates.
	// default: "" (the system's roots)
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key (mutual
	// TLS: Kafka's ssl.keystore, Redis' tls-auth-clients yes). Set both or
	// neither. default: none
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in the server certificate.
	// default: "" (the host dialled)
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate: for tests only, it
	// defeats TLS against an active attacker. default: false
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Problem is one contradiction in Options. Keys are the fields involved,
// each as at+"."+field (the first is the one to fix); Msg names them the
// same way.
type Problem struct {
	Keys []string
	Msg  string
}

// Check returns the contradictions of o; at prefixes every field name in
// the keys and messages (e.g. "kafka.tls", or "tls").
func (o Options) Check(at string) []Problem {
	var ps []Problem
	if !o.Enabled {
		for _, f := range []struct{ name, v string }{{"ca_file", o.CAFile}, {"cert_file", o.CertFile}, {"key_file", o.KeyFile}, {"server_name", o.ServerName}} {
			if f.v != "" {
				ps = append(ps, Problem{[]string{at + "." + f.name, at + ".enabled"},
					fmt.Sprintf("%s.%s is set but %s.enabled is false: enable TLS or remove %s.%s", at, f.name, at, at, f.name)})
			}
		}
		if o.InsecureSkipVerify {
			ps = append(ps, Problem{[]string{at + ".insecure_skip_verify", at + ".enabled"},
				fmt.Sprintf("%s.insecure_skip_verify is set but %s.enabled is false", at, at)})
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		ps = append(ps, Problem{[]string{at + ".cert_file", at + ".key_file"},
			fmt.Sprintf("%s.cert_file %q and %s.key_file %q: set both (a client certificate and its key) or neither", at, o.CertFile, at, o.KeyFile)})
	}
	if o.InsecureSkipVerify && (o.CAFile != "" || o.ServerName != "") {
		ps = append(ps, Problem{[]string{at + ".insecure_skip_verify", at + ".ca_file", at + ".server_name"},
			fmt.Sprintf("%s.insecure_skip_verify contradicts %s.ca_file/%s.server_name: verification is either skipped or configured", at, at, at)})
	}
	return ps
}

// Config builds the client TLS config of o, or nil when TLS is off. An
// empty ServerName is left empty: kgo and go-redis set the host dialled.
// Errors name the field as at+"."+field.
func (o Options) Config(at string) (*tls.Config, error) {
	if !o.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", at, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file %s: no PEM certificate in it", at, o.CAFile)
		}
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file/key_file: %w", at, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
