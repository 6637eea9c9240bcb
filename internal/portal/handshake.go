package portal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/godbus/dbus/v5"
)

// caps is what the portal offers, read from its properties before asking anything.
type caps struct {
	versions    Versions
	sourceTypes uint32
	cursorModes uint32
	deviceTypes uint32
}

// startResult is what Start's Response says.
type startResult struct {
	streams   []Stream
	devices   uint32
	clipboard bool
	token     string
}

// start runs the handshake: probe, create, select, start (once more without the restore
// token if the portal refuses it), then the PipeWire remote.
func (s *Session) start(ctx context.Context) error {
	c, err := s.probe(ctx)
	if err != nil {
		return err
	}
	s.versions = c.versions
	s.remote = !s.opts.ViewOnly && c.versions.RemoteDesktop > 0
	s.cursorMode = chooseCursor(c)

	iface, persistVersion, version := ifaceScreenCast, uint32(ScreenCastRestoreVersion), c.versions.ScreenCast
	if s.remote {
		iface, persistVersion, version = ifaceRemoteDesktop, RemoteDesktopRestoreVersion, c.versions.RemoteDesktop
	}
	persist := s.opts.TokenFile != "" && version >= persistVersion
	s.persists = persist
	token := ""
	if persist {
		saved, err := loadToken(s.opts.TokenFile)
		if err != nil {
			s.tokenErr = err // a bad file is a missing token; it is replaced below
		} else if saved.Interface == iface {
			token = saved.Token
		}
	}

	res, err := s.handshake(ctx, c, persist, token)
	if err != nil && token != "" && errors.Is(err, ErrFailed) {
		// The portal refused the token (spent, revoked, from another desktop): ask afresh, once.
		_ = s.closeSession(s.handle)
		if rerr := removeToken(s.opts.TokenFile); rerr != nil {
			s.tokenErr = rerr
		}
		token = ""
		res, err = s.handshake(ctx, c, persist, "")
	}
	if err != nil {
		if !errors.Is(err, ErrNoPortal) {
			_ = s.closeSession(s.handle)
		}
		return err
	}

	sr, err := parseStart(res)
	if err == nil && len(sr.streams) == 0 {
		err = fmt.Errorf("portal: Start: the portal started no stream: %w", ErrFailed)
	}
	if err != nil {
		_ = s.closeSession(s.handle)
		return err
	}
	s.streams = sr.streams
	if s.remote {
		s.devices = sr.devices
		s.clipboard = c.versions.Clipboard > 0 && sr.clipboard
	}
	if persist {
		switch {
		case sr.token != "":
			if err := saveToken(s.opts.TokenFile, savedToken{Interface: iface, Token: sr.token}); err != nil {
				s.tokenErr = err
			} else {
				s.tokenErr = nil
			}
		case token != "": // spent, and no new one came
			if err := removeToken(s.opts.TokenFile); err != nil {
				s.tokenErr = err
			}
		}
	}

	pw, err := s.openPipeWire(s.handle)
	if err != nil {
		_ = s.closeSession(s.handle)
		return err
	}
	s.pw = pw
	if s.clipboard {
		s.wg.Add(1)
		go s.clipWorker()
	}
	return nil
}

// probe reads the portal's interface versions and what they offer. ScreenCast is required;
// RemoteDesktop and Clipboard are optional.
func (s *Session) probe(ctx context.Context) (caps, error) {
	var c caps
	var err error
	// The first call also starts the portal if the bus activates it.
	if c.versions.ScreenCast, err = s.propU32(ctx, ifaceScreenCast, "version"); err != nil {
		if isAbsent(err) {
			return c, ErrNoScreenCast
		}
		return c, err
	}
	var owner string
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	err = s.conn.BusObject().CallWithContext(cctx, "org.freedesktop.DBus.GetNameOwner", 0, busName).Store(&owner)
	cancel()
	if err != nil {
		return c, s.callError(ctx, "GetNameOwner", err)
	}
	s.mu.Lock()
	s.owner = owner
	s.mu.Unlock()

	if c.sourceTypes, err = s.propU32(ctx, ifaceScreenCast, "AvailableSourceTypes"); err != nil {
		if !isAbsent(err) {
			return c, err
		}
		c.sourceTypes = SourceMonitor // version 1 portals only had monitors
	}
	if c.sourceTypes&SourceMonitor == 0 {
		return c, fmt.Errorf("portal: the portal cannot share a monitor (AvailableSourceTypes %d): %w",
			c.sourceTypes, errors.ErrUnsupported)
	}
	if c.versions.ScreenCast >= ScreenCastCursorVersion {
		if c.cursorModes, err = s.propU32(ctx, ifaceScreenCast, "AvailableCursorModes"); err != nil && !isAbsent(err) {
			return c, err
		}
	}
	if s.opts.ViewOnly {
		return c, nil
	}
	if c.versions.RemoteDesktop, err = s.propU32(ctx, ifaceRemoteDesktop, "version"); err != nil {
		if !isAbsent(err) {
			return c, err
		}
		c.versions.RemoteDesktop = 0 // screen only
		return c, nil
	}
	if c.deviceTypes, err = s.propU32(ctx, ifaceRemoteDesktop, "AvailableDeviceTypes"); err != nil && !isAbsent(err) {
		return c, err
	}
	if c.versions.Clipboard, err = s.propU32(ctx, ifaceClipboard, "version"); err != nil {
		if !isAbsent(err) {
			return c, err
		}
		c.versions.Clipboard = 0
	}
	return c, nil
}

func (s *Session) propU32(ctx context.Context, iface, name string) (uint32, error) {
	var v dbus.Variant
	if err := s.call(ctx, ifaceProperties+".Get", []any{iface, name}, &v); err != nil {
		return 0, err
	}
	u, ok := v.Value().(uint32)
	if !ok {
		return 0, fmt.Errorf("portal: %s.%s is %s, not a uint32: %w", iface, name, v.Signature(), ErrFailed)
	}
	return u, nil
}

// chooseCursor prefers the cursor drawn into the frames (the producer encodes them as they
// are), then the cursor as metadata; a portal before version 2 is not asked.
func chooseCursor(c caps) uint32 {
	switch {
	case c.versions.ScreenCast < ScreenCastCursorVersion:
		return 0
	case c.cursorModes&CursorEmbedded != 0:
		return CursorEmbedded
	case c.cursorModes&CursorMetadata != 0:
		return CursorMetadata
	}
	return 0
}

// setHandle records the session being set up; a new session gets a fresh Closed channel.
func (s *Session) setHandle(h dbus.ObjectPath, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handle = h
	if fresh && s.closed {
		s.closed = false
		s.closedCh = make(chan struct{})
	}
}

// handshake creates one session and starts it: RemoteDesktop.CreateSession, SelectDevices,
// ScreenCast.SelectSources on the same session, Clipboard.RequestClipboard, Start; or the
// ScreenCast-only equivalent. It returns Start's results.
func (s *Session) handshake(ctx context.Context, c caps, persist bool, token string) (map[string]dbus.Variant, error) {
	iface := ifaceScreenCast
	if s.remote {
		iface = ifaceRemoteDesktop
	}
	sessionToken := newToken()
	predicted := dbus.ObjectPath(sessionPrefix + s.sender + "/" + sessionToken)
	s.setHandle(predicted, true)
	res, err := s.request(ctx, s.opts.CallTimeout, ErrTimeout, iface+".CreateSession",
		map[string]dbus.Variant{"session_handle_token": dbus.MakeVariant(sessionToken)})
	if err != nil {
		return nil, err
	}
	handle := predicted
	switch h := res["session_handle"].Value().(type) { // documented as o, sent as s by some versions
	case string:
		handle = dbus.ObjectPath(h)
	case dbus.ObjectPath:
		handle = h
	}
	if !handle.IsValid() {
		return nil, fmt.Errorf("portal: CreateSession: invalid session handle %q: %w", handle, ErrFailed)
	}
	s.setHandle(handle, false)

	if s.remote {
		want := DeviceKeyboard | DevicePointer
		if c.deviceTypes != 0 {
			want &= c.deviceTypes
		}
		opts := map[string]dbus.Variant{"types": dbus.MakeVariant(want)}
		if persist {
			opts["persist_mode"] = dbus.MakeVariant(persistUntilRevoked)
			if token != "" {
				opts["restore_token"] = dbus.MakeVariant(token)
			}
		}
		if _, err := s.request(ctx, s.opts.CallTimeout, ErrTimeout, ifaceRemoteDesktop+".SelectDevices", handle, opts); err != nil {
			return nil, err
		}
	}

	opts := map[string]dbus.Variant{
		"types":    dbus.MakeVariant(SourceMonitor),
		"multiple": dbus.MakeVariant(false),
	}
	if s.cursorMode != 0 {
		opts["cursor_mode"] = dbus.MakeVariant(s.cursorMode)
	}
	if !s.remote && persist { // a RemoteDesktop session persists through SelectDevices only
		opts["persist_mode"] = dbus.MakeVariant(persistUntilRevoked)
		if token != "" {
			opts["restore_token"] = dbus.MakeVariant(token)
		}
	}
	if _, err := s.request(ctx, s.opts.CallTimeout, ErrTimeout, ifaceScreenCast+".SelectSources", handle, opts); err != nil {
		return nil, err
	}

	if s.remote && c.versions.Clipboard > 0 {
		// Must precede Start. A refusal only means no clipboard; Start says whether it is on.
		_ = s.call(ctx, ifaceClipboard+".RequestClipboard", []any{handle, map[string]dbus.Variant{}})
	}

	return s.request(ctx, s.opts.ConsentTimeout, ErrConsentTimeout, iface+".Start",
		handle, "", map[string]dbus.Variant{})
}

// parseStart reads Start's results. Only a malformed stream is an error: every other key is
// optional, and unknown keys are ignored.
func parseStart(res map[string]dbus.Variant) (startResult, error) {
	var r startResult
	if v, ok := res["devices"]; ok {
		r.devices, _ = v.Value().(uint32)
	}
	if v, ok := res["clipboard_enabled"]; ok {
		r.clipboard, _ = v.Value().(bool)
	}
	if v, ok := res["restore_token"]; ok {
		r.token, _ = v.Value().(string)
	}
	v, ok := res["streams"]
	if !ok {
		return r, nil
	}
	raw, ok := v.Value().([][]any)
	if !ok {
		return r, fmt.Errorf("portal: Start: streams is %s, not a(ua{sv}): %w", v.Signature(), ErrFailed)
	}
	for _, e := range raw {
		if len(e) != 2 {
			return r, fmt.Errorf("portal: Start: a stream has %d fields: %w", len(e), ErrFailed)
		}
		node, ok1 := e[0].(uint32)
		props, ok2 := e[1].(map[string]dbus.Variant)
		if !ok1 || !ok2 {
			return r, fmt.Errorf("portal: Start: a stream is not (ua{sv}): %w", ErrFailed)
		}
		st := Stream{NodeID: node}
		if w, h, ok := intPair(props["size"]); ok && w > 0 && h > 0 {
			st.Width, st.Height = w, h
		}
		if x, y, ok := intPair(props["position"]); ok {
			st.X, st.Y = x, y
		}
		st.SourceType, _ = props["source_type"].Value().(uint32)
		r.streams = append(r.streams, st)
	}
	return r, nil
}

// intPair reads an (ii) variant.
func intPair(v dbus.Variant) (int, int, bool) {
	p, ok := v.Value().([]any)
	if !ok || len(p) != 2 {
		return 0, 0, false
	}
	a, ok1 := p[0].(int32)
	b, ok2 := p[1].(int32)
	return int(a), int(b), ok1 && ok2
}

// openPipeWire asks for a PipeWire remote fd on which the session's streams are available.
func (s *Session) openPipeWire(handle dbus.ObjectPath) (*os.File, error) {
	if !s.conn.SupportsUnixFDs() {
		return nil, errors.New("portal: the bus connection cannot pass file descriptors (connect over a unix socket)")
	}
	var fd dbus.UnixFD
	err := s.call(context.Background(), ifaceScreenCast+".OpenPipeWireRemote",
		[]any{handle, map[string]dbus.Variant{}}, &fd)
	if err != nil {
		return nil, err
	}
	if fd < 0 {
		return nil, fmt.Errorf("portal: OpenPipeWireRemote returned no fd: %w", ErrFailed)
	}
	syscall.CloseOnExec(int(fd)) // the producer gets it through ExtraFiles, nothing else should
	return os.NewFile(uintptr(fd), "pipewire-remote"), nil
}
