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
	"os"

	"github.com/p2pcast/p2pcast/internal/config"
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

// ParseConfigured parses a long-running command's flags with its configuration: it adds
// --config FILE and --print-config to fs, applies the file and the environment
// (internal/config), then args. With --print-config it prints the effective configuration to
// stdout and reports done: the command then exits without running. ownEnv names flags whose
// environment variable the command reads itself (secrets: config.Apply).
func ParseConfigured(fs *flag.FlagSet, args []string, stdout io.Writer, ownEnv ...string) (done bool, err error) {
	fs.String("config", "", "read settings from this TOML `FILE` first (docs/config.md): its keys are these flags' names; the environment (P2PCAST_<FLAG>) and the command line override it")
	printIt := fs.Bool("print-config", false, "print the effective configuration (defaults, file, environment, flags; secrets redacted) as a file --config reads, and exit")
	path := config.FindFlag(fs, args, "config")
	settings, err := config.Load(path)
	if err == nil {
		err = config.Apply(fs, path, settings, os.Getenv, []string{"config", "print-config"}, ownEnv)
	}
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if err := ParseFlags(fs, args); err != nil {
		return false, err
	}
	if *printIt {
		return true, config.Print(stdout, fs, "config", "print-config")
	}
	return false, nil
}
