package device

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/record"
)

// TestDeviceRecords: with a record directory the device records its producer's H.264 and
// Opus into segments ffprobe reads, and /api/status shows the recorder.
func TestDeviceRecords(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe is not installed (scripts/install-deps.sh installs ffmpeg)")
	}
	dir := t.TempDir()
	r, d := startDevice(t, func(c *Config) { c.Record = record.Options{Dir: dir, Segment: time.Second} })
	v2Producer(t, r.SocketPath, helloVideo, helloAudio)
	waitTracks(t, d, 2)
	deadline := time.Now().Add(20 * time.Second)
	var st record.Status
	for {
		st = *d.recordStatus()
		if st.Segments >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two segments after 20 s: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get(r.URL + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	var status Status
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil || status.Record == nil || status.Record.Dir != dir || status.Record.Segments < 2 {
		t.Fatalf("/api/status record: %+v (%v)", status.Record, err)
	}
	seg := d.activeRecorder().Segments()[0]
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_entries",
		"stream=codec_name,nb_read_packets:format=duration", "-of", "csv=p=0", filepath.Join(dir, seg.Path)).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v %s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "h264,") || !strings.Contains(text, "opus,") || strings.Contains(text, "rror") {
		t.Fatalf("ffprobe of %s:\n%s", seg.Path, text)
	}
	if seg.DurationMS < 900 || seg.DurationMS > 1500 {
		t.Errorf("segment %+v: want about 1 s", seg)
	}
	t.Logf("%s: %s", seg.Path, strings.ReplaceAll(text, "\n", " "))
}
