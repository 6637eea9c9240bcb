// Package cli holds the conventions every p2pcast command follows, so that commands living in
// other packages (internal/bench) behave like the ones in cmd/p2pcast: flag sets that report
// errors instead of exiting, ErrUsage for bad flags or arguments (exit code 2), and logs to
// stderr through log/slog.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // bad flags or arguments
)

// ErrUsage marks errors that deserve ExitUsage.
var ErrUsage = errors.New("usage")

// NewFlags makes the flag set of `p2pcast SYNOPSIS`, which reports errors instead of exiting.
func NewFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: p2pcast %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args and wraps flag errors as usage errors (flag.ErrHelp stays as it is).
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}

// NewLogger logs to w, at debug level when verbose.
func NewLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
