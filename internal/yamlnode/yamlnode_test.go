package yamlnode

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestValue(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb: {c: two}\nl: [x]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	top := doc.Content[0]
	for _, tc := range []struct {
		m    *yaml.Node
		key  string
		want string // "" for nil
	}{
		{top, "a", "1"},
		{Value(top, "b"), "c", "two"},
		{top, "missing", ""},
		{Value(top, "l"), "x", ""}, // a sequence is not a mapping
		{nil, "a", ""},
	} {
		got := Value(tc.m, tc.key)
		if (got == nil) != (tc.want == "") || (got != nil && got.Value != tc.want) {
			t.Errorf("Value(%q) = %v, want %q", tc.key, got, tc.want)
		}
	}
}
