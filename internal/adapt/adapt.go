// Package adapt is the adaptation policy: from each viewer's bandwidth estimate it decides
// which rendition (main or sub stream) each viewer gets and what bitrate and frame rate each
// encoder runs at. It is pure: the device feeds it a snapshot every Interval and carries out
// the decisions (switch a viewer at the next keyframe, send BITRATE/FPS to the producer).
//
// The rules, in order:
//  1. A viewer's usable rate is its estimate (which already follows a path whose queue fills
//     faster than its delay trend shows: internal/congestion) less headroom (audio when it
//     gets audio, retransmissions, the encoder's overshoot, and each packet's headers: an
//     estimate counts the wire, a bitrate the video), and forward error correction when the
//     viewer gets it:
//     Usable = (Estimate × UsableShare − AudioBPS − fps × 560) / 1.058 / (1 + Protection).
//  2. Each encoder runs at the most its best viewer can take, never above its configured
//     bitrate and never below its floor: when every viewer is limited (one viewer behind one
//     uplink), the encoder slows down instead of the network dropping packets; when one viewer
//     can take the full rate, it gets it.
//  3. A viewer that cannot take the main encoder's rate moves to the sub stream (when there
//     is one), after DownHold (at once when far below: UrgentShare); it moves back up when its
//     usable rate has stayed above the main rate × UpMargin for UpHold, and that rate is a
//     real step up: UpStep times the full rate of the rendition it is on (a switch costs a
//     keyframe of the larger picture, and a larger picture at little more than the smaller
//     one's rate looks no better). An up-switch that had to be undone within UpHold doubles
//     that viewer's next UpHold (up to MaxUpHold): no flapping.
//  4. Below an encoder's full-rate floor (MinBitsPerPixel at the full frame rate) the frame
//     rate goes down in steps (FPSSteps) before the picture would fall apart; it comes back
//     when the rate allows.
package adapt

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Config is the policy's tuning; zero values take the defaults.
type Config struct {
	// UsableShare of the estimate may carry video (default 0.85).
	UsableShare float64
	// AudioBPS is kept back for audio (default 40 kbit/s: Opus at 32 kbit/s with headers).
	AudioBPS int
	// UrgentShare: a viewer whose usable rate is below this share of its rendition's rate
	// switches down at once (default 0.6).
	UrgentShare float64
	// DownHold: a viewer below its rendition's rate for this long switches down (default 1 s).
	DownHold time.Duration
	// UpMargin: the usable rate must be this much above what the next rendition up needs to
	// switch up (default 1.15).
	UpMargin float64
	// UpStep: a viewer moves up a rendition only to a rate at least this many times the
	// configured rate of the one it is on, or the upper one's configured rate when that is
	// less (default 2: a 1280x720 main over a 640x360 sub at 500 kbit/s is worth its
	// keyframe from 1 Mbit/s). Between the upper rendition's floor and this, a viewer on it
	// stays and a viewer below stays below: the band that keeps an estimate's swings through
	// a token bucket from switching a viewer back and forth.
	UpStep float64
	// HeldShare: a viewer whose usable rate is below this share of the rate other viewers
	// hold its encoder at moves down (default 0.9): one fast viewer keeps the full rate, a
	// slow one takes the sub stream.
	HeldShare float64
	// UpHold: how long the usable rate must stay above before switching up (default 3 s);
	// doubled for a viewer whose last up-switch failed, up to MaxUpHold (default 30 s).
	UpHold, MaxUpHold time.Duration
	// MinBitrate is the lowest rate any encoder is set to (default 60 kbit/s: a 360p sub
	// stream still moves at 30 fps; below, frames would queue behind the path).
	MinBitrate int
	// MinBitsPerPixel at full frame rate; below it the frame rate steps down (default 0.008:
	// 720p30 keeps 30 fps down to ~220 kbit/s, 360p30 to ~55 kbit/s: fluid motion is worth
	// more than detail to a viewer on a slow path).
	MinBitsPerPixel float64
	// FPSSteps are the shares of the full frame rate to step down through (default 2/3, 1/2, 1/3).
	FPSSteps []float64
	// RaiseInterval: an encoder's bitrate goes up at most this often (default 1 s); it goes
	// down at once.
	RaiseInterval time.Duration
	// RaiseStep: an encoder's bitrate goes up at most by this factor at a time (default 1.5).
	RaiseStep float64
	// RaiseHold: an encoder goes up only to what its best viewer's estimate has held for this
	// long (default 2 s); it goes down to the estimate of the moment.
	RaiseHold time.Duration
	// DeliveredHeadroom: an encoder goes up at most to what would fill this many times the
	// rate its best viewer's path delivered lately (default 1.25).
	DeliveredHeadroom float64
}

func (c *Config) setDefaults() {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.UsableShare, 0.85)
	def(&c.UrgentShare, 0.6)
	def(&c.UpMargin, 1.15)
	def(&c.UpStep, 2)
	def(&c.HeldShare, 0.9)
	def(&c.MinBitsPerPixel, 0.008)
	def(&c.RaiseStep, 1.5)
	def(&c.DeliveredHeadroom, 1.25)
	if c.AudioBPS <= 0 {
		c.AudioBPS = 40_000
	}
	if c.DownHold <= 0 {
		c.DownHold = time.Second
	}
	if c.UpHold <= 0 {
		c.UpHold = 3 * time.Second
	}
	if c.MaxUpHold <= 0 {
		c.MaxUpHold = 30 * time.Second
	}
	if c.MinBitrate <= 0 {
		c.MinBitrate = 60_000
	}
	if len(c.FPSSteps) == 0 {
		c.FPSSteps = []float64{2.0 / 3, 1.0 / 2, 1.0 / 3}
	}
	if c.RaiseHold <= 0 {
		c.RaiseHold = 2 * time.Second
	}
	if c.RaiseInterval <= 0 {
		c.RaiseInterval = time.Second
	}
}

// Rendition is one encoding of the picture: the main stream first, then its alternates.
type Rendition struct {
	Track         uint8
	Width, Height int
	FPS           float64 // full frame rate
	Bitrate       int     // configured (the most it is set to), bit/s
	CanBitrate    bool    // the producer obeys BITRATE
	CanFPS        bool    // the producer obeys FPS
}

// Viewer is one session as the policy sees it.
type Viewer struct {
	ID string
	// Estimate is the viewer's bandwidth estimate, bit/s; 0 when it has none (a receiver
	// without transport-wide feedback): such a viewer stays where it is and does not hold an
	// encoder down.
	Estimate int
	// Rendition is the track it gets now.
	Rendition uint8
	// Audio: the viewer gets audio too, which its path must carry beside the video.
	Audio bool
	// Delivered is what the viewer's path has carried lately, bit/s (0: unknown): an
	// encoder goes up at most to DeliveredHeadroom times it, however high the estimate (an
	// estimate overshoots a bottleneck until its queue shows).
	Delivered int
	// Protection is the forward error correction sent beside the video, per video packet
	// (0.08: 8 % more packets), which the path must carry too.
	Protection float64
}

// Encoder is what the policy set one rendition's encoder to.
type Encoder struct {
	Track   uint8   `json:"track"`
	Bitrate int     `json:"bitrate"`
	FPS     float64 `json:"fps"`
}

// Decision is one round's outcome: what to change. Switches and Encoders hold changes only.
type Decision struct {
	Switches map[string]uint8 // viewer → the rendition to move it to
	Encoders []Encoder        // encoders whose bitrate or frame rate changes
	Events   []Event          // why, for logs and viewers' overlays
}

// Event is one decision, said for people.
type Event struct {
	At     time.Time `json:"at"`
	Viewer string    `json:"viewer,omitempty"`
	Track  uint8     `json:"track"`
	What   string    `json:"what"` // "switch", "bitrate", "fps"
	From   float64   `json:"from"`
	To     float64   `json:"to"`
	Why    string    `json:"why"`
}

func (e Event) String() string {
	who := ""
	if e.Viewer != "" {
		who = " viewer " + e.Viewer
	}
	return fmt.Sprintf("%s%s track %d: %g → %g (%s)", e.What, who, e.Track, e.From, e.To, e.Why)
}

// viewerState is what the policy remembers of a viewer between rounds.
type viewerState struct {
	estimates  [16]sample // the last rounds' estimates, a ring
	next       int
	belowSince time.Time // usable below its rendition's rate since
	aboveSince time.Time // usable above the next rendition up since
	upHold     time.Duration
	lastUp     time.Time // when it last switched up
}

type sample struct {
	at       time.Time
	estimate int
}

// note records this round's estimate; samples older than keep are forgotten.
func (vs *viewerState) note(now time.Time, estimate int, keep time.Duration) {
	vs.estimates[vs.next] = sample{at: now, estimate: estimate}
	vs.next = (vs.next + 1) % len(vs.estimates)
	for i := range vs.estimates {
		if now.Sub(vs.estimates[i].at) > keep {
			vs.estimates[i] = sample{}
		}
	}
}

// low is the lowest estimate of the remembered rounds.
func (vs *viewerState) low() int {
	low := 0
	for _, s := range vs.estimates {
		if !s.at.IsZero() && (low == 0 || s.estimate < low) {
			low = s.estimate
		}
	}
	return low
}

// Policy decides; one per source. Not safe for concurrent use.
type Policy struct {
	cfg     Config
	viewers map[string]*viewerState
	enc     map[uint8]*Encoder
	raised  map[uint8]time.Time
	fps     float64 // the picture's frame rate, this round
}

// New makes a policy.
func New(cfg Config) *Policy {
	cfg.setDefaults()
	return &Policy{cfg: cfg, viewers: map[string]*viewerState{}, enc: map[uint8]*Encoder{}, raised: map[uint8]time.Time{}}
}

// Encoders returns what each encoder is set to now.
func (p *Policy) Encoders() []Encoder {
	out := make([]Encoder, 0, len(p.enc))
	for _, e := range p.enc {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Encoder) int { return int(a.Track) - int(b.Track) })
	return out
}

// Packet overhead: an estimate counts what goes on the wire, an encoder's bitrate only the
// video. Each packet adds about packetOverhead bytes (RTP header and extensions, SRTP tag,
// UDP, IP), and a picture is at least one packet: at 100 kbit/s and 30 fps that is a sixth
// of the path.
const (
	packetOverhead = 70   // bytes
	packetPayload  = 1200 // bytes of video in a full packet
)

// usable is the video bitrate a viewer's path carries with headroom (0: no estimate).
func (p *Policy) usable(v Viewer) int {
	if v.Estimate <= 0 {
		return 0
	}
	u := float64(v.Estimate) * p.cfg.UsableShare
	if v.Audio {
		u -= float64(p.cfg.AudioBPS)
	}
	// video + (fps + video/payload) × overhead = u
	u = (u - p.fps*packetOverhead*8) / (1 + float64(packetOverhead)/packetPayload)
	// FEC packets ride with the video, about Protection of its size.
	u /= 1 + max(v.Protection, 0)
	return max(int(u), 1)
}

// Decide runs one round at now over the source's renditions (main first) and its viewers.
func (p *Policy) Decide(now time.Time, renditions []Rendition, viewers []Viewer) Decision {
	d := Decision{Switches: map[string]uint8{}}
	if len(renditions) == 0 {
		return d
	}
	p.fps = renditions[0].FPS
	p.forget(renditions, viewers)
	index := func(track uint8) int {
		for i, r := range renditions {
			if r.Track == track {
				return i
			}
		}
		return 0
	}
	// Where each viewer goes. hold is the rate rendition i's encoder is held at by its
	// viewers other than id: the best of them (0: none).
	cur := make(map[string]int, len(viewers))
	for _, v := range viewers {
		cur[v.ID] = index(v.Rendition)
	}
	hold := func(i int, id string) int {
		best := 0
		for _, o := range viewers {
			if o.ID == id || cur[o.ID] != i {
				continue
			}
			u := p.usable(o)
			if u == 0 {
				u = renditions[i].Bitrate // no estimate: it gets the full rate
			}
			best = max(best, min(u, renditions[i].Bitrate))
		}
		return best
	}
	where := make(map[string]int, len(viewers))
	for _, v := range viewers {
		vs := p.viewers[v.ID]
		if vs == nil {
			vs = &viewerState{upHold: p.cfg.UpHold}
			p.viewers[v.ID] = vs
		}
		vs.note(now, v.Estimate, p.cfg.RaiseHold)
		i := cur[v.ID]
		where[v.ID] = i
		u := p.usable(v)
		if u == 0 {
			continue
		}
		// Down: a lower rendition exists, and this one does not fit: below its floor, or
		// held above what this viewer takes by a better viewer.
		if i+1 < len(renditions) {
			need := p.floorOf(renditions[i])
			if h := hold(i, v.ID); h > 0 {
				need = max(need, int(float64(h)*p.cfg.HeldShare))
			}
			if u < need {
				if vs.belowSince.IsZero() {
					vs.belowSince = now
				}
				if float64(u) < p.cfg.UrgentShare*float64(need) || now.Sub(vs.belowSince) >= p.cfg.DownHold {
					if !vs.lastUp.IsZero() && now.Sub(vs.lastUp) < vs.upHold {
						vs.upHold = min(vs.upHold*2, p.cfg.MaxUpHold) // the last step up did not hold
					}
					where[v.ID] = i + 1
					vs.belowSince, vs.aboveSince = time.Time{}, time.Time{}
					d.Events = append(d.Events, Event{At: now, Viewer: v.ID, Track: renditions[i+1].Track, What: "switch",
						From: float64(renditions[i].Track), To: float64(renditions[i+1].Track),
						Why: fmt.Sprintf("usable %s below the %s needed on %s", kbps(u), kbps(need), name(i))})
				}
				continue
			}
		}
		vs.belowSince = time.Time{}
		// Up: the rendition above fits with margin, for long enough.
		if i > 0 {
			need := max(p.floorOf(renditions[i-1]), p.stepOf(renditions[i-1], renditions[i]))
			if h := hold(i-1, v.ID); h > 0 {
				need = max(need, int(float64(h)*p.cfg.HeldShare))
			}
			need = int(float64(need) * p.cfg.UpMargin)
			if u < need {
				vs.aboveSince = time.Time{}
				continue
			}
			if vs.aboveSince.IsZero() {
				vs.aboveSince = now
			}
			if now.Sub(vs.aboveSince) >= vs.upHold {
				where[v.ID] = i - 1
				vs.aboveSince, vs.lastUp = time.Time{}, now
				d.Events = append(d.Events, Event{At: now, Viewer: v.ID, Track: renditions[i-1].Track, What: "switch",
					From: float64(renditions[i].Track), To: float64(renditions[i-1].Track),
					Why: fmt.Sprintf("usable %s above %s for %s", kbps(u), kbps(need), vs.upHold)})
			}
		}
	}
	for _, v := range viewers {
		if i := where[v.ID]; renditions[i].Track != v.Rendition {
			d.Switches[v.ID] = renditions[i].Track
		}
	}
	// Each encoder at the most its best viewer takes: down to what it takes now, up only to
	// what it has taken for RaiseHold (an estimate's jump, a probe through a bottleneck's
	// burst allowance, must hold before an encoder follows it).
	for i, r := range renditions {
		best, held, any := 0, 0, false
		for _, v := range viewers {
			if where[v.ID] != i {
				continue
			}
			any = true
			if u := p.usable(v); u > 0 {
				best = max(best, u)
				e := p.viewers[v.ID].low()
				if v.Delivered > 0 {
					e = min(e, int(float64(v.Delivered)*p.cfg.DeliveredHeadroom))
				}
				held = max(held, p.usable(Viewer{Estimate: e, Audio: v.Audio, Protection: v.Protection}))
			} else {
				best, held = r.Bitrate, r.Bitrate // a viewer without an estimate gets the full rate
			}
		}
		if !any {
			continue // nobody watches it: leave it as it is
		}
		p.setEncoder(now, r, min(best, r.Bitrate), min(held, r.Bitrate), &d)
	}
	return d
}

// forget drops state of viewers gone and renditions no longer there.
func (p *Policy) forget(renditions []Rendition, viewers []Viewer) {
	for id := range p.viewers {
		if !slices.ContainsFunc(viewers, func(v Viewer) bool { return v.ID == id }) {
			delete(p.viewers, id)
		}
	}
	for t := range p.enc {
		if !slices.ContainsFunc(renditions, func(r Rendition) bool { return r.Track == t }) {
			delete(p.enc, t)
			delete(p.raised, t)
		}
	}
}

// floorOf is the least rendition r's encoder may be set to while viewers stay on it: its
// configured rate when it cannot be changed, else the point where a lower rendition (or the
// frame rate) serves better: a quarter of its configured rate, at least MinBitrate.
func (p *Policy) floorOf(r Rendition) int {
	if !r.CanBitrate {
		return r.Bitrate
	}
	return max(r.Bitrate/4, p.cfg.MinBitrate)
}

// stepOf is the least rate worth moving a viewer up from lower to upper at: UpStep times
// lower's configured rate, at most upper's configured rate.
func (p *Policy) stepOf(upper, lower Rendition) int {
	return min(upper.Bitrate, int(p.cfg.UpStep*float64(lower.Bitrate)))
}

// fullFPSFloor is the bitrate below which r's frame rate steps down.
func (p *Policy) fullFPSFloor(r Rendition) int {
	return int(p.cfg.MinBitsPerPixel * float64(r.Width*r.Height) * r.FPS)
}

// setEncoder moves r's encoder down to target, or up towards held (what viewers have taken
// for RaiseHold).
func (p *Policy) setEncoder(now time.Time, r Rendition, target, held int, d *Decision) {
	if !r.CanBitrate {
		return
	}
	target = max(target, p.cfg.MinBitrate)
	held = max(min(held, target), p.cfg.MinBitrate)
	e := p.enc[r.Track]
	if e == nil {
		e = &Encoder{Track: r.Track, Bitrate: r.Bitrate, FPS: r.FPS}
		p.enc[r.Track] = e
	}
	old := *e
	switch {
	case target < e.Bitrate:
		e.Bitrate = target
	case held > e.Bitrate && now.Sub(p.raised[r.Track]) >= p.cfg.RaiseInterval:
		e.Bitrate = min(held, int(float64(e.Bitrate)*p.cfg.RaiseStep))
		p.raised[r.Track] = now
	}
	// Small changes are not worth an encoder reconfiguration.
	if e.Bitrate != old.Bitrate && math.Abs(float64(e.Bitrate-old.Bitrate)) < 0.05*float64(old.Bitrate) && e.Bitrate != r.Bitrate {
		e.Bitrate = old.Bitrate
	}
	if r.CanFPS && r.FPS > 0 {
		e.FPS = r.FPS
		if floor := p.fullFPSFloor(r); e.Bitrate < floor {
			for _, s := range p.cfg.FPSSteps {
				e.FPS = math.Round(r.FPS * s)
				if float64(e.Bitrate) >= float64(floor)*s {
					break
				}
			}
		}
	}
	if *e == old {
		return
	}
	d.Encoders = append(d.Encoders, *e)
	if e.Bitrate != old.Bitrate {
		why := "the best viewer takes less"
		if e.Bitrate > old.Bitrate {
			why = "viewers take more"
		}
		d.Events = append(d.Events, Event{At: now, Track: r.Track, What: "bitrate", From: float64(old.Bitrate), To: float64(e.Bitrate), Why: why})
	}
	if e.FPS != old.FPS {
		d.Events = append(d.Events, Event{At: now, Track: r.Track, What: "fps", From: old.FPS, To: e.FPS,
			Why: fmt.Sprintf("%s against %s for full rate", kbps(e.Bitrate), kbps(p.fullFPSFloor(r)))})
	}
}

func kbps(b int) string { return fmt.Sprintf("%d kbit/s", b/1000) }

func name(i int) string {
	if i == 0 {
		return "main"
	}
	return fmt.Sprintf("rendition %d", i)
}
