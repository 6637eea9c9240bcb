package mp4

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestTornTail cuts a file at every byte of its last fragment (and of its header), as a
// process killed in the middle of a Write would leave it, and checks that ReadFragments
// lists exactly the complete fragments and says where the torn tail begins. ffprobe must
// read the file cut at any page boundary (where a killed write(2) stops) with at least the
// frames of its complete fragments, and the file cut where ReadFragments says with exactly
// those.
func TestTornTail(t *testing.T) {
	const frames, fps = 90, 30
	aus, keys := videoAUs(t, "h264", frames, fps, 15)
	packets, samples, skip := opusPackets(t, 3, 2)
	path, _ := writeFile(t, Options{FragmentDuration: 500e6},
		videoInput(H264, aus, keys, fps),
		audioInput(Track{Codec: Opus, PreSkip: skip}, packets, samples, 48000))
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frags, err := ReadFragments(bytes.NewReader(whole), int64(len(whole)))
	if err != nil || len(frags) != 6 {
		t.Fatalf("%d fragments, %v; want 6, nil", len(frags), err)
	}
	checkFragments(t, whole, frags, 2)
	size := int64(len(whole))
	headerEnd := frags[0].Offset
	// Cut in the last two fragments and what lies between them.
	cutFrom := frags[len(frags)-3].Offset + frags[len(frags)-3].Size

	// completeAt is the number of fragments complete in the first n bytes and where the
	// last complete box ends.
	completeAt := func(n int64) (count int, end int64) {
		end = headerEnd
		for _, f := range frags {
			if f.Offset+f.Size <= n {
				count, end = count+1, f.Offset+f.Size
			} else if f.Offset <= n {
				end = f.Offset // a free box before it is complete
			}
		}
		return count, end
	}
	var cuts []int64
	for n := int64(0); n <= headerEnd; n++ {
		cuts = append(cuts, n)
	}
	for _, f := range frags {
		cuts = append(cuts, f.Offset, f.Offset+f.Size)
	}
	for n := cutFrom; n <= size; n++ {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		got, err := ReadFragments(bytes.NewReader(whole[:n]), n)
		var tail *TailError
		want, end := completeAt(n)
		switch {
		case n < headerEnd:
			if !errors.As(err, &tail) || tail.Offset != 0 || !errors.Is(err, ErrTorn) || len(got) != 0 {
				t.Fatalf("cut at %d in the header: %d fragments, %v", n, len(got), err)
			}
		case n == end:
			if err != nil || len(got) != want {
				t.Fatalf("cut at %d after a complete box: %d fragments, %v; want %d, nil", n, len(got), err, want)
			}
		default:
			if !errors.As(err, &tail) || tail.Offset != end || !errors.Is(err, ErrTorn) || len(got) != want {
				t.Fatalf("cut at %d: %d fragments, %v; want %d and a torn tail at %d", n, len(got), err, want, end)
			}
		}
	}

	dir := t.TempDir()
	cutFile := func(n int64) string {
		p := filepath.Join(dir, "cut"+strconv.FormatInt(n, 10)+".mp4")
		if err := os.WriteFile(p, whole[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	videoFrames := func(count int) int {
		n := 0
		for _, f := range frags[:count] {
			n += f.Tracks[0].Samples
		}
		return n
	}
	// Where a killed write stops: page boundaries, plus a few cuts in mdat payloads.
	page := int64(os.Getpagesize())
	var killed []int64
	for n := (cutFrom/page + 1) * page; n < size; n += page {
		killed = append(killed, n)
	}
	last := frags[len(frags)-1]
	killed = append(killed, last.Offset+last.Size/2, size-1)
	t.Logf("%d fragments, %d bytes; ffprobe on %d cuts at page boundaries and in mdat payloads", len(frags), size, len(killed))
	for _, n := range killed {
		p, stderr, err := ffprobeLenient(t, cutFile(n))
		complete, _ := completeAt(n)
		if err != nil || len(p.Streams) != 2 {
			t.Errorf("cut at %d: ffprobe: %d streams, %v", n, len(p.Streams), err)
			continue
		}
		got, _ := strconv.Atoi(p.Streams[0].NbReadFrames)
		if got < videoFrames(complete) || got > frames {
			t.Errorf("cut at %d: ffprobe counts %d frames, want %d..%d (stderr %q)", n, got, videoFrames(complete), frames, stderr)
		}
	}
	// Any cut, and the file truncated where ReadFragments says the tail begins: exactly
	// the complete fragments, without a complaint.
	moofEnd := last.Offset + int64(len(moofOf(t, whole[last.Offset:])))
	for _, n := range []int64{last.Offset + 1, last.Offset + 100, moofEnd - 1, moofEnd + 9, size - 1} {
		_, err := ReadFragments(bytes.NewReader(whole[:n]), n)
		var tail *TailError
		if !errors.As(err, &tail) {
			t.Fatalf("cut at %d: %v", n, err)
		}
		p, err := ffprobe(t, cutFile(tail.Offset))
		if err != nil {
			t.Errorf("recovered %d → %d: %v", n, tail.Offset, err)
			continue
		}
		if want := strconv.Itoa(videoFrames(len(frags) - 1)); p.Streams[0].NbReadFrames != want {
			t.Errorf("recovered %d → %d: %s frames, want %s", n, tail.Offset, p.Streams[0].NbReadFrames, want)
		}
	}
}

// moofOf returns the moof box at the start of b.
func moofOf(t testing.TB, b []byte) []byte {
	t.Helper()
	h, err := readBoxHeader(bytes.NewReader(b), 0, int64(len(b)))
	if err != nil || h.typ != "moof" {
		t.Fatalf("no moof: %v %q", err, h.typ)
	}
	return b[:h.size]
}

// ffprobeLenient runs ffprobe on a damaged file: complaints on stderr are expected, a
// failure to read the file is not.
func ffprobeLenient(t testing.TB, path string) (probe, string, error) {
	t.Helper()
	out, err := run(t, "ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", path)
	stderr := ""
	if err != nil {
		if len(out) == 0 {
			return probe{}, "", err
		}
		stderr = err.Error()
	}
	var p probe
	return p, stderr, jsonUnmarshal(out, &p)
}
