package engine_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/rules"
)

// TestExampleRulesTests runs the tests: section of every bundled example
// through engine.RunTests, as `leadpulse rules test examples/*.yaml` does;
// examples/identity.yaml pins SPEC §6 case by case there.
func TestExampleRulesTests(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rs, err := rules.LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs.Tests) == 0 {
				t.Fatalf("%s has no tests", f)
			}
			for _, r := range engine.RunTests(context.Background(), rs) {
				for _, e := range r.Errors {
					t.Error(e)
				}
			}
		})
	}
}
