package rules

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/state"
)

// TestMergeWindow: entries interleave by time (A's first at equal times),
// values and keys stay with their times, and the per-window bound drops the
// oldest after the union and counts them.
func TestMergeWindow(t *testing.T) {
	old := state.MaxWindowEntries
	defer func() { state.MaxWindowEntries = old }()
	state.MaxWindowEntries = 4

	u := state.Window{T: []int64{1, 3, 5}, V: []float64{10, 30, 50}, Dropped: 1}
	a := state.Window{T: []int64{2, 3, 6}, V: []float64{20, 31, 60}, Dropped: 2}
	mergeWindow(&u, &a, Sum)
	if want := []int64{3, 3, 5, 6}; !slices.Equal(u.T, want) {
		t.Errorf("T = %v, want %v", u.T, want)
	}
	if want := []float64{31, 30, 50, 60}; !slices.Equal(u.V, want) {
		t.Errorf("V = %v, want %v (A's first at equal times)", u.V, want)
	}
	if u.Dropped != 1+2+2 {
		t.Errorf("Dropped = %d, want 5", u.Dropped)
	}

	u = state.Window{T: []int64{4}, K: []string{"/x"}}
	a = state.Window{T: []int64{1, 2}, K: []string{"/a", "/b"}}
	mergeWindow(&u, &a, Distinct)
	if !slices.Equal(u.T, []int64{1, 2, 4}) || !slices.Equal(u.K, []string{"/a", "/b", "/x"}) || u.V != nil {
		t.Errorf("distinct: %+v", u)
	}

	u = state.Window{T: []int64{4}}
	mergeWindow(&u, &state.Window{}, Count)
	if !slices.Equal(u.T, []int64{4}) {
		t.Errorf("merging an empty window changed %+v", u)
	}
}

// TestMergeSeen: the union of both rings, bounded; A's ids are taken as the
// older and forgotten first.
func TestMergeSeen(t *testing.T) {
	old := state.MaxSeenIDs
	defer func() { state.MaxSeenIDs = old }()
	state.MaxSeenIDs = 4

	var u, a state.Seen
	for _, id := range []string{"u1", "u2", "u3", "u4", "u5"} { // a full ring that wrapped
		u.Add(id)
	}
	a.Add("a1")
	a.Add("u5") // on both sides: kept where U has it, as U's newest
	m := mergeSeen(u, a)
	for id, want := range map[string]bool{"u5": true, "u4": true, "u3": true, "u2": true, "a1": false, "u1": false} {
		if m.SeenID(id) != want {
			t.Errorf("after the merge, SeenID(%s) = %v, want %v", id, !want, want)
		}
	}
	if len(m.H) != 4 {
		t.Fatalf("remembered %d, want 4", len(m.H))
	}
	m.Add("n1") // the next id replaces the oldest
	if !m.SeenID("n1") || m.SeenID("u2") || !m.SeenID("u3") {
		t.Errorf("a later id is not remembered in place of the oldest: %+v", m)
	}

	small := mergeSeen(state.Seen{}, a)
	if !small.SeenID("a1") || !small.SeenID("u5") {
		t.Error("A's ids are not remembered on an empty U")
	}
}

// TestMergePoints: the merged value equals the sum of both sides decayed
// to the later award; limit histories unite in time order.
func TestMergePoints(t *testing.T) {
	const hl = int64(10)
	u := state.Points{Value: 8, AsOf: 30, LimT: []int64{10, 30}, LimP: []float64{4, 4}}
	a := state.Points{Value: 6, AsOf: 20, LimT: []int64{20}, LimP: []float64{6}}
	mergePoints(&u, &a, hl)
	want := 8 + 6*math.Exp2(-1)
	if u.AsOf != 30 || math.Abs(u.Value-want) > 1e-12 {
		t.Errorf("value %v as of %d, want %v as of 30", u.Value, u.AsOf, want)
	}
	if !slices.Equal(u.LimT, []int64{10, 20, 30}) || !slices.Equal(u.LimP, []float64{4, 6, 4}) {
		t.Errorf("limit history %v %v", u.LimT, u.LimP)
	}

	u = state.Points{AsOf: state.NoTime}
	mergePoints(&u, &state.Points{Value: 5, AsOf: 7}, 0)
	if u.Value != 5 || u.AsOf != 7 {
		t.Errorf("onto nothing: %+v", u)
	}
	mergePoints(&u, &state.Points{AsOf: state.NoTime}, 0)
	if u.Value != 5 || u.AsOf != 7 {
		t.Errorf("nothing onto: %+v", u)
	}
}

// TestInspectMerged: the contact view lists the ids merged into a user and,
// for a retired anonymous contact, its user.
func TestInspectMerged(t *testing.T) {
	rs, err := Parse("i.yaml", []byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	u := state.New("u1")
	u.Merged = []string{"a1", "a2"}
	if v := rs.Inspect(u, state.NoTime); !reflect.DeepEqual(v.Merged, []string{"a1", "a2"}) || v.MergedInto != "" {
		t.Errorf("user view: merged %q, merged_into %q", v.Merged, v.MergedInto)
	}
	a := state.New("a1")
	a.MergedInto = "u1"
	if v := rs.Inspect(a, state.NoTime); v.Merged != nil || v.MergedInto != "u1" {
		t.Errorf("retired view: merged %q, merged_into %q", v.Merged, v.MergedInto)
	}
}

// TestIsBlockedMatchesEqualFold checks IsBlocked, whose ASCII path compares
// only ids of a blocked id's length, against the plain definition (any
// blocked id equal under strings.EqualFold; "" always blocked), for
// blocked lists with and without non-ASCII ids, on ids built from the
// blocked ids with case changes, folding partners, and cuts.
func TestIsBlockedMatchesEqualFold(t *testing.T) {
	lists := [][]string{
		DefaultBlocked,
		{"null", "UNDEFINED", "x"},
		{"null", "\u212a"}, // the Kelvin sign folds to k
		{"ſ", "guest"},     // the long s folds to s
		{strings.Repeat("a", 70)},
		{},
	}
	ids := []string{"", "k", "K", "s", "S", "\u212a", "ſ", "NULL", "Null", "nul", "nulls", "undefined", "UNDEFINED",
		"Undefined", "undefineD", "unknowN", "u-123", "anon-abc", "-1", "0", "00", "GUEST", "gue\u017ft", "\u212aey",
		strings.Repeat("a", 70), strings.Repeat("A", 70), strings.Repeat("a", 69), "caf\u00e9", "x", "X"}
	r := rand.New(rand.NewPCG(3, 5))
	for range 2000 {
		b := []byte(ids[r.IntN(len(ids))])
		for i := range b {
			if r.IntN(3) == 0 && b[i] < 0x80 {
				b[i] ^= 0x20 // flips case of letters, and makes other bytes
			}
		}
		ids = append(ids, string(b))
	}
	for _, list := range lists {
		id := Identity{Blocked: list}
		id.prepare()
		for _, s := range ids {
			want := s == ""
			for _, b := range list {
				want = want || strings.EqualFold(s, b)
			}
			if got := id.IsBlocked(s); got != want {
				t.Errorf("blocked %q: IsBlocked(%q) = %v, want %v", list, s, got, want)
			}
		}
	}
}

// BenchmarkIsBlocked is the cost of checking one event's two ids (a
// userId and an anonymousId of the bench's shapes) against the default
// blocked list: IsBlocked, and the loop of strings.EqualFold over every
// blocked id that it replaced for ASCII ids.
func BenchmarkIsBlocked(b *testing.B) {
	id := defaultIdentity()
	ids := []string{"u-1x3k9", "anon-1x3k9", "a-56eaa8c3", "u-42"}
	b.Run("IsBlocked", func(b *testing.B) {
		n := 0
		for i := 0; b.Loop(); i++ {
			if id.IsBlocked(ids[i%len(ids)]) {
				n++
			}
		}
		if n != 0 {
			b.Fatal(n)
		}
	})
	b.Run("EqualFold-loop", func(b *testing.B) {
		n := 0
		for i := 0; b.Loop(); i++ {
			s := ids[i%len(ids)]
			for _, x := range id.blocked {
				if strings.EqualFold(s, x) {
					n++
				}
			}
		}
		if n != 0 {
			b.Fatal(n)
		}
	})
}
