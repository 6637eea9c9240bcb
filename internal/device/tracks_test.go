package device

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

var (
	helloVideo = ipc.Hello{Track: 1, Kind: ipc.KindVideo, Codec: ipc.CodecH264, Width: 1280, Height: 720,
		FPSNum: 30, FPSDen: 1, Capabilities: ipc.CapKeyframe, Name: "go-v2"}
	helloAudio = ipc.Hello{Track: 2, Kind: ipc.KindAudio, Codec: ipc.CodecOpus, Channels: 1, SampleRate: 48000, FrameDuration: 20000}
	helloSink  = ipc.Hello{Track: 3, Kind: ipc.KindAudio, Codec: ipc.CodecOpus, Channels: 1, SampleRate: 48000, FrameDuration: 20000, Sink: true}
)

// opusPacket stands in for an encoded 20 ms frame: the device never decodes audio.
var opusPacket = append([]byte{0xf8}, bytes.Repeat([]byte{0x5a}, 60)...)

// v2Producer connects a version 2 producer that announces hellos (the last gets LAST) and then
// sends video (the test stream, 30 fps) and/or audio (20 ms packets) for the tracks announced,
// on one capture clock. Device → producer messages go to the returned channel.
func v2Producer(t *testing.T, sock string, hellos ...ipc.Hello) <-chan ipc.Message {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := ipc.NewWriter(c, ipc.Version2)
	var video, audio bool
	for i, h := range hellos {
		h.Last = i == len(hellos)-1
		if err := w.WriteHello(h); err != nil {
			t.Fatal(err)
		}
		video = video || h.Kind == ipc.KindVideo
		audio = audio || h.Kind == ipc.KindAudio && !h.Sink
	}
	fromDevice := make(chan ipc.Message, 256)
	keyframe := make(chan struct{}, 1)
	go func() {
		defer close(fromDevice)
		rd := ipc.NewReader(c)
		for {
			m, err := rd.Next()
			if err != nil {
				return
			}
			if m.Type == ipc.TypeKeyframe {
				select {
				case keyframe <- struct{}{}:
				default:
				}
			}
			m.Payload = bytes.Clone(m.Payload)
			select {
			case fromDevice <- m:
			default:
			}
		}
	}()
	aus := testStream(t)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		start := time.Now()
		vt, at := time.NewTicker(33*time.Millisecond), time.NewTicker(20*time.Millisecond)
		defer vt.Stop()
		defer at.Stop()
		v, a := 0, 0
		for {
			var err error
			select {
			case <-done:
				return
			case <-keyframe:
				v = 0
				continue
			case now := <-vt.C:
				if !video {
					continue
				}
				err = w.WriteFrame(ipc.Frame{Track: 1, Seq: uint32(v), Capture: now.UnixNano(), Data: aus[v%len(aus)]})
				v++
			case <-at.C:
				if !audio {
					continue
				}
				capture := start.Add(time.Duration(a) * 20 * time.Millisecond).UnixNano()
				err = w.WriteFrame(ipc.Frame{Track: 2, Seq: uint32(a), Capture: capture, Data: opusPacket})
				a++
			}
			if err != nil {
				return
			}
		}
	}()
	return fromDevice
}

// A producer may send video, audio or both on one socket; viewers get what it sends.
func TestProducerTracks(t *testing.T) {
	for _, tc := range []struct {
		name         string
		hellos       []ipc.Hello
		video, audio bool
	}{
		{"video", []ipc.Hello{helloVideo}, true, false},
		{"audio", []ipc.Hello{helloAudio}, false, true},
		{"video and audio", []ipc.Hello{helloVideo, helloAudio}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := startDevice(t)
			v2Producer(t, r.SocketPath, tc.hellos...)
			waitTracks(t, d, len(tc.hellos))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep", Duration: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Frames > 0; got != tc.video {
				t.Errorf("video frames %d, want video %v", res.Frames, tc.video)
			}
			if got := res.Audio != nil && res.Audio.Packets > 10; got != tc.audio {
				t.Errorf("audio %+v, want audio %v", res.Audio, tc.audio)
			}
			if tc.video && (res.Width != 1280 || res.Height != 720) {
				t.Errorf("picture %dx%d", res.Width, res.Height)
			}
			if tc.audio && res.Audio != nil && res.Audio.Codec != "opus" {
				t.Errorf("audio codec %q", res.Audio.Codec)
			}
		})
	}
}

// The SDP offers the profile the producer really sends: a High profile stream is announced as
// High (profile-level-id from its SPS), and a viewer that takes High plays it.
func TestSDPOffersTheStreamsProfile(t *testing.T) {
	r, _ := startDevice(t)
	aus := annexBFile(t, "../media/testdata/high_1080p.h264")
	playAnnexB(t, r.SocketPath, aus)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep", Frames: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 1920 {
		t.Fatalf("High profile stream: %+v", res)
	}
	// Its answer to a browser-like offer names High (64…), not the baseline default.
	answer := whepAnswer(t, r, "", offerWith(t, webrtc.RTPTransceiverDirectionRecvonly, false))
	if !strings.Contains(answer, "profile-level-id=64") {
		t.Fatalf("answer does not offer High:\n%s", answer)
	}
}

func annexBFile(t *testing.T, path string) [][]byte {
	t.Helper()
	old := testStreamPath
	testStreamPath = path
	defer func() { testStreamPath = old }()
	return testStream(t)
}

// offerWith makes a browser-like offer (Pion's default codecs): video to receive, audio in dir,
// and a track to send on it when send is set. It returns the offer; the connection stays
// open for the test.
func offerWith(t *testing.T, audioDir webrtc.RTPTransceiverDirection, send bool) string {
	t.Helper()
	pc, _ := clientPC(t, audioDir, send)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

func clientPC(t *testing.T, audioDir webrtc.RTPTransceiverDirection, send bool) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var mic *webrtc.TrackLocalStaticRTP
	if send {
		mic, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: audioDir}); err != nil {
			t.Fatal(err)
		}
	} else if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: audioDir}); err != nil {
		t.Fatal(err)
	}
	return pc, mic
}

// whepAnswer posts offer to the device's WHEP endpoint (with a bearer token if given).
func whepAnswer(t *testing.T, r Ready, token, offer string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(r.URL, "/")+"/whep", strings.NewReader(offer))
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP: %s: %s", resp.Status, b)
	}
	return string(b)
}

// audioDirection is the direction of the first audio section of an SDP.
func audioDirection(t *testing.T, text string) string {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		for _, a := range m.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				return a.Key
			}
		}
	}
	return ""
}

// Talk-back: a viewer with the talk grant sends Opus; the producer's sink gets the same
// payloads, the first of the burst marked RESUME. A viewer without the grant is answered with
// send-only audio, so its browser sends nothing.
func TestTalkBackReachesTheProducer(t *testing.T) {
	r, d, store := lanDevice(t)
	fromDevice := v2Producer(t, r.SocketPath, helloVideo, helloAudio, helloSink)
	waitTracks(t, d, 2)

	viewOnly, _ := mint(t, store, "cam1", time.Hour, auth.GrantView)
	if dir := audioDirection(t, whepAnswer(t, r, viewOnly, offerWith(t, webrtc.RTPTransceiverDirectionSendrecv, true))); dir != "sendonly" {
		t.Fatalf("a viewer without talk got audio %q, want sendonly", dir)
	}

	talker, _ := mint(t, store, "cam1", time.Hour, auth.GrantView, auth.GrantTalk)
	pc, mic := clientPC(t, webrtc.RTPTransceiverDirectionSendrecv, true)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer := whepAnswer(t, r, talker, pc.LocalDescription().SDP)
	if dir := audioDirection(t, answer); dir != "sendrecv" {
		t.Fatalf("a viewer with talk got audio %q, want sendrecv", dir)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)},
				Payload: append([]byte{0xf8, byte(i)}, opusPacket[2:]...)}
			_ = mic.WriteRTP(p)
		}
	}()
	deadline := time.After(15 * time.Second)
	var first *ipc.Message
	for n := 0; n < 10; {
		select {
		case m, ok := <-fromDevice:
			if !ok {
				t.Fatal("the device closed the producer connection")
			}
			if m.Type != ipc.TypeSinkFrame {
				continue
			}
			c, err := ipc.ParseControl(m)
			if err != nil || c.Track != helloSink.Track || c.Data[0] != 0xf8 || !bytes.Equal(c.Data[2:], opusPacket[2:]) {
				t.Fatalf("sink frame %+v %v", c, err)
			}
			if first == nil {
				first = &m
				if !c.Resume {
					t.Error("the first talk-back frame is not marked RESUME")
				}
			}
			n++
		case <-deadline:
			for _, st := range pc.GetStats() {
				if o, ok := st.(webrtc.OutboundRTPStreamStats); ok {
					t.Logf("client outbound %+v", o)
				}
			}
			for _, s := range d.sessionStats() {
				t.Logf("session %+v talk %+v", s, s.Talk)
			}
			t.Fatal("no talk-back reached the producer")
		}
	}
	var talked bool
	for _, s := range d.sessionStats() {
		talked = talked || s.Talk != nil && s.Talk.Packets >= 10
	}
	if !talked {
		t.Fatalf("no session counted the talk-back: %+v", d.sessionStats())
	}
}

// waitTracks waits until the device's source has n tracks.
func waitTracks(t *testing.T, d *Device, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.Stream().Changed():
		case <-time.After(100 * time.Millisecond):
		}
		if info, ok := d.Stream().Info(); ok && len(info.Tracks) == n {
			return
		}
	}
	t.Fatalf("the source never had %d tracks", n)
}

// Version 2 mistakes close that producer's connection and publish nothing.
func TestBadV2ProducerInput(t *testing.T) {
	r, d := startDevice(t)
	msg := func(f func(w *ipc.Writer)) []byte {
		var b bytes.Buffer
		f(ipc.NewWriter(&b, ipc.Version2))
		return b.Bytes()
	}
	last := func(h ipc.Hello) ipc.Hello { h.Last = true; return h }
	frame := ipc.Frame{Track: 1, Capture: 1, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65, 0x88}}
	cases := map[string][]byte{
		"frame before the last hello": msg(func(w *ipc.Writer) { w.WriteHello(helloVideo); w.WriteFrame(frame) }),
		"track announced twice":       msg(func(w *ipc.Writer) { w.WriteHello(helloVideo); w.WriteHello(last(helloVideo)) }),
		"hello after the last":        msg(func(w *ipc.Writer) { w.WriteHello(last(helloVideo)); w.WriteHello(last(helloAudio)) }),
		"frame of an unknown track":   msg(func(w *ipc.Writer) { w.WriteHello(last(helloVideo)); f := frame; f.Track = 9; w.WriteFrame(f) }),
		"frame of a sink": msg(func(w *ipc.Writer) {
			w.WriteHello(helloVideo)
			w.WriteHello(last(helloSink))
			f := frame
			f.Track = 3
			w.WriteFrame(f)
		}),
		"version 1 after version 2": msg(func(w *ipc.Writer) { w.WriteHello(last(helloVideo)) }),
		"h265":                      msg(func(w *ipc.Writer) { h := last(helloVideo); h.Codec = ipc.CodecH265; w.WriteHello(h) }),
		"audio at 44.1 kHz": msg(func(w *ipc.Writer) {
			h := last(helloAudio)
			h.SampleRate = 44100
			w.WriteHello(h)
		}),
	}
	var v1 bytes.Buffer
	ipc.NewWriter(&v1, ipc.Version1).WriteFrame(frame)
	cases["version 1 after version 2"] = append(cases["version 1 after version 2"], v1.Bytes()...)
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("unix", r.SocketPath)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, c)
		})
	}
	if st := d.stream.Stats(); st.Frames != 0 {
		t.Fatalf("bad input published %d frames", st.Frames)
	}
	servesFrames(t, r)
}

// The producer learns how many read each track, so it can idle what nobody reads.
func TestProducerLearnsReaders(t *testing.T) {
	r, d := startDevice(t)
	fromDevice := v2Producer(t, r.SocketPath, helloVideo, helloAudio)
	waitTracks(t, d, 2)
	readers := func(track uint8, want uint32) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-fromDevice:
				if c, err := ipc.ParseControl(m); err == nil && c.Type == ipc.TypeViewers && c.Track == track && c.Viewers == want {
					return
				}
			case <-deadline:
				t.Fatalf("the producer was never told track %d has %d readers", track, want)
			}
		}
	}
	readers(2, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep"})
	}()
	readers(2, 1)
	cancel()
	<-done
	readers(2, 0)
}

// Through a hub the same rule holds: the session's claims carry the grants, and only a token
// with talk gets an audio section the viewer may send on.
func TestHubSessionTalksOnlyWithTheGrant(t *testing.T) {
	r, d := startDevice(t)
	v2Producer(t, r.SocketPath, helloVideo, helloAudio, helloSink)
	waitTracks(t, d, 2)
	for _, tc := range []struct {
		grants []auth.Grant
		want   string
	}{{[]auth.Grant{auth.GrantView}, "sendonly"}, {[]auth.Grant{auth.GrantView, auth.GrantTalk}, "sendrecv"}} {
		s, err := backend{d: d, viaHub: true}.NewSession(signal.Request{Access: auth.Access{TokenID: "t1", Grants: tc.grants}, Source: "hub"})
		if err != nil {
			t.Fatal(err)
		}
		offer, err := s.Offer()
		if err != nil {
			t.Fatal(err)
		}
		if dir := audioDirection(t, offer); dir != tc.want {
			t.Errorf("grants %v: the device offered audio %s, want %s", tc.grants, dir, tc.want)
		}
		s.(*peer.Session).Close()
	}
}
