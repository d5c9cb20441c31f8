package sinks

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadFile reads a YAML file holding a sinks: block (`leadpulse dev
// --sinks`), strictly: an unknown key, or another top-level key, is an
// error. (`leadpulse run` reads the block inside its deployment config
// through config.DecodeSinks.) Its
// errors name the file, and the line as FILE:LINE where YAML gives one.
// A file without a sinks: block is an error.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Sinks Config `yaml:"sinks"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fileError(path, err)
	}
	if len(doc.Sinks) == 0 {
		return nil, fmt.Errorf("%s: no sinks: block; write e.g. sinks: { log: { type: stdout, default: true } }", path)
	}
	return doc.Sinks, nil
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
