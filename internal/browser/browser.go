// Package browser runs headless Chromium for p2pcast's end-to-end tests and benchmarks, through
// chromedp: Launch starts a browser with the flags WebRTC needs in a private network namespace
// with only loopback up, Open loads a page in a new tab, and Eval evaluates JavaScript there.
//
// The flags: loopback WebRTC needs both --allow-loopback-in-peer-connection and the feature
// WebRtcHideLocalIpsWithMdns disabled, or ICE gathering never completes. A second --disable-features replaces the first, so the package
// passes one list holding chromedp's defaults and its own. QUIC, component updates, background
// networking and sync are off, so that Chromium asks nothing of the outside world; autoplay needs
// no user gesture.
//
// The package holds no global state: each Browser is its own process with its own temporary
// profile, removed when it stops.
package browser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// DefaultExecPath is the Chromium that Launch runs when Options.ExecPath is empty and the file
// exists; otherwise chromedp looks for one in the usual places.
const DefaultExecPath = "/usr/bin/chromium"

// disabledFeatures is the one --disable-features list: chromedp's defaults
// (Translate, BlinkGenPropertyTrees) and WebRtcHideLocalIpsWithMdns, without which Chromium
// hides its loopback candidates behind mDNS names nobody resolves.
var disabledFeatures = []string{"Translate", "BlinkGenPropertyTrees", "WebRtcHideLocalIpsWithMdns"}

// Options configures Launch. The zero value is usable.
type Options struct {
	// ExecPath is the browser binary (default: DefaultExecPath if it exists, else chromedp's search).
	ExecPath string
	// Width and Height are the window's size in CSS pixels (default 1280×720).
	Width, Height int
	// Output receives the browser process's stdout and stderr (default: discarded).
	Output io.Writer
	// DisableFeatures are added to the one --disable-features list.
	DisableFeatures []string
	// Flags adds or overrides command-line flags: name without the dashes → true, false (leaves
	// the flag out) or a string value. "disable-features" is ignored here: use DisableFeatures.
	Flags map[string]any
	// Netns runs the browser inside this named network namespace (`ip netns exec NETNS`, which
	// needs root), as on a host of a test network. chromedp still drives it from here: it talks
	// to the browser over a pipe (inherited file descriptors), not over a port that would live
	// in the namespace's loopback.
	Netns string
}

// Browser is a running headless Chromium. Its methods may be called from several goroutines; each
// Page is used by one at a time.
type Browser struct {
	ctx         context.Context // the browser's first tab; its life is the browser's
	cancel      context.CancelFunc
	cancelAlloc context.CancelFunc
	closeOnce   sync.Once
	closeErr    error
}

// Launch starts Chromium and waits until it answers. The browser stops when ctx ends or at Close.
func Launch(ctx context.Context, opts Options) (*Browser, error) {
	execPath := opts.ExecPath
	if execPath == "" {
		if _, err := os.Stat(DefaultExecPath); err == nil {
			execPath = DefaultExecPath
		}
	}
	w, h := opts.Width, opts.Height
	if w <= 0 || h <= 0 {
		w, h = 1280, 720
	}
	features := append(append([]string(nil), disabledFeatures...), opts.DisableFeatures...)
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", strings.Join(features, ",")),
		chromedp.WindowSize(w, h),
	)
	if execPath != "" {
		flags = append(flags, chromedp.ExecPath(execPath))
	}
	if opts.Output != nil {
		flags = append(flags, chromedp.CombinedOutput(opts.Output))
	}
	if opts.Netns != "" {
		ip, err := lookSbin("ip")
		if err != nil {
			return nil, fmt.Errorf("browser in netns %s: %w", opts.Netns, err)
		}
		flags = append(flags, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec joins the namespace and execs the browser in the same process, so
			// the pipes, the process id and the parent-death signal all stay the browser's.
			cmd.Args = append([]string{ip, "netns", "exec", opts.Netns, cmd.Path}, cmd.Args[1:]...)
			cmd.Path = ip
			if cmd.SysProcAttr == nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{}
			}
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // what chromedp does when not told otherwise
		}))
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Flags)) {
		switch v := opts.Flags[name].(type) {
		case bool, string:
			if name != "disable-features" {
				flags = append(flags, chromedp.Flag(name, v))
			}
		default:
			return nil, fmt.Errorf("browser flag %s: value %v is neither a bool nor a string", name, v)
		}
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, flags...)
	bctx, cancel := chromedp.NewContext(actx)
	// The first action starts the browser and ties its life to bctx.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelAlloc()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	return &Browser{ctx: bctx, cancel: cancel, cancelAlloc: cancelAlloc}, nil
}

// lookSbin finds a tool on PATH or in the sbin directories a non-login root shell may lack.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(dir + "/" + name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// Close stops the browser, waits for it to exit and removes its profile. Calling it again
// returns the first call's result.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close() })
	return b.closeErr
}

func (b *Browser) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Cancel needs a chromedp context; a deadline on a child of it bounds the graceful close.
	cctx, ccancel := context.WithCancel(b.ctx)
	defer ccancel()
	stop := context.AfterFunc(ctx, ccancel)
	defer stop()
	err := chromedp.Cancel(cctx)
	b.cancel()
	b.cancelAlloc()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil // the browser was already going, or was killed after the grace period
	}
	return err
}

// Page is one tab of a Browser.
type Page struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// NewPage opens a blank tab.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	tctx, cancel := chromedp.NewContext(b.ctx)
	// The first action creates the tab and ties it to the context it runs with: that must be
	// tctx itself, not a shorter-lived child. ctx only bounds the wait (by closing the tab).
	stop := context.AfterFunc(ctx, cancel)
	err := chromedp.Do(tctx)
	if !stop() || err != nil {
		cancel()
		if err == nil || ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("opening a tab: %w", err)
	}
	return &Page{ctx: tctx, cancel: cancel}, nil
}

// Open opens url in a new tab and waits for its load event.
func (b *Browser) Open(ctx context.Context, url string) (*Page, error) {
	p, err := b.NewPage(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Navigate(ctx, url); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Navigate loads url in the tab and waits for its load event.
func (p *Page) Navigate(ctx context.Context, url string) error {
	if err := p.run(ctx, func(c context.Context) error { return chromedp.Do(c, chromedp.Navigate(url)) }); err != nil {
		return fmt.Errorf("opening %s: %w", url, err)
	}
	return nil
}

// Close closes the tab (the page sees pagehide) and waits until it is gone.
func (p *Page) Close() { p.cancel() }

// Console calls f, from another goroutine, with each message of the page's console ("info: text",
// uncaught exceptions too) until the tab closes. Call it before Navigate to see every message.
func (p *Page) Console(f func(msg string)) {
	msgs := chromedp.Console(p.ctx) // subscribes now
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			f(m.String())
		}
	}()
}

// Context is the tab's chromedp context, for other chromedp actions (chromedp.Console, ...). Do
// not cancel it; use Close.
func (p *Page) Context() context.Context { return p.ctx }

// Eval evaluates expr in the page and decodes its JSON value into T. A promise is awaited. ctx
// bounds the call; the tab stays open whatever happens to ctx.
func Eval[T any](ctx context.Context, p *Page, expr string) (T, error) {
	var v T
	err := p.run(ctx, func(c context.Context) error {
		var err error
		v, err = chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
		return err
	})
	return v, err
}

// Dispatch sends one DevTools command that returns nothing (an input event: Input.dispatchKeyEvent,
// Input.dispatchMouseEvent) to the tab, as if from the keyboard or the mouse. ctx bounds it.
func Dispatch[P any](ctx context.Context, p *Page, cmd cdp.Command[P, cdp.Empty], params P) error {
	return p.run(ctx, func(c context.Context) error {
		return chromedp.Do(c, func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(c, tg, cmd, params)
			return chromedp.Void{}, err
		})
	})
}

// run runs f with a context of the tab that also ends when ctx does.
func (p *Page) run(ctx context.Context, f func(context.Context) error) error {
	c, cancel := context.WithCancel(p.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	err := f(c)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
