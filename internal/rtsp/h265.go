package rtsp

import (
	"errors"
	"fmt"

	"github.com/p2pcast/p2pcast/internal/media"
)

// H.265 in RTP (RFC 7798) without decoding order numbers (sprop-max-don-diff=0, what cameras
// send): single NAL unit packets, aggregation packets (AP) and fragmentation units (FU). It
// lives here until internal/codec registers H.265.

// H.265 NAL unit types used here (ITU-T H.265 table 7-1, RFC 7798).
const (
	h265IRAPFirst = 16 // BLA_W_LP
	h265IRAPLast  = 21 // CRA_NUT
	h265VPS       = 32
	h265SPS       = 33
	h265PPS       = 34
	h265AUD       = 35
	h265AP        = 48
	h265FU        = 49
	h265PACI      = 50
)

// Errors of malformed H.265 payloads.
var (
	errH265Short = errors.New("h265: payload too short")
	errH265AP    = errors.New("h265: malformed aggregation packet")
	errH265FU    = errors.New("h265: fragment without its start")
	errH265Type  = errors.New("h265: unsupported packet type")
)

func h265Type(nal []byte) int {
	if len(nal) < 1 {
		return -1
	}
	return int(nal[0]>>1) & 0x3f
}

// h265Depacketizer rebuilds Annex-B access units.
type h265Depacketizer struct {
	au      []byte
	inFU    bool
	broken  bool
	packets int
	params  paramSets
}

func (h *h265Depacketizer) push(p []byte, ts uint32, marker bool, out []rawUnit) ([]rawUnit, error) {
	h.packets++
	err := h.add(p)
	if err != nil {
		h.lost()
	}
	if len(h.au) > maxAU {
		h.lost()
		h.au = h.au[:0]
		err = fmt.Errorf("%w: H.265 access unit over %d bytes", ErrTooLarge, maxAU)
	}
	if marker {
		out = h.emit(ts, out)
	}
	return out, err
}

func (h *h265Depacketizer) flush(ts uint32, out []rawUnit) []rawUnit {
	if h.packets == 0 {
		return out
	}
	return h.emit(ts, out)
}

func (h *h265Depacketizer) lost() { h.broken, h.inFU = true, false }

func (h *h265Depacketizer) add(p []byte) error {
	if len(p) < 3 {
		return errH265Short
	}
	switch typ := h265Type(p); {
	case typ < h265AP:
		h.inFU = false
		h.au = append(append(h.au, 0, 0, 0, 1), p...)
	case typ == h265AP:
		h.inFU = false
		for b := p[2:]; len(b) > 0; {
			if len(b) < 2 {
				return errH265AP
			}
			size := int(b[0])<<8 | int(b[1])
			if size < 2 || len(b) < 2+size {
				return errH265AP
			}
			h.au = append(append(h.au, 0, 0, 0, 1), b[2:2+size]...)
			b = b[2+size:]
		}
	case typ == h265FU:
		fu := p[2]
		start, end := fu&0x80 != 0, fu&0x40 != 0
		if start {
			// The NAL header: the payload header's F, layer id and TID with the FU's type.
			h.au = append(h.au, 0, 0, 0, 1, p[0]&0x81|(fu&0x3f)<<1, p[1])
			h.inFU = true
		} else if !h.inFU {
			return errH265FU
		}
		h.au = append(h.au, p[3:]...)
		if end {
			h.inFU = false
		}
	default:
		return errH265Type // PACI and reserved types
	}
	return nil
}

// emit ends the unit in progress; the unit stays valid until the next push.
func (h *h265Depacketizer) emit(ts uint32, out []rawUnit) []rawUnit {
	au, broken, n := h.au, h.broken, h.packets
	h.au, h.broken, h.inFU, h.packets = h.au[:0], false, false, 0
	if broken || len(au) == 0 {
		if n > 0 {
			out = append(out, rawUnit{ts: ts, dropped: true})
		}
		return out
	}
	var key, vps, sps, pps bool
	at, first := 0, true
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		typ := h265Type(nal)
		if first && typ == h265AUD {
			at = len(au) - len(rest)
		}
		first = false
		switch {
		case typ >= h265IRAPFirst && typ <= h265IRAPLast:
			key = true
		case typ == h265VPS:
			vps = true
			h.params.remember(false, false, true, nal)
		case typ == h265SPS:
			sps = true
			h.params.remember(true, false, false, nal)
		case typ == h265PPS:
			pps = true
			h.params.remember(false, true, false, nal)
		}
	}
	if key {
		au = h.params.prepend(au, at, !vps, !sps, !pps)
	}
	return append(out, rawUnit{data: au, ts: ts, key: key})
}

// parseH265SPS reads the picture size (after the conformance window) from an H.265 SPS NAL
// unit.
func parseH265SPS(nal []byte) (width, height int, err error) {
	sps, err := media.ParseH265SPS(nal)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return sps.Width, sps.Height, nil
}
