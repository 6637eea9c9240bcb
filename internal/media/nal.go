package media

import (
	"bytes"
	"errors"
	"strconv"
)

// Errors returned by this package. They are sentinels so callers can use
// errors.Is; the functions that return them usually wrap them with detail.
var (
	// ErrBadSPS reports a sequence parameter set that is truncated,
	// malformed or describes something p2pcast will not handle.
	ErrBadSPS = errors.New("media: bad H.264 sequence parameter set")
	// ErrAUTooLarge reports an access unit larger than the configured limit;
	// the limit exists so a broken producer cannot make us buffer without end.
	ErrAUTooLarge = errors.New("media: H.264 access unit too large")
	// ErrNotAnnexB reports a byte stream that does not begin with an
	// Annex-B start code, typically a producer writing a container format.
	ErrNotAnnexB = errors.New("media: stream is not H.264 Annex-B")
)

// NALType is the nal_unit_type of an H.264 NAL unit (the low five bits of
// its header byte).
type NALType uint8

// NAL unit types from ITU-T H.264 Table 7-1, plus the RTP aggregation and
// fragmentation types of RFC 6184 that share the same number space on the
// wire and that depacketizers need to recognise.
const (
	NALSlice       NALType = 1  // coded slice of a non-IDR picture
	NALSliceA      NALType = 2  // slice data partition A
	NALSliceB      NALType = 3  // slice data partition B
	NALSliceC      NALType = 4  // slice data partition C
	NALIDR         NALType = 5  // coded slice of an IDR picture
	NALSEI         NALType = 6  // supplemental enhancement information
	NALSPS         NALType = 7  // sequence parameter set
	NALPPS         NALType = 8  // picture parameter set
	NALAUD         NALType = 9  // access unit delimiter
	NALEndSeq      NALType = 10 // end of sequence
	NALEndStream   NALType = 11 // end of stream
	NALFiller      NALType = 12 // filler data
	NALSPSExt      NALType = 13 // sequence parameter set extension
	NALPrefix      NALType = 14 // prefix NAL unit (SVC/MVC)
	NALSubsetSPS   NALType = 15 // subset sequence parameter set (SVC/MVC)
	NALDPS         NALType = 16 // depth parameter set (3D-AVC)
	NALReserved17  NALType = 17 // reserved; still starts an access unit
	NALReserved18  NALType = 18 // reserved; still starts an access unit
	NALAuxSlice    NALType = 19 // coded slice of an auxiliary picture
	NALSliceExt    NALType = 20 // coded slice extension (SVC/MVC)
	NALSliceExtDep NALType = 21 // coded slice extension for depth views

	NALSTAPA  NALType = 24 // RFC 6184 single-time aggregation packet A
	NALSTAPB  NALType = 25 // RFC 6184 single-time aggregation packet B
	NALMTAP16 NALType = 26 // RFC 6184 multi-time aggregation packet, 16-bit offsets
	NALMTAP24 NALType = 27 // RFC 6184 multi-time aggregation packet, 24-bit offsets
	NALFUA    NALType = 28 // RFC 6184 fragmentation unit A
	NALFUB    NALType = 29 // RFC 6184 fragmentation unit B
)

// String returns a short human-readable name, for logs and test failures.
func (t NALType) String() string {
	switch t {
	case NALSlice:
		return "slice"
	case NALSliceA:
		return "slice-A"
	case NALSliceB:
		return "slice-B"
	case NALSliceC:
		return "slice-C"
	case NALIDR:
		return "IDR"
	case NALSEI:
		return "SEI"
	case NALSPS:
		return "SPS"
	case NALPPS:
		return "PPS"
	case NALAUD:
		return "AUD"
	case NALEndSeq:
		return "end-of-seq"
	case NALEndStream:
		return "end-of-stream"
	case NALFiller:
		return "filler"
	case NALSPSExt:
		return "SPS-ext"
	case NALPrefix:
		return "prefix"
	case NALSubsetSPS:
		return "subset-SPS"
	case NALDPS:
		return "DPS"
	case NALAuxSlice:
		return "aux-slice"
	case NALSliceExt:
		return "slice-ext"
	case NALSliceExtDep:
		return "slice-ext-depth"
	case NALSTAPA:
		return "STAP-A"
	case NALSTAPB:
		return "STAP-B"
	case NALMTAP16:
		return "MTAP16"
	case NALMTAP24:
		return "MTAP24"
	case NALFUA:
		return "FU-A"
	case NALFUB:
		return "FU-B"
	}
	return "NALType(" + strconv.Itoa(int(t)) + ")"
}

// IsVCL reports whether t carries coded picture data of the primary picture
// (types 1 to 5). Auxiliary and extension slices (19 to 21) are deliberately
// excluded: they never begin an access unit and decoders that only know
// the base layer ignore them.
func (t NALType) IsVCL() bool { return t >= NALSlice && t <= NALIDR }

// TypeOf returns the type of a NAL unit given without start code (0 for
// empty input).
func TypeOf(nal []byte) NALType {
	if len(nal) == 0 {
		return 0
	}
	return NALType(nal[0] & 0x1f)
}

// HasStartCode reports whether b begins with 00 00 01 or 00 00 00 01.
func HasStartCode(b []byte) bool {
	if len(b) >= 3 && b[0] == 0 && b[1] == 0 {
		if b[2] == 1 {
			return true
		}
		return len(b) >= 4 && b[2] == 0 && b[3] == 1
	}
	return false
}

// findStartCode returns the index of the 0x01 byte of the first start code
// (00 00 01) in b whose zero bytes lie at or after from, or -1. Searching for
// the rare 0x01 byte with bytes.IndexByte is much faster than testing every
// position, because compressed slice data is dense in single zero bytes but
// 0x01 appears only about once every 256 bytes.
func findStartCode(b []byte, from int) int {
	for k := from + 2; k < len(b); k++ {
		x := bytes.IndexByte(b[k:], 1)
		if x < 0 {
			return -1
		}
		k += x
		if b[k-1] == 0 && b[k-2] == 0 {
			return k
		}
	}
	return -1
}

// trimZeros drops trailing_zero_8bits; a NAL unit proper always ends in the
// rbsp stop bit (or a 0x03 emulation prevention byte), never in 0x00.
func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// NextNAL finds the first NAL unit in b (Annex-B: start codes 00 00 01 or
// 00 00 00 01). It returns the NAL unit without its start code and with
// trailing zero bytes (trailing_zero_8bits) removed, and rest = the bytes
// from the next start code on (nil at the end). Bytes before the first start
// code are skipped, and so are NAL units that are empty once trailing zeros
// are removed, since they carry nothing a decoder could use. ok is false when
// b holds no further NAL unit. It does not allocate. Intended loop:
//
//	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) { ... }
func NextNAL(b []byte) (nal, rest []byte, ok bool) {
	for i := findStartCode(b, 0); i >= 0; {
		p := i + 1
		j := findStartCode(b, p)
		if j < 0 {
			nal = trimZeros(b[p:])
			if len(nal) == 0 {
				return nil, nil, false
			}
			return nal, nil, true
		}
		nal = trimZeros(b[p : j-2])
		if len(nal) > 0 {
			// Hand back a four-byte start code in rest when there is one, so
			// that rest still "begins with a start code" as a whole.
			r := j - 2
			if r > p && b[r-1] == 0 {
				r--
			}
			return nal, b[r:], true
		}
		i = j
	}
	return nil, nil, false
}

// IsKeyframe reports whether the Annex-B access unit contains an IDR slice,
// i.e. whether a decoder can start from it (given the parameter sets). Only
// IDR counts: recovery-point SEI "keyframes" are not reliable starting
// points for every browser decoder. It does not allocate.
func IsKeyframe(annexB []byte) bool {
	for nal, rest, ok := NextNAL(annexB); ok; nal, rest, ok = NextNAL(rest) {
		if TypeOf(nal) == NALIDR {
			return true
		}
	}
	return false
}
