package rules

import (
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
)

// fastFn evaluates a program natively over the environment's slots. ok is
// false where the VM would have raised a runtime error (an operand of the
// wrong type), which — like any runtime error — makes the result null.
type fastFn func(e *env) (v any, ok bool)

// compileFast turns the patched, flattened tree of a program into Go
// closures when every node is of the small set that rules conditions are
// made of: names, literals, ==, !=, <, <=, >, >=, &&, ||, !, ??, in (a
// constant list), startsWith, endsWith, contains and matches (a constant
// pattern). Anything else returns nil and the program runs on the expr VM.
//
// The closures follow the VM's semantics for these operators exactly; the
// semantics tests run every condition through whichever path it takes. They
// exist because a VM run costs about 1,000–2,000 instructions even for
// `type == "page" && properties.path startsWith "/pricing"`, most of it
// generic dispatch and reflection, and several conditions run per event.
func compileProgram(p *program, b *envBindings) fastFn {
	f := compileFast(p.p.Node(), b)
	if f == nil || !p.boolean {
		return f
	}
	// A condition ends with the VM's cast to bool: null is false, any
	// other non-bool an error.
	return func(s *env) (any, bool) {
		v, ok := f(s)
		if !ok {
			return nil, false
		}
		switch v.(type) {
		case nil:
			return false, true
		case bool:
			return v, true
		}
		return nil, false
	}
}

// compileRest compiles the part of an event condition that match runs once
// it has checked the `type ==` and `event ==` constants the condition
// requires (program.rest); nil where the condition runs whole.
func compileRest(p *program, b *envBindings) fastFn {
	if p.fast == nil || p.needType == "" && p.needEvent == "" {
		return nil
	}
	rest := withoutRequired(p.p.Node(), p.needType, p.needEvent)
	if rest == nil {
		return alwaysTrue
	}
	return compileFast(rest, b)
}

// alwaysTrue is the condition `true`.
func alwaysTrue(*env) (any, bool) { return true, true }

func compileFast(n ast.Node, b *envBindings) fastFn {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		i := b.slot(n.Value)
		if i < 0 {
			return nil
		}
		return func(s *env) (any, bool) { return s.get(i), true }
	case *ast.StringNode:
		v := any(n.Value)
		return func(*env) (any, bool) { return v, true }
	case *ast.IntegerNode:
		v := any(n.Value)
		return func(*env) (any, bool) { return v, true }
	case *ast.FloatNode:
		v := any(n.Value)
		return func(*env) (any, bool) { return v, true }
	case *ast.BoolNode:
		v := any(n.Value)
		return func(*env) (any, bool) { return v, true }
	case *ast.NilNode:
		return func(*env) (any, bool) { return nil, true }
	case *ast.ConstantNode:
		switch n.Value.(type) {
		case string, float64, int, bool, nil:
			v := n.Value
			return func(*env) (any, bool) { return v, true }
		}
		return nil
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := compileFast(n.Node, b)
		if x == nil {
			return nil
		}
		return func(s *env) (any, bool) {
			v, ok := x(s)
			b, isBool := v.(bool)
			if !ok || !isBool {
				return nil, false
			}
			return !b, true
		}
	case *ast.BinaryNode:
		return compileBinary(n, b)
	}
	return nil
}

func compileBinary(n *ast.BinaryNode, b *envBindings) fastFn {
	if f := compileUnboxed(n, b); f != nil {
		return f
	}
	l := compileFast(n.Left, b)
	if l == nil {
		return nil
	}
	switch n.Operator {
	case "in":
		return compileIn(l, n.Right)
	case "matches":
		lit, ok := n.Right.(*ast.StringNode)
		if !ok {
			return nil
		}
		re, err := regexp.Compile(lit.Value)
		if err != nil {
			return nil
		}
		return func(s *env) (any, bool) {
			v, ok := l(s)
			str, isStr := v.(string)
			if !ok || !isStr {
				return nil, false
			}
			return re.MatchString(str), true
		}
	}
	r := compileFast(n.Right, b)
	if r == nil {
		return nil
	}
	switch n.Operator {
	case "&&", "and":
		return func(s *env) (any, bool) {
			a, ok := l(s)
			ab, isBool := a.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if !ab {
				return false, true
			}
			b, ok := r(s)
			bb, isBool := b.(bool)
			if !ok || !isBool {
				return nil, false
			}
			return bb, true
		}
	case "||", "or":
		return func(s *env) (any, bool) {
			a, ok := l(s)
			ab, isBool := a.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if ab {
				return true, true
			}
			b, ok := r(s)
			bb, isBool := b.(bool)
			if !ok || !isBool {
				return nil, false
			}
			return bb, true
		}
	case "??":
		return func(s *env) (any, bool) {
			a, ok := l(s)
			if !ok {
				return nil, false
			}
			if a != nil {
				return a, true
			}
			return r(s)
		}
	case "==", "!=":
		neg := n.Operator == "!="
		if _, ok := n.Right.(*ast.NilNode); ok {
			// `x != nil`, which the null-safe rewrite puts before string
			// tests: runtime.Equal(x, nil) is whether x is nil.
			return func(s *env) (any, bool) {
				a, ok := l(s)
				if !ok {
					return nil, false
				}
				return isNil(a) != neg, true
			}
		}
		if lit, ok := n.Right.(*ast.StringNode); ok {
			c := lit.Value
			return func(s *env) (any, bool) {
				a, ok := l(s)
				if !ok {
					return nil, false
				}
				str, isStr := a.(string)
				return (isStr && str == c) != neg, true
			}
		}
		return func(s *env) (any, bool) {
			a, ok1 := l(s)
			b, ok2 := r(s)
			if !ok1 || !ok2 {
				return nil, false
			}
			return runtime.Equal(a, b) != neg, true
		}
	case "<", ">", "<=", ">=":
		pred := orderPred(n.Operator)
		return func(s *env) (any, bool) {
			a, ok1 := l(s)
			b, ok2 := r(s)
			if !ok1 || !ok2 {
				return nil, false
			}
			return order(a, b, pred)
		}
	case "startsWith", "endsWith", "contains":
		var f func(a, b string) bool
		switch n.Operator {
		case "startsWith":
			f = strings.HasPrefix
		case "endsWith":
			f = strings.HasSuffix
		default:
			f = strings.Contains
		}
		if lit, ok := n.Right.(*ast.StringNode); ok {
			// `path startsWith "/pricing"`: the constant is read once,
			// here, not through a closure and a type switch per event.
			c := lit.Value
			if n.Operator == "startsWith" {
				return func(s *env) (any, bool) {
					a, ok := l(s)
					as, isStr := a.(string)
					if !ok || !isStr {
						return nil, false
					}
					return strings.HasPrefix(as, c), true
				}
			}
			return func(s *env) (any, bool) {
				a, ok := l(s)
				as, isStr := a.(string)
				if !ok || !isStr {
					return nil, false
				}
				return f(as, c), true
			}
		}
		return func(s *env) (any, bool) {
			a, ok1 := l(s)
			b, ok2 := r(s)
			as, isStr1 := a.(string)
			bs, isStr2 := b.(string)
			if !ok1 || !ok2 || !isStr1 || !isStr2 {
				return nil, false
			}
			return f(as, bs), true
		}
	}
	return nil
}

// compileIn handles `x in [literals]`, which expr's optimizer turns into a
// constant set for strings.
func compileIn(l fastFn, right ast.Node) fastFn {
	set := map[string]struct{}{}
	switch r := right.(type) {
	case *ast.ConstantNode:
		m, ok := r.Value.(map[string]struct{})
		if !ok {
			return nil
		}
		set = m
	case *ast.ArrayNode:
		for _, e := range r.Nodes {
			str, ok := e.(*ast.StringNode)
			if !ok {
				return nil
			}
			set[str.Value] = struct{}{}
		}
	default:
		return nil
	}
	return func(s *env) (any, bool) {
		v, ok := l(s)
		if !ok {
			return nil, false
		}
		switch x := v.(type) {
		case string:
			_, in := set[x]
			return in, true
		case nil:
			return false, true // null is in no list
		}
		return nil, false // the VM cannot look a non-string up in a string set
	}
}

func orderPred(op string) func(int) bool {
	switch op {
	case "<":
		return func(c int) bool { return c < 0 }
	case ">":
		return func(c int) bool { return c > 0 }
	case "<=":
		return func(c int) bool { return c <= 0 }
	}
	return func(c int) bool { return c >= 0 }
}

// order applies an ordering comparison as the VM does: numbers of any kind
// with each other (NaN compares false), strings with strings, times with
// times; anything else is a runtime error.
func order(a, b any, pred func(int) bool) (any, bool) {
	if x, ok := toFloat(a); ok {
		y, ok := toFloat(b)
		if !ok {
			return nil, false
		}
		if math.IsNaN(x) || math.IsNaN(y) {
			return false, true
		}
		switch {
		case x < y:
			return pred(-1), true
		case x > y:
			return pred(1), true
		}
		return pred(0), true
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return nil, false
		}
		return pred(strings.Compare(x, y)), true
	case time.Time:
		y, ok := b.(time.Time)
		if !ok {
			return nil, false
		}
		return pred(x.Compare(y)), true
	}
	return nil, false
}

// compileUnboxed compiles the comparisons of a name with a constant that
// conditions are mostly made of — `type == "page"`, `score >= 100`,
// `windows.pricing_views_7d >= 3` — reading the name through its unboxed
// getter (binding.str, binding.num): no interface, no allocation, no
// interning. It returns nil for anything else. The results are those of the
// general closures below: a string getter's ok is false exactly where the
// boxed value is not a string, and a number getter's value is never null.
func compileUnboxed(n *ast.BinaryNode, b *envBindings) fastFn {
	switch n.Operator {
	case "==", "!=":
		id, ok1 := n.Left.(*ast.IdentifierNode)
		lit, ok2 := n.Right.(*ast.StringNode)
		if !ok1 || !ok2 {
			return nil
		}
		i := b.slot(id.Value)
		if i < 0 || b.all[i].str == nil {
			return nil
		}
		get, c, neg := b.all[i].str, lit.Value, n.Operator == "!="
		return func(e *env) (any, bool) {
			s, ok := get(e.x)
			return (ok && s == c) != neg, true
		}
	case "<", ">", "<=", ">=":
		l, lc, lok := numOperand(n.Left, b)
		r, rc, rok := numOperand(n.Right, b)
		if !lok || !rok || (l == nil && r == nil) {
			return nil
		}
		pred := orderPred(n.Operator)
		return func(e *env) (any, bool) {
			x, y := lc, rc
			if l != nil {
				x = l(e.x)
			}
			if r != nil {
				y = r(e.x)
			}
			if math.IsNaN(x) || math.IsNaN(y) {
				return false, true
			}
			switch {
			case x < y:
				return pred(-1), true
			case x > y:
				return pred(1), true
			}
			return pred(0), true
		}
	}
	return nil
}

// numOperand is an operand that is always a number: a name with a number
// getter (get), possibly behind `?? default`, which never applies to it, or
// a numeric constant (c, with get nil). ok is false otherwise.
func numOperand(n ast.Node, b *envBindings) (get numGetter, c float64, ok bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		if i := b.slot(n.Value); i >= 0 && b.all[i].num != nil {
			return b.all[i].num, 0, true
		}
	case *ast.BinaryNode:
		if n.Operator == "??" {
			if id, ok := n.Left.(*ast.IdentifierNode); ok {
				return numOperand(id, b)
			}
		}
	case *ast.IntegerNode:
		return nil, float64(n.Value), true
	case *ast.FloatNode:
		return nil, n.Value, true
	case *ast.ConstantNode:
		if f, ok := toFloat(n.Value); ok {
			switch n.Value.(type) {
			case int, float64:
				return nil, f, true
			}
		}
	}
	return nil, 0, false
}

// isNil is runtime.IsNil, without reflection for the values names hold.
func isNil(v any) bool {
	switch v.(type) {
	case nil:
		return true
	case string, float64, int, bool, int64, time.Time:
		return false
	}
	return runtime.IsNil(v)
}
