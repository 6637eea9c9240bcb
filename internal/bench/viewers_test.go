package bench

import (
	"errors"
	"slices"
	"testing"
)

func TestDistinctErrors(t *testing.T) {
	refused := errors.New("WHEP POST: 405 Method Not Allowed")
	timeout := errors.New("no keyframe within 10s")
	got := distinctErrors([]error{refused, nil, timeout, refused, refused})
	want := []string{"3 viewers: WHEP POST: 405 Method Not Allowed", "no keyframe within 10s"}
	if !slices.Equal(got, want) {
		t.Errorf("distinctErrors = %q, want %q", got, want)
	}
	if got := distinctErrors([]error{nil, nil}); len(got) != 0 {
		t.Errorf("no errors: got %q", got)
	}
}
