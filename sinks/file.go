package sinks

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadFile reads a sinks file (`leadpulse dev --sinks FILE`) with Parse;
// another top-level key beside `sinks:` is an error.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sinks file: %w", err)
	}
	return parse(path, data, true)
}

// Parse reads, strictly, and validates the sinks YAML called name (a file
// name, or "$LEADPULSE_SINKS"). Its top level is either
//
//   - the sinks themselves, sink name → sink (the form of LEADPULSE_SINKS
//     and of deploy/kubernetes/sinks.example.yaml), or
//   - a mapping with a `sinks:` key holding them (a deployment config;
//     its other keys are not read here).
//
// The second form is recognised by a top-level `sinks` key whose value has
// no `type` key (a sink named "sinks" has one). An unknown key, and every
// invalid setting, is an error FILE:LINE: message (matching ErrConfig for
// the settings); an empty block is an error. The returned Config has its
// defaults filled.
func Parse(name string, data []byte) (Config, error) {
	return parse(name, data, false)
}

func parse(name string, data []byte, strictTop bool) (Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fileError(name, err)
	}
	var top *yaml.Node
	if len(root.Content) == 1 {
		top = root.Content[0]
	}
	if top == nil || top.Kind != yaml.MappingNode {
		return nil, &settingError{where: name, err: configError("no sinks; write e.g. sinks: { log: { type: stdout, default: true } }, or the sinks alone: log: { type: stdout, default: true }")}
	}
	block := top // the mapping sink name → sink
	if v := mapValue(top, "sinks"); v != nil && (v.Kind != yaml.MappingNode || mapValue(v, "type") == nil) {
		block = v
		if strictTop {
			for i := 0; i+1 < len(top.Content); i += 2 {
				if k := top.Content[i]; k.Value != "sinks" {
					return nil, &settingError{where: fmt.Sprintf("%s:%d", name, k.Line), err: configError("%q beside sinks:; a sinks file holds only the sinks: block (or the sinks alone)", k.Value)}
				}
			}
		}
	}
	var cfg Config
	var err error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if block == top {
		err = dec.Decode(&cfg)
	} else {
		var doc struct {
			Sinks Config         `yaml:"sinks"`
			Rest  map[string]any `yaml:",inline"` // a deployment config's other keys
		}
		err = dec.Decode(&doc)
		cfg = doc.Sinks
	}
	if err != nil {
		return nil, fileError(name, err)
	}
	if len(cfg) == 0 {
		return nil, &settingError{where: fmt.Sprintf("%s:%d", name, block.Line), err: configError("no sinks in the block; write e.g. log: { type: stdout, default: true }")}
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(block.Content); i += 2 {
		lines[block.Content[i].Value] = block.Content[i].Line
	}
	out, err := cfg.Validate()
	var se *settingError
	if errors.As(err, &se) {
		se.where = fmt.Sprintf("%s:%d", name, lines[se.sink])
		if lines[se.sink] == 0 {
			se.where = name
		}
	}
	return out, err
}

// mapValue is the value of key in the mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// fileError turns a YAML error into one FILE:LINE: message line per
// problem.
func fileError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	var lines []string
	for _, m := range strings.Split(msg, "\n") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if sm := yamlLineRe.FindStringSubmatch(m); sm != nil {
			lines = append(lines, path+":"+sm[1]+": "+sm[2])
		} else {
			lines = append(lines, path+": "+m)
		}
	}
	return fmt.Errorf("%s", strings.Join(lines, "\n"))
}
