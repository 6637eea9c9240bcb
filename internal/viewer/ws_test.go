package viewer

import (
	"errors"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/logtest"
)

func checkWatched(t *testing.T, res Result, frames int, signaling string) {
	t.Helper()
	t.Logf("%+v", res)
	if res.Frames < frames || res.Width != 1280 || res.Height != 720 || res.Keyframes < 1 {
		t.Fatalf("watched %+v, want %d frames of 1280x720", res, frames)
	}
	if res.Signaling != signaling {
		t.Errorf("signaling %q, want %q", res.Signaling, signaling)
	}
	if res.TTFFMS <= 0 || res.FirstKeyframeMS <= 0 || res.FirstKeyframeMS > res.TTFFMS {
		t.Errorf("ttff %.1f ms, first keyframe %.1f ms", res.TTFFMS, res.FirstKeyframeMS)
	}
	// The producer stamps capture = now, on this machine: the delay is small and positive.
	if !res.AbsCaptureTime || res.CaptureToReceiveMS <= 0 || res.CaptureToReceiveMS > 1000 {
		t.Errorf("abs-capture-time %v, capture → receive %.3f ms", res.AbsCaptureTime, res.CaptureToReceiveMS)
	}
}

// The device's own WebSocket: hello, watch, the device offers, the viewer answers, trickle.
func TestWatchDeviceWebSocket(t *testing.T) {
	d := startDevice(t)
	var logs logtest.Buffer
	res, err := Watch(testContext(t), Options{WSURL: d.ws(), Frames: 15, FirstFrameTimeout: 10 * time.Second, Logger: logs.Logger()})
	if err != nil {
		t.Fatalf("watch: %v\n%s", err, logs.String())
	}
	checkWatched(t, res, 15, "ws")
	p := res.Pair
	if p.LocalType != "host" || (p.RemoteType != "host" && p.RemoteType != "prflx") || p.Protocol != "udp" {
		t.Errorf("pair %+v, want host → host/prflx over udp", p)
	}
	if res.LossPct != 0 {
		t.Errorf("loss %.2f%% on loopback", res.LossPct)
	}
}

// WHEP shares the media side: the same measurements, abs-capture-time included.
func TestWatchDeviceWHEP(t *testing.T) {
	d := startDevice(t)
	res, err := Watch(testContext(t), Options{WHEPURL: d.whep(), Frames: 5})
	if err != nil {
		t.Fatal(err)
	}
	checkWatched(t, res, 5, "whep")
	if res.Pair.LocalType == "" || res.Pair.Protocol != "udp" {
		t.Errorf("pair %+v", res.Pair)
	}
}

func TestDeviceMessagesEndTheWatch(t *testing.T) {
	h := newFakeHub(t, nil)
	for _, tc := range []struct {
		name   string
		path   string
		want   []error
		inText string
	}{
		{"bye before media", "/fake/bye", []error{ErrNoMedia, ErrSessionEnded}, "device shutting down"},
		{"busy", "/fake/busy", []error{ErrBusy, ErrUnavailable}, "busy"},
		{"fatal", "/fake/fatal", nil, "fatal"},
		{"closed after a complaint", "/fake/complain", nil, "bad_sdp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Watch(testContext(t), Options{WSURL: h.ws(tc.path)})
			if err == nil {
				t.Fatal("watch succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %v", err, w)
				}
			}
			if !contains(err.Error(), tc.inText) {
				t.Errorf("error %q does not say %q", err, tc.inText)
			}
		})
	}
}

func TestFirstFrameTimeout(t *testing.T) {
	h := newFakeHub(t, nil)
	start := time.Now()
	_, err := Watch(testContext(t), Options{WSURL: h.ws("/fake/silent"), FirstFrameTimeout: 300 * time.Millisecond})
	t.Log(err)
	if !errors.Is(err, ErrTimeout) || !contains(err.Error(), "no offer") {
		t.Fatalf("error %v, want a timeout waiting for the offer", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("timed out after %s", el)
	}
}

func TestNTPToTime(t *testing.T) {
	want := time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC)
	v := uint64(want.Unix()+ntpEpochOffset)<<32 | uint64(0.25*(1<<32))
	if got := ntpToTime(v); !got.Equal(want) {
		t.Fatalf("ntpToTime = %s, want %s", got.UTC(), want)
	}
}
