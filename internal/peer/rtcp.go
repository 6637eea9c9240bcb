package peer

import (
	"encoding/binary"
	"io"
	"slices"
	"sync"

	"github.com/p2pcast/p2pcast/internal/congestion"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v4/packetio"
)

// RTCP from the viewer is taken where Pion delivers it: each SRTCP read stream's buffer.
//
// Pion's SRTCP session decrypts a compound packet, splits it and writes each report to the
// read buffer of the stream it names; a sender's stream was then read by a goroutine of ours
// through RTPSender.ReadRTCP (a buffer allocated and the report parsed again at each read, ~12
// reports a second per viewer, a goroutine hand-off each). Each session has its own Pion API
// whose BufferFactory is its readBuffers, and the buffer of a track's media stream is a sink
// that hands each report to the session at once (Session.takeReport): no goroutine, no queue.
// It runs in the SRTCP session's reader, so what it does must not block: it takes short
// locks only (the estimator's, the pacer's, the stream's), none held while waiting on RTCP.
//
// The retransmission stream's reports go the same way. Chromium addresses each transport-wide
// feedback to the SSRC of the last packet it received before building it (its feedback
// generator keeps media_ssrc_ = packet.Ssrc()). Feedback built just after a probe or a
// retransmission therefore names the RTX stream's SSRC. Pion reads RTCP only for each
// sender's primary SSRC: a report for any other SSRC lands in a stream its "unhandled RTCP"
// processor accepts and never reads. Those reports were lost — about one in fifty, and
// exactly the ones that cover a probe, so a probe's result was mostly unknown (lab capture,
// 2026-12-06: all 76 packets of a probe reached the viewer, 5 were reported) and an
// application-limited viewer's estimate could not rise. Its sink takes transport-wide
// feedback only: the other reports that name the RTX SSRC (a receiver report's block for it)
// also go to the media stream, which handles them.
//
// Every other stream (the viewer's talk-back) gets the buffer Pion would make.

// Pion's own read buffer limits (pion/srtp: 1 MB for RTP, 100 KB for RTCP).
const (
	rtpReadBuffer  = 1000 * 1000
	rtcpReadBuffer = 100 * 1000
)

// readBuffers is a session's BufferFactory: tracks are the session's tracks as made (never
// changed), take hands a report to the session. Pion calls it from inside a track's first
// write (a sender opens its RTCP stream then), so it takes no lock.
type readBuffers struct {
	tracks []*localTrack
	take   func(t *localTrack, ssrc uint32, b []byte)
}

func (s *Session) readBuffers() *readBuffers {
	return &readBuffers{tracks: slices.Clone(s.tracks), take: s.takeReport}
}

// make makes the buffer of one of the session's SRTP or SRTCP read streams (b nil: before the
// session is made, Pion's own buffer).
func (b *readBuffers) make(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if kind == packetio.RTCPBufferPacket && b != nil && ssrc != 0 {
		for _, t := range b.tracks {
			if ssrc == t.mediaSSRC.Load() || ssrc == t.rtxSSRC.Load() {
				return newRTCPSink(func(p []byte) { b.take(t, ssrc, p) })
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

// takeReport handles one RTCP packet b that the viewer addressed to ssrc, one of track t's
// streams. Transport-wide feedback goes to the estimator, read in place (no allocation; it is
// most of the viewer's RTCP), whichever of the track's streams it names (above); anything else
// is the track's when it names the media stream.
func (s *Session) takeReport(t *localTrack, ssrc uint32, b []byte) {
	if congestion.IsFeedback(b) {
		s.takeFeedback(b)
		return
	}
	if ssrc != t.mediaSSRC.Load() {
		return
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return // malformed: dropped, as Pion drops what it cannot parse
	}
	for _, p := range pkts {
		s.takeRTCP(t, p)
	}
}

// takeDirectRTCP takes a compound SRTCP packet the session's direct path decrypted
// (internal/srtpdirect) and hands each report to its track as Pion's SRTCP session and the
// sinks would. One with a sender report (the viewer's talk-back) is left to Pion, whose
// receiver reports need it; false says so. Called in the shared socket's reader: it must not
// block, as the sinks must not.
func (s *Session) takeDirectRTCP(b []byte) bool {
	sender := false
	eachPacket(b, func(p []byte) { sender = sender || p[1] == uint8(rtcp.TypeSenderReport) })
	if sender {
		return false
	}
	eachPacket(b, func(p []byte) {
		if congestion.IsFeedback(p) {
			if len(p) < 12 {
				return
			}
			media := binary.BigEndian.Uint32(p[8:])
			for _, t := range s.tracks {
				if media == t.mediaSSRC.Load() || media == t.rtxSSRC.Load() {
					s.takeFeedback(p)
					return
				}
			}
			return
		}
		pkts, err := rtcp.Unmarshal(p)
		if err != nil {
			return // malformed: dropped, as Pion drops it
		}
		for _, pkt := range pkts {
			dst := pkt.DestinationSSRC()
			for i, ssrc := range dst {
				if slices.Contains(dst[:i], ssrc) {
					continue // each stream takes a report once
				}
				for _, t := range s.tracks {
					if ssrc == t.mediaSSRC.Load() {
						s.takeRTCP(t, pkt)
					}
				}
			}
		}
	})
	return true
}

// eachPacket calls f with each RTCP packet of compound packet b, as long as the next one's
// header says a length that fits.
func eachPacket(b []byte, f func([]byte)) {
	for len(b) >= 4 {
		n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
		if n > len(b) {
			return
		}
		f(b[:n])
		b = b[n:]
	}
}

// rtcpSink is the read buffer of one of the session's own RTCP streams: Pion writes each
// report to it (one RTCP packet a write, decrypted) and nobody reads it, so it keeps nothing.
type rtcpSink struct {
	take   func([]byte)
	closed chan struct{}
	once   sync.Once
}

func newRTCPSink(take func([]byte)) *rtcpSink {
	return &rtcpSink{take: take, closed: make(chan struct{})}
}

// Write takes one report (a compound packet's each, should Pion write one whole).
func (f *rtcpSink) Write(b []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	eachPacket(b, f.take)
	return len(b), nil
}

// Read blocks until the sink is closed: nothing is kept to read.
func (f *rtcpSink) Read([]byte) (int, error) {
	<-f.closed
	return 0, io.EOF
}

// Close ends the sink; later writes fail.
func (f *rtcpSink) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}
