package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/bench"
)

// `leadpulse bench` has visitor turnover on by default, says how to turn it
// off, gives bench's default lifetime, and refuses a lifetime below 1.
func TestBenchTurnoverFlags(t *testing.T) {
	_, out, _ := runCLI(t, "", "bench", "--help")
	help := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"--[no-]turnover", "--no-turnover: the same --contacts visitors all along", "it grows with new visitors",
		fmt.Sprintf("--lifetime=N With --turnover: the mean events a visitor sends before leaving (exponentially distributed; it leaves at the end of a visit). Default: %d.", bench.DefaultLifetime),
	} {
		if !strings.Contains(help, want) {
			t.Errorf("bench --help lacks %q:\n%s", want, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--lifetime", "0"}, "leadpulse bench: --lifetime 0: give the mean events a visitor sends before leaving, 1 or more (--no-turnover turns turnover off)"},
		{[]string{"--lifetime=-3", "--no-turnover"}, "leadpulse bench: --lifetime -3:"},
	} {
		code, _, errs := runCLI(t, "", append([]string{"bench"}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}
