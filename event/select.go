package event

import "slices"

// Keys selects the keys of one free-form object of an event (properties,
// traits or context) that a Decoder keeps: all of them (the zero Keys), in
// the Event's map, or only the listed ones (OnlyKeys), whose values the
// Event holds in a small array instead of a map (read them with Property,
// Trait and ContextValue).
//
// Why: the rules know when they are compiled which names they read
// (rules.Ruleset.Reads), and a typical event carries several properties no
// rule reads (url, title, referrer…). Building each into a map[string]any,
// and clearing the map for the next event, was a large part of decoding.
// Values not selected are still checked as strictly as selected ones, so
// that a selection never changes whether an event is accepted, nor the
// error it is refused with: only what the Event holds.
type Keys struct {
	only  bool     // false: every key
	names []string // sorted, each once; the keys when only
}

// OnlyKeys selects the names given (none: the object is checked, and
// nothing of it kept).
func OnlyKeys(names ...string) Keys {
	n := slices.Clone(names)
	slices.Sort(n)
	return Keys{only: true, names: slices.Compact(n)}
}

// All reports whether k selects every key.
func (k Keys) All() bool { return !k.only }

// Names returns the selected names, sorted; nil when k selects every key.
func (k Keys) Names() []string {
	if !k.only {
		return nil
	}
	return append([]string{}, k.names...)
}

// Union selects what k or o selects.
func (k Keys) Union(o Keys) Keys {
	if !k.only || !o.only {
		return Keys{}
	}
	return OnlyKeys(append(slices.Clone(k.names), o.names...)...)
}

// Equal reports whether k and o select the same keys.
func (k Keys) Equal(o Keys) bool { return k.only == o.only && slices.Equal(k.names, o.names) }

// index returns the position of key among the selected names, or -1,
// without allocating.
func (k Keys) index(key []byte) int {
	for i, n := range k.names {
		if n == string(key) {
			return i
		}
	}
	return -1
}

// Select says which keys of an event's free-form objects a Decoder keeps
// (see Keys). The zero Select keeps them all, in the Event's maps, as
// Decode does.
type Select struct {
	Properties Keys
	Traits     Keys
	Context    Keys
}

// All reports whether s keeps every key of every object.
func (s Select) All() bool { return s.Properties.All() && s.Traits.All() && s.Context.All() }

// Union selects what s or o selects.
func (s Select) Union(o Select) Select {
	return Select{Properties: s.Properties.Union(o.Properties), Traits: s.Traits.Union(o.Traits), Context: s.Context.Union(o.Context)}
}

// Equal reports whether s and o select the same keys.
func (s Select) Equal(o Select) bool {
	return s.Properties.Equal(o.Properties) && s.Traits.Equal(o.Traits) && s.Context.Equal(o.Context)
}

// The free-form objects, in the order of their values in picks.
const (
	objProperties = iota
	objTraits
	objContext
)

// picks are the values of the selected keys of an event decoded with a
// Select that lists keys: the selected properties' values by their index
// in Select.Properties' names, then the traits', then the context's. An
// object whose keys are all selected is in its map instead.
type picks struct {
	sel  Select
	buf  [4]any // the first values
	more []any  // the values after the first len(buf)
}

// keys returns the selection of object obj, and the index of its first
// value.
func (p *picks) keys(obj int) (Keys, int) {
	switch obj {
	case objProperties:
		return p.sel.Properties, 0
	case objTraits:
		return p.sel.Traits, len(p.sel.Properties.names)
	}
	return p.sel.Context, len(p.sel.Properties.names) + len(p.sel.Traits.names)
}

func (p *picks) get(i int) any {
	if i < len(p.buf) {
		return p.buf[i]
	}
	if i-len(p.buf) < len(p.more) {
		return p.more[i-len(p.buf)]
	}
	return nil
}

func (p *picks) set(i int, v any) {
	if i < len(p.buf) {
		p.buf[i] = v
		return
	}
	i -= len(p.buf)
	if i >= len(p.more) {
		n := len(p.sel.Properties.names) + len(p.sel.Traits.names) + len(p.sel.Context.names) - len(p.buf)
		p.more = append(p.more, make([]any, n-len(p.more))...)
	}
	p.more[i] = v
}

// value returns the value of key name of object obj, whose map is m.
func (e *Event) value(obj int, m map[string]any, name string) any {
	keys, base := e.picks.keys(obj)
	if !keys.only {
		return m[name]
	}
	for i, n := range keys.names {
		if n == name {
			return e.picks.get(base + i)
		}
	}
	return nil
}

// Property returns the value of property name, or nil when the event has
// none. It reads Properties, or, for an event decoded with a Select that
// lists property keys, the selected values: then a key left out reads as
// absent, and Properties is nil.
func (e *Event) Property(name string) any { return e.value(objProperties, e.Properties, name) }

// Trait is Property for traits.
func (e *Event) Trait(name string) any { return e.value(objTraits, e.Traits, name) }

// ContextValue is Property for context.
func (e *Event) ContextValue(name string) any { return e.value(objContext, e.Context, name) }

// pick moves the selected keys' values out of e's maps, which a decoder
// that read every key filled (goccy/go-json, msgpack), and drops the maps
// of the objects whose keys are selected.
func (e *Event) pick(sel *Select) {
	e.picks.sel = *sel
	for _, x := range [...]struct {
		obj int
		m   *map[string]any
	}{{objProperties, &e.Properties}, {objTraits, &e.Traits}, {objContext, &e.Context}} {
		keys, base := e.picks.keys(x.obj)
		if !keys.only {
			continue
		}
		if *x.m != nil {
			for i, n := range keys.names {
				if v, ok := (*x.m)[n]; ok {
					e.picks.set(base+i, v)
				}
			}
		}
		*x.m = nil
	}
}
