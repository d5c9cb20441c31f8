package sinks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/sinks"
)

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"sinks: block", "sinks:\n  log: { type: stdout, default: true }\n", ""},
		{"sinks alone (LEADPULSE_SINKS, sinks.example.yaml)", "# comment\nlog: { type: stdout, default: true }\nemail: { type: kafka }\n", ""},
		{"a sink named sinks", "log: { type: stdout, default: true }\nsinks: { type: stdout }\n", ""},
		{"unknown key has FILE:LINE", "sinks:\n  log:\n    type: stdout\n    fromat: text\n", "bad.yaml:4: field fromat not found"},
		{"unknown key, sinks alone", "log:\n  type: stdout\n  fromat: text\n", "bad.yaml:3: field fromat not found"},
		{"invalid setting has FILE:LINE", "sinks:\n  log: { type: stdout }\n  sales:\n    type: webhook\n", "bad.yaml:3: sinks.sales: type webhook needs url"},
		{"two defaults", "log: { type: stdout, default: true }\nlog2: { type: stdout, default: true }\n", "bad.yaml:2: sinks.log and sinks.log2 both say default: true"},
		{"empty block", "sinks: {}\n", "bad.yaml:1: no sinks in the block"},
		{"empty file", "", "bad.yaml: no sinks; write"},
		{"other top-level key", "kafka: {}\nsinks:\n  log: { type: stdout }\n", `bad.yaml:1: "kafka" beside sinks:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(path, []byte(tc.yml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := sinks.LoadFile(path)
			if tc.want == "" {
				if err != nil || cfg["log"].Type != sinks.TypeStdout {
					t.Fatalf("LoadFile = %v, %v", cfg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "sinks: ") > 1 {
				t.Fatalf("LoadFile error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
