package srtpdirect

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// A path's states. Only a verified path sends; keyed and verified ones read their SRTCP.
const (
	stateWaiting  int32 = iota // no keys yet
	stateKeyed                 // keys derived, not yet proven by a report from the viewer
	stateVerified              // keys proven: SRTP goes directly
	stateOff                   // no direct path for this session (Pion carries everything)
)

// pionRefresh: one packet in this many of each stream still goes through Pion, so that Pion's
// own SRTP context, which guesses each stream's rollover counter from the sequence numbers it
// sees, always sees them less than half the sequence space apart (RFC 3711 §3.3.1) and can
// take the stream over again if the pair leaves the socket.
const pionRefresh = 1 << 14

// maxStreams bounds the SSRCs a path tracks (a session sends video, its retransmissions and
// audio); packets of any other go through Pion.
const maxStreams = 8

// maxPacket is the largest packet written directly (larger ones go through Pion).
const maxPacket = 1500

// Writer is what a track writes RTP through (webrtc.TrackLocalWriter).
type Writer interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
	Write(b []byte) (int, error)
}

// Path is one session's direct way to its viewer, on the socket it was made from.
type Path struct {
	s     *Socket
	take  func(report []byte) bool
	state atomic.Int32

	mu      sync.Mutex // the sending side
	enc     *srtp.Context
	remote  netip.AddrPort // the viewer, while the session's ICE pair is on the socket
	streams [maxStreams]streamIndex
	nstream int
	buf     []byte
	hdr     rtp.Header

	decMu sync.Mutex // the receiving side: the socket's reader
	dec   *srtp.Context
	plain []byte
}

// streamIndex follows one SSRC's packet index (RFC 3711: rollover counter and sequence
// number) over everything written, directly or through Pion.
type streamIndex struct {
	ssrc    uint32
	highest uint64 // highest index written
	pion    uint64 // index of the last packet Pion wrote
	pionAny bool   // Pion wrote one
	// own is the highest index the path's context encrypted (ownAny: it encrypted one): within
	// a quarter of the sequence space of it, the context's own guess of the rollover counter
	// is this index's, so it is not set again for each packet.
	own    uint64
	ownAny bool
}

// index estimates seq's index from the highest so far (RFC 3711 §3.3.1).
func (x *streamIndex) index(seq uint16, first bool) uint64 {
	if first {
		x.highest = uint64(seq)
		return x.highest
	}
	i := int64(x.highest) + int64(int16(seq-uint16(x.highest)))
	if i < 0 {
		i = int64(seq) // before the stream's first packet: not sent by this side
	}
	if uint64(i) > x.highest {
		x.highest = uint64(i)
	}
	return uint64(i)
}

// NewPath makes a session's path. take gets each of the viewer's SRTCP packets, decrypted (a
// compound packet, only valid during the call); it returns false to have Pion read the packet
// instead.
func (s *Socket) NewPath(take func(report []byte) bool) *Path {
	return &Path{s: s, take: take, buf: make([]byte, maxPacket+64), plain: make([]byte, maxPacket+64)}
}

// KeyLog is the session's DTLS key log writer (webrtc.SettingEngine.SetDTLSKeyLogWriter):
// the handshake's master secret arrives there, and nowhere else.
func (p *Path) KeyLog() *KeyLog { return &KeyLog{p: p} }

// KeyLog takes a DTLS key log line; it keeps nothing but the keys it derives.
type KeyLog struct{ p *Path }

// Write derives the session's SRTP keys from a key log line and the handshake's hellos. It
// never fails: a line it cannot use leaves the session to Pion.
func (k *KeyLog) Write(line []byte) (int, error) {
	k.p.keys(line)
	return len(line), nil
}

func (p *Path) keys(line []byte) {
	if p.state.Load() != stateWaiting {
		return // a second handshake (renegotiated DTLS): Pion's
	}
	random, master, err := parseKeyLog(line)
	if err != nil {
		p.state.Store(stateOff)
		return
	}
	defer clear(master)
	hs, ok := p.s.handshakeFor(random)
	if !ok {
		p.state.Store(stateOff) // the handshake did not pass the socket (TURN, ICE-TCP)
		return
	}
	enc, dec, err := contexts(master, &hs)
	if err != nil {
		p.state.Store(stateOff)
		return
	}
	p.mu.Lock()
	p.enc = enc
	p.mu.Unlock()
	p.decMu.Lock()
	p.dec = dec
	p.decMu.Unlock()
	p.state.CompareAndSwap(stateWaiting, stateKeyed)
}

// SetRemote says where the session's ICE pair leads now: addr when its local end is the
// socket, an invalid AddrPort when it is not (a relay, TCP) or no pair is selected.
func (p *Path) SetRemote(addr netip.AddrPort) {
	if p.state.Load() == stateOff {
		addr = netip.AddrPort{}
	}
	p.mu.Lock()
	p.remote = addr
	p.mu.Unlock()
	p.s.move(p, addr)
}

// Close ends the path.
func (p *Path) Close() {
	p.state.Store(stateOff)
	p.SetRemote(netip.AddrPort{})
}

// direct says whether the path sends directly now.
func (p *Path) direct() bool {
	if p.state.Load() != stateVerified {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remote.IsValid()
}

// takeRTCP decrypts a report from the viewer with the derived keys and hands it to the
// session; false: Pion reads it.
func (p *Path) takeRTCP(b []byte) bool {
	state := p.state.Load()
	if state != stateKeyed && state != stateVerified {
		return false
	}
	p.decMu.Lock()
	defer p.decMu.Unlock()
	plain, err := p.dec.DecryptRTCP(p.plain[:0], b, nil)
	if err != nil {
		if state == stateKeyed {
			// The first report did not decrypt: the keys are not the session's (a hello
			// missed or spoofed). Nothing was sent with them; Pion keeps the session.
			if p.state.CompareAndSwap(stateKeyed, stateOff) {
				p.s.stats.failed.Add(1)
				p.s.move(p, netip.AddrPort{})
			}
		}
		return false // Pion's to judge (a replay, a forgery): it drops it too
	}
	if cap(plain) > cap(p.plain) {
		p.plain = plain[:0]
	}
	if p.state.CompareAndSwap(stateKeyed, stateVerified) {
		p.s.stats.verified.Add(1)
	}
	if !p.take(plain) {
		return false
	}
	p.s.stats.taken.Add(1)
	return true
}

// Writer returns a writer that sends through the path while it is direct and through pion
// otherwise.
func (p *Path) Writer(pion Writer) Writer { return &writer{p: p, pion: pion} }

type writer struct {
	p    *Path
	pion Writer
}

func (w *writer) Write(b []byte) (int, error) { return w.pion.Write(b) }

var errEncrypt = errors.New("srtpdirect: encrypt")

func (w *writer) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	x, first := p.streamLocked(h.SSRC)
	if x == nil {
		p.mu.Unlock()
		return w.pion.WriteRTP(h, payload)
	}
	index := x.index(h.SequenceNumber, first)
	size := h.MarshalSize() + len(payload)
	if p.state.Load() != stateVerified || !p.remote.IsValid() || h.PaddingSize != 0 || size > maxPacket ||
		!x.pionAny || index-x.pion >= pionRefresh {
		if index > x.pion || !x.pionAny {
			x.pion, x.pionAny = index, true
		}
		p.mu.Unlock()
		return w.pion.WriteRTP(h, payload)
	}
	n, err := p.sendLocked(h, payload, size, x, index)
	p.mu.Unlock()
	return n, err
}

// streamLocked finds (or starts following) ssrc; nil when the path follows too many.
func (p *Path) streamLocked(ssrc uint32) (*streamIndex, bool) {
	for i := range p.nstream {
		if p.streams[i].ssrc == ssrc {
			return &p.streams[i], false
		}
	}
	if p.nstream == maxStreams {
		return nil, false
	}
	x := &p.streams[p.nstream]
	p.nstream++
	*x = streamIndex{ssrc: ssrc}
	return x, true
}

// sendLocked encrypts the packet with the rollover counter of its index (x's) and queues it on
// the socket for the viewer.
func (p *Path) sendLocked(h *rtp.Header, payload []byte, size int, x *streamIndex, index uint64) (int, error) {
	n, err := h.MarshalTo(p.buf)
	if err != nil {
		return 0, err
	}
	copy(p.buf[n:], payload)
	if !x.ownAny || index-x.own+pionRefresh >= 2*pionRefresh {
		p.enc.SetROC(h.SSRC, uint32(index>>16))
	}
	out, err := p.enc.EncryptRTP(p.buf, p.buf[:size], &p.hdr)
	if err != nil {
		return 0, errors.Join(errEncrypt, err)
	}
	if index > x.own || !x.ownAny {
		x.own, x.ownAny = index, true
	}
	if cap(out) > cap(p.buf) {
		p.buf = out[:cap(out)]
	}
	if _, err := p.s.conn.WriteToAddrPort(out, p.remote); err != nil {
		return 0, err
	}
	p.s.stats.sent.Add(1)
	p.s.stats.sentBytes.Add(uint64(len(out)))
	return size, nil
}

// move routes p's SRTCP from addr (invalid: from nowhere). A path has one address at most.
// Copy on write: the reader looks the address up for every RTCP packet without a lock.
func (s *Socket) move(p *Path, addr netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.paths.Load()
	next := make(map[netip.AddrPort]*Path, len(cur)+1)
	for a, q := range cur {
		if q != p {
			next[a] = q
		}
	}
	if addr.IsValid() {
		next[key(addr)] = p
	}
	s.paths.Store(&next)
}
