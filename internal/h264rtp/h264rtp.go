// Package h264rtp carries H.264 access units in RTP payloads (RFC 6184): a packetizer that
// runs once per access unit for all viewers (single NAL unit, STAP-A for parameter sets, FU-A
// for large NAL units), and a depacketizer that rebuilds Annex-B access units for receivers.
package h264rtp

import (
	"errors"

	"github.com/p2pcast/p2pcast/internal/media"
)

// DefaultMTU is the largest RTP payload sent: it leaves room for RTP, SRTP, UDP, IP and TURN
// headers inside a 1500-byte path MTU.
const DefaultMTU = 1200

// Payloads holds RTP payloads in one reused buffer: payload i is Buf[Ends[i-1]:Ends[i]].
type Payloads struct {
	Buf  []byte
	Ends []int
}

// Len is the number of payloads.
func (p *Payloads) Len() int { return len(p.Ends) }

// At returns payload i.
func (p *Payloads) At(i int) []byte {
	start := 0
	if i > 0 {
		start = p.Ends[i-1]
	}
	return p.Buf[start:p.Ends[i]]
}

// Reset empties p, keeping its memory.
func (p *Payloads) Reset() { p.Buf, p.Ends = p.Buf[:0], p.Ends[:0] }

func (p *Payloads) end() { p.Ends = append(p.Ends, len(p.Buf)) }

const maxAggregated = 8

// Packetize splits an Annex-B access unit into RTP payloads of at most mtu bytes, replacing
// what out held. Parameter sets travel together in one STAP-A; access unit delimiters and filler
// data are dropped (RFC 6184 5.1 allows it, and receivers do not need them).
func Packetize(au []byte, mtu int, out *Payloads) {
	out.Reset()
	var agg [maxAggregated][]byte
	n, aggSize := 0, 1
	flush := func() {
		switch n {
		case 0:
			return
		case 1:
			out.Buf = append(out.Buf, agg[0]...)
		default:
			var f, nri byte
			for _, nal := range agg[:n] {
				f |= nal[0] & 0x80 // F is set if any aggregated unit has it
				nri = max(nri, nal[0]&0x60)
			}
			hdr := f | nri | 24
			out.Buf = append(out.Buf, hdr)
			for _, nal := range agg[:n] {
				out.Buf = append(out.Buf, byte(len(nal)>>8), byte(len(nal)))
				out.Buf = append(out.Buf, nal...)
			}
		}
		out.end()
		n, aggSize = 0, 1
	}
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if len(nal) == 0 {
			continue
		}
		switch t := media.TypeOf(nal); {
		case t == media.NALAUD || t == media.NALFiller:
			continue
		case (t == media.NALSPS || t == media.NALPPS) && 2+len(nal) < mtu:
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
		indicator := nal[0]&0xe0 | 28
		kind := nal[0] & 0x1f
		body := nal[1:]
		for first := true; len(body) > 0; first = false {
			chunk := body[:min(len(body), mtu-2)]
			body = body[len(chunk):]
			hdr := kind
			if first {
				hdr |= 0x80
			}
			if len(body) == 0 {
				hdr |= 0x40
			}
			out.Buf = append(out.Buf, indicator, hdr)
			out.Buf = append(out.Buf, chunk...)
			out.end()
		}
	}
	flush()
}

// Errors a Depacketizer reports for a payload it had to drop.
var (
	ErrShortPayload = errors.New("h264rtp: payload too short")
	ErrBadSTAPA     = errors.New("h264rtp: malformed STAP-A")
	ErrFUOrder      = errors.New("h264rtp: FU-A fragment without its start")
	ErrUnsupported  = errors.New("h264rtp: unsupported packetization type")
	ErrTooLarge     = errors.New("h264rtp: access unit larger than the limit")
)

var startCode = []byte{0, 0, 0, 1}

// Depacketizer rebuilds Annex-B access units from RTP payloads in sequence order.
type Depacketizer struct {
	// MaxAU bounds an access unit (default 8 MiB).
	MaxAU   int
	au      []byte
	inFU    bool
	broken  bool // part of the current unit was lost
	pending []byte
}

// Lost tells the depacketizer that packets were lost: the unit being built is dropped.
func (d *Depacketizer) Lost() { d.broken, d.inFU = true, false }

// Push adds one payload. When marker is set (the last packet of an access unit) it returns the
// complete unit in Annex-B, valid until the next Push, or nil if part of it was lost.
func (d *Depacketizer) Push(payload []byte, marker bool) ([]byte, error) {
	if d.MaxAU == 0 {
		d.MaxAU = 8 << 20
	}
	if d.pending != nil {
		d.au, d.pending = d.au[:0], nil
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
	au, broken := d.au, d.broken
	d.pending, d.broken, d.inFU = au, false, false
	if broken || len(au) == 0 {
		return nil, err
	}
	return au, err
}

func (d *Depacketizer) push(p []byte) error {
	if len(p) < 1 {
		return ErrShortPayload
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		d.inFU = false
		d.au = append(append(d.au, startCode...), p...)
	case t == 24:
		d.inFU = false
		for b := p[1:]; len(b) > 0; {
			if len(b) < 2 {
				return ErrBadSTAPA
			}
			size := int(b[0])<<8 | int(b[1])
			if size == 0 || len(b) < 2+size {
				return ErrBadSTAPA
			}
			d.au = append(append(d.au, startCode...), b[2:2+size]...)
			b = b[2+size:]
		}
	case t == 28:
		if len(p) < 3 {
			return ErrShortPayload
		}
		start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
		if start {
			d.au = append(append(d.au, startCode...), p[0]&0xe0|p[1]&0x1f)
			d.inFU = true
		} else if !d.inFU {
			return ErrFUOrder
		}
		d.au = append(d.au, p[2:]...)
		if end {
			d.inFU = false
		}
	default:
		return ErrUnsupported
	}
	return nil
}
