package congestion

import (
	"encoding/binary"
	"errors"
)

// Transport-wide feedback is read in place, where it lies in the received packet: a viewer
// sends one every 50–100 ms, and pion/rtcp's parse of it allocated a pointer per packet
// status and one per chunk (the device's largest allocation left at 300 viewers,
// docs/performance.md). What is accepted is exactly what rtcp.TransportLayerCC.Unmarshal
// accepts, quirks included (FuzzFeedbackParse checks both ways).

// Wire format (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1): the RTCP header
// (V=2, FMT 15, PT 205), sender and media SSRC, base sequence number (16), packet status
// count (16), reference time (24, in 64 ms), feedback packet count (8), then 16-bit packet
// status chunks covering count statuses, then a receive delta per received status (8 bits,
// or 16 signed for a large delta; in 250 µs).
const (
	twccType      = 205 // transport-layer feedback
	twccFormat    = 15
	twccChunksAt  = 20 // header, two SSRCs, base, count, reference time, feedback count
	deltaUnitUs   = 250
	symNotRecv    = 0
	symSmallDelta = 1
	symLargeDelta = 2
	symNoDelta    = 3
)

// ErrFeedback is a transport-wide feedback packet that cannot be read.
var ErrFeedback = errors.New("congestion: malformed transport-wide feedback")

// IsFeedback says whether b, one RTCP packet, is transport-wide feedback by its header.
func IsFeedback(b []byte) bool {
	return len(b) >= 4 && b[0]>>6 == 2 && b[0]&0x1f == twccFormat && b[1] == twccType
}

// feedback is one transport-wide feedback packet, checked, with its parts still in the
// packet's bytes.
type feedback struct {
	base   uint16
	count  int
	ref    uint32 // 24 bits
	chunks []byte // packet status chunks, 2 bytes each
	deltas []byte // receive deltas, from the first
}

// parseFeedback checks b, one RTCP packet, as rtcp.TransportLayerCC.Unmarshal does, and
// returns its parts. It allocates nothing.
func parseFeedback(b []byte) (feedback, error) {
	if len(b) < 8 || !IsFeedback(b) {
		return feedback{}, ErrFeedback
	}
	total := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
	if total < twccChunksAt || len(b) < total {
		return feedback{}, ErrFeedback
	}
	fb := feedback{
		base:  binary.BigEndian.Uint16(b[12:]),
		count: int(binary.BigEndian.Uint16(b[14:])),
		ref:   uint32(b[16])<<16 | uint32(b[17])<<8 | uint32(b[18]),
	}
	// The chunks: as many as cover count statuses. Like pion/rtcp, a status vector counts
	// all its symbols (and wants a delta for each received one) even past count, and the
	// count of statuses covered wraps at 16 bits.
	pos, deltaBytes := twccChunksAt, 0
	for covered := uint16(0); int(covered) < fb.count; pos += 2 {
		if pos+2 >= total {
			return feedback{}, ErrFeedback
		}
		c := binary.BigEndian.Uint16(b[pos:])
		if c&0x8000 == 0 { // run length: symbol (2 bits), run (13)
			sym, run := c>>13&3, c&0x1fff
			n := min(uint16(fb.count)-covered, run)
			deltaBytes += int(n) * deltaSize(sym)
			covered += n
			continue
		}
		if c&0x4000 == 0 { // 14 one-bit symbols: 1 is received with a small delta
			for k := range 14 {
				deltaBytes += int(c >> (13 - k) & 1)
			}
			covered += 14
			continue
		}
		for k := range 7 { // 7 two-bit symbols
			deltaBytes += deltaSize(c >> (12 - 2*k) & 3)
		}
		covered += 7
	}
	if pos+deltaBytes > total {
		return feedback{}, ErrFeedback
	}
	fb.chunks, fb.deltas = b[twccChunksAt:pos], b[pos:total]
	return fb, nil
}

// deltaSize is how many bytes of receive delta status sym has.
func deltaSize(sym uint16) int {
	switch sym {
	case symSmallDelta:
		return 1
	case symLargeDelta:
		return 2
	}
	return 0
}

// statuses walks a feedback's count statuses in order, each with its receive delta.
type statuses struct {
	fb      feedback
	i       int    // statuses returned
	chunk   int    // byte offset of the current chunk in fb.chunks
	inChunk int    // statuses of the current chunk already returned
	deltaAt int    // byte offset of the next delta in fb.deltas
	c       uint16 // the current chunk
}

func (fb feedback) statuses() statuses {
	return statuses{fb: fb, chunk: -2}
}

// next returns the next status's symbol and, for a received one with a delta, the delta in
// µs; false after the last.
func (s *statuses) next() (sym uint16, deltaUs int64, ok bool) {
	if s.i >= s.fb.count {
		return 0, 0, false
	}
	for s.chunk < 0 || s.inChunk >= s.chunkLen() {
		s.chunk += 2
		if s.chunk+2 > len(s.fb.chunks) {
			return 0, 0, false // cannot be after parseFeedback: the chunks cover count
		}
		s.c, s.inChunk = binary.BigEndian.Uint16(s.fb.chunks[s.chunk:]), 0
	}
	switch {
	case s.c&0x8000 == 0:
		sym = s.c >> 13 & 3
	case s.c&0x4000 == 0:
		sym = s.c >> (13 - s.inChunk) & 1
	default:
		sym = s.c >> (12 - 2*s.inChunk) & 3
	}
	s.inChunk++
	s.i++
	switch sym {
	case symSmallDelta:
		deltaUs = int64(s.fb.deltas[s.deltaAt]) * deltaUnitUs
		s.deltaAt++
	case symLargeDelta:
		deltaUs = int64(int16(binary.BigEndian.Uint16(s.fb.deltas[s.deltaAt:]))) * deltaUnitUs
		s.deltaAt += 2
	}
	return sym, deltaUs, true
}

// chunkLen is how many statuses the current chunk holds.
func (s *statuses) chunkLen() int {
	switch {
	case s.c&0x8000 == 0:
		return int(s.c & 0x1fff)
	case s.c&0x4000 == 0:
		return 14
	}
	return 7
}
