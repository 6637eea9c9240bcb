package peer

import (
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/udpbatch"
)

// reportingViewer is a Pion viewer of a session that negotiates transport-wide sequence
// numbers and sends its reports by hand.
type reportingViewer struct {
	pc         *webrtc.PeerConnection
	media, rtx uint32 // the answer's video and retransmission SSRCs
	seq, twSeq uint16 // RTP and transport-wide sequence numbers of a video packet received
}

// newReportingViewer connects a viewer to s and waits for its first video packet, st's
// frames published meanwhile.
func newReportingViewer(t *testing.T, s *Session, st *stream.Stream) *reportingViewer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: codec.TransportCCURI}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{})).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	received := make(chan [2]uint16, 1024)
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		var id uint8
		for _, x := range r.GetParameters().HeaderExtensions {
			if x.URI == codec.TransportCCURI {
				id = uint8(x.ID)
			}
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if b := p.GetExtension(id); len(b) == 2 {
				select {
				case received <- [2]uint16{p.SequenceNumber, uint16(b[0])<<8 | uint16(b[1])}:
				default:
				}
			}
		}
	})
	v := &reportingViewer{pc: pc}
	viewerOffers(t, pc, s, func(answer string) {
		g := regexp.MustCompile(`a=ssrc-group:FID (\d+) (\d+)`).FindStringSubmatch(answer)
		if g == nil {
			t.Fatalf("the answer has no retransmission stream:\n%s", answer)
		}
		media, _ := strconv.ParseUint(g[1], 10, 32)
		rtx, _ := strconv.ParseUint(g[2], 10, 32)
		v.media, v.rtx = uint32(media), uint32(rtx)
	})
	publishFrames(t, st)
	select {
	case p := <-received:
		v.seq, v.twSeq = p[0], p[1]
	case <-time.After(10 * time.Second):
		t.Fatal("no video with transport-wide sequence numbers reached the viewer")
	}
	return v
}

// feedback is a transport-wide feedback report to ssrc saying the viewer's packet arrived.
func (v *reportingViewer) feedback(ssrc uint32, n uint8) rtcp.Packet {
	fb := &rtcp.TransportLayerCC{
		Header:     rtcp.Header{Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback},
		SenderSSRC: 1, MediaSSRC: ssrc, BaseSequenceNumber: v.twSeq, PacketStatusCount: 1, FbPktCount: n,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 1}},
		RecvDeltas:   []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta}},
	}
	fb.Header.Length = uint16(fb.Len()/4 - 1)
	return fb
}

// sendUntil sends what report(n) makes, n counting up, every 100 ms until done says the
// session took it (a report may be lost like any packet), failing after 10 s.
func (v *reportingViewer) sendUntil(t *testing.T, what string, report func(n uint8) rtcp.Packet, done func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	resend := time.NewTicker(100 * time.Millisecond)
	defer resend.Stop()
	for n := uint8(0); !done(); n++ {
		if err := v.pc.WriteRTCP([]rtcp.Packet{report(n)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-resend.C:
		case <-deadline:
			t.Fatalf("%s never reached the session", what)
		}
	}
}

// bothSockets runs test on a video session with a socket of its own (Pion reads its SRTCP)
// and on an engine's shared UDP socket, where the session's SRTCP must be read below Pion.
func bothSockets(t *testing.T, test func(t *testing.T, s *Session, st *stream.Stream)) {
	t.Run("own socket", func(t *testing.T) {
		s, st := videoSession(t)
		test(t, s, st)
	})
	t.Run("shared socket", func(t *testing.T) {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := udpbatch.New(c, udpbatch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		s, st := videoSessionWith(t, Config{IncludeLoopback: true, ICEUDP: b})
		test(t, s, st)
		if d := s.e.DirectStats(); d == nil || d.Verified != 1 || d.Reports == 0 {
			t.Errorf("the reports were not read below Pion: %+v", d)
		}
	})
}

// feedbackReports counts the transport-wide feedback s took.
func feedbackReports(s *Session) uint64 {
	if n := s.Stats().Network; n != nil {
		return n.FeedbackReports
	}
	return 0
}

// The viewer's reports on the video stream reach the session where Pion delivers them (the
// stream's read buffer, rtcp.go), with no reader of ours: a receiver report sets the track's
// stats, a NACK is answered, a PLI asks the source for a keyframe, transport-wide feedback
// feeds the estimator.
//
// On the shared socket the same reports are read below Pion (internal/srtpdirect,
// Session.takeDirectRTCP); each test runs both ways.
func TestReportsOnTheMediaStreamReachTheSession(t *testing.T) { bothSockets(t, reportsReachTheSession) }

func reportsReachTheSession(t *testing.T, s *Session, st *stream.Stream) {
	v := newReportingViewer(t, s, st)
	track := func() TrackStats { return s.Stats().Tracks[0] }

	v.sendUntil(t, "a receiver report", func(uint8) rtcp.Packet {
		return &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: v.media, FractionLost: 64, TotalLost: 7}}}
	}, func() bool { return track().Report.Lost == 7 })
	if got := track().Report.FractionLost; got != 0.25 {
		t.Errorf("fraction lost %v after the report, want 0.25", got)
	}

	v.sendUntil(t, "a NACK", func(uint8) rtcp.Packet {
		return &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: v.media, Nacks: []rtcp.NackPair{{PacketID: v.seq}}}
	}, func() bool { return track().Retransmitted > 0 })

	asked := st.Stats().KeyframesWanted
	v.sendUntil(t, "a PLI", func(uint8) rtcp.Packet {
		return &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: v.media}
	}, func() bool { return st.Stats().KeyframesWanted > asked })

	v.sendUntil(t, "transport-wide feedback", func(n uint8) rtcp.Packet { return v.feedback(v.media, n) },
		func() bool { return feedbackReports(s) > 0 })
	if got := s.est.RTT(); got <= 0 {
		t.Errorf("the estimator took nothing from the report: RTT %v", got)
	}
}

// Chromium addresses transport-wide feedback to the SSRC of the last packet it received, often
// the retransmission stream's after a probe: such a report reaches the session's estimator
// (rtcp.go) — before, Pion dropped it. One addressed to an SSRC the session does not send is
// still ignored.
func TestFeedbackAddressedToTheRetransmissionStream(t *testing.T) {
	bothSockets(t, feedbackToTheRetransmissionStream)
}

func feedbackToTheRetransmissionStream(t *testing.T, s *Session, st *stream.Stream) {
	v := newReportingViewer(t, s, st)
	stranger := v.rtx + 1
	for i := range 5 {
		if err := v.pc.WriteRTCP([]rtcp.Packet{v.feedback(stranger, uint8(i))}); err != nil {
			t.Fatal(err)
		}
	}
	v.sendUntil(t, "feedback addressed to the retransmission stream", func(n uint8) rtcp.Packet { return v.feedback(v.rtx, n+5) },
		func() bool { return feedbackReports(s) > 0 })
	if got := s.est.RTT(); got <= 0 {
		t.Errorf("the estimator took nothing from the report: RTT %v", got)
	}
	// The stranger's five went first on the same path and through the same reader: had they
	// been taken, they would be counted by now.
	if got := feedbackReports(s); got >= 5 {
		t.Errorf("%d reports counted: the ones addressed to SSRC %d, which the session does not send, were taken too", got, stranger)
	}
}

// TestEachPacket: a compound packet is taken packet by packet as far as its headers' lengths
// fit; a length past the end stops the walk there (the packets before it still count).
func TestEachPacket(t *testing.T) {
	var compound []byte
	for _, p := range []rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 1},
		&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2},
		&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 7}}},
	} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		compound = append(compound, b...)
	}
	count := func(b []byte) (n int) {
		eachPacket(b, func(p []byte) {
			if _, err := rtcp.Unmarshal(p); err != nil {
				t.Errorf("packet %d: %v", n, err)
			}
			n++
		})
		return n
	}
	if n := count(compound); n != 3 {
		t.Errorf("%d packets, want 3", n)
	}
	if n := count(compound[:len(compound)-4]); n != 2 {
		t.Errorf("the last cut short: %d packets, want the 2 before it", n)
	}
	if n := count(nil); n != 0 {
		t.Errorf("nothing: %d packets", n)
	}
}
