package viewer

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// testToken stands for a hub token: it must never show up in a log, an error or a URL.
const testToken = "p2pt1.eyJ0ZXN0IjoidG9rZW4ifQ.U0VDUkVULXNpZ25hdHVyZS0xMjM0"

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// fakeHub is a hub as the viewer sees it (docs/hub.md): /ws checks the auth message, then
// relays the session to a real device's /ws, handing out its own ICE servers in hello. /fake/*
// are scripted devices; /limited refuses like a hub over its rate limits.
type fakeHub struct {
	srv        *httptest.Server
	device     string             // the device's ws URL to relay to
	iceServers []webrtc.ICEServer // replace the device's in hello, when set

	mu   sync.Mutex
	seen []string // what the viewer's requests showed before the socket: URL and headers
	auth []authMsg
}

func newFakeHub(t *testing.T, d *testDevice) *fakeHub {
	t.Helper()
	h := &fakeHub{}
	if d != nil {
		h.device = d.ws()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", h.serveViewer)
	mux.HandleFunc("GET /fake/{mode}", h.serveScripted)
	mux.HandleFunc("GET /limited", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "rate_limited: too many connections", http.StatusTooManyRequests)
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) ws(path string) string { return "ws" + strings.TrimPrefix(h.srv.URL, "http") + path }

var upgrader = websocket.Upgrader{}

func writeJSON(c *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	_ = c.WriteMessage(websocket.TextMessage, b)
}

func (h *fakeHub) serveViewer(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.URL.String())
	for k, v := range r.Header {
		h.seen = append(h.seen, k+": "+strings.Join(v, ","))
	}
	h.mu.Unlock()
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		return
	}
	var m authMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Type != "auth" {
		writeJSON(c, map[string]string{"type": "error", "code": "bad_message", "message": "the first message must be auth"})
		return
	}
	h.mu.Lock()
	h.auth = append(h.auth, m)
	h.mu.Unlock()
	refuse := func(code, msg string) {
		writeJSON(c, map[string]string{"type": "error", "code": code, "message": msg})
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, ""))
	}
	switch {
	case m.Token != testToken:
		refuse(wire.CodeUnauthorized, "token refused: bad signature")
		return
	case m.Device == "cam-forbidden":
		refuse(wire.CodeForbidden, `this token does not allow viewing "cam-forbidden"`)
		return
	case m.Device != "cam1" || h.device == "":
		refuse(wire.CodeOffline, "device "+m.Device+" is not connected to the hub")
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	dc, _, err := websocket.DefaultDialer.Dial(h.device, nil)
	if err != nil {
		refuse(wire.CodeOffline, err.Error())
		return
	}
	defer dc.Close()
	go func() { // device → viewer, with the hub's ICE servers in hello
		defer c.Close()
		for {
			_, data, err := dc.ReadMessage()
			if err != nil {
				return
			}
			if h.iceServers != nil {
				var msg map[string]any
				if json.Unmarshal(data, &msg) == nil && msg["type"] == "hello" {
					msg["iceServers"] = h.iceServers
					data, _ = json.Marshal(msg)
				}
			}
			if c.WriteMessage(websocket.TextMessage, data) != nil {
				return
			}
		}
	}()
	for { // viewer → device
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		if dc.WriteMessage(websocket.TextMessage, data) != nil {
			return
		}
	}
}

// serveScripted is a device that answers watch in one scripted way.
func (h *fakeHub) serveScripted(w http.ResponseWriter, r *http.Request) {
	mode := r.PathValue("mode")
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	writeJSON(c, map[string]any{"type": "hello", "version": 1, "iceServers": []any{}})
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		var m typeMsg
		_ = json.Unmarshal(data, &m)
		if m.Type != "watch" {
			continue
		}
		switch mode {
		case "bye":
			writeJSON(c, map[string]string{"type": "bye", "reason": "device shutting down"})
		case "busy":
			writeJSON(c, map[string]string{"type": "error", "code": "busy", "message": "viewer limit reached"})
		case "fatal":
			writeJSON(c, map[string]string{"type": "error", "code": "fatal", "message": "too many bad messages"})
			return
		case "complain":
			writeJSON(c, map[string]string{"type": "error", "code": "bad_sdp", "message": "the answer could not be applied"})
			return
		case "silent":
		}
	}
}

// Through a hub: auth first (token and device in the message, nothing in the URL), the hub's
// ICE servers, then the device's own protocol relayed.
func TestWatchThroughHub(t *testing.T) {
	d := startDevice(t)
	h := newFakeHub(t, &d)
	var logs logtest.Buffer
	res, err := Watch(testContext(t), Options{HubURL: h.ws(""), Device: "cam1", Token: testToken, Frames: 10, Logger: logs.Logger()})
	if err != nil {
		t.Fatalf("watch: %v\n%s", err, logs.String())
	}
	checkWatched(t, res, 10, "hub")
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.auth) != 1 || h.auth[0].Device != "cam1" || h.auth[0].Token != testToken {
		t.Errorf("auth messages %+v", h.auth)
	}
	for _, s := range h.seen {
		if contains(s, testToken) || contains(s, "eyJ0ZXN0") {
			t.Errorf("the token showed up outside the auth message: %q", s)
		}
	}
	if contains(logs.String(), testToken) {
		t.Errorf("the token was logged:\n%s", logs.String())
	}
}

func TestHubRefusals(t *testing.T) {
	h := newFakeHub(t, nil)
	var logs logtest.Buffer
	for _, tc := range []struct {
		name, url, device, token string
		want                     []error
		code                     string
	}{
		{"unauthorized", h.ws("/ws"), "cam1", testToken + "x", []error{ErrUnauthorized, ErrRefused}, "unauthorized"},
		{"forbidden", h.ws(""), "cam-forbidden", testToken, []error{ErrForbidden, ErrRefused}, "forbidden"},
		{"offline", h.ws(""), "cam1", testToken, []error{ErrOffline, ErrUnavailable}, "offline"},
		{"rate limited", h.ws("/limited"), "cam1", testToken, []error{ErrRateLimited, ErrUnavailable}, "rate_limited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Watch(testContext(t), Options{HubURL: tc.url, Device: tc.device, Token: tc.token, Logger: logs.Logger()})
			if err == nil {
				t.Fatal("watch succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %v", err, w)
				}
			}
			var se *SignalError
			if !errors.As(err, &se) || se.Code != tc.code || !contains(err.Error(), tc.code) {
				t.Errorf("error %q: want code %q in a *SignalError", err, tc.code)
			}
			if errors.Is(err, ErrRefused) == errors.Is(err, ErrUnavailable) {
				t.Errorf("error %q is in both or neither group", err)
			}
			if contains(err.Error(), testToken) {
				t.Errorf("the token is in the error: %q", err)
			}
		})
	}
	if contains(logs.String(), testToken) || contains(logs.String(), "eyJ0ZXN0") {
		t.Errorf("the token was logged:\n%s", logs.String())
	}
	// Credentials in the URL are refused before anything is sent.
	if _, err := Watch(testContext(t), Options{HubURL: h.ws("/ws?token=" + testToken), Device: "cam1", Token: testToken}); err == nil || contains(err.Error(), testToken) {
		t.Errorf("a token in the URL: %v", err)
	}
}

// startTURN runs a TURN server on loopback, over UDP and TCP, with one user.
func startTURN(t *testing.T) (udpAddr, tcpAddr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const realm = "p2pcast.test"
	key := turn.GenerateAuthKey("viewer", realm, "turn-secret")
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: realm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == "viewer"
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: l, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return pc.LocalAddr().String(), l.Addr().String()
}

// --relay through a hub that hands out TURN in hello: the media goes through the relay, and
// the pair names the transport to the TURN server.
func TestRelayOnlyUsesTheHubsTURN(t *testing.T) {
	udpAddr, tcpAddr := startTURN(t)
	d := startDevice(t)
	for _, tc := range []struct{ name, url string }{
		{"udp", "turn:" + udpAddr + "?transport=udp"},
		{"tcp", "turn:" + tcpAddr + "?transport=tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHub(t, &d)
			h.iceServers = []webrtc.ICEServer{{URLs: []string{tc.url}, Username: "viewer", Credential: "turn-secret"}}
			var logs logtest.Buffer
			res, err := Watch(testContext(t), Options{HubURL: h.ws("/ws"), Device: "cam1", Token: testToken,
				RelayOnly: true, Frames: 5, Logger: logs.Logger()})
			if err != nil {
				t.Fatalf("watch: %v\n%s", err, logs.String())
			}
			t.Logf("%+v", res.Pair)
			if res.Pair.LocalType != "relay" || res.Pair.Protocol != tc.name {
				t.Errorf("pair %+v, want a relay over %s", res.Pair, tc.name)
			}
			if contains(logs.String(), "turn-secret") || contains(logs.String(), testToken) {
				t.Errorf("credentials were logged:\n%s", logs.String())
			}
		})
	}
	// Without TURN, relay-only fails at once with a clear reason.
	_, err := Watch(testContext(t), Options{WSURL: d.ws(), RelayOnly: true})
	if err == nil || !contains(err.Error(), "no TURN server") {
		t.Errorf("relay only without TURN: %v", err)
	}
}
