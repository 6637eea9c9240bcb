package peer

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// Chromium addresses transport-wide feedback to the SSRC of the last packet it received, often
// the retransmission stream's after a probe: such a report reaches the session's estimator
// (rtxfeedback.go) — before, Pion dropped it. One addressed to an SSRC the session does not
// send is still ignored.
func TestFeedbackAddressedToTheRetransmissionStream(t *testing.T) {
	s, st := videoSession(t)

	// A viewer that negotiates transport-wide sequence numbers but sends its feedback by hand.
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
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	seqs := make(chan uint16, 1024)
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
				case seqs <- uint16(b[0])<<8 | uint16(b[1]):
				default:
				}
			}
		}
	})
	var rtxSSRC uint32
	viewerOffers(t, pc, s, func(answer string) {
		g := regexp.MustCompile(`a=ssrc-group:FID \d+ (\d+)`).FindStringSubmatch(answer)
		if g == nil {
			t.Fatalf("the answer has no retransmission stream:\n%s", answer)
		}
		v, _ := strconv.ParseUint(g[1], 10, 32)
		rtxSSRC = uint32(v)
	})

	publishFrames(t, st)
	var seq uint16
	select {
	case seq = <-seqs:
	case <-time.After(10 * time.Second):
		t.Fatal("no video with transport-wide sequence numbers reached the viewer")
	}

	// Each report says the packet arrived; a report may be lost like any packet, so each goes
	// again until it is counted (or, for the stranger, for a while).
	report := func(ssrc uint32, n uint8) []rtcp.Packet {
		fb := &rtcp.TransportLayerCC{
			Header:     rtcp.Header{Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback},
			SenderSSRC: 1, MediaSSRC: ssrc, BaseSequenceNumber: seq, PacketStatusCount: 1, FbPktCount: n,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 1}},
			RecvDeltas:   []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta}},
		}
		fb.Header.Length = uint16(fb.Len()/4 - 1)
		return []rtcp.Packet{fb}
	}
	reports := func() uint64 {
		if n := s.Stats().Network; n != nil {
			return n.FeedbackReports
		}
		return 0
	}
	stranger := rtxSSRC + 1
	for i := range 5 {
		if err := pc.WriteRTCP(report(stranger, uint8(i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	resend := time.NewTicker(100 * time.Millisecond)
	defer resend.Stop()
	for n := uint8(5); reports() == 0; n++ {
		if err := pc.WriteRTCP(report(rtxSSRC, n)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-resend.C:
		case <-deadline:
			t.Fatalf("feedback addressed to the retransmission stream (SSRC %d) never reached the session", rtxSSRC)
		}
	}
	if got := s.est.RTT(); got <= 0 {
		t.Errorf("the estimator took nothing from the report: RTT %v", got)
	}
	// The stranger's five went first on the same path and through the same reader: had they
	// been taken, they would be counted by now.
	if got := reports(); got >= 5 {
		t.Errorf("%d reports counted: the ones addressed to SSRC %d, which the session does not send, were taken too", got, stranger)
	}
}
