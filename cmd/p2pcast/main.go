// Command p2pcast streams live video from a device to its viewers peer to peer over WebRTC.
//
//	p2pcast device [flags]   run a device (test pattern, or any H.264 producer on its socket)
//	p2pcast view URL [flags] watch a device from the terminal (WHEP, WebSocket, hub)
//	p2pcast hub [flags]      run the rendezvous hub (signaling relay, STUN/TURN)
//	p2pcast token [flags]    mint a viewer token
//	p2pcast device-key add   enroll a device at a hub
//	p2pcast bench viewers    load-test a device with many WHEP viewers
//	p2pcast bench latency    capture → present latency in headless Chromium, by stage
//	p2pcast bench avsync     audio/video sync as headless Chromium presents it
//	p2pcast bench devices    device links from one address across a hub restart
//
// Built with -tags device (make cross: the board's binary) it keeps only what a device runs:
// device, token and version; no hub, TURN server, benchmarks, Chromium driver, view or profiler
// (commands_device.go, docs/board.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/p2pcast/p2pcast/internal/cli"
)

// Exit codes, and the conventions every command follows (internal/cli), under short names.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure
	exitUsage   = cli.ExitUsage
)

var (
	errUsage   = cli.ErrUsage // marks errors that deserve exit code 2
	newFlags   = cli.NewFlags
	parseFlags = cli.ParseFlags
	newLogger  = cli.NewLogger
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var version = "dev"

func usage(w io.Writer) {
	fmt.Fprintf(w, "p2pcast: live video peer to peer over WebRTC\n\nUsage: p2pcast <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'p2pcast <command> --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:], stdout, stderr)
		var coded interface{ ExitCode() int }
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &coded):
			fmt.Fprintf(stderr, "p2pcast %s: %v\n", c.name, err)
			return coded.ExitCode()
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "p2pcast %s: %v\n", c.name, err)
			return exitUsage
		default:
			fmt.Fprintf(stderr, "p2pcast %s: %v\n", c.name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "p2pcast: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// parseInterspersed parses flags that may come before, between or after the positional
// arguments (p2pcast view URL --duration 3s), which the flag package alone stops at, and
// returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
