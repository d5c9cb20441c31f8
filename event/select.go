package event

import "slices"

// Keys selects the keys of one free-form object of an event (properties,
// traits or context) that a Decoder builds into the Event's map: all of
// them (the zero Keys), or only the listed ones (OnlyKeys).
//
// Why: the rules know when they are compiled which names they read
// (rules.Ruleset.Reads), and a typical event carries several properties no
// rule reads (url, title, referrer…). Building each into a map[string]any
// (a string and a map entry apiece) was the largest part of decoding.
// Unselected values are still checked as strictly as selected ones, so
// that a selection never changes whether an event is accepted, nor the
// error it is refused with; only what the map holds.
type Keys struct {
	only  bool     // false: every key
	names []string // sorted, each once; the keys when only
}

// OnlyKeys selects the names given (none: the object is checked, and its
// map left nil).
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
	return slices.Clone(k.names)
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

// lookup returns the selected name that key spells, without allocating.
func (k Keys) lookup(key []byte) (string, bool) {
	for _, n := range k.names {
		if n == string(key) {
			return n, true
		}
	}
	return "", false
}

// filter deletes from m the keys k does not select.
func (k Keys) filter(m map[string]any) {
	if !k.only {
		return
	}
	for key := range m {
		if _, ok := slices.BinarySearch(k.names, key); !ok {
			delete(m, key)
		}
	}
}

// Select says which keys of an event's free-form objects a Decoder builds
// (see Keys). The zero Select builds them all, as Decode does.
type Select struct {
	Properties Keys
	Traits     Keys
	Context    Keys
}

// All reports whether s builds every key of every object.
func (s Select) All() bool { return s.Properties.All() && s.Traits.All() && s.Context.All() }

// Union selects what s or o selects.
func (s Select) Union(o Select) Select {
	return Select{Properties: s.Properties.Union(o.Properties), Traits: s.Traits.Union(o.Traits), Context: s.Context.Union(o.Context)}
}

// Equal reports whether s and o select the same keys.
func (s Select) Equal(o Select) bool {
	return s.Properties.Equal(o.Properties) && s.Traits.Equal(o.Traits) && s.Context.Equal(o.Context)
}

// filter deletes from e's maps the keys s does not select.
func (s Select) filter(e *Event) {
	s.Properties.filter(e.Properties)
	s.Traits.filter(e.Traits)
	s.Context.filter(e.Context)
}
