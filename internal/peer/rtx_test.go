package peer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// A viewer that negotiates RTX (RFC 4588; Chromium and Pion do) gets a NACKed packet again on
// the retransmission stream: Pion's receiver unwraps it into the packet it asked for, byte for
// byte. On the media stream the copy would repeat a sequence number the viewer has, and its
// SRTP replay check would drop it: that it arrives proves the copy went apart.
func TestRetransmissionsGoOnTheirOwnStream(t *testing.T) {
	s, st := videoSession(t)

	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	type packet struct {
		ssrc uint32
		p    rtp.Packet
	}
	got := make(chan packet, 4096)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case got <- packet{uint32(tr.SSRC()), *p}:
			default:
			}
		}
	})
	viewerOffers(t, pc, s, func(answer string) {
		if !strings.Contains(answer, "a=ssrc-group:FID ") || !strings.Contains(answer, " rtx/90000") {
			t.Fatalf("the answer does not send retransmissions apart:\n%s", answer)
		}
	})

	publishFrames(t, st)

	// The first packet of the stream, then a NACK for it.
	var first packet
	select {
	case first = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no video reached the viewer")
	}
	nack := &rtcp.TransportLayerNack{MediaSSRC: first.ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{first.p.SequenceNumber})}
	deadline := time.After(10 * time.Second)
	resend := time.NewTicker(200 * time.Millisecond) // a NACK may be lost like any packet
	defer resend.Stop()
	if err := pc.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case p := <-got:
			if p.p.SequenceNumber != first.p.SequenceNumber {
				continue
			}
			if p.ssrc != first.ssrc || p.p.PayloadType != first.p.PayloadType || p.p.Timestamp != first.p.Timestamp ||
				!bytes.Equal(p.p.Payload, first.p.Payload) {
				t.Fatalf("the retransmission differs from the packet: %v % x, first %v % x",
					p.p.Header, p.p.Payload[:8], first.p.Header, first.p.Payload[:8])
			}
			if n := s.Stats().Network; n == nil || n.Retransmitted == 0 {
				t.Errorf("the session counts no retransmission: %+v", n)
			}
			return
		case <-resend.C:
			if err := pc.WriteRTCP([]rtcp.Packet{nack}); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("the NACKed packet never came again")
		}
	}
}

// The retransmission payload type is found by the one it carries (apt), among others.
func TestRTXFor(t *testing.T) {
	codecs := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/H264"}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/rtx", SDPFmtpLine: "apt=96"}, PayloadType: 97},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/RTX", SDPFmtpLine: "rtx-time=3000; apt=102"}, PayloadType: 103},
	}
	if pt, ok := rtxFor(codecs, 102); !ok || pt != 103 {
		t.Errorf("rtxFor(102) = %d, %v", pt, ok)
	}
	if _, ok := rtxFor(codecs, 104); ok {
		t.Error("a payload type without retransmissions has one")
	}
}

// With a retransmission stream, probes go there: the media's sequence numbers have no gap
// for a lost probe to open. Padding again for a lost media-stream number stays on the media
// stream; without a retransmission stream, probes take media sequence numbers.
func TestProbesGoOnTheRetransmissionStream(t *testing.T) {
	w := &recorder{buf: make([]byte, 0, 1500)}
	tr := boundTrack(w)
	f := testFrame(3000, true)
	if err := tr.writeFrame(f); err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	media := tr.seq
	tr.rtx = &rtxStream{pt: 103, ssrc: 99, seq: 7, buf: make([]byte, 0, 1500)}
	if n, _, err := tr.writePadding(200, 0, false, 0); err != nil || n == 0 {
		t.Fatalf("probe: %d, %v", n, err)
	}
	if h := w.last; h.SSRC != 99 || h.PayloadType != 103 || h.SequenceNumber != 7 || !h.Padding || tr.seq != media || tr.paddedAs(7) {
		t.Fatalf("probe went as %+v (media at %d, next %d)", h, media, tr.seq)
	}
	if _, _, err := tr.writePadding(1, media-1, true, 0); err != nil {
		t.Fatal(err)
	}
	if h := w.last; h.SSRC != 1234 || h.PayloadType != 102 || h.SequenceNumber != media-1 {
		t.Fatalf("padding again went as %+v", h)
	}
	tr.rtx = nil
	if _, _, err := tr.writePadding(200, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	if h := w.last; h.SSRC != 1234 || h.SequenceNumber != media || tr.seq != media+1 || !tr.paddedAs(media) {
		t.Fatalf("without RTX the probe went as %+v", h)
	}
	// The live header is as it was.
	if tr.header.SSRC != 1234 || tr.header.PayloadType != 102 || tr.header.Padding {
		t.Fatalf("header left as %+v", tr.header)
	}
}

// probeEstimator asks for one probe cluster and records when its packets were sent.
type probeEstimator struct {
	fixedRate
	asked bool
	sent  []time.Time
}

func (e *probeEstimator) Probe(time.Time) (cluster, rate, bytes int) {
	if e.asked {
		return 0, 0, 0
	}
	e.asked = true
	return 1, 1_600_000, 4000 // 20 ms at 1.6 Mbit/s
}

func (e *probeEstimator) Sent(_ uint16, _ int, at time.Time, cluster int) {
	if cluster == 1 {
		e.sent = append(e.sent, at)
	}
}

// TestProbeIsSpreadOverItsDuration: a probe leaves at its rate from the moment it is issued,
// however long the sender was idle before: a sender last served 20 ms earlier (an audio
// packet's interval) sent a whole cluster in one slice, at one instant, and a cluster without
// a send span gives the estimator no result.
func TestProbeIsSpreadOverItsDuration(t *testing.T) {
	p := newPacer(nil)
	w := &recorder{buf: make([]byte, 0, 1500)}
	est := &probeEstimator{fixedRate: 800_000}
	snd := newSender(p, est)
	video := boundTrackOf(w, testVideo)
	video.twcc = make([]byte, 2) // the viewer negotiated transport-wide feedback
	_ = video.header.SetExtension(5, video.twcc)
	f := testFrame(3000, true) // padding follows media: it takes the track's timestamp
	defer f.Release()
	if err := video.writeFrame(f); err != nil {
		t.Fatal(err)
	}
	snd.video, snd.paced, snd.fast = video, true, false
	t0 := time.Unix(1000, 0)
	snd.mu.Lock()
	snd.probeLocked(t0, t0.UnixNano(), pacingSlice.Seconds()*4) // idle for 20 ms
	first := len(est.sent)
	for i := 1; i <= 20 && snd.probes.len() > 0; i++ {
		at := t0.Add(time.Duration(i) * pacingSlice)
		snd.probeLocked(at, at.UnixNano(), pacingSlice.Seconds())
	}
	left := snd.probes.len()
	snd.mu.Unlock()
	if len(est.sent) < 5 || left != 0 {
		t.Fatalf("%d probe packets sent, %d left", len(est.sent), left)
	}
	span := est.sent[len(est.sent)-1].Sub(est.sent[0])
	t.Logf("%d packets, %d at once, over %v", len(est.sent), first, span)
	if first > 2 || span < 15*time.Millisecond {
		t.Errorf("%d of %d probe packets at once, the rest over %v: want one at first and the cluster over ~20 ms", first, len(est.sent), span)
	}
}

// videoSession is a session of a stream with one video track (testVideo), closed when the test
// ends.
func videoSession(t *testing.T) (*Session, *stream.Stream) {
	t.Helper()
	return videoSessionWith(t, Config{IncludeLoopback: true})
}

// videoSessionWith is videoSession of an engine made with cfg.
func videoSessionWith(t *testing.T, cfg Config) (*Session, *stream.Stream) {
	t.Helper()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := stream.New(stream.Config{})
	st.Attach(stream.Describe("t", []stream.Track{testVideo}, nil), nil)
	s, err := e.NewSession(st, SessionOptions{Access: auth.FullAccess()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, st
}

// publishFrames publishes 4 kB frames of testVideo on st at 30 fps, a keyframe a second,
// until the test ends.
func publishFrames(t *testing.T, st *stream.Stream) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			f := testFrame(4000, i%30 == 0)
			f.Track = testVideo.ID
			st.Publish(f)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
}
