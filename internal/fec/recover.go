package fec

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Recover rebuilds the one packet an ULPFEC payload protects that the receiver lacks, as
// libwebrtc does. fecPayload is what follows the RED byte of an FEC packet, ssrc that packet's
// SSRC (the media SSRC: RED carries both). have returns a protected packet the receiver holds,
// as it protects it (media PT, no RED byte, the zeroed extensions zeroed), or nil when the packet
// is missing; it is called at most twice per protected sequence number and must answer the same
// each time. Recover writes the packet into dst and returns its sequence number and length.
//
// Errors: ErrShort or ErrUnsupported for a malformed payload or a received packet under 12
// bytes, ErrNotOneMissing when none or several are missing, ErrLength when the lost packet
// would be longer than the protected bytes, ErrShortBuffer when dst cannot hold it.
func Recover(fecPayload []byte, ssrc uint32, have func(seq uint16) []byte, dst []byte) (seq uint16, n int, err error) {
	h, err := ParseHeader(fecPayload)
	if err != nil {
		return 0, 0, err
	}
	protected := fecPayload[h.Len():]
	if len(protected) < h.ProtectionLen {
		return 0, 0, fmt.Errorf("%w: %d protected bytes, the header says %d", ErrShort, len(protected), h.ProtectionLen)
	}
	header, ts, length := h.HeaderRecovery, h.TSRecovery, h.LengthRecovery
	missing := 0
	for m := h.Mask; m != 0; m &= m - 1 {
		s := h.SNBase + uint16(bits.TrailingZeros64(m))
		p := have(s)
		if p == nil {
			missing++
			seq = s
			continue
		}
		if len(p) < rtpHeaderLen {
			return 0, 0, fmt.Errorf("%w: packet %d has %d bytes", ErrShort, s, len(p))
		}
		header[0] ^= p[0]
		header[1] ^= p[1]
		ts ^= binary.BigEndian.Uint32(p[4:])
		length ^= uint16(len(p) - rtpHeaderLen)
	}
	if missing != 1 {
		return 0, 0, fmt.Errorf("%w: %d of %d missing", ErrNotOneMissing, missing, bits.OnesCount64(h.Mask))
	}
	size := int(length)
	if size > h.ProtectionLen {
		return 0, 0, fmt.Errorf("%w: packet %d would have %d bytes after the RTP header, %d are protected", ErrLength, seq, size, h.ProtectionLen)
	}
	n = rtpHeaderLen + size
	if len(dst) < n {
		return 0, 0, fmt.Errorf("%w: packet %d needs %d bytes, dst has %d", ErrShortBuffer, seq, n, len(dst))
	}
	out := dst[rtpHeaderLen:n]
	copy(out, protected)
	for m := h.Mask; m != 0; m &= m - 1 {
		s := h.SNBase + uint16(bits.TrailingZeros64(m))
		if s == seq {
			continue
		}
		// Bytes past the lost packet's length XOR to zero: only its own bytes need the rest.
		p := have(s)
		if len(p) < rtpHeaderLen { // have changed its answer; never slice past p
			return 0, 0, fmt.Errorf("%w: packet %d has %d bytes", ErrShort, s, len(p))
		}
		p = p[rtpHeaderLen:]
		k := min(len(p), size)
		subtle.XORBytes(out[:k], out[:k], p[:k])
	}
	dst[0] = 0x80 | header[0]&0x3f // version 2
	dst[1] = header[1]
	binary.BigEndian.PutUint16(dst[2:], seq)
	binary.BigEndian.PutUint32(dst[4:], ts)
	binary.BigEndian.PutUint32(dst[8:], ssrc)
	return seq, n, nil
}
