package state

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// A new contact's per-rule slots share one block: each slice must hold its
// names, be capped at its length (an append copies out instead of writing
// over the next array), and encode as the slots of a contact bound the
// old way did.
func TestBindFreshContactSlots(t *testing.T) {
	for _, n := range []*Names{
		{Windows: []string{"w1", "w2"}, Points: []string{"p1"}, Triggers: []string{"t1", "t2", "t3"}, Caps: []string{"a1"}},
		{Windows: []string{"w1"}},             // no points, triggers or caps: nil slices
		{Triggers: []string{"t1"}, Caps: nil}, // only triggers
		{},                                    // nothing at all
	} {
		c := New("u-1")
		c.Bind(n)
		old := New("u-1")
		old.align(n)
		if !reflect.DeepEqual(c.Windows, old.Windows) || !reflect.DeepEqual(c.Points, old.Points) ||
			!reflect.DeepEqual(c.Triggers, old.Triggers) || !reflect.DeepEqual(c.Caps, old.Caps) {
			t.Fatalf("names %+v: block slots %+v %+v %+v %+v, want %+v %+v %+v %+v", n,
				c.Windows, c.Points, c.Triggers, c.Caps, old.Windows, old.Points, old.Triggers, old.Caps)
		}
		if cap(c.Windows) != len(c.Windows) || cap(c.Points) != len(c.Points) ||
			cap(c.Triggers) != len(c.Triggers) || cap(c.Caps) != len(c.Caps) {
			t.Fatalf("names %+v: a slot slice has room beyond its length", n)
		}
		b1, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := Encode(old)
		if string(b1) != string(b2) {
			t.Fatalf("names %+v: the block contact encodes differently", n)
		}
		if len(n.Windows) > 0 && len(n.Points) > 0 {
			points := c.Points[0]
			c.Windows = append(c.Windows, Window{Name: "extra"})
			c.Windows[len(c.Windows)-1].Dropped = 99
			if !reflect.DeepEqual(c.Points[0], points) {
				t.Fatalf("an append to Windows changed Points: %+v", c.Points[0])
			}
		}
	}
}

// Memory.Put skips the lookup of a contact it holds; a contact it no longer
// holds (deleted, or replaced by another with its id) is stored again.
func TestMemoryPutAfterDeleteAndReplace(t *testing.T) {
	ctx := context.Background()
	for _, owned := range []bool{false, true} {
		m := NewMemory()
		var s Store = m
		if owned {
			s = m.Owned()
		}
		c, _ := s.Get(ctx, "a")
		if m.Len() != 0 {
			t.Fatal("Get stored a contact")
		}
		s.Put(ctx, c)
		s.Put(ctx, c)
		if got, _ := s.Get(ctx, "a"); got != c || m.Len() != 1 {
			t.Fatalf("owned=%v: Get after Put returned another contact", owned)
		}
		s.Delete(ctx, "a")
		if m.Len() != 0 {
			t.Fatalf("owned=%v: Delete left the contact", owned)
		}
		s.Put(ctx, c) // the same pointer, deleted: stored again
		if got, _ := s.Get(ctx, "a"); got != c {
			t.Fatalf("owned=%v: a deleted contact Put again is not stored", owned)
		}
		c2 := New("a")
		s.Put(ctx, c2)
		s.Put(ctx, c) // c was replaced by c2: stored again
		if got, _ := s.Get(ctx, "a"); got != c {
			t.Fatalf("owned=%v: a replaced contact Put again is not stored", owned)
		}
	}
}

// TestNewKeepsID checks the id New copies next to the contact, whatever
// its length (short, UUID-like, beyond the room kept, empty); an id that fits is
// copied, so that it does not follow later changes of the caller's buffer.
func TestNewKeepsID(t *testing.T) {
	for _, n := range []int{0, 1, 10, len(idBox{}.id), len(idBox{}.id) + 1, 36, len(longIDBox{}.id), len(longIDBox{}.id) + 1, 300} {
		buf := []byte(strings.Repeat("x", n))
		for i := range buf {
			buf[i] = 'a' + byte(i%26)
		}
		want := string(buf)
		id := want
		if n > 0 && n <= len(longIDBox{}.id) {
			id = unsafe.String(&buf[0], n) // the caller's buffer itself
		}
		c := New(id)
		for i := range buf {
			buf[i] = '!'
		}
		if c.ID != want || c.Latest != NoTime || c.V != Version {
			t.Errorf("New of a %d-byte id: ID %q, Latest %d, V %d; want %q, NoTime, %d", n, c.ID, c.Latest, c.V, want, Version)
		}
	}
}
