package config

import (
	"regexp"
	"strings"
)

const redacted = "<redacted>"

var secretKey = regexp.MustCompile(`(?i)secret|password|token|authorization|api[-_]?key`)

// Redacted returns a copy of the config with the passwords, the admin token
// and the sinks' secrets (keys named like secret, password, token,
// authorization; webhook URLs' paths) replaced, for printing.
func (c *Config) Redacted() *Config {
	r := *c
	if r.Kafka.SASL.Password != "" {
		r.Kafka.SASL.Password = redacted
	}
	if r.Redis.Password != "" {
		r.Redis.Password = redacted
	}
	if r.AdminToken != "" {
		r.AdminToken = redacted
	}
	if r.Sinks != nil {
		r.Sinks, _ = redactAny(r.Sinks, "").(map[string]any)
	}
	return &r
}

func redactAny(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = redactAny(vv, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = redactAny(vv, key)
		}
		return out
	case string:
		if secretKey.MatchString(key) && x != "" {
			return redacted
		}
		if strings.EqualFold(key, "url") {
			if i := strings.Index(x, "://"); i >= 0 {
				if j := strings.IndexByte(x[i+3:], '/'); j >= 0 {
					return x[:i+3+j] + "/" + redacted
				}
			}
		}
	}
	return v
}
