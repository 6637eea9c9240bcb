package media

import (
	"fmt"
	"math"
)

// levelLimits are the rows of H.264 Table A-1 that bound picture size and
// macroblock rate, in increasing order. Level 1b is left out: it is
// signalled differently per profile (level_idc 11 plus constraint_set3, or
// 9) and is never the right choice for live video.
var levelLimits = [...]struct {
	idc     uint8
	maxMBPS float64 // macroblocks per second
	maxFS   int     // macroblocks per frame
}{
	{10, 1485, 99},
	{11, 3000, 396},
	{12, 6000, 396},
	{13, 11880, 396},
	{20, 11880, 396},
	{21, 19800, 792},
	{22, 20250, 1620},
	{30, 40500, 1620},
	{31, 108000, 3600},
	{32, 216000, 5120},
	{40, 245760, 8192},
	{41, 245760, 8192},
	{42, 522240, 8704},
	{50, 589824, 22080},
	{51, 983040, 36864},
	{52, 2073600, 36864},
}

// LevelFor returns the lowest H.264 level_idc (10 times the level, e.g. 31
// for level 3.1) whose Table A-1 limits admit width x height at fps: MaxFS,
// MaxMBPS, and the A.3.1 rule that neither dimension exceeds
// sqrt(8*MaxFS) macroblocks (which stops very wide strips from claiming a
// low level). Examples: 640x480@30 → 30, 1280x720@30 → 31, 1920x1080@30 →
// 40, 1920x1080@60 → 42. Beyond level 5.2 it returns an error wrapping
// ErrNoLevel. Sources use it so that the level they announce is neither
// too low (browsers refuse to decode) nor needlessly high.
func LevelFor(width, height int, fps float64) (uint8, error) {
	if width <= 0 || height <= 0 || width > maxDimension || height > maxDimension {
		return 0, fmt.Errorf("media: invalid picture size %dx%d", width, height)
	}
	if !(fps > 0) || math.IsInf(fps, 0) {
		return 0, fmt.Errorf("media: invalid frame rate %v", fps)
	}
	wMbs := (width + 15) / 16
	hMbs := (height + 15) / 16
	fs := wMbs * hMbs
	mbps := float64(fs) * fps
	for _, l := range levelLimits {
		side := math.Sqrt(float64(8 * l.maxFS))
		if fs <= l.maxFS && mbps <= l.maxMBPS && float64(wMbs) <= side && float64(hMbs) <= side {
			return l.idc, nil
		}
	}
	return 0, fmt.Errorf("%w: %dx%d at %g fps exceeds level 5.2", ErrNoLevel, width, height, fps)
}
