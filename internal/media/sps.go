package media

import (
	"fmt"
	"math"
)

// SPS holds what p2pcast needs from a sequence parameter set: enough to
// write SDP and recording headers, and to sanity-check what a source sends.
type SPS struct {
	ProfileIDC      uint8
	ConstraintFlags uint8 // the constraint_set0..5 byte as in the bitstream
	LevelIDC        uint8
	ID              uint32
	Width, Height   int // after frame cropping
	FrameMbsOnly    bool
	// ChromaFormat is chroma_format_idc (1, 4:2:0, unless a High profile says otherwise);
	// BitDepthLumaMinus8 and BitDepthChromaMinus8 are 0 unless a High profile says otherwise.
	ChromaFormat                             uint8
	BitDepthLumaMinus8, BitDepthChromaMinus8 uint8
	FPS                                      float64 // from VUI timing info if present (time_scale / (2*num_units_in_tick)), else 0
}

// maxDimension bounds width and height. Level 6.2 tops out at 8192x4320;
// anything twice that is a corrupt or hostile SPS, and refusing it keeps
// later buffer sizing (recording, decoders in browsers) sane.
const maxDimension = 16384

// maxPlausibleFPS bounds the VUI frame rate we report. Encoders sometimes
// write a timing_info whose time_scale is a clock rate rather than a frame
// rate (fixed_frame_rate_flag = 0); a "frame rate" beyond this is not one,
// and reporting 0 (unknown) is more useful than a silly number.
const maxPlausibleFPS = 1000

// hasChromaInfo reports whether profile_idc carries chroma_format_idc, bit
// depths and scaling lists in the SPS (7.3.2.1.1): the High profiles and the
// SVC/MVC/3D profiles derived from them.
func hasChromaInfo(profile uint8) bool {
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

func badSPS(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadSPS}, args...)...)
}

// ParseSPS parses a NAL unit (without start code, with its 1-byte header,
// type 7). It removes emulation prevention bytes itself, handles the High
// profiles' chroma_format_idc and scaling lists, and returns an error
// wrapping ErrBadSPS on truncated or absurd input (e.g. width > 16384). It
// never panics.
//
// The VUI is read only as far as the timing info. A VUI that is truncated
// or malformed before that point leaves FPS at 0 rather than failing the
// whole SPS: the VUI is optional, informational, and some cameras get it
// wrong, while the picture size before it is what p2pcast really needs.
func ParseSPS(nal []byte) (SPS, error) {
	var s SPS
	if len(nal) == 0 {
		return s, badSPS("empty NAL unit")
	}
	if nal[0]&0x80 != 0 {
		return s, badSPS("forbidden_zero_bit set")
	}
	if t := TypeOf(nal); t != NALSPS {
		return s, badSPS("NAL unit type %d (%v), want 7", uint8(t), t)
	}
	r := rbspReader{b: nal[1:]}

	s.ProfileIDC = uint8(r.bits(8))
	s.ConstraintFlags = uint8(r.bits(8))
	s.LevelIDC = uint8(r.bits(8))
	s.ID = r.ue()
	if r.err != nil {
		return SPS{}, badSPS("header: %v", r.err)
	}
	if s.ID > 31 {
		return SPS{}, badSPS("seq_parameter_set_id %d > 31", s.ID)
	}

	chromaFormat := uint32(1) // 4:2:0 is implied when not signalled
	separateColourPlane := false
	if hasChromaInfo(s.ProfileIDC) {
		chromaFormat = r.ue()
		if chromaFormat > 3 {
			return SPS{}, badSPS("chroma_format_idc %d > 3", chromaFormat)
		}
		if chromaFormat == 3 {
			separateColourPlane = r.flag()
		}
		d := r.ue()
		if d > 6 {
			return SPS{}, badSPS("bit_depth_luma_minus8 %d > 6", d)
		}
		s.BitDepthLumaMinus8 = uint8(d)
		if d = r.ue(); d > 6 {
			return SPS{}, badSPS("bit_depth_chroma_minus8 %d > 6", d)
		}
		s.BitDepthChromaMinus8 = uint8(d)
		r.flag()      // qpprime_y_zero_transform_bypass_flag
		if r.flag() { // seq_scaling_matrix_present_flag
			lists := 8
			if chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if !r.flag() { // seq_scaling_list_present_flag[i]
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				if err := skipScalingList(&r, size); err != nil {
					return SPS{}, err
				}
			}
		}
		if r.err != nil {
			return SPS{}, badSPS("chroma info: %v", r.err)
		}
	}
	s.ChromaFormat = uint8(chromaFormat)

	if v := r.ue(); v > 12 {
		return SPS{}, badSPS("log2_max_frame_num_minus4 %d > 12", v)
	}
	switch pocType := r.ue(); pocType {
	case 0:
		if v := r.ue(); v > 12 {
			return SPS{}, badSPS("log2_max_pic_order_cnt_lsb_minus4 %d > 12", v)
		}
	case 1:
		r.flag() // delta_pic_order_always_zero_flag
		r.se()   // offset_for_non_ref_pic
		r.se()   // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return SPS{}, badSPS("num_ref_frames_in_pic_order_cnt_cycle %d > 255", n)
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.se() // offset_for_ref_frame[i]
		}
	case 2:
	default:
		if r.err == nil {
			return SPS{}, badSPS("pic_order_cnt_type %d > 2", pocType)
		}
	}
	r.ue()   // max_num_ref_frames
	r.flag() // gaps_in_frame_num_value_allowed_flag
	widthMbs := uint64(r.ue()) + 1
	heightMapUnits := uint64(r.ue()) + 1
	s.FrameMbsOnly = r.flag()
	if !s.FrameMbsOnly {
		r.flag() // mb_adaptive_frame_field_flag
	}
	r.flag() // direct_8x8_inference_flag
	var cropLeft, cropRight, cropTop, cropBottom uint64
	if r.flag() { // frame_cropping_flag
		cropLeft, cropRight = uint64(r.ue()), uint64(r.ue())
		cropTop, cropBottom = uint64(r.ue()), uint64(r.ue())
	}
	if r.err != nil {
		return SPS{}, badSPS("picture size: %v", r.err)
	}

	// Frame size, 7.4.2.1.1: with field coding a map unit is a pair of
	// macroblock rows.
	fieldFactor := uint64(1)
	if !s.FrameMbsOnly {
		fieldFactor = 2
	}
	width := widthMbs * 16
	height := fieldFactor * heightMapUnits * 16
	if width > maxDimension || height > maxDimension {
		return SPS{}, badSPS("coded size %dx%d exceeds %d", width, height, maxDimension)
	}
	// Cropping is in chroma sample units (equations 7-19 to 7-22), so the
	// chroma format decides how many luma samples one unit removes.
	cropUnitX, cropUnitY := uint64(1), fieldFactor
	if !separateColourPlane && chromaFormat != 0 {
		subWidthC, subHeightC := uint64(1), uint64(1)
		if chromaFormat == 1 || chromaFormat == 2 {
			subWidthC = 2
		}
		if chromaFormat == 1 {
			subHeightC = 2
		}
		cropUnitX, cropUnitY = subWidthC, subHeightC*fieldFactor
	}
	// Each crop value is at most 2^32-1 and the unit at most 4, so these
	// sums cannot overflow uint64.
	cropX := cropUnitX * (cropLeft + cropRight)
	cropY := cropUnitY * (cropTop + cropBottom)
	if cropX >= width || cropY >= height {
		return SPS{}, badSPS("cropping %d,%d removes the whole %dx%d picture", cropX, cropY, width, height)
	}
	s.Width = int(width - cropX)
	s.Height = int(height - cropY)

	if r.flag() { // vui_parameters_present_flag
		s.FPS = vuiFPS(&r)
	}
	return s, nil
}

// skipScalingList reads past scaling_list() (7.3.2.1.1.1); p2pcast needs
// none of the values but must consume exactly the right number of bits to
// reach the picture size.
func skipScalingList(r *rbspReader, size int) error {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			delta := r.se()
			if r.err != nil {
				return badSPS("scaling list: %v", r.err)
			}
			if delta < -128 || delta > 127 {
				return badSPS("delta_scale %d out of range", delta)
			}
			next = (last + delta + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
	return nil
}

// vuiFPS reads vui_parameters() (E.1.1) up to the timing info and returns
// time_scale / (2*num_units_in_tick), or 0 if absent, malformed or absurd.
// The factor two is because H.264 counts ticks per field.
func vuiFPS(r *rbspReader) float64 {
	if r.flag() { // aspect_ratio_info_present_flag
		if r.bits(8) == 255 { // aspect_ratio_idc == Extended_SAR
			r.bits(16) // sar_width
			r.bits(16) // sar_height
		}
	}
	if r.flag() { // overscan_info_present_flag
		r.flag() // overscan_appropriate_flag
	}
	if r.flag() { // video_signal_type_present_flag
		r.bits(3)     // video_format
		r.flag()      // video_full_range_flag
		if r.flag() { // colour_description_present_flag
			r.bits(24) // colour_primaries, transfer_characteristics, matrix_coefficients
		}
	}
	if r.flag() { // chroma_loc_info_present_flag
		r.ue()
		r.ue()
	}
	if !r.flag() { // timing_info_present_flag
		return 0
	}
	units := r.bits(32)
	scale := r.bits(32)
	if r.err != nil || units == 0 || scale == 0 {
		return 0
	}
	fps := float64(scale) / (2 * float64(units))
	if fps > maxPlausibleFPS || math.IsNaN(fps) {
		return 0
	}
	return fps
}

// ProfileLevelID returns the 6-hex-digit SDP profile-level-id (RFC 6184
// section 8.1, e.g. "42e01f") for this SPS: profile_idc, the constraint
// byte and level_idc exactly as in the bitstream, so the SDP describes what
// is really sent.
func (s SPS) ProfileLevelID() string {
	const hexDigits = "0123456789abcdef"
	var out [6]byte
	for i, v := range [3]uint8{s.ProfileIDC, s.ConstraintFlags, s.LevelIDC} {
		out[2*i] = hexDigits[v>>4]
		out[2*i+1] = hexDigits[v&0x0f]
	}
	return string(out[:])
}

// FirstSPS parses the first SPS of an Annex-B access unit, if it holds one that parses.
func FirstSPS(au []byte) (SPS, bool) {
	for nal, rest, ok := NextNAL(au); ok; nal, rest, ok = NextNAL(rest) {
		if TypeOf(nal) == NALSPS {
			sps, err := ParseSPS(nal)
			return sps, err == nil
		}
	}
	return SPS{}, false
}
