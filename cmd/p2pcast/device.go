package main

import (
	"context"
	"fmt"
	"io"

	"github.com/p2pcast/p2pcast/internal/device"
)

func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := device.Defaults()
	fs := newFlags("device", "device [flags]", stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP listen address (viewer page, /whep, /ws)")
	fs.StringVar(&cfg.SocketPath, "socket", "", "capture socket path (default: a private temporary path, printed at start)")
	fs.StringVar(&cfg.Source, "source", cfg.Source, "testpattern (runs p2pcast-capture) or socket (wait for any producer)")
	fs.Var(&cfg.Size, "size", "picture size WxH")
	fs.IntVar(&cfg.FPS, "fps", cfg.FPS, "frames per second")
	fs.Var(&cfg.Bitrate, "bitrate", "target bitrate, SI units (2M = 2,000,000 bit/s)")
	fs.DurationVar(&cfg.GOP, "gop", cfg.GOP, "time between scheduled keyframes")
	fs.StringVar(&cfg.CapturePath, "capture", "", "p2pcast-capture binary (default: next to this binary, then PATH)")
	fs.DurationVar(&cfg.PlayoutDelay, "playout-delay", 0, "playout delay asked of viewers (min = max); negative: don't send the extension")
	fs.IntVar(&cfg.MaxViewers, "max-viewers", cfg.MaxViewers, "most viewers at once")
	verbose := fs.Bool("v", false, "debug logs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	log := newLogger(stderr, *verbose)
	d, err := device.New(cfg, log)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return d.Run(ctx, func(r device.Ready) {
		log.Info("capture socket", "path", r.SocketPath)
		fmt.Fprintln(stdout, r.URL)
	})
}
