package stream

import (
	"sync"
	"sync/atomic"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// Frame is one encoded frame of a track (a video access unit, an audio packet), shared read-only by every subscriber that receives it.
// Frames are reference counted and recycled so the steady state allocates nothing: whoever
// gets a Frame from a Stream owns one reference and must Release it.
type Frame struct {
	Track    uint8 // the source's track id
	Seq      uint32
	Keyframe bool
	Capture  int64 // capture time (of the first sample, for audio), ns since the Unix epoch (arrival time for plain Annex-B)
	Encoded  int64 // when the encoder returned it, ns; 0 if unknown
	Received int64 // when the device read it off the socket, ns
	Data     []byte
	// Payloads are the frame's RTP payloads, packetized once by the publisher for all viewers.
	Payloads codec.Payloads

	refs      atomic.Int32
	published uint64 // the stream's publish number + 1, for its timeline; 0 before Publish
}

var framePool = sync.Pool{New: func() any { return new(Frame) }}

// NewFrame returns an empty frame holding one reference, reusing a released one when it can.
func NewFrame() *Frame {
	f := framePool.Get().(*Frame)
	f.Track, f.Seq, f.Keyframe, f.Capture, f.Encoded, f.Received, f.published = 0, 0, false, 0, 0, 0, 0
	f.Data = f.Data[:0]
	f.Payloads.Reset()
	f.refs.Store(1)
	return f
}

// Retain adds a reference.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release drops a reference; the last one recycles the frame. A frame must not be used after
// its owner released it.
func (f *Frame) Release() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		framePool.Put(f)
	case n < 0:
		panic("stream: Frame released more often than retained")
	}
}
