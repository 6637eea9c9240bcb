package stream

import "sync/atomic"

// TimelineFrames is how many recent frames the timeline remembers: 17 s at 60 fps, 34 s at
// 30 fps. `p2pcast bench latency` reads it every second; 4096 (a minute at 60 fps) cost the
// board 160 kB of its idle memory (docs/performance.md "Footprint").
const TimelineFrames = 1024

// FrameTimes is one frame's way through the device, in µs since the Unix epoch (0 = unknown):
// what a latency measurement joins with the viewer's side, frame by frame, on CaptureUS.
type FrameTimes struct {
	CaptureUS  int64 `json:"capture_us"`
	EncodedUS  int64 `json:"encoded_us"`
	ReceivedUS int64 `json:"received_us"`
	SentUS     int64 `json:"sent_us"` // the first viewer's last packet of the frame was written
}

// timeline is a ring of the last TimelineFrames frames' times. Publish fills a slot; senders
// mark it sent with a compare-and-swap, so recording costs no lock and no allocation.
type timeline struct {
	next  uint64 // under Stream.mu
	slots [TimelineFrames]timelineSlot
}

type timelineSlot struct {
	n                          atomic.Uint64 // publish number + 1; 0 = empty
	capture, encoded, received atomic.Int64
	sent                       atomic.Int64
}

// record fills the next slot for f and returns f's publish number + 1.
func (t *timeline) record(f *Frame) uint64 {
	t.next++
	s := &t.slots[t.next%TimelineFrames]
	s.n.Store(0) // invalidate while rewriting
	s.capture.Store(f.Capture / 1000)
	s.encoded.Store(f.Encoded / 1000)
	s.received.Store(f.Received / 1000)
	s.sent.Store(0)
	s.n.Store(t.next)
	return t.next
}

func (t *timeline) markSent(n uint64, nowNS int64) {
	if n == 0 {
		return
	}
	s := &t.slots[n%TimelineFrames]
	if s.n.Load() == n {
		s.sent.CompareAndSwap(0, nowNS/1000)
	}
}

// snapshot returns the remembered frames, oldest first. last is the newest publish number.
func (t *timeline) snapshot(last uint64) []FrameTimes {
	out := make([]FrameTimes, 0, min(last, TimelineFrames))
	first := uint64(1)
	if last > TimelineFrames {
		first = last - TimelineFrames + 1
	}
	for n := first; n <= last; n++ {
		s := &t.slots[n%TimelineFrames]
		if s.n.Load() != n {
			continue
		}
		out = append(out, FrameTimes{CaptureUS: s.capture.Load(), EncodedUS: s.encoded.Load(),
			ReceivedUS: s.received.Load(), SentUS: s.sent.Load()})
	}
	return out
}
