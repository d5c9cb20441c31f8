package config

import (
	"regexp"
	"strings"
)

const redacted = "<redacted>"

var secretKey = regexp.MustCompile(`(?i)secret|password|token|authorization|api[-_]?key`)

// Redacted returns a copy of the config with the passwords, the admin token
// and the sinks' secrets (keys named like secret, password, token,
// authorization; every header value; URLs' credentials, paths and queries)
// replaced, for printing.
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
			if strings.EqualFold(key, "headers") {
				// Every header value: a name does not tell a secret
				// (Cookie, X-Auth, X-Custom-Auth…).
				out[k] = redacted
				continue
			}
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
			return redactURL(x)
		}
	}
	return v
}

// redactURL keeps a URL's scheme and host, and replaces its credentials
// (user:password@) and its path, query and fragment, which carry secrets in
// webhook URLs (Slack's /services/T…/B…/XYZ).
func redactURL(x string) string {
	i := strings.Index(x, "://")
	if i < 0 {
		return redacted
	}
	rest := x[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = redacted + "@" + host[at+1:]
	}
	out := x[:i+3] + host
	if end < len(rest) {
		out += "/" + redacted
	}
	return out
}
