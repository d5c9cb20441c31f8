package state

import (
	"errors"
	"fmt"
)

// ErrVersion is returned for a blob written by a newer leadpulse than this one.
// Roll the newer version out everywhere, or erase the contact.
var ErrVersion = errors.New("state: blob written by a newer leadpulse; upgrade this instance")

// Encode returns the contact as a msgpack blob. The top level is a map with
// short keys, so a later version can add a field without breaking older blobs:
// a decoder ignores keys it does not know and leaves missing ones zero.
func Encode(c *Contact) ([]byte, error) {
	c.V = Version
	b, err := encodeContact(c)
	if err != nil {
		return nil, fmt.Errorf("state: encode contact %q: %w", c.ID, err)
	}
	return b, nil
}

// appendEncode is Encode appending to dst: a commit encodes its contacts
// into one buffer (one allocation for the lot instead of one each).
func appendEncode(dst []byte, c *Contact) ([]byte, error) {
	c.V = Version
	b, err := appendContact(dst, c)
	if err != nil {
		return dst, fmt.Errorf("state: encode contact %q: %w", c.ID, err)
	}
	return b, nil
}

// Decode reads a blob written by Encode of this or an earlier version.
func Decode(b []byte) (*Contact, error) {
	c, err := decodeContact(b, nil)
	if err != nil {
		return nil, fmt.Errorf("state: decode contact blob (%d bytes): %w", len(b), err)
	}
	if c.V > Version {
		return nil, fmt.Errorf("%w (blob version %d, known %d)", ErrVersion, c.V, Version)
	}
	if c.V == 0 && c.ID == "" {
		return nil, fmt.Errorf("state: decode contact blob (%d bytes): no version and no id: not a leadpulse contact", len(b))
	}
	c.V = Version
	return c, nil
}
