package device

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/adapt"
	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// adaptInterval is how often the adaptation policy runs: a few feedback reports' worth, well
// inside its hold times.
const adaptInterval = 500 * time.Millisecond

// minNudgeInterval: a round asked for because a viewer's path got worse (adapter.nudge) runs
// at most this soon after the last one.
const minNudgeInterval = 100 * time.Millisecond

// adaptEvents is how many recent decisions the status keeps.
const adaptEvents = 32

// maxPendingDecisions bounds the decisions waiting to be told to one viewer.
const maxPendingDecisions = 16

// reportEvery is how often each viewer hears of its path on its events channel (and at once
// after a decision about it).
const reportEvery = time.Second

// adapter runs the adaptation policy over the device's sessions and carries out its
// decisions: viewers switched between renditions, encoders' bitrate and frame rate. Enabled
// or not, it tells each viewer of its path (wire.Network).
type adapter struct {
	d       *Device
	f       *srcFeed // the source whose encoders and viewers it adapts
	enabled bool
	policy  *adapt.Policy
	// nudged asks for a round now (nudge); last is when the last round ran (run's goroutine).
	nudged chan struct{}
	last   time.Time

	mu       sync.Mutex
	events   []adapt.Event
	encoders []adapt.Encoder
	// pending are each viewer's decisions (its own switches, its encoder's changes) not yet
	// told, and reported when it was last told of its path.
	pending  map[string][]wire.Decision
	reported map[string]time.Time
}

// AdaptStatus is the policy's state in GET /api/status.
type AdaptStatus struct {
	Enabled  bool            `json:"enabled"`
	Encoders []adapt.Encoder `json:"encoders"`
	Events   []adapt.Event   `json:"events"`
}

func newAdapter(d *Device, f *srcFeed, enabled bool) *adapter {
	return &adapter{d: d, f: f, enabled: enabled, policy: adapt.New(adapt.Config{}), nudged: make(chan struct{}, 1),
		pending: map[string][]wire.Decision{}, reported: map[string]time.Time{}}
}

// nudge asks for a round now: a viewer's estimate fell steeply (peer.SessionOptions.OnPathWorse).
// Waiting for the next tick would leave that viewer on a rendition its path no longer carries
// for up to adaptInterval, filling its queue until the packets are lost there, and its
// encoder at a rate the path cannot take. It never blocks.
func (a *adapter) nudge() {
	if !a.enabled {
		return
	}
	select {
	case a.nudged <- struct{}{}:
	default:
	}
}

func (a *adapter) run(ctx context.Context) {
	t := time.NewTicker(adaptInterval)
	defer t.Stop()
	changed := a.f.stream.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// A new source starts at its configured rates: forget the old one's.
			changed = a.f.stream.Changed()
			a.policy = adapt.New(adapt.Config{})
		case now := <-t.C:
			a.round(now)
		case <-a.nudged:
			if now := time.Now(); now.Sub(a.last) >= minNudgeInterval {
				a.round(now)
			}
		}
	}
}

// round is one decision over the current sessions.
func (a *adapter) round(now time.Time) {
	a.last = now
	info, ok := a.f.stream.Info()
	if !ok {
		return
	}
	a.d.mu.Lock()
	sessions := make([]*peer.Session, 0, len(a.d.sessions))
	for s, f := range a.d.sessions {
		if f == a.f {
			sessions = append(sessions, s)
		}
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
	if a.f == a.d.feeds[0] {
		renditions = a.withCeilings(v.ID, renditions) // manage.go: the ceilings a reload set (the default source's)
	}
	viewers := make([]adapt.Viewer, 0, len(sessions))
	byID := make(map[string]*peer.Session, len(sessions))
	for _, s := range sessions {
		r := s.Rendition()
		if r == 0 {
			continue // not sending yet
		}
		est, _ := s.Estimate()
		viewers = append(viewers, adapt.Viewer{ID: s.ID(), Estimate: est, Rendition: r, Audio: s.SendsAudio(),
			Delivered: s.Delivered(), Protection: s.Protection()})
		byID[s.ID()] = s
	}
	var d adapt.Decision
	if a.enabled {
		d = a.policy.Decide(now, renditions, viewers)
	}
	for id, to := range d.Switches {
		byID[id].SwitchTo(to)
	}
	for _, e := range d.Encoders {
		a.f.stream.SetBitrate(e.Track, e.Bitrate)
		a.f.stream.SetFPS(e.Track, e.FPS)
	}
	for _, e := range d.Events {
		a.f.log.Info("adaptation", "what", e.What, "viewer", e.Viewer, "track", e.Track, "from", e.From, "to", e.To, "why", e.Why)
	}
	a.mu.Lock()
	a.encoders = a.policy.Encoders()
	a.events = append(a.events, d.Events...)
	if n := len(a.events) - adaptEvents; n > 0 {
		a.events = append(a.events[:0], a.events[n:]...)
	}
	a.mu.Unlock()
	a.report(now, byID, renditions, d.Events)
}

// report tells each viewer of its path once every reportEvery, and at once when a decision
// concerned it: its own switch, or a change of the encoder it watches.
func (a *adapter) report(now time.Time, sessions map[string]*peer.Session, renditions []adapt.Rendition, events []adapt.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	encoders := a.policy.Encoders()
	for id, s := range sessions {
		rendition := s.Rendition()
		for _, e := range events {
			if e.Viewer == id || (e.Viewer == "" && e.Track == rendition) {
				// Bounded: a viewer that cannot be told keeps only the latest.
				p := append(a.pending[id], wire.Decision{At: e.At, What: e.What, Track: e.Track, From: e.From, To: e.To, Why: e.Why})
				a.pending[id] = p[max(0, len(p)-maxPendingDecisions):]
			}
		}
		if len(a.pending[id]) == 0 && now.Sub(a.reported[id]) < reportEvery {
			continue
		}
		msg := wire.Network{Type: wire.TypeNetwork, Rendition: wire.Rendition{Track: rendition}}
		for _, r := range renditions {
			if r.Track == rendition {
				msg.Rendition.Width, msg.Rendition.Height, msg.Rendition.BitrateBPS, msg.Rendition.FPS = r.Width, r.Height, r.Bitrate, r.FPS
			}
		}
		for _, e := range encoders {
			if e.Track == rendition {
				msg.Rendition.BitrateBPS, msg.Rendition.FPS = e.Bitrate, e.FPS
			}
		}
		st := s.Stats()
		if n := st.Network; n != nil {
			msg.EstimateBPS, msg.RTTMS, msg.Loss, msg.JitterMS, msg.QueueMS = n.EstimateBPS, n.RTTMS, n.Loss, n.JitterMS, n.QueueMS
			msg.Retransmitted, msg.FEC = n.Retransmitted, n.FECPackets
		}
		msg.Decisions = a.pending[id]
		if b, err := json.Marshal(msg); err == nil && s.SendEvent(b) {
			a.reported[id] = now
			delete(a.pending, id)
		}
	}
	for id := range a.reported {
		if sessions[id] == nil {
			delete(a.reported, id)
			delete(a.pending, id)
		}
	}
}

func (a *adapter) status() *AdaptStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &AdaptStatus{Enabled: a.enabled, Encoders: append([]adapt.Encoder{}, a.encoders...), Events: append([]adapt.Event{}, a.events...)}
}
