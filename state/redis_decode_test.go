package state

import (
	"reflect"
	"strings"
	"testing"
)

// TestDecodeKeepsNoBlobBytes: the Redis store decodes the strings go-redis
// returns without copying them (decodeString), which is safe only if a
// decoded contact keeps nothing of the bytes it was decoded from. Here the
// blob is overwritten after decoding, and the contact must still equal
// one decoded from an untouched copy: an id too long for New's box, trait
// values of every form (a nested map and list go through msgpack), window
// keys, rule and trigger names.
func TestDecodeKeepsNoBlobBytes(t *testing.T) {
	for _, id := range []string{"u1", strings.Repeat("long-id-", 80)} {
		c := typicalContact(id)
		c.Traits["nested"] = map[string]any{"plan": "pro", "seats": []any{"a", "b"}}
		c.Traits["list"] = []any{"x", 1.5}
		blob, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Decode(append([]byte(nil), blob...))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		for i := range blob {
			blob[i] = 0xff
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("contact %.10s… changed when the blob it was decoded from was overwritten:\n got %+v\nwant %+v", id, got, want)
		}
	}
}
