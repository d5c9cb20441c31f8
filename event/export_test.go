package event

// For the external tests: the previous decoder, and whether the scanner
// reads a record itself.
var (
	RefDecode     = refDecode
	RefDecodeInto = refDecodeInto
	Scanned       = scanned
)

// scanned reports whether the scanner reads the JSON record b itself,
// without leaving it to goccy/go-json.
func scanned(b []byte, skipContext bool) bool {
	b = trimJSON(b)
	var e Event
	return len(b) > 0 && b[0] == '{' && scanJSON(&e, b, &options{skipContext: skipContext})
}

// ClearPicks drops the selected values an event holds (Event.Property), so
// that reflect.DeepEqual compares the rest.
func ClearPicks(e *Event) { e.picks = picks{} }
