package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Load reads the config file at path, applies the LEADPULSE_* variables of
// environ (os.Environ()), fills the defaults and validates. A config that
// does not validate returns an *Error with every problem.
func Load(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read deployment config: %w", err)
	}
	return Parse(path, data, environ)
}

// Parse is Load for a config held in memory; name is the file name used in
// messages and to resolve relative paths.
func Parse(name string, data []byte, environ []string) (*Config, error) {
	c := &Config{file: name, origin: map[string]string{}}
	var ps problems
	c.decode(data, &ps)
	if len(ps) == 0 {
		c.applyEnv(environ, &ps)
	}
	if len(ps) == 0 {
		c.resolvePaths()
		c.validate(&ps)
	}
	if len(ps) > 0 {
		return nil, &Error{Problems: ps}
	}
	return c, nil
}

func (c *Config) decode(data []byte, ps *problems) {
	if len(bytes.TrimSpace(data)) == 0 {
		return
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		*ps = append(*ps, yamlProblems(c.file, err)...)
		return
	}
	if len(root.Content) == 1 {
		top := root.Content[0]
		if top.Kind != yaml.MappingNode && !(top.Kind == yaml.ScalarNode && top.Tag == "!!null") {
			*ps = append(*ps, Problem{Where: fmt.Sprintf("%s:%d", c.file, top.Line), Msg: "the deployment config is a YAML mapping (kafka:, redis:, rules:, http:, sinks:)"})
			return
		}
		c.recordOrigins(top, "")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		*ps = append(*ps, yamlProblems(c.file, err)...)
		return
	}
	if c.Sinks != nil || c.origin["sinks"] != "" {
		c.sinksName, c.sinksSrc = c.file, data
	}
}

// recordOrigins notes the line of every key of the file.
func (c *Config) recordOrigins(n *yaml.Node, prefix string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		c.origin[path] = fmt.Sprintf("%s:%d", c.file, k.Line)
		if prefix == "" && k.Value == "sinks" {
			continue // the sinks package's business
		}
		c.recordOrigins(v, path)
	}
}

// resolvePaths makes relative file paths that come from the file (or are
// defaults) relative to the file's directory.
func (c *Config) resolvePaths() {
	if c.file == "" {
		return
	}
	dir := filepath.Dir(c.file)
	if c.Rules == "" {
		c.Rules = "rules.yaml"
	}
	for key, p := range map[string]*string{
		"rules":               &c.Rules,
		"kafka.tls.ca_file":   &c.Kafka.TLS.CAFile,
		"kafka.tls.cert_file": &c.Kafka.TLS.CertFile,
		"kafka.tls.key_file":  &c.Kafka.TLS.KeyFile,
		"redis.tls.ca_file":   &c.Redis.TLS.CAFile,
		"redis.tls.cert_file": &c.Redis.TLS.CertFile,
		"redis.tls.key_file":  &c.Redis.TLS.KeyFile,
	} {
		if *p == "" || filepath.IsAbs(*p) || strings.HasPrefix(c.origin[key], "$") {
			continue
		}
		*p = filepath.Join(dir, *p)
	}
}

// File returns the config file's name.
func (c *Config) File() string { return c.file }

// Where says where a key was set: "FILE:LINE", "$LEADPULSE_…", or "" for a
// default.
func (c *Config) Where(key string) string { return c.origin[key] }

// SinksSource returns the YAML that holds the sinks: block and its name
// for messages: the config file (whose top-level sinks: key holds the
// block), or "$LEADPULSE_SINKS" (the block alone), which replaces the
// file's. sinks.Parse reads either; this package does not know the sinks'
// schema. src is nil when there is no sinks: block.
func (c *Config) SinksSource() (name string, src []byte) {
	return c.sinksName, c.sinksSrc
}
