package signal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// fakeSession is a Session that records what signaling asked of it.
type fakeSession struct {
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	answers   []string
	cands     int
}

func newFakeSession() *fakeSession { return &fakeSession{done: make(chan struct{})} }

func (s *fakeSession) ID() string { return "fake" }
func (s *fakeSession) Answer(offer string) (string, error) {
	if !strings.HasPrefix(offer, "v=0") {
		return "", peer.ErrBadSDP
	}
	return "v=0 answer", nil
}
func (s *fakeSession) Offer() (string, error)   { return "v=0 offer", nil }
func (s *fakeSession) Restart() (string, error) { return "v=0 restart offer", nil }
func (s *fakeSession) SetAnswer(a string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers = append(s.answers, a)
	return nil
}
func (s *fakeSession) AddCandidate(*webrtc.ICECandidateInit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cands++
	return nil
}
func (s *fakeSession) GatheringDone() <-chan struct{} { return s.done }
func (s *fakeSession) LocalDescription() string       { return "" }
func (s *fakeSession) Done() <-chan struct{}          { return s.done }
func (s *fakeSession) Close()                         { s.closeOnce.Do(func() { close(s.done) }) }
func (s *fakeSession) EndReason() string              { return "" }

// fakeBackend hands out fakeSessions (busy after limit) and keeps them for the test to inspect.
type fakeBackend struct {
	mu       sync.Mutex
	sessions []*fakeSession
	limit    int
}

func (b *fakeBackend) NewSession(Request) (Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && len(b.sessions) >= b.limit {
		return nil, peer.ErrBusy
	}
	s := newFakeSession()
	b.sessions = append(b.sessions, s)
	return s, nil
}
func (b *fakeBackend) ICEServers() []webrtc.ICEServer { return nil }
func (b *fakeBackend) StreamInfo() *stream.Info       { return nil }

func (b *fakeBackend) session(i int) *fakeSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[i]
}

type wsMsg struct {
	Type, Code, Message, Reason, SDP string
}

// wsClient is one viewer on a test server.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, b Backend) (*wsClient, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(NewWebSocket(ctx, b, Options{}))
	t.Cleanup(func() { cancel(); srv.Close() })
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn}
	if m := c.read(); m.Type != wire.TypeHello {
		t.Fatalf("first message %+v, want hello", m)
	}
	return c, srv
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsClient) read() wsMsg {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m wsMsg
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatalf("device sent non-JSON %q", data)
	}
	return m
}

func (c *wsClient) expectError(code string) {
	c.t.Helper()
	if m := c.read(); m.Type != wire.TypeError || m.Code != code {
		c.t.Fatalf("got %+v, want error %s", m, code)
	}
}

func TestWebSocketRefusesBadMessagesAndKeepsGoing(t *testing.T) {
	b := &fakeBackend{}
	c, _ := dialWS(t, b)

	c.send(`not json`)
	c.expectError(wire.CodeBadMessage)
	c.send(`{"type":"dance"}`)
	c.expectError(wire.CodeBadMessage)
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	c.expectError(wire.CodeBadMessage)
	c.send(`{"type":"answer","sdp":"v=0"}`)
	c.expectError(wire.CodeNoSession)
	c.send(`{"type":"candidate","candidate":null}`)
	c.expectError(wire.CodeNoSession)
	c.send(`{"type":"offer","sdp":"garbage"}`)
	c.expectError(wire.CodeBadSDP)
	c.send(`{"type":"restart"}`)
	c.expectError(wire.CodeNoSession)

	// After all that, the connection still negotiates: the device offers, the viewer answers.
	c.send(`{"type":"watch"}`)
	if m := c.read(); m.Type != wire.TypeOffer || m.SDP != "v=0 offer" {
		t.Fatalf("got %+v, want the device's offer", m)
	}
	c.send(`{"type":"answer","sdp":"v=0 viewer"}`)
	c.send(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}}`)
	c.send(`{"type":"candidate","candidate":{"candidate":"` + strings.Repeat("x", maxCandidate+1) + `"}}`)
	c.expectError(wire.CodeBadMessage) // the oversized candidate; the two before it were taken
	// An ICE restart re-offers on the same session.
	c.send(`{"type":"restart"}`)
	if m := c.read(); m.Type != wire.TypeOffer || m.SDP != "v=0 restart offer" {
		t.Fatalf("got %+v, want the restart offer", m)
	}
	s := b.session(1) // session 0 was made by the refused offer
	s.mu.Lock()
	answers, cands := s.answers, s.cands
	s.mu.Unlock()
	if len(answers) != 1 || answers[0] != "v=0 viewer" || cands != 1 {
		t.Fatalf("session got answers %q and %d candidates", answers, cands)
	}
}

func TestWebSocketFatalAfterTooManyBadMessages(t *testing.T) {
	c, _ := dialWS(t, &fakeBackend{})
	for range maxBadMessages + 1 {
		c.send(`{}`)
		c.expectError(wire.CodeBadMessage)
	}
	c.expectError(wire.CodeFatal)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.conn.ReadMessage(); err == nil {
		t.Fatal("connection still open after the fatal error")
	}
}

func TestWebSocketOversizedMessageClosesConnection(t *testing.T) {
	c, _ := dialWS(t, &fakeBackend{})
	c.send(`{"type":"offer","sdp":"` + strings.Repeat("a", MaxMessage) + `"}`)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.conn.ReadMessage(); err == nil {
		t.Fatal("connection still open after a message over the limit")
	}
}

func TestWebSocketBusyAndByes(t *testing.T) {
	b := &fakeBackend{limit: 2}
	c, _ := dialWS(t, b)
	c.send(`{"type":"watch"}`)
	if m := c.read(); m.Type != wire.TypeOffer {
		t.Fatalf("got %+v", m)
	}
	// A second watch replaces the session quietly: the viewer asked for it, no bye.
	c.send(`{"type":"watch"}`)
	if m := c.read(); m.Type != wire.TypeOffer {
		t.Fatalf("got %+v, want a new offer and no bye for the replaced session", m)
	}
	select {
	case <-b.session(0).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced session was not closed")
	}
	// A session ending by itself (ICE failed) is reported so the page starts again.
	b.session(1).Close()
	if m := c.read(); m.Type != wire.TypeBye || m.Reason == "" {
		t.Fatalf("got %+v, want bye", m)
	}
	c.send(`{"type":"watch"}`)
	c.expectError(wire.CodeBusy)
}

func TestWebSocketRefusesOtherOrigins(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(NewWebSocket(ctx, &fakeBackend{}, Options{}))
	defer srv.Close()
	h := http.Header{"Origin": {"https://evil.example"}}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin upgrade: err %v, resp %v", err, resp)
	}
}

func TestWebSocketSaysByeOnShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(NewWebSocket(ctx, &fakeBackend{}, Options{}))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &wsClient{t: t, conn: conn}
	if m := c.read(); m.Type != wire.TypeHello {
		t.Fatalf("got %+v", m)
	}
	cancel()
	if m := c.read(); m.Type != wire.TypeBye || !strings.Contains(m.Reason, "shutting down") {
		t.Fatalf("got %+v, want bye on shutdown", m)
	}
}
