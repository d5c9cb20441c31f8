package engine

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestReplayGolden replays each bundled traffic file through its rules and
// compares the action lines and the bad-line report with golden files.
func TestReplayGolden(t *testing.T) {
	for _, tc := range []struct{ rules, traffic, golden string }{
		{"../examples/b2b-saas.yaml", "../examples/traffic/b2b.jsonl", "b2b"},
		{"../examples/ecommerce.yaml", "../examples/traffic/ecommerce.jsonl", "ecommerce"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			rs, err := rules.LoadFile(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			in, err := os.ReadFile(tc.traffic)
			if err != nil {
				t.Fatal(err)
			}
			var out, errs bytes.Buffer
			sum, err := Replay(context.Background(), rs, bytes.NewReader(in), ReplayOptions{Out: &out, Errs: &errs})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Emitted == 0 || sum.Bad == 0 || sum.Duplicates == 0 {
				t.Errorf("the sample traffic should emit actions, contain bad lines and a duplicate: %s", sum)
			}
			// Every trigger of the file fires at least once.
			for _, tr := range rs.Triggers {
				if sum.ByTrigger[tr.ID] == 0 {
					t.Errorf("trigger %s never fires on %s", tr.ID, tc.traffic)
				}
			}
			compareGolden(t, filepath.Join("testdata", tc.golden+".actions.jsonl"), out.Bytes())
			compareGolden(t, filepath.Join("testdata", tc.golden+".bad.txt"), errs.Bytes())

			// Deterministic: a second run gives the same bytes.
			var again bytes.Buffer
			if _, err := Replay(context.Background(), rs, bytes.NewReader(in), ReplayOptions{Out: &again}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), again.Bytes()) {
				t.Error("two replays of the same input differ")
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./engine -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got %s\nwant %s\n(if the change is intended: go test ./engine -run Golden -update)", path, i+1, g, w)
			}
		}
	}
}
