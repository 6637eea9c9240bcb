// Package testbin finds the binaries `make build` made, for the tests that run them as a user
// would (end-to-end, NAT matrix, network lab).
package testbin

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir is the directory holding p2pcast and p2pcast-capture: $P2PCAST_BIN, or the
// repository's bin/ seen from a package two levels down (test/<suite>). The test fails at
// once when p2pcast is not there.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("P2PCAST_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../../bin")
	}
	if _, err := os.Stat(filepath.Join(dir, "p2pcast")); err != nil {
		t.Fatalf("p2pcast not built in %s (run make build): %v", dir, err)
	}
	return dir
}
