package testenv

import "testing"

func TestGroups(t *testing.T) {
	var g Groups
	g.Join("u1", "a1")
	g.Join("u2", "a2")
	g.Join("u2", "a1") // a shared device
	g.Join("u3", "")
	for _, tt := range []struct{ a, b string }{{"u1", "a2"}, {"a1", "u2"}} {
		if g.Of(tt.a) != g.Of(tt.b) {
			t.Errorf("%s and %s in different groups", tt.a, tt.b)
		}
	}
	if g.Of("u3") != "u3" || g.Of("a9") != "a9" || g.Of("u3") == g.Of("u1") {
		t.Errorf("u3 %q, a9 %q: want each its own group", g.Of("u3"), g.Of("a9"))
	}
}
