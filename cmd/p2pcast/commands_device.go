//go:build device

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// The board's memory settings (docs/board.md, docs/performance.md "Footprint"), unless the
// environment sets its own: the heap grows to 1.25× what is live between collections instead
// of 2× (GOGC=25: ~0.75 MiB per viewer against ~1.1 at Go's default and ~1.0 at GOGC=50, for
// no device CPU the benchmark can tell apart; GOGC=10 gained little more), and the GC works
// harder rather than let the heap pass 40 MiB, memory the camera's media buffers need on a
// 256 MB board. A limit far above the live heap changes nothing until it is near.
const (
	boardGCPercent   = 25
	boardMemoryLimit = 40 << 20
)

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(boardGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(boardMemoryLimit)
	}
}

// A device's program (make cross, docs/board.md): no hub, no TURN server, no benchmarks and no
// Chromium driver, which a board with 256 MB has no use for. No view either: it brings the HTTP
// client and the receiver along (~390 kB of the armv7 binary, docs/performance.md), and a device
// is watched from elsewhere (a phone, or `p2pcast view` on a desktop).
var commands = []command{
	{"device", "run a device: capture/ingest H.264 and serve it to viewers", runDevice},
	{"token", "mint a LAN viewer token from the device's key material (--data)", runToken},
	{"config", "config print COMMAND [flags]: the effective configuration (file, environment, flags)", runConfig},
	{"version", "print the version (this build: device only)", runVersion},
}

// configured are the commands that read a configuration file (--config).
var configured = map[string]func(context.Context, []string, io.Writer, io.Writer) error{"device": runDevice}

// defaultDataDir is, on a device build, the device's data directory: `p2pcast token` mints the
// device's LAN tokens there.
func defaultDataDir() string { return stateDir("device") }

func runVersion(_ context.Context, _ []string, out, _ io.Writer) error {
	fmt.Fprintln(out, "p2pcast", version, "(device build)")
	return nil
}
