package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// template is a message with `{{ expr }}` holes, each a contact-condition
// expression compiled once, and optional groups `[[ … ]]`: a group is left
// out whole when any hole inside it renders empty (null or ""), so that
// missing values take their punctuation with them:
//
//	{{ traits.email ?? contact }}[[ ({{ traits.title }})]][[ at {{ traits.company }}]]
//
// renders "ana@acme.io (CTO) at Acme", "ana@acme.io at Acme" or "u-1".
// Groups do not nest; a group needs at least one hole.
type template struct {
	parts []tmplPart
	progs []*program // every hole, in order (for the analysis of names)
}

// tmplPart is a literal, a hole (prog), or an optional group.
type tmplPart struct {
	lit   string
	prog  *program
	group []tmplPart
}

func parseTemplate(s string) (*template, error) {
	t := &template{}
	var (
		cur     = &t.parts // where parts go: the template, or the open group
		inGroup bool
		group   []tmplPart
		holes   int // holes in the open group
	)
	rest := s
	for {
		i := indexAny(rest, "{{", "[[", "]]")
		if i < 0 {
			if inGroup {
				return t, fmt.Errorf("`[[` without `]]` in %q", s)
			}
			if rest != "" {
				*cur = append(*cur, tmplPart{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			*cur = append(*cur, tmplPart{lit: rest[:i]})
		}
		tok := rest[i : i+2]
		rest = rest[i+2:]
		switch tok {
		case "[[":
			if inGroup {
				return t, fmt.Errorf("`[[` inside `[[ ]]` in %q: optional groups do not nest", s)
			}
			inGroup, group, holes = true, nil, 0
			cur = &group
		case "]]":
			if !inGroup {
				return t, fmt.Errorf("`]]` without `[[` in %q", s)
			}
			if holes == 0 {
				return t, fmt.Errorf("`[[ ]]` without a `{{ }}` in %q: a group is left out when a value inside it is missing, so it needs one", s)
			}
			inGroup = false
			t.parts = append(t.parts, tmplPart{group: group})
			cur = &t.parts
		case "{{":
			j := strings.Index(rest, "}}")
			if j < 0 {
				return t, fmt.Errorf("`{{` without `}}` in %q", s)
			}
			src := strings.TrimSpace(rest[:j])
			if src == "" {
				return t, fmt.Errorf("empty `{{ }}` in %q", s)
			}
			p, err := compileExpr(src, ContactEnv{}, false)
			if err != nil {
				return t, err
			}
			*cur = append(*cur, tmplPart{prog: p})
			t.progs = append(t.progs, p)
			holes++
			rest = rest[j+2:]
		}
	}
}

// indexAny returns the first index in s of any of the tokens, or -1.
func indexAny(s string, tokens ...string) int {
	first := -1
	for _, tok := range tokens {
		if i := strings.Index(s, tok); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

// render fills the holes; null renders as nothing, numbers with at most two
// decimals; a group with an empty hole is left out.
func (t *template) render(x *Evaluator) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.group != nil:
			if s, ok := renderGroup(p.group, x); ok {
				b.WriteString(s)
			}
		case p.prog != nil:
			b.WriteString(formatValue(x.run(p.prog)))
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

func renderGroup(parts []tmplPart, x *Evaluator) (string, bool) {
	var b strings.Builder
	for _, p := range parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v := formatValue(x.run(p.prog))
		if v == "" {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
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
