package media

// H.265 parameter sets: what a muxer (hvcC) and a receiver (the picture size) need from the
// SPS. One parser for internal/mp4, internal/rtsp and the viewer.

// H265SPSType is the NAL unit type of an H.265 SPS.
const H265SPSType = 33

// H265SPS is what p2pcast reads from an H.265 SPS (ITU-T H.265 7.3.2.2), as far as the bit
// depths.
type H265SPS struct {
	// PTL are the general profile_tier_level bytes (profile space … level_idc) as hvcC
	// repeats them.
	PTL                [12]byte
	MaxSubLayersMinus1 uint8
	TemporalIDNesting  bool
	// ChromaFormat is chroma_format_idc; the depths are bit_depth_*_minus8.
	ChromaFormat                             uint8
	BitDepthLumaMinus8, BitDepthChromaMinus8 uint8
	Width, Height                            int // after the conformance window
}

// ParseH265SPS parses an H.265 SPS NAL unit (with its 2-byte header). Errors wrap ErrBadSPS;
// it never panics.
func ParseH265SPS(nal []byte) (H265SPS, error) {
	var s H265SPS
	if len(nal) < 3 || (nal[0]>>1)&0x3f != H265SPSType {
		return s, badSPS("not an H.265 SPS")
	}
	r := rbspReader{b: nal[2:]}
	r.bits(4) // sps_video_parameter_set_id
	s.MaxSubLayersMinus1 = uint8(r.bits(3))
	s.TemporalIDNesting = r.flag()
	for i := range s.PTL {
		s.PTL[i] = uint8(r.bits(8)) // general profile, tier, compatibility, constraints, level
	}
	sub := int(s.MaxSubLayersMinus1)
	if sub > 6 {
		return s, badSPS("H.265 sps_max_sub_layers_minus1 %d", sub)
	}
	var profilePresent, levelPresent [8]bool
	for i := range sub {
		profilePresent[i], levelPresent[i] = r.flag(), r.flag()
	}
	if sub > 0 {
		r.bits(2 * (8 - sub)) // reserved_zero_2bits
	}
	for i := range sub {
		if profilePresent[i] {
			r.bits(32)
			r.bits(32)
			r.bits(24) // 88 bits of sub-layer profile
		}
		if levelPresent[i] {
			r.bits(8)
		}
	}
	if r.ue() > 15 { // sps_seq_parameter_set_id
		return s, badSPS("H.265 sps_seq_parameter_set_id")
	}
	chroma := r.ue()
	if chroma > 3 {
		return s, badSPS("H.265 chroma_format_idc %d", chroma)
	}
	if chroma == 3 {
		r.flag() // separate_colour_plane_flag
	}
	w, h := int64(r.ue()), int64(r.ue())
	if r.flag() { // conformance_window_flag
		subW, subH := int64(1), int64(1)
		if chroma == 1 || chroma == 2 {
			subW = 2
		}
		if chroma == 1 {
			subH = 2
		}
		left, right, top, bottom := int64(r.ue()), int64(r.ue()), int64(r.ue()), int64(r.ue())
		w -= subW * (left + right)
		h -= subH * (top + bottom)
	}
	depthLuma, depthChroma := r.ue(), r.ue()
	if r.err != nil {
		return s, badSPS("H.265 SPS: %v", r.err)
	}
	if w <= 0 || h <= 0 || w > maxDimension || h > maxDimension {
		return s, badSPS("H.265 picture %dx%d", w, h)
	}
	if depthLuma > 8 || depthChroma > 8 {
		return s, badSPS("H.265 bit depths %d/%d", depthLuma+8, depthChroma+8)
	}
	s.ChromaFormat = uint8(chroma)
	s.BitDepthLumaMinus8, s.BitDepthChromaMinus8 = uint8(depthLuma), uint8(depthChroma)
	s.Width, s.Height = int(w), int(h)
	return s, nil
}
