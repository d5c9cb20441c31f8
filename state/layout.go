package state

import (
	"reflect"
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
		l := &slotLayout{nW: len(n.Windows), nP: len(n.Points), nT: len(n.Triggers), nC: len(n.Caps)}
		l.typ = reflect.StructOf([]reflect.StructField{
			{Name: "W", Type: reflect.ArrayOf(l.nW, reflect.TypeFor[Window]())},
			{Name: "P", Type: reflect.ArrayOf(l.nP, reflect.TypeFor[Points]())},
			{Name: "T", Type: reflect.ArrayOf(l.nT, reflect.TypeFor[Trigger]())},
			{Name: "C", Type: reflect.ArrayOf(l.nC, reflect.TypeFor[Cap]())},
		})
		l.offW, l.offP = l.typ.Field(0).Offset, l.typ.Field(1).Offset
		l.offT, l.offC = l.typ.Field(2).Offset, l.typ.Field(3).Offset
		n.lay = l
	})
	return n.lay
}

// fresh gives c, which has no per-rule slots, new empty ones for n in one
// block.
func (l *slotLayout) fresh(c *Contact, n *Names) {
	base := reflect.New(l.typ).UnsafePointer()
	c.Windows = slotsAt[Window](base, l.offW, l.nW)
	c.Points = slotsAt[Points](base, l.offP, l.nP)
	c.Triggers = slotsAt[Trigger](base, l.offT, l.nT)
	c.Caps = slotsAt[Cap](base, l.offC, l.nC)
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
