// Package fec is forward error correction for RTP video: ULPFEC (RFC 5109) packets carried,
// like the media they protect, in single-block RED (RFC 2198), as Chromium's receiver takes
// them by default (red/90000 + ulpfec/90000 in its SDP). An FEC packet is the XOR of a group of
// media packets, so a receiver that lost exactly one of them rebuilds it without waiting a
// round trip for a retransmission.
//
// The wire format follows libwebrtc, the receiver that matters:
//   - A media packet in RED is its RTP header with PT = RED's PT, the RED byte (F = 0, the media
//     PT), then the media payload and padding. The receiver protects the packet as it would
//     have been sent without RED: the same header with the media PT, then payload and padding.
//   - An FEC packet in RED is an RTP header (RED's PT, the media SSRC, the next sequence number
//     of the shared sequence space), the RED byte (the ULPFEC PT), then the ULPFEC payload the
//     Encoder writes: FEC header, one level-0 ULP header, and the XOR of the protected packets
//     from byte 12 on, each zero-extended to the longest.
//   - libwebrtc zeroes the payloads of header extensions a pacer rewrites (transport-wide-cc,
//     abs-send-time, toffset) before it decodes, so the Encoder must count them as zeros:
//     see Encoder.ZeroExtension.
//
// The Encoder runs per packet on the send path and does not allocate.
package fec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

const (
	// REDHeaderLen is the length of a RED header with one block (RFC 2198 §3: F = 0, block PT).
	REDHeaderLen = 1
	// MaxGroup is the most media packets one group protects: the 48 bits of a long ULP mask,
	// libwebrtc's limit too.
	MaxGroup = 48
	// MaxFEC is the most FEC packets protecting one group.
	MaxFEC = 16
	// MaxPacketLen is the longest media packet (RTP header, payload and padding, as the
	// receiver protects it) a group takes: libwebrtc drops a recovered packet longer than
	// 1500 − 12 bytes.
	MaxPacketLen = 1500 - rtpHeaderLen
	// MaxPayloadLen bounds the ULPFEC payload Encoder.FEC writes: FEC header, ULP header with
	// a long mask, and the longest protected bytes.
	MaxPayloadLen = fecHeaderLen + ulpHeaderLen + longMaskLen + MaxPacketLen - rtpHeaderLen
)

const (
	rtpHeaderLen = 12
	fecHeaderLen = 10 // RFC 5109 §7.3
	ulpHeaderLen = 2  // protection length; the mask follows
	shortMaskLen = 2  // L = 0: 16 packets
	longMaskLen  = 6  // L = 1: 48 packets
)

// Errors. Encoder.Add returns them as they are (it must not allocate); ParseHeader and Recover
// wrap them with detail.
var (
	ErrShort         = errors.New("fec: too short")
	ErrGroupFull     = errors.New("fec: the group already has MaxGroup packets")
	ErrNotNext       = errors.New("fec: not the group's next packet (sequence number or SSRC)")
	ErrTooLong       = errors.New("fec: packet longer than MaxPacketLen")
	ErrUnsupported   = errors.New("fec: unsupported FEC header (E bit set)")
	ErrNotOneMissing = errors.New("fec: not exactly one protected packet missing")
	ErrLength        = errors.New("fec: recovered length beyond the protection length")
	ErrShortBuffer   = errors.New("fec: destination buffer too short")
)

// PutRED writes a one-block RED header (F = 0) for blockPT at dst[0].
func PutRED(dst []byte, blockPT uint8) {
	dst[0] = blockPT & 0x7f
}

// Header is an ULPFEC payload's FEC header and level-0 ULP header (RFC 5109 §7.3, §7.4).
type Header struct {
	// HeaderRecovery is the XOR of the protected packets' first two RTP header bytes: P, X
	// and CC in the low 6 bits of [0] (its top bits are E and L on the wire, zero here), M and
	// PT in [1].
	HeaderRecovery [2]byte
	// SNBase is the lowest protected sequence number; Mask counts from it.
	SNBase uint16
	// TSRecovery is the XOR of the protected packets' timestamps.
	TSRecovery uint32
	// LengthRecovery is the XOR of the protected packets' lengths less 12.
	LengthRecovery uint16
	// ProtectionLen is how many bytes from byte 12 of each packet the payload protects.
	ProtectionLen int
	// LongMask is the L bit: a 48-bit mask rather than 16.
	LongMask bool
	// Mask has bit i set when packet SNBase+i is protected (least significant bit first; the
	// wire is most significant first).
	Mask uint64
}

// Len is the length of the headers on the wire: where the protected bytes start.
func (h *Header) Len() int {
	if h.LongMask {
		return fecHeaderLen + ulpHeaderLen + longMaskLen
	}
	return fecHeaderLen + ulpHeaderLen + shortMaskLen
}

// ParseHeader reads the headers at the start of an ULPFEC payload (after the RED byte).
func ParseHeader(payload []byte) (Header, error) {
	const shortLen = fecHeaderLen + ulpHeaderLen + shortMaskLen
	if len(payload) < shortLen {
		return Header{}, fmt.Errorf("%w: ULPFEC payload of %d bytes, its headers take %d", ErrShort, len(payload), shortLen)
	}
	if payload[0]&0x80 != 0 {
		return Header{}, ErrUnsupported
	}
	h := Header{
		HeaderRecovery: [2]byte{payload[0] & 0x3f, payload[1]},
		SNBase:         binary.BigEndian.Uint16(payload[2:]),
		TSRecovery:     binary.BigEndian.Uint32(payload[4:]),
		LengthRecovery: binary.BigEndian.Uint16(payload[8:]),
		ProtectionLen:  int(binary.BigEndian.Uint16(payload[10:])),
		LongMask:       payload[0]&0x40 != 0,
	}
	if len(payload) < h.Len() {
		return Header{}, fmt.Errorf("%w: ULPFEC payload of %d bytes, its headers take %d", ErrShort, len(payload), h.Len())
	}
	h.Mask = readMask(payload[fecHeaderLen+ulpHeaderLen:], h.LongMask)
	return h, nil
}

// putMask writes mask (bit i: SN base + i) most significant bit first, as the wire has it.
func putMask(dst []byte, mask uint64, long bool) {
	w := bits.Reverse64(mask) // bit i → bit 63 − i
	if long {
		binary.BigEndian.PutUint16(dst, uint16(w>>48))
		binary.BigEndian.PutUint32(dst[2:], uint32(w>>16))
		return
	}
	binary.BigEndian.PutUint16(dst, uint16(w>>48))
}

func readMask(src []byte, long bool) uint64 {
	w := uint64(binary.BigEndian.Uint16(src)) << 48
	if long {
		w |= uint64(binary.BigEndian.Uint32(src[2:])) << 16
	}
	return bits.Reverse64(w)
}

// zeroExtensions zeroes, in an RTP header, the payloads of the header extensions whose IDs are
// in ids, parsing as libwebrtc does (RFC 8285 one-byte 0xBEDE or two-byte 0x1000 profile; any
// other profile is left alone). It reports false when the CSRC list or extension block runs
// past the header.
func zeroExtensions(header []byte, ids *extensionSet) bool {
	if header[0]&0x10 == 0 {
		return true
	}
	start := rtpHeaderLen + 4*int(header[0]&0x0f) + 4
	if len(header) < start {
		return false
	}
	profile := binary.BigEndian.Uint16(header[start-4:])
	end := start + 4*int(binary.BigEndian.Uint16(header[start-2:]))
	if len(header) < end {
		return false
	}
	oneByte := profile == 0xbede
	if !oneByte && profile != 0x1000 {
		return true
	}
	for i := start; i < end; {
		if header[i] == 0 { // padding
			i++
			continue
		}
		var id uint8
		var n int
		if oneByte {
			id, n = header[i]>>4, int(header[i]&0x0f)+1
			if id == 15 || id == 0 { // reserved: stop, as RFC 8285 and libwebrtc do
				return true
			}
			i++
		} else {
			if i+2 > end {
				return true
			}
			id, n = header[i], int(header[i+1])
			i += 2
		}
		if i+n > end {
			return true
		}
		if ids.has(id) {
			clear(header[i : i+n])
		}
		i += n
	}
	return true
}

// extensionSet is a set of header extension IDs.
type extensionSet [4]uint64

func (s *extensionSet) add(id uint8)      { s[id/64] |= 1 << (id % 64) }
func (s *extensionSet) has(id uint8) bool { return s[id/64]&(1<<(id%64)) != 0 }
func (s *extensionSet) empty() bool       { return *s == extensionSet{} }
