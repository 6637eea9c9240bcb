package media

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The streams under testdata/ were made once with ffmpeg 5.1 / libx264 and
// kept small (a few frames, high CRF) so the repository stays light:
//
//	ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -frames:v 3 -c:v libx264 -profile:v baseline -crf 45 -f h264 baseline_720p.h264
//	ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -frames:v 3 -c:v libx264 -profile:v high -crf 45 -f h264 high_1080p.h264
//	ffmpeg -f lavfi -i testsrc2=size=640x360:rate=25 -frames:v 4 -c:v libx264 -profile:v main -crf 40 -f h264 main_360p.h264
//	ffmpeg -f lavfi -i testsrc2=size=640x360:rate=25 -frames:v 4 -c:v libx264 -profile:v main -crf 40 -bsf:v h264_metadata=aud=insert -f h264 main_360p_aud.h264
//	ffmpeg -f lavfi -i testsrc2=size=640x360:rate=25 -frames:v 3 -c:v libx264 -profile:v baseline -crf 45 -x264-params slices=4 -f h264 slices_360p.h264
//	ffmpeg -f lavfi -i testsrc2=size=640x360:rate=30 -frames:v 2 -c:v libx264 -profile:v high -crf 45 -x264-params interlaced=1 -f h264 interlaced_360p.h264
//	ffmpeg -f lavfi -i testsrc2=size=640x360:rate=30 -frames:v 2 -pix_fmt yuv444p -c:v libx264 -profile:v high444 -crf 45 -x264-params cqm=jvt -f h264 high444_cqm_360p.h264
//
// 1080 and 360 are not multiples of 16, so those streams exercise frame
// cropping; the interlaced one exercises field map units (MBAFF), and the
// 4:4:4 one chroma_format_idc 3 with explicit scaling lists.
type testStream struct {
	file   string
	frames int // pictures ffprobe counts
	slices int // slices per picture
	aud    bool
}

var testStreams = []testStream{
	{"baseline_720p.h264", 3, 1, false},
	{"high_1080p.h264", 3, 1, false},
	{"main_360p.h264", 4, 1, false},
	{"main_360p_aud.h264", 4, 1, true},
	{"slices_360p.h264", 3, 4, false},
	{"interlaced_360p.h264", 2, 1, false},
	{"high444_cqm_360p.h264", 2, 1, false},
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// firstNAL returns the first NAL unit of type t in an Annex-B stream.
func firstNAL(tb testing.TB, stream []byte, t NALType) []byte {
	tb.Helper()
	for nal, rest, ok := NextNAL(stream); ok; nal, rest, ok = NextNAL(rest) {
		if TypeOf(nal) == t {
			return nal
		}
	}
	tb.Fatalf("no %v NAL unit in stream", t)
	return nil
}

// allNALs splits an Annex-B buffer with NextNAL.
func allNALs(b []byte) [][]byte {
	var out [][]byte
	for nal, rest, ok := NextNAL(b); ok; nal, rest, ok = NextNAL(rest) {
		out = append(out, nal)
	}
	return out
}

// unhex decodes hex with optional spaces, for readable tables.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// bitWriter builds RBSPs for synthetic parameter sets, so tests can reach
// SPS shapes (odd profiles, huge sizes, emulation prevention) that the
// real encoder does not produce.
type bitWriter struct {
	b []byte
	n uint // bits used in the last byte; 0 or 8 means a new byte is needed
}

func (w *bitWriter) u(bits int, v uint64) {
	for i := bits - 1; i >= 0; i-- {
		if w.n == 0 || w.n == 8 {
			w.b = append(w.b, 0)
			w.n = 0
		}
		if v>>uint(i)&1 == 1 {
			w.b[len(w.b)-1] |= 0x80 >> w.n
		}
		w.n++
	}
}

func (w *bitWriter) flag(f bool) {
	if f {
		w.u(1, 1)
	} else {
		w.u(1, 0)
	}
}

func (w *bitWriter) ue(v uint64) {
	x := v + 1
	l := 0
	for t := x; t > 0; t >>= 1 {
		l++
	}
	w.u(l-1, 0)
	w.u(l, x)
}

func (w *bitWriter) se(v int64) {
	if v > 0 {
		w.ue(uint64(2*v - 1))
	} else {
		w.ue(uint64(-2 * v))
	}
}

// trailing writes rbsp_trailing_bits.
func (w *bitWriter) trailing() {
	w.u(1, 1)
	for w.n != 8 {
		w.u(1, 0)
	}
}

// escapeRBSP inserts emulation prevention bytes (7.4.1).
func escapeRBSP(rbsp []byte) []byte {
	out := make([]byte, 0, len(rbsp)+len(rbsp)/2)
	zeros := 0
	for _, c := range rbsp {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// spsFields describes a synthetic SPS.
type spsFields struct {
	profile, constraints, level uint8
	id                          uint64
	chromaFormat                uint64 // written only for High profiles
	separateColourPlane         bool
	scalingLists                []int // indices of lists to send, each with deltas
	pocType                     uint64
	pocCycle                    []int64 // offset_for_ref_frame values for pocType 1
	pocOffset                   int64   // offset_for_non_ref_pic and top_to_bottom for pocType 1
	widthMbsMinus1              uint64
	heightMapUnitsMinus1        uint64
	frameMbsOnly                bool
	crop                        *[4]uint64 // left, right, top, bottom
	vui                         bool
	sar                         bool
	timing                      [2]uint64 // num_units_in_tick, time_scale; zero means absent
}

func buildSPS(f spsFields) []byte {
	var w bitWriter
	w.u(8, 0x67)
	w.u(8, uint64(f.profile))
	w.u(8, uint64(f.constraints))
	w.u(8, uint64(f.level))
	w.ue(f.id)
	if hasChromaInfo(f.profile) {
		w.ue(f.chromaFormat)
		if f.chromaFormat == 3 {
			w.flag(f.separateColourPlane)
		}
		w.ue(0) // bit_depth_luma_minus8
		w.ue(0) // bit_depth_chroma_minus8
		w.flag(false)
		w.flag(len(f.scalingLists) > 0)
		if len(f.scalingLists) > 0 {
			n := 8
			if f.chromaFormat == 3 {
				n = 12
			}
			send := map[int]bool{}
			for _, i := range f.scalingLists {
				send[i] = true
			}
			for i := range n {
				w.flag(send[i])
				if !send[i] {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				// Deltas that walk the scale around without hitting 0
				// (which would end the list early).
				for j := range size {
					if j%2 == 0 {
						w.se(5)
					} else {
						w.se(-3)
					}
				}
			}
		}
	}
	w.ue(0) // log2_max_frame_num_minus4
	w.ue(f.pocType)
	switch f.pocType {
	case 0:
		w.ue(2)
	case 1:
		w.flag(false)
		w.se(f.pocOffset)
		w.se(f.pocOffset)
		w.ue(uint64(len(f.pocCycle)))
		for _, v := range f.pocCycle {
			w.se(v)
		}
	}
	w.ue(1) // max_num_ref_frames
	w.flag(false)
	w.ue(f.widthMbsMinus1)
	w.ue(f.heightMapUnitsMinus1)
	w.flag(f.frameMbsOnly)
	if !f.frameMbsOnly {
		w.flag(true)
	}
	w.flag(true) // direct_8x8_inference_flag
	w.flag(f.crop != nil)
	if f.crop != nil {
		for _, c := range f.crop {
			w.ue(c)
		}
	}
	w.flag(f.vui)
	if f.vui {
		w.flag(f.sar)
		if f.sar {
			w.u(8, 255)
			w.u(16, 4)
			w.u(16, 3)
		}
		w.flag(true) // overscan_info_present_flag
		w.flag(false)
		w.flag(true) // video_signal_type_present_flag
		w.u(3, 5)
		w.flag(false)
		w.flag(true) // colour_description_present_flag
		w.u(24, 0x010101)
		w.flag(true) // chroma_loc_info_present_flag
		w.ue(0)
		w.ue(0)
		w.flag(f.timing != [2]uint64{})
		if f.timing != [2]uint64{} {
			w.u(32, f.timing[0])
			w.u(32, f.timing[1])
			w.flag(true)
		}
		w.flag(false) // nal_hrd_parameters_present_flag
		w.flag(false) // vcl_hrd_parameters_present_flag
		w.flag(false) // pic_struct_present_flag
		w.flag(false) // bitstream_restriction_flag
	}
	w.trailing()
	return escapeRBSP(w.b)
}
