// Package event is what detectors tell the device: something happened in a source's picture
// (motion, a person, ...) from a start to an end. Detectors publish events on a Bus; its
// readers are independent (viewers' events channels, the recorder, a webhook), and a slow
// reader misses events rather than holding up the detector or the others.
package event

import (
	"errors"
	"fmt"
	"time"
)

// Event is one detection. A detector publishes it twice under one ID: when it starts (End
// zero) and when it ends (End set); an event still open when its source stops is ended by
// whoever stops it.
type Event struct {
	// ID is unique on the device across restarts: the start time and a counter.
	ID string `json:"id"`
	// Kind is what was detected: "motion", or a model's class ("person").
	Kind string `json:"kind"`
	// Detector names what detected it: "motion" (the producer's frame differences), "rknn", ...
	Detector string `json:"detector"`
	// Source is the device's source the picture came from ("" for the device's only one).
	Source string    `json:"source,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end,omitzero"`
	// Score is the detector's strength or confidence, 0..1.
	Score float64 `json:"score,omitempty"`
	// Regions are where in the picture, as shares of its width and height.
	Regions []Region `json:"regions,omitempty"`
}

// Region is a box in the picture, each value a share (0..1) of the picture's width or height.
type Region struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Open reports whether the event has not ended yet.
func (e Event) Open() bool { return e.End.IsZero() }

// ErrInvalid is what Validate wraps.
var ErrInvalid = errors.New("invalid event")

// Limits on what an event may carry (it comes from a producer or a detector process).
const (
	MaxIDLen      = 64
	MaxKindLen    = 32
	MaxRegions    = 32
	maxNameLength = 64
)

// Validate checks an event from outside the device (a producer, a detector process).
func (e Event) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > MaxIDLen:
		return fmt.Errorf("%w: id of %d bytes (1..%d)", ErrInvalid, len(e.ID), MaxIDLen)
	case e.Kind == "" || len(e.Kind) > MaxKindLen:
		return fmt.Errorf("%w: kind of %d bytes (1..%d)", ErrInvalid, len(e.Kind), MaxKindLen)
	case len(e.Detector) > maxNameLength || len(e.Source) > maxNameLength:
		return fmt.Errorf("%w: detector or source name over %d bytes", ErrInvalid, maxNameLength)
	case e.Start.IsZero():
		return fmt.Errorf("%w: no start time", ErrInvalid)
	case !e.End.IsZero() && e.End.Before(e.Start):
		return fmt.Errorf("%w: ends (%s) before it starts (%s)", ErrInvalid, e.End.Format(time.RFC3339Nano), e.Start.Format(time.RFC3339Nano))
	case !(e.Score >= 0 && e.Score <= 1):
		return fmt.Errorf("%w: score %v outside 0..1", ErrInvalid, e.Score)
	case len(e.Regions) > MaxRegions:
		return fmt.Errorf("%w: %d regions (at most %d)", ErrInvalid, len(e.Regions), MaxRegions)
	}
	for _, r := range e.Regions {
		if !(r.X >= 0 && r.Y >= 0 && r.W >= 0 && r.H >= 0 && r.X+r.W <= 1.0001 && r.Y+r.H <= 1.0001) {
			return fmt.Errorf("%w: region %+v outside the picture", ErrInvalid, r)
		}
	}
	return nil
}
