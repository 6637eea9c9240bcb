package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/rtsp/rtsptest"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// transcodingCapture returns a p2pcast-capture that has --transcode: $P2PCAST_CAPTURE, else
// one built for the test (only the parts the transcoder needs).
func transcodingCapture(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("P2PCAST_CAPTURE"); p != "" {
		return p
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-C", "../../capture", "OUT="+out, "WAYLAND=0", "PIPEWIRE=0", "V4L2=0", "TRANSCODE=1", "-j2")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building p2pcast-capture: %v\n%s", err, b)
	}
	return filepath.Join(out, "p2pcast-capture")
}

// transcoderChildren lists this process's children that run the transcoder.
func transcoderChildren(t *testing.T) []int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	me := strconv.Itoa(os.Getpid())
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		if len(f) > 1 && f[1] == me && bytes.Contains(cmdline, []byte("--transcode")) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestRTSPCameraAAC: an H.264 + AAC camera (GStreamer: a 440 Hz tone, 48 kHz stereo) reaches a
// WebRTC viewer with Opus audio transcoded by the producer, again after the camera restarts
// (a new connection, a new transcoder), and the transcoder ends with the device.
func TestRTSPCameraAAC(t *testing.T) {
	capture := transcodingCapture(t)
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "aac", Width: 640, Height: 360})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	r, _ := startDevice(t, func(c *Config) { c.Source = srv.URL; c.CapturePath = capture })
	whep := strings.TrimSuffix(r.URL, "/") + "/whep"
	watch := func(what string) viewer.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: whep, Frames: 90})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.Frames < 90 || res.Width != 640 || res.Height != 360 {
			t.Fatalf("%s: viewer got %+v", what, res)
		}
		// 3 s of video: 50 Opus frames a second, less the start.
		if res.Audio == nil || !strings.EqualFold(res.Audio.Codec, "audio/opus") && !strings.EqualFold(res.Audio.Codec, "opus") || res.Audio.Packets < 100 {
			t.Fatalf("%s: no transcoded audio reached the viewer: %+v", what, res.Audio)
		}
		return res
	}
	res := watch("first viewer")
	t.Logf("first viewer: first keyframe %.0f ms after its request; %d Opus packets, %d bit/s, capture → receive %.0f ms (video %.0f ms)",
		res.FirstKeyframeMS, res.Audio.Packets, res.Audio.BitrateBPS, res.Audio.CaptureToReceiveMS, res.CaptureToReceiveMS)
	if n := len(transcoderChildren(t)); n != 1 {
		t.Errorf("%d transcoders running, want 1", n)
	}
	srv.Restart()
	watch("after the camera restarted")
	if n := len(transcoderChildren(t)); n != 1 {
		t.Errorf("%d transcoders running after the camera restarted, want 1", n)
	}
}

// h265Client is a WebRTC viewer made here: the viewer package takes only H.264 video.
type h265Client struct {
	pc      *webrtc.PeerConnection
	mu      sync.Mutex
	units   [][]byte
	audio   int
	notices []peer.Notice
	got     chan struct{} // closed when enough units came
	want    int
}

// dialWHEP offers to the device: video with H.265 (when h265) or H.264, Opus, and the
// events channel.
func dialWHEP(t *testing.T, whep string, h265 bool, want int) *h265Client {
	t.Helper()
	m := &webrtc.MediaEngine{}
	video := codec.H264.Parameters(codec.Params{ProfileLevelID: "42e01f"})
	if h265 {
		video = codec.H265.Parameters(codec.Params{})
	}
	if err := m.RegisterCodec(video, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(codec.Opus.Parameters(codec.Params{Channels: 2}), webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c := &h265Client{pc: pc, got: make(chan struct{}), want: want}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	dc, err := pc.CreateDataChannel(peer.EventsChannel, nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		var n peer.Notice
		if json.Unmarshal(msg.Data, &n) == nil && n.Type == "notice" {
			c.mu.Lock()
			c.notices = append(c.notices, n)
			c.mu.Unlock()
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				c.mu.Lock()
				c.audio++
				c.mu.Unlock()
			}
		}
		var d codec.H265Depacketizer
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			au, _ := d.Push(p.Payload, p.Marker)
			if au == nil {
				continue
			}
			c.mu.Lock()
			if len(c.units) > 0 || codec.H265Keyframe(au) { // the file starts at a keyframe
				c.units = append(c.units, append([]byte(nil), au...))
				if len(c.units) == c.want {
					close(c.got)
				}
			}
			c.mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-webrtc.GatheringCompletePromise(pc)
	resp, err := http.Post(whep, "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP: %s: %s", resp.Status, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRTSPCameraH265: an H.265 + AAC camera. A viewer that takes H.265 gets a picture that
// ffprobe reads as HEVC of the camera's size; one that does not gets the audio and a notice
// naming the codec (what the page shows).
func TestRTSPCameraH265(t *testing.T) {
	capture := transcodingCapture(t)
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h265", Audio: "aac", Width: 640, Height: 360})
	r, _ := startDevice(t, func(c *Config) { c.Source = srv.URL; c.CapturePath = capture })
	whep := strings.TrimSuffix(r.URL, "/") + "/whep"

	const frames = 60
	c := dialWHEP(t, whep, true, frames)
	select {
	case <-c.got:
	case <-time.After(15 * time.Second):
		c.mu.Lock()
		t.Fatalf("H.265 viewer: %d units in 15 s", len(c.units))
	}
	c.mu.Lock()
	file := filepath.Join(t.TempDir(), "camera.h265")
	if err := os.WriteFile(file, bytes.Join(c.units, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	audio := c.audio
	c.mu.Unlock()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != fmt.Sprintf("hevc,640,360,%d", frames) {
		t.Fatalf("ffprobe: %q, want hevc,640,360,%d", got, frames)
	}
	if audio == 0 {
		t.Errorf("the H.265 viewer got no audio")
	}

	// The project's own viewer (p2pcast view) takes H.265 and writes it to MP4 (hvc1).
	mp4File := filepath.Join(t.TempDir(), "camera.mp4")
	f, err := os.Create(mp4File)
	if err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithTimeout(context.Background(), 20*time.Second)
	res, err := viewer.Watch(vctx, viewer.Options{WHEPURL: whep, Frames: frames, Out: f, Format: viewer.FormatMP4})
	vcancel()
	f.Close()
	if err != nil || res.Frames < frames || res.Width != 640 || res.Height != 360 {
		t.Fatalf("p2pcast view of the H.265 camera: %+v %v", res, err)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", mp4File).Output()
	if err != nil {
		t.Fatalf("ffprobe of the viewer's MP4: %v", err)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "hevc,640,360,") {
		t.Fatalf("ffprobe of the viewer's MP4: %q, want hevc,640,360,…", got)
	}
	t.Logf("p2pcast view wrote %s: %s", filepath.Base(mp4File), strings.TrimSpace(string(out)))

	// A viewer without H.265 (as this machine's Chromium): audio only, and the notice.
	b := dialWHEP(t, whep, false, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		notices, audio, units := b.notices, b.audio, len(b.units)
		b.mu.Unlock()
		if len(notices) > 0 && audio > 50 {
			if n := notices[0]; n.Code != peer.NoticeVideoCodec || n.Codec != "H265" || !strings.Contains(n.Message, "H.265") {
				t.Fatalf("notice: %+v", n)
			}
			if units != 0 {
				t.Fatalf("a viewer without H.265 got %d video units", units)
			}
			t.Logf("notice: %s", notices[0].Message)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewer without H.265: notices %+v, %d audio packets", notices, audio)
		}
		time.Sleep(50 * time.Millisecond) // polling: the notice and audio have no event here
	}
}
