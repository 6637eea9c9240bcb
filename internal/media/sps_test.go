package media

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestParseSPSStreams(t *testing.T) {
	for _, tc := range []struct {
		file       string
		want       SPS
		profileLev string
	}{
		{"baseline_720p.h264", SPS{ProfileIDC: 66, ConstraintFlags: 0xc0, LevelIDC: 31, Width: 1280, Height: 720, FrameMbsOnly: true, ChromaFormat: 1, FPS: 30}, "42c01f"},
		{"high_1080p.h264", SPS{ProfileIDC: 100, ConstraintFlags: 0x00, LevelIDC: 40, Width: 1920, Height: 1080, FrameMbsOnly: true, ChromaFormat: 1, FPS: 30}, "640028"},
		{"main_360p.h264", SPS{ProfileIDC: 77, ConstraintFlags: 0x40, LevelIDC: 30, Width: 640, Height: 360, FrameMbsOnly: true, ChromaFormat: 1, FPS: 25}, "4d401e"},
		{"main_360p_aud.h264", SPS{ProfileIDC: 77, ConstraintFlags: 0x40, LevelIDC: 30, Width: 640, Height: 360, FrameMbsOnly: true, ChromaFormat: 1, FPS: 25}, "4d401e"},
		{"slices_360p.h264", SPS{ProfileIDC: 66, ConstraintFlags: 0xc0, LevelIDC: 30, Width: 640, Height: 360, FrameMbsOnly: true, ChromaFormat: 1, FPS: 25}, "42c01e"},
		{"interlaced_360p.h264", SPS{ProfileIDC: 100, ConstraintFlags: 0x00, LevelIDC: 30, Width: 640, Height: 360, FrameMbsOnly: false, ChromaFormat: 1, FPS: 30}, "64001e"},
		{"high444_cqm_360p.h264", SPS{ProfileIDC: 244, ConstraintFlags: 0x00, LevelIDC: 30, Width: 640, Height: 360, FrameMbsOnly: true, FPS: 30, ChromaFormat: 3}, "f4001e"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			nal := firstNAL(t, readTestdata(t, tc.file), NALSPS)
			got, err := ParseSPS(nal)
			if err != nil {
				t.Fatalf("ParseSPS(% x): %v", nal, err)
			}
			if got != tc.want {
				t.Errorf("ParseSPS = %+v\nwant        %+v", got, tc.want)
			}
			if p := got.ProfileLevelID(); p != tc.profileLev {
				t.Errorf("ProfileLevelID = %q, want %q", p, tc.profileLev)
			}
		})
	}
}

// TestParseSPSEscaped makes sure emulation prevention bytes are removed:
// the real baseline SPS contains 00 00 03, and so does a synthetic one
// whose picture size fields straddle an escape.
func TestParseSPSEscaped(t *testing.T) {
	nal := firstNAL(t, readTestdata(t, "baseline_720p.h264"), NALSPS)
	if !bytes.Contains(nal, []byte{0, 0, 3}) {
		t.Fatalf("test SPS % x has no emulation prevention byte any more", nal)
	}
	f := spsFields{
		profile: 66, level: 31, pocType: 1,
		// 32768 is ue code 65535: 16 zeros, a one, 16 zeros; twice in a
		// row that is long enough to need escaping.
		pocOffset:      32768,
		pocCycle:       []int64{32768, -1, 0},
		widthMbsMinus1: 79, heightMapUnitsMinus1: 44, frameMbsOnly: true,
	}
	nal = buildSPS(f)
	if !bytes.Contains(nal, []byte{0, 0, 3}) {
		t.Fatalf("synthetic SPS % x has no emulation prevention byte", nal)
	}
	s, err := ParseSPS(nal)
	if err != nil {
		t.Fatal(err)
	}
	if s.Width != 1280 || s.Height != 720 {
		t.Errorf("got %dx%d, want 1280x720", s.Width, s.Height)
	}
}

// TestParseSPSRandom round-trips randomly generated parameter sets through
// the test writer and the parser, covering profile, chroma format, scaling
// list, POC and cropping combinations the real files do not.
func TestParseSPSRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	profiles := []uint8{66, 77, 88, 100, 110, 122, 244, 44, 118, 128}
	for i := range 2000 {
		f := spsFields{
			profile:              profiles[rng.IntN(len(profiles))],
			constraints:          uint8(rng.IntN(64)) << 2,
			level:                uint8(rng.IntN(53)),
			id:                   uint64(rng.IntN(32)),
			chromaFormat:         uint64(rng.IntN(4)),
			separateColourPlane:  rng.IntN(2) == 0,
			pocType:              uint64(rng.IntN(3)),
			pocOffset:            int64(rng.IntN(1<<17) - 1<<16),
			widthMbsMinus1:       uint64(rng.IntN(1020) + 4),
			heightMapUnitsMinus1: uint64(rng.IntN(508) + 4),
			frameMbsOnly:         rng.IntN(3) != 0,
			vui:                  rng.IntN(2) == 0,
			sar:                  rng.IntN(2) == 0,
		}
		if !hasChromaInfo(f.profile) {
			f.chromaFormat = 1
			f.separateColourPlane = false
		}
		if f.chromaFormat != 3 {
			f.separateColourPlane = false
		}
		if f.frameMbsOnly {
			f.heightMapUnitsMinus1 = uint64(rng.IntN(1020) + 4)
		}
		for j := range 12 {
			if rng.IntN(4) == 0 && (j < 8 || f.chromaFormat == 3) {
				f.scalingLists = append(f.scalingLists, j)
			}
		}
		for range rng.IntN(4) {
			f.pocCycle = append(f.pocCycle, int64(rng.IntN(1000)-500))
		}
		if rng.IntN(2) == 0 {
			f.timing = [2]uint64{1001, 60000}
		}
		w := int(f.widthMbsMinus1+1) * 16
		h := int(f.heightMapUnitsMinus1+1) * 16
		if !f.frameMbsOnly {
			h *= 2
		}
		if rng.IntN(2) == 0 {
			ux, uy := 2, 2
			switch {
			case f.separateColourPlane:
				ux, uy = 1, 1
			case f.chromaFormat == 0 || f.chromaFormat == 3:
				ux, uy = 1, 1
			case f.chromaFormat == 2:
				ux, uy = 2, 1
			}
			if !f.frameMbsOnly {
				uy *= 2
			}
			c := [4]uint64{uint64(rng.IntN(8)), uint64(rng.IntN(8)), uint64(rng.IntN(8)), uint64(rng.IntN(8))}
			f.crop = &c
			w -= ux * int(c[0]+c[1])
			h -= uy * int(c[2]+c[3])
		}
		nal := buildSPS(f)
		got, err := ParseSPS(nal)
		if err != nil {
			t.Fatalf("case %d %+v: %v", i, f, err)
		}
		want := SPS{
			ProfileIDC: f.profile, ConstraintFlags: f.constraints, LevelIDC: f.level,
			ID: uint32(f.id), Width: w, Height: h, FrameMbsOnly: f.frameMbsOnly, ChromaFormat: 1,
		}
		if hasChromaInfo(f.profile) {
			want.ChromaFormat = uint8(f.chromaFormat)
		}
		if f.vui && f.timing[0] != 0 {
			want.FPS = 60000.0 / 2002
		}
		if got != want {
			t.Fatalf("case %d %+v:\ngot  %+v\nwant %+v", i, f, got, want)
		}
	}
}

func TestParseSPSErrors(t *testing.T) {
	good := spsFields{profile: 100, level: 40, chromaFormat: 1, widthMbsMinus1: 119, heightMapUnitsMinus1: 67, frameMbsOnly: true, crop: &[4]uint64{0, 0, 0, 4}}
	if s, err := ParseSPS(buildSPS(good)); err != nil || s.Width != 1920 || s.Height != 1080 {
		t.Fatalf("baseline case: %+v, %v", s, err)
	}
	mod := func(m func(*spsFields)) []byte {
		f := good
		m(&f)
		return buildSPS(f)
	}
	for _, tc := range []struct {
		name string
		nal  []byte
	}{
		{"empty", nil},
		{"header only", []byte{0x67}},
		{"PPS", []byte{0x68, 0xce, 0x3c, 0x80}},
		{"forbidden bit", []byte{0xe7, 0x42, 0xc0, 0x1f, 0xd9}},
		{"all zero payload", []byte{0x67, 0x42, 0x00, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"endless zeros", append([]byte{0x67, 0x42, 0x00, 0x1f}, make([]byte, 64)...)},
		{"sps id 32", mod(func(f *spsFields) { f.id = 32 })},
		{"chroma format 4", mod(func(f *spsFields) { f.chromaFormat = 4 })},
		{"poc type 3", mod(func(f *spsFields) { f.pocType = 3 })},
		{"poc cycle 256", mod(func(f *spsFields) { f.pocType = 1; f.pocCycle = make([]int64, 256) })},
		{"width 16400", mod(func(f *spsFields) { f.widthMbsMinus1 = 1024; f.crop = nil })},
		{"height 16400", mod(func(f *spsFields) { f.heightMapUnitsMinus1 = 1024; f.crop = nil })},
		{"interlaced height 16400", mod(func(f *spsFields) { f.heightMapUnitsMinus1 = 512; f.frameMbsOnly = false; f.crop = nil })},
		{"huge width", mod(func(f *spsFields) { f.widthMbsMinus1 = 1<<32 - 2; f.crop = nil })},
		{"crop everything", mod(func(f *spsFields) { f.crop = &[4]uint64{480, 480, 0, 0} })},
		{"crop huge", mod(func(f *spsFields) { f.crop = &[4]uint64{1<<32 - 2, 1<<32 - 2, 1<<32 - 2, 1<<32 - 2} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSPS(tc.nal)
			if !errors.Is(err, ErrBadSPS) {
				t.Fatalf("ParseSPS(% x) = %+v, %v; want ErrBadSPS", tc.nal, s, err)
			}
			if s != (SPS{}) {
				t.Errorf("failed parse returned %+v, want zero SPS", s)
			}
			t.Log(err)
		})
	}
	// The 16384 limit itself is allowed.
	if s, err := ParseSPS(mod(func(f *spsFields) { f.widthMbsMinus1 = 1023; f.crop = nil })); err != nil || s.Width != 16384 {
		t.Errorf("width 16384: %+v, %v", s, err)
	}
}

// TestParseSPSTruncated cuts real SPSs at every length: each prefix must
// either fail with ErrBadSPS or, when the cut falls inside the optional
// VUI, still report the right picture size.
func TestParseSPSTruncated(t *testing.T) {
	for _, s := range testStreams {
		nal := firstNAL(t, readTestdata(t, s.file), NALSPS)
		full, err := ParseSPS(nal)
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(nal) {
			got, err := ParseSPS(nal[:n])
			if err != nil {
				if !errors.Is(err, ErrBadSPS) {
					t.Errorf("%s[:%d]: error %v does not wrap ErrBadSPS", s.file, n, err)
				}
				continue
			}
			if got.Width != full.Width || got.Height != full.Height || got.ProfileIDC != full.ProfileIDC {
				t.Errorf("%s[:%d] = %+v, want picture of %+v", s.file, n, got, full)
			}
		}
	}
}

func TestParseSPSVUI(t *testing.T) {
	base := spsFields{profile: 77, level: 30, widthMbsMinus1: 39, heightMapUnitsMinus1: 29, frameMbsOnly: true, vui: true, sar: true}
	for _, tc := range []struct {
		timing [2]uint64
		want   float64
	}{
		{[2]uint64{1, 60}, 30},
		{[2]uint64{1001, 60000}, 60000.0 / 2002},
		{[2]uint64{1, 50}, 25},
		{[2]uint64{1, 90000}, 0}, // a clock rate, not a frame rate
		{[2]uint64{0, 60}, 0},
		{[2]uint64{1, 0}, 0},
	} {
		f := base
		f.timing = tc.timing
		if f.timing == [2]uint64{} {
			t.Fatal("zero timing means absent in the writer")
		}
		s, err := ParseSPS(buildSPS(f))
		if err != nil {
			t.Fatal(err)
		}
		if s.FPS != tc.want {
			t.Errorf("timing %v: FPS = %v, want %v", tc.timing, s.FPS, tc.want)
		}
	}
}

func TestProfileLevelID(t *testing.T) {
	for _, tc := range []struct {
		s    SPS
		want string
	}{
		{SPS{ProfileIDC: 66, ConstraintFlags: 0xe0, LevelIDC: 31}, "42e01f"},
		{SPS{ProfileIDC: 100, LevelIDC: 51}, "640033"},
		{SPS{ProfileIDC: 0xff, ConstraintFlags: 0xff, LevelIDC: 0xff}, "ffffff"},
		{SPS{}, "000000"},
	} {
		if got := tc.s.ProfileLevelID(); got != tc.want {
			t.Errorf("%+v.ProfileLevelID() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func FuzzParseSPS(f *testing.F) {
	for _, s := range testStreams {
		f.Add(firstNAL(f, readTestdata(f, s.file), NALSPS))
	}
	f.Add(buildSPS(spsFields{profile: 244, chromaFormat: 3, scalingLists: []int{0, 6, 11}, pocType: 1, pocCycle: []int64{1, -1}, widthMbsMinus1: 10, heightMapUnitsMinus1: 10, vui: true, sar: true, timing: [2]uint64{1, 60}}))
	f.Fuzz(func(t *testing.T, nal []byte) {
		s, err := ParseSPS(nal)
		if err != nil {
			if !errors.Is(err, ErrBadSPS) {
				t.Fatalf("error %v does not wrap ErrBadSPS", err)
			}
			if s != (SPS{}) {
				t.Fatalf("failed parse returned %+v", s)
			}
			return
		}
		if s.Width <= 0 || s.Height <= 0 || s.Width > maxDimension || s.Height > maxDimension {
			t.Fatalf("implausible size %dx%d", s.Width, s.Height)
		}
		if s.ID > 31 {
			t.Fatalf("SPS id %d", s.ID)
		}
		if s.FPS < 0 || s.FPS > maxPlausibleFPS || s.FPS != s.FPS {
			t.Fatalf("FPS %v", s.FPS)
		}
		if len(s.ProfileLevelID()) != 6 {
			t.Fatal("ProfileLevelID not 6 digits")
		}
	})
}
