package traffic

import (
	"math"
	"strconv"
	"time"
)

func appendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

type kind uint8

const (
	kStr kind = iota
	kNum
	kBool
	kURL // prefix + s
	kSeq // prefix + n as a whole number
)

// field is one key of properties or traits.
type field struct {
	key    string
	kind   kind
	s      string
	prefix string
	n      float64
	b      bool
}

// rawEvent is the event being built, reused from one event to the next.
type rawEvent struct {
	typ, userID, anonID, event, name string
	t                                int64
	props, traits                    []field
	ua, ip, site                     string
	campaign                         int8
}

func (r *rawEvent) reset(t int64) {
	r.typ, r.userID, r.anonID, r.event, r.name = "", "", "", "", ""
	r.t = t
	r.props = r.props[:0]
	r.traits = r.traits[:0]
}

func (r *rawEvent) track(name string) { r.typ, r.event = "track", name }

func (r *rawEvent) str(k, v string) { r.props = append(r.props, field{key: k, s: v}) }

func (r *rawEvent) num(k string, v float64) {
	r.props = append(r.props, field{key: k, kind: kNum, n: v})
}

func (r *rawEvent) url(k, prefix, path string) {
	r.props = append(r.props, field{key: k, kind: kURL, prefix: prefix, s: path})
}

func (r *rawEvent) tstr(k, v string) { r.traits = append(r.traits, field{key: k, s: v}) }

func (r *rawEvent) tnum(k string, v float64) {
	r.traits = append(r.traits, field{key: k, kind: kNum, n: v})
}

func (r *rawEvent) productProps(p *product) {
	r.str("product_id", p.id)
	r.str("name", p.name)
	r.str("category", categories[p.category])
	r.num("price", p.price)
	r.str("currency", "EUR")
}

func (f *field) value() any {
	switch f.kind {
	case kNum:
		return f.n
	case kBool:
		return f.b
	case kURL:
		return f.prefix + f.s
	case kSeq:
		return f.prefix + strconv.FormatUint(uint64(f.n), 10)
	}
	return f.s
}

func fieldsMap(fs []field) map[string]any {
	m := make(map[string]any, len(fs))
	for i := range fs {
		m[fs[i].key] = fs[i].value()
	}
	return m
}

func appendFields(dst []byte, fs []field) []byte {
	dst = append(dst, '{')
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.key)
		dst = append(dst, ':')
		switch f.kind {
		case kNum:
			dst = strconv.AppendFloat(dst, f.n, 'f', -1, 64)
		case kBool:
			dst = strconv.AppendBool(dst, f.b)
		case kURL:
			dst = append(dst, '"')
			dst = appendEscaped(dst, f.prefix)
			dst = appendEscaped(dst, f.s)
			dst = append(dst, '"')
		case kSeq:
			dst = append(dst, '"')
			dst = appendEscaped(dst, f.prefix)
			dst = strconv.AppendUint(dst, uint64(f.n), 10)
			dst = append(dst, '"')
		default:
			dst = appendString(dst, f.s)
		}
	}
	return append(dst, '}')
}

const libraryName, libraryVersion = "analytics.js", "5.2.1"

func (r *rawEvent) contextMap() map[string]any {
	m := map[string]any{
		"ip":        r.ip,
		"userAgent": r.ua,
		"locale":    "en-US",
		"library":   map[string]any{"name": libraryName, "version": libraryVersion},
	}
	if r.campaign >= 0 {
		c := &campaigns[r.campaign]
		m["campaign"] = map[string]any{"source": c.source, "medium": c.medium, "name": c.name}
	}
	return m
}

func (r *rawEvent) appendContext(dst []byte) []byte {
	dst = append(dst, `{"ip":`...)
	dst = appendString(dst, r.ip)
	dst = append(dst, `,"userAgent":`...)
	dst = appendString(dst, r.ua)
	dst = append(dst, `,"locale":"en-US","library":{"name":"`+libraryName+`","version":"`+libraryVersion+`"}`...)
	if r.campaign >= 0 {
		c := &campaigns[r.campaign]
		dst = append(dst, `,"campaign":{"source":`...)
		dst = appendString(dst, c.source)
		dst = append(dst, `,"medium":`...)
		dst = appendString(dst, c.medium)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, c.name)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s with JSON string escaping (no quotes).
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}
