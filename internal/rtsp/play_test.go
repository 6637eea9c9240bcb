package rtsp_test

// Tests against a real RTSP server (GStreamer's, through rtsptest).

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/rtsp"
	"github.com/p2pcast/p2pcast/internal/rtsp/rtsptest"
)

func dial(t *testing.T, ctx context.Context, url string, opts rtsp.Options) *rtsp.Conn {
	t.Helper()
	c, err := rtsp.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// noLeftGoroutines waits (polling: no event says a goroutine ended) until the goroutines are
// back to baseline and none runs this package's code.
func noLeftGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		ours := 0
		for _, g := range strings.Split(stacks, "\n\n")[1:] { // the first is this goroutine
			if strings.Contains(g, "p2pcast/internal/rtsp.") {
				ours++
			}
		}
		if ours == 0 && runtime.NumGoroutine() <= baseline {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left: %d (baseline %d), %d in internal/rtsp:\n%s", runtime.NumGoroutine(), baseline, ours, stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type probe struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		NbReadFrames string `json:"nb_read_frames"`
		SampleRate   string `json:"sample_rate"`
		Channels     int    `json:"channels"`
	} `json:"streams"`
}

// ffprobe decodes a file and says what it found.
func ffprobe(t *testing.T, file, format string) probe {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe (ffmpeg) is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-f", format, "-count_frames", "-show_streams", "-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil || len(p.Streams) != 1 {
		t.Fatalf("ffprobe: %s %v", out, err)
	}
	return p
}

func TestPlayH264PCMA(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "pcma", Width: 352, Height: 288, SessionTimeout: 4})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dialStart := time.Now()
	c := dial(t, ctx, srv.URL, rtsp.Options{})
	tracks := c.Tracks()
	if len(tracks) != 2 {
		t.Fatalf("tracks %+v", tracks)
	}
	v, a := tracks[0], tracks[1]
	if v.Kind != codec.Video || v.Codec != "H264" || v.ClockRate != 90000 || v.Width != 352 || v.Height != 288 || len(v.ParamSets) != 2 {
		t.Errorf("video track %+v", v)
	}
	if a.Kind != codec.Audio || a.Codec != "PCMA" || a.ClockRate != 8000 || a.Channels != 1 || a.PayloadType != 8 {
		t.Errorf("audio track %+v", a)
	}

	h264 := filepath.Join(t.TempDir(), "video.h264")
	f, err := os.Create(h264)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const playFor = 5 * time.Second
	var (
		videoUnits, keyframes, audioUnits int
		firstKey                          time.Duration
		firstVideo, lastVideo             rtsp.Unit
		firstVideoAt, lastVideoAt         time.Time
		lastAudio                         time.Time
	)
	start := time.Now()
	for time.Since(start) < playFor+time.Second {
		u, err := c.ReadUnit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if u.Time.After(now) {
			t.Errorf("unit captured %v in the future", u.Time.Sub(now))
		}
		switch u.Track {
		case 0:
			if videoUnits == 0 {
				if !u.Keyframe {
					t.Error("first video unit is not a keyframe")
				}
				firstKey = now.Sub(dialStart)
				firstVideo, firstVideoAt = u, now
			}
			videoUnits++
			if u.Keyframe {
				keyframes++
			}
			lastVideo, lastVideoAt = u, now
			if _, err := f.Write(u.Data); err != nil {
				t.Fatal(err)
			}
		case 1:
			if len(u.Data) != 160 {
				t.Errorf("audio frame of %d bytes, want 160 (20 ms)", len(u.Data))
			}
			if !lastAudio.IsZero() && !u.Time.After(lastAudio) {
				t.Errorf("audio time went from %v to %v", lastAudio, u.Time)
			}
			if audioUnits == 0 {
				start = now // count audio over playFor from its first frame
			}
			lastAudio = u.Time
			audioUnits++
			if now.Sub(start) >= playFor && audioUnits > 0 {
				goto done
			}
		}
	}
done:
	t.Logf("Dial to first keyframe unit: %v; %d video units (%d keyframes), %d audio frames; stats %+v",
		firstKey, videoUnits, keyframes, audioUnits, c.Stats())
	if audioUnits < 240 || audioUnits > 262 {
		t.Errorf("%d audio frames in %v, want 50/s", audioUnits, playFor)
	}
	if keyframes < 4 {
		t.Errorf("%d keyframes in %d units, want one every 30", keyframes, videoUnits)
	}
	// Capture times advance with wall time.
	wall, capture := lastVideoAt.Sub(firstVideoAt), lastVideo.Time.Sub(firstVideo.Time)
	if (wall - capture).Abs() > 100*time.Millisecond {
		t.Errorf("capture times advanced %v over %v of wall time", capture, wall)
	}
	if rtpSpan := time.Duration(lastVideo.RTPTime-firstVideo.RTPTime) * time.Second / 90000; (rtpSpan - capture).Abs() > 100*time.Millisecond {
		t.Errorf("capture times advanced %v over %v of RTP time", capture, rtpSpan)
	}
	st := c.Stats()
	for i, ts := range st.Tracks {
		if ts.Lost != 0 || ts.Dropped != 0 || ts.BadPackets != 0 {
			t.Errorf("track %d: %+v", i, ts)
		}
	}
	// The session timeout is 4 s: keep-alives every 2 s, all answered 200.
	if st.KeepAlives < 2 || st.KeepAliveFailed != 0 {
		t.Errorf("keep-alives: %d sent, %d failed", st.KeepAlives, st.KeepAliveFailed)
	}
	f.Close()
	p := ffprobe(t, h264, "h264")
	if s := p.Streams[0]; s.CodecName != "h264" || s.Width != 352 || s.Height != 288 || s.NbReadFrames != strconv.Itoa(videoUnits) {
		t.Errorf("ffprobe: %+v, want %d frames of 352x288", s, videoUnits)
	}
}

func TestPlayH265AAC(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h265", Audio: "aac"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, srv.URL, rtsp.Options{})
	tracks := c.Tracks()
	if len(tracks) != 2 || tracks[0].Codec != "H265" || tracks[0].Width != 320 || tracks[0].Height != 240 ||
		tracks[1].Codec != "AAC" || tracks[1].ClockRate != 48000 || tracks[1].Channels != 2 || tracks[1].FrameTicks != 1024 {
		t.Fatalf("tracks %+v", tracks)
	}
	dir := t.TempDir()
	hevc, adts := filepath.Join(dir, "video.h265"), filepath.Join(dir, "audio.aac")
	var vbuf, abuf []byte
	var video, audio, keys int
	var lastAudio rtsp.Unit
	for video < 60 || audio < 60 {
		u, err := c.ReadUnit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Track == 0 {
			if video == 0 && !u.Keyframe {
				t.Error("first video unit is not a keyframe")
			}
			if u.Keyframe {
				keys++
			}
			video++
			vbuf = append(vbuf, u.Data...)
			continue
		}
		if audio > 0 && u.RTPTime != lastAudio.RTPTime+1024 {
			t.Errorf("AAC frame at RTP %d after %d", u.RTPTime, lastAudio.RTPTime)
		}
		audio++
		lastAudio = u
		abuf = append(abuf, adtsHeader(len(u.Data), 48000, 2)...)
		abuf = append(abuf, u.Data...)
	}
	if keys < 2 {
		t.Errorf("%d keyframes in %d units", keys, video)
	}
	if err := os.WriteFile(hevc, vbuf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adts, abuf, 0o600); err != nil {
		t.Fatal(err)
	}
	if s := ffprobe(t, hevc, "hevc").Streams[0]; s.CodecName != "hevc" || s.Width != 320 || s.Height != 240 || s.NbReadFrames != strconv.Itoa(video) {
		t.Errorf("ffprobe video: %+v, want %d frames", s, video)
	}
	if s := ffprobe(t, adts, "aac").Streams[0]; s.CodecName != "aac" || s.SampleRate != "48000" || s.Channels != 2 || s.NbReadFrames != strconv.Itoa(audio) {
		t.Errorf("ffprobe audio: %+v, want %d frames", s, audio)
	}
}

// adtsHeader makes the 7-byte ADTS header of one AAC-LC frame, so ffprobe can read raw frames.
func adtsHeader(size, rate, channels int) []byte {
	idx := map[int]int{48000: 3, 44100: 4, 32000: 5, 16000: 8, 8000: 11}[rate]
	n := size + 7
	return []byte{0xff, 0xf1, byte(1<<6 | idx<<2 | channels>>2), byte(channels&3<<6 | n>>11), byte(n >> 3), byte(n&7<<5 | 0x1f), 0xfc}
}

func TestDigestAuth(t *testing.T) {
	const user, password, wrong = "admin", "Pa55-w0rd", "Wr0ng-pa55"
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", User: user, Password: password, Digest: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	for name, tc := range map[string]struct {
		url  string
		opts rtsp.Options
	}{
		"password in the URL":  {srv.URLWithAuth(user, password), rtsp.Options{}},
		"password in Options":  {srv.URL, rtsp.Options{Username: user, Password: password}},
		"Options over the URL": {srv.URLWithAuth(user, wrong), rtsp.Options{Username: user, Password: password}},
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, ctx, tc.url, tc.opts)
			if _, err := c.ReadUnit(ctx); err != nil {
				t.Fatal(err)
			}
			if s := c.String(); strings.Contains(s, password) || strings.Contains(s, wrong) {
				t.Errorf("String() = %q shows a password", s)
			}
		})
	}
	for name, tc := range map[string]struct {
		url  string
		opts rtsp.Options
	}{
		"wrong password in the URL": {srv.URLWithAuth(user, wrong), rtsp.Options{}},
		"wrong password in Options": {srv.URL, rtsp.Options{Username: user, Password: wrong}},
		"no credentials":            {srv.URL, rtsp.Options{}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := rtsp.Dial(ctx, tc.url, tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("played without the right password")
			}
			if !errors.Is(err, rtsp.ErrUnauthorized) {
				t.Errorf("error %v, want ErrUnauthorized", err)
			}
			if msg := err.Error(); strings.Contains(msg, wrong) || strings.Contains(msg, password) {
				t.Errorf("error shows a password: %q", msg)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Audio: "pcma", User: "viewer", Password: "b@sic:pw"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, srv.URLWithAuth("viewer", "b@sic:pw"), rtsp.Options{})
	if u, err := c.ReadUnit(ctx); err != nil || len(u.Data) == 0 {
		t.Fatal(err)
	}
	_, err := rtsp.Dial(ctx, srv.URLWithAuth("viewer", "nope:nope"), rtsp.Options{})
	if !errors.Is(err, rtsp.ErrUnauthorized) || strings.Contains(err.Error(), "nope") {
		t.Errorf("wrong password: %v", err)
	}
}

// A camera that stops sending (its process stopped, the connection open): ReadUnit fails
// within ReadTimeout; Close returns promptly and leaves no goroutine.
func TestServerStopsSending(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "pcma"})
	baseline := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const readTimeout = time.Second
	c, err := rtsp.Dial(ctx, srv.URL, rtsp.Options{ReadTimeout: readTimeout, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := c.ReadUnit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv.Pause()
	defer srv.Resume()
	stopped := time.Now()
	var rerr error
	for rerr == nil {
		_, rerr = c.ReadUnit(ctx) // what was buffered, then the timeout
	}
	if took := time.Since(stopped); !errors.Is(rerr, rtsp.ErrTimeout) || took > readTimeout+500*time.Millisecond {
		t.Errorf("ReadUnit: %v after %v, want ErrTimeout within %v", rerr, took, readTimeout)
	}
	closeStart := time.Now()
	c.Close()
	if took := time.Since(closeStart); took > 2500*time.Millisecond {
		t.Errorf("Close took %v", took)
	}
	if _, err := c.ReadUnit(ctx); !errors.Is(err, rtsp.ErrClosed) {
		t.Errorf("ReadUnit after Close: %v", err)
	}
	noLeftGoroutines(t, baseline)
}

// A camera that goes away: ReadUnit fails at once; after Restart the stream plays again.
func TestServerKilledAndRestarted(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264"})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	baseline := runtime.NumGoroutine()
	c, err := rtsp.Dial(ctx, srv.URL, rtsp.Options{ReadTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadUnit(ctx); err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()
	srv.Stop()
	killed := time.Now()
	var rerr error
	for rerr == nil {
		_, rerr = c.ReadUnit(ctx)
	}
	if took := time.Since(killed); !errors.Is(rerr, rtsp.ErrServerClosed) || took > time.Second {
		t.Errorf("ReadUnit: %v after %v, want ErrServerClosed at once", rerr, took)
	}
	c.Close()
	noLeftGoroutines(t, baseline)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("server %d still running after Stop", pid)
	}

	srv.Restart()
	c = dial(t, ctx, srv.URL, rtsp.Options{})
	if u, err := c.ReadUnit(ctx); err != nil || !u.Keyframe {
		t.Fatalf("after restart: %v", err)
	}
}

// Close and a cancelled context both end a ReadUnit blocked on a silent camera.
func TestReadUnitInterrupted(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	baseline := runtime.NumGoroutine()
	opts := rtsp.Options{ReadTimeout: time.Minute, Timeout: time.Second}
	c1, err := rtsp.Dial(ctx, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := rtsp.Dial(ctx, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*rtsp.Conn{c1, c2} {
		if _, err := c.ReadUnit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv.Pause()
	defer srv.Resume()

	rctx, rcancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, rcancel)
	for err == nil {
		_, err = c1.ReadUnit(rctx)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}

	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = c2.ReadUnit(ctx)
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // let ReadUnit block: nothing to await, it is the point
	closeStart := time.Now()
	c2.Close()
	if err := <-done; !errors.Is(err, rtsp.ErrClosed) {
		t.Errorf("ReadUnit during Close: %v", err)
	}
	if took := time.Since(closeStart); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
	c1.Close()
	noLeftGoroutines(t, baseline)
}
