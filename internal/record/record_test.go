package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/mp4"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// toolTimeout bounds every ffmpeg and ffprobe run.
const toolTimeout = 60 * time.Second

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (scripts/install-deps.sh installs ffmpeg): %v", name, err)
	}
}

// videoAUs encodes frames of testsrc2 (320x240, 30 fps, a keyframe every gop frames) with
// x264 and returns the access units and which are keyframes.
func videoAUs(t testing.TB, frames, gop int) (aus [][]byte, keys []bool) {
	t.Helper()
	needTool(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "v.h264")
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-frames:v", strconv.Itoa(frames), "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", strconv.Itoa(gop),
		"-sc_threshold", "0", "-f", "h264", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := media.NewAUReader(bytes.NewReader(b), 0)
	for {
		au, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		aus = append(aus, bytes.Clone(au))
		keys = append(keys, media.IsKeyframe(au))
	}
	if len(aus) != frames {
		t.Fatalf("%d access units, want %d", len(aus), frames)
	}
	return aus, keys
}

// opusPacket is a 20 ms CELT packet (TOC config 31, mono, one frame): what the file needs;
// the tests count packets, they do not decode them.
var opusPacket = []byte{0xf8, 0xff, 0xfe}

var testInfo = stream.Describe("test", []stream.Track{
	{ID: 1, Kind: codec.Video, Codec: "H264", ClockRate: 90000, Width: 320, Height: 240, FPS: 30},
	{ID: 2, Kind: codec.Audio, Codec: "opus", ClockRate: 48000, Channels: 2, FrameMS: 20},
}, nil)

// feed publishes the access units at 30 fps and an Opus packet every 20 ms, in capture
// order, from base; it returns how many frames it published.
func feed(st *stream.Stream, base time.Time, aus [][]byte, keys []bool, audio bool) int {
	n := 0
	videoStep := time.Second / 30
	end := time.Duration(len(aus)) * videoStep
	vi, at := 0, time.Duration(0)
	for vi < len(aus) || (audio && at < end) {
		vt := time.Duration(vi) * videoStep
		f := stream.NewFrame()
		if vi < len(aus) && (!audio || vt <= at) {
			f.Track, f.Keyframe, f.Capture = 1, keys[vi], base.Add(vt).UnixNano()
			f.Data = append(f.Data, aus[vi]...)
			vi++
		} else {
			f.Track, f.Keyframe, f.Capture = 2, true, base.Add(at).UnixNano()
			f.Data = append(f.Data, opusPacket...)
			at += 20 * time.Millisecond
		}
		st.Publish(f)
		n++
	}
	return n
}

// recording runs a recorder of a fresh stream in dir while fn publishes; it returns once the
// recorder took every frame fn published and stopped (the last segment closed).
func recording(t *testing.T, dir string, opts Options, setup func(*Recorder), fn func(*stream.Stream) int) *Recorder {
	t.Helper()
	st := stream.New(stream.Config{QueueFrames: 100000})
	st.Attach(testInfo, nil)
	opts.Dir = dir
	r, err := New(st, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "the recorder subscribes", func() bool { return st.Stats().Subscribers == 1 })
	n := fn(st)
	waitFor(t, "the recorder takes every frame", func() bool { return r.Status().Frames == uint64(n) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type probe struct {
	Video, Audio int // packets
	Duration     float64
}

// ffprobe reads a file: its packets per stream and duration; anything on stderr fails.
func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	needTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-count_packets", "-show_entries",
		"stream=codec_type,nb_read_packets:format=duration", "-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v %s", path, err, stderr.String())
	}
	var p struct {
		Streams []struct {
			Type    string `json:"codec_type"`
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var res probe
	for _, s := range p.Streams {
		n, _ := strconv.Atoi(s.Packets)
		if s.Type == "video" {
			res.Video = n
		} else {
			res.Audio = n
		}
	}
	res.Duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	return res
}

// decodedFrames decodes a file's video and counts the frames.
func decodedFrames(t *testing.T, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v %s", path, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe %s: %q", path, out)
	}
	return n
}

// checkIndex: the index lists exactly the segment files present, and matches the recorder's.
func checkIndex(t *testing.T, dir string, r *Recorder) []Entry {
	t.Helper()
	entries, torn, err := readIndex(dir)
	if err != nil || torn {
		t.Fatalf("index: %v torn %v", err, torn)
	}
	files, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	slices.Sort(paths)
	slices.Sort(files)
	if strings.Join(paths, " ") != strings.Join(files, " ") {
		t.Fatalf("index lists %v, the directory holds %v", paths, files)
	}
	if r != nil && len(r.Segments()) != len(entries) {
		t.Fatalf("the recorder keeps %d segments, the index %d", len(r.Segments()), len(entries))
	}
	return entries
}

var base = time.Date(2026, 12, 5, 10, 53, 0, 123e6, time.UTC)

func TestSegmentsCutAtKeyframes(t *testing.T) {
	aus, keys := videoAUs(t, 300, 30) // 10 s, a keyframe a second
	dir := t.TempDir()
	r := recording(t, dir, Options{Segment: 2 * time.Second}, nil, func(st *stream.Stream) int { return feed(st, base, aus, keys, true) })
	entries := checkIndex(t, dir, r)
	if len(entries) != 5 {
		t.Fatalf("%d segments, want 5: %+v", len(entries), entries)
	}
	if want := "2026/12/05/20261205T105300.123Z_0001.mp4"; entries[0].Path != want {
		t.Errorf("first segment %s, want %s", entries[0].Path, want)
	}
	for i, e := range entries {
		p := ffprobe(t, filepath.Join(dir, e.Path))
		if p.Video != 60 || decodedFrames(t, filepath.Join(dir, e.Path)) != 60 {
			t.Errorf("%s: %d video packets, want 60", e.Path, p.Video)
		}
		if p.Audio < 99 || p.Audio > 101 {
			t.Errorf("%s: %d audio packets, want 100", e.Path, p.Audio)
		}
		if p.Duration < 1.95 || p.Duration > 2.05 {
			t.Errorf("%s: %.3f s, want 2", e.Path, p.Duration)
		}
		if d := e.Start.Sub(base) - time.Duration(i)*2*time.Second; d.Abs() > time.Millisecond {
			t.Errorf("%s starts %s after the stream, want %ds", e.Path, d, 2*i)
		}
		if e.DurationMS < 1950 || e.DurationMS > 2050 || strings.Join(e.Tracks, ",") != "H264,opus" {
			t.Errorf("index entry %+v", e)
		}
	}
}

// TestNamesNeverCollide: two runs whose segments start in the same millisecond keep both.
func TestNamesNeverCollide(t *testing.T) {
	aus, keys := videoAUs(t, 60, 30)
	dir := t.TempDir()
	for range 2 {
		recording(t, dir, Options{Segment: time.Second}, nil, func(st *stream.Stream) int { return feed(st, base, aus, keys, false) })
	}
	entries := checkIndex(t, dir, nil)
	if len(entries) != 4 {
		t.Fatalf("%d segments, want 4 (2 a run): %+v", len(entries), entries)
	}
	for _, e := range entries {
		if p := ffprobe(t, filepath.Join(dir, e.Path)); p.Video != 30 {
			t.Errorf("%s: %d frames, want 30", e.Path, p.Video)
		}
	}
}

// TestRetention: age, total size and the free-space floor delete the oldest segments; with
// nothing left to delete, recording pauses.
func TestRetention(t *testing.T) {
	aus, keys := videoAUs(t, 300, 30)
	t.Run("age", func(t *testing.T) {
		dir := t.TempDir()
		r := recording(t, dir, Options{Segment: 2 * time.Second, MaxAge: time.Hour}, func(r *Recorder) {
			r.Now = func() time.Time { return base.Add(time.Hour + 5*time.Second) } // the first two ended over an hour ago
		}, func(st *stream.Stream) int { return feed(st, base, aus, keys, false) })
		entries := checkIndex(t, dir, r)
		if len(entries) != 3 || entries[0].Start.Sub(base.Add(4*time.Second)).Abs() > time.Millisecond {
			t.Fatalf("kept %+v, want the last 3", entries)
		}
	})
	t.Run("size", func(t *testing.T) {
		dir := t.TempDir()
		var one int64
		r := recording(t, dir, Options{Segment: 2 * time.Second}, func(r *Recorder) { r.opts.MaxSize = 1 << 40 },
			func(st *stream.Stream) int { return feed(st, base, aus, keys, false) })
		for _, e := range r.Segments() {
			one = max(one, e.Bytes)
		}
		// A limit of 2.5 of the largest keeps the newest two.
		r.opts.MaxSize = Bytes(one * 5 / 2)
		r.retain()
		entries := checkIndex(t, dir, r)
		if len(entries) != 2 || entries[1].Start.Sub(base.Add(8*time.Second)).Abs() > time.Millisecond {
			t.Fatalf("kept %+v, want the newest 2", entries)
		}
	})
	t.Run("free space", func(t *testing.T) {
		dir := t.TempDir()
		// A disk of 5 MB minus what the segments take; the floor 1 MB above what is left
		// after two segments.
		var capacity int64
		used := func() int64 {
			var n int64
			files, _ := listSegments(dir)
			for _, f := range files {
				fi, _ := os.Stat(filepath.Join(dir, f))
				n += fi.Size()
			}
			return n
		}
		r := recording(t, dir, Options{Segment: 2 * time.Second}, func(r *Recorder) {
			r.Free = func(string) (int64, error) { return capacity - used(), nil }
			capacity = 1 << 40
		}, func(st *stream.Stream) int { return feed(st, base, aus, keys, false) })
		total := used()
		r.opts.MinFree = 1 << 30
		capacity = 1<<30 + total*2/5 + 1 // room for about 2 of the 5 segments
		r.retain()
		entries := checkIndex(t, dir, r)
		if len(entries) == 0 || len(entries) > 2 || capacity-used() < 1<<30 {
			t.Fatalf("kept %d segments, free %d", len(entries), capacity-used())
		}
		// Nothing left to free: the recorder pauses.
		capacity = 1 << 20
		r.lastFree = time.Time{}
		if r.roomToRecord() {
			t.Fatal("recording goes on below the floor")
		}
		if st := r.Status(); st.Paused == "" || st.Segments != 0 {
			t.Fatalf("status %+v: want paused, no segments", st)
		}
		checkIndex(t, dir, r)
	})
}

// TestTornSegmentRecovered: a segment cut short mid-fragment and missing from the index (a
// crash) is truncated in place at the next start, indexed, and plays.
func TestTornSegmentRecovered(t *testing.T) {
	aus, keys := videoAUs(t, 120, 30)
	dir := t.TempDir()
	recording(t, dir, Options{Segment: 10 * time.Second}, nil, func(st *stream.Stream) int { return feed(st, base, aus, keys, true) })
	entries := checkIndex(t, dir, nil)
	if len(entries) != 1 {
		t.Fatalf("%d segments, want 1", len(entries))
	}
	path := filepath.Join(dir, entries[0].Path)
	// Tear it 100 bytes before the end (inside the last fragment) and forget its index line.
	if err := os.Truncate(path, entries[0].Bytes-100); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexName), []byte(`{"path":"x`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := reconcile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != entries[0].Path || got[0].Bytes >= entries[0].Bytes-100 {
		t.Fatalf("recovered %+v from %+v", got, entries[0])
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != got[0].Bytes {
		t.Fatalf("file %v %v, index says %d bytes", fi.Size(), err, got[0].Bytes)
	}
	p := ffprobe(t, path)
	if p.Video < 60 || p.Video >= 120 {
		t.Errorf("%d frames after recovery, want the complete fragments' (60 to 119)", p.Video)
	}
	checkIndex(t, dir, nil)
	// A lost index is rebuilt from the files.
	os.Remove(filepath.Join(dir, IndexName))
	again, err := reconcile(dir)
	if err != nil || len(again) != 1 || again[0].Bytes != got[0].Bytes {
		t.Fatalf("rebuilt %+v, %v", again, err)
	}
}

// TestKilledRecorderLeavesAPlayableSegment: a child process recording in real time is killed
// with SIGKILL; its segment plays up to its last complete fragment after recovery.
func TestKilledRecorderLeavesAPlayableSegment(t *testing.T) {
	if dir := os.Getenv("RECORD_CRASH_DIR"); dir != "" {
		crashChild(t, dir)
		return
	}
	needTool(t, "ffprobe")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledRecorderLeavesAPlayableSegment$")
	// The child's own temporary files go under ours: it is killed before its cleanup runs.
	cmd.Env = append(os.Environ(), "RECORD_CRASH_DIR="+dir, "TMPDIR="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	complete := 0
	// Wait until two fragments are complete on disk, then kill mid-stream. A size alone is
	// no sign: the file grows page by page while one fragment's write is under way, and a
	// SIGKILL cuts that write short (the first fragment is ~250 kB).
	waitFor(t, "the child records two fragments", func() bool {
		files, _ := listSegments(dir)
		if len(files) == 0 {
			return false
		}
		f, err := os.Open(filepath.Join(dir, files[0]))
		if err != nil {
			return false
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return false
		}
		frags, _ := mp4.ReadFragments(f, fi.Size())
		complete = len(frags)
		return complete >= 2
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	got, err := reconcile(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("recovered %+v, %v", got, err)
	}
	p := ffprobe(t, filepath.Join(dir, got[0].Path))
	if p.Video < 30 {
		t.Errorf("%d frames survive, want at least a fragment's", p.Video)
	}
	t.Logf("killed with %d fragments complete; recovered %d bytes, %d frames, %d audio packets, %.2f s", complete, got[0].Bytes, p.Video, p.Audio, p.Duration)
}

// crashChild records a large-frame stream in real time until it is killed.
func crashChild(t *testing.T, dir string) {
	aus, keys := videoAUs(t, 300, 30)
	st := stream.New(stream.Config{QueueFrames: 100000})
	st.Attach(testInfo, nil)
	r, err := New(st, Options{Dir: dir, Segment: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		start := time.Now()
		for i := 0; ; i++ {
			f := stream.NewFrame()
			f.Track, f.Keyframe, f.Capture = 1, keys[i%len(aus)], time.Now().UnixNano()
			f.Data = append(f.Data, aus[i%len(aus)]...)
			// Padding (filler NAL units are dropped, SEI kept) makes the frames a realistic size.
			// An SEI user_data_unregistered of 8000 bytes: size 31×255 + 95.
			f.Data = append(f.Data, 0, 0, 0, 1, 6, 5)
			f.Data = append(f.Data, bytes.Repeat([]byte{0xff}, 31)...)
			f.Data = append(f.Data, 95)
			f.Data = append(f.Data, bytes.Repeat([]byte{0x55}, 8000)...)
			f.Data = append(f.Data, 0x80)
			st.Publish(f)
			a := stream.NewFrame()
			a.Track, a.Keyframe, a.Capture = 2, true, time.Now().UnixNano()
			a.Data = append(a.Data, opusPacket...)
			st.Publish(a)
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / 30)))
		}
	}()
	err = r.Run(context.Background())
	t.Fatal(errors.Join(errors.New("the recorder returned"), err))
}
