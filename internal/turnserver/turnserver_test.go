package turnserver

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/ipclass"
	"github.com/p2pcast/p2pcast/internal/logtest"
)

var secret = []byte("test-secret-0123456789")

// The hub is 127.0.0.1 in these tests; peers that must be reachable live on 127.0.0.2, which the
// tests allow with loopbackLab (the hub's own 127.0.0.1 stays denied).
var loopbackLab = ipclass.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

const peerIP = "127.0.0.2"

// start runs a server on 127.0.0.1 with cfg's policy and quotas.
func start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.PublicIP == nil {
		cfg.PublicIP = net.IPv4(127, 0, 0, 1)
	}
	cfg.ListenIP = net.IPv4(127, 0, 0, 1)
	cfg.Port = -1 // any free port, UDP and TCP alike
	cfg.Verify = func(u string) (string, error) { return auth.VerifyTURN(secret, u, time.Now()) }
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(t testing.TB, s *Server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.UDPAddr().String(), TURNServerAddr: s.UDPAddr().String(),
		Username: user, Password: pass, Realm: "p2pcast", Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// tcpClient is a TURN client over TCP, as RFC 6062 requires for TCP allocations.
func tcpClient(t *testing.T, s *Server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.Dial("tcp4", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.TCPAddr().String(), TURNServerAddr: s.TCPAddr().String(),
		Username: user, Password: pass, Realm: "p2pcast", Conn: turn.NewSTUNConn(conn),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func allocate(t testing.TB, c *turn.Client) net.PacketConn {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return relay
}

func credential(name string) (user, pass string) {
	return auth.TURNCredential(secret, name, time.Hour, time.Now())
}

// echoPeer is a UDP peer that sends back what it gets.
func echoPeer(t *testing.T) net.PacketConn {
	t.Helper()
	peer, err := net.ListenPacket("udp4", peerIP+":0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	t.Cleanup(func() { peer.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = peer.WriteTo(buf[:n], from)
		}
	}()
	return peer
}

func TestRelaysWithRESTCredentials(t *testing.T) {
	s := start(t, Config{Peers: loopbackLab})
	user, pass := credential("viewer:s1")
	c := client(t, s, user, pass)

	// STUN: the server reflects our address.
	mapped, err := c.SendBindingRequest()
	if err != nil || mapped.(*net.UDPAddr).IP.String() != "127.0.0.1" {
		t.Fatalf("binding: %v %v", mapped, err)
	}
	relay := allocate(t, c)
	if got := relay.LocalAddr().(*net.UDPAddr).IP; !got.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("relayed address %v, want the public IP", got)
	}

	// A permitted peer echoes what the relay sends it: the echo must come back through the relay,
	// first as Data indications, then (once the channel is bound) as ChannelData.
	peer := echoPeer(t)
	buf := make([]byte, 1500)
	for i := range 3 {
		msg := []byte("through the relay " + string(rune('a'+i)))
		if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := relay.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) || from.String() != peer.LocalAddr().String() {
			t.Fatalf("echo %d: %q from %v, %v", i, buf[:n], from, err)
		}
	}
	if s.AllocationCount() != 1 {
		t.Fatalf("%d allocations", s.AllocationCount())
	}
	if s.PeerRefusals() != 0 || s.BandwidthDrops() != 0 {
		t.Fatalf("refusals %d, drops %d", s.PeerRefusals(), s.BandwidthDrops())
	}
}

func TestRefusesBadCredentials(t *testing.T) {
	s := start(t, Config{})
	user, pass := credential("viewer:s1")
	expiredUser, expiredPass := auth.TURNCredential(secret, "viewer", time.Hour, time.Now().Add(-2*time.Hour))
	otherUser, otherPass := auth.TURNCredential([]byte("another secret"), "viewer", time.Hour, time.Now())
	for name, cred := range map[string][2]string{
		"wrong password": {user, pass + "x"},
		"expired":        {expiredUser, expiredPass},
		"other secret":   {otherUser, otherPass},
		"not REST":       {"alice", "secret"},
	} {
		c := client(t, s, cred[0], cred[1])
		if _, err := c.Allocate(); err == nil {
			t.Errorf("%s: allocation granted", name)
		}
	}
	if s.AuthFailures() == 0 {
		t.Error("refusals not counted")
	}
}

func TestRefusesNonGlobalPeersByDefault(t *testing.T) {
	var logs logtest.Buffer
	// A global public IP, so that refusing it proves the hub's own address is denied, not just
	// non-global.
	s := start(t, Config{PublicIP: net.IPv4(1, 2, 3, 4), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	user, pass := credential("viewer:s1")
	c := client(t, s, user, pass)
	self, err := c.SendBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	allocate(t, c)

	refused := []string{
		"10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", // private and shared networks
		"127.0.0.1", "127.0.0.2", "0.0.0.0", "169.254.169.254", "224.0.0.251", "255.255.255.255",
		"192.0.2.1",             // documentation
		"1.2.3.4",               // the hub's public IP
		s.UDPAddr().IP.String(), // the listening address
	}
	for _, ip := range refused {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 80})
		var te *stun.TurnError
		if !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeForbidden {
			t.Errorf("permission to %s: %v, want 403", ip, err)
		}
	}
	if got := s.PeerRefusals(); got != uint64(len(refused)) {
		t.Errorf("%d refusals counted, want %d", got, len(refused))
	}
	// The hub's neighbour on the internet is a peer like any other (nothing is sent to it).
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(1, 2, 3, 5), Port: 80}); err != nil {
		t.Errorf("permission to a global peer: %v", err)
	}

	// The log names the client and the refused peer, never the credential.
	out := logs.String()
	if !strings.Contains(out, "turn peer refused") || !strings.Contains(out, "peer=10.0.0.1") ||
		!strings.Contains(out, "class=private") || !strings.Contains(out, "remote="+self.String()) {
		t.Errorf("log lacks the refusal: %s", out)
	}
	if strings.Contains(out, pass) || strings.Contains(out, user) {
		t.Errorf("log holds the credential: %s", out)
	}
}

// rawRequest sends one authenticated request on c's socket (for requests the client API does
// not make, or makes differently) and returns the server's answer.
func rawRequest(t *testing.T, c *turn.Client, to net.Addr, user, pass string, setters ...stun.Setter) *stun.Message {
	t.Helper()
	// Unauthenticated first: the 401 carries the nonce.
	first := append([]stun.Setter{stun.TransactionID}, setters...)
	res, err := c.PerformTransaction(stun.MustBuild(first...), to, false)
	if err != nil {
		t.Fatal(err)
	}
	var nonce stun.Nonce
	if err := nonce.GetFrom(res.Msg); err != nil {
		t.Fatalf("no nonce in %v", res.Msg)
	}
	authed := append(append([]stun.Setter{stun.TransactionID}, setters...),
		stun.NewUsername(user), stun.NewRealm("p2pcast"), nonce,
		stun.NewLongTermIntegrity(user, "p2pcast", pass), stun.Fingerprint)
	res, err = c.PerformTransaction(stun.MustBuild(authed...), to, false)
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg
}

func errorCode(m *stun.Message) stun.ErrorCode {
	var code stun.ErrorCodeAttribute
	if m.Type.Class != stun.ClassErrorResponse || code.GetFrom(m) != nil {
		return 0
	}
	return code.Code
}

// xorPeer writes XOR-PEER-ADDRESS in the family of ip's length, so a 16-byte ::ffff:a.b.c.d
// goes out as IPv6 (the client API always sends an IPv4 address as IPv4).
type xorPeer struct {
	ip   net.IP
	port int
}

func (p xorPeer) AddTo(m *stun.Message) error {
	const magicCookie = 0x2112A442
	family := uint16(1)
	if len(p.ip) == net.IPv6len {
		family = 2
	}
	v := make([]byte, 4+len(p.ip))
	binary.BigEndian.PutUint16(v[0:2], family)
	binary.BigEndian.PutUint16(v[2:4], uint16(p.port)^magicCookie>>16)
	var key [16]byte
	binary.BigEndian.PutUint32(key[0:4], magicCookie)
	copy(key[4:], m.TransactionID[:])
	for i, b := range p.ip {
		v[4+i] = b ^ key[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

func TestRefusesChannelBindAndMappedPeers(t *testing.T) {
	s := start(t, Config{})
	user, pass := credential("viewer:s1")
	c := client(t, s, user, pass)
	allocate(t, c)

	// ChannelBind checks the peer like CreatePermission.
	res := rawRequest(t, c, s.UDPAddr(), user, pass,
		stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
		xorPeer{net.IPv4(10, 0, 0, 1).To4(), 5000}, attr{stun.AttrChannelNumber, []byte{0x40, 0, 0, 0}})
	if res.Type.Class != stun.ClassErrorResponse {
		t.Errorf("channel bind to 10.0.0.1: %v, want an error", res)
	}
	// ::ffff:10.0.0.1 is 10.0.0.1.
	res = rawRequest(t, c, s.UDPAddr(), user, pass,
		stun.NewType(stun.MethodCreatePermission, stun.ClassRequest),
		xorPeer{net.ParseIP("::ffff:10.0.0.1"), 5000})
	if got := errorCode(res); got != stun.CodeForbidden {
		t.Errorf("permission to ::ffff:10.0.0.1: %v, want 403", res)
	}
	if s.PeerRefusals() != 2 {
		t.Errorf("%d refusals, want 2", s.PeerRefusals())
	}
}

// attr is a raw attribute.
type attr struct {
	t stun.AttrType
	v []byte
}

func (a attr) AddTo(m *stun.Message) error {
	m.Add(a.t, a.v)
	return nil
}

func TestTCPAllocationsOffByDefault(t *testing.T) {
	s := start(t, Config{Peers: loopbackLab})
	user, pass := credential("viewer:s1")
	c := tcpClient(t, s, user, pass)
	if a, err := c.AllocateTCP(); err == nil {
		a.Close()
		t.Fatal("TCP allocation granted")
	}
	if s.AllocationRefusals() != 1 {
		t.Errorf("%d allocation refusals, want 1", s.AllocationRefusals())
	}

	// pion/turn takes Connect on a UDP allocation too: that must not open a TCP connection.
	l := tcpPeer(t)
	u := client(t, s, user, pass)
	allocate(t, u)
	peer := l.Addr().(*net.TCPAddr)
	res := rawRequest(t, u, s.UDPAddr(), user, pass,
		stun.NewType(stun.MethodConnect, stun.ClassRequest), xorPeer{peer.IP.To4(), peer.Port})
	if res.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("Connect on a UDP allocation: %v, want an error", res)
	}
	if s.AllocationRefusals() != 2 {
		t.Errorf("%d allocation refusals, want 2", s.AllocationRefusals())
	}
}

// tcpPeer is a TCP peer on 127.0.0.2 that echoes each connection.
func tcpPeer(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", peerIP+":0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	return l
}

func TestTCPAllocationsWhenOn(t *testing.T) {
	s := start(t, Config{Peers: loopbackLab, TCPAllocations: true})
	user, pass := credential("device:cam1")
	c := tcpClient(t, s, user, pass)
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alloc.Close() })

	// A permitted peer: the relay connects, data flows both ways.
	peer := tcpPeer(t)
	conn, err := alloc.Dial("tcp4", peer.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("hello peer\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello peer\n" {
		t.Fatalf("echo over the TCP relay: %q, %v", line, err)
	}

	// The hub's own HTTP port on its own address stays out of reach, even with loopback allowed.
	hub, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := hub.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	if c, err := alloc.Dial("tcp4", hub.Addr().String()); err == nil {
		c.Close()
		t.Fatal("TCP relay to the hub itself connected")
	}
	if s.PeerRefusals() == 0 {
		t.Error("refusal not counted")
	}
	select {
	case <-accepted:
		t.Error("the hub's port got a connection")
	default:
	}
}

func TestAllocationQuota(t *testing.T) {
	released := make(chan string, 16)
	s := start(t, Config{Peers: loopbackLab, MaxAllocationsPerUser: 2, onRelease: func(name string) {
		select {
		case released <- name:
		default:
		}
	}})
	// Two credentials of one name (different expiries) share the quota.
	u1, p1 := auth.TURNCredential(secret, "device:cam1", time.Hour, time.Now())
	u2, p2 := auth.TURNCredential(secret, "device:cam1", 2*time.Hour, time.Now())
	first := allocate(t, client(t, s, u1, p1))
	allocate(t, client(t, s, u2, p2))
	if _, err := client(t, s, u1, p1).Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("third allocation of one user: %v, want 486", err)
	}
	if s.AllocationRefusals() != 1 {
		t.Errorf("%d refusals, want 1", s.AllocationRefusals())
	}
	// Another user is not affected.
	other, otherPass := credential("device:cam2")
	allocate(t, client(t, s, other, otherPass))

	// A released allocation makes room.
	first.Close()
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case name := <-released:
			done = name == "device:cam1"
		case <-timeout:
			t.Fatal("the closed allocation was not released")
		}
	}
	allocate(t, client(t, s, u1, p1))
}

func TestBandwidthQuota(t *testing.T) {
	const rate = 200_000 // bits/s: 25 kB/s, a 16 KiB burst
	s := start(t, Config{Peers: loopbackLab, UserBandwidth: rate})
	user, pass := credential("device:cam1")
	relay := allocate(t, client(t, s, user, pass))

	// The peer counts data until a marker arrives: by then the server has handled every
	// data packet sent before it (one read loop, in order).
	peer, err := net.ListenPacket("udp4", peerIP+":0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	defer peer.Close()
	got := make(chan int, 1)
	go func() {
		received := 0
		buf := make([]byte, 1500)
		for {
			n, _, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			if buf[0] == 'M' {
				got <- received
				return
			}
			received += n
		}
	}()

	const packets, size = 1000, 1000
	data := bytes.Repeat([]byte{'D'}, size)
	begin := time.Now()
	for range packets {
		if _, err := relay.WriteTo(data, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	var received int
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
wait:
	for {
		if _, err := relay.WriteTo([]byte("M"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		select {
		case received = <-got:
			break wait
		case <-tick.C: // the marker itself may have been over the limit: send another
		case <-deadline:
			t.Fatal("no marker through the relay")
		}
	}
	elapsed := time.Since(begin)

	sent := packets * size
	bound := 16<<10 + rate/8*elapsed.Seconds() + size
	t.Logf("%d of %d bytes relayed in %v (bound %.0f), %d packets dropped", received, sent, elapsed, bound, s.BandwidthDrops())
	if received == 0 || float64(received) > bound {
		t.Errorf("%d bytes relayed, want some and at most %.0f", received, bound)
	}
	if ratio := float64(received) / float64(sent); ratio > 0.25 {
		t.Errorf("%.0f%% of a 1 MB burst relayed at 25 kB/s", 100*ratio)
	}
	if s.BandwidthDrops() == 0 {
		t.Error("drops not counted")
	}
}

func TestRelaysOverTLS(t *testing.T) {
	cert := selfSigned(t)
	s, err := Start(Config{
		PublicIP: net.IPv4(127, 0, 0, 1), ListenIP: net.IPv4(127, 0, 0, 1), Port: -1, TLSPort: -1,
		TLS:    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Verify: func(u string) (string, error) { return auth.VerifyTURN(secret, u, time.Now()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.TLSAddr() == nil {
		t.Fatal("no TLS listener")
	}
	conn, err := tls.Dial("tcp", s.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own self-signed certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	user, pass := credential("viewer:s1")
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.TLSAddr().String(), TURNServerAddr: s.TLSAddr().String(),
		Username: user, Password: pass, Realm: "p2pcast", Conn: turn.NewSTUNConn(conn),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocation over TLS: %v", err)
	}
	relay.Close()
}

func TestPolicyDeniesTheHub(t *testing.T) {
	s := start(t, Config{PublicIP: net.IPv4(1, 2, 3, 4), Peers: ipclass.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}})
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1.2.3.4", "127.0.0.1", "0.0.0.0", "::"}
	for _, a := range addrs {
		want = append(want, a.(*net.IPNet).IP.String())
	}
	p := s.Peers()
	for _, ip := range want {
		if p.Permits(netip.MustParseAddr(ip)) {
			t.Errorf("policy permits the hub's own %s", ip)
		}
	}
	if !p.Permits(netip.MustParseAddr("10.9.9.9")) {
		t.Error("allowed range refused")
	}
}

func TestStartRefusesBadQuotas(t *testing.T) {
	for _, cfg := range []Config{{MaxAllocationsPerUser: -1}, {UserBandwidth: -1}} {
		cfg.PublicIP = net.IPv4(127, 0, 0, 1)
		cfg.Verify = func(string) (string, error) { return "", nil }
		if s, err := Start(cfg); !errors.Is(err, ErrConfig) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%+v: %v, want ErrConfig", cfg, err)
		}
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turn.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Packets from an address without a permission are dropped before they reach the user's
// bandwidth budget, so a stranger flooding a relay port cannot starve its user.
func TestStrangersDoNotSpendTheBudget(t *testing.T) {
	s := start(t, Config{Peers: loopbackLab, UserBandwidth: 200_000}) // a 16 KiB burst
	user, pass := credential("device:cam1")
	c := client(t, s, user, pass)
	relay := allocate(t, c)
	peer := echoPeer(t)
	if err := c.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	stranger, err := net.ListenPacket("udp4", "127.0.0.3:0")
	if err != nil {
		t.Skipf("no third loopback address here: %v", err)
	}
	defer stranger.Close()
	junk := make([]byte, 1000)
	for range 64 { // four bursts' worth
		if _, err := stranger.WriteTo(junk, relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	msg := []byte("still through")
	if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := relay.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("echo after a stranger's flood: %q, %v", buf[:n], err)
	}
	if s.BandwidthDrops() != 0 {
		t.Errorf("%d packets dropped for bandwidth", s.BandwidthDrops())
	}
}
