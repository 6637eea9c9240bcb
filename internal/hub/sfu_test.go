package hub

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/janus/janustest"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// sfuBackend is a device past its peer-to-peer limit: every watch that may overflow is
// redirected to feed (of room), the others get sessions.
type sfuBackend struct {
	fakeBackend
	feed     signal.SFUFeed
	held     atomic.Int32
	overflow atomic.Int32 // watches the link said may overflow
}

func (b *sfuBackend) NewSession(req signal.Request) (signal.Session, error) {
	if !req.Overflow {
		return b.fakeBackend.NewSession(req)
	}
	b.overflow.Add(1)
	b.held.Add(1)
	return nil, &signal.Redirect{
		Wait:    func() (signal.SFUFeed, error) { return b.feed, nil },
		Release: func() { b.held.Add(-1) },
	}
}

// sfuDevice connects a device with backend b.
func (h *testHub) sfuDevice(ctx context.Context, id string, b signal.Backend) {
	h.t.Helper()
	key, err := h.store.AddDevice(id)
	if err != nil {
		h.t.Fatal(err)
	}
	link, err := NewLink(LinkConfig{URL: h.ws, ID: id, Key: key, Backend: b})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = link.Run(ctx) }()
	h.waitOnline(id, true)
}

func sfuWait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The hub bridges a redirected session to a Janus subscriber: Janus's offer reaches the
// viewer, its answer and candidates reach Janus, a restart gets a new offer, and bye ends
// the Janus session and the device's hold.
func TestSFUBridgesViewerToJanus(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{SFU: SFUConfig{Janus: fake.API()}})
	room := SFURoom("cam1")
	fake.AddFeed(room, 77)
	b := &sfuBackend{feed: signal.SFUFeed{Room: room, Feed: 77, Mids: []string{"0", "1"}}}
	h.sfuDevice(ctx, "cam1", b)
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)

	c, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	if hello.Type != wire.TypeHello {
		t.Fatalf("hello %+v", hello)
	}
	_ = c.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c); m.Type != wire.TypeOffer || m.SDP != janustest.SubscriberOffer {
		t.Fatalf("got %+v, want Janus's offer", m)
	}
	_ = c.WriteJSON(map[string]string{"type": "answer", "sdp": "v=0 viewer answer"})
	_ = c.WriteJSON(map[string]any{"type": "candidate", "candidate": map[string]any{"candidate": "candidate:1 1 udp 1 10.0.0.9 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}})
	_ = c.WriteJSON(map[string]any{"type": "candidate", "candidate": nil})
	sfuWait(t, "Janus gets the answer and both candidates", func() bool {
		fake.Lock()
		defer fake.Unlock()
		return len(fake.Starts) == 1 && fake.Trickles == 2
	})
	_ = c.WriteJSON(map[string]string{"type": "restart"})
	if m := readMsg(t, c); m.Type != wire.TypeOffer || !strings.Contains(m.SDP, "a=restart") {
		t.Fatalf("got %+v, want Janus's restart offer", m)
	}
	fake.Lock()
	sub := fake.Subscriptions[0]
	start, cand := fake.Starts[0], fake.Candidates
	fake.Unlock()
	if sub["room"] != float64(room) || len(sub["streams"].([]any)) != 2 {
		t.Errorf("subscription %v", sub)
	}
	if start != "v=0 viewer answer" || cand[0]["candidate"] == nil || cand[1]["completed"] != true {
		t.Errorf("start %q, candidates %v", start, cand)
	}
	if b.count() != 0 {
		t.Errorf("the device made %d sessions for a redirected viewer", b.count())
	}
	_ = c.WriteJSON(map[string]string{"type": "bye"})
	sfuWait(t, "bye ends the Janus session and the device's hold", func() bool {
		return fake.Sessions() == 0 && b.held.Load() == 0
	})
	if strings.Contains(h.logs.String(), tok) {
		t.Fatal("the token was logged")
	}
}

// A device cannot send its viewers to another device's room; a hub without an SFU tells its
// devices so (they then never redirect).
func TestSFURefusals(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	h := newTestHub(t, Config{SFU: SFUConfig{Janus: fake.API()}})
	fake.AddFeed(SFURoom("other"), 5)
	b := &sfuBackend{feed: signal.SFUFeed{Room: SFURoom("other"), Feed: 5}}
	h.sfuDevice(ctx, "cam1", b)
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	c, _ := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	_ = c.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c); m.Type != wire.TypeError || m.Code != wire.CodeBusy {
		t.Fatalf("got %+v, want busy", m)
	}
	if m := readMsg(t, c); m.Type != wire.TypeBye {
		t.Fatalf("got %+v, want bye", m)
	}
	fake.Lock()
	n := len(fake.Subscriptions)
	fake.Unlock()
	if n != 0 {
		t.Fatalf("the hub subscribed to another device's room")
	}

	plain := newTestHub(t, Config{})
	pb := &sfuBackend{}
	plain.sfuDevice(ctx, "cam2", pb)
	tok2 := plain.token([]string{"cam2"}, []auth.Grant{auth.GrantView}, time.Hour)
	c2, _ := plain.viewer(map[string]string{"type": "auth", "token": tok2, "device": "cam2"})
	_ = c2.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c2); m.Type != wire.TypeOffer || m.SDP != "v=0 device offer" {
		t.Fatalf("got %+v, want the device's own offer", m)
	}
	if pb.overflow.Load() != 0 {
		t.Fatal("a hub without an SFU let the device redirect")
	}
	_ = c2.WriteMessage(websocket.CloseMessage, nil)
}

func TestSFURoomIsStable(t *testing.T) {
	a, b := SFURoom("cam1"), SFURoom("cam2")
	if a == b || a == 0 || a >= 1<<53 || a != SFURoom("cam1") {
		t.Fatalf("rooms %d %d", a, b)
	}
}

func TestCheckFeed(t *testing.T) {
	ok := signal.SFUFeed{Room: SFURoom("d"), Feed: 1, Mids: []string{"0", "1"}}
	if err := checkFeed("d", ok); err != nil {
		t.Fatal(err)
	}
	for _, f := range []signal.SFUFeed{
		{Room: SFURoom("e"), Feed: 1},
		{Room: SFURoom("d")},
		{Room: SFURoom("d"), Feed: 1, Mids: []string{""}},
		{Room: SFURoom("d"), Feed: 1, Mids: []string{strings.Repeat("m", 40)}},
		{Room: SFURoom("d"), Feed: 1, Mids: make([]string, 9)},
	} {
		if checkFeed("d", f) == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}

// A revoked token's SFU session ends at the hub (the device is not in its media path):
// Janus's session goes, and so does the device's hold on its publication.
func TestSFURevocationEndsTheBridge(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{SFU: SFUConfig{Janus: fake.API()}, ResumeWait: time.Minute})
	room := SFURoom("cam1")
	fake.AddFeed(room, 77)
	b := &sfuBackend{feed: signal.SFUFeed{Room: room, Feed: 77}}
	h.sfuDevice(ctx, "cam1", b)
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	claims := h.claims(tok)
	c, _ := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	_ = c.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c); m.Type != wire.TypeOffer {
		t.Fatalf("got %+v", m)
	}
	if err := h.store.Revoke(claims.ID, claims.Expires); err != nil {
		t.Fatal(err)
	}
	sfuWait(t, "the revoked viewer's Janus session ends", func() bool { return fake.Sessions() == 0 })
}

// The bridges share one Janus session (one long poll, one keep-alive), which goes with the last.
func TestSFUBridgesShareOneJanusSession(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{SFU: SFUConfig{Janus: fake.API()}})
	room := SFURoom("cam1")
	fake.AddFeed(room, 77)
	b := &sfuBackend{feed: signal.SFUFeed{Room: room, Feed: 77}}
	h.sfuDevice(ctx, "cam1", b)
	var conns []*websocket.Conn
	for i := 0; i < 3; i++ {
		tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
		c, _ := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
		_ = c.WriteJSON(map[string]string{"type": "watch"})
		if m := readMsg(t, c); m.Type != wire.TypeOffer {
			t.Fatalf("viewer %d got %+v", i, m)
		}
		conns = append(conns, c)
	}
	if n := fake.Sessions(); n != 1 {
		t.Fatalf("%d Janus sessions for 3 viewers, want 1", n)
	}
	for _, c := range conns {
		_ = c.WriteJSON(map[string]string{"type": "bye"})
	}
	sfuWait(t, "the shared session goes with the last viewer", func() bool { return fake.Sessions() == 0 && b.held.Load() == 0 })
	fake.Lock()
	detaches := fake.Detaches
	fake.Unlock()
	if detaches != 3 {
		t.Errorf("%d handles detached, want 3", detaches)
	}
}

// A bridged session's viewer messages that come as envelopes (from another hub instance of a
// cluster) are taken by the bridge too; others are not.
func TestSFUFromEnvelope(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newTestHub(t, Config{SFU: SFUConfig{Janus: fake.API()}})
	room := SFURoom("cam1")
	fake.AddFeed(room, 77)
	b := &sfuBackend{feed: signal.SFUFeed{Room: room, Feed: 77}}
	h.sfuDevice(ctx, "cam1", b)
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	c, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	_ = c.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, c); m.Type != wire.TypeOffer {
		t.Fatalf("got %+v", m)
	}
	h.srv.mu.Lock()
	d := h.srv.devices["cam1"]
	h.srv.mu.Unlock()
	d.mu.Lock()
	v := d.sessions[hello.Session]
	d.mu.Unlock()
	if v == nil {
		t.Fatal("no session")
	}
	env := []byte(`{"type":"session","sid":"` + v.sid + `","msg":{"type":"answer","sdp":"v=0 from afar"}}`)
	if !h.srv.sfuFromEnvelope(v, env) {
		t.Fatal("the bridge did not take the envelope")
	}
	sfuWait(t, "Janus gets the answer", func() bool {
		fake.Lock()
		defer fake.Unlock()
		return len(fake.Starts) == 1 && fake.Starts[0] == "v=0 from afar"
	})
	if h.srv.sfuFromEnvelope(v, []byte(`{"type":"session","sid":"x","msg":{"type":"dance"}}`)) {
		t.Fatal("a bad message was taken")
	}
	if h.srv.sfuFromEnvelope(&viewerConn{sid: "other"}, env) {
		t.Fatal("a session without a bridge was taken")
	}
}
