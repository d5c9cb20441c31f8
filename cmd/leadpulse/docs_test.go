package main

// The user reference in docs/ is tested: every fenced example is checked,
// so that what a user copies works.
//
//	```yaml [file=NAME] [check=fail]
//	    A rules file (it has `version:`) must validate, and its tests pass;
//	    with check=fail it must not validate or a test must fail (what
//	    leadpulse says is shown next). Any
//	    YAML with only a sinks: block must be a valid sinks file (dev
//	    --sinks). Any other YAML (a deployment config) needs file=NAME and a
//	    console example of the same page that uses NAME.
//	```json / ```jsonl [check=bad]
//	    One object per line: an event (it must decode) or, with an "action"
//	    field, an action record (it must have every field of one). With
//	    check=bad: one good event, then bad input only.
//	```text
//	    A synopsis or a diagram, not an example: not checked.
//	```json holding one indented document
//	    A command's JSON output: it must be valid JSON (and complete, if
//	    it is an action record).
//	```console [exit=N]
//	    "$ leadpulse ARGS" lines, each followed by its expected output:
//	    standard output, then standard error. An expected line "…" stands
//	    for any number of lines, and "…" within a line for any text. The commands run in a directory that holds the page's
//	    file=NAME blocks and the repository's examples/; the exit code must
//	    be N (default 0).
//
// Any other kind of block fails the test: an example that cannot be
// checked does not belong in the reference. TestDocLinks checks that the
// README and docs/ link only to files of the repository.

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/sinks"
)

type docBlock struct {
	lang string
	opts map[string]string
	line int // of the opening fence
	body string
}

func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out []docBlock
		cur *docBlock
		n   int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
				continue
			}
			words := strings.Fields(strings.TrimPrefix(line, "```"))
			b := docBlock{opts: map[string]string{}, line: n}
			if len(words) > 0 {
				b.lang = words[0]
				for _, w := range words[1:] {
					k, v, _ := strings.Cut(w, "=")
					b.opts[k] = v
				}
			}
			cur = &b
			continue
		}
		if cur != nil {
			cur.body += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: a code block is not closed", path, cur.line)
	}
	return out
}

func TestDocExamples(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	examplesDir, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range pages {
		if filepath.Base(page) == "redis.md" {
			// An operator's note on the Redis store, not part of the user
			// reference: its blocks are log lines and an ACL command.
			continue
		}
		t.Run(filepath.Base(page), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Symlink(examplesDir, filepath.Join(dir, "examples")); err != nil {
				t.Fatal(err)
			}
			blocks := docBlocks(t, page)
			// The files first: a console example may come before the file it uses.
			var commands string
			for _, b := range blocks {
				if name := b.opts["file"]; name != "" {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(b.body), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if b.lang == "console" {
					commands += b.body
				}
			}
			t.Chdir(dir)
			for _, b := range blocks {
				where := filepath.Base(page) + ":" + strconv.Itoa(b.line)
				switch b.lang {
				case "yaml":
					checkDocYAML(t, where, b, commands)
				case "json", "jsonl":
					if b.opts["check"] == "bad" {
						checkDocBadEvents(t, where, b)
					} else {
						checkDocJSON(t, where, b)
					}
				case "console":
					checkDocConsole(t, where, b)
				case "text":
					// A synopsis or a diagram: words, not an example to copy.
				default:
					t.Errorf("%s: a %q block cannot be checked; use yaml, json, jsonl or console (or text for a synopsis that is not an example)", where, b.lang)
				}
			}
		})
	}
}

var (
	topLevelVersion = regexp.MustCompile(`(?m)^version:`)
	onlySinks       = regexp.MustCompile(`^sinks:\n(( .*)?\n)*$`) // one top-level key: sinks
)

func checkDocYAML(t *testing.T, where string, b docBlock, commands string) {
	t.Helper()
	if onlySinks.MatchString(b.body) {
		// A sinks file (leadpulse dev --sinks): read as dev reads it.
		name := filepath.Join(t.TempDir(), "sinks.yaml")
		if err := os.WriteFile(name, []byte(b.body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := sinks.LoadFile(name)
		if err == nil {
			_, err = cfg.Validate()
		}
		if err != nil {
			t.Errorf("%s: the sinks example does not validate: %v", where, err)
		}
		return
	}
	if !topLevelVersion.MatchString(b.body) {
		name := b.opts["file"]
		if name == "" || !strings.Contains(commands, name) {
			t.Errorf("%s: a YAML example that is not a rules file needs file=NAME and a console example using NAME", where)
		}
		return
	}
	rs, err := rules.Parse(where, []byte(b.body))
	if b.opts["check"] == "fail" {
		// It must not validate, or a test of it must fail.
		if err == nil && !slices.ContainsFunc(engine.RunTests(t.Context(), rs), func(r engine.TestResult) bool { return !r.Passed() }) {
			t.Errorf("%s: the example is marked check=fail but validates and passes its tests", where)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: the rules example does not validate:\n%v", where, err)
		return
	}
	for _, res := range engine.RunTests(t.Context(), rs) {
		if !res.Passed() {
			t.Errorf("%s: test %q of the example fails:\n%s", where, res.Test.Name, strings.Join(res.Errors, "\n"))
		}
	}
}

// actionFields are the fields every action record has.
var actionFields = []string{"id", "action", "trigger", "contact", "at", "score", "fit", "engagement", "stage", "explain"}

func checkDocJSON(t *testing.T, where string, b docBlock) {
	t.Helper()
	body := strings.TrimSpace(b.body)
	if strings.Contains(body, "\n") && json.Valid([]byte(body)) {
		// One indented document (a command's JSON output): it must be JSON;
		// an action record must be complete.
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) == nil {
			if _, isAction := m["action"]; isAction {
				for _, f := range actionFields {
					if _, ok := m[f]; !ok {
						t.Errorf("%s: the action record lacks %q", where, f)
					}
				}
			}
		}
		return
	}
	for i, line := range strings.Split(body, "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s: line %d is not a JSON object: %v", where, i+1, err)
			continue
		}
		if _, isAction := m["action"]; isAction {
			for _, f := range actionFields {
				if _, ok := m[f]; !ok {
					t.Errorf("%s: line %d: the action record lacks %q", where, i+1, f)
				}
			}
			continue
		}
		if _, err := event.Decode([]byte(line), event.JSON, 1); err != nil {
			t.Errorf("%s: line %d is not a valid event: %v", where, i+1, err)
		}
	}
}

// checkDocBadEvents checks a block of bad input (check=bad): no line is a
// valid event, except the first, which shows a good one beside them.
func checkDocBadEvents(t *testing.T, where string, b docBlock) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(b.body), "\n") {
		if _, err := event.Decode([]byte(line), event.JSON, 0); (err == nil) != (i == 0) {
			t.Errorf("%s: line %d: decoding gives %v; a check=bad block has one good line first, then bad ones", where, i+1, err)
		}
	}
}

func checkDocConsole(t *testing.T, where string, b docBlock) {
	t.Helper()
	want := 0
	if s := b.opts["exit"]; s != "" {
		want, _ = strconv.Atoi(s)
	}
	type cmd struct {
		args     []string
		expected []string
	}
	var cmds []*cmd
	for _, line := range strings.Split(strings.TrimRight(b.body, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "$ "); ok {
			args := shellWords(rest)
			if len(args) == 0 || args[0] != "leadpulse" {
				t.Errorf("%s: %q: only leadpulse commands can be checked", where, rest)
				return
			}
			cmds = append(cmds, &cmd{args: args[1:]})
			continue
		}
		if len(cmds) == 0 {
			t.Errorf("%s: output before the first $ command", where)
			return
		}
		c := cmds[len(cmds)-1]
		c.expected = append(c.expected, line)
	}
	for _, c := range cmds {
		code, out, errs := runCLI(t, "", c.args...)
		got := strings.Split(strings.TrimRight(out+errs, "\n"), "\n")
		if code != want {
			t.Errorf("%s: leadpulse %s: exit %d, want %d\n%s", where, strings.Join(c.args, " "), code, want, out+errs)
			continue
		}
		if !matchLines(c.expected, got) {
			t.Errorf("%s: leadpulse %s: output differs\n got:\n%s\nwant:\n%s", where, strings.Join(c.args, " "),
				strings.Join(got, "\n"), strings.Join(c.expected, "\n"))
		}
	}
}

// matchLines matches got against want, where a want line "…" is any number
// of lines and a want line ending in "…" any line with that start.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0 || (len(got) == 1 && got[0] == "")
	}
	w := want[0]
	if w == "…" {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	if len(got) == 0 {
		return false
	}
	if !matchLine(w, got[0]) {
		return false
	}
	return matchLines(want[1:], got[1:])
}

// matchLine matches a line where each "…" in want stands for any text.
func matchLine(want, got string) bool {
	parts := strings.Split(want, "…")
	if len(parts) == 1 {
		return want == got
	}
	if !strings.HasPrefix(got, parts[0]) {
		return false
	}
	got = got[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(got, p)
		if i < 0 {
			return false
		}
		got = got[i+len(p):]
	}
	return strings.HasSuffix(got, parts[len(parts)-1])
}

// shellWords splits a command line at spaces, keeping '…' and "…" quoted
// words whole.
func shellWords(s string) []string {
	var (
		out   []string
		cur   strings.Builder
		quote rune
		any   bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, any = r, true
		case r == ' ':
			if cur.Len() > 0 || any {
				out = append(out, cur.String())
				cur.Reset()
				any = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 || any {
		out = append(out, cur.String())
	}
	return out
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinks: the README and docs/ link only to files of the repository
// (a fresh clone has nothing beside it), and those files exist.
func TestDocLinks(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	pages = append(pages, filepath.Join(root, "README.md"))
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "#") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			abs := filepath.Join(filepath.Dir(page), target)
			rel, err := filepath.Rel(root, abs)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("%s links to %s, outside the repository", filepath.Base(page), m[1])
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links to %s, which does not exist", filepath.Base(page), m[1])
			}
		}
	}
	if !slices.ContainsFunc(pages, func(p string) bool { return strings.HasSuffix(p, "rules.md") }) {
		t.Error("docs/rules.md is missing")
	}
}
