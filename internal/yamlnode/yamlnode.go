// Package yamlnode holds the few helpers that edit a parsed YAML document
// (go.yaml.in/yaml/v3 nodes) in place, for the tools that derive one rules
// file from another: bench's rule scaling and backtest's sweep variants.
package yamlnode

import "go.yaml.in/yaml/v3"

// Value returns the value node of key in the mapping m, or nil when m is
// not a mapping or has no such key.
func Value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
