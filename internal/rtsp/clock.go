package rtsp

import (
	"math"
	"time"
)

// Capture times. A camera stamps each track with RTP time on its own clock; the units need
// capture times on ours. What is done:
//
//   - RTP timestamps are unwrapped to 64 bits per track.
//   - Before a track's first RTCP sender report, its RTP time is anchored at the arrival of
//     its first packet: capture = anchor + (rtp - rtp0) / clock rate.
//   - Once a sender report has come for a track, its RTP time maps to the camera's NTP
//     clock through the latest report (which corrects the drift of the camera's RTP clock
//     against its wall clock at every report, ~5 s), and all such tracks share one mapping of
//     camera NTP time to ours: audio and video stay in sync even though their first packets
//     arrived at different delays. The camera's absolute NTP time is never trusted (cameras'
//     clocks are often wrong by hours); only its rate is.
//   - Either mapping's offset follows the floor of the transit delay: a packet is never
//     captured after it arrived (the offset moves back at once when one would be), and when
//     every packet in a 10 s window arrived later than the floor by at least d, the offset
//     moves forward by d. Both drifts (camera clock slower or faster than ours) are followed
//     this way, in steps of the drift per window (~1 ms for 100 ppm).
//   - A track's capture times never go back.
//
// Times are kept as nanoseconds since the Conn's base time (monotonic clock).

const skewWindow = int64(10 * time.Second)

// offsetFilter keeps a source clock's offset to ours at the floor of the transit delay.
type offsetFilter struct {
	offset   int64
	set      bool
	winStart int64
	winMin   int64
}

// observe takes one packet's source time and arrival time (both ns).
func (f *offsetFilter) observe(src, arrival int64) {
	if !f.set {
		f.offset, f.set, f.winStart, f.winMin = arrival-src, true, arrival, math.MaxInt64
	}
	c := src + f.offset
	if c > arrival {
		f.offset -= c - arrival
		c = arrival
	}
	f.winMin = min(f.winMin, arrival-c)
	if arrival-f.winStart >= skewWindow {
		if f.winMin > 0 && f.winMin != math.MaxInt64 {
			f.offset += f.winMin
		}
		f.winStart, f.winMin = arrival, math.MaxInt64
	}
}

// trackClock maps one track's RTP time.
type trackClock struct {
	rate    int64
	started bool
	ext     int64 // the latest extended RTP timestamp
	ext0    int64 // the first one
	local   offsetFilter
	// The latest sender report, once one came.
	sr    bool
	srNTP int64 // ns on the camera's NTP clock
	srExt int64
	last  int64 // the latest capture time handed out
}

// unwrap extends a 32-bit RTP timestamp near the latest one.
func (c *trackClock) unwrap(ts uint32) int64 {
	if !c.started {
		c.started, c.ext, c.ext0 = true, int64(ts), int64(ts)
		return c.ext
	}
	return c.ext + int64(int32(ts-uint32(c.ext)))
}

func (c *trackClock) ns(ticks int64) int64 {
	// ticks * 1e9 / rate without overflow for any realistic span.
	return ticks/c.rate*1e9 + ticks%c.rate*1e9/c.rate
}

// source returns the source time of an extended timestamp and whether it is on the camera's
// NTP clock.
func (c *trackClock) source(ext int64) (int64, bool) {
	if c.sr {
		return c.srNTP + c.ns(ext-c.srExt), true
	}
	return c.ns(ext - c.ext0), false
}

// senderReport records an RTCP sender report for this track.
func (c *trackClock) senderReport(ntp uint64, rtp uint32) {
	if !c.started || ntp == 0 {
		return // before the first packet, or a camera without a clock
	}
	sec, frac := int64(ntp>>32), int64(ntp&0xffffffff)
	c.srNTP = sec*1e9 + frac*1e9>>32
	c.srExt = c.unwrap(rtp)
	c.sr = true
}

// clocks holds every track's clock and the mapping of camera NTP time shared by them.
type clocks struct {
	tracks []trackClock
	ntp    offsetFilter
}

func newClocks(tracks []Track) *clocks {
	c := &clocks{tracks: make([]trackClock, len(tracks))}
	for i, t := range tracks {
		c.tracks[i].rate = int64(max(t.ClockRate, 1))
		c.tracks[i].last = math.MinInt64
	}
	return c
}

// observe takes RTP time ts of track i, in a packet that arrived at arrival.
func (c *clocks) observe(i int, ts uint32, arrival int64) {
	tc := &c.tracks[i]
	ext := tc.unwrap(ts)
	if ext > tc.ext || !tc.started {
		tc.ext = ext
	}
	src, ntp := tc.source(ext)
	if ntp {
		c.ntp.observe(src, arrival)
	} else {
		tc.local.observe(src, arrival)
	}
}

// capture returns the capture time of RTP time ts on track i (ns since base).
func (c *clocks) capture(i int, ts uint32) int64 {
	tc := &c.tracks[i]
	src, ntp := tc.source(tc.unwrap(ts))
	t := src + tc.local.offset
	if ntp {
		t = src + c.ntp.offset
	}
	if t < tc.last {
		t = tc.last
	}
	tc.last = t
	return t
}
