//go:build device

package main

import (
	"context"
	"fmt"
	"io"
)

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
