package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
)

// runConfig: `p2pcast config print COMMAND [flags]` prints what COMMAND would run with (its
// --print-config), e.g. p2pcast config print device --config /etc/p2pcast/device.toml.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "usage: p2pcast config print COMMAND [--config FILE] [flags]\n\n" +
		"Prints the effective configuration of COMMAND (device or hub): its defaults, then the file,\n" +
		"the environment (P2PCAST_<FLAG>) and the flags, as a file --config reads; secrets redacted.\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stderr, synopsis)
		return nil
	}
	if len(args) < 2 || args[0] != "print" {
		fmt.Fprint(stderr, synopsis)
		return fmt.Errorf("%w: want config print COMMAND", errUsage)
	}
	run := configured[args[1]]
	if run == nil {
		return fmt.Errorf("%w: %q has no configuration (want one of %v)", errUsage, args[1], slices.Sorted(maps.Keys(configured)))
	}
	return run(ctx, append(slices.Clone(args[2:]), "--print-config"), stdout, stderr)
}
