package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/leadpulse/leadpulse/internal/suggest"
)

// EventEnv is what an event condition (`on`, `match`, sequence steps,
// `after`, `unless`) sees: the event's fields as top-level names, and
// `contact` as it was before the event.
type EventEnv struct {
	Type        string         `expr:"type"`
	Event       string         `expr:"event"`
	Name        string         `expr:"name"`
	UserID      string         `expr:"userId"`
	AnonymousID string         `expr:"anonymousId"`
	PreviousID  string         `expr:"previousId"`
	MessageID   string         `expr:"messageId"`
	Timestamp   time.Time      `expr:"timestamp"`
	Properties  map[string]any `expr:"properties"`
	Traits      map[string]any `expr:"traits"`
	Context     map[string]any `expr:"context"`
	Contact     *ContactEnv    `expr:"contact"`
}

// ContactEnv is what a contact condition (`if`, `when`, `route.by`, message
// templates) sees. Trigger and Action are set while an action is prepared.
type ContactEnv struct {
	ID         string             `expr:"id"`
	Score      float64            `expr:"score"`
	Fit        float64            `expr:"fit"`
	Engagement float64            `expr:"engagement"`
	Windows    map[string]float64 `expr:"windows"`
	Traits     map[string]any     `expr:"traits"`
	Stage      string             `expr:"stage"`
	Event      *EventEnv          `expr:"event"`
	Trigger    string             `expr:"trigger"`
	Action     string             `expr:"action"`
	ContactID  string             `expr:"contact"`
}

// The two compilations of an expression.
//
// Validation compiles each expression against the typed schema (EventEnv or
// ContactEnv), so that an unknown name or a type error is a load-time
// problem with a line number. That program is never run.
//
// The program that runs is compiled against a flat map environment: every
// dotted path rooted at a known name (`properties.path`, `traits.industry`,
// `windows.pricing_views_7d`, `contact.score`) becomes one identifier,
// which the VM reads with a single map lookup (OpLoadFast), without
// reflection and without allocating. The evaluator fills the map once per
// event with exactly the paths the rules use (see env.go).
//
// Both compilations make null safe (SPEC §2): a missing field is null and
// never an error. Where an operand may be null:
//   - an ordering comparison (<, <=, >, >=) gets `operand ?? NaN`, and every
//     comparison with NaN is false;
//   - a string test (startsWith, endsWith, contains, matches) of a name
//     against a constant becomes `name != nil && name op constant`; of
//     another operand, `operand ?? nullText`, a text the constant is checked
//     at compile time not to match, so the test is false;
//   - anything else falls back to a function call that is false on null;
//   - a remaining member access (an index, or a field of a computed value)
//     becomes optional chaining.
//
// The rewrites keep the VM on its native operators: a function call costs an
// allocation per run, and these conditions run several times per event.
type nullSafe struct{}

// nullText stands for null in string tests.
const nullText = "\x00\uFFFFleadpulse-null\uFFFF\x00"

var nullSafeFuncs = map[string]string{
	"<": "lp_lt", ">": "lp_gt", "<=": "lp_le", ">=": "lp_ge",
	"startsWith": "lp_startsWith", "endsWith": "lp_endsWith",
	"contains": "lp_contains", "matches": "lp_matches",
}

func (nullSafe) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if !n.Optional && !n.Method {
			n.Optional = true
			ast.Patch(node, &ast.ChainNode{Node: n})
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "==", "!=":
			// A typed field reached through optional chaining (event.type in
			// a contact condition, in the typed schema) compiles to a typed
			// comparison that cannot take null: compare generically.
			if typedChain(n.Left) || typedChain(n.Right) {
				fn := "lp_eq"
				if n.Operator == "!=" {
					fn = "lp_ne"
				}
				patchCall(node, fn, n)
			}
		case "<", ">", "<=", ">=":
			if nullable(n.Left) {
				n.Left = orElse(n.Left, math.NaN())
			}
			if nullable(n.Right) {
				n.Right = orElse(n.Right, math.NaN())
			}
		case "startsWith", "endsWith", "contains", "matches":
			lit, ok := n.Right.(*ast.StringNode)
			id, isIdent := n.Left.(*ast.IdentifierNode)
			switch {
			case !nullable(n.Left) && !nullable(n.Right):
			case ok && isIdent:
				// `name != nil && name op "…"`: no regexp runs on null.
				ast.Patch(node, &ast.BinaryNode{
					Operator: "&&",
					Left:     &ast.BinaryNode{Operator: "!=", Left: &ast.IdentifierNode{Value: id.Value}, Right: &ast.NilNode{}},
					Right:    n,
				})
			case ok && safeAgainstNull(n.Operator, lit.Value):
				n.Left = orElse(n.Left, nullText)
			default:
				patchCall(node, nullSafeFuncs[n.Operator], n)
			}
		}
	}
}

// nullable reports whether a node may be null at run time: optional
// chaining, or (in the flat environment) a name, since every name may be
// missing.
func nullable(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.ChainNode:
		return true
	case *ast.IdentifierNode:
		return x.Type() == nil || x.Type().Kind() == reflect.Interface
	}
	return false
}

// nestedRoots are the names whose dotted paths are flattened.
var nestedRoots = map[string]bool{
	"properties": true, "traits": true, "context": true,
	"contact": true, "windows": true, "event": true,
}

// flatten turns `root.a.b` into the identifier "root.a.b".
type flatten struct{}

func (flatten) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	prop, ok2 := m.Property.(*ast.StringNode)
	if !ok || !ok2 {
		return
	}
	root, _, _ := strings.Cut(id.Value, ".")
	if !nestedRoots[root] {
		return
	}
	ast.Patch(node, &ast.IdentifierNode{Value: id.Value + "." + prop.Value})
}

func patchCall(node *ast.Node, fn string, n *ast.BinaryNode) {
	ast.Patch(node, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fn},
		Arguments: []ast.Node{n.Left, n.Right},
	})
}

func orElse(n ast.Node, v any) ast.Node {
	return &ast.BinaryNode{Operator: "??", Left: n, Right: &ast.ConstantNode{Value: v}}
}

// safeAgainstNull reports whether the test with this constant is false for
// nullText, so that nullText can stand for null.
func safeAgainstNull(op, lit string) bool {
	switch op {
	case "startsWith":
		return lit != "" && !strings.HasPrefix(nullText, lit)
	case "endsWith":
		return lit != "" && !strings.HasSuffix(nullText, lit)
	case "contains":
		return lit != "" && !strings.Contains(nullText, lit)
	case "matches":
		re, err := regexp.Compile(lit)
		return err == nil && !re.MatchString(nullText)
	}
	return false
}

// typedChain reports whether n is optional chaining to a field of a concrete
// (non-interface) type.
func typedChain(n ast.Node) bool {
	c, ok := n.(*ast.ChainNode)
	if !ok {
		return false
	}
	t := c.Node.Type()
	return t != nil && t.Kind() != reflect.Interface
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float32:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// compare orders a and b: numbers as numbers, strings as strings, times as
// times. ok is false for null or mismatched operands.
func compare(a, b any) (c int, ok bool) {
	if x, okx := toFloat(a); okx {
		y, oky := toFloat(b)
		if !oky || math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	switch x := a.(type) {
	case string:
		y, oky := b.(string)
		if !oky {
			return 0, false
		}
		return strings.Compare(x, y), true
	case time.Time:
		y, oky := b.(time.Time)
		if !oky {
			return 0, false
		}
		return x.Compare(y), true
	}
	return 0, false
}

func cmpFunc(name string, pred func(int) bool) expr.Option {
	return expr.Function(name, func(p ...any) (any, error) {
		c, ok := compare(p[0], p[1])
		return ok && pred(c), nil
	}, new(func(any, any) bool))
}

func strFunc(name string, pred func(a, b string) bool) expr.Option {
	return expr.Function(name, func(p ...any) (any, error) {
		a, ok1 := p[0].(string)
		b, ok2 := p[1].(string)
		return ok1 && ok2 && pred(a, b), nil
	}, new(func(any, any) bool))
}

// regexps caches compiled patterns of `matches`; patterns are nearly always
// constants, so the cache stays as small as the rules file.
var regexps sync.Map // string -> *regexp.Regexp or error

func matchRegexp(s, pattern string) bool {
	v, ok := regexps.Load(pattern)
	if !ok {
		re, err := regexp.Compile(pattern)
		if err != nil {
			v = err
		} else {
			v = re
		}
		regexps.Store(pattern, v)
	}
	re, ok := v.(*regexp.Regexp)
	return ok && re.MatchString(s)
}

var exprFuncs = []expr.Option{
	cmpFunc("lp_lt", func(c int) bool { return c < 0 }),
	cmpFunc("lp_gt", func(c int) bool { return c > 0 }),
	cmpFunc("lp_le", func(c int) bool { return c <= 0 }),
	cmpFunc("lp_ge", func(c int) bool { return c >= 0 }),
	strFunc("lp_startsWith", strings.HasPrefix),
	strFunc("lp_endsWith", strings.HasSuffix),
	strFunc("lp_contains", strings.Contains),
	strFunc("lp_matches", matchRegexp),
	expr.Function("lp_eq", func(p ...any) (any, error) { return runtime.Equal(p[0], p[1]), nil }, new(func(any, any) bool)),
	expr.Function("lp_ne", func(p ...any) (any, error) { return !runtime.Equal(p[0], p[1]), nil }, new(func(any, any) bool)),
}

// program is a compiled expression with its source, for error messages.
type program struct {
	src  string
	line int         // line in the rules file, for messages
	p    *vm.Program // runs against the flat map environment
	typd *vm.Program // checked against the typed schema; analysed, never run

	// names are the flat identifiers the program reads; contactEnv tells
	// which environment they belong to.
	names      []string
	contactEnv bool
	boolean    bool // a condition: the result is cast to bool (null is false)

	// fast is the native form of the program, nil where it needs the VM.
	fast fastFn

	// needType and needEvent are constants the condition requires of an
	// event's type and event name ("" for none); see Evaluator.match.
	needType, needEvent string
	// rest is the native form of the condition without those conjuncts,
	// which match runs once it has checked them; nil where the condition
	// runs whole.
	rest fastFn
	// shared is 1 + the index of the result this event condition shares
	// with the others of the same text (Evaluator.match), 0 for none.
	shared int
}

// compileCond compiles a boolean condition against env (EventEnv or ContactEnv).
func compileCond(src string, env any) (*program, error) {
	return compileExpr(src, env, true)
}

func compileExpr(src string, env any, boolean bool) (*program, error) {
	opts := append([]expr.Option{expr.Env(env), expr.Patch(nullSafe{})}, exprFuncs...)
	if boolean {
		opts = append(opts, expr.AsBool())
	}
	typd, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("bad expression %q: %s%s", src, firstLine(err.Error()), nameHint(err, src, env))
	}
	if boolean {
		if err := checkPatterns(typd); err != nil {
			return nil, fmt.Errorf("bad expression %q: %w", src, err)
		}
	}
	// Declaring the schema's names keeps them ahead of expr's builtins of
	// the same name (`type`).
	opts = append([]expr.Option{expr.Env(flatSchema(env)), expr.AllowUndefinedVariables(),
		expr.Patch(flatten{}), expr.Patch(nullSafe{})}, exprFuncs...)
	if boolean {
		opts = append(opts, expr.AsBool())
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("bad expression %q: %s", src, firstLine(err.Error()))
	}
	_, contactEnv := env.(ContactEnv)
	prog := &program{src: src, p: p, typd: typd, names: identifiers(p), contactEnv: contactEnv, boolean: boolean}
	if !contactEnv && boolean {
		prog.needType, prog.needEvent = required(p.Node())
	}
	return prog, nil
}

// flatSchema declares the schema's top-level names that always hold a value
// of one type (strings, numbers, the timestamp), so that the VM compares
// them with typed operators and `type` is the event's type rather than
// expr's builtin of that name. Maps and nested values stay undeclared: their
// paths are flattened and may be null.
func flatSchema(env any) map[string]any {
	m := map[string]any{}
	t := reflect.TypeOf(env)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("expr")
		switch {
		case name == "":
		case f.Type.Kind() == reflect.String:
			m[name] = ""
		case f.Type.Kind() == reflect.Float64:
			m[name] = 0.0
		case f.Type == reflect.TypeOf(time.Time{}):
			m[name] = time.Time{}
		}
	}
	return m
}

// identifiers lists the names a program reads from its environment.
func identifiers(p *vm.Program) []string {
	seen := map[string]bool{}
	var out []string
	walk(p, visitorFunc(func(n *ast.Node) {
		// Function names (the lp_ helpers) are identifiers too; skip them.
		if x, ok := (*n).(*ast.IdentifierNode); ok && !seen[x.Value] && !strings.HasPrefix(x.Value, "lp_") {
			seen[x.Value] = true
			out = append(out, x.Value)
		}
	}))
	return out
}

// envNames lists the names of a schema (EventEnv or ContactEnv).
func envNames(env any) []string {
	t := reflect.TypeOf(env)
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if name := t.Field(i).Tag.Get("expr"); name != "" {
			out = append(out, name)
		}
	}
	return out
}

var (
	unknownNameRe = regexp.MustCompile(`^unknown name ([A-Za-z_$][A-Za-z0-9_$]*)`)
	noFieldRe     = regexp.MustCompile(`^type rules\.(EventEnv|ContactEnv) has no field ([A-Za-z_$][A-Za-z0-9_$]*)`)
	stringFieldRe = regexp.MustCompile(`^type string has no field ([A-Za-z_$][A-Za-z0-9_$]*)`)
)

// nameHint is "; did you mean NAME?" for a compile error about a name that
// is a likely typo of a known one, else "".
func nameHint(err error, src string, env any) string {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return ""
	}
	_, isEvent := env.(EventEnv)
	// The contact's own values, as an event condition reaches them.
	contactValues := slices.DeleteFunc(envNames(ContactEnv{}), func(n string) bool {
		return n == "contact" || n == "event" || n == "trigger" || n == "action"
	})
	if m := unknownNameRe.FindStringSubmatch(fe.Message); m != nil {
		name := m[1]
		if s := suggest.Closest(name, envNames(env)); s != "" {
			return fmt.Sprintf("; did you mean %s?", s)
		}
		if isEvent {
			if !slices.Contains(contactValues, name) {
				name = suggest.Closest(name, contactValues)
			}
			if name != "" {
				return fmt.Sprintf("; in an event condition the contact's values are under `contact.`: did you mean contact.%s?", name)
			}
		}
		return ""
	}
	if m := noFieldRe.FindStringSubmatch(fe.Message); m != nil {
		schema := any(EventEnv{})
		if m[1] == "ContactEnv" {
			schema = ContactEnv{}
		}
		if s := suggest.Closest(m[2], envNames(schema)); s != "" {
			return fmt.Sprintf("; did you mean %s?", s)
		}
		return ""
	}
	if m := stringFieldRe.FindStringSubmatch(fe.Message); m != nil && !isEvent && strings.Contains(src, "contact."+m[1]) {
		// In a contact condition `contact` is the contact's id.
		hint := "; in a contact condition `contact` is the contact's id and its values are top-level names"
		if s := suggest.Closest(m[1], contactValues); s != "" || slices.Contains(contactValues, m[1]) {
			if s == "" {
				s = m[1]
			}
			hint += fmt.Sprintf(": did you mean %s?", s)
		}
		return hint
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// checkPatterns rejects a constant `matches` pattern that is not a valid
// regular expression, at load time rather than never matching silently.
func checkPatterns(p *vm.Program) error {
	var bad error
	walk(p, visitorFunc(func(n *ast.Node) {
		call, ok := (*n).(*ast.CallNode)
		if !ok || len(call.Arguments) != 2 {
			return
		}
		id, ok := call.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "lp_matches" {
			return
		}
		if s, ok := call.Arguments[1].(*ast.StringNode); ok {
			if _, err := regexp.Compile(s.Value); err != nil && bad == nil {
				bad = fmt.Errorf("pattern %q: %v", s.Value, err)
			}
		}
	}))
	return bad
}

func walk(p *vm.Program, v ast.Visitor) {
	n := p.Node()
	ast.Walk(&n, v)
}

type visitorFunc func(*ast.Node)

func (f visitorFunc) Visit(n *ast.Node) { f(n) }

// required finds the `type == "…"` and `event == "…"` conjuncts at the top
// level of an event condition.
func required(n ast.Node) (typ, evt string) {
	var visit func(ast.Node)
	visit = func(n ast.Node) {
		b, ok := n.(*ast.BinaryNode)
		if !ok {
			return
		}
		switch b.Operator {
		case "&&", "and":
			visit(b.Left)
			visit(b.Right)
		case "==":
			id, ok1 := b.Left.(*ast.IdentifierNode)
			lit, ok2 := b.Right.(*ast.StringNode)
			if !ok1 || !ok2 {
				id, ok1 = b.Right.(*ast.IdentifierNode)
				lit, ok2 = b.Left.(*ast.StringNode)
			}
			if ok1 && ok2 {
				switch id.Value {
				case "type":
					typ = lit.Value
				case "event":
					evt = lit.Value
				}
			}
		}
	}
	visit(n)
	return typ, evt
}

// withoutRequired returns the condition n without its top-level
// `type == typ` and `event == evt` conjuncts (required's), or nil when
// nothing is left. Given those hold, the rest is true exactly when n is.
func withoutRequired(n ast.Node, typ, evt string) ast.Node {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return n
	}
	switch b.Operator {
	case "&&", "and":
		l, r := withoutRequired(b.Left, typ, evt), withoutRequired(b.Right, typ, evt)
		switch {
		case l == nil:
			return r
		case r == nil:
			return l
		case l == b.Left && r == b.Right:
			return n
		}
		return &ast.BinaryNode{Operator: b.Operator, Left: l, Right: r}
	case "==":
		id, ok1 := b.Left.(*ast.IdentifierNode)
		lit, ok2 := b.Right.(*ast.StringNode)
		if !ok1 || !ok2 {
			id, ok1 = b.Right.(*ast.IdentifierNode)
			lit, ok2 = b.Left.(*ast.StringNode)
		}
		if ok1 && ok2 && (id.Value == "type" && lit.Value == typ || id.Value == "event" && lit.Value == evt) {
			return nil
		}
	}
	return n
}

// names lists the member properties read from the identifier root (for
// example the window names of `windows.NAME`), for validation.
func memberNames(p *vm.Program, root string) []string {
	var out []string
	walk(p, visitorFunc(func(n *ast.Node) {
		m, ok := (*n).(*ast.MemberNode)
		if !ok {
			return
		}
		if !isRoot(m.Node, root) {
			return
		}
		if s, ok := m.Property.(*ast.StringNode); ok {
			out = append(out, s.Value)
		}
	}))
	return out
}

// isRoot reports whether n reads the name root: the identifier, or in an
// event condition `contact.root` (the contact before the event).
func isRoot(n ast.Node, root string) bool {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node
	}
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value == root
	case *ast.MemberNode:
		id, ok1 := x.Node.(*ast.IdentifierNode)
		prop, ok2 := x.Property.(*ast.StringNode)
		return ok1 && ok2 && id.Value == "contact" && prop.Value == root
	}
	return false
}

// usesIdent reports whether the program reads the top-level name.
func usesIdent(p *vm.Program, name string) bool {
	found := false
	walk(p, visitorFunc(func(n *ast.Node) {
		if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == name {
			found = true
		}
	}))
	return found
}
