package hub

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// fakeSession and fakeBackend stand in for the device's WebRTC sessions.
type fakeSession struct {
	done chan struct{}
	once sync.Once
}

func (s *fakeSession) ID() string                                  { return "s" }
func (s *fakeSession) Answer(string) (string, error)               { return "v=0 answer", nil }
func (s *fakeSession) Offer() (string, error)                      { return "v=0 device offer", nil }
func (s *fakeSession) Restart() (string, error)                    { return "v=0 restart offer", nil }
func (s *fakeSession) SetAnswer(string) error                      { return nil }
func (s *fakeSession) AddCandidate(*webrtc.ICECandidateInit) error { return nil }
func (s *fakeSession) GatheringDone() <-chan struct{}              { return s.done }
func (s *fakeSession) LocalDescription() string                    { return "" }
func (s *fakeSession) Done() <-chan struct{}                       { return s.done }
func (s *fakeSession) Close()                                      { s.once.Do(func() { close(s.done) }) }
func (s *fakeSession) EndReason() string                           { return "" }

type fakeBackend struct {
	mu       sync.Mutex
	sessions []*fakeSession
	requests []signal.Request
}

func (b *fakeBackend) NewSession(req signal.Request) (signal.Session, error) {
	s := &fakeSession{done: make(chan struct{})}
	b.mu.Lock()
	b.sessions = append(b.sessions, s)
	b.requests = append(b.requests, req)
	b.mu.Unlock()
	return s, nil
}

func (b *fakeBackend) request(i int) signal.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[i]
}
func (b *fakeBackend) ICEServers() []webrtc.ICEServer { return nil }
func (b *fakeBackend) StreamInfo() *stream.Info {
	return &stream.Info{Codec: "H264", Width: 64, Height: 48}
}

func (b *fakeBackend) session(i int) *fakeSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[i]
}

func (b *fakeBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// auditEntries are the audit log entries written to b so far.
func auditEntries(b *logtest.Buffer) []AuditEntry {
	var out []AuditEntry
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var e AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

type testHub struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	store *auth.Store
	audit *logtest.Buffer
	logs  *logtest.Buffer
	ws    string
}

func newTestHub(t *testing.T, cfg Config) *testHub {
	t.Helper()
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &testHub{t: t, store: store, audit: &logtest.Buffer{}, logs: &logtest.Buffer{}}
	cfg.Store, cfg.Audit = store, h.audit
	if cfg.ConnRate == 0 { // tests poll the API: only the rate-limit test keeps real limits
		cfg.ConnRate, cfg.ConnBurst, cfg.AuthFailsPerMinute = 1000, 1000, 1000
	}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.ICE.TURN == nil { // a test of the relay fleet brings its own
		cfg.ICE.STUN, cfg.ICE.TURN = []string{"stun:127.0.0.1:3478"}, []string{"turn:127.0.0.1:3478?transport=udp"}
	}
	cfg.ICE.Secret = store.TURNSecret()
	h.http = httptest.NewUnstartedServer(nil)
	if cfg.URLs == nil {
		cfg.URLs = []string{"ws://" + h.http.Listener.Addr().String()}
	}
	if h.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	h.http.Config.Handler = h.srv.Handler()
	h.http.Start()
	t.Cleanup(func() { h.srv.Close(); h.http.Close() })
	h.ws = "ws" + strings.TrimPrefix(h.http.URL, "http")
	return h
}

// device enrolls id and connects a Link for it; it returns when the hub lists it online.
func (h *testHub) device(ctx context.Context, id string) (*Link, *fakeBackend) {
	h.t.Helper()
	key, err := h.store.AddDevice(id)
	if err != nil {
		h.t.Fatal(err)
	}
	b := &fakeBackend{}
	iceCh := make(chan []webrtc.ICEServer, 10)
	link, err := NewLink(LinkConfig{URL: h.ws, ID: id, Key: key, Backend: b,
		OnICEServers: func(s []webrtc.ICEServer) { iceCh <- s }})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = link.Run(ctx) }()
	var ice []webrtc.ICEServer
	select {
	case ice = <-iceCh:
	case <-time.After(5 * time.Second):
		h.t.Fatal("the device never got its welcome")
	}
	h.waitOnline(id, true)
	if len(ice) != 2 || ice[1].Username == "" || !strings.HasSuffix(ice[1].Username, ":device:"+id) {
		h.t.Fatalf("device got ICE servers %+v", ice)
	}
	return link, b
}

func (h *testHub) token(devices []string, grants []auth.Grant, ttl time.Duration) string {
	h.t.Helper()
	now := time.Now()
	tok, err := h.store.MintToken(auth.Claims{Devices: devices, Grants: grants, IssuedAt: now, Expires: now.Add(ttl)})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// waitOnline polls the device list (the hub has no event for it) until id is (not) online.
func (h *testHub) waitOnline(id string, want bool) {
	h.t.Helper()
	tok := h.token([]string{id}, []auth.Grant{auth.GrantView}, time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", h.http.URL+"/api/devices", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct{ Devices []DeviceInfo }
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			// Online, with its picture announced; or offline.
			if len(out.Devices) == 1 && out.Devices[0].Online == want && (!want || len(out.Devices[0].Stream) > 0) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("device %s online=%v never seen", id, want)
}

type msg struct {
	Type, Code, Message, SDP string
	Session                  string
	Resumed                  bool
	ICEServers               []webrtc.ICEServer `json:"iceServers"`
	Stream                   json.RawMessage
}

func (h *testHub) viewer(first any) (*websocket.Conn, msg) {
	h.t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(h.ws+"/ws", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	if err := c.WriteJSON(first); err != nil {
		h.t.Fatal(err)
	}
	return c, readMsg(h.t, c)
}

// watch joins device through h with token and asks to watch it: the connection, its hello and
// the device's offer (anything else fails the test).
func (h *testHub) watch(token, device string) (*websocket.Conn, msg, msg) {
	h.t.Helper()
	v, hello := h.viewer(map[string]string{"type": "auth", "token": token, "device": device})
	if hello.Type != "hello" {
		h.t.Fatalf("hello: %+v", hello)
	}
	_ = v.WriteJSON(map[string]string{"type": "watch"})
	offer := readMsg(h.t, v)
	if offer.Type != "offer" {
		h.t.Fatalf("after watch got %+v, want the device's offer", offer)
	}
	return v, hello, offer
}

func readMsg(t *testing.T, c *websocket.Conn) msg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m msg
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func TestRelaysSignalingBetweenViewerAndDevice(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	_, backend := h.device(ctx, "cam1")
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)

	c, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	if hello.Type != "hello" || len(hello.ICEServers) != 2 || !strings.Contains(string(hello.Stream), "H264") {
		t.Fatalf("hello %+v", hello)
	}
	if user := hello.ICEServers[1].Username; !strings.Contains(user, ":viewer:") {
		t.Fatalf("viewer TURN username %q", user)
	}
	// watch → the device's offer comes back through the hub.
	_ = c.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c); m.Type != "offer" || m.SDP != "v=0 device offer" {
		t.Fatalf("got %+v, want the device's offer", m)
	}
	// A malformed message stops at the hub with a clear error; the session goes on.
	_ = c.WriteJSON(map[string]string{"type": "dance"})
	if m := readMsg(t, c); m.Type != "error" || m.Code != wire.CodeBadMessage {
		t.Fatalf("got %+v", m)
	}
	_ = c.WriteJSON(map[string]string{"type": "answer", "sdp": "v=0 viewer answer"})
	// Leaving (bye) ends the device's session at once.
	_ = c.WriteJSON(map[string]string{"type": "bye"})
	c.Close()
	// The device made its session for the watch above.
	select {
	case <-backend.session(0).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the device's session outlived the viewer")
	}
	waitAudit(t, h.audit, EventSessionEnded)
	for _, e := range []string{EventDeviceConnected, EventSessionStarted} {
		if !hasEvent(auditEntries(h.audit), e) {
			t.Errorf("audit log has no %s", e)
		}
	}
	if strings.Contains(h.audit.String(), tok) || strings.Contains(h.logs.String(), tok) {
		t.Fatal("the token was written to a log")
	}
}

func hasEvent(entries []AuditEntry, event string) bool {
	for _, e := range entries {
		if e.Event == event {
			return true
		}
	}
	return false
}

func waitAudit(t *testing.T, a *logtest.Buffer, event string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !hasEvent(auditEntries(a), event) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the audit log", event)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestViewerResumesItsSessionOnANewSocket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{ResumeWait: 300 * time.Millisecond})
	_, backend := h.device(ctx, "cam1")
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)

	first, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	_ = first.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, first); m.Type != "offer" {
		t.Fatalf("%+v", m)
	}
	// The viewer's network changes: its socket is gone, no bye. It comes back within the wait
	// and resumes; the device session is the same one, and an ICE restart goes through.
	first.Close()
	second, hello2 := h.viewer(map[string]any{"type": "auth", "token": tok, "device": "cam1", "resume": hello.Session})
	if hello2.Type != "hello" || !hello2.Resumed || hello2.Session != hello.Session {
		t.Fatalf("resume: %+v (first session %q)", hello2, hello.Session)
	}
	_ = second.WriteJSON(map[string]string{"type": "restart"})
	if m := readMsg(t, second); m.Type != "offer" || m.SDP != "v=0 restart offer" {
		t.Fatalf("restart after resume: %+v", m)
	}
	if n := backend.count(); n != 1 {
		t.Fatalf("the device made %d sessions, want the one resumed", n)
	}
	select {
	case <-backend.session(0).Done():
		t.Fatal("the resumed session was ended")
	default:
	}
	waitAudit(t, h.audit, EventSessionResumed)

	// Another token cannot take the session over: it gets a session of its own.
	other := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	third, hello3 := h.viewer(map[string]any{"type": "auth", "token": other, "device": "cam1", "resume": hello.Session})
	if hello3.Resumed || hello3.Session == hello.Session {
		t.Fatalf("a different token resumed someone else's session: %+v", hello3)
	}
	_ = third.WriteJSON(map[string]string{"type": "bye"})

	// A socket that drops and is not resumed ends its device session after the wait.
	second.Close()
	select {
	case <-backend.session(0).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("an abandoned session outlived the resume wait")
	}
}

func TestRefusesViewersWithClearErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	h.device(ctx, "cam1")
	if _, err := h.store.AddDevice("cam2"); err != nil { // enrolled, never connected
		t.Fatal(err)
	}
	view := []auth.Grant{auth.GrantView}
	other, _ := auth.OpenStore(t.TempDir()) // another hub's key: a forged token
	now := time.Now()
	forged, _ := other.MintToken(auth.Claims{Devices: []string{"cam1"}, Grants: view, IssuedAt: now, Expires: now.Add(time.Hour)})
	expired, _ := h.store.MintToken(auth.Claims{Devices: []string{"cam1"}, Grants: view, IssuedAt: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)})

	for name, c := range map[string]struct {
		first any
		code  string
	}{
		"forged token":     {map[string]string{"type": "auth", "token": forged, "device": "cam1"}, wire.CodeUnauthorized},
		"expired token":    {map[string]string{"type": "auth", "token": expired, "device": "cam1"}, wire.CodeUnauthorized},
		"garbage token":    {map[string]string{"type": "auth", "token": "p2pt1.xx.yy", "device": "cam1"}, wire.CodeUnauthorized},
		"no token":         {map[string]string{"type": "auth", "device": "cam1"}, wire.CodeUnauthorized},
		"other device":     {map[string]string{"type": "auth", "token": h.token([]string{"cam9"}, view, time.Hour), "device": "cam1"}, wire.CodeForbidden},
		"no view grant":    {map[string]string{"type": "auth", "token": h.token([]string{"cam1"}, []auth.Grant{auth.GrantFiles}, time.Hour), "device": "cam1"}, wire.CodeForbidden},
		"device offline":   {map[string]string{"type": "auth", "token": h.token([]string{"*"}, view, time.Hour), "device": "cam2"}, wire.CodeOffline},
		"not auth first":   {map[string]string{"type": "watch"}, wire.CodeBadMessage},
		"unknown field":    {map[string]any{"type": "auth", "token": "x", "admin": true}, wire.CodeBadMessage},
		"not JSON at all":  {"hello", wire.CodeBadMessage},
		"oversized token":  {map[string]string{"type": "auth", "token": strings.Repeat("a", 8000)}, wire.CodeBadMessage},
		"token as a array": {map[string]any{"type": "auth", "token": []int{1}}, wire.CodeBadMessage},
	} {
		t.Run(name, func(t *testing.T) {
			conn, m := h.viewer(c.first)
			if m.Type != "error" || m.Code != c.code || m.Message == "" {
				t.Fatalf("got %+v, want error %s with a reason", m, c.code)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := conn.ReadMessage(); err == nil {
				t.Fatal("connection left open after the refusal")
			}
		})
	}
	if !hasEvent(auditEntries(h.audit), EventAuthFailed) || !hasEvent(auditEntries(h.audit), EventRefused) {
		t.Fatal("refusals are not in the audit log")
	}
	// The device is still online and serving after all that.
	c, hello := h.viewer(map[string]string{"type": "auth", "token": h.token([]string{"cam1"}, view, time.Hour), "device": "cam1"})
	if hello.Type != "hello" {
		t.Fatalf("after the refusals: %+v", hello)
	}
	c.Close()
}

func TestOversizedMessagesCloseOnlyThatConnection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	h.device(ctx, "cam1")
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	bad, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	if hello.Type != "hello" {
		t.Fatalf("%+v", hello)
	}
	good, hello2 := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	if hello2.Type != "hello" {
		t.Fatalf("%+v", hello2)
	}
	_ = bad.WriteMessage(websocket.TextMessage, []byte(`{"type":"offer","sdp":"`+strings.Repeat("a", MaxMessage)+`"}`))
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := bad.ReadMessage(); err != nil {
			break // closed, as it should be
		}
	}
	// The other viewer and the device are unaffected.
	_ = good.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, good); m.Type != "offer" {
		t.Fatalf("the other viewer got %+v after the oversized message", m)
	}
}

func TestRefusesWrongDeviceKeys(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	if _, err := h.store.AddDevice("cam1"); err != nil {
		t.Fatal(err)
	}
	wrong, _ := auth.GenerateDeviceKey()
	for _, id := range []string{"cam1", "never-enrolled"} {
		link, err := NewLink(LinkConfig{URL: h.ws, ID: id, Key: wrong, Backend: &fakeBackend{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := link.Run(ctx); !errors.Is(err, ErrRefused) {
			t.Fatalf("%s with a wrong key: %v, want ErrRefused", id, err)
		}
	}
	waitAudit(t, h.audit, EventAuthFailed)
	if strings.Contains(h.logs.String(), wrong.Secret()) || strings.Contains(h.audit.String(), wrong.Secret()) {
		t.Fatal("a device key was logged")
	}
}

func TestLinkStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := newTestHub(t, Config{})
	key, err := h.store.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	link, err := NewLink(LinkConfig{URL: h.ws, ID: "cam1", Key: key, Backend: &fakeBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- link.Run(ctx) }()
	h.waitOnline("cam1", true)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the link kept running after its context ended (a device would not shut down)")
	}
}

func TestDeviceLinkOverTLS(t *testing.T) {
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	srv, err := New(Config{Store: store, URLs: []string{"wss://" + ts.Listener.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.StartTLS()
	defer ts.Close()
	defer srv.Close()
	key, err := store.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	iceCh := make(chan []webrtc.ICEServer, 1)
	link, err := NewLink(LinkConfig{URL: "wss" + strings.TrimPrefix(ts.URL, "https"), ID: "cam1", Key: key,
		Backend: &fakeBackend{}, OnICEServers: func(s []webrtc.ICEServer) { iceCh <- s },
		Dialer: &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = link.Run(ctx) }()
	select {
	case <-iceCh:
	case <-time.After(5 * time.Second):
		t.Fatal("no welcome over wss")
	}
}

func TestDeviceReconnects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	link, _ := h.device(ctx, "cam1")
	// Kick every connection, as a hub restart would: the link comes back by itself.
	h.srv.Close()
	h.waitOnline("cam1", false)
	h.waitOnline("cam1", true)
	deadline := time.Now().Add(5 * time.Second)
	for !link.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("link not connected after coming back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	c, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	if hello.Type != "hello" {
		t.Fatalf("%+v", hello)
	}
	c.Close()
}

func TestRateLimitsFloodsPerAddress(t *testing.T) {
	h := newTestHub(t, Config{ConnRate: 1, ConnBurst: 5, AuthFailsPerMinute: 3})
	refused := 0
	for range 12 {
		c, resp, err := websocket.DefaultDialer.Dial(h.ws+"/ws", nil)
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("refusal without 429: %v", err)
			}
			refused++
			continue
		}
		_ = c.WriteJSON(map[string]string{"type": "auth", "token": "nope", "device": "cam1"})
		readMsg(t, c)
		c.Close()
	}
	if refused < 6 {
		t.Fatalf("only %d of 12 rapid connections refused", refused)
	}
	waitAudit(t, h.audit, EventRefused)
	// The device list API answers 429 too, with Retry-After.
	req, _ := http.NewRequest("GET", h.http.URL+"/api/devices", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("device list under flood: %s", resp.Status)
	}
}

func TestDeviceListShowsOnlyWhatTheTokenMaySee(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	h.device(ctx, "cam1")
	if _, err := h.store.AddDevice("cam2"); err != nil {
		t.Fatal(err)
	}
	list := func(tok string) (int, []DeviceInfo) {
		req, _ := http.NewRequest("GET", h.http.URL+"/api/devices", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Devices []DeviceInfo }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.Devices
	}
	if code, _ := list(""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := list("p2pt1.bad.bad"); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}
	_, devs := list(h.token([]string{"*"}, []auth.Grant{auth.GrantView}, time.Hour))
	if len(devs) != 2 || devs[0].ID != "cam1" || !devs[0].Online || devs[1].ID != "cam2" || devs[1].Online {
		t.Fatalf("all devices: %+v", devs)
	}
	_, devs = list(h.token([]string{"cam2"}, []auth.Grant{auth.GrantView}, time.Hour))
	if len(devs) != 1 || devs[0].ID != "cam2" {
		t.Fatalf("cam2 only: %+v", devs)
	}
}

func TestParseDeviceMessage(t *testing.T) {
	good := []string{
		`{"type":"session","sid":"abc","msg":{"type":"offer","sdp":"v=0"}}`,
		`{"type":"stream","stream":{"codec":"H264"}}`,
		`{"type":"stream","stream":null}`,
	}
	for _, g := range good {
		if _, err := ParseDeviceMessage([]byte(g)); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	bad := []string{
		``, `null`, `[]`, `{}`, `{"type":"session"}`, `{"type":"session","sid":"a"}`,
		`{"type":"session","sid":"a","msg":"x"}`, `{"type":"session","sid":"a","msg":{}}`,
		`{"type":"session","sid":"` + strings.Repeat("a", 65) + `","msg":{"type":"x"}}`,
		`{"type":"stream","stream":5}`, `{"type":"nope"}`,
	}
	for _, b := range bad {
		if _, err := ParseDeviceMessage([]byte(b)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%q: %v", b, err)
		}
	}
	if _, err := ParseDeviceMessage(make([]byte, MaxMessage+1)); !errors.Is(err, ErrBadMessage) {
		t.Error("oversized message accepted")
	}
}

// A stream message's sources must be a list of well-formed ids: they reach every viewer's hello.
func TestParseDeviceMessageSources(t *testing.T) {
	m, err := ParseDeviceMessage([]byte(`{"type":"stream","stream":null,"sources":[{"id":"main","default":true},{"id":"cam2"}]}`))
	if err != nil || !strings.Contains(string(m.Sources), `"cam2"`) {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{`{"type":"stream","stream":null,"sources":{"id":"x"}}`,
		`{"type":"stream","stream":null,"sources":[{"id":"Bad id"}]}`, `{"type":"stream","stream":null,"sources":"x"}`} {
		if _, err := ParseDeviceMessage([]byte(bad)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func FuzzParseDeviceMessage(f *testing.F) {
	f.Add([]byte(`{"type":"session","sid":"abc","msg":{"type":"offer","sdp":"v=0"}}`))
	f.Add([]byte(`{"type":"stream","stream":{"codec":"H264","width":1280}}`))
	f.Add([]byte(`{"type":"stream","stream":null,"sources":[{"id":"main","default":true},{"id":"cam2"}]}`))
	f.Add([]byte(`{"type":"session","sid":"a","msg":{"type":"candidate","candidate":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseDeviceMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if m.Type == wire.TypeSession && (m.SID == "" || len(m.Msg) == 0) {
			t.Fatal("accepted a session message without sid or msg")
		}
		if len(m.Sources) > 0 && m.Sources[0] != '[' {
			t.Fatalf("accepted sources %s", m.Sources)
		}
	})
}

func FuzzParseAuth(f *testing.F) {
	f.Add([]byte(`{"type":"auth","token":"p2pt1.a.b","device":"cam1"}`))
	f.Add([]byte(`{"type":"auth","id":"cam1","sig":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseAuth(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if m.Type != wire.TypeAuth {
			t.Fatal("accepted a first message that is not auth")
		}
	})
}
