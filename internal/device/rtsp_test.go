package device

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/rtsp/rtsptest"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// TestRTSPCamera: a device whose source is an RTSP camera (GStreamer's RTSP server, digest
// auth) republishes its H.264 and PCMA to a WebRTC viewer, never shows the camera's password,
// and plays again after the camera restarts.
func TestRTSPCamera(t *testing.T) {
	const user, password = "admin", "s3cr3t:@/pw"
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "pcma", User: user, Password: password, Digest: true,
		Width: 640, Height: 360})
	r, _ := startDevice(t, func(c *Config) { c.Source = srv.URLWithAuth(user, password) })
	whep := strings.TrimSuffix(r.URL, "/") + "/whep"
	watch := func(what string) viewer.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		// Three of the camera's GOPs: a replay of the cached one cannot make up the count.
		res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: whep, Frames: 90})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.Frames < 90 || res.Width != 640 || res.Height != 360 || res.Keyframes < 1 {
			t.Fatalf("%s: viewer got %+v", what, res)
		}
		if res.Audio == nil || res.Audio.Packets == 0 || !strings.EqualFold(res.Audio.Codec, "PCMA") {
			t.Fatalf("%s: no camera audio reached the viewer: %+v", what, res.Audio)
		}
		return res
	}
	res := watch("first viewer")
	t.Logf("first viewer: first keyframe %.0f ms after its request, %d audio packets", res.FirstKeyframeMS, res.Audio.Packets)

	resp, err := http.Get(r.URL + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), password) {
		t.Errorf("the status API shows the camera's password")
	}

	restarted := time.Now()
	srv.Restart()
	res = watch("after the camera restarted")
	t.Logf("after the camera restarted: 90 frames %.1f s later", time.Since(restarted).Seconds())
	if d := time.Since(restarted); d > 5*time.Second+3*time.Second { // back within 5 s, then 3 s of frames
		t.Errorf("playback took %.1f s to come back after the camera did", d.Seconds())
	}
}
