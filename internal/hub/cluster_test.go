//go:build !device

package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/metrics/metricstest"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// startNATS runs a nats-server on loopback for the test (Debian's nats-server; skipped when
// it is missing, unless P2PCAST_REQUIRE_TOOLS is set).
func startNATS(t *testing.T) string { return newNATS(t).url }

// natsServer is a nats-server the test can stop and start again on the same port.
type natsServer struct {
	t         *testing.T
	bin, addr string
	url       string
	cmd       *exec.Cmd
	out       *logtest.Buffer
}

func newNATS(t *testing.T) *natsServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("P2PCAST_REQUIRE_TOOLS") != "" {
			t.Fatal("nats-server is not installed (scripts/install-deps.sh installs it); P2PCAST_REQUIRE_TOOLS is set")
		}
		t.Skip("nats-server is not installed (apt-get install nats-server, or scripts/install-deps.sh)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := &natsServer{t: t, bin: bin, addr: addr, url: "nats://" + addr, out: &logtest.Buffer{}}
	n.start()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("nats-server:\n%s", n.out.String())
		}
	})
	return n
}

func (n *natsServer) start() {
	n.t.Helper()
	_, port, _ := net.SplitHostPort(n.addr)
	n.cmd = exec.Command(n.bin, "-a", "127.0.0.1", "-p", port)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", n.addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("nats-server did not listen on %s: %v\n%s", n.addr, err, n.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *natsServer) stop() {
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
}

// balancer is the cluster's load balancer: it hands each connection to the first backend
// that takes it, and can cut one backend (its connections, and new ones) as a dead host would.
type balancer struct {
	l        net.Listener
	mu       sync.Mutex
	backends []string
	dead     map[string]bool
	conns    map[string][]net.Conn
}

func newBalancer(t *testing.T) *balancer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{l: l, dead: map[string]bool{}, conns: map[string][]net.Conn{}}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *balancer) serve(c net.Conn) {
	b.mu.Lock()
	backends := append([]string(nil), b.backends...)
	b.mu.Unlock()
	for _, addr := range backends {
		b.mu.Lock()
		dead := b.dead[addr]
		b.mu.Unlock()
		if dead {
			continue
		}
		up, err := net.Dial("tcp", addr)
		if err != nil {
			continue
		}
		b.mu.Lock()
		b.conns[addr] = append(b.conns[addr], c, up)
		b.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		_, _ = io.Copy(c, up)
		c.Close()
		return
	}
	c.Close()
}

// cut kills backend addr's connections and takes no new ones for it.
func (b *balancer) cut(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dead[addr] = true
	for _, c := range b.conns[addr] {
		c.Close()
	}
}

// clusterHub is one instance: a Server joined to the NATS at natsURL, sharing store.
func newClusterHub(t *testing.T, natsURL, instance string, store *auth.Store, urls []string) *testHub {
	t.Helper()
	h := &testHub{t: t, store: store, audit: &logtest.Buffer{}, logs: &logtest.Buffer{}}
	cfg := Config{Store: store, Audit: h.audit, ConnRate: 1000, ConnBurst: 1000, AuthFailsPerMinute: 1000,
		ResumeWait: 5 * time.Second, URLs: urls, Cluster: ClusterConfig{URL: natsURL, Instance: instance}}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.ICE = ICEConfig{STUN: []string{"stun:127.0.0.1:3478"}, TURN: []string{"turn:127.0.0.1:3478?transport=udp"}, Secret: store.TURNSecret()}
	h.http = httptest.NewUnstartedServer(nil)
	if cfg.URLs == nil {
		cfg.URLs = []string{"ws://" + h.http.Listener.Addr().String()}
	}
	var err error
	if h.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	h.http.Config.Handler = h.srv.Handler()
	h.http.Start()
	t.Cleanup(func() {
		h.srv.Close()
		h.http.Close()
		if t.Failed() {
			t.Logf("hub %s:\n%s", instance, h.logs.String())
		}
	})
	h.ws = "ws" + strings.TrimPrefix(h.http.URL, "http")
	return h
}

func (h *testHub) holds(id string) bool {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.devices[id] != nil
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterRelaysAndRelocates: three instances on one NATS server and one data directory.
// A device linked to A is watched through B (offer, answer, candidates and an ICE restart
// relayed over NATS); B's device list shows it online. A dies; the device relinks (through
// the balancer) to C, the viewer's session at B carries on there under the same id without the
// viewer noticing, and a new viewer at B reaches the device at C.
func TestClusterRelaysAndRelocates(t *testing.T) {
	natsURL := startNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lb := newBalancer(t)
	public := []string{"ws://" + lb.l.Addr().String()} // the cluster's one URL, as behind a load balancer
	a := newClusterHub(t, natsURL, "a", store, public)
	b := newClusterHub(t, natsURL, "b", store, public)
	c := newClusterHub(t, natsURL, "c", store, public)
	addr := func(h *testHub) string { return h.http.Listener.Addr().String() }
	lb.mu.Lock()
	lb.backends = []string{addr(a), addr(c), addr(b)}
	lb.mu.Unlock()

	// A second instance with a taken id is refused.
	if _, err := New(Config{Store: store, URLs: public, Cluster: ClusterConfig{URL: natsURL, Instance: "a"}}); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("a second instance a: %v", err)
	}

	key, err := store.AddDevice("cam.1") // a dot: NATS's separator, escaped in subjects
	if err != nil {
		t.Fatal(err)
	}
	backend := &fakeBackend{}
	link, err := NewLink(LinkConfig{URL: public[0], ID: "cam.1", Key: key, Backend: backend,
		OnICEServers: func([]webrtc.ICEServer) {}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = link.Run(ctx) }()
	waitFor(t, "the device links to a", 5*time.Second, func() bool { return a.holds("cam.1") })
	b.waitOnline("cam.1", true) // b's list asks the cluster

	tok := b.token([]string{"cam.1"}, []auth.Grant{auth.GrantView}, time.Hour)
	v, hello := b.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam.1"})
	if hello.Type != "hello" || hello.Session == "" || !strings.Contains(string(hello.Stream), "H264") || len(hello.ICEServers) != 2 {
		t.Fatalf("hello through b: %+v", hello)
	}
	start := time.Now()
	_ = v.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, v); m.Type != "offer" || m.SDP != "v=0 device offer" {
		t.Fatalf("got %+v, want the device's offer", m)
	}
	t.Logf("watch → offer through b and a: %s", time.Since(start).Round(time.Microsecond))
	_ = v.WriteJSON(map[string]string{"type": "answer", "sdp": "v=0 viewer answer"})
	_ = v.WriteJSON(map[string]any{"type": "candidate", "candidate": map[string]any{"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host", "sdpMid": "0"}})
	_ = v.WriteJSON(map[string]string{"type": "restart"})
	if m := readMsg(t, v); m.Type != "offer" || m.SDP != "v=0 restart offer" {
		t.Fatalf("got %+v, want the device's ICE restart offer", m)
	}
	if backend.count() != 1 || backend.request(0).Access.TokenID == "" {
		t.Fatalf("device sessions %d, want 1 with the token's claims", backend.count())
	}
	var metrics strings.Builder
	b.srv.writeMetricsTo(&metrics)
	if !strings.Contains(metrics.String(), `p2pcast_hub_cluster_info{instance="b"} 1`) || !strings.Contains(metrics.String(), "p2pcast_hub_cluster_remote_viewers 1") {
		t.Fatalf("b's metrics:\n%s", metrics.String())
	}
	metricstest.Promtool(t, metrics.String())
	// The admin list at c names the instance that holds the device.
	rec := httptest.NewRecorder()
	c.srv.adminDevices(rec, httptest.NewRequest(http.MethodGet, "/api/admin/devices", nil))
	var admin struct{ Devices []AdminDevice }
	if err := json.Unmarshal(rec.Body.Bytes(), &admin); err != nil || len(admin.Devices) != 1 ||
		!admin.Devices[0].Online || admin.Devices[0].Instance != "a" || admin.Devices[0].Sessions != 1 {
		t.Fatalf("c's admin device list: %s (%v)", rec.Body.String(), err)
	}

	// A dies: its NATS connection and its sockets go at once, as with a killed process.
	a.srv.cluster.nc.Close()
	lb.cut(addr(a))
	waitFor(t, "the device relinks to c", 10*time.Second, func() bool { return c.holds("cam.1") })
	waitFor(t, "b carries the session on at c", 10*time.Second, func() bool {
		var m strings.Builder
		b.srv.writeMetricsTo(&m)
		return strings.Contains(m.String(), "p2pcast_hub_cluster_relocated_total 1")
	})
	// The viewer's socket stayed up, its session id too; the device (whose dialogs ended with
	// its link, its media going on) takes a new watch on it.
	_ = v.WriteJSON(map[string]string{"type": "watch"})
	if m := readMsg(t, v); m.Type != "offer" || m.SDP != "v=0 device offer" {
		t.Fatalf("after the move got %+v, want the device's offer through c", m)
	}
	c.srv.mu.Lock()
	d := c.srv.devices["cam.1"]
	c.srv.mu.Unlock()
	d.mu.Lock()
	_, same := d.sessions[hello.Session]
	d.mu.Unlock()
	if !same {
		t.Fatalf("c does not hold session %s", hello.Session)
	}

	// A new viewer at b reaches the device at c.
	tok2 := b.token([]string{"cam.1"}, []auth.Grant{auth.GrantView}, time.Hour)
	v2, _, _ := b.watch(tok2, "cam.1")
	// Its bye ends its device session at once.
	n := backend.count()
	_ = v2.WriteJSON(map[string]string{"type": "bye"})
	waitFor(t, "the second viewer's session ends at the device", 5*time.Second, func() bool {
		select {
		case <-backend.session(n - 1).Done():
			return true
		default:
			return false
		}
	})
	waitFor(t, "c drops the ended session", 5*time.Second, func() bool {
		c.srv.cluster.mu.Lock()
		defer c.srv.cluster.mu.Unlock()
		return len(c.srv.cluster.sinks) == 1
	})

	// A device nobody holds is offline, as with one hub.
	tok3 := b.token([]string{"nobody"}, []auth.Grant{auth.GrantView}, time.Hour)
	if _, m := b.viewer(map[string]string{"type": "auth", "token": tok3, "device": "nobody"}); m.Code != wire.CodeOffline {
		t.Fatalf("viewer of an absent device: %+v", m)
	}
}

// TestClusterViewerInstanceDies: the viewer's instance dies; the device's holder keeps the
// session for ResumeWait, and the viewer resumes it through another instance.
func TestClusterViewerInstanceDies(t *testing.T) {
	natsURL := startNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := newClusterHub(t, natsURL, "a", store, nil)
	b := newClusterHub(t, natsURL, "b", store, nil)
	c := newClusterHub(t, natsURL, "c", store, nil)
	_, backend := a.device(ctx, "cam1")
	tok := b.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	v, hello, _ := b.watch(tok, "cam1")
	// b dies.
	b.srv.cluster.nc.Close()
	v.Close()
	// a finds b gone and orphans the session; the viewer comes back through c and resumes it.
	waitFor(t, "a notices b is gone", 5*time.Second, func() bool {
		var m strings.Builder
		a.srv.writeMetricsTo(&m)
		return strings.Contains(m.String(), "p2pcast_hub_cluster_peers_lost_total 1")
	})
	v2, hello2 := c.viewer(map[string]any{"type": "auth", "token": tok, "device": "cam1", "resume": hello.Session})
	if hello2.Type != "hello" || !hello2.Resumed || hello2.Session != hello.Session {
		t.Fatalf("resume through c: %+v (session %s)", hello2, hello.Session)
	}
	_ = v2.WriteJSON(map[string]string{"type": "restart"})
	if m := readMsg(t, v2); m.Type != "offer" || m.SDP != "v=0 restart offer" {
		t.Fatalf("ICE restart on the resumed session: %+v", m)
	}
	if backend.count() != 1 {
		t.Fatalf("the device made %d sessions; the resumed one should be the first", backend.count())
	}
}

// TestClusterNewerLinkWins: the same device linked to two instances keeps the newer link.
func TestClusterNewerLinkWins(t *testing.T) {
	natsURL := startNATS(t)
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := newClusterHub(t, natsURL, "a", store, nil)
	b := newClusterHub(t, natsURL, "b", store, nil)
	key, err := store.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	// A raw device link (no reconnection) to a, then one to b.
	raw := func(h *testHub) *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.DefaultDialer.Dial(h.ws+"/device", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		var ch struct {
			Nonce auth.Challenge `json:"nonce"`
		}
		if err := conn.ReadJSON(&ch); err != nil {
			t.Fatal(err)
		}
		u, _ := auth.CanonicalHubURL(h.ws)
		sig := auth.SignChallenge(key, "cam1", u, ch.Nonce)
		_ = conn.WriteJSON(authMsg{Type: wire.TypeAuth, ID: "cam1", URL: u, Sig: base64.RawURLEncoding.EncodeToString(sig)})
		if m := readMsg(t, conn); m.Type != wire.TypeWelcome {
			t.Fatalf("link to %s: %+v", h.ws, m)
		}
		return conn
	}
	first := raw(a)
	waitFor(t, "a holds the device", 5*time.Second, func() bool { return a.holds("cam1") })
	raw(b)
	_ = first.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m msg
		if err := first.ReadJSON(&m); err != nil {
			t.Fatalf("the older link at a was not told it was replaced: %v", err)
		}
		if m.Type == wire.TypeError {
			if m.Code != wire.CodeReplaced {
				t.Fatalf("older link got %+v", m)
			}
			break
		}
	}
	waitFor(t, "only b holds the device", 5*time.Second, func() bool { return !a.holds("cam1") && b.holds("cam1") })
}

// TestClusterNATSRestart: the NATS server goes away and comes back. A session relayed between
// two instances survives it (its messages wait in the client's reconnect buffer), and new
// sessions through the cluster work again once the instances are back.
func TestClusterNATSRestart(t *testing.T) {
	n := newNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := newClusterHub(t, n.url, "a", store, nil)
	b := newClusterHub(t, n.url, "b", store, nil)
	_, _ = a.device(ctx, "cam1")
	tok := b.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)
	v, _, _ := b.watch(tok, "cam1")
	n.stop()
	waitFor(t, "the hubs see NATS gone", 5*time.Second, func() bool {
		return !a.srv.cluster.nc.IsConnected() && !b.srv.cluster.nc.IsConnected()
	})
	// What is sent meanwhile may be lost (core NATS delivers at most once, to the interest
	// the server knows: an instance back first publishes before the other has subscribed
	// again); the session itself goes on, and its next messages go through.
	n.start()
	waitFor(t, "the hubs reconnect", 10*time.Second, func() bool {
		return a.srv.cluster.nc.IsConnected() && b.srv.cluster.nc.IsConnected()
	})
	_ = b.srv.cluster.nc.Flush()
	_ = a.srv.cluster.nc.Flush()
	_ = v.WriteJSON(map[string]string{"type": "restart"})
	if m := readMsg(t, v); m.Type != "offer" || m.SDP != "v=0 restart offer" {
		t.Fatalf("after the NATS restart got %+v, want the device's ICE restart offer", m)
	}
	// A new viewer through b finds the device at a again.
	b.watch(tok, "cam1") // kept open until the test ends
	// Nobody was taken for gone: the first session is still at a, relayed for b.
	time.Sleep(2 * peerCheckEvery)
	var m strings.Builder
	a.srv.writeMetricsTo(&m)
	if !strings.Contains(m.String(), "p2pcast_hub_cluster_peers_lost_total 0") || !strings.Contains(m.String(), "p2pcast_hub_cluster_relayed_sessions 2") {
		t.Fatalf("a's metrics after the NATS restart:\n%s", m.String())
	}
}

func TestClusterSubjects(t *testing.T) {
	for _, id := range []string{"a.b", "cam-1_x", "x.y.z"} {
		s, ok := devSubject(id)
		if !ok || strings.Count(s, ".") != 2 || deviceOfSubject(s) != id {
			t.Errorf("devSubject(%q) = %q, %v", id, s, ok)
		}
	}
	for _, id := range []string{"", "*", ">", "a.*", "a b", "a.>", ".a", strings.Repeat("a", 65)} {
		if s, ok := devSubject(id); ok {
			t.Errorf("devSubject(%q) = %q, want refused", id, s)
		}
	}
	if err := (ClusterConfig{URL: "http://x"}).validate(); err == nil {
		t.Error("an http URL was taken for NATS")
	}
	if err := (ClusterConfig{URL: "nats://u:secret@x:4222", Instance: "a.b"}).validate(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("instance a.b: %v", err)
	}
	if err := (ClusterConfig{Instance: "a"}).validate(); err == nil {
		t.Error("--cluster-instance without --cluster was taken")
	}
	if auditName(ClusterConfig{}) != "audit.jsonl" || auditName(ClusterConfig{URL: "nats://x:1", Instance: "b"}) != "audit-b.jsonl" {
		t.Error("audit file names")
	}
}

// writeMetricsTo writes what /metrics says, for tests.
func (s *Server) writeMetricsTo(w io.Writer) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.RemoteAddr = "127.0.0.1:1"
	s.opsHandler().ServeHTTP(rec, req)
	_, _ = io.Copy(w, rec.Body)
}
