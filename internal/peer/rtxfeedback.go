package peer

import (
	"io"
	"slices"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/transport/v4/packetio"
)

// Transport-wide feedback addressed to the retransmission stream.
//
// Chromium addresses each transport-wide feedback to the SSRC of the last packet it received
// before building it (its feedback generator keeps media_ssrc_ = packet.Ssrc()). Feedback
// built just after a probe or a retransmission therefore names the RTX stream's SSRC. Pion
// reads RTCP only for each sender's primary SSRC: a report for any other SSRC lands in a
// stream its "unhandled RTCP" processor accepts and never reads. Those reports were lost —
// about one in fifty, and exactly the ones that cover a probe, so a probe's result was
// mostly unknown (lab capture, 2026-12-06: all 76 packets of a probe reached the viewer,
// 5 were reported) and an application-limited viewer's estimate could not rise.
//
// Each session has its own Pion API whose BufferFactory is its readBuffers: the buffer for the
// RTX SSRC's RTCP stream hands the feedback written to it straight to the session's
// estimator; every other stream gets the buffer Pion would make.

// Pion's own read buffer limits (pion/srtp: 1 MB for RTP, 100 KB for RTCP).
const (
	rtpReadBuffer  = 1000 * 1000
	rtcpReadBuffer = 100 * 1000
)

// readBuffers is a session's BufferFactory: tracks are the session's tracks as made (never
// changed), deliver hands a report to its estimator. Pion calls it from inside a track's first
// write (a sender opens its RTCP stream then), so it takes no lock.
type readBuffers struct {
	tracks  []*localTrack
	deliver func(*rtcp.TransportLayerCC)
}

func (s *Session) readBuffers() *readBuffers {
	return &readBuffers{tracks: slices.Clone(s.tracks), deliver: s.takeFeedback}
}

// make makes the buffer of one of the session's SRTP or SRTCP read streams (b nil: before the
// session is made, Pion's own buffer).
func (b *readBuffers) make(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if kind == packetio.RTCPBufferPacket && b != nil && ssrc != 0 {
		for _, t := range b.tracks {
			if t.rtxSSRC.Load() == ssrc {
				return newFeedbackSink(b.deliver)
			}
		}
	}
	buf := packetio.NewBuffer()
	if kind == packetio.RTCPBufferPacket {
		buf.SetLimitSize(rtcpReadBuffer)
	} else {
		buf.SetLimitSize(rtpReadBuffer)
	}
	return buf
}

// feedbackSink is the read buffer of the RTX stream's RTCP: Pion writes each report to it
// (one RTCP packet a write, decrypted) and nobody reads it, so it keeps nothing. Only
// transport-wide feedback is taken: the other reports that name the RTX SSRC (a receiver
// report's block for it) also go to the primary stream, which handles them.
type feedbackSink struct {
	deliver func(*rtcp.TransportLayerCC)
	closed  chan struct{}
	once    sync.Once
}

func newFeedbackSink(deliver func(*rtcp.TransportLayerCC)) *feedbackSink {
	return &feedbackSink{deliver: deliver, closed: make(chan struct{})}
}

// Write takes one report; a malformed one is dropped, as Pion drops what it cannot parse.
func (f *feedbackSink) Write(b []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return len(b), nil
	}
	for _, p := range pkts {
		if fb, ok := p.(*rtcp.TransportLayerCC); ok {
			f.deliver(fb)
		}
	}
	return len(b), nil
}

// Read blocks until the sink is closed: nothing is kept to read.
func (f *feedbackSink) Read([]byte) (int, error) {
	<-f.closed
	return 0, io.EOF
}

// Close ends the sink; later writes fail.
func (f *feedbackSink) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}
