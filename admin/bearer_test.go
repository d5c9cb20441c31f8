package admin_test

import (
	"io"
	"net/http"
	"testing"
)

// TestBearerSchemeCaseInsensitive (issue 10, item 7): the auth scheme is
// case-insensitive (RFC 9110, 11.1), the token is not.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	srv, _, _ := setup(t, "s3cret")
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"Bearer s3cret", 200},
		{"bearer s3cret", 200},
		{"BEARER s3cret", 200},
		{"bEaReR  s3cret", 200},
		{"Bearer S3CRET", 401},
		{"Basic s3cret", 401},
		{"Bearers3cret", 401},
		{"s3cret", 401},
		{"Bearer ", 401},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/contacts/u1", nil)
		req.Header.Set("Authorization", tc.header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.header, resp.StatusCode, tc.want)
		}
	}
}
