package media

import (
	"bytes"
	"strings"
	"testing"
)

func TestNALTypeString(t *testing.T) {
	for _, tc := range []struct {
		t    NALType
		want string
	}{
		{NALSlice, "slice"}, {NALIDR, "IDR"}, {NALSEI, "SEI"}, {NALSPS, "SPS"},
		{NALPPS, "PPS"}, {NALAUD, "AUD"}, {NALFiller, "filler"}, {NALPrefix, "prefix"},
		{NALSubsetSPS, "subset-SPS"}, {NALSliceExt, "slice-ext"},
		{NALSTAPA, "STAP-A"}, {NALFUA, "FU-A"}, {0, "NALType(0)"}, {31, "NALType(31)"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("NALType(%d).String() = %q, want %q", uint8(tc.t), got, tc.want)
		}
	}
	// Every named type has a real name, so logs never show a bare number
	// for something the package knows about.
	for v := NALSlice; v <= NALFUB; v++ {
		if v == 22 || v == 23 {
			continue
		}
		if strings.HasPrefix(v.String(), "NALType(") && v != NALReserved17 && v != NALReserved18 {
			t.Errorf("type %d has no name", uint8(v))
		}
	}
}

func TestIsVCL(t *testing.T) {
	for v := range 32 {
		want := v >= 1 && v <= 5
		if got := NALType(v).IsVCL(); got != want {
			t.Errorf("NALType(%d).IsVCL() = %v, want %v", v, got, want)
		}
	}
}

func TestTypeOf(t *testing.T) {
	for _, tc := range []struct {
		nal  []byte
		want NALType
	}{
		{nil, 0},
		{[]byte{}, 0},
		{[]byte{0x67, 0x42}, NALSPS},
		{[]byte{0x68}, NALPPS},
		{[]byte{0x65, 0x88}, NALIDR},
		{[]byte{0x25}, NALIDR}, // nal_ref_idc 1 does not change the type
		{[]byte{0x41}, NALSlice},
		{[]byte{0x01}, NALSlice},
		{[]byte{0x06, 0x05}, NALSEI},
		{[]byte{0x09, 0xf0}, NALAUD},
		{[]byte{0x7c, 0x85}, NALFUA},
		{[]byte{0x78}, NALSTAPA},
		{[]byte{0xff}, 31}, // forbidden bit set: still just the low five bits
	} {
		if got := TypeOf(tc.nal); got != tc.want {
			t.Errorf("TypeOf(% x) = %v, want %v", tc.nal, got, tc.want)
		}
	}
}

func TestHasStartCode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"00", false},
		{"00 00", false},
		{"00 00 01", true},
		{"00 00 01 67", true},
		{"00 00 00 01", true},
		{"00 00 00 01 67", true},
		{"00 00 00 00 01", false},
		{"00 00 02", false},
		{"00 01", false},
		{"01 00 00 01", false},
		{"00 00 00", false},
	} {
		if got := HasStartCode(unhex(t, tc.in)); got != tc.want {
			t.Errorf("HasStartCode(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNextNAL(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		want  []string
		rest0 string // expected rest after the first NAL unit, if checked
	}{
		{name: "empty", in: "", want: nil},
		{name: "no start code", in: "65 88 84 00", want: nil},
		{name: "too short", in: "00 01 65", want: nil},
		{name: "only a start code", in: "00 00 01", want: nil},
		{name: "three-byte", in: "00 00 01 65 88 84", want: []string{"65 88 84"}},
		{name: "four-byte", in: "00 00 00 01 65 88 84", want: []string{"65 88 84"}},
		{
			name:  "four-byte pair",
			in:    "00 00 00 01 67 42 c0 1f 00 00 00 01 68 ce 3c 80",
			want:  []string{"67 42 c0 1f", "68 ce 3c 80"},
			rest0: "00 00 00 01 68 ce 3c 80",
		},
		{
			name:  "three then four",
			in:    "00 00 01 09 f0 00 00 00 01 65 88",
			want:  []string{"09 f0", "65 88"},
			rest0: "00 00 00 01 65 88",
		},
		{
			name:  "four then three",
			in:    "00 00 00 01 09 f0 00 00 01 65 88",
			want:  []string{"09 f0", "65 88"},
			rest0: "00 00 01 65 88",
		},
		{name: "leading garbage", in: "ff 12 00 34 00 00 01 09 f0", want: []string{"09 f0"}},
		{name: "leading zeros", in: "00 00 00 00 00 00 01 09 f0", want: []string{"09 f0"}},
		{
			name:  "trailing zeros",
			in:    "00 00 01 65 88 00 00 00 00 00 00 01 41 9a 00 00 00",
			want:  []string{"65 88", "41 9a"},
			rest0: "00 00 00 01 41 9a 00 00 00",
		},
		{name: "trailing zeros at end", in: "00 00 01 65 88 00", want: []string{"65 88"}},
		{name: "empty NAL skipped", in: "00 00 01 00 00 01 65 01", want: []string{"65 01"}},
		{name: "zero-only NAL skipped", in: "00 00 01 00 00 00 00 01 65 01", want: []string{"65 01"}},
		{name: "empty at end", in: "00 00 01 65 01 00 00 01", want: []string{"65 01"}},
		{name: "zeros only after start code", in: "00 00 01 00 00 00", want: nil},
		{
			name: "emulation prevention kept",
			in:   "00 00 01 67 00 00 03 01 00 00 03 00 80 00 00 01 68",
			want: []string{"67 00 00 03 01 00 00 03 00 80", "68"},
		},
		{name: "00 00 02 is data", in: "00 00 01 65 00 00 02 7f", want: []string{"65 00 00 02 7f"}},
		{name: "header byte zero", in: "00 00 01 00 01 02", want: []string{"00 01 02"}},
		{name: "single-byte NALs", in: "00 00 01 09 00 00 01 0a 00 00 01 0b", want: []string{"09", "0a", "0b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			var got []string
			first := true
			for nal, rest, ok := NextNAL(in); ok; nal, rest, ok = NextNAL(rest) {
				got = append(got, strings.TrimSpace(spaced(nal)))
				if first && tc.rest0 != "" {
					if !bytes.Equal(rest, unhex(t, tc.rest0)) {
						t.Errorf("rest after first = % x, want %s", rest, tc.rest0)
					}
				}
				first = false
				if len(got) > 100 {
					t.Fatal("NextNAL does not terminate")
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("NextNAL(%s) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func spaced(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		const h = "0123456789abcdef"
		sb.WriteByte(h[c>>4])
		sb.WriteByte(h[c&15])
	}
	return sb.String()
}

func TestNextNALEndsWithNil(t *testing.T) {
	in := unhex(t, "00 00 01 65 88")
	nal, rest, ok := NextNAL(in)
	if !ok || rest != nil || len(nal) != 2 {
		t.Fatalf("NextNAL = % x, %v, %v; want 65 88, nil, true", nal, rest, ok)
	}
	// The NAL unit aliases the input instead of being copied.
	if &nal[0] != &in[3] {
		t.Error("NextNAL copied the NAL unit")
	}
}

// TestNextNALStreams checks the real encoder output: the SPS comes first
// and the number of slices matches what ffprobe reports.
func TestNextNALStreams(t *testing.T) {
	for _, s := range testStreams {
		t.Run(s.file, func(t *testing.T) {
			data := readTestdata(t, s.file)
			nals := allNALs(data)
			if len(nals) == 0 {
				t.Fatal("no NAL units")
			}
			first := 0
			if s.aud {
				if TypeOf(nals[0]) != NALAUD {
					t.Errorf("first NAL unit is %v, want AUD", TypeOf(nals[0]))
				}
				first = 1
			}
			if got := TypeOf(nals[first]); got != NALSPS {
				t.Errorf("NAL unit %d is %v, want SPS", first, got)
			}
			vcl, total := 0, 0
			for _, n := range nals {
				if TypeOf(n).IsVCL() {
					vcl++
				}
				if n[len(n)-1] == 0 {
					t.Errorf("%v NAL unit ends in a zero byte", TypeOf(n))
				}
				total += 4 + len(n)
			}
			if want := s.frames * s.slices; vcl != want {
				t.Errorf("%d VCL NAL units, want %d", vcl, want)
			}
			if total > len(data)+4*len(nals) {
				t.Errorf("NAL units total %d bytes, more than the input allows", total)
			}
		})
	}
}

func TestIsKeyframe(t *testing.T) {
	// The first access units of a real stream: SPS PPS SEI IDR, then P.
	stream := readTestdata(t, "baseline_720p.h264")
	units := splitAll(t, stream, 0)
	for _, tc := range []struct {
		name string
		au   []byte
		want bool
	}{
		{"empty", nil, false},
		{"garbage", []byte{1, 2, 3, 4, 5}, false},
		{"bare IDR", unhex(t, "00 00 01 65 88"), true},
		{"IDR with ref idc 1", unhex(t, "00 00 00 01 25 88"), true},
		{"non-IDR slice", unhex(t, "00 00 00 01 41 9a"), false},
		{"parameter sets only", unhex(t, "00 00 00 01 67 42 00 00 00 01 68 ce"), false},
		{"IDR after AUD and SPS", unhex(t, "00 00 00 01 09 10 00 00 00 01 67 42 00 00 01 65 b8"), true},
		{"IDR type without start code", []byte{0x65, 0x88}, false},
		{"real keyframe", units[0], true},
		{"real P frame", units[1], false},
		{"whole stream", stream, true},
	} {
		if got := IsKeyframe(tc.au); got != tc.want {
			t.Errorf("%s: IsKeyframe = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNALAllocs(t *testing.T) {
	stream := readTestdata(t, "high_1080p.h264")
	units := splitAll(t, stream, 0)
	p := units[len(units)-1]
	var n int
	if a := testing.AllocsPerRun(100, func() {
		for nal, rest, ok := NextNAL(stream); ok; nal, rest, ok = NextNAL(rest) {
			n += len(nal)
		}
	}); a != 0 {
		t.Errorf("NextNAL allocates %v times per stream", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if IsKeyframe(p) || !IsKeyframe(stream) {
			n++
		}
	}); a != 0 {
		t.Errorf("IsKeyframe allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if HasStartCode(stream) && TypeOf(stream[4:]) == NALSPS {
			n++
		}
	}); a != 0 {
		t.Errorf("HasStartCode/TypeOf allocate %v times", a)
	}
	_ = n
}

// BenchmarkNextNAL walks a 720p keyframe access unit, the largest thing a
// source splits on its hot path.
func BenchmarkNextNAL(b *testing.B) {
	au := splitAll(b, readTestdata(b, "baseline_720p.h264"), 0)[0]
	b.SetBytes(int64(len(au)))
	b.ReportAllocs()
	for b.Loop() {
		for nal, rest, ok := NextNAL(au); ok; nal, rest, ok = NextNAL(rest) {
			_ = nal
		}
	}
}

func BenchmarkIsKeyframe(b *testing.B) {
	au := splitAll(b, readTestdata(b, "baseline_720p.h264"), 0)[1]
	b.SetBytes(int64(len(au)))
	b.ReportAllocs()
	for b.Loop() {
		if IsKeyframe(au) {
			b.Fatal("P frame reported as keyframe")
		}
	}
}

func FuzzNextNAL(f *testing.F) {
	for _, s := range testStreams[:3] {
		data := readTestdata(f, s.file)
		f.Add(data[:min(len(data), 512)])
	}
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		count := 0
		prev := b
		for nal, rest, ok := NextNAL(b); ok; nal, rest, ok = NextNAL(rest) {
			count++
			if count > len(b) {
				t.Fatal("more NAL units than input bytes")
			}
			if len(nal) == 0 {
				t.Fatal("empty NAL unit returned")
			}
			if nal[len(nal)-1] == 0 {
				t.Fatal("NAL unit ends in a zero byte")
			}
			if findStartCode(nal, 0) >= 0 {
				t.Fatalf("NAL unit % x contains a start code", nal)
			}
			// nal and rest are subslices of the previous remainder, in order.
			if !within(prev, nal) {
				t.Fatal("NAL unit is not inside the remaining input")
			}
			if rest != nil {
				if !within(prev, rest) || len(rest) >= len(prev) {
					t.Fatal("rest does not make progress inside the input")
				}
				if !HasStartCode(rest) {
					t.Fatalf("rest % x does not begin with a start code", rest[:min(len(rest), 8)])
				}
			}
			total += len(nal)
			if total > len(b) {
				t.Fatal("NAL units exceed the input length")
			}
			prev = rest
		}
		// IsKeyframe agrees with NextNAL.
		want := false
		for nal, rest, ok := NextNAL(b); ok; nal, rest, ok = NextNAL(rest) {
			want = want || TypeOf(nal) == NALIDR
		}
		if IsKeyframe(b) != want {
			t.Fatal("IsKeyframe disagrees with NextNAL")
		}
	})
}

// within reports whether sub lies inside outer's memory.
func within(outer, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	if len(outer) == 0 {
		return false
	}
	for i := range outer {
		if &outer[i] == &sub[0] {
			return i+len(sub) <= len(outer)
		}
	}
	return false
}
