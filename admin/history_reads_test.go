package admin_test

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/event"
	"github.com/leadpulse/leadpulse/rules"
	"github.com/leadpulse/leadpulse/traffic"
)

// TestHistoryReads: a History fed events decoded with only HistoryReads
// shows what one fed the same events decoded in full shows.
func TestHistoryReads(t *testing.T) {
	var lines [][]byte
	data, err := os.ReadFile("../event/testdata/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	g := traffic.New(traffic.Config{Contacts: 50, Seed: 9})
	for range 500 {
		lines = append(lines, g.AppendJSON(nil))
	}
	full, sel := admin.NewHistory(admin.HistoryOptions{}), admin.NewHistory(admin.HistoryOptions{})
	var ids []string
	for _, line := range lines {
		var e, s event.Event
		err := event.DecodeInto(&e, line, event.JSON, 1)
		if serr := event.DecodeIntoSelect(&s, line, event.JSON, 1, admin.HistoryReads); (err == nil) != (serr == nil) {
			t.Fatalf("%s: %v, with HistoryReads %v", line, err, serr)
		}
		if err != nil {
			continue
		}
		full.Applied(&rules.Result{Event: &e})
		sel.Applied(&rules.Result{Event: &s})
		ids = append(ids, e.Contact())
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) < 20 {
		t.Fatalf("only %d contacts: too few to compare", len(ids))
	}
	paths := 0
	for _, id := range ids {
		a, b := full.Contact(id), sel.Contact(id)
		for _, h := range []admin.ContactHistory{a, b} {
			for i := range h.Events {
				h.Events[i].Applied = ""        // the wall clock
				slices.Sort(h.Events[i].Traits) // from a map
			}
		}
		for _, e := range a.Events {
			if e.Path != "" {
				paths++
			}
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: in full\n %+v\nwith HistoryReads\n %+v", id, a, b)
		}
	}
	if paths == 0 {
		t.Error("no event with a path: the test compares nothing")
	}
}
