package mp4

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzSeeds are small files from the Writer: video+audio, audio-only, H.265-less AAC, and
// cuts of them.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	var f memFile
	w := newTestWriter(t, &f, Options{FragmentDuration: 100 * time.Millisecond},
		Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}}, Track{Codec: Opus})
	for i := range 12 {
		mustWrite(t, w, 0, Sample{Data: syntheticAU(i%3 == 0, 20), Time: frameTime(i), Keyframe: i%3 == 0})
		mustWrite(t, w, 1, Sample{Data: opusPacket[:8], Time: frameTime(i)})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, bytes.Clone(f.Bytes()))
	seeds = append(seeds, bytes.Clone(f.Bytes()[:f.Len()-10]))

	f.Reset()
	w = newTestWriter(t, &f, Options{FragmentDuration: 40 * time.Millisecond},
		Track{Codec: AAC, AudioSpecificConfig: []byte{0x12, 0x10}}, Track{Codec: PCMA})
	for i := range 8 {
		mustWrite(t, w, 0, Sample{Data: []byte{1, 2, 3}, Time: time.Duration(i) * 20 * time.Millisecond})
		mustWrite(t, w, 1, Sample{Data: []byte{4, 5}, Time: time.Duration(i) * 20 * time.Millisecond})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, bytes.Clone(f.Bytes()))
	return seeds
}

// FuzzReadFragments feeds ReadFragments arbitrary files: it must not panic, and what it
// reports must be consistent with the file's size.
func FuzzReadFragments(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frags, err := ReadFragments(bytes.NewReader(b), int64(len(b)))
		end := int64(0)
		for i, fr := range frags {
			if fr.Offset < end || fr.Size <= 0 || fr.Offset+fr.Size > int64(len(b)) {
				t.Fatalf("fragment %d at %d+%d, previous end %d, file %d", i, fr.Offset, fr.Size, end, len(b))
			}
			end = fr.Offset + fr.Size
			for _, ft := range fr.Tracks {
				if ft.Timescale == 0 || ft.Samples < 0 || ft.Sync > ft.Samples {
					t.Fatalf("fragment %d: track %+v", i, ft)
				}
			}
		}
		var tail *TailError
		if errors.As(err, &tail) {
			if tail.Offset < end && tail.Offset != 0 || tail.Offset > int64(len(b)) {
				t.Fatalf("tail at %d, fragments end at %d, file %d", tail.Offset, end, len(b))
			}
			if !errors.Is(err, ErrTorn) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("tail error %v is neither torn nor malformed", err)
			}
		} else if err != nil && len(frags) > 0 {
			t.Fatalf("fragments with a non-tail error %v", err)
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzReadFragments from fuzzSeeds when
// MP4_WRITE_CORPUS is set (after a change to the file layout).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("MP4_WRITE_CORPUS") == "" {
		t.Skip("set MP4_WRITE_CORPUS=1 to rewrite the fuzz corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReadFragments")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("writer-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
