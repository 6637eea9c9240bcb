package event

import (
	"errors"
	"testing"
	"time"
)

func TestBusFansOutAndKeepsRecent(t *testing.T) {
	b := NewBus(2)
	a, c := b.Subscribe(4), b.Subscribe(1)
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	start := Event{ID: "1", Kind: "motion", Detector: "motion", Start: t0}
	b.Publish(start)
	end := start
	end.End = t0.Add(2 * time.Second)
	b.Publish(end)                                                           // c's buffer is full: it misses this one
	b.Publish(Event{ID: "2", Kind: "motion", Detector: "motion", Start: t0}) // and this one
	b.Publish(Event{ID: "3", Kind: "motion", Detector: "motion", Start: t0})
	if got := len(a.Events()); got != 4 {
		t.Errorf("a holds %d events, want 4", got)
	}
	if got := c.Missed(); got != 3 {
		t.Errorf("c missed %d, want 3", got)
	}
	r := b.Recent()
	if len(r) != 2 || r[0].ID != "2" || r[1].ID != "3" {
		t.Errorf("recent %+v, want events 2 and 3", r)
	}
	c.Close()
	c.Close()
	if _, ok := <-c.Events(); !ok {
		t.Error("c's buffered event was lost at Close")
	}
	if _, ok := <-c.Events(); ok {
		t.Error("c's feed still open after Close")
	}
	b.Publish(start) // no panic on a closed subscriber
}

func TestRecentReplacesAnEventsStartWithItsEnd(t *testing.T) {
	b := NewBus(4)
	t0 := time.Now()
	e := Event{ID: "x", Kind: "motion", Detector: "motion", Start: t0}
	b.Publish(e)
	e.End = t0.Add(time.Second)
	b.Publish(e)
	r := b.Recent()
	if len(r) != 1 || r[0].Open() {
		t.Fatalf("recent %+v, want the one event, ended", r)
	}
}

func TestValidate(t *testing.T) {
	t0 := time.Now()
	ok := Event{ID: "a", Kind: "motion", Detector: "motion", Start: t0, Score: 0.5, Regions: []Region{{0.1, 0.1, 0.5, 0.5}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	bad := []func(*Event){
		func(e *Event) { e.ID = "" },
		func(e *Event) { e.Kind = "" },
		func(e *Event) { e.Start = time.Time{} },
		func(e *Event) { e.End = t0.Add(-time.Second) },
		func(e *Event) { e.Score = 2 },
		func(e *Event) { e.Regions = []Region{{0.9, 0, 0.5, 0.5}} },
		func(e *Event) { e.Regions = make([]Region, MaxRegions+1) },
	}
	for i, f := range bad {
		e := ok
		f(&e)
		if err := e.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %+v accepted (%v)", i, e, err)
		}
	}
}
