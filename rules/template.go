package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// template is a message with `{{ expr }}` holes, each a contact-condition
// expression compiled once.
type template struct {
	lits  []string // len(progs)+1 literal parts around the holes
	progs []*program
}

func parseTemplate(s string) (*template, error) {
	t := &template{}
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.lits = append(t.lits, rest)
			return t, nil
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return t, fmt.Errorf("`{{` without `}}` in %q", s)
		}
		src := strings.TrimSpace(rest[i+2 : i+j])
		if src == "" {
			return t, fmt.Errorf("empty `{{ }}` in %q", s)
		}
		p, err := compileExpr(src, ContactEnv{}, false)
		if err != nil {
			return t, err
		}
		t.lits = append(t.lits, rest[:i])
		t.progs = append(t.progs, p)
		rest = rest[i+j+2:]
	}
}

// render fills the holes; null renders as nothing, numbers with at most two
// decimals.
func (t *template) render(x *Evaluator) string {
	var b strings.Builder
	for i, lit := range t.lits {
		b.WriteString(lit)
		if i < len(t.progs) {
			b.WriteString(formatValue(x.run(t.progs[i])))
		}
	}
	return b.String()
}

func formatValue(v any) string {
	if v == nil {
		return ""
	}
	if f, ok := toFloat(v); ok {
		return formatNumber(f)
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func formatNumber(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
