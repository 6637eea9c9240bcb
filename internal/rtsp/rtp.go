package rtsp

import (
	"encoding/binary"
	"fmt"
)

// rtpPacket is an RTP packet's header fields and payload (RFC 3550 5.1); the payload aliases
// the buffer parsed.
type rtpPacket struct {
	marker  bool
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	payload []byte
}

// parseRTP reads an RTP packet without allocating.
func parseRTP(b []byte) (rtpPacket, error) {
	var p rtpPacket
	if len(b) < 12 {
		return p, fmt.Errorf("%w: RTP packet of %d bytes", ErrProtocol, len(b))
	}
	if b[0]>>6 != 2 {
		return p, fmt.Errorf("%w: RTP version %d", ErrProtocol, b[0]>>6)
	}
	p.marker, p.pt = b[1]&0x80 != 0, b[1]&0x7f
	p.seq = binary.BigEndian.Uint16(b[2:])
	p.ts = binary.BigEndian.Uint32(b[4:])
	p.ssrc = binary.BigEndian.Uint32(b[8:])
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < n+4 {
			return p, fmt.Errorf("%w: RTP extension past the end", ErrProtocol)
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: the last byte counts it
		end -= int(b[len(b)-1])
	}
	if n > end {
		return p, fmt.Errorf("%w: RTP header or padding past the end", ErrProtocol)
	}
	p.payload = b[n:end]
	return p, nil
}

// senderReport is what an RTCP sender report says: this NTP time is this RTP time.
type senderReport struct {
	ssrc uint32
	ntp  uint64
	rtp  uint32
}

// maxReports bounds the packets looked at in one compound RTCP packet.
const maxReports = 16

// parseSenderReports returns the sender reports (RFC 3550 6.4.1) in a compound RTCP packet,
// appended to out; other packet types are skipped.
func parseSenderReports(b []byte, out []senderReport) ([]senderReport, error) {
	for range maxReports {
		if len(b) == 0 {
			return out, nil
		}
		if len(b) < 4 || b[0]>>6 != 2 {
			return out, fmt.Errorf("%w: bad RTCP packet", ErrProtocol)
		}
		n := 4 * (1 + int(binary.BigEndian.Uint16(b[2:])))
		if n > len(b) {
			return out, fmt.Errorf("%w: RTCP length past the end", ErrProtocol)
		}
		if b[1] == 200 && n >= 28 {
			out = append(out, senderReport{
				ssrc: binary.BigEndian.Uint32(b[4:]),
				ntp:  binary.BigEndian.Uint64(b[8:]),
				rtp:  binary.BigEndian.Uint32(b[16:]),
			})
		}
		b = b[n:]
	}
	return out, nil
}
