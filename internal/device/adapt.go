package device

import (
	"context"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/adapt"
	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/peer"
)

// adaptInterval is how often the adaptation policy runs: a few feedback reports' worth, well
// inside its hold times.
const adaptInterval = 500 * time.Millisecond

// adaptEvents is how many recent decisions the status keeps.
const adaptEvents = 32

// adapter runs the adaptation policy over the device's sessions and carries out its
// decisions: viewers switched between renditions, encoders' bitrate and frame rate.
type adapter struct {
	d      *Device
	policy *adapt.Policy

	mu       sync.Mutex
	events   []adapt.Event
	encoders []adapt.Encoder
}

// AdaptStatus is the policy's state in GET /api/status.
type AdaptStatus struct {
	Enabled  bool            `json:"enabled"`
	Encoders []adapt.Encoder `json:"encoders"`
	Events   []adapt.Event   `json:"events"`
}

func newAdapter(d *Device) *adapter {
	return &adapter{d: d, policy: adapt.New(adapt.Config{})}
}

func (a *adapter) run(ctx context.Context) {
	t := time.NewTicker(adaptInterval)
	defer t.Stop()
	changed := a.d.stream.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// A new source starts at its configured rates: forget the old one's.
			changed = a.d.stream.Changed()
			a.policy = adapt.New(adapt.Config{})
		case now := <-t.C:
			a.round(now)
		}
	}
}

// round is one decision over the current sessions.
func (a *adapter) round(now time.Time) {
	info, ok := a.d.stream.Info()
	if !ok {
		return
	}
	a.d.mu.Lock()
	sessions := make([]*peer.Session, 0, len(a.d.sessions))
	for s := range a.d.sessions {
		sessions = append(sessions, s)
	}
	a.d.mu.Unlock()
	var renditions []adapt.Rendition
	v, hasVideo := info.First(codec.Video)
	if !hasVideo {
		return
	}
	for _, t := range info.Renditions(v.ID) {
		renditions = append(renditions, adapt.Rendition{Track: t.ID, Width: t.Width, Height: t.Height, FPS: t.FPS,
			Bitrate: t.Bitrate, CanBitrate: t.CanBitrate && t.Bitrate > 0, CanFPS: t.CanFPS})
	}
	viewers := make([]adapt.Viewer, 0, len(sessions))
	byID := make(map[string]*peer.Session, len(sessions))
	for _, s := range sessions {
		r := s.Rendition()
		if r == 0 {
			continue // not sending yet
		}
		est, _ := s.Estimate()
		viewers = append(viewers, adapt.Viewer{ID: s.ID(), Estimate: est, Rendition: r, Audio: s.SendsAudio(), Delivered: s.Delivered()})
		byID[s.ID()] = s
	}
	d := a.policy.Decide(now, renditions, viewers)
	for id, to := range d.Switches {
		byID[id].SwitchTo(to)
	}
	for _, e := range d.Encoders {
		a.d.stream.SetBitrate(e.Track, e.Bitrate)
		a.d.stream.SetFPS(e.Track, e.FPS)
	}
	for _, e := range d.Events {
		a.d.log.Info("adaptation", "what", e.What, "viewer", e.Viewer, "track", e.Track, "from", e.From, "to", e.To, "why", e.Why)
	}
	a.mu.Lock()
	a.encoders = a.policy.Encoders()
	a.events = append(a.events, d.Events...)
	if n := len(a.events) - adaptEvents; n > 0 {
		a.events = append(a.events[:0], a.events[n:]...)
	}
	a.mu.Unlock()
}

func (a *adapter) status() *AdaptStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &AdaptStatus{Enabled: true, Encoders: append([]adapt.Encoder{}, a.encoders...), Events: append([]adapt.Event{}, a.events...)}
}
