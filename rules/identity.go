package rules

import (
	"math"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/state"
)

// Identity is the rules file's `identity:` section (SPEC §6): whether an
// anonymous visitor's state merges into the user it identifies as, how many
// anonymous ids one user may absorb, and which ids are never identities.
// The zero section (no `identity:` key) is the default.
type Identity struct {
	// Merge links anonymous ids to users and merges their state. false:
	// anonymous and known ids stay separate contacts. default: true
	Merge bool
	// MaxAnonymous is how many anonymous ids one user may absorb; later
	// links are conflicts. default: 100
	MaxAnonymous int
	// Blocked are ids that are never identities, matched without regard to
	// case. A list in the file replaces the default, DefaultBlocked.
	Blocked []string
	// Line is the line of the section, 0 when the file has none.
	Line int

	blocked []string // Blocked, lower-cased
	maxLen  int      // the longest blocked id, in bytes
	// ascii: every blocked id is ASCII and shorter than 64 bytes, and
	// lens has bit n set for each blocked id of n bytes. Then an ASCII id
	// matches only a blocked id of its own length (IsBlocked).
	ascii bool
	lens  uint64
}

// DefaultBlocked are the ids a sender puts where it has none: never
// identities unless the rules file lists its own.
var DefaultBlocked = []string{"", "null", "undefined", "anonymous", "unknown", "guest", "none", "0", "-1"}

// DefaultMaxAnonymous is identity.max_anonymous when the file does not set it.
const DefaultMaxAnonymous = 100

// maxMaxAnonymous bounds identity.max_anonymous: a user's state lists every
// id merged into it.
const maxMaxAnonymous = 10_000

func defaultIdentity() Identity {
	id := Identity{Merge: true, MaxAnonymous: DefaultMaxAnonymous, Blocked: DefaultBlocked}
	id.prepare()
	return id
}

func (id *Identity) prepare() {
	id.blocked = make([]string, len(id.Blocked))
	id.maxLen = 0
	id.ascii, id.lens = true, 0
	for i, b := range id.Blocked {
		id.blocked[i] = strings.ToLower(b)
		id.maxLen = max(id.maxLen, len(b))
		if len(b) >= 64 || !isASCII(b) {
			id.ascii = false
		} else {
			id.lens |= 1 << len(b)
		}
	}
}

func isASCII(s string) bool {
	var or byte
	for i := 0; i < len(s); i++ {
		or |= s[i]
	}
	return or < 0x80
}

// IsBlocked reports whether the id is in the blocked list, without regard
// to case. The empty id (absent) is never usable, whatever the list says.
func (id *Identity) IsBlocked(s string) bool {
	if s == "" {
		return true
	}
	// Case folding changes a rune's UTF-8 length by at most a factor of 3
	// (K, the Kelvin sign, is 3 bytes and folds to k): a longer id
	// cannot match, and most ids are longer.
	if len(s) > 3*id.maxLen {
		return false
	}
	// Every event asks twice (userId, anonymousId), and most ids are
	// ASCII: an ASCII id can equal an ASCII blocked id, without regard to
	// case, only if it has its length (strings.EqualFold folds A–Z alone
	// between ASCII texts; a blocked id that is not ASCII, such as the
	// Kelvin sign, which folds to k, takes the general loop).
	if id.ascii && isASCII(s) {
		if id.lens&(1<<len(s)) == 0 { // len(s) <= 3*maxLen < 192: the shift is defined, 0 past 63
			return false
		}
		for _, b := range id.blocked {
			if len(b) == len(s) && asciiEqualLower(s, b) {
				return true
			}
		}
		return false
	}
	for _, b := range id.blocked {
		if strings.EqualFold(s, b) {
			return true
		}
	}
	return false
}

// asciiEqualLower reports whether the ASCII text s equals lower, an ASCII
// lower-case text of the same length, without regard to case.
func asciiEqualLower(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Usable returns the event's ids that are identities: the userId and the
// anonymousId, each "" when absent or blocked.
func (id *Identity) Usable(userID, anonymousID string) (user, anon string) {
	if !id.IsBlocked(userID) {
		user = userID
	}
	if !id.IsBlocked(anonymousID) {
		anon = anonymousID
	}
	return user, anon
}

// Identity returns the file's identity section, with defaults filled.
func (rs *Ruleset) Identity() *Identity { return &rs.identity }

// identity reads the `identity:` section.
func (l *loader) identity(n *yaml.Node) {
	const rule = "identity"
	id := &l.rs.identity
	id.Line = n.Line
	m := l.mapping(n, rule, "identity", "merge", "max_anonymous", "blocked")
	if f, ok := m["merge"]; ok {
		switch {
		case f.val.Kind == yaml.ScalarNode && f.val.Value == "true":
			id.Merge = true
		case f.val.Kind == yaml.ScalarNode && f.val.Value == "false":
			id.Merge = false
		default:
			l.add(f.val.Line, rule, "merge must be true or false, not %q", f.val.Value)
		}
	}
	if f, ok := m["max_anonymous"]; ok {
		if v, ok := l.number(f, rule, "max_anonymous"); ok {
			if v < 1 || v > maxMaxAnonymous || v != math.Trunc(v) {
				l.add(f.val.Line, rule, "max_anonymous must be a whole number from 1 to %d (to keep anonymous and known ids apart, set `merge: false`)", maxMaxAnonymous)
			} else {
				id.MaxAnonymous = int(v)
			}
		}
	}
	if f, ok := m["blocked"]; ok {
		id.Blocked = []string{}
		seen := map[string]int{}
		for _, item := range l.seq(f.val, rule, "blocked") {
			if item.Kind != yaml.ScalarNode {
				l.add(item.Line, rule, "a blocked id must be a string, such as \"guest\"")
				continue
			}
			v := item.Value
			if item.Tag == "!!null" {
				v = "null" // `- null` unquoted: the sender's text "null"
			}
			key := strings.ToLower(v)
			if prev, dup := seen[key]; dup {
				l.add(item.Line, rule, "blocked id %q listed twice (first at line %d; ids match without regard to case)", v, prev)
				continue
			}
			seen[key] = item.Line
			id.Blocked = append(id.Blocked, v)
		}
	}
	id.prepare()
}

// ConflictKind says why a link was refused (SPEC §6, Safety). The values are
// metric label values.
type ConflictKind int

// The kinds of conflict.
const (
	// ConflictMerged: the anonymous id is already linked to another user.
	ConflictMerged ConflictKind = iota
	// ConflictKnown: the id has been a userId itself; two known users are
	// never merged.
	ConflictKnown
	// ConflictMaxAnonymous: the user has absorbed identity.max_anonymous
	// ids already.
	ConflictMaxAnonymous
	numConflictKinds
)

// ConflictKinds lists every kind, for metrics that pre-declare labels.
var ConflictKinds = []ConflictKind{ConflictMerged, ConflictKnown, ConflictMaxAnonymous}

func (k ConflictKind) String() string {
	return [...]string{"merged_elsewhere", "known", "max_anonymous"}[k]
}

// MovedTimer is a pending timer that a merge kept from the anonymous
// contact (FromAnon), or whose due time the merge changed (an inactivity
// timer, measured from the merged latest event time). The driver moves its
// index entry so that it keeps its place among timers due at the same time.
type MovedTimer struct {
	Trigger int
	Due     int64
	// FromAnon: the timer was the anonymous contact's, due at AnonDue.
	FromAnon bool
	AnonDue  int64
}

// Merge merges the state of the anonymous contact a into the user u, as
// SPEC §6 says, before the linking event is applied to u: windows and
// engagement awards are united, traits u lacks are taken from a, remembered
// messageIds are united, the latest event time and the stage are the later
// and the further, sequences keep per number of steps matched the partial
// match with the later first step, a pending timer of only one side is
// kept and of both the later due (u's on a tie); trigger arming, cooldowns
// and caps stay u's. a is left as it was: the driver deletes it.
//
// It returns the timers the driver must index again; the slice is reused by
// the next call.
func (x *Evaluator) Merge(u, a *state.Contact) []MovedTimer {
	rs := x.rs
	u.Bind(&rs.names)
	a.Bind(&rs.names)
	x.moved = x.moved[:0]
	x.Stats.Merges++

	for i, w := range rs.Windows {
		mergeWindow(&u.Windows[i], &a.Windows[i], w.Agg)
		if sp := spanOf(u, i); sp != nil {
			sp.OK = false
		}
	}
	for i := range rs.Scoring {
		mergePoints(&u.Points[i], &a.Points[i], rs.HalfLife)
	}
	for k, v := range a.Traits {
		if _, ok := u.Traits[k]; ok {
			continue // u's, even when null
		}
		if u.Traits == nil {
			u.Traits = make(map[string]any, len(a.Traits))
		}
		u.Traits[k] = v
	}
	u.Seen = mergeSeen(u.Seen, a.Seen)
	if a.Latest > u.Latest {
		u.Latest = a.Latest
	}
	if stageIndex(rs.Stages, a.Stage) > stageIndex(rs.Stages, u.Stage) {
		u.Stage = a.Stage
	}
	for i, t := range rs.Triggers {
		if t.Kind != Sequence {
			continue
		}
		as, us := a.Triggers[i].Steps, &u.Triggers[i].Steps
		if len(as) == 0 {
			continue
		}
		if len(*us) != len(as) {
			*us = append([]int64(nil), as...)
			continue
		}
		for k := range as {
			(*us)[k] = max((*us)[k], as[k])
		}
	}
	for _, at := range a.Timers {
		ti := rs.TriggerIndex(at.Trigger)
		if ti < 0 {
			continue
		}
		k := timerIndex(u, at.Trigger)
		switch {
		case k < 0:
			u.Timers = append(u.Timers, at)
		case at.Due > u.Timers[k].Due:
			u.Timers[k] = at
		default:
			continue // u's is later, or due at the same time: u's stays
		}
		x.moved = append(x.moved, MovedTimer{Trigger: ti, Due: at.Due, FromAnon: true, AnonDue: at.Due})
	}
	// Inactivity runs from the merged latest event time.
	for i, t := range rs.Triggers {
		if t.Kind != Inactive {
			continue
		}
		k := timerIndex(u, t.ID)
		if k < 0 || u.Timers[k].Due == u.Latest+t.Quiet {
			continue
		}
		u.Timers[k].Due = u.Latest + t.Quiet
		u.Timers[k].Set = u.Seq
		moved := false
		for j := range x.moved {
			if x.moved[j].Trigger == i {
				x.moved[j].Due, moved = u.Timers[k].Due, true
			}
		}
		if !moved {
			x.moved = append(x.moved, MovedTimer{Trigger: i, Due: u.Timers[k].Due})
		}
	}
	forgetFit(u)
	return x.moved
}

// mergeWindow adds a's entries to u's in time order (a's first among
// entries at the same time), then applies the per-window bound.
func mergeWindow(u, a *state.Window, agg Aggregate) {
	if len(a.T) == 0 {
		u.Dropped += a.Dropped
		return
	}
	n := len(u.T) + len(a.T)
	t := make([]int64, 0, n)
	var v []float64
	var k []string
	if agg == Sum {
		v = make([]float64, 0, n)
	}
	if agg == Distinct {
		k = make([]string, 0, n)
	}
	i, j := 0, 0
	for i < len(u.T) || j < len(a.T) {
		takeA := j < len(a.T) && (i == len(u.T) || a.T[j] <= u.T[i])
		src, idx := u, i
		if takeA {
			src, idx = a, j
			j++
		} else {
			i++
		}
		t = append(t, src.T[idx])
		if agg == Sum && idx < len(src.V) {
			v = append(v, src.V[idx])
		}
		if agg == Distinct && idx < len(src.K) {
			k = append(k, src.K[idx])
		}
	}
	u.Dropped += a.Dropped
	if over := len(t) - state.MaxWindowEntries; over > 0 {
		t = t[over:]
		if v != nil {
			v = v[over:]
		}
		if k != nil {
			k = k[over:]
		}
		u.Dropped += uint64(over)
	}
	u.T, u.V, u.K = t, v, k
	if len(u.V) == 0 {
		u.V = nil
	}
	if len(u.K) == 0 {
		u.K = nil
	}
}

// mergePoints unites two rules' awards: the value of the union at any time
// from the later AsOf on is the sum of both values decayed to it, and the
// raw awards inside the limit's `per` are united in time order (limits are
// not applied again to past awards; they count the union from now on).
func mergePoints(u, a *state.Points, halfLife int64) {
	if a.AsOf != state.NoTime {
		switch {
		case u.AsOf == state.NoTime:
			u.Value, u.AsOf = a.Value, a.AsOf
		case halfLife == 0:
			u.Value += a.Value
			u.AsOf = max(u.AsOf, a.AsOf)
		case a.AsOf > u.AsOf:
			u.Value = u.Value*decay(a.AsOf-u.AsOf, halfLife) + a.Value
			u.AsOf = a.AsOf
		default:
			u.Value += a.Value * decay(u.AsOf-a.AsOf, halfLife)
		}
	}
	for j := range a.LimT {
		if j < len(a.LimP) {
			u.LimT, u.LimP = insertAward(u.LimT, u.LimP, a.LimT[j], a.LimP[j])
		}
	}
}

// mergeSeen unites the remembered messageIds. The ring cannot tell which
// side's ids are older, so a's are taken as the older: beyond MaxSeenIDs,
// a's oldest are forgotten first.
func mergeSeen(u, a state.Seen) state.Seen {
	if len(a.H) == 0 {
		return u
	}
	all := make([]uint64, 0, len(u.H)+len(a.H))
	for _, h := range ringOrder(a) {
		if !slices.Contains(u.H, h) {
			all = append(all, h)
		}
	}
	all = append(all, ringOrder(u)...)
	if over := len(all) - state.MaxSeenIDs; over > 0 {
		all = all[over:]
	}
	return state.Seen{H: all}
}

// ringOrder returns the ring's hashes oldest first.
func ringOrder(s state.Seen) []uint64 {
	if len(s.H) < state.MaxSeenIDs || s.Pos == 0 || s.Pos >= len(s.H) {
		return s.H
	}
	return append(append([]uint64(nil), s.H[s.Pos:]...), s.H[:s.Pos]...)
}
