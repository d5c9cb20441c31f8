package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTimerHintsKeepOrder drives two timer heaps with the same random sets
// and pops, one through contacts' hints (as an applied event indexes its
// timers) and one by key only, and requires the same timers to come out in
// the same order. Hints go stale on purpose: entries fire, a contact's
// hints are dropped (a contact reloaded) or scribbled over.
func TestTimerHintsKeepOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const contacts, triggers = 40, 3
	var hinted, plain timerHeap
	hints := make([][]int32, contacts)
	for c := range hints {
		hints[c] = make([]int32, triggers)
	}
	var order uint64
	clock := int64(0)
	for step := 0; step < 20000; step++ {
		switch n := r.IntN(10); {
		case n < 6: // an event sets or restarts a timer
			c, tr := r.IntN(contacts), r.IntN(triggers)
			order++
			ref := timerRef{due: clock + int64(r.IntN(50)), order: order, key: timerKey{fmt.Sprint("c", c), tr}}
			hinted.setHinted(ref, &hints[c][tr])
			plain.set(ref)
			if k := hints[c][tr]; hinted.h[k].key != ref.key {
				t.Fatalf("step %d: the hint of %v points at %v", step, ref.key, hinted.h[k].key)
			}
		case n < 8: // the clock moves: due timers fire (moved ones take their new place)
			clock += int64(r.IntN(10))
			for plain.len() > 0 && plain.h[0].due <= clock {
				a, b := hinted.pop(), plain.pop()
				if a.key != b.key || a.due != b.due || a.order != b.order || a.moved != b.moved || a.next != b.next {
					t.Fatalf("step %d: hinted heap popped %+v, plain %+v", step, a, b)
				}
				if b.moved {
					hinted.set(timerRef{due: a.next, order: a.nextOrder, key: a.key})
					plain.set(timerRef{due: b.next, order: b.nextOrder, key: b.key})
				}
			}
			if hinted.len() != plain.len() {
				t.Fatalf("step %d: %d timers hinted, %d plain", step, hinted.len(), plain.len())
			}
		case n < 9: // a contact reloaded: its hints are new
			hints[r.IntN(contacts)] = make([]int32, triggers)
		default: // a hint scribbled over
			hints[r.IntN(contacts)][r.IntN(triggers)] = int32(r.IntN(contacts * triggers))
		}
	}
}
