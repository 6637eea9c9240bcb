// Package portal captures the screen and injects input through xdg-desktop-portal over the
// D-Bus session bus: the way in on GNOME and KDE, which offer no wlroots protocols. Open asks
// the user once (RemoteDesktop with ScreenCast sources on the same session, a restore token
// kept for the next run) and yields the stream's PipeWire node and remote fd for the capture
// producer; the Session then injects the controlling viewer's input and shares the clipboard.
// The package speaks the protocol only: no config file, no logger (docs/portal.md).
package portal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of the portal.
const (
	busName            = "org.freedesktop.portal.Desktop"
	objectPath         = dbus.ObjectPath("/org/freedesktop/portal/desktop")
	ifaceScreenCast    = "org.freedesktop.portal.ScreenCast"
	ifaceRemoteDesktop = "org.freedesktop.portal.RemoteDesktop"
	ifaceClipboard     = "org.freedesktop.portal.Clipboard"
	ifaceRequest       = "org.freedesktop.portal.Request"
	ifaceSession       = "org.freedesktop.portal.Session"
	ifaceProperties    = "org.freedesktop.DBus.Properties"
)

// Device types of RemoteDesktop (AvailableDeviceTypes, SelectDevices types, Start devices).
const (
	DeviceKeyboard    uint32 = 1
	DevicePointer     uint32 = 2
	DeviceTouchscreen uint32 = 4
)

// Source types of ScreenCast (AvailableSourceTypes).
const (
	SourceMonitor uint32 = 1
	SourceWindow  uint32 = 2
	SourceVirtual uint32 = 4
)

// Cursor modes of ScreenCast (AvailableCursorModes).
const (
	CursorHidden   uint32 = 1
	CursorEmbedded uint32 = 2
	CursorMetadata uint32 = 4
)

// Interface versions that features need; older portals work without the feature.
const (
	// ScreenCastCursorVersion adds cursor_mode to SelectSources.
	ScreenCastCursorVersion = 2
	// ScreenCastRestoreVersion adds persist_mode and restore_token to a ScreenCast-only session.
	ScreenCastRestoreVersion = 4
	// RemoteDesktopRestoreVersion adds persist_mode and restore_token to a RemoteDesktop session.
	RemoteDesktopRestoreVersion = 2
)

// persistUntilRevoked is persist_mode 2: the grant lasts until the user revokes it.
const persistUntilRevoked uint32 = 2

// Defaults of Options.
const (
	DefaultConsentTimeout = 2 * time.Minute
	DefaultCallTimeout    = 10 * time.Second
)

// Errors Open and the Session return; each says what the user can do about it.
var (
	ErrNoPortal = errors.New("portal: xdg-desktop-portal is not on the session bus " +
		"(install xdg-desktop-portal and your desktop's backend, e.g. xdg-desktop-portal-gnome " +
		"or xdg-desktop-portal-kde, and run p2pcast inside the desktop session)")
	ErrNoScreenCast = fmt.Errorf("portal: the desktop's portal has no ScreenCast interface "+
		"(install the backend for your desktop: xdg-desktop-portal-gnome, -kde or -wlr): %w",
		errors.ErrUnsupported)
	ErrDeclined = errors.New("portal: the user declined screen sharing " +
		"(accept the sharing dialog on the desktop to share it)")
	ErrFailed = errors.New("portal: the portal refused the request " +
		"(see the portal's log, e.g. journalctl --user -u xdg-desktop-portal)")
	ErrTimeout = errors.New("portal: no answer from the portal in time " +
		"(if it hangs, restart it: systemctl --user restart xdg-desktop-portal)")
	// ErrConsentTimeout is an ErrTimeout too.
	ErrConsentTimeout error = consentTimeout{}
	ErrClosed               = errors.New("portal: the sharing session is closed " +
		"(the user stopped sharing or it was closed; start a new session)")
	ErrNoInput = fmt.Errorf("portal: no input on this session (the portal has no RemoteDesktop, "+
		"or the user did not allow remote control in the sharing dialog): %w", errors.ErrUnsupported)
	ErrNoClipboard = fmt.Errorf("portal: no clipboard on this session (it needs "+
		"xdg-desktop-portal 1.17 or later with a backend that shares it, and the user's consent): %w",
		errors.ErrUnsupported)
)

// consentTimeout is ErrConsentTimeout: its own words, and errors.Is(err, ErrTimeout).
type consentTimeout struct{}

func (consentTimeout) Error() string {
	return "portal: nobody answered the screen sharing dialog " +
		"(accept it on the desktop, or allow longer with the consent timeout)"
}

func (consentTimeout) Is(target error) bool { return target == ErrTimeout }

// Options tune Open. The zero value asks for screen and input, and asks the user every time.
type Options struct {
	// TokenFile keeps the portal's restore token between runs (written atomically, 0600), so
	// the user is asked once. Empty: no token is kept and the portal is asked not to persist.
	TokenFile string
	// ViewOnly shares the screen only: no RemoteDesktop session, no input.
	ViewOnly bool
	// ConsentTimeout bounds the wait for the user's answer to the sharing dialog.
	ConsentTimeout time.Duration
	// CallTimeout bounds every other call to the portal and every other Response.
	CallTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.ConsentTimeout <= 0 {
		o.ConsentTimeout = DefaultConsentTimeout
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	return o
}

// Versions are the portal's interface versions; 0 means the interface is absent.
type Versions struct {
	ScreenCast    uint32
	RemoteDesktop uint32
	Clipboard     uint32
}

// Stream is one screen cast stream of a started session.
type Stream struct {
	NodeID     uint32 // the PipeWire node to read the screen from
	Width      int    // logical size in the compositor's coordinate space; 0 when not given
	Height     int
	X, Y       int    // position in the compositor's coordinate space
	SourceType uint32 // SourceMonitor, SourceWindow or SourceVirtual; 0 when not given
}

// response is one Request::Response signal.
type response struct {
	code    uint32
	results map[string]dbus.Variant
}

// Session is a started portal session: a screen cast stream and, when granted, input. It is
// the desktop's Injector (internal/input): its methods are safe for concurrent use.
type Session struct {
	conn    *dbus.Conn
	ownConn bool // Dial's connection, closed with the session
	opts    Options
	sender  string // our unique name as it appears in request paths
	owner   string // the portal's unique name: signals from others are ignored
	sigs    chan *dbus.Signal
	stop    chan struct{}
	ctx     context.Context // cancelled at shutdown: bounds the clipboard worker's calls
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the dispatcher and the clipboard worker

	mu         sync.Mutex // guards the fields below
	waiters    map[dbus.ObjectPath]chan response
	early      map[dbus.ObjectPath]response // Responses that beat their call's reply
	earlyOrder []dbus.ObjectPath
	handle     dbus.ObjectPath // the portal session
	closedCh   chan struct{}
	closed     bool
	pw         *os.File // the remote Open got, until PipeWire hands it over
	offer      string   // the clipboard text we own
	offering   bool
	tokenErr   error
	closeErr   error
	closing    bool

	// Fixed once Open returns.
	versions   Versions
	remote     bool   // a RemoteDesktop session (else ScreenCast only)
	persists   bool   // the portal was asked to remember the grant (restore tokens)
	devices    uint32 // granted devices
	streams    []Stream
	cursorMode uint32
	clipboard  bool
	clipEvents chan clipEvent
	clip       chan string

	in inputState
}

// Versions reports the portal's interface versions, as read when the session opened.
func (s *Session) Versions() Versions { return s.versions }

// CanInput reports whether the user granted any input device: false on a ScreenCast-only
// session (no RemoteDesktop on the portal, Options.ViewOnly) or when the user allowed none.
func (s *Session) CanInput() bool { return s.remote && s.devices&(DeviceKeyboard|DevicePointer) != 0 }

// Persists reports whether the grant is remembered between runs through a restore token:
// it needs Options.TokenFile and RemoteDesktop version 2 (ScreenCast version 4 for a
// screen-only session).
func (s *Session) Persists() bool { return s.persists }

// Devices reports the granted input devices (DeviceKeyboard|DevicePointer...).
func (s *Session) Devices() uint32 { return s.devices }

// CursorMode reports the cursor mode asked for (CursorEmbedded when the portal has it), or 0
// when the portal is too old to be asked.
func (s *Session) CursorMode() uint32 { return s.cursorMode }

// Streams reports every stream the portal started (one: sources are selected with multiple
// false).
func (s *Session) Streams() []Stream { return append([]Stream(nil), s.streams...) }

// Stream reports the captured stream: its PipeWire node and logical size (0 when the portal
// did not say).
func (s *Session) Stream() (nodeID uint32, width, height int) {
	st := s.streams[0]
	return st.NodeID, st.Width, st.Height
}

// PipeWire returns a PipeWire remote fd on which the stream's node is available, for the
// capture producer (pw_context_connect_fd). The caller owns the file. The first call returns
// the remote Open obtained; later calls open a new one.
func (s *Session) PipeWire() (*os.File, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	f := s.pw
	s.pw = nil
	handle := s.handle
	s.mu.Unlock()
	if f != nil {
		return f, nil
	}
	return s.openPipeWire(handle)
}

// TokenErr reports why the restore token could not be kept (nil when it was, or when there
// was none): the session works, but the user will be asked again next time.
func (s *Session) TokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenErr
}

// Closed is closed when the session ends: the user stopped sharing, the portal closed it,
// the bus went away, or Close was called.
func (s *Session) Closed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closedCh
}

// Close releases what the session holds pressed, closes the portal session and stops its
// goroutines. It is safe to call more than once.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closing {
		err := s.closeErr
		s.mu.Unlock()
		return err
	}
	s.closing = true
	wasClosed := s.closed
	s.mu.Unlock()

	var errs []error
	if !wasClosed && s.remote {
		if err := s.ReleaseAll(); err != nil {
			errs = append(errs, err)
		}
	}
	s.markClosed()
	if !wasClosed {
		if err := s.closeSession(s.handle); err != nil {
			errs = append(errs, err)
		}
	}
	s.shutdown()

	s.mu.Lock()
	if s.pw != nil {
		errs = append(errs, s.pw.Close())
		s.pw = nil
	}
	s.closeErr = errors.Join(errs...)
	err := s.closeErr
	s.mu.Unlock()
	return err
}

// markClosed ends the session locally once: Closed fires, input is refused.
func (s *Session) markClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.closedCh)
	}
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
