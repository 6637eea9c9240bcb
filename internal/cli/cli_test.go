package cli

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseFlagsMarksUsageErrors(t *testing.T) {
	var out strings.Builder
	fs := NewFlags("x", "x [flags]", &out)
	fs.Int("n", 1, "a number")
	if err := ParseFlags(fs, []string{"-n", "nope"}); !errors.Is(err, ErrUsage) {
		t.Errorf("bad value: %v, want a usage error", err)
	}
	if !strings.Contains(out.String(), "Usage: p2pcast x [flags]") {
		t.Errorf("usage text %q", out.String())
	}
	fs = NewFlags("x", "x", io.Discard)
	if err := ParseFlags(fs, []string{"--help"}); !errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrUsage) {
		t.Errorf("--help: %v, want flag.ErrHelp alone", err)
	}
}
