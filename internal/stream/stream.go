// Package stream fans one source's encoded frames out to its viewers. It keeps what a joining
// viewer needs (the current GOP, or a keyframe request to the producer), gives every subscriber
// its own bounded queue so a slow one never blocks the others (it drops to the next keyframe
// instead), and coalesces keyframe requests so many joins cost one keyframe.
package stream

import (
	"log/slog"
	"sync"
	"time"
)

// Producer is the part of a source the stream can ask for things.
type Producer interface {
	RequestKeyframe() error
}

// Info describes the current source.
type Info struct {
	Codec       string  `json:"codec"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	FPS         float64 `json:"fps"`
	Name        string  `json:"name,omitempty"`
	CanKeyframe bool    `json:"-"`
}

// Config tunes a Stream; zero values take the defaults.
type Config struct {
	// QueueFrames bounds each subscriber's queue (default 64 frames).
	QueueFrames int
	// KeyframeInterval is the shortest time between two forced keyframes (default 200 ms);
	// requests inside it share the next one.
	KeyframeInterval time.Duration
	// FreshGOP: a joining viewer replays the cached GOP instead of asking for a new keyframe
	// when the GOP's keyframe was captured at most this long ago (default 200 ms).
	FreshGOP time.Duration
	// MaxGOPFrames and MaxGOPBytes bound the GOP cache (defaults 600 frames, 16 MiB); past them
	// the cache is dropped until the next keyframe.
	MaxGOPFrames int
	MaxGOPBytes  int
	Logger       *slog.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.QueueFrames <= 0 {
		c.QueueFrames = 64
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 200 * time.Millisecond
	}
	if c.FreshGOP <= 0 {
		c.FreshGOP = 200 * time.Millisecond
	}
	if c.MaxGOPFrames <= 0 {
		c.MaxGOPFrames = 600
	}
	if c.MaxGOPBytes <= 0 {
		c.MaxGOPBytes = 16 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats counts what a stream did.
type Stats struct {
	Frames            uint64 `json:"frames"`
	Keyframes         uint64 `json:"keyframes"`
	Bytes             uint64 `json:"bytes"`
	KeyframesAsked    uint64 `json:"keyframes_asked"`     // requests sent to the producer
	KeyframesWanted   uint64 `json:"keyframes_wanted"`    // requests made (joins, PLI, FIR, drops)
	DroppedForViewers uint64 `json:"dropped_for_viewers"` // frames not queued to a slow viewer
	Subscribers       int    `json:"subscribers"`
}

// Stream is one source's fan-out point. Publish is called by one goroutine at a time.
type Stream struct {
	cfg Config

	mu       sync.Mutex
	subs     map[*Subscriber]struct{}
	gop      []*Frame
	gopBytes int
	gopValid bool
	info     Info
	hasInfo  bool
	producer Producer
	attachN  uint64
	stats    Stats

	// keyframe request coalescing, under mu
	kfPending   bool      // asked, keyframe not yet seen
	kfLastAsked time.Time // when the producer was last asked
	kfTimer     *time.Timer
	changed     chan struct{} // closed and replaced when the source changes

	times timeline
}

// New makes an empty stream.
func New(cfg Config) *Stream {
	cfg.setDefaults()
	return &Stream{cfg: cfg, subs: map[*Subscriber]struct{}{}, changed: make(chan struct{})}
}

// Attach makes p (nil if it cannot be asked for anything) and info the current source. The
// returned detach ends it; detaching a source that was already replaced does nothing.
// Subscribers stay subscribed across sources and resume at the new source's first keyframe.
func (s *Stream) Attach(info Info, p Producer) (detach func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attachN++
	n := s.attachN
	s.info, s.hasInfo, s.producer = info, true, p
	s.resetSourceLocked()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.attachN != n {
			return
		}
		s.producer, s.hasInfo = nil, false
		s.resetSourceLocked()
	}
}

// resetSourceLocked forgets everything tied to the previous source.
func (s *Stream) resetSourceLocked() {
	s.dropGOPLocked()
	s.kfPending = false
	s.kfLastAsked = time.Time{}
	if s.kfTimer != nil {
		s.kfTimer.Stop()
		s.kfTimer = nil
	}
	for sub := range s.subs {
		sub.waitKey = true
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Info returns the current source's description, and false when there is none.
func (s *Stream) Info() (Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info, s.hasInfo
}

// Changed returns a channel closed at the next source change.
func (s *Stream) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Stats returns a snapshot of the counters.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Subscribers = len(s.subs)
	return st
}

// Publish hands f to every subscriber and to the GOP cache. It takes over the caller's
// reference. It never blocks on a subscriber.
func (s *Stream) Publish(f *Frame) {
	s.mu.Lock()
	f.published = s.times.record(f)
	s.stats.Frames++
	s.stats.Bytes += uint64(len(f.Data))
	if f.Keyframe {
		s.stats.Keyframes++
		s.kfPending = false
		s.dropGOPLocked()
		s.gopValid = true
	}
	if s.gopValid {
		if len(s.gop) < s.cfg.MaxGOPFrames && s.gopBytes+len(f.Data) <= s.cfg.MaxGOPBytes {
			f.Retain()
			s.gop = append(s.gop, f)
			s.gopBytes += len(f.Data)
		} else {
			s.dropGOPLocked()
		}
	}
	askKey := false
	for sub := range s.subs {
		if sub.waitKey && !f.Keyframe {
			continue
		}
		f.Retain()
		select {
		case sub.ch <- f:
			sub.waitKey = false
		default:
			f.Release()
			sub.waitKey = true
			sub.dropped++
			s.stats.DroppedForViewers++
			askKey = true
		}
	}
	if askKey {
		s.requestKeyframeLocked()
	}
	s.mu.Unlock()
	f.Release()
}

func (s *Stream) dropGOPLocked() {
	for _, f := range s.gop {
		f.Release()
	}
	clear(s.gop)
	s.gop = s.gop[:0]
	s.gopBytes = 0
	s.gopValid = false
}

// MarkSent records that a viewer finished sending f at now (ns since the epoch); only the
// first viewer's time is kept. Safe from any goroutine.
func (s *Stream) MarkSent(f *Frame, now int64) { s.times.markSent(f.published, now) }

// Timeline returns the times of the last TimelineFrames frames, oldest first.
func (s *Stream) Timeline() []FrameTimes {
	s.mu.Lock()
	last := s.times.next
	s.mu.Unlock()
	return s.times.snapshot(last)
}

// RequestKeyframe asks the producer for a keyframe, sharing one with requests close together
// (a PLI, a FIR, a join). It does nothing for a producer that cannot be asked.
func (s *Stream) RequestKeyframe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestKeyframeLocked()
}

func (s *Stream) requestKeyframeLocked() {
	s.stats.KeyframesWanted++
	if s.producer == nil || !s.info.CanKeyframe || s.kfPending || s.kfTimer != nil {
		return // nothing to ask, or a keyframe is already on its way
	}
	now := s.cfg.Now()
	if wait := s.kfLastAsked.Add(s.cfg.KeyframeInterval).Sub(now); wait > 0 {
		n := s.attachN
		s.kfTimer = time.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.attachN != n {
				return
			}
			s.kfTimer = nil
			s.askLocked()
		})
		return
	}
	s.askLocked()
}

func (s *Stream) askLocked() {
	if s.producer == nil || s.kfPending {
		return
	}
	s.kfPending = true
	s.kfLastAsked = s.cfg.Now()
	s.stats.KeyframesAsked++
	if err := s.producer.RequestKeyframe(); err != nil {
		s.kfPending = false
		s.cfg.Logger.Warn("keyframe request failed", "err", err)
	}
}

// Subscriber receives a stream's frames through its own bounded queue.
type Subscriber struct {
	s       *Stream
	ch      chan *Frame
	waitKey bool   // under s.mu: drop until the next keyframe
	dropped uint64 // under s.mu
	once    sync.Once
}

// Subscribe adds a viewer. Its first frame is a keyframe: the cached GOP when it is fresh (or
// when the producer cannot be asked for a keyframe), otherwise the next keyframe, which it asks
// the producer for.
func (s *Stream) Subscribe() *Subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &Subscriber{s: s, waitKey: true}
	replay := s.gopValid && len(s.gop) > 0 && s.gop[0].Keyframe
	if replay && s.info.CanKeyframe && s.producer != nil {
		age := s.cfg.Now().Sub(time.Unix(0, s.gop[0].Capture))
		replay = age <= s.cfg.FreshGOP
	}
	size := s.cfg.QueueFrames
	if replay {
		size = max(size, len(s.gop)+s.cfg.QueueFrames/2)
	}
	sub.ch = make(chan *Frame, size)
	if replay {
		for _, f := range s.gop {
			f.Retain()
			sub.ch <- f
		}
		sub.waitKey = false
	} else {
		s.requestKeyframeLocked()
	}
	s.subs[sub] = struct{}{}
	return sub
}

// Frames delivers the subscriber's frames; the receiver owns one reference to each and must
// Release it. The channel is closed by Close.
func (sub *Subscriber) Frames() <-chan *Frame { return sub.ch }

// Dropped counts frames this subscriber missed because its queue was full.
func (sub *Subscriber) Dropped() uint64 {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	return sub.dropped
}

// Close unsubscribes and releases whatever is still queued. Safe to call more than once and
// concurrently with a receiver.
func (sub *Subscriber) Close() {
	sub.once.Do(func() {
		sub.s.mu.Lock()
		delete(sub.s.subs, sub)
		close(sub.ch)
		sub.s.mu.Unlock()
		for f := range sub.ch {
			f.Release()
		}
	})
}
