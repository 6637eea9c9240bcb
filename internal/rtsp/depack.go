package rtsp

import (
	"errors"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/media"
)

// maxAU bounds a video access unit.
const maxAU = 8 << 20

// rawUnit is a depacketizer's output: a whole access unit or audio frame, or the news that one
// was dropped because part of it was lost.
type rawUnit struct {
	data    []byte // nil when dropped
	ts      uint32
	key     bool
	dropped bool
}

// depacketizer turns one track's RTP payloads, in sequence order, into units.
type depacketizer interface {
	// push adds a payload; units it completes are appended to out. An error means the packet
	// was malformed (and the unit it belonged to is dropped).
	push(payload []byte, ts uint32, marker bool, out []rawUnit) ([]rawUnit, error)
	// flush ends the unit in progress (its last packet lacked the marker bit: the timestamp
	// changed); ts is the unit's.
	flush(ts uint32, out []rawUnit) []rawUnit
	// lost says packets were lost: the unit in progress is dropped.
	lost()
}

func newDepacketizer(t *Track) depacketizer {
	switch t.Codec {
	case "H264":
		d := &h264Depacketizer{}
		d.d.MaxAU = maxAU
		for _, ps := range t.ParamSets {
			d.params.remember(media.TypeOf(ps) == media.NALSPS, media.TypeOf(ps) == media.NALPPS, false, ps)
		}
		return d
	case "H265":
		d := &h265Depacketizer{}
		for _, ps := range t.ParamSets {
			typ := h265Type(ps)
			d.params.remember(typ == h265SPS, typ == h265PPS, typ == h265VPS, ps)
		}
		return d
	case "AAC":
		f, _ := newAUHeaderFormat(t.Params) // checked when the track was described
		return &aacDepacketizer{format: f, frameTicks: uint32(t.FrameTicks)}
	}
	return wholeDepacketizer{}
}

// wholeDepacketizer: every packet is one frame (G.711, Opus).
type wholeDepacketizer struct{}

func (wholeDepacketizer) push(p []byte, ts uint32, _ bool, out []rawUnit) ([]rawUnit, error) {
	if len(p) == 0 {
		return out, nil
	}
	return append(out, rawUnit{data: p, ts: ts, key: true}), nil
}
func (wholeDepacketizer) flush(_ uint32, out []rawUnit) []rawUnit { return out }
func (wholeDepacketizer) lost()                                   {}

// paramSets keeps a video track's latest parameter sets (from the SDP, then from the stream)
// to put in front of keyframes that come without them: a decoder (or a viewer joining at that
// keyframe) needs them, and cameras often send them only in the SDP.
type paramSets struct {
	vps, sps, pps []byte
	out           []byte // the unit with parameter sets prepended, reused
}

func (p *paramSets) remember(isSPS, isPPS, isVPS bool, nal []byte) {
	switch {
	case isSPS:
		p.sps = append(p.sps[:0], nal...)
	case isPPS:
		p.pps = append(p.pps[:0], nal...)
	case isVPS:
		p.vps = append(p.vps[:0], nal...)
	}
}

// prepend returns au with the missing parameter sets inserted at byte at (0, or after an
// access unit delimiter, which must stay first), in p.out; or au itself when none is missing.
func (p *paramSets) prepend(au []byte, at int, needVPS, needSPS, needPPS bool) []byte {
	if (!needVPS || p.vps == nil) && (!needSPS || p.sps == nil) && (!needPPS || p.pps == nil) {
		return au
	}
	p.out = append(p.out[:0], au[:at]...)
	for _, ps := range []struct {
		need bool
		nal  []byte
	}{{needVPS, p.vps}, {needSPS, p.sps}, {needPPS, p.pps}} {
		if ps.need && ps.nal != nil {
			p.out = append(append(p.out, 0, 0, 0, 1), ps.nal...)
		}
	}
	p.out = append(p.out, au[at:]...)
	return p.out
}

// h264Depacketizer is internal/codec's H.264 depacketizer plus what a camera stream needs:
// units that end without a marker bit, keyframes flagged, parameter sets put in front of
// IDRs.
type h264Depacketizer struct {
	d       codec.H264Depacketizer
	params  paramSets
	packets int // in the unit being built
}

// emptySTAPA ends the unit in progress: codec.H264Depacketizer has no Flush, and an empty
// STAP-A adds nothing (TestH264FlushByTimestamp guards this).
var emptySTAPA = []byte{24}

func (h *h264Depacketizer) push(p []byte, ts uint32, marker bool, out []rawUnit) ([]rawUnit, error) {
	h.packets++
	au, err := h.d.Push(p, marker)
	if errors.Is(err, codec.ErrTooLarge) {
		err = ErrTooLarge
	}
	if marker {
		out = h.emit(au, ts, out)
	}
	return out, err
}

func (h *h264Depacketizer) flush(ts uint32, out []rawUnit) []rawUnit {
	if h.packets == 0 {
		return out
	}
	au, _ := h.d.Push(emptySTAPA, true)
	return h.emit(au, ts, out)
}

func (h *h264Depacketizer) lost() { h.d.Lost() }

func (h *h264Depacketizer) emit(au []byte, ts uint32, out []rawUnit) []rawUnit {
	n := h.packets
	h.packets = 0
	if au == nil {
		if n > 0 {
			out = append(out, rawUnit{ts: ts, dropped: true})
		}
		return out
	}
	var idr, sps, pps bool
	at, first := 0, true
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		t := media.TypeOf(nal)
		if first && t == media.NALAUD {
			at = len(au) - len(rest)
		}
		first = false
		switch t {
		case media.NALIDR:
			idr = true
		case media.NALSPS:
			sps = true
			h.params.remember(true, false, false, nal)
		case media.NALPPS:
			pps = true
			h.params.remember(false, true, false, nal)
		}
	}
	if idr {
		au = h.params.prepend(au, at, false, !sps, !pps)
	}
	return append(out, rawUnit{data: au, ts: ts, key: idr})
}
