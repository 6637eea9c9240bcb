//go:build device

package main

import (
	"context"
	"fmt"
	"log/slog"
)

// servePprof is left out of the device build: the profiler (runtime/pprof, its gzip and
// protobuf writers) is a few hundred kilobytes a board does not carry. Profile a device by
// running the full build on a desktop with the same flags.
func servePprof(_ context.Context, _ string, _ *slog.Logger) error {
	return fmt.Errorf("%w: --pprof: the device build has no profiler (build without -tags device)", errUsage)
}
