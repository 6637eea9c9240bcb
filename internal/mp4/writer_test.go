package mp4

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// input is one track's samples for a test file.
type input struct {
	track   Track
	samples []Sample
}

// videoInput times access units at fps.
func videoInput(codec Codec, aus [][]byte, keys []bool, fps int) input {
	in := input{track: Track{Codec: codec}}
	for i, au := range aus {
		in.samples = append(in.samples, Sample{Data: au, Keyframe: keys[i], Time: time.Duration(i) * time.Second / time.Duration(fps)})
	}
	return in
}

// audioInput times packets by their sample counts at rate.
func audioInput(tr Track, packets [][]byte, samples []int, rate int) input {
	in := input{track: tr}
	n := 0
	for i, p := range packets {
		in.samples = append(in.samples, Sample{Data: p, Time: time.Duration(n) * time.Second / time.Duration(rate)})
		n += samples[i]
	}
	return in
}

// writeFile interleaves the inputs' samples by time, as a live source delivers them, into a
// file in a temp dir, and returns its path and the Writer's stats.
func writeFile(t testing.TB, opts Options, inputs ...input) (string, Stats) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tracks := make([]Track, len(inputs))
	for i, in := range inputs {
		tracks[i] = in.track
	}
	w, err := NewWriter(f, tracks, opts)
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, len(inputs))
	for {
		best := -1
		for i, in := range inputs {
			if next[i] < len(in.samples) && (best < 0 || in.samples[next[i]].Time < inputs[best].samples[next[best]].Time) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		if err := w.WriteSample(best, inputs[best].samples[next[best]]); err != nil {
			t.Fatal(err)
		}
		next[best]++
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("MP4_KEEP"); dir != "" { // keep the file for a look with other tools
		b, _ := os.ReadFile(path)
		_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".mp4"), b, 0o644)
	}
	return path, w.Stats()
}

// decodes checks that ffmpeg decodes the whole file without a word on stderr.
func decodes(t testing.TB, path string) {
	t.Helper()
	if _, err := run(t, "ffmpeg", "-v", "error", "-nostdin", "-i", path, "-f", "null", "-"); err != nil {
		t.Errorf("ffmpeg decode: %v", err)
	}
}

func TestH264OpusPlays(t *testing.T) {
	const frames, fps = 300, 30
	aus, keys := videoAUs(t, "h264", frames, fps, 30)
	packets, samples, preSkip := opusPackets(t, 10, 2)
	path, stats := writeFile(t, Options{},
		videoInput(H264, aus, keys, fps),
		audioInput(Track{Codec: Opus, Channels: 2, PreSkip: preSkip}, packets, samples, 48000))

	p, err := ffprobe(t, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v, probe %+v", stats, p)
	if len(p.Streams) != 2 {
		t.Fatalf("%d streams, want 2", len(p.Streams))
	}
	v, a := p.Streams[0], p.Streams[1]
	if v.CodecName != "h264" || v.Width != 640 || v.Height != 360 {
		t.Errorf("video stream %s %dx%d, want h264 640x360", v.CodecName, v.Width, v.Height)
	}
	if v.NbReadFrames != strconv.Itoa(frames) {
		t.Errorf("video frames %s, want %d", v.NbReadFrames, frames)
	}
	if d := atof(t, v.Duration); math.Abs(d-float64(frames)/fps) > 1.0/fps {
		t.Errorf("video duration %v s, want %v within a frame", d, float64(frames)/fps)
	}
	if a.CodecName != "opus" || a.Channels != 2 || a.SampleRate != "48000" {
		t.Errorf("audio stream %s %d ch %s Hz, want opus, 2, 48000", a.CodecName, a.Channels, a.SampleRate)
	}
	if a.NbReadFrames != strconv.Itoa(len(packets)) {
		t.Errorf("audio frames %s, want %d", a.NbReadFrames, len(packets))
	}
	total := 0
	for _, n := range samples {
		total += n
	}
	if d := atof(t, a.Duration); math.Abs(d-float64(total)/48000) > 0.02 {
		t.Errorf("audio duration %v s, want %v", d, float64(total)/48000)
	}
	decodes(t, path)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Format.Size != strconv.Itoa(len(b)) {
		t.Errorf("ffprobe size %s, file %d bytes", p.Format.Size, len(b))
	}
	frags, err := ReadFragments(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != frames/30 {
		t.Errorf("%d fragments, want one per GOP: %d", len(frags), frames/30)
	}
	checkFragments(t, b, frags, 2)
}

// checkFragments checks sequence numbers and byte ranges (only free boxes between
// fragments, no moof across a page boundary), and per track that each traf's tfdt continues
// where the track's previous one ended; track 1 (video) must start every fragment with a
// keyframe.
func checkFragments(t testing.TB, file []byte, frags []FragmentInfo, tracks int, gappy ...uint32) {
	t.Helper()
	end := map[uint32]uint64{}
	seen := map[uint32]int{}
	page := int64(os.Getpagesize())
	for i, f := range frags {
		if f.Sequence != uint32(i+1) {
			t.Errorf("fragment %d: sequence %d", i, f.Sequence)
		}
		if i > 0 {
			prevEnd := frags[i-1].Offset + frags[i-1].Size
			if gap := f.Offset - prevEnd; gap != 0 && (gap < 8 || string(file[prevEnd+4:prevEnd+8]) != "free" ||
				int64(binary.BigEndian.Uint32(file[prevEnd:])) != gap) {
				t.Errorf("fragment %d at %d, previous ends at %d, no free box between", i, f.Offset, prevEnd)
			}
		}
		moof := int64(len(moofOf(t, file[f.Offset:])))
		if moof <= page && f.Offset/page != (f.Offset+moof-1)/page {
			t.Errorf("fragment %d: moof %d..%d across a page boundary", i, f.Offset, f.Offset+moof)
		}
		for _, ft := range f.Tracks {
			if e, ok := end[ft.ID]; ok && ft.BaseTime != e && !slices.Contains(gappy, ft.ID) {
				t.Errorf("fragment %d track %d: tfdt %d, previous fragment ended at %d", i, ft.ID, ft.BaseTime, e)
			}
			end[ft.ID] = ft.BaseTime + ft.Duration
			seen[ft.ID] += ft.Samples
			if ft.ID == 1 && !ft.FirstSync {
				t.Errorf("fragment %d does not start at a keyframe", i)
			}
		}
	}
	if len(seen) != tracks {
		t.Errorf("samples on %d tracks, want %d", len(seen), tracks)
	}
}
