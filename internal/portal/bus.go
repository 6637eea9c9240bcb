package portal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	requestPrefix = "/org/freedesktop/portal/desktop/request/"
	sessionPrefix = "/org/freedesktop/portal/desktop/session/"
	// maxEarly bounds Responses kept for requests whose path we do not know yet (a portal
	// older than 0.9 returns a handle other than the predicted one, maybe after answering).
	maxEarly = 8
)

// Open runs the portal handshake on conn, a connection to the session bus that has said
// Hello (dbus.ConnectSessionBus, dbus.Connect): the session and conn stay the caller's to
// close, in that order. The user may be asked to consent; Open waits up to
// Options.ConsentTimeout for the answer, and ctx bounds it all.
func Open(ctx context.Context, conn *dbus.Conn, opts Options) (*Session, error) {
	return open(ctx, conn, false, opts)
}

// Dial connects to the bus at address (a D-Bus address; "" is the session bus of
// DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus) and runs Open on it. The session owns
// the connection and closes it with itself.
func Dial(ctx context.Context, address string, opts Options) (*Session, error) {
	conn, err := connect(ctx, address, opts.withDefaults().CallTimeout)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, conn, true, opts)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

func connect(ctx context.Context, address string, timeout time.Duration) (*dbus.Conn, error) {
	if address == "" {
		address = os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	}
	if address == "" {
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, "bus")); err == nil {
				address = "unix:path=" + filepath.Join(dir, "bus")
			}
		}
	}
	if address == "" {
		return nil, fmt.Errorf("%w: no session bus (DBUS_SESSION_BUS_ADDRESS is unset)", ErrNoPortal)
	}
	type result struct {
		conn *dbus.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The sequential handler keeps signals in bus order (Response before Closed).
		c, err := dbus.Connect(address, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
		done <- result{c, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case r := <-done:
		if r.err == nil {
			return r.conn, nil
		}
		err = r.err
	case <-t.C:
		err = ErrTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	go func() { // a connect that finishes late is closed by this goroutine
		if r := <-done; r.conn != nil {
			_ = r.conn.Close()
		}
	}()
	return nil, fmt.Errorf("portal: connecting to the session bus %s: %w", address, err)
}

func open(ctx context.Context, conn *dbus.Conn, own bool, opts Options) (*Session, error) {
	names := conn.Names()
	if len(names) == 0 || !strings.HasPrefix(names[0], ":") {
		return nil, errors.New("portal: the bus connection has no unique name (connect with dbus.Connect, which says Hello)")
	}
	s := &Session{
		conn:     conn,
		ownConn:  own,
		opts:     opts.withDefaults(),
		sender:   escapeSender(names[0]),
		sigs:     make(chan *dbus.Signal, 64),
		stop:     make(chan struct{}),
		waiters:  make(map[dbus.ObjectPath]chan response),
		early:    make(map[dbus.ObjectPath]response),
		closedCh: make(chan struct{}),
		clip:     make(chan string, 1),
		// Made before the dispatcher starts; only read when the clipboard is on.
		clipEvents: make(chan clipEvent, 16),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, m := range matchRules() {
		cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
		err := conn.AddMatchSignalContext(cctx, m...)
		cancel()
		if err != nil {
			s.cancel()
			s.removeMatches()
			return nil, s.callError(ctx, "AddMatch", err)
		}
	}
	conn.Signal(s.sigs)
	s.wg.Add(1)
	go s.dispatch()
	if err := s.start(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// matchRules ask the bus for the portal's signals (it sends most to us directly anyway).
func matchRules() [][]dbus.MatchOption {
	return [][]dbus.MatchOption{
		{dbus.WithMatchSender(busName), dbus.WithMatchInterface(ifaceRequest), dbus.WithMatchMember("Response")},
		{dbus.WithMatchSender(busName), dbus.WithMatchInterface(ifaceSession), dbus.WithMatchMember("Closed")},
		{dbus.WithMatchSender(busName), dbus.WithMatchInterface(ifaceClipboard)},
	}
}

func (s *Session) removeMatches() {
	for _, m := range matchRules() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
		_ = s.conn.RemoveMatchSignalContext(ctx, m...)
		cancel()
	}
}

// shutdown stops the dispatcher and the clipboard worker and lets go of the connection.
func (s *Session) shutdown() {
	close(s.stop)
	s.cancel()
	s.conn.RemoveSignal(s.sigs)
	if s.ownConn {
		_ = s.conn.Close()
	} else {
		s.removeMatches()
	}
	s.wg.Wait()
	s.markClosed()
}

// escapeSender turns a unique name into the path element the portal uses: ":1.42" → "1_42".
func escapeSender(unique string) string {
	return strings.ReplaceAll(strings.TrimPrefix(unique, ":"), ".", "_")
}

// newToken makes a handle token: unique, not guessable, a valid object path element.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "p2pcast_" + hex.EncodeToString(b[:])
}

// dispatch routes the portal's signals: Responses to their waiting request, Closed to the
// session, clipboard events to the clipboard worker. It never blocks on a consumer.
func (s *Session) dispatch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case sig, ok := <-s.sigs:
			if !ok { // the connection is gone, and the session with it
				s.markClosed()
				return
			}
			s.route(sig)
		}
	}
}

func (s *Session) route(sig *dbus.Signal) {
	s.mu.Lock()
	owner, handle := s.owner, s.handle
	s.mu.Unlock()
	if owner == "" || sig.Sender != owner {
		return
	}
	switch sig.Name {
	case ifaceRequest + ".Response":
		if len(sig.Body) != 2 {
			return
		}
		code, ok1 := sig.Body[0].(uint32)
		results, ok2 := sig.Body[1].(map[string]dbus.Variant)
		if ok1 && ok2 {
			s.deliver(sig.Path, response{code, results})
		}
	case ifaceSession + ".Closed":
		if sig.Path == handle {
			s.markClosed()
		}
	case ifaceClipboard + ".SelectionOwnerChanged", ifaceClipboard + ".SelectionTransfer":
		if len(sig.Body) == 0 {
			return
		}
		if p, ok := sig.Body[0].(dbus.ObjectPath); !ok || p != handle {
			return
		}
		select {
		case s.clipEvents <- clipEvent{name: sig.Name, body: sig.Body}:
		default: // the worker is far behind: a newer event will follow
		}
	}
}

func (s *Session) deliver(path dbus.ObjectPath, r response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiters[path]; ok {
		select {
		case ch <- r:
		default:
		}
		return
	}
	if !strings.HasPrefix(string(path), requestPrefix+s.sender+"/") {
		return
	}
	if len(s.earlyOrder) == maxEarly {
		delete(s.early, s.earlyOrder[0])
		s.earlyOrder = s.earlyOrder[1:]
	}
	s.early[path] = r
	s.earlyOrder = append(s.earlyOrder, path)
}

// expect registers a waiter for path's Response before the call that creates it.
func (s *Session) expect(path dbus.ObjectPath) chan response {
	ch := make(chan response, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.early[path]; ok {
		ch <- r
		delete(s.early, path)
	}
	s.waiters[path] = ch
	return ch
}

func (s *Session) forget(path dbus.ObjectPath) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiters, path)
}

// request calls a portal method that answers through a Request object and waits up to wait
// for its Response. The last argument must be the options vardict; the handle token is
// added to it. A wait that ends closes the request, which dismisses its dialog.
func (s *Session) request(ctx context.Context, wait time.Duration, timeoutErr error, method string, args ...any) (map[string]dbus.Variant, error) {
	opts := args[len(args)-1].(map[string]dbus.Variant)
	token := newToken()
	opts["handle_token"] = dbus.MakeVariant(token)
	predicted := dbus.ObjectPath(requestPrefix + s.sender + "/" + token)
	ch := s.expect(predicted)
	defer s.forget(predicted)

	var handle dbus.ObjectPath
	if err := s.call(ctx, method, args, &handle); err != nil {
		return nil, err
	}
	if handle != predicted { // a portal older than 0.9 chose its own path
		ch = s.expect(handle)
		defer s.forget(handle)
	}
	s.mu.Lock()
	closedCh := s.closedCh
	s.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-ch:
		switch r.code {
		case 0:
			return r.results, nil
		case 1:
			return nil, fmt.Errorf("%w (%s)", ErrDeclined, method)
		default:
			return nil, fmt.Errorf("%w (%s answered %d)", ErrFailed, method, r.code)
		}
	case <-t.C:
		s.closeRequest(handle)
		return nil, fmt.Errorf("%w (%s, after %v)", timeoutErr, method, wait)
	case <-ctx.Done():
		s.closeRequest(handle)
		return nil, fmt.Errorf("portal: %s: %w", method, ctx.Err())
	case <-closedCh:
		return nil, fmt.Errorf("%w (the portal closed it during %s)", ErrClosed, method)
	}
}

// call makes one method call on the portal object, bounded by CallTimeout.
func (s *Session) call(ctx context.Context, method string, args []any, out ...any) error {
	return s.callOn(ctx, objectPath, method, args, out...)
}

func (s *Session) callOn(ctx context.Context, path dbus.ObjectPath, method string, args []any, out ...any) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	c := s.conn.Object(busName, path).CallWithContext(cctx, method, 0, args...)
	if c.Err != nil {
		return s.callError(ctx, method, c.Err)
	}
	if len(out) > 0 {
		if err := c.Store(out...); err != nil {
			return fmt.Errorf("portal: %s: unexpected reply: %w", method, err)
		}
	}
	return nil
}

// callError names what went wrong with a call: no portal, a timeout, a closed bus, or the
// portal's refusal (ErrFailed, with its D-Bus error wrapped too).
func (s *Session) callError(ctx context.Context, method string, err error) error {
	var de dbus.Error
	switch {
	case errors.As(err, &de) && (de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
		de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner"):
		return fmt.Errorf("%w (%s: %v)", ErrNoPortal, method, err)
	case ctx.Err() != nil:
		return fmt.Errorf("portal: %s: %w", method, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (%s: no reply within %v)", ErrTimeout, method, s.opts.CallTimeout)
	case errors.Is(err, dbus.ErrClosed):
		return fmt.Errorf("%w (%s: the bus connection is closed)", ErrClosed, method)
	case errors.As(err, &de):
		return fmt.Errorf("%w (%s: %w)", ErrFailed, method, err)
	}
	return fmt.Errorf("portal: %s: %w", method, err)
}

// isAbsent reports whether err says the interface or property does not exist.
func isAbsent(err error) bool {
	var de dbus.Error
	if !errors.As(err, &de) {
		return false
	}
	switch de.Name {
	case "org.freedesktop.DBus.Error.InvalidArgs", // GDBus: no such interface or property
		"org.freedesktop.DBus.Error.UnknownInterface",
		"org.freedesktop.DBus.Error.UnknownProperty",
		"org.freedesktop.DBus.Error.UnknownMethod",
		"org.freedesktop.DBus.Error.UnknownObject":
		return true
	}
	return false
}

// closeRequest dismisses a pending request (and its dialog); errors are moot.
func (s *Session) closeRequest(handle dbus.ObjectPath) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	_ = s.conn.Object(busName, handle).CallWithContext(ctx, ifaceRequest+".Close", 0).Err
}

// closeSession closes a portal session; the portal stops the stream and the input.
func (s *Session) closeSession(handle dbus.ObjectPath) error {
	if handle == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	err := s.callOn(ctx, handle, ifaceSession+".Close", nil)
	if err != nil && (errors.Is(err, ErrClosed) || isAbsent(err)) {
		return nil // gone already
	}
	return err
}
