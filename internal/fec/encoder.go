package fec

import (
	"crypto/subtle"
	"encoding/binary"
)

// Encoder protects a group of consecutive media packets of one SSRC with up to MaxFEC ULPFEC
// packets. Packet i of the group (in sequence order) is covered by FEC packet i mod n, so the
// FEC packets interleave and any n consecutive losses in a group are recoverable, one per FEC
// packet. Each FEC packet is accumulated as packets are added: FEC only copies it out.
//
// An Encoder is about 25 KB, all of it inline: build it once per stream (NewEncoder) and reuse
// it; Start, Add and FEC do not allocate. The zero value is an empty group with one FEC packet.
// An Encoder is not safe for concurrent use.
type Encoder struct {
	fecs     int // FEC packets protecting the group, 1..MaxFEC; 0 in the zero value means 1
	count    int // media packets added
	firstSeq uint16
	ssrc     uint32
	zeroed   extensionSet
	scratch  [MaxPacketLen]byte // a header copy with the zeroed extensions cleared
	parities [MaxFEC]parity
}

// parity accumulates one FEC packet: the XORs RFC 5109 §7.3 and §7.4 define over its packets.
type parity struct {
	header [2]byte // XOR of RTP header bytes 0 and 1
	ts     uint32
	length uint16 // XOR of the packets' lengths less 12
	n      int    // the longest length less 12: the protection length, and how far data is dirty
	data   [MaxPacketLen - rtpHeaderLen]byte
}

// NewEncoder returns an empty Encoder with one FEC packet per group.
func NewEncoder() *Encoder {
	return &Encoder{fecs: 1}
}

// ZeroExtension makes the Encoder count header extension id's payload as zeros, as the receiver
// does for extensions a pacer rewrites after FEC is computed. libwebrtc zeroes transport-wide-cc
// (both versions), abs-send-time and toffset: mark their negotiated IDs. (It also zeroes the
// tail of video-timing, which this package does not do: do not send it with FEC.) The set
// outlives Start.
func (e *Encoder) ZeroExtension(id uint8) {
	e.zeroed.add(id)
}

// Start begins a new group protected by n FEC packets; n is clamped to 1..MaxFEC.
func (e *Encoder) Start(n int) {
	for k := range e.parities {
		p := &e.parities[k]
		clear(p.data[:p.n])
		p.header, p.ts, p.length, p.n = [2]byte{}, 0, 0, 0
	}
	e.fecs, e.count = min(max(n, 1), MaxFEC), 0
}

// Len returns how many media packets the group holds.
func (e *Encoder) Len() int {
	return e.count
}

// Add XORs a media packet into the group. header is its marshaled RTP header as the receiver
// protects it (the media PT, not RED's; CSRCs and header extensions included), payload the rest
// of the packet (payload and padding): split so that the sender need not join them. The group's
// packets must have one SSRC and consecutive sequence numbers. Add returns, without changing the
// group, ErrShort for a header under 12 bytes (or shorter than its CSRC list and extension
// block say, when extensions are zeroed), ErrTooLong for a packet over MaxPacketLen,
// ErrGroupFull, or ErrNotNext; on the last two the caller sends the FEC packets and starts a new
// group.
func (e *Encoder) Add(header, payload []byte) error {
	if len(header) < rtpHeaderLen {
		return ErrShort
	}
	size := len(header) - rtpHeaderLen + len(payload)
	if size > MaxPacketLen-rtpHeaderLen {
		return ErrTooLong
	}
	if e.count == MaxGroup {
		return ErrGroupFull
	}
	seq, ssrc := binary.BigEndian.Uint16(header[2:]), binary.BigEndian.Uint32(header[8:])
	if e.count > 0 && (seq != e.firstSeq+uint16(e.count) || ssrc != e.ssrc) {
		return ErrNotNext
	}
	if !e.zeroed.empty() && header[0]&0x10 != 0 {
		h := e.scratch[:len(header)]
		copy(h, header)
		if !zeroExtensions(h, &e.zeroed) {
			return ErrShort
		}
		header = h
	}
	if e.count == 0 {
		e.firstSeq, e.ssrc = seq, ssrc
	}
	if e.fecs == 0 {
		e.fecs = 1
	}
	p := &e.parities[e.count%e.fecs]
	p.header[0] ^= header[0]
	p.header[1] ^= header[1]
	p.ts ^= binary.BigEndian.Uint32(header[4:])
	p.length ^= uint16(size)
	rest := len(header) - rtpHeaderLen
	subtle.XORBytes(p.data[:rest], p.data[:rest], header[rtpHeaderLen:])
	subtle.XORBytes(p.data[rest:size], p.data[rest:size], payload)
	p.n = max(p.n, size)
	e.count++
	return nil
}

// FEC writes FEC packet k of the group (0 ≤ k < n) into dst as an ULPFEC payload: FEC header,
// level-0 ULP header and protected bytes; the caller adds the RTP header and the RED byte. It
// returns the length, at most MaxPayloadLen (18 + the group's longest packet − 12), or 0 when k
// covers no packet (k ≥ n, or the group has k packets or fewer). It panics if dst is shorter
// than the payload. FEC does not change the group: call it again, or Add more and call it
// again.
func (e *Encoder) FEC(k int, dst []byte) int {
	if k < 0 || k >= e.fecs || k >= e.count { // with a packet added, fecs ≥ 1
		return 0
	}
	p := &e.parities[k]
	// FEC packet k covers packets k, k+n, k+2n… of the group; SN base is the first of them (RFC
	// 5109 §7.3: the lowest protected sequence number), so the mask starts with a set bit.
	span := (e.count - 1 - k) / e.fecs * e.fecs // mask offset of the last covered packet
	var mask uint64
	for i := 0; i <= span; i += e.fecs {
		mask |= 1 << i
	}
	long := span >= 8*shortMaskLen
	h := Header{LongMask: long}
	total := h.Len() + p.n
	if len(dst) < total {
		panic("fec: Encoder.FEC: dst is shorter than the FEC payload (give it MaxPayloadLen bytes)")
	}
	dst[0] = p.header[0] & 0x3f // E = 0; the version bits give way to E and L
	if long {
		dst[0] |= 0x40
	}
	dst[1] = p.header[1]
	binary.BigEndian.PutUint16(dst[2:], e.firstSeq+uint16(k))
	binary.BigEndian.PutUint32(dst[4:], p.ts)
	binary.BigEndian.PutUint16(dst[8:], p.length)
	binary.BigEndian.PutUint16(dst[10:], uint16(p.n))
	putMask(dst[fecHeaderLen+ulpHeaderLen:], mask, long)
	copy(dst[h.Len():], p.data[:p.n])
	return total
}
