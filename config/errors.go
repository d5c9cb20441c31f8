package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/internal/suggest"
)

// ErrInvalid is matched (errors.Is) by every error of Load about the
// config's content.
var ErrInvalid = errors.New("invalid deployment config")

// Problem is one thing wrong with the config.
type Problem struct {
	Where string // "FILE:LINE", "$LEADPULSE_…", or the file name alone (a default)
	Key   string // the YAML path, e.g. kafka.sasl.mechanism; "" for a syntax error
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem of a config; the config is refused whole.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

type problems []Problem

// add records a problem with keys[0] and says where the first key that was
// set came from.
func (ps *problems) add(c *Config, keys []string, format string, args ...any) {
	where := ""
	for _, k := range keys {
		if w := c.origin[k]; w != "" {
			where = w
			break
		}
	}
	if where == "" {
		where = c.file
	}
	*ps = append(*ps, Problem{Where: where, Key: keys[0], Msg: fmt.Sprintf(format, args...)})
}

var (
	lineRe    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRe = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// yamlProblems turns a YAML error into FILE:LINE problems, naming unknown
// keys by their place in the config.
func yamlProblems(file string, err error) []Problem {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var ps []Problem
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		where := file
		if sm := lineRe.FindStringSubmatch(m); sm != nil {
			where, m = file+":"+sm[1], sm[2]
		}
		if sm := unknownRe.FindStringSubmatch(m); sm != nil {
			in := sectionOf[sm[2]]
			keys := keysOf(reflect.TypeFor[Config]())
			if in != "" {
				keys = keysOf(typeOfSection[in])
			}
			hint := ""
			if s := suggest.Closest(sm[1], keys); s != "" {
				hint = fmt.Sprintf("did you mean %q? ", s)
			}
			if in == "" {
				m = fmt.Sprintf("unknown key %q at the top level; %sthe keys are %s", sm[1], hint, strings.Join(keys, ", "))
			} else {
				m = fmt.Sprintf("unknown key %q in %s:; %sthe keys there are %s", sm[1], in, hint, strings.Join(keys, ", "))
			}
		}
		ps = append(ps, Problem{Where: where, Msg: m})
	}
	return ps
}

// sectionOf maps a struct type name to its YAML path (the first one: TLS is
// both kafka.tls and redis.tls), for messages about unknown keys.
var (
	sectionOf     = map[string]string{}
	typeOfSection = map[string]reflect.Type{}
)

func init() {
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" || f.Type.Kind() != reflect.Struct {
				continue
			}
			path := join(prefix, name)
			tn := f.Type.String() // as yaml names it: config.Kafka, tlsconf.Options
			if _, ok := sectionOf[tn]; !ok {
				sectionOf[tn] = path
				typeOfSection[path] = f.Type
			} else {
				sectionOf[tn] += " or " + path
				typeOfSection[sectionOf[tn]] = f.Type
			}
			walk(f.Type, path)
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

func keysOf(t reflect.Type) []string {
	var ks []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" {
			ks = append(ks, n)
		}
	}
	return ks
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
