package hub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
)

var (
	relayA = []string{"turn:relay-a.example:3478?transport=udp", "turn:relay-a.example:3478?transport=tcp", "turns:relay-a.example:5349?transport=tcp"}
	relayB = []string{"turn:203.0.113.7:3478"}
	stunAB = []string{"stun:relay-a.example:3478", "stun:203.0.113.7:3478"}
)

// fakeChecks answers health checks from a table of hosts that are down.
type fakeChecks struct {
	mu   sync.Mutex
	down map[string]bool // probe address → fails
	seen []string
}

func (f *fakeChecks) check(_ context.Context, network, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, network+" "+addr)
	if f.down[addr] {
		return errors.New("no answer")
	}
	return nil
}

func newTestFleet(t *testing.T, stunURLs, turnURLs []string) (*relayFleet, *fakeChecks) {
	t.Helper()
	f := newRelayFleet(stunURLs, turnURLs, slog.New(slog.DiscardHandler))
	if f == nil {
		t.Fatal("no fleet for two relays")
	}
	fc := &fakeChecks{down: map[string]bool{}}
	f.check = fc.check
	return f, fc
}

func TestRelayFleetGroupsURLsByHost(t *testing.T) {
	if newRelayFleet(stunAB[:1], relayA, slog.New(slog.DiscardHandler)) != nil {
		t.Error("one relay (three URLs of one host) made a fleet: it should be handed out whole")
	}
	f, fc := newTestFleet(t, stunAB, append(slices.Clone(relayA), relayB...))
	if len(f.instances) != 2 {
		t.Fatalf("%d instances, want 2", len(f.instances))
	}
	a, b := f.instances[0], f.instances[1]
	if a.host != "relay-a.example" || !slices.Equal(a.turn, relayA) || !slices.Equal(a.stun, stunAB[:1]) {
		t.Errorf("relay A: %+v", a)
	}
	if b.host != "203.0.113.7" || !slices.Equal(b.turn, relayB) || !slices.Equal(b.stun, stunAB[1:]) {
		t.Errorf("relay B: %+v", b)
	}
	f.checkAll(context.Background())
	slices.Sort(fc.seen)
	// UDP where a relay has it; a URL without a transport is UDP (and TCP) on 3478.
	if want := []string{"udp 203.0.113.7:3478", "udp relay-a.example:3478"}; !slices.Equal(fc.seen, want) {
		t.Errorf("health checks %q, want %q", fc.seen, want)
	}

	for _, tc := range []struct{ url, network, addr string }{
		{"turn:h:3478?transport=tcp", "tcp", "h:3478"},
		{"turn:h", "udp", "h:3478"},
		{"turn:[2001:db8::1]:3479?transport=udp", "udp", "[2001:db8::1]:3479"},
	} {
		if network, addr, ok := probeTarget(tc.url); !ok || network != tc.network || addr != tc.addr {
			t.Errorf("probeTarget(%q) = %s %s %v, want %s %s", tc.url, network, addr, ok, tc.network, tc.addr)
		}
	}
	if _, _, ok := probeTarget("turns:h:5349?transport=tcp"); ok {
		t.Error("a turns: URL is checked: the check speaks plain STUN")
	}
}

func TestRelayFleetSpreadsSessionsAndKeepsEachOnItsRelay(t *testing.T) {
	f, _ := newTestFleet(t, stunAB, append(slices.Clone(relayA), relayB...))
	got := map[string]int{}
	hostOf := map[string]string{}
	for _, name := range []string{"viewer:1", "viewer:2", "viewer:3", "viewer:4"} {
		st, tu := f.pick(name)
		if len(tu) == 0 || len(st) != 1 {
			t.Fatalf("%s got %q %q", name, st, tu)
		}
		h := relayHost(tu[0])
		for _, u := range tu {
			if relayHost(u) != h {
				t.Fatalf("%s got URLs of two relays: %q", name, tu)
			}
		}
		hostOf[name] = h
		got[h]++
	}
	if got["relay-a.example"] != 2 || got["203.0.113.7"] != 2 {
		t.Errorf("sessions per relay %v, want 2 and 2", got)
	}
	// A session asking again (a resumed viewer, a device's credential refresh) keeps its relay.
	if _, tu := f.pick("viewer:3"); relayHost(tu[0]) != hostOf["viewer:3"] {
		t.Errorf("viewer:3 moved from %s to %s", hostOf["viewer:3"], relayHost(tu[0]))
	}
	// Two sessions of one relay end: the next two go there.
	var gone string
	for _, name := range []string{"viewer:1", "viewer:2", "viewer:3", "viewer:4"} {
		if hostOf[name] == hostOf["viewer:1"] {
			f.release(name)
			gone = hostOf[name]
		}
	}
	f.release("viewer:1") // twice: nothing more
	for _, name := range []string{"viewer:5", "viewer:6"} {
		if _, tu := f.pick(name); relayHost(tu[0]) != gone {
			t.Errorf("%s went to %s, want the emptied %s", name, relayHost(tu[0]), gone)
		}
	}
	for _, s := range f.states() {
		if s.sessions != 2 || !s.up {
			t.Errorf("relay %s: %d sessions, up %v; want 2, up", s.host, s.sessions, s.up)
		}
	}
}

func TestRelayFleetLeavesOutARelayThatStopsAnswering(t *testing.T) {
	f, fc := newTestFleet(t, stunAB, append(slices.Clone(relayA), relayB...))
	ctx := context.Background()
	_, tu := f.pick("device:cam@1")
	onA := relayHost(tu[0]) == "relay-a.example"
	if !onA {
		t.Fatalf("the first session went to %s, want the first relay", relayHost(tu[0]))
	}

	fc.down["relay-a.example:3478"] = true
	f.checkAll(ctx)
	if !f.instances[0].up {
		t.Fatal("one missed check took the relay out: it takes two")
	}
	f.checkAll(ctx)
	if f.instances[0].up {
		t.Fatal("two missed checks left the relay in")
	}
	for _, name := range []string{"viewer:1", "viewer:2", "device:cam@1"} {
		if _, tu := f.pick(name); relayHost(tu[0]) != "203.0.113.7" {
			t.Errorf("%s got %s while it does not answer", name, relayHost(tu[0]))
		}
	}
	if s := f.states(); s[0].sessions != 0 || s[1].sessions != 3 {
		t.Errorf("sessions per relay %+v, want 0 and 3", s)
	}

	// Everything down: every relay is handed out rather than none.
	fc.down["203.0.113.7:3478"] = true
	f.checkAll(ctx)
	f.checkAll(ctx)
	st, tu := f.pick("viewer:9")
	if len(tu) != len(relayA)+len(relayB) || len(st) != 2 {
		t.Errorf("with no relay answering, a session got %q %q; want all of them", st, tu)
	}

	// One answer brings a relay back.
	delete(fc.down, "relay-a.example:3478")
	f.checkAll(ctx)
	if _, tu := f.pick("viewer:10"); relayHost(tu[0]) != "relay-a.example" {
		t.Errorf("after it answered again a new session got %s", relayHost(tu[0]))
	}
}

// stunResponder answers STUN binding requests on a UDP socket at ip (with a bad answer if
// garbage is set) until the test ends.
func stunResponder(t *testing.T, ip string, garbage bool) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Skipf("no UDP socket on %s here: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			if garbage {
				_, _ = c.WriteToUDP([]byte("not stun at all, but long enough to read"), from)
				continue
			}
			res, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: from.IP, Port: from.Port}, stun.Fingerprint)
			_, _ = c.WriteToUDP(res.Raw, from)
		}
	}()
	return c
}

func TestSTUNBindingHealthCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ok := stunResponder(t, "127.0.0.1", false)
	if err := stunBinding(ctx, "udp", ok.LocalAddr().String()); err != nil {
		t.Errorf("a STUN server: %v", err)
	}
	bad := stunResponder(t, "127.0.0.1", true)
	if err := stunBinding(ctx, "udp", bad.LocalAddr().String()); !errors.Is(err, errNotSTUN) {
		t.Errorf("a server answering garbage: %v, want errNotSTUN", err)
	}
	// A closed port: the ICMP error, or the timeout.
	closed, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	addr := closed.LocalAddr().String()
	closed.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancelShort()
	if err := stunBinding(short, "udp", addr); err == nil {
		t.Error("a closed port answered")
	}
	// Over TCP: a listener that closes at once is no STUN server.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.CopyN(io.Discard, c, 20)
			c.Close()
		}
	}()
	if err := stunBinding(ctx, "tcp", l.Addr().String()); err == nil {
		t.Error("a TCP listener that hangs up passed the check")
	}
}

// TestHubHandsEachSessionOneHealthyRelay runs the fleet in a hub: two STUN servers stand for
// two coturn instances (on two loopback addresses, as two hosts); the device link and each
// viewer get one of them, and after one stops answering new sessions get the other.
func TestHubHandsEachSessionOneHealthyRelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := stunResponder(t, "127.0.0.3", false)
	b := stunResponder(t, "127.0.0.4", false)
	urls := []string{"turn:" + a.LocalAddr().String() + "?transport=udp", "turn:" + b.LocalAddr().String() + "?transport=udp"}
	h := newTestHub(t, Config{ICE: ICEConfig{STUN: []string{"stun:" + a.LocalAddr().String(), "stun:" + b.LocalAddr().String()}, TURN: urls}})
	if h.srv.relays == nil {
		t.Fatal("two relays made no fleet")
	}
	h.srv.relays.checkAll(ctx)
	h.device(ctx, "cam1")
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView}, time.Hour)

	relayOf := func(hello msg) string {
		t.Helper()
		if hello.Type != "hello" || len(hello.ICEServers) != 2 || len(hello.ICEServers[1].URLs) != 1 {
			t.Fatalf("hello %+v: want one STUN and one TURN server", hello)
		}
		if !strings.Contains(hello.ICEServers[1].Username, ":viewer:") {
			t.Fatalf("TURN username %q", hello.ICEServers[1].Username)
		}
		return relayHost(hello.ICEServers[1].URLs[0])
	}
	_, first := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	_, second := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
	// The device holds one relay, so the first viewer gets the other; then one each.
	r1, r2 := relayOf(first), relayOf(second)
	states := h.srv.relays.states()
	if states[0].sessions != 2 || states[1].sessions != 1 || r1 == r2 {
		t.Errorf("viewers on %s and %s, sessions per relay %+v: want the three sessions spread 2/1", r1, r2, states)
	}

	b.Close() // relay B stops answering
	h.srv.relays.checkAll(ctx)
	h.srv.relays.checkAll(ctx)
	for range 2 {
		_, hello := h.viewer(map[string]string{"type": "auth", "token": tok, "device": "cam1"})
		if r := relayOf(hello); r != "127.0.0.3" {
			t.Errorf("a viewer after relay B went silent got %s", r)
		}
	}
	if !strings.Contains(h.logs.String(), "TURN relay does not answer") {
		t.Error("the hub did not log the relay it left out")
	}
}

// TestRelayHealthAgainstCoturn checks the health check against the production relay: two
// Debian coturn instances (on two loopback addresses); one is stopped and leaves the fleet.
func TestRelayHealthAgainstCoturn(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		t.Skip("turnserver (Debian's coturn) is not installed: scripts/install-deps.sh installs it")
	}
	start := func(ip string) (*exec.Cmd, string) {
		port := freePort(t, ip)
		dir := t.TempDir()
		cmd := exec.Command(bin, "-c", "/dev/null", "--no-cli", "--log-file=stdout", "--simple-log",
			"--pidfile="+filepath.Join(dir, "pid"), "--userdb="+filepath.Join(dir, "db"),
			"--listening-ip="+ip, "--relay-ip="+ip, "--listening-port="+strconv.Itoa(port),
			"--use-auth-secret", "--static-auth-secret=s3cret", "--realm=p2pcast", "--no-tls", "--no-dtls")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, net.JoinHostPort(ip, strconv.Itoa(port))
	}
	cmdA, addrA := start("127.0.0.3")
	_, addrB := start("127.0.0.4")
	f := newRelayFleet(nil, []string{"turn:" + addrA + "?transport=udp", "turn:" + addrB + "?transport=udp"}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	// coturn takes a moment to listen: wait for both to answer, as the hub's checks would.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.checkAll(ctx)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		errA, errB := stunBinding(cctx, "udp", addrA), stunBinding(cctx, "udp", addrB)
		cancel()
		if errA == nil && errB == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("coturn never answered: %v, %v", errA, errB)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmdA.Process.Kill()
	_ = cmdA.Wait()
	f.checkAll(ctx)
	f.checkAll(ctx)
	states := f.states()
	if states[0].up || !states[1].up {
		t.Fatalf("after coturn A stopped: %+v, want A down and B up", states)
	}
	if _, tu := f.pick("viewer:1"); relayHost(tu[0]) != "127.0.0.4" {
		t.Errorf("a session got %q with coturn A stopped", tu)
	}
}

// freePort is a UDP and TCP port free on ip.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Skipf("no UDP socket on %s here: %v", ip, err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		c.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
