package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/internal/yamlnode"
)

// ScaleRules returns the rules file src with every scoring rule (engagement
// and fit) and every trigger repeated copies times, so that a bench can
// measure the cost of rule count. Copy k (2 and up) of a rule has the id
// "<id>-x<k>"; windows, stages and actions are shared by the copies, and
// the tests: section is dropped (the copies would add firings the tests do
// not expect). copies 1 returns src unchanged.
//
// Each copy is evaluated on every event like any other rule and keeps its
// own slot in the contact's state (points, limits, trigger edges, timers),
// so both the per-event cost and the contact's size grow with copies; the
// score grows too (every copy awards points), so thresholds are crossed
// sooner.
func ScaleRules(src []byte, copies int) ([]byte, error) {
	if copies <= 1 {
		return src, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("bench: scale rules: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("bench: scale rules: the file is not a YAML mapping")
	}
	top := doc.Content[0]
	if scoring := yamlnode.Value(top, "scoring"); scoring != nil {
		for _, part := range []string{"engagement", "fit"} {
			if sec := yamlnode.Value(scoring, part); sec != nil {
				if err := repeatList(yamlnode.Value(sec, "rules"), copies); err != nil {
					return nil, fmt.Errorf("bench: scale rules: scoring.%s.rules: %w", part, err)
				}
			}
		}
	}
	if err := repeatList(yamlnode.Value(top, "triggers"), copies); err != nil {
		return nil, fmt.Errorf("bench: scale rules: triggers: %w", err)
	}
	deleteKey(top, "tests")
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("bench: scale rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("bench: scale rules: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteScaledRules writes ScaleRules(src, copies) to path: the rules file of
// a bench with copies times the rules.
func WriteScaledRules(path string, src []byte, copies int) error {
	out, err := ScaleRules(src, copies)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// repeatList appends copies-1 deep copies of every item of a sequence of
// mappings, each with "-x<k>" added to its id.
func repeatList(list *yaml.Node, copies int) error {
	if list == nil {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: not a list", list.Line)
	}
	orig := list.Content
	for k := 2; k <= copies; k++ {
		for _, item := range orig {
			c := deepCopy(item)
			id := yamlnode.Value(c, "id")
			if id == nil || id.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: an item without an id", item.Line)
			}
			id.Value += "-x" + strconv.Itoa(k)
			list.Content = append(list.Content, c)
		}
	}
	return nil
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func deepCopy(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		c.Content[i] = deepCopy(x)
	}
	return &c
}
