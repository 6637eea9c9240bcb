package peer

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// fakeSink is a talk-back sink that keeps what it gets.
type fakeSink struct {
	mu      sync.Mutex
	frames  [][]byte
	resumes int
	got     chan struct{}
}

func (f *fakeSink) Sink() stream.Track {
	return stream.Track{ID: 3, Kind: codec.Audio, Codec: "opus", ClockRate: 48000, Channels: 1}
}

func (f *fakeSink) TalkFrame(session string, payload []byte, resume bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, append([]byte(nil), payload...))
	if resume {
		f.resumes++
	}
	select {
	case f.got <- struct{}{}:
	default:
	}
	return nil
}

// viewerOffers negotiates a session as a browser on WHEP does: the viewer pc offers, the
// session answers. check, when set, looks at the answer before pc takes it.
func viewerOffers(t *testing.T, pc *webrtc.PeerConnection, s *Session, check func(answer string)) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if _, err := s.Answer(pc.LocalDescription().SDP); err != nil {
		t.Fatal(err)
	}
	<-s.GatheringDone()
	answer := s.LocalDescription()
	if check != nil {
		check(answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

// talkingViewer is a Pion viewer that offers to receive video and to send and receive audio.
func talkingViewer(t *testing.T) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	return pc, mic
}

func TestTalkBackToTheSink(t *testing.T) {
	e, err := NewEngine(Config{IncludeLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	st := stream.New(stream.Config{})
	sink := &fakeSink{got: make(chan struct{}, 1)}
	st.Attach(stream.Describe("t", []stream.Track{testVideo, testAudio}, []stream.Track{sink.Sink()}), nil)
	for _, tc := range []struct {
		name   string
		grants []auth.Grant
		talk   bool
	}{{"with talk", []auth.Grant{auth.GrantView, auth.GrantTalk}, true}, {"without talk", []auth.Grant{auth.GrantView}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := e.NewSession(st, SessionOptions{Access: auth.Access{Grants: tc.grants}, Talk: sink})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pc, mic := talkingViewer(t)
			viewerOffers(t, pc, s, nil)
			if dir := answerAudioDirection(s.LocalDescription()); (dir == "sendrecv") != tc.talk {
				t.Fatalf("answer's audio is %s (talk %v)", dir, tc.talk)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					_ = mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(960 * i)}, Payload: []byte{0xf8, byte(i), 1, 2, 3}})
				}
			}()
			select {
			case <-sink.got:
				if !tc.talk {
					t.Fatal("a viewer without the talk grant reached the sink")
				}
				sink.mu.Lock()
				if sink.resumes < 1 || sink.frames[0][0] != 0xf8 {
					t.Errorf("first talk-back frame %x, resumes %d", sink.frames[0], sink.resumes)
				}
				sink.mu.Unlock()
			case <-time.After(1500 * time.Millisecond):
				if tc.talk {
					t.Fatalf("no talk-back reached the sink; session %+v", s.Stats())
				}
			}
		})
	}
}

// answerAudioDirection is the direction attribute of an SDP's audio section.
func answerAudioDirection(sdp string) string {
	audio := false
	for l := range strings.Lines(sdp) {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "m="):
			audio = strings.HasPrefix(l, "m=audio")
		case audio && (l == "a=sendrecv" || l == "a=sendonly" || l == "a=recvonly" || l == "a=inactive"):
			return l[2:]
		}
	}
	return ""
}

func TestReceiveOnlyAudio(t *testing.T) {
	in := "v=0\r\nm=video 9 X 96\r\na=sendrecv\r\nm=audio 9 X 111\r\na=sendrecv\r\nm=audio 9 X 0\r\na=sendonly\r\n"
	want := "v=0\r\nm=video 9 X 96\r\na=sendrecv\r\nm=audio 9 X 111\r\na=recvonly\r\nm=audio 9 X 0\r\na=inactive\r\n"
	if got := receiveOnlyAudio(in); got != want {
		t.Fatalf("got %q", got)
	}
}

// A session with audio lets the receiver delay video for lip sync; one without keeps max 0.
func TestPlayoutDelayAllowsLipSync(t *testing.T) {
	zero := PlayoutDelay{}
	if got := zero.forSession(false); got != zero {
		t.Fatalf("video only: %+v", got)
	}
	if got := zero.forSession(true); got.Min != 0 || got.Max != LipSyncDelay {
		t.Fatalf("with audio: %+v", got)
	}
	if got := (PlayoutDelay{Max: time.Second}).forSession(true); got.Max != time.Second {
		t.Fatalf("a larger max is kept: %+v", got)
	}
	// 0 ms min and 500 ms max: 0x000 and 0x032 in 10 ms units.
	if p := zero.forSession(true).payload(); p[0] != 0 || p[1] != 0 || p[2] != 50 {
		t.Fatalf("payload % x", p)
	}
}
