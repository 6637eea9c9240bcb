//go:build !device

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/mp4"
	"github.com/p2pcast/p2pcast/internal/record"
)

// fetchChildEnv makes the test binary a fetch process (TestFetchChild), for a test to kill.
const fetchChildEnv = "P2PCAST_FETCH_CHILD_ARGS"

// TestFetchChild is the killed fetch of TestFetchResumesAfterAKill; it does nothing otherwise.
func TestFetchChild(t *testing.T) {
	raw := os.Getenv(fetchChildEnv)
	if raw == "" {
		t.Skip("only as TestFetchResumesAfterAKill's child")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(args, io.Discard, os.Stderr))
}

// bigSegment writes a valid segment of about n bytes (the files testdata clip, over and over)
// under dir, named as the recorder names them, and returns its path relative to dir.
func bigSegment(t *testing.T, dir string, n int) string {
	t.Helper()
	b, err := os.ReadFile("../../internal/files/testdata/testsrc_10s.h264")
	if err != nil {
		t.Fatal(err)
	}
	var aus [][]byte
	r := media.NewAUReader(bytes.NewReader(b), 0)
	for {
		au, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		aus = append(aus, append([]byte(nil), au...))
	}
	start := time.Now().Add(-time.Hour).UTC()
	rel := start.Format("2006/01/02") + "/" + start.Format("20060102T150405.000Z") + "_0001.mp4"
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cw := &countWriter{w: f}
	w, err := mp4.NewWriter(cw, []mp4.Track{{Codec: mp4.H264, SampleDuration: time.Second / 15}}, mp4.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; cw.n < int64(n) || i%len(aus) != 0; i++ {
		au := aus[i%len(aus)]
		if err := w.WriteSample(0, mp4.Sample{Data: au, Time: time.Duration(i) * time.Second / 15, Keyframe: media.IsKeyframe(au)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return rel
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// startRecordingDevice runs an in-process device recording into dir (no producer: it serves
// what dir holds) and returns its base URL.
func startRecordingDevice(t *testing.T, dir string) string {
	t.Helper()
	return startDeviceRecording(t, record.Options{Dir: dir, MinFree: 1})
}

// startDeviceRecording runs an in-process device without a producer, with opts (no Dir: no
// recording), and returns its base URL.
func startDeviceRecording(t *testing.T, opts record.Options) string {
	t.Helper()
	cfg := device.Defaults()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Source = "socket"
	cfg.SocketPath = filepath.Join(t.TempDir(), "capture.sock")
	cfg.Record = opts
	// The device's log, shown when the test fails (a session that never said hello, say).
	var logBuf logtest.Buffer
	d, err := device.New(cfg, logBuf.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan device.Ready, 1)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(r device.Ready) { ready <- r }) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("device log:\n%s", logBuf.String())
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("device: %v", err)
		}
	})
	select {
	case r := <-ready:
		return r.URL
	case err := <-done:
		t.Fatalf("device did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("device did not start")
	}
	return ""
}

func runCapture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestFetchResumesAfterAKill: --list shows the segment; a fetch SIGKILL'd midway leaves a
// part that the next fetch completes byte-identical to the device's file, which ffprobe reads
// without complaint; a part that is not the device's is caught by the checksum; a path that is
// not a recording is refused.
func TestFetchResumesAfterAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a device and a child process")
	}
	dir := t.TempDir()
	rel := bigSegment(t, dir, 48<<20)
	want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	base := startRecordingDevice(t, dir)

	code, out, errs := runCapture(t, "fetch", base, "--list", "--json")
	if code != 0 {
		t.Fatalf("--list: exit %d: %s", code, errs)
	}
	var list struct {
		Recordings []struct {
			Path  string `json:"path"`
			Bytes int64  `json:"bytes"`
		} `json:"recordings"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Recordings) != 1 || list.Recordings[0].Path != rel || list.Recordings[0].Bytes != int64(len(want)) {
		t.Fatalf("--list --json: %s (%v)", out, err)
	}

	local := filepath.Join(t.TempDir(), "seg.mp4")
	args, _ := json.Marshal([]string{"fetch", base, rel, "--out", local})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestFetchChild$")
	child.Env = append(os.Environ(), fetchChildEnv+"="+string(args))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killedAt := int64(0)
	for {
		fi, err := os.Stat(local + ".part")
		if err == nil && fi.Size() >= 4<<20 {
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killedAt = fi.Size()
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the child fetched nothing")
		}
		if _, err := os.Stat(local); err == nil {
			t.Fatal("the child finished before it could be killed: make the segment bigger")
		}
		time.Sleep(time.Millisecond) // no event says how far a child process has written
	}
	_ = child.Wait()
	fi, err := os.Stat(local + ".part")
	if err != nil || fi.Size() >= int64(len(want)) {
		t.Fatalf("after the kill (at %d bytes): %v, %v", killedAt, fi, err)
	}
	t.Logf("killed after %d bytes, the part holds %d of %d", killedAt, fi.Size(), len(want))

	code, _, errs = runCapture(t, "fetch", base, rel, "--out", local)
	if code != 0 || !strings.Contains(errs, "resuming") {
		t.Fatalf("resume: exit %d: %s", code, errs)
	}
	t.Log(strings.TrimSpace(errs))
	got, err := os.ReadFile(local)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the fetched file differs from the device's (%d vs %d bytes)", len(got), len(want))
	}
	if _, err := os.Stat(local + ".part"); !os.IsNotExist(err) {
		t.Fatalf("the part is still there: %v", err)
	}
	if ffprobe, err := exec.LookPath("ffprobe"); err == nil {
		if b, err := exec.Command(ffprobe, "-v", "error", "-i", local).CombinedOutput(); err != nil || len(b) != 0 {
			t.Fatalf("ffprobe -v error: %v: %s", err, b)
		}
	} else {
		t.Log("ffprobe not installed: not probing the fetched file")
	}

	// A part whose bytes are not the device's: the checksum catches it, and it is removed.
	other := filepath.Join(t.TempDir(), "other.mp4")
	bad := append([]byte(nil), want[:1<<20]...)
	bad[1000] ^= 0xff
	if err := os.WriteFile(other+".part", bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other+".part.json", []byte(`{"path":"`+rel+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCapture(t, "fetch", base, rel, "--out", other)
	if code != exitChecksum || !strings.Contains(errs, "checksum") {
		t.Fatalf("a corrupt part: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(other + ".part"); !os.IsNotExist(err) {
		t.Fatal("the corrupt part was kept")
	}

	for _, p := range []string{"../../etc/passwd", "2026/01/01/20260101T000000.000Z_0001.mp4"} {
		code, _, errs = runCapture(t, "fetch", base, p, "--out", filepath.Join(t.TempDir(), "x"))
		if code != exitNotFound {
			t.Fatalf("%s: exit %d: %s", p, code, errs)
		}
	}
	if code, _, _ = runCapture(t, "fetch", base, rel); code != exitUsage {
		t.Fatalf("no --out: exit %d", code)
	}
}
