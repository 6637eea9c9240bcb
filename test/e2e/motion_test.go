//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/record"
)

// pageEvent mirrors one entry of window.p2pcast.events() in web/events.js.
type pageEvent struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Score float64   `json:"score"`
}

func pageEvents(t *testing.T, tab *browser.Page) []pageEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := browser.Eval[[]pageEvent](ctx, tab, `window.p2pcast.events ? window.p2pcast.events() : []`)
	if err != nil {
		t.Fatalf("reading events: %v", err)
	}
	return ev
}

// TestMotionEventsReachThePage: the device runs the still test pattern with its object shown for
// 2 s every 5 s and motion detection on; the page receives one event per appearance, each
// lasting about the 2 s the object moved, starting 5 s apart, and nothing else. The device's
// /api/events says the same. The device records on events: each event's recording holds its
// start (the pre-roll) and its end, plays without an error, and nothing between events is kept.
func TestMotionEventsReachThePage(t *testing.T) {
	recDir := t.TempDir()
	dev := startDevice(t, "127.0.0.1:0", "--size", "640x360", "--fps", "30", "--pattern", "still",
		"--pattern-object", "on=2s,off=3s", "--motion", "--motion-hold", "1s", "--gop", "1s",
		"--record-dir", recDir, "--record", "events", "--record-pre-roll", "1s", "--record-post-roll", "500ms", "--record-min-free", "1MB")
	b := newBrowser(t)
	tab := openTab(t, b, dev.url)
	waitFor(t, tab, "the page plays", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 0 })

	// Three appearances ended: at about 5, 10 and 15 s of the producer's run, each reported one
	// hold (1 s) later.
	deadline := time.Now().Add(40 * time.Second)
	var evs []pageEvent
	for {
		evs = pageEvents(t, tab)
		ended := 0
		for _, e := range evs {
			if !e.End.IsZero() {
				ended++
			}
		}
		if ended >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page has %d ended events, want 3: %+v", ended, evs)
		}
		time.Sleep(200 * time.Millisecond) // polling the page's state, not synchronisation
	}
	for i, e := range evs {
		t.Logf("event %d: %s %s, %s, score %.2f", i+1, e.ID, e.Kind, e.End.Sub(e.Start).Round(time.Millisecond), e.Score)
	}
	// Exactly one event per appearance: three ended ones, and at most a fourth that started
	// with the next appearance.
	if len(evs) < 3 || len(evs) > 4 {
		t.Fatalf("%d events, want 3 (or 4 with the next appearance begun)", len(evs))
	}
	for i, e := range evs[:3] {
		d := e.End.Sub(e.Start)
		if e.Kind != "motion" || d < 1600*time.Millisecond || d > 2600*time.Millisecond {
			t.Errorf("event %d: %s lasting %s, want motion of about 2 s", i+1, e.Kind, d)
		}
		if i > 0 {
			if gap := e.Start.Sub(evs[i-1].Start); gap < 4600*time.Millisecond || gap > 5400*time.Millisecond {
				t.Errorf("event %d starts %s after the one before, want about 5 s", i+1, gap)
			}
		}
	}
	if len(evs) == 4 {
		if gap := evs[3].Start.Sub(evs[2].Start); gap < 4600*time.Millisecond {
			t.Errorf("a fourth event %s after the third: not a new appearance", gap)
		}
	}

	resp, err := http.Get(dev.url + "api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api struct{ Events []pageEvent }
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil {
		t.Fatal(err)
	}
	if len(api.Events) < 3 {
		t.Fatalf("/api/events lists %d events, want at least 3", len(api.Events))
	}
	for i := range 3 {
		if api.Events[i].ID != evs[i].ID {
			t.Errorf("/api/events[%d] is %s, the page's %s", i, api.Events[i].ID, evs[i].ID)
		}
	}

	// The event recordings: the index lists each ended event's segments once they closed
	// (the post-roll after the event's end).
	deadline = time.Now().Add(15 * time.Second)
	var segs []record.Entry
	for {
		segs = readIndex(t, recDir)
		covered := 0
		for _, e := range evs[:3] {
			if len(segmentsOf(segs, e.ID)) > 0 {
				covered++
			}
		}
		if covered == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index lists segments for %d of the 3 events: %+v", covered, segs)
		}
		time.Sleep(200 * time.Millisecond) // polling the device's index file
	}
	for i, e := range evs[:3] {
		mine := segmentsOf(segs, e.ID)
		first, last := mine[0], mine[len(mine)-1]
		t.Logf("event %d: recorded from %s before its start to %s after its end in %d segment(s)", i+1,
			e.Start.Sub(first.Start).Round(time.Millisecond), last.End.Sub(e.End).Round(time.Millisecond), len(mine))
		if first.Start.After(e.Start) {
			t.Errorf("event %d starts at %s, its recording only at %s: no pre-roll", i+1, e.Start.Format(time.RFC3339Nano), first.Start.Format(time.RFC3339Nano))
		}
		if last.End.Before(e.End.Add(-100 * time.Millisecond)) {
			t.Errorf("event %d ends at %s, its recording at %s", i+1, e.End.Format(time.RFC3339Nano), last.End.Format(time.RFC3339Nano))
		}
		for _, sg := range mine {
			if sg.Trigger != "event" {
				t.Errorf("%s: trigger %q, want event", sg.Path, sg.Trigger)
			}
			ffprobeClean(t, filepath.Join(recDir, filepath.FromSlash(sg.Path)))
		}
	}
	// Between events nothing is kept: every segment belongs to an event.
	for _, sg := range segs {
		if len(sg.Events) == 0 {
			t.Errorf("%s holds no event: recorded between events", sg.Path)
		}
	}
}

// readIndex reads a recording directory's index (docs/recording.md).
func readIndex(t *testing.T, dir string) []record.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, record.IndexName))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []record.Entry
	for _, line := range strings.Split(string(b), "\n") {
		var e record.Entry
		if json.Unmarshal([]byte(line), &e) == nil && e.Path != "" {
			out = append(out, e)
		}
	}
	return out
}

// segmentsOf are the segments that list event id, in order.
func segmentsOf(segs []record.Entry, id string) []record.Entry {
	var out []record.Entry
	for _, s := range segs {
		if slices.Contains(s.Events, id) {
			out = append(out, s)
		}
	}
	return out
}

// ffprobeClean fails unless ffprobe reads path without a word on stderr.
func ffprobeClean(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-i", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("ffprobe %s: %v %s", path, err, out)
	}
}
