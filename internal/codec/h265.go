package codec

// H.265 in RTP (RFC 7798, no decoding order numbers: sprop-max-don-diff=0): a packetizer that
// runs once per access unit for all viewers (single NAL unit, one aggregation packet for the
// parameter sets, fragmentation units for large NAL units), a depacketizer for receivers, and
// the SDP description WebRTC uses (draft-ietf-avtcore-hevc-webrtc: profile-id, tier-flag,
// tx-mode=SRST; level-id is not compared).

import (
	"errors"
	"strings"

	"github.com/p2pcast/p2pcast/internal/media"
)

// H.265 NAL unit types (ITU-T H.265 table 7-1, RFC 7798).
const (
	h265IRAPFirst = 16 // BLA_W_LP
	h265IRAPLast  = 21 // CRA_NUT (22, 23 are reserved IRAP types no encoder emits)
	h265VPS       = 32
	h265SPS       = 33
	h265PPS       = 34
	h265AUD       = 35
	h265Filler    = 38
	h265AP        = 48
	h265FU        = 49
)

// H265Type returns an H.265 NAL unit's type (-1 for an empty one).
func H265Type(nal []byte) int {
	if len(nal) < 2 {
		return -1
	}
	return int(nal[0]>>1) & 0x3f
}

// H265Keyframe reports whether an Annex-B access unit holds an IRAP picture, where a decoder
// can begin (with the parameter sets, which the RTSP source puts in every keyframe).
func H265Keyframe(au []byte) bool {
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if t := H265Type(nal); t >= h265IRAPFirst && t <= h265IRAPLast {
			return true
		}
	}
	return false
}

// PacketizeH265 splits an Annex-B access unit into RTP payloads of at most mtu bytes, replacing
// what out held. Parameter sets travel together in one aggregation packet; access unit
// delimiters and filler data are dropped.
func PacketizeH265(au []byte, mtu int, out *Payloads) {
	out.Reset()
	var agg [maxAggregated][]byte
	n, aggSize := 0, 2
	flush := func() {
		switch n {
		case 0:
			return
		case 1:
			out.Buf = append(out.Buf, agg[0]...)
		default:
			// The AP header: F if any unit has it, the lowest layer id and temporal id
			// (RFC 7798 4.4.2); parameter sets are layer 0, so these are the first unit's.
			var f byte
			for _, nal := range agg[:n] {
				f |= nal[0] & 0x80
			}
			out.Buf = append(out.Buf, f|h265AP<<1|agg[0][0]&1, agg[0][1])
			for _, nal := range agg[:n] {
				out.Buf = append(out.Buf, byte(len(nal)>>8), byte(len(nal)))
				out.Buf = append(out.Buf, nal...)
			}
		}
		out.end()
		n, aggSize = 0, 2
	}
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if len(nal) < 2 {
			continue
		}
		switch t := H265Type(nal); {
		case t == h265AUD || t == h265Filler:
			continue
		case (t == h265VPS || t == h265SPS || t == h265PPS) && 2+2+len(nal) < mtu:
			if n == maxAggregated || aggSize+2+len(nal) > mtu {
				flush()
			}
			agg[n] = nal
			n++
			aggSize += 2 + len(nal)
			continue
		}
		flush()
		if len(nal) <= mtu {
			out.Buf = append(out.Buf, nal...)
			out.end()
			continue
		}
		// FU: the payload header is the NAL header with type 49, then a byte of S, E and the
		// unit's type, then a piece of the unit's body.
		t := byte(H265Type(nal))
		h0, h1 := nal[0]&0x81|h265FU<<1, nal[1]
		body := nal[2:]
		for first := true; len(body) > 0; first = false {
			chunk := body[:min(len(body), mtu-3)]
			body = body[len(chunk):]
			fu := t
			if first {
				fu |= 0x80
			}
			if len(body) == 0 {
				fu |= 0x40
			}
			out.Buf = append(out.Buf, h0, h1, fu)
			out.Buf = append(out.Buf, chunk...)
			out.end()
		}
	}
	flush()
}

// Errors an H265Depacketizer reports for a payload it had to drop.
var (
	ErrH265Short = errors.New("codec: h265: payload too short")
	ErrH265AP    = errors.New("codec: h265: malformed aggregation packet")
	ErrH265FU    = errors.New("codec: h265: fragment without its start")
	ErrH265Type  = errors.New("codec: h265: unsupported packet type")
)

// H265Depacketizer rebuilds Annex-B access units from RTP payloads in sequence order.
type H265Depacketizer struct {
	// MaxAU bounds an access unit (default 8 MiB).
	MaxAU   int
	au      []byte
	inFU    bool
	broken  bool
	pending bool
}

// Lost tells the depacketizer that packets were lost: the unit being built is dropped.
func (d *H265Depacketizer) Lost() { d.broken, d.inFU = true, false }

// Push adds one payload. When marker is set it returns the complete unit in Annex-B, valid
// until the next Push, or nil if part of it was lost.
func (d *H265Depacketizer) Push(payload []byte, marker bool) ([]byte, error) {
	if d.MaxAU == 0 {
		d.MaxAU = 8 << 20
	}
	if d.pending {
		d.au, d.pending, d.broken = d.au[:0], false, false
	}
	err := d.push(payload)
	if err != nil {
		d.Lost()
	}
	if len(d.au) > d.MaxAU {
		d.Lost()
		d.au = d.au[:0]
		err = ErrTooLarge
	}
	if !marker {
		return nil, err
	}
	d.pending = true
	if d.broken || len(d.au) == 0 {
		return nil, err
	}
	return d.au, err
}

func (d *H265Depacketizer) push(p []byte) error {
	if len(p) < 3 {
		return ErrH265Short
	}
	switch t := H265Type(p); t {
	case h265AP:
		d.inFU = false
		for rest := p[2:]; len(rest) > 0; {
			if len(rest) < 2 {
				return ErrH265AP
			}
			n := int(rest[0])<<8 | int(rest[1])
			if n < 2 || 2+n > len(rest) {
				return ErrH265AP
			}
			d.au = append(append(d.au, startCode...), rest[2:2+n]...)
			rest = rest[2+n:]
		}
	case h265FU:
		fu := p[2]
		if fu&0x80 != 0 {
			d.inFU = true
			d.au = append(d.au, startCode...)
			d.au = append(d.au, p[0]&0x81|(fu&0x3f)<<1, p[1])
		} else if !d.inFU {
			return ErrH265FU
		}
		d.au = append(d.au, p[3:]...)
		if fu&0x40 != 0 {
			d.inFU = false
		}
	case 50: // PACI
		return ErrH265Type
	default:
		d.inFU = false
		d.au = append(append(d.au, startCode...), p...)
	}
	return nil
}

// h265Fmtp describes the stream for WebRTC: Main profile, Main tier, level 3.1 (level-id is
// not part of the match, so a larger picture is no reason to refuse), one RTP stream.
func h265Fmtp(Params) string { return "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST" }

// h265Accepts takes a receiver's fmtp that decodes Main profile, Main tier in one RTP stream
// (absent parameters default to exactly that).
func h265Accepts(fmtp string, _ Params) bool {
	profile, tier, tx := fmtpParam(fmtp, "profile-id"), fmtpParam(fmtp, "tier-flag"), fmtpParam(fmtp, "tx-mode")
	return (profile == "" || profile == "1") && (tier == "" || tier == "0") && (tx == "" || strings.EqualFold(tx, "SRST"))
}
