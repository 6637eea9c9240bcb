package viewer

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/device"
)

// onAddr runs the device on addr.
func onAddr(addr string) func(*device.Config) { return func(c *device.Config) { c.HTTPAddr = addr } }

// TestReconnectAcrossADeviceRestart: with Reconnect, a watch whose device restarts starts a
// new session when the device is back and keeps writing the same MP4 file, which ffprobe
// reads whole; without it, the watch ends with its session.
func TestReconnectAcrossADeviceRestart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dev, stop := runDevice(t, onAddr(addr))

	file := filepath.Join(t.TempDir(), "watch.mp4")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var frames atomic.Int64
	restarted := make(chan struct{})
	const want = 120
	o := Options{WSURL: dev.ws(), Frames: want, Out: f, Format: FormatMP4, Reconnect: true,
		FirstFrameTimeout: 10 * time.Second, OnFrame: func([]byte, bool, uint32) {
			if frames.Add(1) == 30 {
				go func() {
					// The device goes away mid-watch and comes back on the same address.
					stop()
					runDevice(t, onAddr(addr))
					close(restarted)
				}()
			}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Watch(ctx, o)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	<-restarted
	if res.Frames != want || res.Sessions < 2 {
		t.Fatalf("%d frames in %d sessions, want %d in at least 2", res.Frames, res.Sessions, want)
	}
	f.Close()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v %s", err, out)
	}
	parts := strings.Split(strings.TrimSpace(string(out)), ",")
	if len(parts) != 4 || parts[0] != "h264" || parts[1] != "1280" {
		t.Fatalf("ffprobe: %q", out)
	}
	if n, _ := strconv.Atoi(parts[3]); n < want-5 {
		t.Errorf("the file holds %d frames, want about %d (both sessions)", n, want)
	}
	t.Logf("%d frames in %d sessions; the file: %s", res.Frames, res.Sessions, strings.TrimSpace(string(out)))

	// Without Reconnect the watch ends with the session.
	dev2, stop2 := runDevice(t, nil)
	var n2 atomic.Int64
	o2 := Options{WSURL: dev2.ws(), FirstFrameTimeout: 10 * time.Second,
		OnFrame: func([]byte, bool, uint32) {
			if n2.Add(1) == 10 {
				go stop2()
			}
		}}
	res2, err := Watch(ctx, o2)
	if err != nil || res2.Frames < 10 || res2.Sessions != 0 {
		t.Fatalf("without Reconnect: %+v %v", res2, err)
	}
}
