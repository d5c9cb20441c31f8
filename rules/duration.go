package rules

import (
	"fmt"
	"strconv"
	"time"
)

// ParseDuration reads a rules-file duration: one or more of a number and a
// unit, where the units are ms, s, m, h, d (24h) and w (7d): "90s", "24h",
// "7d", "1d12h", "1.5h". It must be positive.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration; write a number and a unit such as 30m, 24h or 7d")
	}
	var total float64
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("bad duration %q: expected a number at %q; write a number and a unit such as 30m, 24h or 7d", s, s[i:])
		}
		n, err := strconv.ParseFloat(s[i:j], 64)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %q is not a number", s, s[i:j])
		}
		k := j
		for k < len(s) && (s[k] < '0' || s[k] > '9') && s[k] != '.' {
			k++
		}
		var unit time.Duration
		switch s[j:k] {
		case "ms":
			unit = time.Millisecond
		case "s":
			unit = time.Second
		case "m":
			unit = time.Minute
		case "h":
			unit = time.Hour
		case "d":
			unit = 24 * time.Hour
		case "w":
			unit = 7 * 24 * time.Hour
		case "":
			return 0, fmt.Errorf("bad duration %q: %q has no unit; use ms, s, m, h, d or w", s, s[i:j])
		default:
			return 0, fmt.Errorf("bad duration %q: unknown unit %q; use ms, s, m, h, d or w", s, s[j:k])
		}
		total += n * float64(unit)
		i = k
	}
	if total < 1 { // under a nanosecond truncates to zero
		return 0, fmt.Errorf("bad duration %q: must be more than zero", s)
	}
	if total > float64(100*365*24*time.Hour) {
		return 0, fmt.Errorf("bad duration %q: more than 100 years", s)
	}
	return time.Duration(total), nil
}
