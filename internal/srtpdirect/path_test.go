package srtpdirect

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// udpConn gives a *net.UDPConn the AddrPort methods Conn names.
type udpConn struct{ *net.UDPConn }

func (c udpConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(b)
}

func (c udpConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, addr)
}

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// peerKeys are the SRTP keys pion/dtls itself exports for one end of a handshake, as
// pion/webrtc keys its SRTP session with them.
func peerKeys(t *testing.T, c *dtls.Conn, client bool, profile srtp.ProtectionProfile) (enc, dec *srtp.Context) {
	t.Helper()
	state, ok := c.ConnectionState()
	if !ok {
		t.Fatal("no connection state")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		t.Fatal(err)
	}
	var err error
	if enc, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile); err != nil {
		t.Fatal(err)
	}
	if dec, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile); err != nil {
		t.Fatal(err)
	}
	return enc, dec
}

// handshakeThrough runs a DTLS handshake between a pion/dtls end on a Socket (its key log
// going to a path) and a plain pion/dtls peer, and returns the path (its viewer's SRTCP routed
// to it), the peer's own SRTP contexts and the viewer's socket the path now leads to.
func handshakeThrough(t *testing.T, socketIsClient bool, suite dtls.CipherSuiteID, profile dtls.SRTPProtectionProfile) (*Socket, *Path, *[][]byte, *srtp.Context, *srtp.Context, *net.UDPConn) {
	t.Helper()
	a, b := listen(t), listen(t)
	sock := NewSocket(udpConn{a})
	var reports [][]byte
	path := sock.NewPath(func(r []byte) bool {
		reports = append(reports, bytes.Clone(r))
		return true
	})
	opts := func(more ...dtls.Option) []dtls.Option {
		cert, err := selfsign.GenerateSelfSigned()
		if err != nil {
			t.Fatal(err)
		}
		return append(more, dtls.WithCertificates(cert), dtls.WithInsecureSkipVerify(true),
			dtls.WithSRTPProtectionProfiles(profile), dtls.WithCipherSuites(suite),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret))
	}
	// start makes one end on conn, towards peer, in the role asked.
	start := func(client bool, conn net.PacketConn, peer net.Addr, o []dtls.Option) (*dtls.Conn, error) {
		if client {
			return dtls.ClientWithOptions(conn, peer, options[dtls.ClientOption](o)...)
		}
		return dtls.ServerWithOptions(conn, peer, options[dtls.ServerOption](o)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *dtls.Conn
		err error
	}
	peerDone := make(chan result, 1)
	go func() {
		c, err := start(!socketIsClient, udpConn{b}, a.LocalAddr(), opts())
		if err == nil {
			err = c.HandshakeContext(ctx)
		}
		peerDone <- result{c, err}
	}()
	local, err := start(socketIsClient, sock, b.LocalAddr(), opts(dtls.WithKeyLogWriter(path.KeyLog())))
	if err == nil {
		err = local.HandshakeContext(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := <-peerDone
	if r.err != nil {
		t.Fatal(r.err)
	}
	peer := r.c
	t.Cleanup(func() { local.Close(); peer.Close() })
	enc, dec := peerKeys(t, peer, !socketIsClient, srtp.ProtectionProfile(profile))
	// The viewer's end for the SRTP that follows: a socket of its own, since the DTLS peer
	// keeps reading b.
	viewer := listen(t)
	path.SetRemote(viewer.LocalAddr().(*net.UDPAddr).AddrPort())
	return sock, path, &reports, enc, dec, viewer
}

// The keys a path derives are the ones pion/dtls exports, for either role, suite and profile:
// the peer's report decrypts with them (and then reaches the session), and what the path
// encrypts decrypts with the peer's keys.
func TestDerivedKeysAreTheHandshakes(t *testing.T) {
	cases := []struct {
		name           string
		socketIsClient bool
		suite          dtls.CipherSuiteID
		profile        dtls.SRTPProtectionProfile
	}{
		{"client GCM", true, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM},
		{"server GCM", false, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM},
		{"client SHA-384 suite, AES-256", true, dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.SRTP_AEAD_AES_256_GCM},
		{"server CM-HMAC", false, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sock, path, reports, peerEnc, peerDec, b := handshakeThrough(t, c.socketIsClient, c.suite, c.profile)
			if got := path.state.Load(); got != stateKeyed {
				t.Fatalf("state %d after the handshake, want keyed", got)
			}
			// Before a report proves the keys, nothing goes directly.
			pion := &recorder{}
			w := path.Writer(pion)
			h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 1234, SequenceNumber: 65534, Timestamp: 1}
			if _, err := w.WriteRTP(h, []byte("first")); err != nil || pion.n != 1 {
				t.Fatalf("first packet: err %v, through Pion %d", err, pion.n)
			}
			report := &rtcp.ReceiverReport{SSRC: 77, Reports: []rtcp.ReceptionReport{{SSRC: 1234, LastSequenceNumber: 9}}}
			plain, _ := report.Marshal()
			enc, err := peerEnc.EncryptRTCP(nil, plain, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !sock.take(enc, b.LocalAddr().(*net.UDPAddr).AddrPort()) {
				t.Fatal("the peer's report was not taken")
			}
			if len(*reports) != 1 || !bytes.Equal((*reports)[0], plain) {
				t.Fatalf("reports %x, want %x", *reports, plain)
			}
			if !path.direct() {
				t.Fatal("not direct after a report decrypted")
			}
			// Now direct: sent on the socket, readable with the peer's keys, across a
			// sequence number wrap.
			for i, payload := range []string{"second", "third"} {
				h.SequenceNumber++
				if _, err := w.WriteRTP(h, []byte(payload)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 1500)
				_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := b.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				var got rtp.Header
				dec, err := peerDec.DecryptRTP(nil, buf[:n], &got)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if string(dec[got.MarshalSize():]) != payload || got.SequenceNumber != h.SequenceNumber {
					t.Fatalf("packet %d: %q seq %d", i, dec[got.MarshalSize():], got.SequenceNumber)
				}
			}
			if pion.n != 1 || sock.Stats().Packets != 2 || sock.Stats().Verified != 1 {
				t.Fatalf("through Pion %d, stats %+v", pion.n, sock.Stats())
			}
		})
	}
}

// Once direct, one packet of each stream in pionRefresh still goes through Pion, so that Pion's
// context keeps the stream's rollover counter should the pair leave the socket.
func TestPionSeesEveryStreamNowAndThen(t *testing.T) {
	sock, path, _, peerEnc, _, viewer := handshakeThrough(t, true, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM)
	plain, _ := (&rtcp.PictureLossIndication{MediaSSRC: 1}).Marshal()
	enc, err := peerEnc.EncryptRTCP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock.take(enc, viewer.LocalAddr().(*net.UDPAddr).AddrPort())
	if !path.direct() {
		t.Fatal("not direct")
	}
	_ = viewer.SetReadBuffer(64 << 10) // nobody reads it: the kernel drops what overflows
	pion := &recorder{}
	w := path.Writer(pion)
	const n = 3*pionRefresh + 10
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 5, SequenceNumber: 60000}
	for range n {
		if _, err := w.WriteRTP(h, []byte("x")); err != nil {
			t.Fatal(err)
		}
		h.SequenceNumber++
	}
	// The first (Pion's context learns the stream) and one every pionRefresh after it.
	if pion.n != 4 || sock.Stats().Packets != n-4 {
		t.Fatalf("through Pion %d, direct %d of %d", pion.n, sock.Stats().Packets, n)
	}
}

// Keys that do not decrypt the viewer's first report turn the path off: Pion keeps it all.
func TestWrongKeysLeaveThePathToPion(t *testing.T) {
	sock, path, reports, _, _, b := handshakeThrough(t, true, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM)
	other, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := (&rtcp.PictureLossIndication{MediaSSRC: 1234}).Marshal()
	enc, err := other.EncryptRTCP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sock.take(enc, b.LocalAddr().(*net.UDPAddr).AddrPort()) {
		t.Fatal("a report that does not decrypt was taken")
	}
	if path.state.Load() != stateOff || len(*reports) != 0 || sock.Stats().Failed != 1 {
		t.Fatalf("state %d, reports %d, stats %+v", path.state.Load(), len(*reports), sock.Stats())
	}
	pion := &recorder{}
	w := path.Writer(pion)
	for i := range 3 {
		if _, err := w.WriteRTP(&rtp.Header{Version: 2, SSRC: 1, SequenceNumber: uint16(i)}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if pion.n != 3 || sock.Stats().Packets != 0 {
		t.Fatalf("through Pion %d of 3, direct %d", pion.n, sock.Stats().Packets)
	}
}

// A stream's index follows sequence-number wraps and late packets (RFC 3711 §3.3.1).
func TestStreamIndex(t *testing.T) {
	var x streamIndex
	seqs := []uint16{65530, 65535, 0, 3, 65533, 10}
	want := []uint64{65530, 65535, 65536, 65539, 65533, 65546}
	for i, s := range seqs {
		if got := x.index(s, i == 0); got != want[i] {
			t.Fatalf("seq %d: index %d, want %d", s, got, want[i])
		}
	}
	if x.highest != 65546 {
		t.Fatalf("highest %d", x.highest)
	}
}

// options turns shared DTLS options into a client's or a server's.
func options[T any](o []dtls.Option) []T {
	out := make([]T, len(o))
	for i := range o {
		out[i] = any(o[i]).(T)
	}
	return out
}

type recorder struct{ n int }

func (r *recorder) WriteRTP(*rtp.Header, []byte) (int, error) { r.n++; return 0, nil }
func (r *recorder) Write([]byte) (int, error)                 { r.n++; return 0, nil }
