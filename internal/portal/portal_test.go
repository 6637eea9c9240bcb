package portal

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/p2pcast/p2pcast/internal/portal/portaltest"
)

// testTimeout bounds every test's bus traffic.
const testTimeout = 20 * time.Second

// injector is internal/input's Injector: the Session must stay usable as one.
type injector interface {
	MoveAbs(x, y float64) error
	Button(code uint32, down bool) error
	Scroll(dx, dy float64, v120x, v120y int32) error
	Key(code uint32, down bool) error
	Type(text string) error
	SetClipboard(text string) error
	Clipboard() <-chan string
	ReleaseAll() error
	Close() error
}

var _ injector = (*Session)(nil)

// start runs a private bus and the double on it.
func start(t *testing.T, cfg portaltest.Config) (*portaltest.Bus, *portaltest.Portal) {
	t.Helper()
	bus := portaltest.StartBus(t)
	return bus, portaltest.New(t, bus.Address, cfg)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dial opens a session that the test closes at its end.
func dial(t *testing.T, bus *portaltest.Bus, opts Options) *Session {
	t.Helper()
	s, err := Dial(ctxFor(t), bus.Address, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func methods(calls []portaltest.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return out
}

func option(t *testing.T, c portaltest.Call, key string) any {
	t.Helper()
	v, ok := c.Option(key)
	if !ok {
		t.Fatalf("%s: no %q option in %v", c.Method, key, c.Args)
	}
	return v
}

func noOption(t *testing.T, c portaltest.Call, key string) {
	t.Helper()
	if v, ok := c.Option(key); ok {
		t.Errorf("%s: unexpected %q option %v", c.Method, key, v)
	}
}

func TestHandshake(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	tokenFile := filepath.Join(t.TempDir(), "state", "portal-token")
	s := dial(t, bus, Options{TokenFile: tokenFile})

	want := []string{
		ifaceRemoteDesktop + ".CreateSession",
		ifaceRemoteDesktop + ".SelectDevices",
		ifaceScreenCast + ".SelectSources",
		ifaceClipboard + ".RequestClipboard",
		ifaceRemoteDesktop + ".Start",
		ifaceScreenCast + ".OpenPipeWireRemote",
	}
	calls := p.Calls()
	if got := methods(calls); !slices.Equal(got, want) {
		t.Fatalf("calls:\n got %v\nwant %v", got, want)
	}
	session := s.handle
	if paths := p.Sessions(); len(paths) != 1 || paths[0] != session {
		t.Fatalf("portal sessions %v, client session %s", paths, session)
	}
	for i, c := range calls {
		if i != 3 && i != 5 { // every call answered through a Request names it
			if tok, _ := c.Option("handle_token"); tok == nil || tok == "" {
				t.Errorf("%s without handle_token", c.Method)
			}
		}
		if i > 0 && c.Args[0] != session {
			t.Errorf("%s on %v, want the session %s", c.Method, c.Args[0], session)
		}
	}
	if tok := option(t, calls[0], "session_handle_token"); tok == "" {
		t.Error("CreateSession without session_handle_token")
	}
	sd := calls[1]
	if got := option(t, sd, "types"); got != DeviceKeyboard|DevicePointer {
		t.Errorf("SelectDevices types %v, want keyboard|pointer", got)
	}
	if got := option(t, sd, "persist_mode"); got != uint32(2) {
		t.Errorf("SelectDevices persist_mode %v, want 2", got)
	}
	noOption(t, sd, "restore_token")
	ss := calls[2]
	if got := option(t, ss, "types"); got != SourceMonitor {
		t.Errorf("SelectSources types %v, want monitor", got)
	}
	if got := option(t, ss, "multiple"); got != false {
		t.Errorf("SelectSources multiple %v, want false", got)
	}
	if got := option(t, ss, "cursor_mode"); got != CursorEmbedded {
		t.Errorf("SelectSources cursor_mode %v, want embedded", got)
	}
	noOption(t, ss, "persist_mode") // only SelectDevices persists a remote desktop session
	if parent := calls[4].Args[1]; parent != "" {
		t.Errorf("Start parent_window %q, want empty", parent)
	}

	node, w, h := s.Stream()
	if node != 42 || w != 1920 || h != 1080 {
		t.Errorf("Stream() = %d %dx%d, want 42 1920x1080", node, w, h)
	}
	if !s.CanInput() || s.Devices() != DeviceKeyboard|DevicePointer {
		t.Errorf("CanInput %v devices %d, want keyboard and pointer", s.CanInput(), s.Devices())
	}
	if s.CursorMode() != CursorEmbedded {
		t.Errorf("CursorMode %d", s.CursorMode())
	}
	if v := s.Versions(); v != (Versions{ScreenCast: 5, RemoteDesktop: 2, Clipboard: 1}) {
		t.Errorf("Versions %+v", v)
	}

	// The PipeWire remote is one end of the double's socketpair: bytes cross both ways.
	pw, err := s.PipeWire()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	peer := p.PipeWirePeer(0)
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	if _, err := peer.Write([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(pw, buf[:2]); err != nil || string(buf[:2]) != "pw" {
		t.Fatalf("remote read %q, %v", buf[:2], err)
	}
	// A second call opens another remote.
	pw2, err := s.PipeWire()
	if err != nil {
		t.Fatal(err)
	}
	pw2.Close()
	if n := len(p.Calls("OpenPipeWireRemote")); n != 2 {
		t.Errorf("%d OpenPipeWireRemote calls, want 2", n)
	}

	// The token is kept, readable by its owner only.
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	saved, err := loadToken(tokenFile)
	if err != nil || saved != (savedToken{Interface: ifaceRemoteDesktop, Token: "token-1"}) {
		t.Errorf("saved token %+v, %v", saved, err)
	}
	if s.TokenErr() != nil {
		t.Errorf("TokenErr %v", s.TokenErr())
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitClosed(ctxFor(t), session); err != nil {
		t.Fatalf("the portal session was not closed: %v", err)
	}
	select {
	case <-s.Closed():
	default:
		t.Error("Closed() did not fire on Close")
	}
	if err := s.Key(30, true); !errors.Is(err, ErrClosed) {
		t.Errorf("Key after Close: %v, want ErrClosed", err)
	}
}

func TestRestoreToken(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	tokenFile := filepath.Join(t.TempDir(), "token")

	s := dial(t, bus, Options{TokenFile: tokenFile})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	s = dial(t, bus, Options{TokenFile: tokenFile})
	sd := p.Calls("SelectDevices")
	if len(sd) != 1 {
		t.Fatalf("%d SelectDevices calls", len(sd))
	}
	if got := option(t, sd[0], "restore_token"); got != "token-1" {
		t.Errorf("second run restore_token %v, want token-1", got)
	}
	if got := option(t, sd[0], "persist_mode"); got != uint32(2) {
		t.Errorf("second run persist_mode %v", got)
	}
	// The token is single-use: the new one replaces it.
	if saved, _ := loadToken(tokenFile); saved.Token != "token-2" {
		t.Errorf("saved token %q, want token-2", saved.Token)
	}
	_ = s.Close()
}

func TestRefusedTokenRetriesOnce(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.BadTokens = []string{"stale"}
	bus, p := start(t, cfg)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := saveToken(tokenFile, savedToken{Interface: ifaceRemoteDesktop, Token: "stale"}); err != nil {
		t.Fatal(err)
	}
	s := dial(t, bus, Options{TokenFile: tokenFile})

	sd := p.Calls("SelectDevices")
	if len(sd) != 2 {
		t.Fatalf("%d SelectDevices calls, want 2 (with the token, then without)", len(sd))
	}
	if got := option(t, sd[0], "restore_token"); got != "stale" {
		t.Errorf("first restore_token %v", got)
	}
	noOption(t, sd[1], "restore_token")
	if n := len(p.Calls(ifaceRemoteDesktop + ".CreateSession")); n != 2 {
		t.Errorf("%d sessions created, want 2", n)
	}
	if paths := p.Sessions(); len(paths) != 1 || paths[0] != s.handle {
		t.Errorf("open sessions %v: the refused one must be closed", paths)
	}
	if saved, _ := loadToken(tokenFile); saved.Token != "token-1" {
		t.Errorf("saved token %q, want the new token-1", saved.Token)
	}
}

func TestRefusedWithoutTokenDoesNotRetry(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.StartResponse = 2
	bus, p := start(t, cfg)
	_, err := Dial(ctxFor(t), bus.Address, Options{})
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("err %v, want ErrFailed", err)
	}
	if n := len(p.Calls(ifaceRemoteDesktop + ".CreateSession")); n != 1 {
		t.Errorf("%d sessions created, want 1", n)
	}
	if paths := p.Sessions(); len(paths) != 0 {
		t.Errorf("sessions left open: %v", paths)
	}
}

func TestDeclined(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.StartResponse = 1
	bus, p := start(t, cfg)
	_, err := Dial(ctxFor(t), bus.Address, Options{})
	if !errors.Is(err, ErrDeclined) {
		t.Fatalf("err %v, want ErrDeclined", err)
	}
	t.Logf("declined: %v", err)
	if paths := p.Sessions(); len(paths) != 0 {
		t.Errorf("sessions left open: %v", paths)
	}
}

func TestNoPortal(t *testing.T) {
	bus := portaltest.StartBus(t)
	_, err := Dial(ctxFor(t), bus.Address, Options{})
	if !errors.Is(err, ErrNoPortal) {
		t.Fatalf("err %v, want ErrNoPortal", err)
	}
	t.Logf("no portal: %v", err)
}

func TestNoScreenCast(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.ScreenCastVersion = 0
	bus, _ := start(t, cfg)
	_, err := Dial(ctxFor(t), bus.Address, Options{})
	if !errors.Is(err, ErrNoScreenCast) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("err %v, want ErrNoScreenCast", err)
	}
}

func TestConsentTimeout(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.NoAnswer = true
	bus, p := start(t, cfg)
	begin := time.Now()
	_, err := Dial(ctxFor(t), bus.Address, Options{ConsentTimeout: 300 * time.Millisecond})
	took := time.Since(begin)
	if !errors.Is(err, ErrConsentTimeout) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrConsentTimeout", err)
	}
	t.Logf("after %v: %v", took, err)
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about 300 ms", took)
	}
	// The pending dialog is dismissed and the session closed.
	start := p.Calls("Start")
	closes := p.Calls(ifaceRequest + ".Close")
	if len(start) != 1 || len(closes) != 1 || !isRequestOf(closes[0].Path, start[0]) {
		t.Errorf("Request.Close calls %v for Start %v", closes, start)
	}
	if paths := p.Sessions(); len(paths) != 0 {
		t.Errorf("sessions left open: %v", paths)
	}
}

func isRequestOf(path dbus.ObjectPath, c portaltest.Call) bool {
	tok, _ := c.Option("handle_token")
	s, _ := tok.(string)
	return s != "" && filepath.Base(string(path)) == s
}

func TestContextCancelled(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.NoAnswer = true
	bus, _ := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, bus.Address, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
}

func TestScreenCastOnly(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.RemoteDesktopVersion = 0
	bus, p := start(t, cfg)
	tokenFile := filepath.Join(t.TempDir(), "token")
	s := dial(t, bus, Options{TokenFile: tokenFile})

	want := []string{
		ifaceScreenCast + ".CreateSession",
		ifaceScreenCast + ".SelectSources",
		ifaceScreenCast + ".Start",
		ifaceScreenCast + ".OpenPipeWireRemote",
	}
	calls := p.Calls()
	if got := methods(calls); !slices.Equal(got, want) {
		t.Fatalf("calls:\n got %v\nwant %v", got, want)
	}
	if got := option(t, calls[1], "persist_mode"); got != uint32(2) {
		t.Errorf("SelectSources persist_mode %v, want 2", got)
	}
	if s.CanInput() {
		t.Error("CanInput on a ScreenCast-only session")
	}
	for name, err := range map[string]error{
		"MoveAbs": s.MoveAbs(0.5, 0.5), "Key": s.Key(30, true), "Type": s.Type("a"),
		"Clipboard": s.SetClipboard("a"),
	} {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	if saved, _ := loadToken(tokenFile); saved != (savedToken{Interface: ifaceScreenCast, Token: "token-1"}) {
		t.Errorf("saved %+v", saved)
	}
	// The next run restores through SelectSources.
	_ = s.Close()
	p.Reset()
	dial(t, bus, Options{TokenFile: tokenFile})
	if got := option(t, p.Calls("SelectSources")[0], "restore_token"); got != "token-1" {
		t.Errorf("restore_token %v", got)
	}
}

func TestNoDevicesGranted(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.GrantDevices = 0
	bus, _ := start(t, cfg)
	s := dial(t, bus, Options{})
	if s.CanInput() {
		t.Error("CanInput with no device granted")
	}
	if err := s.Button(0x110, true); !errors.Is(err, ErrNoInput) {
		t.Errorf("Button: %v, want ErrNoInput", err)
	}
	if _, err := s.PipeWire(); err != nil {
		t.Errorf("the screen is still shared: %v", err)
	}
}

func TestOldPortalPaths(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.OtherPaths = true // and every Response comes before the call's reply
	bus, _ := start(t, cfg)
	s := dial(t, bus, Options{})
	if node, _, _ := s.Stream(); node != 42 {
		t.Errorf("node %d", node)
	}
}

func TestClosedByPortal(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	s := dial(t, bus, Options{})
	select {
	case <-s.Closed():
		t.Fatal("Closed before the portal closed the session")
	default:
	}
	p.CloseSessions()
	select {
	case <-s.Closed():
	case <-time.After(testTimeout):
		t.Fatal("Closed() did not fire")
	}
	if err := s.MoveAbs(0.1, 0.1); !errors.Is(err, ErrClosed) {
		t.Errorf("MoveAbs after Closed: %v, want ErrClosed", err)
	}
	if _, err := s.PipeWire(); !errors.Is(err, ErrClosed) {
		t.Errorf("PipeWire after Closed: %v, want ErrClosed", err)
	}
	p.Reset()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c := p.Calls(); len(c) != 0 {
		t.Errorf("Close of a closed session called %v", methods(c))
	}
}

func TestBusGone(t *testing.T) {
	bus, _ := start(t, portaltest.Desktop())
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctxFor(t), conn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	select {
	case <-s.Closed():
	case <-time.After(testTimeout):
		t.Fatal("Closed() did not fire when the connection went away")
	}
	_ = s.Close()
}

func TestOldPortal(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.ScreenCastVersion = 1 // no cursor modes
	cfg.RemoteDesktopVersion = 1
	cfg.ClipboardVersion = 0
	bus, p := start(t, cfg)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := saveToken(tokenFile, savedToken{Interface: ifaceRemoteDesktop, Token: "t"}); err != nil {
		t.Fatal(err)
	}
	s := dial(t, bus, Options{TokenFile: tokenFile})
	if s.Persists() {
		t.Error("Persists on RemoteDesktop version 1")
	}
	noOption(t, p.Calls("SelectDevices")[0], "persist_mode")
	noOption(t, p.Calls("SelectDevices")[0], "restore_token")
	noOption(t, p.Calls("SelectSources")[0], "cursor_mode")
	if s.CursorMode() != 0 {
		t.Errorf("CursorMode %d", s.CursorMode())
	}
	if !s.CanInput() {
		t.Error("no input on RemoteDesktop version 1")
	}
}

func TestTokenOfTheOtherInterfaceIsNotSent(t *testing.T) {
	cfg := portaltest.Desktop()
	cfg.RemoteDesktopVersion = 0
	bus, p := start(t, cfg)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := saveToken(tokenFile, savedToken{Interface: ifaceRemoteDesktop, Token: "rd"}); err != nil {
		t.Fatal(err)
	}
	s := dial(t, bus, Options{TokenFile: tokenFile})
	noOption(t, p.Calls("SelectSources")[0], "restore_token")
	if !s.Persists() {
		t.Error("a ScreenCast version 5 session does not persist")
	}
}

func TestNoGoroutinesLeft(t *testing.T) {
	bus, _ := start(t, portaltest.Desktop())
	before := runtime.NumGoroutine()
	for range 3 {
		s, err := Dial(ctxFor(t), bus.Address, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Key(30, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// No event says the connection's goroutines have returned: poll with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
