package rtsp

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A camera clock that drifts against ours (±300 ppm, 180 ms over 10 minutes) is followed:
// capture times stay within a few ms of the true ones, and never after arrival.
func TestClockFollowsDrift(t *testing.T) {
	for _, ppm := range []float64{-300, 300} {
		cl := newClocks([]Track{{ClockRate: 8000}})
		r := rand.New(rand.NewPCG(1, 2))
		const step = 20 * time.Millisecond
		worst := time.Duration(0)
		for k := range int(10 * time.Minute / step) {
			truth := int64(k) * int64(step)
			ts := uint32(int64(float64(truth)*(1+ppm*1e-6)*8000/1e9) + 12345)
			arrival := truth + int64(time.Millisecond) + r.Int64N(int64(4*time.Millisecond))
			cl.observe(0, ts, arrival)
			got := cl.capture(0, ts)
			if got > arrival {
				t.Fatalf("%v ppm: captured %v after arrival", ppm, time.Duration(got-arrival))
			}
			if k > 0 { // the first anchors at its arrival, up to 5 ms late
				worst = max(worst, (time.Duration(got - truth)).Abs())
			}
		}
		if worst > 10*time.Millisecond {
			t.Errorf("%v ppm: capture times off by up to %v", ppm, worst)
		}
	}
}

// Sender reports put audio and video on one timeline although video's first packet arrived
// much later after its capture than audio's (the encoder's delay).
func TestClockSenderReportsSyncTracks(t *testing.T) {
	cl := newClocks([]Track{{ClockRate: 90000}, {ClockRate: 8000}})
	const videoDelay, audioDelay = int64(60 * time.Millisecond), int64(2 * time.Millisecond)
	ntpAt := func(truth int64) uint64 { // the camera's wall clock is hours off ours
		ns := truth + int64(3*time.Hour) + int64(3900000000*time.Second)
		sec := uint64(ns / 1e9)
		return sec<<32 | uint64(ns%1e9)<<32/1e9
	}
	vts := func(truth int64) uint32 { return uint32(5000 + truth*90000/1e9) }
	ats := func(truth int64) uint32 { return uint32(777 + truth*8000/1e9) }
	var skewBefore, skewAfter int64
	for k := range 300 { // 6 s, a frame of each every 20 ms
		truth := int64(k) * int64(20*time.Millisecond)
		cl.observe(0, vts(truth), truth+videoDelay)
		v := cl.capture(0, vts(truth))
		cl.observe(1, ats(truth), truth+audioDelay)
		a := cl.capture(1, ats(truth))
		if k == 10 {
			skewBefore = v - a
		}
		if k == 100 { // reports for both tracks
			cl.tracks[0].senderReport(ntpAt(truth), vts(truth))
			cl.tracks[1].senderReport(ntpAt(truth), ats(truth))
		}
		if k == 299 {
			skewAfter = v - a
		}
	}
	if time.Duration(skewBefore) < 50*time.Millisecond {
		t.Errorf("before reports video was %v after audio; the test expects the first packets' delays to show", time.Duration(skewBefore))
	}
	if d := time.Duration(skewAfter).Abs(); d > 2*time.Millisecond {
		t.Errorf("after reports video and audio of one instant are %v apart", d)
	}
}

func TestClockUnwrap(t *testing.T) {
	cl := newClocks([]Track{{ClockRate: 90000}})
	var last int64
	for k := range 100 {
		ts := uint32(0xffffff00) + uint32(k*3000) // wraps after the first packet
		cl.observe(0, ts, int64(k)*int64(time.Second/30)+int64(time.Hour))
		c := cl.capture(0, ts)
		if k > 0 && time.Duration(c-last) != time.Second/30 {
			t.Fatalf("packet %d: %v after the previous", k, time.Duration(c-last))
		}
		last = c
	}
}
