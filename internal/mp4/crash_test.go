package mp4

import (
	"bytes"
	"encoding/gob"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// crashInput is what the parent hands the child that gets killed: real access units, so
// that ffprobe can read what is left.
type crashInput struct {
	AUs  [][]byte
	Keys []bool
}

// TestKilledWriter runs a Writer in a child process, kills it with SIGKILL at a random
// moment while it writes large fragments, and checks what is left on disk: ReadFragments
// finds the complete fragments and a torn tail only outside any moof (the page-aligned moofs
// at work), and ffprobe opens the file with at least the complete fragments' frames.
func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	// Large intra frames make each fragment a write of a few hundred kB, so that kills
	// often land inside one.
	aus, keys := videoAUs(t, "h264-intra", 30, 30, 1)
	dir := t.TempDir()
	in := filepath.Join(dir, "input.gob")
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(crashInput{AUs: aus, Keys: keys}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	torn := 0
	const runs = 12
	for r := range runs {
		out := filepath.Join(dir, "run"+strconv.Itoa(r)+".mp4")
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MP4_CRASH_IN="+in, "MP4_CRASH_OUT="+out)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// No event tells the parent the child is writing: poll for the file to grow, then
		// let it run a random while.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if st, err := os.Stat(out); err == nil && st.Size() > 0 {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatal("child wrote nothing in 30 s")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(40_000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		file, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		frags, err := ReadFragments(bytes.NewReader(file), int64(len(file)))
		var tail *TailError
		if err != nil && !errors.As(err, &tail) {
			t.Fatalf("run %d: %v", r, err)
		}
		if tail != nil {
			torn++
			if len(file)%os.Getpagesize() != 0 {
				t.Logf("run %d: torn at %d, not at a page boundary", r, len(file))
			}
			if tail.Offset+8 <= int64(len(file)) && string(file[tail.Offset+4:tail.Offset+8]) == "moof" {
				moofSize := int64(file[tail.Offset])<<24 | int64(file[tail.Offset+1])<<16 | int64(file[tail.Offset+2])<<8 | int64(file[tail.Offset+3])
				if tail.Offset+moofSize > int64(len(file)) {
					t.Errorf("run %d: the file (%d bytes) ends inside a moof at %d+%d", r, len(file), tail.Offset, moofSize)
				}
			}
		}
		complete := 0
		for _, f := range frags {
			complete += f.Tracks[0].Samples
		}
		out2, perr := run(t, "ffprobe", "-v", "error", "-count_packets", "-show_streams", "-of", "json", out)
		var p probe
		if jerr := jsonUnmarshal(out2, &p); len(out2) == 0 || jerr != nil || len(p.Streams) != 1 {
			t.Errorf("run %d: ffprobe cannot read the file (%d bytes, %d fragments, tail %v): %v", r, len(file), len(frags), tail, perr)
			continue
		}
		t.Logf("run %d: %d bytes, %d complete fragments, tail %v, ffprobe: %s packets", r, len(file), len(frags), tail, p.Streams[0].NbReadPackets)
		if got, _ := strconv.Atoi(p.Streams[0].NbReadPackets); got < complete {
			t.Errorf("run %d: ffprobe reads %d packets, the complete fragments hold %d", r, got, complete)
		}
	}
	t.Logf("%d of %d kills left a torn fragment", torn, runs)
}

// TestCrashChild is the child of TestKilledWriter: it writes fragments of one intra frame
// each as fast as it can, up to 256 MiB, then waits to be killed.
func TestCrashChild(t *testing.T) {
	in, out := os.Getenv("MP4_CRASH_IN"), os.Getenv("MP4_CRASH_OUT")
	if in == "" || out == "" {
		t.Skip("the child of TestKilledWriter")
	}
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var input crashInput
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&input); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w := newTestWriter(t, f, Options{FragmentDuration: time.Millisecond}, Track{Codec: H264})
	for i := 0; w.Stats().Bytes < 256<<20; i++ {
		k := i % len(input.AUs)
		mustWrite(t, w, 0, Sample{Data: input.AUs[k], Keyframe: input.Keys[k], Time: frameTime(i)})
	}
	select {} // until killed
}
