// Package metricstest checks a /metrics exposition in tests with Prometheus's own linter.
package metricstest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Promtool runs `promtool check metrics` on body and fails t if it objects. Without promtool
// installed (scripts/install-deps.sh extracts it from Debian's package) it says so and checks
// nothing.
func Promtool(t testing.TB, body string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (scripts/install-deps.sh extracts it): the exposition is not linted")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, body)
	}
}
