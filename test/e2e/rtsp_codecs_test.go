//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/rtsp/rtsptest"
)

// TestBrowserPlaysRTSPCameraAAC: an H.264 + AAC camera (GStreamer: a 440 Hz tone, 48 kHz
// stereo AAC) plays in Chromium WITH its audio: the device's producer transcodes the AAC to
// Opus (p2pcast-capture --transcode aac). The page's meter hears it; the first frame comes
// from the cached GOP; both go on after the camera restarts (a new connection, a new
// transcoder).
func TestBrowserPlaysRTSPCameraAAC(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "aac", Width: 640, Height: 360, GOP: 60})
	dev := startDevice(t, "127.0.0.1:0", "--source", srv.URL)
	b := newBrowser(t)
	waitProducerAudio(t, dev.url, "", false)
	tab := openTab(t, b, dev.url)
	a := pagePlaysAudio(t, tab, "AAC camera")
	// The page starts muted (no gesture yet), so the receiver's own energy stays 0: its
	// meter (WebAudio on the received track) is what hears the tone.
	t.Logf("transcoded audio: %.0f packets, meter peak %.1f dB", a.PacketsReceived, *a.MeterPeakDB)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := browser.Eval[float64](ctx, tab, `(() => { const p = document.querySelector('p2pcast-player'); return p.firstFrameAt - p.firstRequestedAt; })()`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first frame %.0f ms after the page's request (target 300 ms; the camera's GOP is 2 s)", ms)
	if ms > 1000 {
		t.Errorf("first frame %.0f ms after the page's request: not from the cached GOP", ms)
	}

	before := stats(t, tab)
	beforeAudio := waitAudio(t, tab, "audio before the restart", 5*time.Second, func(a pageAudio) bool { return a.Present })
	srv.Restart()
	restarted := time.Now()
	waitFor(t, tab, "frames after the camera restarted", 15*time.Second, func(s pageStats) bool {
		return s.FramesDecoded >= before.FramesDecoded+90
	})
	after := waitAudio(t, tab, "transcoded audio after the camera restarted", 10*time.Second, func(a pageAudio) bool {
		return a.PacketsReceived >= beforeAudio.PacketsReceived+150 && a.MeterPeakDB != nil && *a.MeterPeakDB > -40
	})
	t.Logf("after the restart: 90 more frames and %.0f more audio packets %.1f s later", after.PacketsReceived-beforeAudio.PacketsReceived, time.Since(restarted).Seconds())
}

// TestBrowserPlaysRTSPCameraH265: an H.265 + AAC camera in a Chromium that does not take
// H.265 over WebRTC (this machine's, headless, without hardware decoding): the page plays the
// camera's sound and shows the device's notice mid-screen instead of a black picture. A
// Chromium that offers H.265 must show the picture instead.
func TestBrowserPlaysRTSPCameraH265(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h265", Audio: "aac", Width: 640, Height: 360, GOP: 60})
	dev := startDevice(t, "127.0.0.1:0", "--source", srv.URL)
	b := newBrowser(t)
	waitProducerAudio(t, dev.url, "", false)
	tab, console := openTabWithConsole(t, b, dev.url)
	defer func() {
		if t.Failed() {
			t.Logf("page console:\n%s", strings.Join(console(), "\n"))
		}
	}()
	eval := func(js string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v, err := browser.Eval[string](ctx, tab, js)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	codecs, err := browser.Eval[[]string](ctx, tab, `RTCRtpReceiver.getCapabilities('video').codecs.map((c) => c.mimeType)`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Chromium receives %v", codecs)
	for _, c := range codecs {
		if strings.EqualFold(c, "video/H265") {
			s := waitFor(t, tab, "H.265 decodes", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded >= 30 })
			t.Logf("this Chromium takes H.265: %vx%v", s.FrameWidth, s.FrameHeight)
			return
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	var notice string
	for notice == "" {
		notice = eval(`window.p2pcast.deviceNotice() ?? ''`)
		if time.Now().After(deadline) {
			t.Fatal("the page shows no notice from the device")
		}
		time.Sleep(100 * time.Millisecond) // polling the page: it has no event to wait on here
	}
	shown := eval(`(() => { const p = document.querySelector('p2pcast-player');
		const el = [...p.shadowRoot.querySelectorAll('*')].find((e) => !e.hidden && e.textContent.includes('H.265'));
		return el ? el.textContent : ''; })()`)
	t.Logf("the page says: %s", shown)
	if !strings.Contains(notice, "H.265") || !strings.Contains(shown, "H.265") {
		t.Errorf("notice %q, shown %q: want the camera's H.265 named", notice, shown)
	}
	a := waitAudio(t, tab, "the camera's sound without its picture", 10*time.Second, func(a pageAudio) bool {
		return a.Present && a.PacketsReceived > 50 && a.MeterPeakDB != nil && *a.MeterPeakDB > -40
	})
	t.Logf("audio only: %.0f packets", a.PacketsReceived)
}
