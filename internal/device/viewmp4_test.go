package device

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/viewer"
)

// TestViewerWritesMP4: a viewer's MP4 output (p2pcast view --out x.mp4) holds the device's
// H.264 and Opus, in sync, and ffprobe reads it.
func TestViewerWritesMP4(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe is not installed (scripts/install-deps.sh installs ffmpeg)")
	}
	r, d := startDevice(t)
	v2Producer(t, r.SocketPath, helloVideo, helloAudio)
	waitTracks(t, d, 2)
	path := filepath.Join(t.TempDir(), "out.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep", Duration: 3 * time.Second,
		Out: f, Format: viewer.FormatMP4})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Packets: what the file holds (decoded-frame counts round this feed's 30.3 fps capture
	// times onto a 30 fps grid and merge a frame now and then). The feed is a short clip
	// played in a loop, which no decoder takes cleanly; internal/mp4's tests decode real
	// encoder output.
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_entries",
		"stream=codec_name,nb_read_packets,width,height:format=duration", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var p struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_packets"`
			Width  int    `json:"width"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	t.Logf("viewer: %d frames, %d audio packets; ffprobe: %s", res.Frames, res.Audio.Packets, out)
	frames := map[string]int{}
	for _, s := range p.Streams {
		frames[s.Codec], _ = strconv.Atoi(s.Frames)
		if s.Codec == "h264" && s.Width != 1280 {
			t.Errorf("the file's video is %d wide, want 1280", s.Width)
		}
	}
	// Every frame the viewer decoded is in the file; audio from the first keyframe on (the
	// file starts there), so a few packets fewer at most.
	if frames["h264"] != res.Frames {
		t.Errorf("the file has %d H.264 frames, the viewer received %d", frames["h264"], res.Frames)
	}
	if a := frames["opus"]; a == 0 || a < int(res.Audio.Packets)-25 {
		t.Errorf("the file has %d Opus packets, the viewer received %d", a, res.Audio.Packets)
	}
}

// TestViewerProgress: a watch reports its figures about once a second while it runs (p2pcast
// view's live line), frames growing, and never after it returned.
func TestViewerProgress(t *testing.T) {
	r, d := startDevice(t)
	v2Producer(t, r.SocketPath, helloVideo)
	waitTracks(t, d, 1)
	var mu sync.Mutex
	var seen []int
	returned := false
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep", Duration: 2500 * time.Millisecond,
		Progress: func(res viewer.Result) {
			mu.Lock()
			defer mu.Unlock()
			if returned {
				t.Error("Progress called after Watch returned")
			}
			seen = append(seen, res.Frames)
		}})
	mu.Lock()
	returned = true
	got := slices.Clone(seen)
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || !slices.IsSorted(got) || got[len(got)-1] == 0 {
		t.Errorf("progress reports %v: want at least 2, frames growing", got)
	}
}
