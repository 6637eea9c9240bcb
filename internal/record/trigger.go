package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
)

// Mode is when a Recorder records.
type Mode string

// The modes. Start and Stop work in each: Start records until Stop; Stop pauses until
// Start (or, in ModeEvents, until the next event starts).
const (
	// ModeContinuous records all the time (the default).
	ModeContinuous Mode = "continuous"
	// ModeEvents records while a detection event is open, from PreRoll before it (the
	// recorder holds that much of the stream while it waits, from a keyframe) to PostRoll
	// after it ends.
	ModeEvents Mode = "events"
	// ModeManual records only between Start and Stop.
	ModeManual Mode = "manual"
)

// String is the flag value.
func (m Mode) String() string { return string(m) }

// Set parses a flag value.
func (m *Mode) Set(v string) error {
	switch Mode(v) {
	case ModeContinuous, ModeEvents, ModeManual:
		*m = Mode(v)
		return nil
	}
	return fmt.Errorf("record mode %q: want continuous, events or manual", v)
}

// DefaultPreRoll and DefaultPostRoll are how much ModeEvents records before an event starts
// (at least: from the keyframe before) and after it ends.
const (
	DefaultPreRoll  = 3 * time.Second
	DefaultPostRoll = 5 * time.Second
)

// EventsName is the file of detection events in the recording directory: one JSON line
// each time an event starts or ends (an event's last line is what it is).
const EventsName = "events.jsonl"

// maxEvents is how many events a Recorder keeps in memory for Events (newest).
const maxEvents = 1000

// Manual start/stop state.
const (
	manualNone = ""
	manualOn   = "on"  // Start: record until Stop
	manualOff  = "off" // Stop: do not record until Start (or, with ModeEvents, an event)
)

// Start records from now until Stop, whatever the mode.
func (r *Recorder) Start() {
	r.setManual(manualOn)
}

// Stop stops recording (the current segment is closed) until Start, or with ModeEvents
// until the next event starts.
func (r *Recorder) Stop() {
	r.setManual(manualOff)
}

func (r *Recorder) setManual(m string) {
	r.mu.Lock()
	changed := r.manual != m
	r.manual = m
	mode := r.opts.Mode
	r.mu.Unlock()
	if changed {
		r.log.Info("record: "+map[string]string{manualOn: "started", manualOff: "stopped"}[m], "mode", mode)
		r.poke()
	}
}

// Event takes a detection event (its start, then its end): it is kept in EventsName, the
// segments it spans list it, and with ModeEvents it starts and ends recording.
func (r *Recorder) Event(e event.Event) {
	r.mu.Lock()
	if e.Open() {
		r.open[e.ID] = e
		if r.manual == manualOff {
			r.manual = manualNone // a new event ends a Stop
		}
	} else {
		delete(r.open, e.ID)
		r.postUntil = later(r.postUntil, r.Now().Add(r.opts.PostRoll))
	}
	if r.seg != nil && !slices.Contains(r.seg.events, e.ID) {
		r.seg.events = append(r.seg.events, e.ID)
	}
	if i := slices.IndexFunc(r.events, func(x event.Event) bool { return x.ID == e.ID }); i >= 0 {
		r.events[i] = e
	} else {
		if len(r.events) == maxEvents {
			r.events = slices.Delete(r.events, 0, 1)
		}
		r.events = append(r.events, e)
	}
	r.mu.Unlock()
	if err := appendEvent(r.opts.Dir, e); err != nil {
		r.log.Warn("record: events file", "err", err)
	}
	r.poke()
}

// Events returns the events kept (this run's and those EventsName held), oldest first.
func (r *Recorder) Events() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// poke tells Run that what it should do may have changed.
func (r *Recorder) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// wantLocked says whether to record at now, and when that may change by itself (zero:
// only by a Start, Stop or event).
func (r *Recorder) wantLocked(now time.Time) (bool, time.Time) {
	switch r.manual {
	case manualOn:
		return true, time.Time{}
	case manualOff:
		return false, time.Time{}
	}
	switch r.opts.Mode {
	case ModeEvents:
		if len(r.open) > 0 {
			return true, time.Time{}
		}
		if now.Before(r.postUntil) {
			return true, r.postUntil
		}
		return false, time.Time{}
	case ModeManual:
		return false, time.Time{}
	}
	return true, time.Time{}
}

// trigger is why the current segment is being recorded, for its index entry.
func (r *Recorder) triggerLocked() string {
	if r.manual == manualOn {
		return "manual"
	}
	if r.opts.Mode == ModeEvents {
		return "event"
	}
	return string(ModeContinuous)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ReadEvents reads dir's events file: each event as its last line says, oldest start first.
// A torn last line (a crash mid-append) is skipped.
func ReadEvents(dir string) ([]event.Event, error) {
	b, err := os.ReadFile(filepath.Join(dir, EventsName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("record: events: %w", err)
	}
	var out []event.Event
	at := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Validate() != nil {
			continue
		}
		if i, ok := at[e.ID]; ok {
			out[i] = e
			continue
		}
		at[e.ID] = len(out)
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b event.Event) int { return a.Start.Compare(b.Start) })
	return out, nil
}

// appendEvent appends one line with one write.
func appendEvent(dir string, e event.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, EventsName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadEvents reads the events file at Run's start, drops events older than MaxAge (and
// ends those a crash left open: they ended when the device stopped, as far as anyone can
// tell, so at their last segment's end or their start), and rewrites it when it changed.
func (r *Recorder) loadEvents(entries []Entry) {
	evs, err := ReadEvents(r.opts.Dir)
	if err != nil {
		r.log.Warn("record: events file", "err", err)
		return
	}
	now := r.Now()
	kept := evs[:0]
	dirty := false
	for _, e := range evs {
		if e.Open() {
			e.End = e.Start
			for _, s := range entries {
				if slices.Contains(s.Events, e.ID) && s.End.After(e.End) {
					e.End = s.End
				}
			}
			dirty = true
		}
		if now.Sub(e.End) > r.options().MaxAge {
			dirty = true
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) > maxEvents {
		kept = kept[len(kept)-maxEvents:]
	}
	r.mu.Lock()
	r.events = slices.Clone(kept)
	r.mu.Unlock()
	if !dirty {
		return
	}
	var buf bytes.Buffer
	for _, e := range kept {
		b, _ := json.Marshal(e)
		buf.Write(append(b, '\n'))
	}
	if err := writeFileAtomic(filepath.Join(r.opts.Dir, EventsName), buf.Bytes()); err != nil {
		r.log.Warn("record: events file", "err", err)
	}
}
