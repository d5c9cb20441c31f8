package engine

import (
	"bytes"
	"context"
	"errors"
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

// failingReader returns its data, then err instead of io.EOF.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestReplayReadError checks that a failure to read the input ends the
// replay with a *ReadError naming the line being read, after every line
// before it was applied (Observe saw it) and its bad-line reports written,
// as if it had been the last: replay reads and decodes lines ahead of
// applying them (readAhead), which must not show. Cut points inside and at
// the edges of a read-ahead batch, and inside a line.
func TestReplayReadError(t *testing.T) {
	rs, err := rules.LoadFile("../examples/b2b-saas.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile("../examples/traffic/b2b.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.SplitAfter(string(in), "\n")
	applied := func(n *int) func(*rules.Result) {
		return func(r *rules.Result) {
			if r.Event != nil {
				*n++
			}
		}
	}
	for _, n := range []int{0, 1, readAhead - 1, readAhead, readAhead + 1, 3*readAhead + 5, len(all) - 1} {
		for _, cut := range []bool{false, true} {
			if cut && n == 0 {
				continue
			}
			whole := strings.Join(all[:n], "")
			prefix := whole
			if cut {
				prefix = strings.TrimSuffix(whole, "\n") // the failure comes inside line n
			}
			// What a replay of the lines before the failure does.
			before := all[:n]
			if cut {
				before = all[:n-1]
			}
			var wantErrs bytes.Buffer
			wantApplied := 0
			want, err := Replay(context.Background(), rs, strings.NewReader(strings.Join(before, "")), ReplayOptions{Errs: &wantErrs, Observe: applied(&wantApplied)})
			if err != nil {
				t.Fatal(err)
			}
			boom := errors.New("disk on fire")
			var errs bytes.Buffer
			got := 0
			sum, err := Replay(context.Background(), rs, &failingReader{data: []byte(prefix), err: boom}, ReplayOptions{Errs: &errs, Observe: applied(&got)})
			var re *ReadError
			if !errors.As(err, &re) || !errors.Is(err, boom) {
				t.Fatalf("%d lines (cut %v): error %v, want a *ReadError wrapping %v", n, cut, err, boom)
			}
			if re.Line != len(before)+1 {
				t.Errorf("%d lines (cut %v): ReadError.Line %d, want %d", n, cut, re.Line, len(before)+1)
			}
			if got != wantApplied || sum.Lines != want.Lines || sum.Bad != want.Bad || errs.String() != wantErrs.String() {
				t.Errorf("%d lines (cut %v): %d applied, %d lines, %d bad before the failure, want %d, %d, %d; bad-line reports:\n%s\nwant:\n%s",
					n, cut, got, sum.Lines, sum.Bad, wantApplied, want.Lines, want.Bad, errs.String(), wantErrs.String())
			}
		}
	}
}
