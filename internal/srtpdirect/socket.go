// Package srtpdirect writes a session's SRTP and reads its SRTCP on the device's shared UDP
// socket itself, below Pion's per-packet stack, for sessions whose ICE pair is on that socket.
//
// Pion sends each RTP packet through an interceptor chain, its SRTP session, the DTLS mux, the
// ICE connection and the UDP mux before it reaches the socket, and hands each received RTCP
// packet through four goroutines before its SRTCP session decrypts it, splits it, marshals each
// report again and writes it to a buffer per SSRC. At 300 viewers that machinery was a third
// of the device's CPU per packet sent (docs/performance.md, "300 viewers on loopback"). Here a
// packet is encrypted and queued on the socket by the writer's goroutine, and a report is
// decrypted and handed to its session in the socket's reader.
//
// Pion keeps everything else: ICE, DTLS, SCTP, sender reports, and every session whose pair is
// not on the socket (TURN, ICE-TCP). pion/webrtc does not expose a session's SRTP keys, so they
// are derived the way Pion derives them (RFC 5764's exporter) from what Pion does expose: the
// handshake's master secret through a per-session DTLS key log writer (kept in memory, never
// written anywhere), and the two hello randoms, cipher suite and SRTP profile from the
// handshake's clear-text hellos as they pass the socket. Nothing is sent with the derived keys
// until they have decrypted a report from the viewer: keys that do not (a hello that was not
// seen, a spoofed one) turn the session's direct path off and Pion carries it as before.
package srtpdirect

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is the shared socket: what Pion's UDP mux reads and writes (udpbatch.Conn).
type Conn interface {
	net.PacketConn
	ReadFromAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// conn is Conn under a name that does not export the Socket's embedded field.
type conn = Conn

// maxHandshakes bounds the hellos kept for handshakes whose key log line has not come yet
// (the oldest go first): anyone can send a ClientHello to the socket.
const maxHandshakes = 1024

// handshakeAge is how long a handshake's hellos wait for their key log line.
const handshakeAge = 30 * time.Second

// Socket wraps the shared socket for Pion's UDP mux (give it to webrtc.NewICEUDPMux): it notes
// the DTLS hellos that pass, and takes the SRTCP of sessions with a direct path.
type Socket struct {
	// conn is the socket: its Close, LocalAddr and deadline setters are the Socket's.
	conn

	mu      sync.Mutex
	pending map[netip.AddrPort]*pendingHandshake // by the peer's address
	order   []netip.AddrPort                     // pending's keys, oldest first
	paths   atomic.Pointer[map[netip.AddrPort]*Path]

	stats struct {
		sent, sentBytes, taken, verified, failed atomic.Uint64
	}
}

type pendingHandshake struct {
	handshake
	at time.Time
}

// NewSocket wraps c.
func NewSocket(c Conn) *Socket {
	s := &Socket{conn: c, pending: map[netip.AddrPort]*pendingHandshake{}}
	s.paths.Store(&map[netip.AddrPort]*Path{})
	return s
}

// Stats counts what went the direct way. Counters only grow.
type Stats struct {
	Packets  uint64 `json:"packets"`  // SRTP packets written directly
	Bytes    uint64 `json:"bytes"`    // their bytes on the wire
	Reports  uint64 `json:"reports"`  // SRTCP packets read directly
	Verified uint64 `json:"verified"` // sessions whose derived keys decrypted the viewer's first report
	Failed   uint64 `json:"failed"`   // sessions whose derived keys did not (Pion carried them)
}

// Stats returns the counters.
func (s *Socket) Stats() Stats {
	return Stats{Packets: s.stats.sent.Load(), Bytes: s.stats.sentBytes.Load(), Reports: s.stats.taken.Load(),
		Verified: s.stats.verified.Load(), Failed: s.stats.failed.Load()}
}

// ReadFromAddrPort reads the next packet that is Pion's: a direct session's SRTCP is taken on
// the way.
func (s *Socket) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := s.conn.ReadFromAddrPort(b)
		if err != nil || !s.take(b[:n], addr) {
			return n, addr, err
		}
	}
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (s *Socket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := s.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// WriteToAddrPort writes b to addr, noting a DTLS hello.
func (s *Socket) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if len(b) > 0 && b[0] == contentHandshake {
		s.noteHello(b, addr, true)
	}
	return s.conn.WriteToAddrPort(b, addr)
}

// WriteTo is WriteToAddrPort for a net.Addr.
func (s *Socket) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok && len(b) > 0 && b[0] == contentHandshake {
		s.noteHello(b, ua.AddrPort(), true)
	}
	return s.conn.WriteTo(b, addr)
}

// Port is the socket's UDP port.
func (s *Socket) Port() int {
	if ua, ok := s.conn.LocalAddr().(*net.UDPAddr); ok {
		return ua.Port
	}
	return 0
}

// key is an address as a map key: IPv4 peers of a dual-stack socket read as IPv4-mapped IPv6.
func key(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// take handles a received packet that is not Pion's; false: it is.
func (s *Socket) take(b []byte, addr netip.AddrPort) bool {
	switch {
	case len(b) == 0:
		return false
	case b[0] == contentHandshake:
		s.noteHello(b, addr, false)
		return false
	case isRTCP(b):
		if p := (*s.paths.Load())[key(addr)]; p != nil {
			return p.takeRTCP(b)
		}
	}
	return false
}

// isRTCP says whether b is an RTCP packet by RFC 5761's demultiplexing rule (version 2, packet
// type 192–223) and RFC 7983's first-byte ranges.
func isRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

// noteHello keeps the hellos of the handshake with addr. out: this side sent b.
func (s *Socket) noteHello(b []byte, addr netip.AddrPort, out bool) {
	h, ok := findHello(b)
	if !ok {
		return
	}
	addr = key(addr)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[addr]
	if !h.server {
		if p != nil && p.client == h.random && p.localIsClient == out {
			return // a ClientHello sent again (with the server's cookie): the same handshake
		}
		if p == nil {
			s.evictLocked(now)
			s.order = append(s.order, addr)
		}
		s.pending[addr] = &pendingHandshake{handshake: handshake{client: h.random, localIsClient: out}, at: now}
		return
	}
	// The ServerHello answers the ClientHello that went the other way.
	if p == nil || p.localIsClient == out {
		return
	}
	p.server, p.haveServer, p.suite, p.profile = h.random, true, h.suite, h.profile
}

// evictLocked makes room for one more handshake: the stale ones go, and the oldest when full.
func (s *Socket) evictLocked(now time.Time) {
	drop := 0
	for drop < len(s.order) {
		p := s.pending[s.order[drop]]
		if p != nil && now.Sub(p.at) < handshakeAge && len(s.order)-drop < maxHandshakes {
			break
		}
		delete(s.pending, s.order[drop])
		drop++
	}
	s.order = append(s.order[:0], s.order[drop:]...)
}

// handshakeFor returns (and forgets) the handshake whose ClientHello carried random.
func (s *Socket) handshakeFor(random [randomLen]byte) (handshake, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, addr := range s.order {
		p := s.pending[addr]
		if p == nil || p.client != random {
			continue
		}
		delete(s.pending, addr)
		s.order = append(s.order[:i], s.order[i+1:]...)
		return p.handshake, p.haveServer
	}
	return handshake{}, false
}
