package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
)

// EVENT (producer → device, version 2): a detection event's start or end, about a video
// track whose HELLO announced CapEvents (docs/ipc.md).
const (
	TypeEvent Type = 0x04
	// CapEvents, in a video HELLO: the producer analyses the track's pictures and may send
	// EVENTs about it.
	CapEvents uint16 = 1 << 3
	// FlagEnd marks an EVENT that ends its event (without it, the event starts).
	FlagEnd uint16 = 1 << 0
	// EventSize is the fixed part of an EVENT payload; EventRegionSize bytes per region follow.
	EventSize       = 24
	EventRegionSize = 8
	// MaxEventRegions bounds the regions of one EVENT.
	MaxEventRegions = 16
	// EventKindMotion is the only kind today: the producer's frame differences.
	EventKindMotion = 1
	// ShareOne is 1 in the 16-bit shares of an EVENT (score, regions).
	ShareOne = 65535
)

// ErrBadEvent: an EVENT that is malformed, about a track that cannot have events, or whose
// event does not validate (event.Validate).
var ErrBadEvent = errors.New("ipc: malformed EVENT")

// Event is a decoded EVENT: one edge (start, or end) of a producer's event.
type Event struct {
	Track uint8
	// ID is the producer's, from 1 for each producer run: a start and its end share it.
	ID      uint32
	Kind    uint8
	End     bool
	Score   uint16 // 0..ShareOne
	Start   int64  // ns since the Unix epoch
	EndTime int64  // 0 unless End
	Regions []EventRegion
}

// EventRegion is a box in the picture, each value in 1/ShareOne of its width or height.
type EventRegion struct{ X, Y, W, H uint16 }

// ParseEvent decodes and checks an EVENT message: the payload's size against its region count,
// the id, kind, times and boxes, and the event it makes (event.Validate). Which tracks may
// carry events is the caller's to check (their HELLOs).
func ParseEvent(m Message) (Event, error) {
	if m.Type != TypeEvent {
		return Event{}, fmt.Errorf("%w: %s", ErrUnexpectedType, m.Type)
	}
	if m.Version != Version2 {
		return Event{}, fmt.Errorf("%w: EVENT needs protocol version 2", ErrBadEvent)
	}
	if m.Track == 0 {
		return Event{}, fmt.Errorf("%w (%w): EVENT about track 0", ErrBadEvent, ErrBadTrack)
	}
	p := m.Payload
	if len(p) < EventSize {
		return Event{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadEvent, len(p), EventSize)
	}
	n := int(p[5])
	if n > MaxEventRegions || len(p) != EventSize+n*EventRegionSize {
		return Event{}, fmt.Errorf("%w: %d bytes for %d regions (at most %d, %d bytes each after %d)",
			ErrBadEvent, len(p), n, MaxEventRegions, EventRegionSize, EventSize)
	}
	e := Event{Track: m.Track, ID: binary.LittleEndian.Uint32(p), Kind: p[4], End: m.Flags&FlagEnd != 0,
		Score: binary.LittleEndian.Uint16(p[6:]), Start: int64(binary.LittleEndian.Uint64(p[8:])),
		EndTime: int64(binary.LittleEndian.Uint64(p[16:]))}
	switch {
	case e.ID == 0:
		return Event{}, fmt.Errorf("%w: id 0", ErrBadEvent)
	case e.Kind != EventKindMotion:
		return Event{}, fmt.Errorf("%w: kind %d", ErrBadEvent, e.Kind)
	case e.Start <= 0:
		return Event{}, fmt.Errorf("%w: no start time", ErrBadEvent)
	case e.End && e.EndTime < e.Start:
		return Event{}, fmt.Errorf("%w: ends (%d) before it starts (%d)", ErrBadEvent, e.EndTime, e.Start)
	case !e.End && e.EndTime != 0:
		return Event{}, fmt.Errorf("%w: a start with an end time", ErrBadEvent)
	}
	if n > 0 {
		e.Regions = make([]EventRegion, n)
	}
	for i := range e.Regions {
		r := p[EventSize+i*EventRegionSize:]
		g := EventRegion{binary.LittleEndian.Uint16(r), binary.LittleEndian.Uint16(r[2:]),
			binary.LittleEndian.Uint16(r[4:]), binary.LittleEndian.Uint16(r[6:])}
		if int(g.X)+int(g.W) > ShareOne || int(g.Y)+int(g.H) > ShareOne {
			return Event{}, fmt.Errorf("%w: region %+v outside the picture", ErrBadEvent, g)
		}
		e.Regions[i] = g
	}
	if err := e.Event("").Validate(); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	return e, nil
}

// kindNames are the kinds' names in event.Event.
var kindNames = map[uint8]string{EventKindMotion: "motion"}

// Event is e as the device's event: its ID made of the start time and the producer's id, so
// it is unique across producer runs (a restarted producer counts from 1 again), and stable
// between the start and the end.
func (e Event) Event(source string) event.Event {
	kind := kindNames[e.Kind]
	out := event.Event{
		ID:       fmt.Sprintf("%s-%d-%d", kind, e.Start/int64(time.Millisecond), e.ID),
		Kind:     kind,
		Detector: kind,
		Source:   source,
		Start:    time.Unix(0, e.Start).UTC(),
		Score:    float64(e.Score) / ShareOne,
	}
	if e.End {
		out.End = time.Unix(0, e.EndTime).UTC()
	}
	for _, r := range e.Regions {
		out.Regions = append(out.Regions, event.Region{X: float64(r.X) / ShareOne, Y: float64(r.Y) / ShareOne,
			W: float64(r.W) / ShareOne, H: float64(r.H) / ShareOne})
	}
	return out
}

// Marshal encodes e as an EVENT payload.
func (e Event) Marshal() []byte {
	p := make([]byte, EventSize, EventSize+len(e.Regions)*EventRegionSize)
	binary.LittleEndian.PutUint32(p, e.ID)
	p[4], p[5] = e.Kind, byte(len(e.Regions))
	binary.LittleEndian.PutUint16(p[6:], e.Score)
	binary.LittleEndian.PutUint64(p[8:], uint64(e.Start))
	if e.End {
		binary.LittleEndian.PutUint64(p[16:], uint64(e.EndTime))
	}
	for _, r := range e.Regions {
		p = binary.LittleEndian.AppendUint16(p, r.X)
		p = binary.LittleEndian.AppendUint16(p, r.Y)
		p = binary.LittleEndian.AppendUint16(p, r.W)
		p = binary.LittleEndian.AppendUint16(p, r.H)
	}
	return p
}

// WriteEvent sends an EVENT (used by Go producers and tests); the header's timestamp is the
// edge's time.
func (w *Writer) WriteEvent(e Event) error {
	h := Header{Type: TypeEvent, Track: e.Track, Timestamp: e.Start}
	if e.End {
		h.Flags, h.Timestamp = FlagEnd, e.EndTime
	}
	return w.write(h, true, e.Marshal())
}
