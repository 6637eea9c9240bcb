package portaltest

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
)

const (
	busName            = "org.freedesktop.portal.Desktop"
	objectPath         = dbus.ObjectPath("/org/freedesktop/portal/desktop")
	ifaceScreenCast    = "org.freedesktop.portal.ScreenCast"
	ifaceRemoteDesktop = "org.freedesktop.portal.RemoteDesktop"
	ifaceClipboard     = "org.freedesktop.portal.Clipboard"
	ifaceRequest       = "org.freedesktop.portal.Request"
	ifaceSession       = "org.freedesktop.portal.Session"
	requestPrefix      = "/org/freedesktop/portal/desktop/request"
	sessionPrefix      = "/org/freedesktop/portal/desktop/session"
)

// Stream is a stream the double's Start reports.
type Stream struct {
	NodeID        uint32
	Width, Height int32
	X, Y          int32
	SourceType    uint32
}

// Config is the desktop the double plays. Versions of 0 leave the interface out.
type Config struct {
	ScreenCastVersion    uint32
	RemoteDesktopVersion uint32
	ClipboardVersion     uint32
	SourceTypes          uint32 // AvailableSourceTypes
	CursorModes          uint32 // AvailableCursorModes
	DeviceTypes          uint32 // AvailableDeviceTypes
	Streams              []Stream
	// GrantDevices are the devices the user allows in the dialog (masked by those asked for).
	GrantDevices uint32
	// ClipboardEnabled: the user allows the clipboard (when the client asked for it).
	ClipboardEnabled bool
	// StartResponse is the dialog's answer: 0 shared, 1 declined, 2 failed.
	StartResponse uint32
	// NoAnswer: nobody ever answers the dialog.
	NoAnswer bool
	// BadTokens are restore tokens the portal refuses (SelectDevices/SelectSources answer 2).
	BadTokens []string
	// OtherPaths: requests get a path other than the predicted one (portals before 0.9).
	OtherPaths bool
}

// Desktop is a GNOME-like portal: every interface, one 1920x1080 monitor stream on node 42,
// keyboard and pointer and clipboard granted.
func Desktop() Config {
	return Config{
		ScreenCastVersion:    5,
		RemoteDesktopVersion: 2,
		ClipboardVersion:     1,
		SourceTypes:          1 | 2,
		CursorModes:          1 | 2 | 4,
		DeviceTypes:          1 | 2 | 4,
		Streams:              []Stream{{NodeID: 42, Width: 1920, Height: 1080, SourceType: 1}},
		GrantDevices:         1 | 2,
		ClipboardEnabled:     true,
	}
}

// Call is one method call the double received, in arrival order.
type Call struct {
	Method string // interface.member
	Path   dbus.ObjectPath
	Args   []any
}

// Option returns the call's options vardict value for key (the first a{sv} argument).
func (c Call) Option(key string) (any, bool) {
	for _, a := range c.Args {
		if m, ok := a.(map[string]dbus.Variant); ok {
			v, ok := m[key]
			return v.Value(), ok
		}
	}
	return nil, false
}

// transfer is one paste of the client's clipboard: the pipe the client writes into.
type transfer struct {
	w    *os.File
	read chan struct{} // closed when the text is read
	text string
}

type session struct {
	path      dbus.ObjectPath
	iface     string // the interface that created it
	devices   uint32
	persist   uint32
	clipboard bool // RequestClipboard was called
	started   bool
	closed    bool
}

// Portal is the running double.
type Portal struct {
	t    testing.TB
	conn *dbus.Conn
	cfg  Config

	mu         sync.Mutex
	calls      []Call
	changed    chan struct{} // closed and replaced on every call
	sessions   map[dbus.ObjectPath]*session
	nextID     int
	tokens     int
	files      []*os.File // fds handed out and our ends of them, closed at cleanup
	pwPeers    []*os.File
	desktop    string            // clipboard text other applications own
	written    map[uint32]string // text the client wrote per transfer serial
	writeDone  map[uint32]bool   // SelectionWriteDone's success per serial
	transfers  map[uint32]*transfer
	nextSerial uint32
}

// New starts the double on the bus at address; it leaves the bus when the test ends.
func New(t testing.TB, address string, cfg Config) *Portal {
	t.Helper()
	p := &Portal{
		t:         t,
		cfg:       cfg,
		changed:   make(chan struct{}),
		sessions:  make(map[dbus.ObjectPath]*session),
		written:   make(map[uint32]string),
		writeDone: make(map[uint32]bool),
		transfers: make(map[uint32]*transfer),
	}
	// The interceptor runs on the connection's reader, so calls are recorded in the order
	// they arrive (exported methods run on goroutines of their own).
	conn, err := dbus.Connect(address, dbus.WithIncomingInterceptor(p.record))
	if err != nil {
		t.Fatalf("portaltest: connecting to the bus: %v", err)
	}
	p.conn = conn
	t.Cleanup(p.close)
	if err := p.export(); err != nil {
		t.Fatalf("portaltest: exporting: %v", err)
	}
	reply, err := conn.RequestName(busName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("portaltest: owning %s: %v (reply %d)", busName, err, reply)
	}
	return p
}

func (p *Portal) close() {
	_ = p.conn.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.files {
		_ = f.Close()
	}
	for _, tr := range p.transfers {
		_ = tr.w.Close()
	}
}

func (p *Portal) record(msg *dbus.Message) {
	if msg.Type != dbus.TypeMethodCall {
		return
	}
	iface, _ := msg.Headers[dbus.FieldInterface].Value().(string)
	member, _ := msg.Headers[dbus.FieldMember].Value().(string)
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	if !strings.HasPrefix(iface, "org.freedesktop.portal.") {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, Call{Method: iface + "." + member, Path: path, Args: slices.Clone(msg.Body)})
	p.bump()
}

// bump wakes the waiters; p.mu is held.
func (p *Portal) bump() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Calls returns the calls received so far, in order; with names given, only those methods
// (short names such as "SelectDevices" match any interface).
func (p *Portal) Calls(methods ...string) []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Call
	for _, c := range p.calls {
		if len(methods) == 0 || slices.ContainsFunc(methods, func(m string) bool {
			return c.Method == m || strings.HasSuffix(c.Method, "."+m)
		}) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets the calls recorded so far.
func (p *Portal) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
}

// WaitCalls waits until at least n calls of method have arrived and returns them.
func (p *Portal) WaitCalls(ctx context.Context, method string, n int) ([]Call, error) {
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		if c := p.Calls(method); len(c) >= n {
			return c, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return p.Calls(method), fmt.Errorf("portaltest: waiting for %d %s calls: %w", n, method, ctx.Err())
		}
	}
}

// PipeWirePeer returns the double's end of the i-th PipeWire remote handed out: what the
// client writes to its fd arrives here.
func (p *Portal) PipeWirePeer(i int) *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.pwPeers) {
		return nil
	}
	return p.pwPeers[i]
}

// CloseSessions closes every open session as the user's "stop sharing" does: the Closed
// signal on each session object.
func (p *Portal) CloseSessions() {
	p.mu.Lock()
	var paths []dbus.ObjectPath
	for path, s := range p.sessions {
		if !s.closed {
			s.closed = true
			paths = append(paths, path)
		}
	}
	p.mu.Unlock()
	for _, path := range paths {
		if err := p.conn.Emit(path, ifaceSession+".Closed", map[string]dbus.Variant{}); err != nil {
			p.t.Errorf("portaltest: emitting Closed: %v", err)
		}
	}
}

// Sessions returns the paths of the sessions that are open.
func (p *Portal) Sessions() []dbus.ObjectPath {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []dbus.ObjectPath
	for path, s := range p.sessions {
		if !s.closed {
			out = append(out, path)
		}
	}
	return out
}

// SetDesktopClipboard plays another application copying text: SelectionOwnerChanged on every
// session with the clipboard on.
func (p *Portal) SetDesktopClipboard(text string) {
	p.mu.Lock()
	p.desktop = text
	paths := p.clipSessions()
	p.mu.Unlock()
	for _, path := range paths {
		err := p.conn.Emit(objectPath, ifaceClipboard+".SelectionOwnerChanged", path, map[string]dbus.Variant{
			"mime_types":       dbus.MakeVariant([]string{"text/plain;charset=utf-8", "text/plain", "text/html"}),
			"session_is_owner": dbus.MakeVariant(false),
		})
		if err != nil {
			p.t.Errorf("portaltest: emitting SelectionOwnerChanged: %v", err)
		}
	}
}

// Paste plays another application pasting what the session owns: SelectionTransfer, then
// waits for the client's SelectionWriteDone and returns what it wrote.
func (p *Portal) Paste(ctx context.Context, mime string) (string, error) {
	p.mu.Lock()
	paths := p.clipSessions()
	p.nextSerial++
	serial := p.nextSerial
	p.mu.Unlock()
	if len(paths) != 1 {
		return "", fmt.Errorf("portaltest: %d sessions with a clipboard", len(paths))
	}
	if err := p.conn.Emit(objectPath, ifaceClipboard+".SelectionTransfer", paths[0], mime, serial); err != nil {
		return "", err
	}
	for {
		p.mu.Lock()
		changed := p.changed
		ok, done := p.writeDone[serial]
		text := p.written[serial]
		p.mu.Unlock()
		if done {
			if !ok {
				return "", fmt.Errorf("portaltest: the client answered the transfer with failure")
			}
			return text, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (p *Portal) clipSessions() []dbus.ObjectPath {
	var out []dbus.ObjectPath
	for path, s := range p.sessions {
		if s.clipboard && s.started && !s.closed && p.cfg.ClipboardEnabled {
			out = append(out, path)
		}
	}
	return out
}

func escape(sender dbus.Sender) string {
	return strings.ReplaceAll(strings.TrimPrefix(string(sender), ":"), ".", "_")
}

func invalid(format string, a ...any) *dbus.Error {
	return dbus.NewError("org.freedesktop.portal.Error.InvalidArgument", []any{fmt.Sprintf(format, a...)})
}

// requestPath is where a request's Response comes from: the predicted path, or another
// one when Config.OtherPaths plays an old portal.
func (p *Portal) requestPath(sender dbus.Sender, opts map[string]dbus.Variant) dbus.ObjectPath {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	token, _ := opts["handle_token"].Value().(string)
	if token == "" || p.cfg.OtherPaths {
		token = fmt.Sprintf("other%d", p.nextID)
	}
	return dbus.ObjectPath(fmt.Sprintf("%s/%s/%s", requestPrefix, escape(sender), token))
}

// respond emits the Response before the method's reply leaves: the worst order a client can
// meet, which only a client that subscribed before calling survives.
func (p *Portal) respond(path dbus.ObjectPath, code uint32, results map[string]dbus.Variant) {
	if results == nil {
		results = map[string]dbus.Variant{}
	}
	if err := p.conn.Emit(path, ifaceRequest+".Response", code, results); err != nil {
		p.t.Errorf("portaltest: emitting Response: %v", err)
	}
}

func (p *Portal) lookup(path dbus.ObjectPath) (*session, *dbus.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[path]
	if !ok || s.closed {
		return nil, invalid("no session %s", path)
	}
	return s, nil
}

func (p *Portal) createSession(iface string) func(dbus.Sender, map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	return func(sender dbus.Sender, opts map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
		req := p.requestPath(sender, opts)
		token, _ := opts["session_handle_token"].Value().(string)
		if token == "" {
			return "", invalid("no session_handle_token")
		}
		path := dbus.ObjectPath(fmt.Sprintf("%s/%s/%s", sessionPrefix, escape(sender), token))
		p.mu.Lock()
		p.sessions[path] = &session{path: path, iface: iface}
		p.mu.Unlock()
		// xdg-desktop-portal sends the handle as a string although it documents an object path.
		p.respond(req, 0, map[string]dbus.Variant{"session_handle": dbus.MakeVariant(string(path))})
		return req, nil
	}
}

func (p *Portal) refuses(opts map[string]dbus.Variant) bool {
	tok, _ := opts["restore_token"].Value().(string)
	return tok != "" && slices.Contains(p.cfg.BadTokens, tok)
}

func (p *Portal) selectDevices(sender dbus.Sender, path dbus.ObjectPath, opts map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	s, derr := p.lookup(path)
	if derr != nil {
		return "", derr
	}
	req := p.requestPath(sender, opts)
	if p.refuses(opts) {
		p.respond(req, 2, nil)
		return req, nil
	}
	p.mu.Lock()
	s.devices, _ = opts["types"].Value().(uint32)
	s.persist, _ = opts["persist_mode"].Value().(uint32)
	p.mu.Unlock()
	p.respond(req, 0, nil)
	return req, nil
}

func (p *Portal) selectSources(sender dbus.Sender, path dbus.ObjectPath, opts map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	s, derr := p.lookup(path)
	if derr != nil {
		return "", derr
	}
	req := p.requestPath(sender, opts)
	if p.refuses(opts) {
		p.respond(req, 2, nil)
		return req, nil
	}
	if mode, ok := opts["cursor_mode"].Value().(uint32); ok && mode&p.cfg.CursorModes == 0 {
		return "", invalid("cursor mode %d not available", mode)
	}
	if s.iface == ifaceRemoteDesktop {
		if _, ok := opts["persist_mode"]; ok {
			return "", invalid("persist_mode on a remote desktop session")
		}
	} else {
		p.mu.Lock()
		s.persist, _ = opts["persist_mode"].Value().(uint32)
		p.mu.Unlock()
	}
	p.respond(req, 0, nil)
	return req, nil
}

func (p *Portal) start(iface string) func(dbus.Sender, dbus.ObjectPath, string, map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	return func(sender dbus.Sender, path dbus.ObjectPath, _ string, opts map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
		s, derr := p.lookup(path)
		if derr != nil {
			return "", derr
		}
		if s.iface != iface {
			return "", invalid("%s session started through %s", s.iface, iface)
		}
		req := p.requestPath(sender, opts)
		if p.cfg.NoAnswer {
			return req, nil
		}
		if p.cfg.StartResponse != 0 {
			p.respond(req, p.cfg.StartResponse, nil)
			return req, nil
		}
		type streamT struct {
			Node  uint32
			Props map[string]dbus.Variant
		}
		type pair struct{ A, B int32 }
		var streams []streamT
		for _, st := range p.cfg.Streams {
			streams = append(streams, streamT{st.NodeID, map[string]dbus.Variant{
				"size":        dbus.MakeVariant(pair{st.Width, st.Height}),
				"position":    dbus.MakeVariant(pair{st.X, st.Y}),
				"source_type": dbus.MakeVariant(st.SourceType),
			}})
		}
		results := map[string]dbus.Variant{"streams": dbus.MakeVariant(streams)}
		p.mu.Lock()
		s.started = true
		if iface == ifaceRemoteDesktop {
			results["devices"] = dbus.MakeVariant(p.cfg.GrantDevices & s.devices)
			results["clipboard_enabled"] = dbus.MakeVariant(s.clipboard && p.cfg.ClipboardEnabled)
		}
		if s.persist != 0 {
			p.tokens++
			results["restore_token"] = dbus.MakeVariant(fmt.Sprintf("token-%d", p.tokens))
		}
		p.mu.Unlock()
		p.respond(req, 0, results)
		return req, nil
	}
}

func (p *Portal) openPipeWire(path dbus.ObjectPath, _ map[string]dbus.Variant) (dbus.UnixFD, *dbus.Error) {
	s, derr := p.lookup(path)
	if derr != nil {
		return -1, derr
	}
	if !s.started {
		return -1, invalid("session not started")
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, invalid("socketpair: %v", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "pw-peer"), os.NewFile(uintptr(fds[1]), "pw-remote")
	p.mu.Lock()
	p.pwPeers = append(p.pwPeers, mine)
	p.files = append(p.files, mine, theirs) // theirs is copied into the reply when it is sent
	p.mu.Unlock()
	return dbus.UnixFD(theirs.Fd()), nil
}

// notify checks an input call's session; the interceptor has recorded it.
func (p *Portal) notify(path dbus.ObjectPath, dev uint32) *dbus.Error {
	s, derr := p.lookup(path)
	if derr != nil {
		return derr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !s.started || s.iface != ifaceRemoteDesktop || (p.cfg.GrantDevices&s.devices)&dev == 0 {
		return invalid("input not allowed on %s", path)
	}
	return nil
}

func (p *Portal) export() error {
	const keyboard, pointer = 1, 2
	props := map[string]map[string]dbus.Variant{}
	if p.cfg.ScreenCastVersion > 0 {
		props[ifaceScreenCast] = map[string]dbus.Variant{
			"version":              dbus.MakeVariant(p.cfg.ScreenCastVersion),
			"AvailableSourceTypes": dbus.MakeVariant(p.cfg.SourceTypes),
			"AvailableCursorModes": dbus.MakeVariant(p.cfg.CursorModes),
		}
		err := p.conn.ExportMethodTable(map[string]any{
			"CreateSession":      p.createSession(ifaceScreenCast),
			"SelectSources":      p.selectSources,
			"Start":              p.start(ifaceScreenCast),
			"OpenPipeWireRemote": p.openPipeWire,
		}, objectPath, ifaceScreenCast)
		if err != nil {
			return err
		}
	}
	if p.cfg.RemoteDesktopVersion > 0 {
		props[ifaceRemoteDesktop] = map[string]dbus.Variant{
			"version":              dbus.MakeVariant(p.cfg.RemoteDesktopVersion),
			"AvailableDeviceTypes": dbus.MakeVariant(p.cfg.DeviceTypes),
		}
		err := p.conn.ExportMethodTable(map[string]any{
			"CreateSession": p.createSession(ifaceRemoteDesktop),
			"SelectDevices": p.selectDevices,
			"Start":         p.start(ifaceRemoteDesktop),
			"NotifyPointerMotionAbsolute": func(s dbus.ObjectPath, _ map[string]dbus.Variant, _ uint32, _, _ float64) *dbus.Error {
				return p.notify(s, pointer)
			},
			"NotifyPointerButton": func(s dbus.ObjectPath, _ map[string]dbus.Variant, _ int32, _ uint32) *dbus.Error {
				return p.notify(s, pointer)
			},
			"NotifyPointerAxis": func(s dbus.ObjectPath, _ map[string]dbus.Variant, _, _ float64) *dbus.Error {
				return p.notify(s, pointer)
			},
			"NotifyPointerAxisDiscrete": func(s dbus.ObjectPath, _ map[string]dbus.Variant, _ uint32, _ int32) *dbus.Error {
				return p.notify(s, pointer)
			},
			"NotifyKeyboardKeycode": func(s dbus.ObjectPath, _ map[string]dbus.Variant, _ int32, _ uint32) *dbus.Error {
				return p.notify(s, keyboard)
			},
			"NotifyKeyboardKeysym": func(s dbus.ObjectPath, _ map[string]dbus.Variant, _ int32, _ uint32) *dbus.Error {
				return p.notify(s, keyboard)
			},
		}, objectPath, ifaceRemoteDesktop)
		if err != nil {
			return err
		}
	}
	if p.cfg.ClipboardVersion > 0 {
		props[ifaceClipboard] = map[string]dbus.Variant{"version": dbus.MakeVariant(p.cfg.ClipboardVersion)}
		if err := p.conn.ExportMethodTable(p.clipboardMethods(), objectPath, ifaceClipboard); err != nil {
			return err
		}
	}
	err := p.conn.ExportMethodTable(map[string]any{
		"Get": func(iface, name string) (dbus.Variant, *dbus.Error) {
			v, ok := props[iface][name]
			if !ok { // what GDBus answers
				return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs",
					[]any{fmt.Sprintf("No such interface or property %s.%s", iface, name)})
			}
			return v, nil
		},
	}, objectPath, "org.freedesktop.DBus.Properties")
	if err != nil {
		return err
	}
	err = p.conn.ExportSubtreeMethodTable(map[string]any{
		"Close": func(msg dbus.Message) *dbus.Error {
			path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
			p.mu.Lock()
			defer p.mu.Unlock()
			if s, ok := p.sessions[path]; ok {
				s.closed = true
			}
			p.bump()
			return nil
		},
	}, sessionPrefix, ifaceSession)
	if err != nil {
		return err
	}
	return p.conn.ExportSubtreeMethodTable(map[string]any{
		"Close": func(dbus.Message) *dbus.Error { return nil },
	}, requestPrefix, ifaceRequest)
}

func (p *Portal) clipboardMethods() map[string]any {
	return map[string]any{
		"RequestClipboard": func(path dbus.ObjectPath, _ map[string]dbus.Variant) *dbus.Error {
			s, derr := p.lookup(path)
			if derr != nil {
				return derr
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if s.started {
				return invalid("RequestClipboard after Start")
			}
			s.clipboard = true
			return nil
		},
		"SetSelection": func(path dbus.ObjectPath, _ map[string]dbus.Variant) *dbus.Error {
			_, derr := p.lookup(path)
			return derr
		},
		"SelectionWrite": func(path dbus.ObjectPath, serial uint32) (dbus.UnixFD, *dbus.Error) {
			if _, derr := p.lookup(path); derr != nil {
				return -1, derr
			}
			r, w, err := os.Pipe()
			if err != nil {
				return -1, invalid("pipe: %v", err)
			}
			tr := &transfer{w: w, read: make(chan struct{})}
			p.mu.Lock()
			p.transfers[serial] = tr
			p.mu.Unlock()
			// The client's text arrives here; it ends when the client has closed its end and
			// SelectionWriteDone has closed ours (the reply carrying it is out by then).
			go func() {
				defer close(tr.read)
				defer r.Close()
				b, _ := io.ReadAll(r)
				tr.text = string(b)
			}()
			return dbus.UnixFD(w.Fd()), nil
		},
		"SelectionWriteDone": func(path dbus.ObjectPath, serial uint32, ok bool) *dbus.Error {
			p.mu.Lock()
			tr := p.transfers[serial]
			p.mu.Unlock()
			if tr != nil {
				_ = tr.w.Close()
				<-tr.read
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if tr != nil {
				p.written[serial] = tr.text
			}
			p.writeDone[serial] = ok
			p.bump()
			return nil
		},
		"SelectionRead": func(path dbus.ObjectPath, mime string) (dbus.UnixFD, *dbus.Error) {
			if _, derr := p.lookup(path); derr != nil {
				return -1, derr
			}
			r, w, err := os.Pipe()
			if err != nil {
				return -1, invalid("pipe: %v", err)
			}
			p.mu.Lock()
			text := p.desktop
			p.files = append(p.files, r)
			p.mu.Unlock()
			go func() {
				_, _ = io.WriteString(w, text)
				_ = w.Close()
			}()
			return dbus.UnixFD(r.Fd()), nil
		},
	}
}

// WaitClosed waits until the client has closed the session at path (Session.Close).
func (p *Portal) WaitClosed(ctx context.Context, path dbus.ObjectPath) error {
	for {
		p.mu.Lock()
		changed := p.changed
		s, ok := p.sessions[path]
		closed := ok && s.closed
		p.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
