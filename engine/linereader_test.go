package engine

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// lineReader keeps lines up to its limit whole, reports longer ones by
// size and goes on after them, with or without a final newline, across
// the bufio buffer's boundaries.
func TestLineReader(t *testing.T) {
	const limit = 40
	long := strings.Repeat("y", limit+1)
	in := "a\n" + strings.Repeat("x", limit) + "\n" + long + "\r\n\n" + strings.Repeat("z", 100) + "\nlast"
	l := &lineReader{r: bufio.NewReaderSize(strings.NewReader(in), 16), max: limit}
	type got struct {
		line string
		size int
	}
	want := []got{{"a", 1}, {strings.Repeat("x", limit), limit}, {"", limit + 2}, {"", 0}, {"", 100}, {"last", 4}}
	for i, w := range want {
		line, size, err := l.next()
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if string(line) != w.line || size != w.size {
			t.Errorf("line %d: %.10q (%d bytes), want %.10q (%d)", i+1, line, size, w.line, w.size)
		}
		if size > limit && line != nil {
			t.Errorf("line %d: a line over the limit is returned", i+1)
		}
	}
	if _, _, err := l.next(); err != io.EOF {
		t.Errorf("after the last line: %v, want io.EOF", err)
	}
}
