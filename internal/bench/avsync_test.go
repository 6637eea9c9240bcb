package bench

import (
	"errors"
	"io"
	"testing"

	"github.com/p2pcast/p2pcast/internal/cli"
)

func TestPairAvSync(t *testing.T) {
	const k0 = 1_796_436_000 // a whole second, Unix time
	ms := func(k int64) float64 { return float64(k) * 1000 }
	yes, no := true, false
	// flash: the first picture of second k, captured 28 ms past it and presented lat ms after capture.
	flash := func(k int64, lat float64) pageFlash {
		c := ms(k)*1000 + 28_000
		return pageFlash{Second: k, CaptureUS: c, PresentEpochMS: c/1000 + lat, Flash: true, RTPOK: &yes}
	}
	// onset: the beep of second k presented lat ms after k.
	onset := func(k int64, lat float64) pageOnset {
		return pageOnset{PresentEpochMS: ms(k) + lat, RenderedEpochMS: ms(k) + lat - 40}
	}
	type want struct {
		offsets []float64
		counts  avsyncCounts
	}
	tests := []struct {
		name    string
		onsets  []pageOnset
		flashes []pageFlash
		from    int64
		to      int64
		want    want
	}{
		{
			name:    "in sync and audio late",
			onsets:  []pageOnset{onset(k0, 60), onset(k0+1, 90), onset(k0+2, 55.5)},
			flashes: []pageFlash{flash(k0, 60), flash(k0+1, 60), flash(k0+2, 60)},
			from:    k0, to: k0 + 3,
			want: want{offsets: []float64{0, 30, -4.5},
				counts: avsyncCounts{Seconds: 3, Beeps: 3, Flashes: 3, Matched: 3}},
		},
		{
			// The audio is 400 ms late: still the nearest second after the video's latency.
			name:    "large offset",
			onsets:  []pageOnset{onset(k0, 420), onset(k0+1, 420)},
			flashes: []pageFlash{flash(k0, 20), flash(k0+1, 20)},
			from:    k0, to: k0 + 2,
			want: want{offsets: []float64{400, 400},
				counts: avsyncCounts{Seconds: 2, Beeps: 2, Flashes: 2, Matched: 2}},
		},
		{
			name:   "left out and unmatched",
			onsets: []pageOnset{onset(k0-1, 50), onset(k0, 50), onset(k0+2, 50), onset(k0+3, 50), onset(k0+5, 50)},
			flashes: func() []pageFlash {
				notFlash := flash(k0+1, 50)
				notFlash.Flash = false
				mismatch := flash(k0+2, 50)
				mismatch.RTPOK = &no
				unknown := flash(k0+4, 50)
				unknown.RTPOK = nil // metadata not checked yet: kept
				return []pageFlash{flash(k0-1, 50), flash(k0, 50), notFlash, mismatch, unknown, flash(k0+4, 50), flash(k0+6, 50)}
			}(),
			from: k0, to: k0 + 6,
			// k0: matched; k0+1 not flash; k0+2 rtp mismatch (its beep unmatched); k0+3 beep
			// without a flash; k0+4 flash without a beep (its repeat ignored); k0+5 beep
			// unmatched; k0-1 and k0+6 outside.
			want: want{offsets: []float64{0},
				counts: avsyncCounts{Seconds: 6, Beeps: 4, Flashes: 2, Matched: 1, BeepsUnmatched: 3,
					FlashesUnmatched: 1, NotFlash: 1, RTPMismatch: 1}},
		},
		{
			name:    "a second beep on a taken second",
			onsets:  []pageOnset{onset(k0, 40), onset(k0, 45)},
			flashes: []pageFlash{flash(k0, 40)},
			from:    k0, to: k0 + 1,
			want: want{offsets: []float64{0},
				counts: avsyncCounts{Seconds: 1, Beeps: 1, Flashes: 1, Matched: 1, ExtraBeeps: 1}},
		},
		{
			name:    "no flash: nothing to place the beeps by",
			onsets:  []pageOnset{onset(k0, 40)},
			flashes: []pageFlash{{Second: k0, Flash: false}},
			from:    k0, to: k0 + 1,
			want: want{counts: avsyncCounts{Seconds: 1, NotFlash: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pairs, c := pairAvSync(tt.onsets, tt.flashes, tt.from, tt.to)
			if c != tt.want.counts {
				t.Errorf("counts %+v, want %+v", c, tt.want.counts)
			}
			if len(pairs) != len(tt.want.offsets) {
				t.Fatalf("%d pairs, want %d: %+v", len(pairs), len(tt.want.offsets), pairs)
			}
			for i, p := range pairs {
				if round2(p.OffsetMS) != tt.want.offsets[i] {
					t.Errorf("pair %d (second %d): offset %v, want %v", i, p.Second, p.OffsetMS, tt.want.offsets[i])
				}
				if round2(p.AudioMS-p.VideoMS) != round2(p.OffsetMS) || round2(p.AudioMS-p.InMS) != 40 ||
					round2(p.PipelineOffsetMS) != round2(p.OffsetMS-40) {
					t.Errorf("pair %d: audio %v, in %v, video %v, offset %v", i, p.AudioMS, p.InMS, p.VideoMS, p.OffsetMS)
				}
			}
		})
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{-3}, Spread{Min: -3, P5: -3, P50: -3, P95: -3, Max: -3, Mean: -3, Samples: 1}},
		// 21 values −10…10: p5 is the 2nd smallest (index round(0.05·20) = 1), p95 the 2nd largest.
		{func() []float64 {
			var v []float64
			for i := 10; i >= -10; i-- {
				v = append(v, float64(i))
			}
			return v
		}(), Spread{Min: -10, P5: -9, P50: 0, P95: 9, Max: 10, Mean: 0, Samples: 21}},
		{[]float64{1.004, 2.006}, Spread{Min: 1, P5: 1, P50: 2.01, P95: 2.01, Max: 2.01, Mean: 1.51, Samples: 2}},
	}
	for _, tt := range tests {
		if got := spread(tt.in); got != tt.want {
			t.Errorf("spread(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestSnapshotFigures(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	const at = 1_796_436_000_500.0
	snaps := []syncSnapshot{
		{AtEpochMS: at - 1000}, // before the run
		{AtEpochMS: at,
			Audio: &receiverSync{PlayoutCaptureMS: f(at - 100), JitterBufferMS: f(40)},
			Video: &receiverSync{PlayoutCaptureMS: f(at - 70), JitterBufferMS: f(30)},
			Sources: map[string]syncSource{
				"audio": {Timestamp: at, CaptureTimestamp: f(at - 50 + ntpUnixMS)},
				"video": {Timestamp: at, CaptureTimestamp: f(at - 20 + ntpUnixMS)},
			}},
		// No video estimate: no offset, but the audio's figures count.
		{AtEpochMS: at + 1000, Audio: &receiverSync{PlayoutCaptureMS: f(at + 1000 - 90)}, Video: &receiverSync{}},
	}
	c := snapshotFigures(snaps, 1_796_436_000, 1_796_436_002)
	check := func(name string, got, want []float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
			return
		}
		for i := range got {
			if round2(got[i]) != want[i] {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	}
	check("offset", c.offset, []float64{30})
	check("audio", c.audio, []float64{100, 90})
	check("video", c.video, []float64{70})
	check("audio jitter buffer", c.audioJB, []float64{40})
	check("video jitter buffer", c.videoJB, []float64{30})
	check("audio delivered", c.audioDelivered, []float64{50})
	check("video delivered", c.videoDelivered, []float64{20})
}

func TestAvSyncRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"avsync", "extra"}, {"avsync", "--size", "320x240"}, {"avsync", "--duration", "0s"},
		{"avsync", "--duration", "2h"}, {"avsync", "--fps", "0"}, {"avsync", "--warmup", "-1s"},
	} {
		if err := Run(t.Context(), args, io.Discard, io.Discard); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("Run(%q) = %v, want a usage error", args, err)
		}
	}
}
