package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/p2pcast/p2pcast/internal/input"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/portal"
	"github.com/p2pcast/p2pcast/internal/wayland"
)

// ControlChannel is the data channel a desktop's viewers drive it on (docs/input.md).
const ControlChannel = "control"

// Desktop backends (Config.DesktopBackend): how the wayland source captures and injects.
const (
	DesktopAuto    = ""        // wlroots where the compositor offers wlr-screencopy, else the portal
	DesktopWlroots = "wlroots" // wlr-screencopy, the virtual pointer and keyboard
	DesktopPortal  = "portal"  // xdg-desktop-portal (GNOME, KDE): PipeWire and RemoteDesktop
)

// DesktopBackends are the values of Config.DesktopBackend besides auto.
var DesktopBackends = []string{DesktopWlroots, DesktopPortal}

// portalTokenFile is where, in Config.DataDir, the portal's restore token is kept: a restart
// does not ask the user again.
const portalTokenFile = "portal-restore-token"

// desktop is the wayland source's backend: how the producer captures the screen and how the
// viewer in control drives it.
type desktop struct {
	backend string
	// control is the control channel; nil streams view-only.
	control *input.Control
	// args are the producer's source arguments.
	args []string
	// files, when set, gives the descriptors the producer inherits (fd 3 on), fresh for each
	// start: the portal's PipeWire remote.
	files func() ([]*os.File, error)
	// close ends what control does not own.
	close func()
	// gone, when set, is closed when the desktop went away (the compositor exited, the user
	// stopped sharing); lost then says why.
	gone <-chan struct{}
	lost func() error
}

// ErrDesktopGone ends a device whose desktop went away: it cannot capture or inject any more,
// and whatever started it (a user service, a session script) starts it again with the next
// session.
var ErrDesktopGone = errors.New("the desktop went away")

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
	d := &desktop{backend: DesktopWlroots, args: []string{"--source", "wayland"}, close: func() {}}
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
	log.Info("desktop ready", "backend", d.backend, "output", desk.OutputName(), "keymap", desk.KeymapSource())
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
	d := &desktop{backend: DesktopPortal,
		args: []string{"--source", "pipewire", "--pipewire-fd", "3", "--pipewire-node", strconv.FormatUint(uint64(node), 10)},
		files: func() ([]*os.File, error) {
			f, err := sess.PipeWire()
			if err != nil {
				return nil, fmt.Errorf("the portal's PipeWire remote: %w", err)
			}
			return []*os.File{f}, nil
		},
	}
	log.Info("desktop ready", "backend", d.backend, "node", node, "size", fmt.Sprintf("%dx%d", w, h),
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

// withChannel is channels with one more, leaving the caller's map as it was.
func withChannel(channels map[string]peer.Channel, label string, ch peer.Channel) map[string]peer.Channel {
	out := maps.Clone(channels)
	if out == nil {
		out = map[string]peer.Channel{}
	}
	out[label] = ch
	return out
}
