package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Regression tests of the hub's security fixes: session claims, per-token cap, revocation,
// TURN credentials bounded by the token, the challenge bound to the hub URL, errors flushed
// before the close.

// testDevice is a Link run by linkDevice, with what it received from the hub.
type testDevice struct {
	link    *Link
	backend *fakeBackend
	welcome []webrtc.ICEServer      // the ICE servers of its welcome
	ice     chan []webrtc.ICEServer // refreshes
	revoked chan []string           // each OnRevoked list
}

// linkDevice enrolls id and runs a Link for it that records its ICE servers and revocation
// lists; it returns once the device has its welcome and the hub lists it online. Insecure
// skips the ws:// address check (a stub for now), which the loopback hub has no use for.
func (h *testHub) linkDevice(ctx context.Context, id string) *testDevice {
	h.t.Helper()
	key, err := h.store.AddDevice(id)
	if err != nil {
		h.t.Fatal(err)
	}
	d := &testDevice{backend: &fakeBackend{}, ice: make(chan []webrtc.ICEServer, 16), revoked: make(chan []string, 16)}
	d.link, err = NewLink(LinkConfig{URL: h.ws, ID: id, Key: key, Backend: d.backend, Insecure: true,
		OnICEServers: func(s []webrtc.ICEServer) { d.ice <- s },
		OnRevoked:    func(ids []string) { d.revoked <- ids }})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = d.link.Run(ctx) }()
	select {
	case d.welcome = <-d.ice:
	case <-time.After(5 * time.Second):
		h.t.Fatal("the device never got its welcome")
	}
	h.waitOnline(id, true)
	return d
}

// nextRevoked is the device's next revocation list.
func (d *testDevice) nextRevoked(t *testing.T) []string {
	t.Helper()
	select {
	case ids := <-d.revoked:
		return ids
	case <-time.After(5 * time.Second):
		t.Fatal("no revocation list reached the device")
		return nil
	}
}

// claims are the verified claims of a token the test hub minted.
func (h *testHub) claims(tok string) auth.Claims {
	h.t.Helper()
	c, err := auth.Verify(h.store, tok, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func authAs(tok, device string) map[string]string {
	return map[string]string{"type": "auth", "token": tok, "device": device}
}

// readToClose reads every message up to the end of the connection and says how it ended.
func readToClose(t *testing.T, c *websocket.Conn) ([]msg, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []msg
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return out, err
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("not JSON: %q", data)
		}
		out = append(out, m)
	}
}

// wantClosedAfter checks that ms ends with an error of code, and that the connection then
// ended with the hub's close frame (not a dropped TCP connection, which loses what was queued).
func wantClosedAfter(t *testing.T, ms []msg, end error, code string) {
	t.Helper()
	if len(ms) == 0 || ms[len(ms)-1].Type != wire.TypeError || ms[len(ms)-1].Code != code {
		t.Fatalf("read %+v before the end (%v); want error %s last", ms, end, code)
	}
	if !websocket.IsCloseError(end, websocket.ClosePolicyViolation) {
		t.Fatalf("the connection ended with %v, want the hub's close frame", end)
	}
}

// 1. Every relayed session carries its token's claims, and the device holds the session to
// them: the backend's Request has the token's id, exactly its grants and its expiry.
func TestSessionClaimsReachTheDevice(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	dev := h.linkDevice(ctx, "cam1")
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView, auth.GrantTalk}, time.Hour)
	claims := h.claims(tok)

	c, hello := h.viewer(authAs(tok, "cam1"))
	if hello.Type != "hello" {
		t.Fatalf("%+v", hello)
	}
	_ = c.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c); m.Type != "offer" {
		t.Fatalf("got %+v, want the device's offer", m)
	}
	// The offer came from the session, so the request is recorded.
	req := dev.backend.request(0)
	if req.Access.TokenID != claims.ID {
		t.Errorf("token id %q, want %q", req.Access.TokenID, claims.ID)
	}
	if !slices.Equal(req.Access.Grants, []auth.Grant{auth.GrantView, auth.GrantTalk}) {
		t.Errorf("grants %v, want view,talk", req.Access.Grants)
	}
	// The hub sends the remaining lifetime; the device adds it to its own now.
	if d := req.Access.Deadline.Sub(claims.Expires); d < -time.Second || d > time.Second {
		t.Errorf("deadline %v is %v off the token's expiry %v", req.Access.Deadline, d, claims.Expires)
	}
	// On the monotonic clock, so a wall-clock step on the device does not move it.
	if !strings.Contains(req.Access.Deadline.String(), " m=") {
		t.Errorf("deadline %v has no monotonic reading", req.Access.Deadline)
	}
	if req.Source != "token:"+claims.ID {
		t.Errorf("source %q, want token:%s", req.Source, claims.ID)
	}
}

// fakeHubFor runs a minimal hub for a Link: it accepts one device link, greets it and hands
// the test the socket to speak for the hub.
func fakeHubFor(t *testing.T, ctx context.Context, backend signal.Backend) *websocket.Conn {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil); err == nil {
			conns <- c
		}
	}))
	t.Cleanup(srv.Close)
	key, err := auth.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	link, err := NewLink(LinkConfig{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), ID: "cam1", Key: key, Backend: backend, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = link.Run(ctx) }()
	var c *websocket.Conn
	select {
	case c = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("the link never dialled")
	}
	t.Cleanup(func() { c.Close() })
	nonce, err := auth.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteJSON(challengeMsg{Type: wire.TypeChallenge, Nonce: nonce}); err != nil {
		t.Fatal(err)
	}
	var a authMsg
	if err := c.ReadJSON(&a); err != nil || a.Type != wire.TypeAuth {
		t.Fatalf("auth %+v, %v", a, err)
	}
	if err := c.WriteJSON(iceMsg{Type: wire.TypeWelcome}); err != nil {
		t.Fatal(err)
	}
	return c
}

// sessionReply is the next session message the device sends (skipping its stream
// announcements), unwrapped.
func sessionReply(t *testing.T, c *websocket.Conn) (sid string, m msg) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var env sessionMsg
		if err := c.ReadJSON(&env); err != nil {
			t.Fatalf("reading the device: %v", err)
		}
		if env.Type != wire.TypeSession {
			continue
		}
		if err := json.Unmarshal(env.Msg, &m); err != nil {
			t.Fatalf("session msg %s: %v", env.Msg, err)
		}
		return env.SID, m
	}
}

// 1b. A session envelope without valid claims makes no session: the device answers that sid
// with an error and a bye.
func TestLinkRefusesSessionsWithoutValidClaims(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backend := &fakeBackend{}
	hub := fakeHubFor(t, ctx, backend)
	watch := json.RawMessage(`{"type":"watch"}`)
	claims := func(id string, grants []auth.Grant, ttl int64) *auth.SessionClaims {
		return &auth.SessionClaims{TokenID: id, Grants: grants, TTLms: ttl}
	}
	view := []auth.Grant{auth.GrantView}
	for i, bad := range []struct {
		name   string
		claims *auth.SessionClaims
	}{
		{"no claims", nil},
		{"ttl 0", claims("tok1", view, 0)},
		{"negative ttl", claims("tok1", view, -1000)},
		{"ttl over MaxLifetime", claims("tok1", view, auth.MaxLifetime.Milliseconds()+1)},
		{"unknown grant", claims("tok1", []auth.Grant{"admin"}, 60_000)},
		{"no grants", claims("tok1", nil, 60_000)},
		{"no token id", claims("", view, 60_000)},
		{"token id not base64url", claims("tok.1", view, 60_000)},
	} {
		sid := fmt.Sprintf("bad%d", i)
		if err := hub.WriteJSON(sessionMsg{Type: wire.TypeSession, SID: sid, Msg: watch, Claims: bad.claims}); err != nil {
			t.Fatal(err)
		}
		if got, m := sessionReply(t, hub); got != sid || m.Type != wire.TypeError || m.Code != wire.CodeUnauthorized {
			t.Fatalf("%s: got %s %+v, want error %s", bad.name, got, m, wire.CodeUnauthorized)
		}
		if got, m := sessionReply(t, hub); got != sid || m.Type != wire.TypeBye {
			t.Fatalf("%s: got %s %+v, want bye", bad.name, got, m)
		}
	}
	// A good session after them: the link handles envelopes in order, so by its offer the
	// refused ones are known to have made nothing.
	if err := hub.WriteJSON(sessionMsg{Type: wire.TypeSession, SID: "good", Msg: watch, Claims: claims("tok1", view, 60_000)}); err != nil {
		t.Fatal(err)
	}
	if sid, m := sessionReply(t, hub); sid != "good" || m.Type != "offer" {
		t.Fatalf("got %s %+v, want the offer of session good", sid, m)
	}
	if n := backend.count(); n != 1 {
		t.Fatalf("the device made %d sessions, want only the one with claims", n)
	}
	if req := backend.request(0); req.Access.TokenID != "tok1" || req.Source != "token:tok1" {
		t.Fatalf("request %+v", req)
	}
}

// 2. One token cannot take all of a device's sessions.
func TestSessionsPerTokenAreCapped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		perToken int
	}{
		{"configured", Config{MaxSessionsPerToken: 3}, 3},
		// Never more than 3/4 of the device's sessions, whatever is configured.
		{"three quarters of the device", Config{MaxSessionsPerDevice: 4, MaxSessionsPerToken: 100}, 3},
		{"default, three quarters", Config{MaxSessionsPerDevice: 4}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h := newTestHub(t, tc.cfg)
			h.linkDevice(ctx, "cam1")
			view := []auth.Grant{auth.GrantView}
			tok := h.token([]string{"cam1"}, view, time.Hour)
			for i := range tc.perToken {
				if _, m := h.viewer(authAs(tok, "cam1")); m.Type != "hello" {
					t.Fatalf("viewer %d: %+v", i+1, m)
				}
			}
			if _, m := h.viewer(authAs(tok, "cam1")); m.Type != wire.TypeError || m.Code != wire.CodeBusy {
				t.Fatalf("viewer %d of one token: %+v, want busy", tc.perToken+1, m)
			}
			waitAudit(t, h.audit, EventRefused)
			// Another token still gets in.
			if _, m := h.viewer(authAs(h.token([]string{"cam1"}, view, time.Hour), "cam1")); m.Type != "hello" {
				t.Fatalf("another token: %+v", m)
			}
		})
	}
}

// 3. A revoked token's sessions end within a poll or two, the device learns of it (also when
// it connects later), and the token is refused from then on.
func TestRevokedTokenIsCutOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	dev := h.linkDevice(ctx, "cam1")
	if ids := dev.nextRevoked(t); len(ids) != 0 { // the list on connect
		t.Fatalf("revoked on connect: %v", ids)
	}
	view := []auth.Grant{auth.GrantView}
	tok := h.token([]string{"*"}, view, time.Hour)
	claims := h.claims(tok)
	c, hello := h.viewer(authAs(tok, "cam1"))
	if hello.Type != "hello" {
		t.Fatalf("%+v", hello)
	}
	other, otherHello := h.viewer(authAs(h.token([]string{"cam1"}, view, time.Hour), "cam1"))
	if otherHello.Type != "hello" {
		t.Fatalf("%+v", otherHello)
	}

	if err := h.store.Revoke(claims.ID, claims.Expires); err != nil {
		t.Fatal(err)
	}
	// The hub rereads the list every second: one poll, plus slack for a loaded machine.
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var m msg
	if err := c.ReadJSON(&m); err != nil || m.Type != wire.TypeError || m.Code != wire.CodeUnauthorized {
		t.Fatalf("revoked viewer got %+v, %v; want error %s", m, err, wire.CodeUnauthorized)
	}
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("after the error: %v, want the close", err)
	}
	if ids := dev.nextRevoked(t); !slices.Contains(ids, claims.ID) {
		t.Fatalf("the device got %v, want %s in it", ids, claims.ID)
	}

	// From now on the token is refused: new socket, resuming its session, the API.
	for name, first := range map[string]any{
		"new":    authAs(tok, "cam1"),
		"resume": map[string]string{"type": "auth", "token": tok, "device": "cam1", "resume": hello.Session},
	} {
		if _, m := h.viewer(first); m.Type != wire.TypeError || m.Code != wire.CodeUnauthorized {
			t.Fatalf("%s viewer with the revoked token: %+v", name, m)
		}
	}
	req, _ := http.NewRequest("GET", h.http.URL+"/api/devices", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/api/devices with the revoked token: %s", resp.Status)
	}

	// A device that connects now gets the list with its welcome.
	dev2 := h.linkDevice(ctx, "cam2")
	if ids := dev2.nextRevoked(t); !slices.Contains(ids, claims.ID) {
		t.Fatalf("a device connecting after the revocation got %v", ids)
	}
	// Other tokens' sessions go on.
	_ = other.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, other); m.Type != "offer" {
		t.Fatalf("the other token's viewer got %+v", m)
	}
}

// turnExpiry is the expiry of a TURN REST username ("<unix expiry>:<name>").
func turnExpiry(t *testing.T, ice []webrtc.ICEServer) time.Time {
	t.Helper()
	if len(ice) != 2 || ice[1].Username == "" {
		t.Fatalf("ICE servers %+v, want STUN and TURN", ice)
	}
	ts, _, _ := strings.Cut(ice[1].Username, ":")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("TURN username %q: %v", ice[1].Username, err)
	}
	return time.Unix(sec, 0)
}

// 4. A viewer's TURN credentials expire with its token (or at the ICE TTL if that is
// sooner); the device's last the ICE TTL. (newTestHub keeps the TTL of the Config it gets.)
func TestTURNCredentialsLiveNoLongerThanTheToken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const iceTTL = 2 * time.Hour
	h := newTestHub(t, Config{ICE: ICEConfig{TTL: iceTTL}})
	start := time.Now()
	dev := h.linkDevice(ctx, "cam1")
	if exp := turnExpiry(t, dev.welcome); exp.Before(start.Add(iceTTL).Add(-time.Second)) || exp.After(time.Now().Add(iceTTL)) {
		t.Fatalf("device TURN credentials expire at %v, want about now+%v", exp, iceTTL)
	}

	for _, ttl := range []time.Duration{time.Minute, 3 * time.Hour} { // shorter, longer than the ICE TTL
		tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, ttl)
		claims := h.claims(tok)
		before := time.Now()
		_, hello := h.viewer(authAs(tok, "cam1"))
		if hello.Type != "hello" {
			t.Fatalf("%+v", hello)
		}
		exp := turnExpiry(t, hello.ICEServers)
		want := claims.Expires
		if ice := before.Add(iceTTL).Truncate(time.Second); ice.Before(want) {
			want = ice
		}
		if exp.After(claims.Expires) || exp.After(want.Add(time.Second)) || exp.Before(want.Add(-2*time.Second)) {
			t.Errorf("%v token expiring %v: TURN credentials expire %v, want %v", ttl, claims.Expires, exp, want)
		}
		// And they are good credentials.
		if pw, err := auth.VerifyTURN(h.store.TURNSecret(), hello.ICEServers[1].Username, time.Now()); err != nil || pw != hello.ICEServers[1].Credential {
			t.Errorf("TURN credentials do not verify: %v", err)
		}
	}
}

// rawDevice logs in as a device by hand: it answers the hub's challenge with answer's
// message and returns the hub's reply.
func (h *testHub) rawDevice(answer func(auth.Challenge) any) msg {
	h.t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(h.ws+"/device", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ch challengeMsg
	if err := c.ReadJSON(&ch); err != nil || ch.Type != wire.TypeChallenge {
		h.t.Fatalf("challenge %+v, %v", ch, err)
	}
	if err := c.WriteJSON(answer(ch.Nonce)); err != nil {
		h.t.Fatal(err)
	}
	return readMsg(h.t, c)
}

// 5. A device signs the hub URL it dialled, and the hub accepts only its own: a signature
// obtained by another hub (or for another name of this one) does not log in here.
func TestChallengeIsBoundToTheHubURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{}) // accepts ws://127.0.0.1:PORT only
	key, err := h.store.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	self, err := auth.CanonicalHubURL(h.ws)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(self, "ws://"), ":")
	localhost := "ws://localhost:" + port

	answer := func(signFor, send string) func(auth.Challenge) any {
		return func(c auth.Challenge) any {
			sig := base64.RawURLEncoding.EncodeToString(auth.SignChallenge(key, "cam1", signFor, c))
			return authMsg{Type: wire.TypeAuth, ID: "cam1", Sig: sig, URL: send}
		}
	}
	for _, tc := range []struct {
		name, signFor, send string
		wantType, wantCode  string
	}{
		{"without url", self, "", wire.TypeError, wire.CodeBadMessage},
		{"another hub's URL", "wss://evil.example:443", "wss://evil.example:443", wire.TypeError, wire.CodeUnauthorized},
		{"another name of this hub", localhost, localhost, wire.TypeError, wire.CodeUnauthorized},
		// What a hub the device was tricked into dialling would replay here.
		{"signed for another hub, sent as this one", "wss://evil.example:443", self, wire.TypeError, wire.CodeUnauthorized},
		{"signed for this hub", self, self, wire.TypeWelcome, ""},
	} {
		if m := h.rawDevice(answer(tc.signFor, tc.send)); m.Type != tc.wantType || m.Code != tc.wantCode {
			t.Fatalf("%s: got %+v, want %s %s", tc.name, m, tc.wantType, tc.wantCode)
		}
	}

	// A Link dialling the hub by a name it does not answer to stops with ErrRefused.
	link, err := NewLink(LinkConfig{URL: localhost, ID: "cam1", Key: key, Backend: &fakeBackend{}, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := link.Run(runCtx); !errors.Is(err, ErrRefused) {
		t.Fatalf("Run dialling %s: %v, want ErrRefused", localhost, err)
	}
	found := false
	for _, e := range auditEntries(h.audit) {
		if e.Event == EventAuthFailed && e.Device == "cam1" && strings.Contains(e.Reason, "localhost") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no auth_failed for the wrong URL in the audit log: %+v", auditEntries(h.audit))
	}
}

// 6. A refused viewer reads why before the close frame: the error must be written before the
// socket is closed. Repeated, so a race between the two would show.
func TestErrorsAreFlushedBeforeTheClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{ResumeWait: 50 * time.Millisecond})
	h.linkDevice(ctx, "cam1")
	view := []auth.Grant{auth.GrantView}
	other, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	forged, err := other.MintToken(auth.Claims{Devices: []string{"cam1"}, Grants: view, IssuedAt: now, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial(h.ws+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for i := range 20 {
		// Not auth first.
		c := dial()
		_ = c.WriteJSON(map[string]string{"type": "watch"})
		ms, end := readToClose(t, c)
		wantClosedAfter(t, ms, end, wire.CodeBadMessage)

		// A forged token.
		c = dial()
		_ = c.WriteJSON(authAs(forged, "cam1"))
		ms, end = readToClose(t, c)
		wantClosedAfter(t, ms, end, wire.CodeUnauthorized)

		// 21 bad messages in a session: 21 errors, then the fatal one.
		c, hello := h.viewer(authAs(h.token([]string{"cam1"}, view, time.Hour), "cam1"))
		if hello.Type != "hello" {
			t.Fatalf("iteration %d: %+v", i, hello)
		}
		for range 21 {
			_ = c.WriteJSON(map[string]string{"type": "dance"})
		}
		ms, end = readToClose(t, c)
		wantClosedAfter(t, ms, end, wire.CodeFatal)
		if len(ms) != 22 {
			t.Fatalf("iteration %d: %d messages, want 21 bad_message errors and the fatal one", i, len(ms))
		}
		for _, m := range ms[:21] {
			if m.Type != wire.TypeError || m.Code != wire.CodeBadMessage {
				t.Fatalf("iteration %d: %+v, want bad_message", i, m)
			}
		}
	}
}

// 3b. The longest revocation list the hub sends (maxRevokedIDs ids of the longest kind) reaches
// a device whole: bigger than a signaling message, it must not break the device's link.
func TestLongRevocationListReachesTheDevice(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{})
	dev := h.linkDevice(ctx, "cam1")
	if ids := dev.nextRevoked(t); len(ids) != 0 {
		t.Fatalf("revoked on connect: %v", ids)
	}
	// Written directly (documented format in auth/store.go): one write instead of 10,000.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	list := map[string]time.Time{}
	for i := range maxRevokedIDs {
		list[fmt.Sprintf("%064d", i)] = until
	}
	// A hand-edited entry that is no token id, sorted first: the hub must not send it.
	junk := "-" + strings.Repeat("a", 100_000)
	list[junk] = until
	b, err := json.Marshal(map[string]any{"version": 1, "revoked": list})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.store.Dir(), "revoked.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Within a poll; with a read limit too small the link drops instead (and again on each
	// reconnect, where the list comes with the welcome).
	if ids := dev.nextRevoked(t); len(ids) != maxRevokedIDs || slices.Contains(ids, junk) {
		t.Fatalf("the device got %d ids, want the %d token ids", len(ids), maxRevokedIDs)
	}
	if !dev.link.Connected() {
		t.Fatal("the link dropped")
	}
	if ids := h.linkDevice(ctx, "cam2").nextRevoked(t); len(ids) != maxRevokedIDs {
		t.Fatalf("a device connecting now got %d ids", len(ids))
	}
}
