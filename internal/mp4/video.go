package mp4

import (
	"bytes"
	"fmt"

	"github.com/p2pcast/p2pcast/internal/media"
)

// NAL unit types this package treats specially (H.264 Table 7-1, H.265 Table 7-1).
const (
	avcSPS, avcPPS, avcAUD, avcFiller = 7, 8, 9, 12
	hevcVPS, hevcSPS, hevcPPS         = 32, 33, 34
	hevcAUD, hevcFiller               = 35, 38
	hevcIRAPFirst, hevcIRAPLast       = 16, 23
)

// nalType returns the NAL unit type of nal for codec c (0 for an empty or short unit).
func nalType(c Codec, nal []byte) uint8 {
	if c == H265 {
		if len(nal) < 2 {
			return 0
		}
		return nal[0] >> 1 & 0x3f
	}
	return uint8(media.TypeOf(nal))
}

// skipNAL reports whether a NAL unit is left out of the stored sample. Access unit
// delimiters and filler data carry nothing a decoder of an MP4 sample needs: the sample
// boundary already delimits the access unit. Parameter sets stay in-band (as ffmpeg stores
// Annex-B input), so that a mid-file change (an encoder restarted at another size) still
// decodes and a file cut anywhere holds them at every keyframe.
func skipNAL(c Codec, t uint8) bool {
	if c == H265 {
		return t == hevcAUD || t == hevcFiller
	}
	return t == avcAUD || t == avcFiller
}

func isParameterSet(c Codec, t uint8) bool {
	if c == H265 {
		return t == hevcVPS || t == hevcSPS || t == hevcPPS
	}
	return t == avcSPS || t == avcPPS
}

// parameterSets returns copies of the parameter sets in an Annex-B access unit, each
// distinct one once.
func parameterSets(c Codec, au []byte) [][]byte {
	var out [][]byte
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if !isParameterSet(c, nalType(c, nal)) || containsNAL(out, nal) {
			continue
		}
		out = append(out, bytes.Clone(nal))
	}
	return out
}

func containsNAL(list [][]byte, nal []byte) bool {
	for _, n := range list {
		if bytes.Equal(n, nal) {
			return true
		}
	}
	return false
}

// videoConfig is what a visual sample entry needs from the parameter sets.
type videoConfig struct {
	width, height int
	record        []byte // the avcC or hvcC payload
}

// configure builds the decoder configuration record of a video track.
func configure(c Codec, ps [][]byte) (videoConfig, error) {
	if c == H265 {
		return hevcConfig(ps)
	}
	return avcConfig(ps)
}

// avcConfig builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with 4-byte
// NAL unit lengths.
func avcConfig(ps [][]byte) (videoConfig, error) {
	var sps, pps [][]byte
	for _, nal := range ps {
		switch nalType(H264, nal) {
		case avcSPS:
			sps = append(sps, nal)
		case avcPPS:
			pps = append(pps, nal)
		default:
			return videoConfig{}, fmt.Errorf("%w: H.264 NAL unit type %d is not a parameter set", ErrParameterSets, nalType(H264, nal))
		}
	}
	if len(sps) == 0 || len(pps) == 0 || len(sps) > 31 || len(pps) > 255 {
		return videoConfig{}, fmt.Errorf("%w: H.264 needs 1–31 SPS and 1–255 PPS, have %d and %d", ErrParameterSets, len(sps), len(pps))
	}
	info, err := media.ParseSPS(sps[0])
	if err != nil {
		return videoConfig{}, fmt.Errorf("%w: %w", ErrParameterSets, err)
	}
	cfg := videoConfig{width: info.Width, height: info.Height}
	b := boxBuf{}
	b.u8(1)
	b.bytes(sps[0][1:4]) // profile_idc, constraint flags, level_idc
	b.u8(0xfc | 3)       // lengthSizeMinusOne = 3
	b.u8(0xe0 | uint8(len(sps)))
	for _, nal := range sps {
		if len(nal) > 0xffff {
			return videoConfig{}, fmt.Errorf("%w: SPS of %d bytes", ErrParameterSets, len(nal))
		}
		b.u16(uint16(len(nal)))
		b.bytes(nal)
	}
	b.u8(uint8(len(pps)))
	for _, nal := range pps {
		if len(nal) > 0xffff {
			return videoConfig{}, fmt.Errorf("%w: PPS of %d bytes", ErrParameterSets, len(nal))
		}
		b.u16(uint16(len(nal)))
		b.bytes(nal)
	}
	switch info.ProfileIDC {
	case 100, 110, 122, 144:
		// The High profiles add the chroma format and bit depths (14496-15 5.3.3.1.2).
		b.u8(0xfc | info.ChromaFormat)
		b.u8(0xf8 | info.BitDepthLumaMinus8)
		b.u8(0xf8 | info.BitDepthChromaMinus8)
		b.u8(0) // numOfSequenceParameterSetExt
	}
	cfg.record = b.b
	return cfg, nil
}

// hevcConfig builds an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
func hevcConfig(ps [][]byte) (videoConfig, error) {
	var arrays [3][][]byte // VPS, SPS, PPS
	for _, nal := range ps {
		t := nalType(H265, nal)
		if t < hevcVPS || t > hevcPPS {
			return videoConfig{}, fmt.Errorf("%w: H.265 NAL unit type %d is not a parameter set", ErrParameterSets, t)
		}
		arrays[t-hevcVPS] = append(arrays[t-hevcVPS], nal)
	}
	for i, a := range arrays {
		if len(a) == 0 || len(a) > 16 {
			return videoConfig{}, fmt.Errorf("%w: H.265 needs 1–16 of each VPS, SPS and PPS, have %d of type %d", ErrParameterSets, len(a), hevcVPS+i)
		}
	}
	s, err := media.ParseH265SPS(arrays[1][0])
	if err != nil {
		return videoConfig{}, fmt.Errorf("%w: %w", ErrParameterSets, err)
	}
	b := boxBuf{}
	b.u8(1)
	b.bytes(s.PTL[:])
	b.u16(0xf000) // min_spatial_segmentation_idc 0
	b.u8(0xfc)    // parallelismType 0: unknown
	b.u8(0xfc | s.ChromaFormat)
	b.u8(0xf8 | s.BitDepthLumaMinus8)
	b.u8(0xf8 | s.BitDepthChromaMinus8)
	b.u16(0) // avgFrameRate: unspecified
	nested := uint8(0)
	if s.TemporalIDNesting {
		nested = 1
	}
	// constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
	b.u8((s.MaxSubLayersMinus1+1)<<3 | nested<<2 | 3)
	b.u8(3)
	for i, a := range arrays {
		// array_completeness 1: all parameter sets are here, as hvc1 requires.
		b.u8(0x80 | uint8(hevcVPS+i))
		b.u16(uint16(len(a)))
		for _, nal := range a {
			if len(nal) > 0xffff {
				return videoConfig{}, fmt.Errorf("%w: parameter set of %d bytes", ErrParameterSets, len(nal))
			}
			b.u16(uint16(len(nal)))
			b.bytes(nal)
		}
	}
	return videoConfig{width: s.Width, height: s.Height, record: b.b}, nil
}
