package engine_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/engine"
)

// TestReplayBadUTF8 (issue 10, item 5): replay reports an event whose id
// is not UTF-8 on stderr with its line number and reason bad_utf8, and skips
// it, in place of scoring it under an id rewritten to U+FFFD.
func TestReplayBadUTF8(t *testing.T) {
	rs := mustParse(t, countWindow)
	lines := []string{
		page(0, "/a"),
		`{"type":"page","userId":"u` + "\xff" + `","timestamp":"2026-03-02T09:01:00Z"}`,
		`{"type":"page","anonymousId":"a\udc00","timestamp":"2026-03-02T09:01:00Z"}`,
	}
	var out, errs bytes.Buffer
	sum, err := engine.Replay(context.Background(), rs, strings.NewReader(strings.Join(lines, "\n")), engine.ReplayOptions{Out: &out, Errs: &errs})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(errs.String()), "\n")
	if len(got) != 2 || !strings.HasPrefix(got[0], "line 2: bad_utf8: ") || !strings.HasPrefix(got[1], "line 3: bad_utf8: ") {
		t.Errorf("stderr:\n%s\nwant lines 2 and 3 as bad_utf8", errs.String())
	}
	if sum.Bad != 2 || sum.BadReasons["bad_utf8"] != 2 || sum.Applied != 1 {
		t.Errorf("summary %+v", sum)
	}
}
