package turnserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/p2pcast/p2pcast/internal/auth"
)

var secret = []byte("test-secret-0123456789")

func start(t *testing.T, allow func(net.IP) bool) *Server {
	t.Helper()
	s, err := Start(Config{
		PublicIP: net.IPv4(127, 0, 0, 1), ListenIP: net.IPv4(127, 0, 0, 1), Port: freeUDPPort(t),
		Verify:    func(u string) (string, error) { return auth.VerifyTURN(secret, u, time.Now()) },
		AllowPeer: allow,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func client(t *testing.T, s *Server, user, pass string) *turn.Client {
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

func TestRelaysWithRESTCredentials(t *testing.T) {
	s := start(t, func(net.IP) bool { return true }) // the peer is on loopback in this test
	user, pass := auth.TURNCredential(secret, "viewer", time.Hour, time.Now())
	c := client(t, s, user, pass)

	// STUN: the server reflects our address.
	mapped, err := c.SendBindingRequest()
	if err != nil || mapped.(*net.UDPAddr).IP.String() != "127.0.0.1" {
		t.Fatalf("binding: %v %v", mapped, err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if got := relay.LocalAddr().(*net.UDPAddr).IP; !got.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("relayed address %v, want the public IP", got)
	}

	// A peer echoes what the relay sends it; the echo must come back through the relay.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
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
	msg := []byte("through the relay")
	if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := relay.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) || from.String() != peer.LocalAddr().String() {
		t.Fatalf("echo: %q from %v, %v", buf[:n], from, err)
	}
	if s.AllocationCount() != 1 {
		t.Fatalf("%d allocations", s.AllocationCount())
	}
}

func TestRefusesBadCredentials(t *testing.T) {
	s := start(t, nil)
	user, pass := auth.TURNCredential(secret, "viewer", time.Hour, time.Now())
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

func TestRefusesLoopbackPeersByDefault(t *testing.T) {
	s := start(t, nil)
	user, pass := auth.TURNCredential(secret, "viewer", time.Hour, time.Now())
	c := client(t, s, user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}); err == nil {
		t.Fatal("permission to relay to the hub's own loopback granted")
	}
}

func TestDefaultAllowPeer(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": false, "0.0.0.0": false, "169.254.1.1": false, "224.0.0.251": false, "::1": false,
		"100.64.0.2": true, "10.0.1.2": true, "203.0.113.9": true, "2001:db8::1": true,
	} {
		if got := DefaultAllowPeer(net.ParseIP(ip)); got != want {
			t.Errorf("%s: %v, want %v", ip, got, want)
		}
	}
}

func TestRelaysOverTLS(t *testing.T) {
	cert := selfSigned(t)
	s, err := Start(Config{
		PublicIP: net.IPv4(127, 0, 0, 1), ListenIP: net.IPv4(127, 0, 0, 1), Port: freeUDPPort(t), TLSPort: freeTCPPort(t),
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Verify:    func(u string) (string, error) { return auth.VerifyTURN(secret, u, time.Now()) },
		AllowPeer: func(net.IP) bool { return true },
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
	user, pass := auth.TURNCredential(secret, "viewer", time.Hour, time.Now())
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

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
