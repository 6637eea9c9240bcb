package device

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

func wsURL(r Ready) string {
	return "ws" + strings.TrimPrefix(strings.TrimSuffix(r.URL, "/"), "http") + "/ws"
}

type wsMsg struct {
	Type, Code, Message, Reason, SDP string
	ICEServers                       []struct {
		URLs     []string `json:"urls"`
		Username string   `json:"username"`
	} `json:"iceServers"`
}

// readMsg reads one signaling message within 10 s.
func readMsg(t *testing.T, c *websocket.Conn) (wsMsg, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		return wsMsg{}, err
	}
	var m wsMsg
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("device sent %q: %v", data, err)
	}
	return m, nil
}

// A page of another origin gets no CORS grant from WHEP (it used to get "*"), unless the device
// lists that origin.
func TestForeignOriginGetsNoCORS(t *testing.T) {
	r, _ := startDevice(t)
	r2, _ := startDevice(t, func(c *Config) { c.AllowOrigins = []string{"https://app.example"} })
	for _, tc := range []struct {
		ready  Ready
		origin string
		want   string
	}{
		{r, "https://evil.example", ""},
		{r2, "https://evil.example", ""},
		{r2, "https://app.example", "https://app.example"},
	} {
		for _, method := range []string{http.MethodOptions, http.MethodPost} {
			req, _ := http.NewRequest(method, strings.TrimSuffix(tc.ready.URL, "/")+"/whep", strings.NewReader("v=0"))
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Content-Type", "application/sdp")
			if method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("%s from %s: Access-Control-Allow-Origin %q, want %q", method, tc.origin, got, tc.want)
			}
		}
	}
}

// A DNS-rebinding page reaches the device under its own name: any Host but localhost, an IP
// literal or an allowed name is refused, on every path.
func TestForeignHostRefused(t *testing.T) {
	r, _ := startDevice(t, func(c *Config) { c.AllowHosts = []string{"cam.lan"} })
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(r.URL, "http://"), "/"))
	for host, want := range map[string]int{
		"evil.example:" + port: http.StatusForbidden,
		"evil.example":         http.StatusForbidden,
		"127.0.0.1:" + port:    http.StatusOK,
		"localhost:" + port:    http.StatusOK,
		"cam.lan:" + port:      http.StatusOK,
	} {
		for _, path := range []string{"/", "/api/status"} {
			req, _ := http.NewRequest("GET", strings.TrimSuffix(r.URL, "/")+path, nil)
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("Host %s %s: %d, want %d", host, path, resp.StatusCode, want)
			}
		}
	}
	// The WebSocket too.
	h := http.Header{"Host": {"evil.example"}}
	d := websocket.Dialer{}
	if c, resp, err := d.Dial(wsURL(r), h); err == nil {
		c.Close()
		t.Error("a WebSocket under a foreign Host was accepted")
	} else if resp != nil && resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket under a foreign Host: %d, want 403", resp.StatusCode)
	}
}

// 300 sockets that ask for a session and never answer (from one address) take at most the
// per-source share, their sessions end at the negotiation deadline, and a real viewer from
// another address is served meanwhile.
func TestUnansweredWatchesLeaveARealViewerServed(t *testing.T) {
	r, d := startDevice(t, func(c *Config) { c.NegotiateTimeout = 2 * time.Second })
	limit := d.cfg.perSource()
	dialer := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	var (
		mu      sync.Mutex
		offers  int
		busy    int
		expired int
	)
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			c, _, err := dialer.Dial(wsURL(r), nil)
			if err != nil {
				return // refused at the per-address connection cap: as good
			}
			defer c.Close()
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"watch"}`)); err != nil {
				return
			}
			for {
				m, err := readMsg(t, c)
				if err != nil {
					return
				}
				mu.Lock()
				switch {
				case m.Type == "offer":
					offers++
				case m.Type == "error" && m.Code == "busy":
					busy++
				case m.Type == "bye" && m.Reason == peer.ReasonTimeout:
					expired++
				}
				mu.Unlock()
				if m.Type == "bye" || (m.Type == "error" && m.Code == "busy") {
					return
				}
			}
		})
	}
	// While they hold their share, a viewer from 127.0.0.1 watches.
	servesFrames(t, r)
	wg.Wait()
	if offers > limit || offers == 0 {
		t.Errorf("%d unanswered sessions from one address, want 1..%d", offers, limit)
	}
	if expired != offers {
		t.Errorf("%d of %d unanswered sessions ended at the negotiation deadline", expired, offers)
	}
	t.Logf("one address: %d sessions, %d refused busy, %d ended unanswered", offers, busy, expired)
}

// lanDevice runs a device with LAN auth: tokens signed by its own store, for device id "cam1".
func lanDevice(t *testing.T) (Ready, *Device, *auth.Store) {
	t.Helper()
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, d := startDevice(t, func(c *Config) { c.LANAuth = &LANAuth{Store: store, ID: "cam1"} })
	return r, d, store
}

func mint(t *testing.T, store *auth.Store, device string, ttl time.Duration, grants ...auth.Grant) (string, auth.Claims) {
	t.Helper()
	now := time.Now()
	c := auth.Claims{Devices: []string{device}, Grants: grants, IssuedAt: now, Expires: now.Add(ttl)}
	tok, err := store.MintToken(c)
	if err != nil {
		t.Fatal(err)
	}
	c, err = auth.Verify(store, tok, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}

// With LAN auth, every endpoint wants a token of this device, with the grant the endpoint needs.
func TestLANAuth(t *testing.T) {
	r, _, store := lanDevice(t)
	defer feed(t, r.SocketPath)()
	base := strings.TrimSuffix(r.URL, "/")
	view, _ := mint(t, store, "cam1", time.Hour, auth.GrantView)
	control, _ := mint(t, store, "cam1", time.Hour, auth.GrantView, auth.GrantControl)
	other, _ := mint(t, store, "cam2", time.Hour, auth.GrantView)
	talkOnly, _ := mint(t, store, "cam1", time.Hour, auth.GrantTalk)

	// WebSocket: auth first, or an error that says so, then the close.
	for _, tc := range []struct {
		first string
		code  string
	}{
		{`{"type":"watch"}`, "unauthorized"},
		{`{"type":"auth"}`, "unauthorized"},
		{`{"type":"auth","token":"p2pt1.forged.x"}`, "unauthorized"},
		{`{"type":"auth","token":"` + other + `"}`, "forbidden"},
		{`{"type":"auth","token":"` + view + `"}`, ""},
	} {
		c, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(tc.first))
		m, err := readMsg(t, c)
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.first, err)
		case tc.code == "" && m.Type != "hello":
			t.Errorf("%s: got %+v, want hello", tc.first, m)
		case tc.code != "" && (m.Type != "error" || m.Code != tc.code):
			t.Errorf("%s: got %+v, want error %s", tc.first, m, tc.code)
		case tc.code != "":
			if _, err := readMsg(t, c); err == nil {
				t.Errorf("%s: the socket stayed open after the refusal", tc.first)
			}
		}
		c.Close()
	}
	// A token without view gets hello (it may hold other channels) but no session.
	c, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"auth","token":"`+talkOnly+`"}`))
	if m, err := readMsg(t, c); err != nil || m.Type != "hello" {
		t.Fatalf("talk-only token: %+v %v", m, err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"watch"}`))
	if m, err := readMsg(t, c); err != nil || m.Type != "error" || m.Code != "forbidden" {
		t.Fatalf("watch without the view grant: %+v %v", m, err)
	}

	// WHEP and the API.
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/whep", "", http.StatusUnauthorized},
		{"POST", "/whep", other, http.StatusForbidden},
		{"POST", "/whep", talkOnly, http.StatusForbidden},
		{"GET", "/api/status", "", http.StatusUnauthorized},
		{"GET", "/api/status", view, http.StatusForbidden},
		{"GET", "/api/status", control, http.StatusOK},
		{"GET", "/api/frames", "", http.StatusUnauthorized},
		{"GET", "/api/frames", view, http.StatusOK},
		{"GET", "/", "", http.StatusOK}, // the page itself is public: it asks for the token
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with token %.12q: %d, want %d", tc.method, tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
	// And real viewers with the token, on both paths.
	watchFrames(t, viewer.Options{WHEPURL: base + "/whep", Token: view})
	watchFrames(t, viewer.Options{WSURL: wsURL(r), Token: view})
}

// A revoked LAN token loses its session within the poll interval and is refused from then on.
func TestLANTokenRevoked(t *testing.T) {
	r, d, store := lanDevice(t)
	defer feed(t, r.SocketPath)()
	tok, claims := mint(t, store, "cam1", time.Hour, auth.GrantView)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watching := make(chan error, 1)
	firstFrame := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := viewer.Watch(ctx, viewer.Options{WSURL: wsURL(r), Token: tok,
			OnFrame: func([]byte, bool, uint32) { once.Do(func() { close(firstFrame) }) }})
		watching <- err
	}()
	select {
	case <-firstFrame:
	case err := <-watching:
		t.Fatalf("watch ended before a frame: %v", err)
	}
	s := d.onlySession(t)
	if err := store.Revoke(claims.ID, claims.Expires); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the revoked token's session lives on")
	}
	if s.EndReason() != peer.ReasonRevoked {
		t.Errorf("ended with %q", s.EndReason())
	}
	c, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"auth","token":"`+tok+`"}`))
	if m, err := readMsg(t, c); err != nil || m.Code != "unauthorized" {
		t.Fatalf("revoked token: %+v %v", m, err)
	}
}

// onlySession waits for the device's one session to be connected and returns it.
func (d *Device) onlySession(t *testing.T) *peer.Session {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		for s := range d.sessions {
			if len(d.sessions) == 1 && s.Stats().State == "connected" {
				d.mu.Unlock()
				return s
			}
		}
		d.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // the device has no event for "a session connected"
	}
	t.Fatal("no connected session")
	return nil
}

// waitHub waits until the device's hub link is up (its welcome, with the hub's ICE servers, in).
func (d *Device) waitHub(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !d.hub.Connected() || d.hubICE.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the device never connected to its hub")
		}
		time.Sleep(10 * time.Millisecond) // the link has no event a test can await
	}
}

// hubFor runs a real hub on loopback and enrolls device id; it returns the hub's store, its
// ws:// URL, the device's key and a function that stops the hub (as a restart would).
func hubFor(t *testing.T, id string) (*auth.Store, string, auth.DeviceKey, func()) {
	t.Helper()
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.AddDevice(id)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	url := "ws://" + ts.Listener.Addr().String()
	srv, err := hub.New(hub.Config{Store: store, URLs: []string{url}, Logger: slog.New(slog.DiscardHandler),
		ICE: hub.ICEConfig{TURN: []string{"turn:127.0.0.1:3478?transport=udp"}, Secret: store.TURNSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	var once sync.Once
	stop := func() { once.Do(func() { srv.Close(); ts.Close() }) }
	t.Cleanup(stop)
	return store, url, key, stop
}

// A session through a hub ends within 2 s of its token's expiry, on the device's own clock:
// whether the hub is still there, or has gone away (a restart) after the session started.
func TestTokenExpiryEndsTheSession(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "hub up", true: "hub restarted"}[restart], func(t *testing.T) {
			store, hubURL, key, stopHub := hubFor(t, "cam1")
			r, d := startDevice(t, func(c *Config) { c.Hub = HubConfig{URL: hubURL, ID: "cam1", Key: key} })
			defer feed(t, r.SocketPath)()
			d.waitHub(t)
			// Tokens hold whole seconds: this one ends 5-6 s from now, time enough to join on a
			// loaded machine (the race detector, other test packages beside it).
			now := time.Now()
			exp := now.Truncate(time.Second).Add(6 * time.Second)
			tok, err := store.MintToken(auth.Claims{Devices: []string{"cam1"}, Grants: []auth.Grant{auth.GrantView}, IssuedAt: now, Expires: exp})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			watching := make(chan error, 1)
			go func() {
				_, err := viewer.Watch(ctx, viewer.Options{HubURL: hubURL, Device: "cam1", Token: tok})
				watching <- err
			}()
			s := d.onlySession(t)
			if restart {
				stopHub()
			}
			select {
			case <-s.Done():
			case <-time.After(time.Until(exp) + 2*time.Second):
				t.Fatalf("the session outlived its token by 2 s (hub restarted: %v)", restart)
			}
			if late := time.Since(exp); late > 2*time.Second || late < -time.Second {
				t.Errorf("the session ended %v after its token's expiry", late.Round(time.Millisecond))
			}
			if s.EndReason() != peer.ReasonExpired {
				t.Errorf("ended with %q", s.EndReason())
			}
			cancel()
			<-watching
		})
	}
}

// The hub's TURN credentials stay with the hub's sessions: a LAN viewer's hello carries only
// the device's own ICE servers.
func TestLANHelloCarriesNoHubCredentials(t *testing.T) {
	store, hubURL, key, _ := hubFor(t, "cam1")
	lanStore, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, d := startDevice(t, func(c *Config) {
		c.Hub = HubConfig{URL: hubURL, ID: "cam1", Key: key}
		c.LANAuth = &LANAuth{Store: lanStore, ID: "cam1"}
	})
	_ = store
	d.waitHub(t)
	if p := d.hubICE.Load(); p == nil || len(*p) == 0 || (*p)[0].Username == "" {
		t.Fatal("the device never got the hub's TURN credentials")
	}
	tok, _ := mint(t, lanStore, "cam1", time.Hour, auth.GrantView)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"auth","token":"`+tok+`"}`))
	m, err := readMsg(t, c)
	if err != nil || m.Type != "hello" {
		t.Fatalf("%+v %v", m, err)
	}
	for _, s := range m.ICEServers {
		if s.Username != "" {
			t.Fatalf("LAN hello carries credentials: %+v", m.ICEServers)
		}
	}
}

// Listening beyond loopback without authentication is refused unless asked for; a hub without
// LAN auth turns the LAN endpoints off.
func TestConfigAuthRules(t *testing.T) {
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := auth.GenerateDeviceKey()
	for _, tc := range []struct {
		name   string
		change func(*Config)
		err    error
		lanOff bool
	}{
		{"loopback, no auth", func(c *Config) { c.HTTPAddr = "127.0.0.1:8080" }, nil, false},
		{"localhost, no auth", func(c *Config) { c.HTTPAddr = "localhost:8080" }, nil, false},
		{"all addresses, no auth", func(c *Config) { c.HTTPAddr = "0.0.0.0:8080" }, ErrNoAuth, false},
		{"empty host, no auth", func(c *Config) { c.HTTPAddr = ":8080" }, ErrNoAuth, false},
		{"LAN address, no auth", func(c *Config) { c.HTTPAddr = "192.168.1.20:8080" }, ErrNoAuth, false},
		{"all addresses, insecure", func(c *Config) { c.HTTPAddr = "0.0.0.0:8080"; c.InsecureNoAuth = true }, nil, false},
		{"all addresses, LAN auth", func(c *Config) { c.HTTPAddr = "0.0.0.0:8080"; c.LANAuth = &LANAuth{Store: store, ID: "local"} }, nil, false},
		{"hub, no LAN auth", func(c *Config) { c.Hub = HubConfig{URL: "ws://127.0.0.1:1", ID: "cam1", Key: key} }, nil, true},
		{"hub, LAN auth", func(c *Config) {
			c.Hub = HubConfig{URL: "ws://127.0.0.1:1", ID: "cam1", Key: key}
			c.LANAuth = &LANAuth{Store: store, ID: "cam1"}
		}, nil, false},
	} {
		c := Defaults()
		tc.change(&c)
		err := c.Validate()
		if (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		if c.lanOff() != tc.lanOff {
			t.Errorf("%s: LAN endpoints off = %v", tc.name, c.lanOff())
		}
	}
}

// --socket names a path the device may replace only if a socket (a stale one) is there.
func TestSocketPathNeverRemovesAFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.HTTPAddr, cfg.Source, cfg.SocketPath = "127.0.0.1:0", "socket", path
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run over a regular file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Fatalf("the file was touched: %q %v", b, err)
	}
	// A stale socket (nobody listening) is replaced.
	sock := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := listenUnix(sock); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
}

// A device given the hub's key set as a file (--hub-jwks) accepts the hub's tokens offline, and
// follows a rotation at the hub once the new set is copied over the file; one given the hub's
// p2pv1 key (--hub-token-key) accepts that key's tokens.
func TestLANHubKeySet(t *testing.T) {
	hubStore, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := hubStore.VerifyKeys(time.Now())
	file := filepath.Join(t.TempDir(), "hub-jwks.json")
	if err := os.WriteFile(file, keys.JWKS(), 0o644); err != nil {
		t.Fatal(err)
	}
	first, _ := hubStore.SigningKey()
	r, _ := startDevice(t, func(c *Config) {
		c.LANAuth = &LANAuth{HubKeyFile: file, HubKeys: []ed25519.PublicKey{first.Private.Public().(ed25519.PublicKey)}, ID: "cam1"}
	})
	defer feed(t, r.SocketPath)()
	status := func(tok string) int {
		req, _ := http.NewRequest("GET", strings.TrimSuffix(r.URL, "/")+"/api/frames", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	oldTok, _ := mint(t, hubStore, "cam1", time.Hour, auth.GrantView)
	if c := status(oldTok); c != http.StatusOK {
		t.Fatalf("hub token: %d", c)
	}
	if _, err := hubStore.RotateTokenKey(); err != nil {
		t.Fatal(err)
	}
	newTok, _ := mint(t, hubStore, "cam1", time.Hour, auth.GrantView)
	if c := status(newTok); c != http.StatusUnauthorized {
		t.Fatalf("token of a key the device has not got yet: %d", c)
	}
	keys, _ = hubStore.VerifyKeys(time.Now())
	if err := os.WriteFile(file, keys.JWKS(), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for status(newTok) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the device never reread the key file")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := status(oldTok); c != http.StatusOK {
		t.Fatalf("token of the replaced key: %d", c)
	}
}
