//go:build !device

package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/p2pcast/p2pcast/internal/input"
	"github.com/p2pcast/p2pcast/internal/portal"
	"github.com/p2pcast/p2pcast/internal/wayland"
)

// openDesktop prepares the wayland source for the running session: the wlroots backend when
// the compositor offers wlr-screencopy, else the portal (Config.DesktopBackend forces one).
// With the wlroots backend a compositor without the virtual input protocols still streams,
// view-only.
func openDesktop(ctx context.Context, cfg Config, log *slog.Logger) (*desktop, error) {
	backend := cfg.DesktopBackend
	if backend == DesktopAuto {
		globals, err := wayland.Globals("")
		if err != nil {
			return nil, fmt.Errorf("--source wayland needs a Wayland session (WAYLAND_DISPLAY, XDG_RUNTIME_DIR): %w", err)
		}
		backend = DesktopPortal
		if globals["zwlr_screencopy_manager_v1"] > 0 {
			backend = DesktopWlroots
		}
	}
	switch backend {
	case DesktopWlroots:
		return openWlroots(cfg, log)
	case DesktopPortal:
		return openPortal(ctx, cfg, log)
	}
	return nil, fmt.Errorf("desktop backend %q: want %v", backend, DesktopBackends)
}

func openWlroots(cfg Config, log *slog.Logger) (*desktop, error) {
	d := &desktop{args: []string{"--source", "wayland"}, close: func() {}}
	if cfg.Output != "" {
		d.args = append(d.args, "--output", cfg.Output)
	}
	desk, err := wayland.Open("", cfg.Output)
	switch {
	case errors.Is(err, wayland.ErrMissingProtocol):
		log.Warn("the desktop cannot be driven from viewers: streaming it view-only", "err", err)
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("the Wayland desktop: %w", err)
	}
	log.Info("desktop ready", "backend", DesktopWlroots, "output", desk.OutputName(), "keymap", desk.KeymapSource())
	d.gone = desk.Done()
	d.lost = func() error { return fmt.Errorf("%w: the compositor connection ended: %v", ErrDesktopGone, desk.Err()) }
	d.control = input.NewControl(desk, input.Config{}, log.With("channel", ControlChannel))
	return d, nil
}

func openPortal(ctx context.Context, cfg Config, log *slog.Logger) (*desktop, error) {
	opts := portal.Options{}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		opts.TokenFile = filepath.Join(cfg.DataDir, portalTokenFile)
	}
	if cfg.Output != "" {
		log.Warn("--output is for the wlroots backend: the portal asks the user which screen to share")
	}
	log.Info("asking the desktop portal to share the screen (the desktop may show a dialog)")
	sess, err := portal.Dial(ctx, "", opts)
	if err != nil {
		return nil, fmt.Errorf("the desktop portal: %w", err)
	}
	if err := sess.TokenErr(); err != nil {
		log.Warn("the portal's restore token was not kept: the next start asks again", "err", err)
	}
	node, w, h := sess.Stream()
	d := &desktop{
		args: []string{"--source", "pipewire", "--pipewire-fd", "3", "--pipewire-node", strconv.FormatUint(uint64(node), 10)},
		files: func() ([]*os.File, error) {
			f, err := sess.PipeWire()
			if err != nil {
				return nil, fmt.Errorf("the portal's PipeWire remote: %w", err)
			}
			return []*os.File{f}, nil
		},
	}
	log.Info("desktop ready", "backend", DesktopPortal, "node", node, "size", fmt.Sprintf("%dx%d", w, h),
		"input", sess.CanInput(), "persists", sess.Persists())
	d.gone = sess.Closed()
	d.lost = func() error {
		return fmt.Errorf("%w: the portal session closed (the user stopped sharing the screen)", ErrDesktopGone)
	}
	if !sess.CanInput() {
		log.Warn("the portal grants no keyboard or pointer: streaming the desktop view-only")
		d.close = func() { _ = sess.Close() }
		return d, nil
	}
	d.close = func() {} // the control owns the session and closes it
	d.control = input.NewControl(sess, input.Config{}, log.With("channel", ControlChannel))
	return d, nil
}
