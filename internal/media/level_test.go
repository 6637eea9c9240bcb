package media

import (
	"errors"
	"math"
	"testing"
)

func TestLevelFor(t *testing.T) {
	for _, tc := range []struct {
		w, h int
		fps  float64
		want uint8
	}{
		{176, 144, 15, 10},
		{320, 240, 10, 11}, // 300 MBs at exactly level 1.1's 3000 MB/s
		{320, 240, 30, 13},
		{352, 288, 30, 13},
		{640, 360, 30, 30},
		{640, 480, 30, 30},
		{640, 480, 15, 22},
		{1280, 720, 30, 31},
		{1280, 720, 29.97, 31},
		{1280, 720, 60, 32},
		{1920, 1080, 30, 40},
		{1920, 1080, 60, 42},
		{2560, 1440, 30, 50},
		{3840, 2160, 30, 51},
		{3840, 2160, 60, 52},
		{4096, 2304, 56, 52},
		// A 200x4 MB strip: 800 MBs would fit level 2.2's MaxFS, but the
		// sqrt(8*MaxFS) side limit first admits 200 MBs at level 3.2.
		{3200, 64, 1, 32},
	} {
		got, err := LevelFor(tc.w, tc.h, tc.fps)
		if err != nil || got != tc.want {
			t.Errorf("LevelFor(%d, %d, %v) = %d, %v; want %d", tc.w, tc.h, tc.fps, got, err, tc.want)
		}
	}
}

func TestLevelForRefuses(t *testing.T) {
	for _, tc := range []struct {
		w, h  int
		fps   float64
		level bool // whether the error is ErrNoLevel (as opposed to bad input)
	}{
		{3840, 2160, 120, true},
		{7680, 4320, 30, true},
		{4096, 2304, 61, true},
		{16384, 16, 1, true},
		{0, 720, 30, false},
		{1280, -1, 30, false},
		{1280, 720, 0, false},
		{1280, 720, -30, false},
		{1280, 720, math.NaN(), false},
		{1280, 720, math.Inf(1), false},
		{1 << 30, 1 << 30, 30, false},
	} {
		got, err := LevelFor(tc.w, tc.h, tc.fps)
		if err == nil {
			t.Errorf("LevelFor(%d, %d, %v) = %d, want an error", tc.w, tc.h, tc.fps, got)
			continue
		}
		if errors.Is(err, ErrNoLevel) != tc.level {
			t.Errorf("LevelFor(%d, %d, %v): error %v, ErrNoLevel expected %v", tc.w, tc.h, tc.fps, err, tc.level)
		}
	}
}
