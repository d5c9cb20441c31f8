// Package rules is the rules language of leadpulse (SPEC §2): it parses
// and validates a rules file (every problem as FILE:LINE: RULE-ID: message),
// compiles each expression once (expr-lang/expr), and evaluates events and
// timers against a contact's state, producing the actions to emit
// (action.Record), the firings and the timers to set.
//
// It is pure: no I/O besides reading the rules file in LoadFile, no clock
// (times come with the events and timers), no goroutines. The engine package
// drives it in every mode (replay, dev, run, bench); an Evaluator holds
// scratch space and belongs to one goroutine.
package rules
