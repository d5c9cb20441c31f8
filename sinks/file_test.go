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
		{"ok", "sinks:\n  log: { type: stdout, default: true }\n", ""},
		{"unknown key has FILE:LINE", "sinks:\n  log:\n    type: stdout\n    fromat: text\n", "bad.yaml:4: field fromat not found"},
		{"no block", "sinks: {}\n", "no sinks: block"},
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
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadFile error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
