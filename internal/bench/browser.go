package bench

import (
	"context"
	"io"
	"log/slog"

	"github.com/p2pcast/p2pcast/internal/browser"
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
