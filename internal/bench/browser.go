package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/device"
)

// launchBrowser starts headless Chromium (chromium: its binary, "" for the default); with
// verbose its output goes to stderr.
func launchBrowser(ctx context.Context, chromium string, verbose bool, stderr io.Writer) (*browser.Browser, error) {
	opts := browser.Options{ExecPath: chromium}
	if verbose {
		opts.Output = stderr
	}
	return browser.Launch(ctx, opts)
}

// openPage opens page in a new tab; with verbose the page's console goes to log.
func openPage(ctx context.Context, br *browser.Browser, page string, log *slog.Logger, verbose bool) (*browser.Page, error) {
	tab, err := br.NewPage(ctx)
	if err != nil {
		return nil, err
	}
	if verbose {
		tab.Console(func(msg string) { log.Debug("page", "console", msg) })
	}
	if err := tab.Navigate(ctx, page); err != nil {
		tab.Close()
		return nil, err
	}
	return tab, nil
}

// pageBench is what the benchmarks that watch the test pattern in Chromium share: the device's
// picture, the browser, and where they log.
type pageBench struct {
	log      *slog.Logger
	verbose  bool
	stderr   io.Writer
	chromium string
	size     device.Size
	fps      int
	bitrate  device.Bitrate
	playout  string
}

// pageFlags are those benchmarks' shared flags.
type pageFlags struct {
	size     device.Size
	fps      *int
	bitrate  device.Bitrate
	playout  *string
	chromium *string
	verbose  *bool
}

func addPageFlags(fs *flag.FlagSet) *pageFlags {
	f := &pageFlags{size: device.Size{W: 1280, H: 720}}
	fs.Var(&f.size, "size", "test pattern size WxH")
	f.fps = fs.Int("fps", 30, "test pattern frames per second")
	fs.Var(&f.bitrate, "bitrate", "test pattern bitrate, SI units (default: the device's)")
	f.playout = fs.String("playout-delay", "", "the device's --playout-delay (default 0: min = max = 0; -1s: no extension), to show what it buys")
	f.chromium = fs.String("chromium", "", "Chromium binary (default "+browser.DefaultExecPath+")")
	f.verbose = fs.Bool("v", false, "debug logs, with the device's and the browser's output")
	return f
}

// check refuses what the test pattern cannot do.
func (f *pageFlags) check() error {
	switch {
	case f.size.W < 64*8:
		// The strip is 64 blocks of at least 8 pixels (capture/sources/testpattern.c).
		return fmt.Errorf("%w: size %s: the time strip needs a width of at least 512", cli.ErrUsage, f.size)
	case *f.fps < 1 || *f.fps > 240:
		return fmt.Errorf("%w: fps %d: want 1 to 240", cli.ErrUsage, *f.fps)
	}
	return nil
}

func (f *pageFlags) bench(stderr io.Writer) pageBench {
	return pageBench{log: cli.NewLogger(stderr, *f.verbose), verbose: *f.verbose, stderr: stderr, chromium: *f.chromium,
		size: f.size, fps: *f.fps, bitrate: f.bitrate, playout: *f.playout}
}
