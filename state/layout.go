package state

import (
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"
)

// A contact's per-rule slots (Windows, Points, Triggers, Caps) are read on
// every event. With tens of thousands of contacts in memory, most of an
// event's cost is fetching them from main memory: each separate allocation
// is a cache miss of its own, and on another page. A contact that starts
// empty (New, then its first Bind) therefore gets the four arrays in one
// allocation, laid out one after the other, so that they share pages and
// the processor's prefetcher reads them as one stretch. The slices are
// ordinary slices into that block, each capped at its own length: an
// append (none of the four grows) would copy out, never into a neighbour.
// Nothing about the encoding changes: the codec reads and writes slices.

// slotLayout is the block type for one Names: a struct of four arrays, made
// with reflect so that the garbage collector knows where its pointers are.
type slotLayout struct {
	typ                    reflect.Type
	offW, offP, offT, offC uintptr
	nW, nP, nT, nC         int
}

// layout returns n's block layout, built on first use (Names never change
// after their first use).
func (n *Names) layout() *slotLayout {
	n.once.Do(func() {
		n.lay = newSlotLayout(len(n.Windows), len(n.Points), len(n.Triggers), len(n.Caps))
	})
	return n.lay
}

func newSlotLayout(nW, nP, nT, nC int) *slotLayout {
	l := &slotLayout{nW: nW, nP: nP, nT: nT, nC: nC}
	l.typ = reflect.StructOf([]reflect.StructField{
		{Name: "W", Type: reflect.ArrayOf(l.nW, reflect.TypeFor[Window]())},
		{Name: "P", Type: reflect.ArrayOf(l.nP, reflect.TypeFor[Points]())},
		{Name: "T", Type: reflect.ArrayOf(l.nT, reflect.TypeFor[Trigger]())},
		{Name: "C", Type: reflect.ArrayOf(l.nC, reflect.TypeFor[Cap]())},
	})
	l.offW, l.offP = l.typ.Field(0).Offset, l.typ.Field(1).Offset
	l.offT, l.offC = l.typ.Field(2).Offset, l.typ.Field(3).Offset
	return l
}

// A decoded contact's slots get one block too, of the lengths its blob
// has (Bind keeps them when they match the rules, as they do unless the
// rules file changed). Those layouts are cached by length, copy on write:
// the lengths a rules file gives are few. Lengths beyond maxCachedSlots, or
// more distinct shapes than maxLayouts, get separate arrays instead.
const (
	maxCachedSlots = 255
	maxLayouts     = 256
)

var (
	layoutsMu sync.Mutex
	layouts   atomic.Pointer[map[[4]uint8]*slotLayout]
)

// layoutFor returns the cached block layout for those lengths, nil when
// they are not to have one.
func layoutFor(nW, nP, nT, nC int) *slotLayout {
	if nW > maxCachedSlots || nP > maxCachedSlots || nT > maxCachedSlots || nC > maxCachedSlots {
		return nil
	}
	key := [4]uint8{uint8(nW), uint8(nP), uint8(nT), uint8(nC)}
	if m := layouts.Load(); m != nil {
		if l, ok := (*m)[key]; ok {
			return l
		}
	}
	layoutsMu.Lock()
	defer layoutsMu.Unlock()
	var old map[[4]uint8]*slotLayout
	if m := layouts.Load(); m != nil {
		old = *m
	}
	if l, ok := old[key]; ok {
		return l
	}
	if len(old) >= maxLayouts {
		return nil
	}
	l := newSlotLayout(nW, nP, nT, nC)
	m := make(map[[4]uint8]*slotLayout, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[key] = l
	layouts.Store(&m)
	return l
}

// alloc returns the four slot arrays of a new block (nil for none).
func (l *slotLayout) alloc() ([]Window, []Points, []Trigger, []Cap) {
	base := reflect.New(l.typ).UnsafePointer()
	return slotsAt[Window](base, l.offW, l.nW), slotsAt[Points](base, l.offP, l.nP),
		slotsAt[Trigger](base, l.offT, l.nT), slotsAt[Cap](base, l.offC, l.nC)
}

// fresh gives c, which has no per-rule slots, new empty ones for n in one
// block.
func (l *slotLayout) fresh(c *Contact, n *Names) {
	c.Windows, c.Points, c.Triggers, c.Caps = l.alloc()
	for i, s := range n.Windows {
		c.Windows[i].Name = s
	}
	for i, s := range n.Points {
		c.Points[i] = Points{Rule: s, AsOf: NoTime}
	}
	for i, s := range n.Triggers {
		c.Triggers[i] = Trigger{ID: s, Last: NoTime}
	}
	for i, s := range n.Caps {
		c.Caps[i].Action = s
	}
}

// slotsAt returns the n slots of type T at offset off of the block at base
// (nil for none, as alignSlots gives), capped at n.
func slotsAt[T any](base unsafe.Pointer, off uintptr, n int) []T {
	if n == 0 {
		return nil
	}
	s := unsafe.Slice((*T)(unsafe.Add(base, off)), n)
	return s[:n:n]
}
