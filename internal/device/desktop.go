package device

import (
	"errors"
	"maps"
	"os"

	"github.com/p2pcast/p2pcast/internal/input"
	"github.com/p2pcast/p2pcast/internal/peer"
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

// ErrNoDesktop: this build has no desktop backends (the device build, -tags device).
var ErrNoDesktop = errors.New("no desktop in this build")

// portalTokenFile is where, in Config.DataDir, the portal's restore token is kept: a restart
// does not ask the user again.
const portalTokenFile = "portal-restore-token"

// desktop is the wayland source's backend: how the producer captures the screen and how the
// viewer in control drives it.
type desktop struct {
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

// withChannel is channels with one more, leaving the caller's map as it was.
func withChannel(channels map[string]peer.Channel, label string, ch peer.Channel) map[string]peer.Channel {
	out := maps.Clone(channels)
	if out == nil {
		out = map[string]peer.Channel{}
	}
	out[label] = ch
	return out
}
