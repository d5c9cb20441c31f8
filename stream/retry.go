package stream

import (
	"errors"

	"github.com/leadpulse/leadpulse/engine"
	"github.com/leadpulse/leadpulse/state"
)

// retryable reports whether a store-backed step that failed with err may be
// run again (state.Store's contract): only while the store is unavailable,
// and never after engine.ErrDiverged, when a contact in memory holds a
// change the store did not take: retrying would apply an event twice or
// lose it with its actions. Such an error ends the partition, and its
// records are applied again by the next owner from the committed state,
// each once (state.Contact.Covers).
func retryable(err error) bool {
	return errors.Is(err, state.ErrUnavailable) && !errors.Is(err, engine.ErrDiverged)
}
