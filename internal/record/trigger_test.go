package record

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/stream"
)

var videoOnly = stream.Describe("test", []stream.Track{
	{ID: 1, Kind: codec.Video, Codec: "H264", ClockRate: 90000, Width: 320, Height: 240, FPS: 30},
}, nil)

// triggered runs a recorder of a fresh video-only stream in dir; stop ends it (the last
// segment closed) and returns it.
func triggered(t *testing.T, dir string, opts Options) (*stream.Stream, *Recorder, func() *Recorder) {
	t.Helper()
	st := stream.New(stream.Config{QueueFrames: 100000})
	st.Attach(videoOnly, nil)
	opts.Dir = dir
	r, err := New(st, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := func() *Recorder {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Cleanup(func() { cancel() })
	return st, r, stop
}

// publish publishes video access units from to to (exclusive) at 30 fps from base.
func publish(st *stream.Stream, aus [][]byte, keys []bool, from, to int) {
	for i := from; i < to; i++ {
		f := stream.NewFrame()
		f.Track, f.Keyframe, f.Capture = 1, keys[i], base.Add(time.Duration(i)*time.Second/30).UnixNano()
		f.Data = append(f.Data, aus[i]...)
		st.Publish(f)
	}
}

// An event starts a recording that begins at the keyframe at least PreRoll before it was
// known (the recorder holds that much of the stream while it waits) and ends PostRoll after
// the event; before and after, nothing is written.
func TestEventRecordingHoldsThePreRoll(t *testing.T) {
	aus, keys := videoAUs(t, 150, 30)
	dir := t.TempDir()
	st, r, stop := triggered(t, dir, Options{Mode: ModeEvents, PreRoll: 400 * time.Millisecond, PostRoll: 200 * time.Millisecond})
	waitFor(t, "the recorder reads the stream to hold its pre-roll", func() bool { return st.Stats().Subscribers == 1 })
	publish(st, aus, keys, 0, 45) // 1.5 s, keyframes at 0 and 1 s: nothing written
	waitFor(t, "the recorder takes the frames", func() bool { return r.Status().Frames == 45 })
	if st := r.Status(); st.Recording || st.Current != "" {
		t.Fatalf("before any event: %+v", st)
	}
	if files, _ := listSegments(dir); len(files) != 0 {
		t.Fatalf("before any event: %v written", files)
	}
	ev := event.Event{ID: "e1", Kind: "motion", Detector: "motion", Start: base.Add(1400 * time.Millisecond)}
	r.Event(ev)
	waitFor(t, "the event starts a segment", func() bool { return r.Status().Current != "" })
	publish(st, aus, keys, 45, 90)
	waitFor(t, "the recorder takes the event's frames", func() bool { return r.Status().Frames == 90 })
	if st := r.Status(); !st.Recording || st.OpenEvents != 1 || st.Current == "" {
		t.Fatalf("during the event: %+v", st)
	}
	ev.End = base.Add(3 * time.Second)
	r.Event(ev)
	waitFor(t, "the post-roll ends the recording", func() bool { return r.Status().Current == "" && !r.Status().Recording })
	publish(st, aus, keys, 90, 150) // held, not written
	waitFor(t, "the recorder takes the frames after", func() bool { return r.Status().Frames == 150 })
	stop()

	entries := checkIndex(t, dir, r)
	if len(entries) != 1 {
		t.Fatalf("%d segments, want 1: %+v", len(entries), entries)
	}
	e := entries[0]
	if d := e.Start.Sub(base); d != time.Second {
		t.Errorf("the recording starts %s into the stream, want 1s (the keyframe 400 ms before the event was known: the pre-roll)", d)
	}
	if e.Trigger != "event" || !slices.Equal(e.Events, []string{"e1"}) {
		t.Errorf("index entry: trigger %q events %v, want event [e1]", e.Trigger, e.Events)
	}
	if n := decodedFrames(t, filepath.Join(dir, e.Path)); n != 60 {
		t.Errorf("%d frames decoded, want 60 (from the keyframe at 1 s to the event's last)", n)
	}
	evs, err := ReadEvents(dir)
	if err != nil || len(evs) != 1 || evs[0].Open() || !evs[0].End.Equal(ev.End) {
		t.Fatalf("events file: %+v %v, want e1 ended", evs, err)
	}
	if got := r.Events(); len(got) != 1 || got[0].Open() {
		t.Errorf("Events() = %+v", got)
	}
}

// Frames the recorder takes after an event became known but before it saw the event's
// wake-up go after the held pre-roll, not before it: before, such a frame was written first
// (lost when it was not a keyframe; the recording's start when it was, with the pre-roll
// behind it: the e2e motion test saw that). On one P the recorder runs only once the frame,
// the event and the next frames are all waiting.
func TestEventRecordingKeepsThePreRollFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const rounds, perRound = 8, 60 // 2 s a round, keyframes every 0.5 s
	aus, keys := videoAUs(t, rounds*perRound, 15)
	dir := t.TempDir()
	st, r, stop := triggered(t, dir, Options{Mode: ModeEvents, PreRoll: 400 * time.Millisecond, PostRoll: time.Millisecond})
	waitFor(t, "the recorder reads the stream to hold its pre-roll", func() bool { return st.Stats().Subscribers == 1 })
	for k := range rounds {
		first := k * perRound
		publish(st, aus, keys, first, first+44) // keyframes at 0, 15 and 30 of the round
		waitFor(t, "the recorder takes the frames", func() bool { return r.Status().Frames == uint64(first+44) })
		// The recorder is handed frame 44 and made runnable, then the event and the keyframe
		// after come before it runs.
		publish(st, aus, keys, first+44, first+45)
		ev := event.Event{ID: fmt.Sprintf("e%d", k), Kind: "motion", Detector: "motion", Start: base.Add(time.Duration(first+40) * time.Second / 30)}
		r.Event(ev)
		publish(st, aus, keys, first+45, first+50)
		waitFor(t, "the recorder takes the event's frames", func() bool { return r.Status().Frames == uint64(first+50) })
		ev.End = base.Add(time.Duration(first+49) * time.Second / 30)
		r.Event(ev)
		waitFor(t, "the post-roll ends the recording", func() bool { return !r.Status().Recording && r.Status().Current == "" })
		publish(st, aus, keys, first+50, first+perRound)
		waitFor(t, "the recorder takes the frames after", func() bool { return r.Status().Frames == uint64(first+perRound) })
	}
	stop()
	entries := checkIndex(t, dir, r)
	if len(entries) != rounds {
		t.Fatalf("%d segments, want %d: %+v", len(entries), rounds, entries)
	}
	for k, e := range entries {
		want := base.Add(time.Duration(k*perRound+30) * time.Second / 30) // the keyframe 400 ms before frame 44
		if !e.Start.Equal(want) {
			t.Errorf("round %d: the recording starts %s after the pre-roll's keyframe, want at it", k, e.Start.Sub(want))
		}
		if n := decodedFrames(t, filepath.Join(dir, e.Path)); n != 20 {
			t.Errorf("round %d: %d frames decoded, want 20 (from the pre-roll's keyframe to the event's end)", k, n)
		}
	}
}

// Manual mode records only between Start and Stop; Stop in continuous mode pauses it.
func TestStartStop(t *testing.T) {
	aus, keys := videoAUs(t, 120, 30)
	t.Run("manual", func(t *testing.T) {
		dir := t.TempDir()
		st, r, stop := triggered(t, dir, Options{Mode: ModeManual})
		publish(st, aus, keys, 0, 30)
		if st.Stats().Subscribers != 0 {
			t.Fatal("manual mode reads the stream before Start")
		}
		r.Start()
		waitFor(t, "Start subscribes", func() bool { return st.Stats().Subscribers == 1 })
		publish(st, aus, keys, 30, 90)
		waitFor(t, "the recorder takes the frames", func() bool { return r.Status().Frames == 60+30 })
		r.Stop()
		waitFor(t, "Stop closes the segment", func() bool { return st.Stats().Subscribers == 0 && r.Status().Current == "" })
		stop()
		entries := checkIndex(t, dir, r)
		if len(entries) != 1 || entries[0].Trigger != "manual" {
			t.Fatalf("segments %+v, want one, manual", entries)
		}
		if n := decodedFrames(t, filepath.Join(dir, entries[0].Path)); n != 90 {
			t.Errorf("%d frames, want 90 (the cached second before Start and the 2 s after)", n)
		}
	})
	t.Run("continuous", func(t *testing.T) {
		dir := t.TempDir()
		st, r, stop := triggered(t, dir, Options{})
		waitFor(t, "continuous recording subscribes", func() bool { return st.Stats().Subscribers == 1 })
		publish(st, aus, keys, 0, 60)
		waitFor(t, "the recorder takes the frames", func() bool { return r.Status().Frames == 60 })
		r.Stop()
		waitFor(t, "Stop pauses", func() bool { return st.Stats().Subscribers == 0 && !r.Status().Recording })
		if r.Status().Manual != "off" {
			t.Errorf("status manual %q, want off", r.Status().Manual)
		}
		publish(st, aus, keys, 60, 120)
		stop()
		entries := checkIndex(t, dir, r)
		if len(entries) != 1 || entries[0].Trigger != "continuous" {
			t.Fatalf("segments %+v, want one, continuous", entries)
		}
	})
}

// A crash leaves an event open in the events file: the next run ends it at the end of the
// last segment that lists it, and drops events past the retention age.
func TestEventsFileRecovered(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Millisecond)
	open := event.Event{ID: "open", Kind: "motion", Detector: "motion", Start: now.Add(-time.Minute)}
	old := event.Event{ID: "old", Kind: "motion", Detector: "motion", Start: now.Add(-30 * 24 * time.Hour), End: now.Add(-30*24*time.Hour + time.Second)}
	for _, e := range []event.Event{old, open} {
		if err := appendEvent(dir, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, EventsName), append(mustRead(t, filepath.Join(dir, EventsName)), `{"id":"torn`...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, r, stop := triggered(t, dir, Options{Mode: ModeEvents})
	waitFor(t, "the events file is read", func() bool { return len(r.Events()) == 1 })
	stop()
	evs, err := ReadEvents(dir)
	if err != nil || len(evs) != 1 || evs[0].ID != "open" || evs[0].Open() {
		t.Fatalf("events after recovery: %+v %v, want only 'open', ended", evs, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
