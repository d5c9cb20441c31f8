package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/internal/suggest"
)

// Var is one config key and the environment variable that overrides it.
type Var struct {
	Key string // YAML path: kafka.sasl.password
	Env string // LEADPULSE_KAFKA_SASL_PASSWORD
}

// EnvName returns the environment variable of a YAML path: LEADPULSE_ and
// the path in upper case with dots and dashes as underscores.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// Vars lists every key of the config with its environment variable, in
// the order of the Config struct.
func Vars() []Var {
	var vs []Var
	eachLeaf(reflect.TypeFor[Config](), "", func(key string, _ []int) {
		vs = append(vs, Var{Key: key, Env: EnvName(key)})
	})
	return vs
}

// eachLeaf calls f for every leaf key (not a nested section) with its field
// index path.
func eachLeaf(t reflect.Type, prefix string, f func(key string, index []int)) {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name := yamlName(sf)
			if name == "" {
				continue
			}
			idx := append(slices.Clone(index), i)
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, join(prefix, name), idx)
				continue
			}
			f(join(prefix, name), idx)
		}
	}
	walk(t, prefix, nil)
}

var durationType = reflect.TypeFor[Duration]()

// applyEnv sets the keys whose variable is in environ, and refuses unknown
// LEADPULSE_ variables.
func (c *Config) applyEnv(environ []string, ps *problems) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	known := map[string]bool{}
	root := reflect.ValueOf(c).Elem()
	eachLeaf(root.Type(), "", func(key string, index []int) {
		name := EnvName(key)
		known[name] = true
		raw, ok := env[name]
		if !ok {
			return
		}
		fv := root.FieldByIndex(index)
		if err := c.setFromEnv(fv, name, raw); err != nil {
			*ps = append(*ps, Problem{Where: "$" + name, Key: key, Msg: err.Error()})
			return
		}
		c.origin[key] = "$" + name
	})
	var unknown []string
	for k := range env {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		msg := "unknown variable: every LEADPULSE_ variable names a config key (see `leadpulse run --help` and the README)"
		if s := suggest.Closest(k, slices.Collect(maps.Keys(known))); s != "" {
			msg = fmt.Sprintf("unknown variable; did you mean %s?", s)
		}
		*ps = append(*ps, Problem{Where: "$" + k, Msg: msg})
	}
}

func (c *Config) setFromEnv(fv reflect.Value, name, raw string) error {
	switch {
	case fv.Type() == durationType:
		d, err := parseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration; write e.g. 500ms, 30s, 5m or 2160h", raw)
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(raw)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		fv.SetBool(b)
	case fv.CanInt():
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number (%d-bit)", raw, fv.Type().Bits())
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		var list []string
		for s := range strings.SplitSeq(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		fv.Set(reflect.ValueOf(list).Convert(fv.Type()))
	case fv.Type() == reflect.TypeFor[map[string]string]():
		m := map[string]string{}
		for kv := range strings.SplitSeq(raw, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("%q: want key=value pairs separated by commas, e.g. retention.ms=604800000,segment.bytes=1073741824", kv)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		fv.Set(reflect.ValueOf(m))
	case fv.Type() == reflect.TypeFor[map[string]any]():
		// A YAML mapping (flow or block); parsed strictly by sinks.Parse (SinksSource).
		var m map[string]any
		if err := yaml.Unmarshal([]byte(raw), &m); err != nil {
			return fmt.Errorf("want a YAML mapping such as {log: {type: stdout}}: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		fv.Set(reflect.ValueOf(m))
		c.sinksName, c.sinksSrc = "$"+name, []byte(raw)
	default:
		return fmt.Errorf("cannot be set from the environment (a bug: type %s)", fv.Type())
	}
	return nil
}
