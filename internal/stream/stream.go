// Package stream is the media model: a source described by its tracks (video and audio, each
// with its codec and parameters), whose frames it fans out to readers (viewer sessions today;
// the recorder and detectors later). Readers choose the tracks they read; a producer learns
// how many read each track and may idle the others. Per video track it keeps what a joining
// reader needs (the current GOP, or a keyframe request to the producer); every reader has its
// own bounded queue so a slow one never blocks the others (it drops to the next keyframe
// instead), and keyframe requests are coalesced so many joins cost one keyframe.
package stream

import (
	"log/slog"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// Producer is the part of a source the stream can ask for things. Its methods are called with
// the stream's lock held and must not block (queue the request).
type Producer interface {
	// RequestKeyframe asks for a keyframe on a video track.
	RequestKeyframe(track uint8) error
	// SetReaders says how many subscribers read a track now: a producer may stop encoding a
	// track nobody reads, and start again (with a keyframe) when someone does.
	SetReaders(track uint8, n int)
	// SetBitrate asks a track's encoder for bps bit/s from its next frame on.
	SetBitrate(track uint8, bps int)
	// SetFPS asks a video track's encoder for fps frames a second.
	SetFPS(track uint8, fps float64)
}

// Config tunes a Stream; zero values take the defaults.
type Config struct {
	// QueueFrames bounds each subscriber's queue (default 128 frames: ~1.5 s of 30 fps video
	// with 20 ms audio).
	QueueFrames int
	// KeyframeInterval is the shortest time between two forced keyframes (default 200 ms);
	// requests inside it share the next one.
	KeyframeInterval time.Duration
	// FreshGOP: a joining viewer replays the cached GOP instead of asking for a new keyframe
	// when the GOP's keyframe was captured at most this long ago (default 200 ms).
	FreshGOP time.Duration
	// MaxGOPFrames and MaxGOPBytes bound each video track's GOP cache (defaults 600 frames,
	// 16 MiB); past them the cache is dropped until the next keyframe.
	MaxGOPFrames int
	MaxGOPBytes  int
	Logger       *slog.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.QueueFrames <= 0 {
		c.QueueFrames = 128
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
	Frames            uint64       `json:"frames"`
	Keyframes         uint64       `json:"keyframes"`
	Bytes             uint64       `json:"bytes"`
	KeyframesAsked    uint64       `json:"keyframes_asked"`     // requests sent to the producer
	KeyframesWanted   uint64       `json:"keyframes_wanted"`    // requests made (joins, PLI, FIR, drops)
	DroppedForViewers uint64       `json:"dropped_for_viewers"` // frames not queued to a slow viewer
	Subscribers       int          `json:"subscribers"`
	Tracks            []TrackStats `json:"tracks"`
}

// TrackStats counts one track of the current source.
type TrackStats struct {
	ID      uint8      `json:"id"`
	Kind    codec.Kind `json:"kind"`
	Codec   string     `json:"codec"`
	Frames  uint64     `json:"frames"`
	Bytes   uint64     `json:"bytes"`
	Readers int        `json:"readers"`
	// MaxArrivalMS is the longest a frame took from its capture to the device (an audio frame
	// is complete 20 ms after its stamp; a video frame after its encode); LateFrames counts
	// frames that took over LateArrival: a producer that stalls shows here before viewers'
	// jitter buffers grow.
	MaxArrivalMS float64 `json:"max_arrival_ms"`
	LateFrames   uint64  `json:"late_frames"`
}

// LateArrival is when a frame counts as late at the device: well past any frame's duration
// plus its encode.
const LateArrival = 100 * time.Millisecond

// trackState is what the stream keeps per track of the current source.
type trackState struct {
	Track
	gop      []*Frame // video: the current GOP, from its keyframe
	gopBytes int
	gopValid bool
	// keyframe request coalescing
	kfPending   bool      // asked, keyframe not yet seen
	kfLastAsked time.Time // when the producer was last asked
	kfTimer     *time.Timer
	readers     int
	frames      uint64
	bytes       uint64
	maxArrival  int64 // ns
	late        uint64
}

// Stream is one source's fan-out point: the source's tracks, each subscriber's queue, a GOP
// cache per video track. Publish is called by one goroutine at a time.
type Stream struct {
	cfg Config

	mu       sync.Mutex
	subs     map[*Subscriber]struct{}
	tracks   map[uint8]*trackState
	info     Info
	hasInfo  bool
	producer Producer
	attachN  uint64
	stats    Stats
	changed  chan struct{} // closed and replaced when the source changes
	// timelineTrack is the video track whose frames the timeline records (0: none).
	timelineTrack uint8

	times timeline
}

// New makes an empty stream.
func New(cfg Config) *Stream {
	cfg.setDefaults()
	return &Stream{cfg: cfg, subs: map[*Subscriber]struct{}{}, tracks: map[uint8]*trackState{}, changed: make(chan struct{})}
}

// Attach makes p (nil if it cannot be asked for anything) and info the current source. The
// returned detach ends it; detaching a source that was already replaced does nothing.
// Subscribers stay subscribed across sources and resume at the new source's first keyframe.
func (s *Stream) Attach(info Info, p Producer) (detach func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attachN++
	n := s.attachN
	s.resetSourceLocked()
	s.info, s.hasInfo, s.producer = info, true, p
	for _, t := range info.Tracks {
		if _, dup := s.tracks[t.ID]; !dup {
			s.tracks[t.ID] = &trackState{Track: t}
		}
	}
	if v, ok := info.First(codec.Video); ok {
		s.timelineTrack = v.ID
	}
	// The producer learns every track's count, zero included: it may idle until someone reads.
	s.countReadersLocked()
	if p != nil {
		for _, t := range info.Tracks {
			if ts := s.tracks[t.ID]; ts != nil && ts.readers == 0 {
				p.SetReaders(t.ID, 0)
			}
		}
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.attachN != n {
			return
		}
		s.resetSourceLocked()
	}
}

// resetSourceLocked forgets everything tied to the previous source.
func (s *Stream) resetSourceLocked() {
	for _, ts := range s.tracks {
		ts.dropGOP()
		if ts.kfTimer != nil {
			ts.kfTimer.Stop()
		}
	}
	clear(s.tracks)
	s.producer, s.hasInfo, s.info, s.timelineTrack = nil, false, Info{}, 0
	for sub := range s.subs {
		sub.waitKey.fill()
	}
	s.changedLocked()
}

func (s *Stream) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// countReadersLocked tells the producer how many subscribers read each track.
func (s *Stream) countReadersLocked() {
	for id, ts := range s.tracks {
		n := 0
		for sub := range s.subs {
			if sub.want.has(id) {
				n++
			}
		}
		if n != ts.readers {
			ts.readers = n
			if s.producer != nil {
				s.producer.SetReaders(id, n)
			}
		}
	}
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
	st.Tracks = make([]TrackStats, 0, len(s.tracks))
	for _, t := range s.info.Tracks {
		if ts := s.tracks[t.ID]; ts != nil {
			st.Tracks = append(st.Tracks, TrackStats{ID: t.ID, Kind: t.Kind, Codec: t.Codec, Frames: ts.frames, Bytes: ts.bytes,
				Readers: ts.readers, MaxArrivalMS: float64(ts.maxArrival/1e3) / 1e3, LateFrames: ts.late})
		}
	}
	return st
}

// Publish hands f to every subscriber of its track, and to the track's GOP cache. It takes
// over the caller's reference. It never blocks on a subscriber. Frames of a track the current
// source does not have are dropped.
func (s *Stream) Publish(f *Frame) {
	s.mu.Lock()
	ts := s.tracks[f.Track]
	if ts == nil {
		s.mu.Unlock()
		f.Release()
		return
	}
	video := ts.Kind == codec.Video
	if video && f.Track == s.timelineTrack {
		f.published = s.times.record(f)
	}
	s.stats.Frames++
	s.stats.Bytes += uint64(len(f.Data))
	ts.frames++
	ts.bytes += uint64(len(f.Data))
	if arrival := f.Received - f.Capture; f.Received != 0 {
		ts.maxArrival = max(ts.maxArrival, arrival)
		if arrival > int64(LateArrival) {
			ts.late++
		}
	}
	if video {
		if f.Keyframe {
			s.stats.Keyframes++
			ts.kfPending = false
			ts.dropGOP()
			ts.gopValid = true
		}
		if ts.gopValid {
			if len(ts.gop) < s.cfg.MaxGOPFrames && ts.gopBytes+len(f.Data) <= s.cfg.MaxGOPBytes {
				f.Retain()
				ts.gop = append(ts.gop, f)
				ts.gopBytes += len(f.Data)
			} else {
				ts.dropGOP()
			}
		}
	}
	askKey, recount := false, false
	for sub := range s.subs {
		if !sub.want.has(f.Track) {
			continue
		}
		if video && sub.waitKey.has(f.Track) && !f.Keyframe {
			continue
		}
		f.Retain()
		if sub.offer(f) {
			if video {
				sub.waitKey.remove(f.Track)
				if sub.switchTo == f.Track && sub.switchFrom != 0 {
					// The new rendition's keyframe is queued after the old one's last frame:
					// the reader sees one picture stream change at a keyframe.
					sub.want.remove(sub.switchFrom)
					sub.switchFrom, sub.switchTo = 0, 0
					recount = true
				}
			}
		} else {
			f.Release()
			sub.dropped++
			s.stats.DroppedForViewers++
			if video {
				sub.waitKey.add(f.Track)
				askKey = true
			}
		}
	}
	if askKey {
		s.requestKeyframeLocked(ts)
	}
	if recount {
		s.countReadersLocked()
	}
	s.mu.Unlock()
	f.Release()
}

func (ts *trackState) dropGOP() {
	for _, f := range ts.gop {
		f.Release()
	}
	clear(ts.gop)
	ts.gop = ts.gop[:0]
	ts.gopBytes = 0
	ts.gopValid = false
}

// MarkSent records that a viewer finished sending f at now (ns since the epoch); only the
// first viewer's time is kept. Safe from any goroutine.
func (s *Stream) MarkSent(f *Frame, now int64) { s.times.markSent(f.published, now) }

// Timeline returns the times of the last TimelineFrames frames of the first video track,
// oldest first.
func (s *Stream) Timeline() []FrameTimes {
	s.mu.Lock()
	last := s.times.next
	s.mu.Unlock()
	return s.times.snapshot(last)
}

// RequestKeyframe asks the producer for a keyframe on a video track, sharing one with
// requests close together (a PLI, a FIR, a join). It does nothing for a producer that cannot
// be asked.
func (s *Stream) RequestKeyframe(track uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tracks[track]; ts != nil {
		s.requestKeyframeLocked(ts)
	}
}

func (s *Stream) requestKeyframeLocked(ts *trackState) {
	s.stats.KeyframesWanted++
	if s.producer == nil || ts.Kind != codec.Video || !ts.CanKeyframe || ts.kfPending || ts.kfTimer != nil {
		return // nothing to ask, or a keyframe is already on its way
	}
	now := s.cfg.Now()
	if wait := ts.kfLastAsked.Add(s.cfg.KeyframeInterval).Sub(now); wait > 0 {
		n := s.attachN
		ts.kfTimer = time.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.attachN != n {
				return
			}
			ts.kfTimer = nil
			s.askLocked(ts)
		})
		return
	}
	s.askLocked(ts)
}

func (s *Stream) askLocked(ts *trackState) {
	if s.producer == nil || ts.kfPending {
		return
	}
	ts.kfPending = true
	ts.kfLastAsked = s.cfg.Now()
	s.stats.KeyframesAsked++
	if err := s.producer.RequestKeyframe(ts.ID); err != nil {
		ts.kfPending = false
		s.cfg.Logger.Warn("keyframe request failed", "track", ts.ID, "err", err)
	}
}

// SetBitrate asks the producer to encode track at bps (the adaptation policy's decision).
func (s *Stream) SetBitrate(track uint8, bps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tracks[track]; ts != nil && ts.CanBitrate && s.producer != nil {
		s.producer.SetBitrate(track, bps)
	}
}

// SetFPS asks the producer to encode video track at fps frames a second.
func (s *Stream) SetFPS(track uint8, fps float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tracks[track]; ts != nil && ts.CanFPS && s.producer != nil {
		s.producer.SetFPS(track, fps)
	}
}

// Subscriber receives frames of the tracks it chose through its own bounded queue, in the
// order they were published.
type Subscriber struct {
	s       *Stream
	ch      chan *Frame // nil with deliver
	deliver Deliver
	want    trackSet // under s.mu: tracks it reads
	waitKey trackSet // under s.mu: video tracks dropped until their next keyframe
	// under s.mu: a switch in progress: at the first keyframe of switchTo, switchFrom is
	// no longer read (0: none).
	switchFrom, switchTo uint8
	dropped              uint64 // under s.mu
	once                 sync.Once
}

// Subscribe adds a reader of tracks (by id; none: every track). A video track's first frame
// is a keyframe: the cached GOP when it is fresh (or when the producer cannot be asked for a
// keyframe), otherwise the next keyframe, which it asks the producer for.
func (s *Stream) Subscribe(tracks ...uint8) *Subscriber {
	return s.subscribe(nil, tracks)
}

// Deliver takes a frame for a reader that queues frames itself (a viewer's pacer): true takes
// over the frame's reference, false refuses it (its queue is full: the stream drops the track
// to its next keyframe, as for a full channel). It is called with the stream's lock held: it
// must not block and must not call the stream.
type Deliver func(f *Frame) bool

// SubscribeFunc is Subscribe for a reader that takes frames as they are published, without a
// channel and a goroutine of its own: one publish hands a frame to every such reader in one
// go (a pacer then writes them all in one batch).
func (s *Stream) SubscribeFunc(deliver Deliver, tracks ...uint8) *Subscriber {
	return s.subscribe(deliver, tracks)
}

func (s *Stream) subscribe(deliver Deliver, tracks []uint8) *Subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &Subscriber{s: s, deliver: deliver}
	if len(tracks) == 0 {
		sub.want.fill()
	} else {
		sub.want = setOf(tracks...)
	}
	sub.waitKey.fill()
	var replay []*trackState
	queued := 0
	for id, ts := range s.tracks {
		if !sub.want.has(id) || ts.Kind != codec.Video {
			continue
		}
		ok := ts.gopValid && len(ts.gop) > 0 && ts.gop[0].Keyframe
		if ok && ts.CanKeyframe && s.producer != nil {
			ok = s.cfg.Now().Sub(time.Unix(0, ts.gop[0].Capture)) <= s.cfg.FreshGOP
		}
		if ok {
			replay = append(replay, ts)
			queued += len(ts.gop)
		} else {
			s.requestKeyframeLocked(ts)
		}
	}
	if deliver == nil {
		sub.ch = make(chan *Frame, max(s.cfg.QueueFrames, queued+s.cfg.QueueFrames/2))
	}
	for _, ts := range replay {
		ok := true
		for _, f := range ts.gop {
			f.Retain()
			if ok = sub.offer(f); !ok {
				f.Release()
				break
			}
		}
		if ok {
			sub.waitKey.remove(ts.ID)
		} else {
			s.requestKeyframeLocked(ts)
		}
	}
	s.subs[sub] = struct{}{}
	s.countReadersLocked()
	return sub
}

// Switch moves the subscriber from video track from to track to (another rendition of the
// same picture) at to's next keyframe, which it asks for: until then it keeps receiving from,
// and from's frames stop once to's keyframe is queued. A switch replaces one in progress.
func (sub *Subscriber) Switch(from, to uint8) {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tracks[to]
	if ts == nil {
		return
	}
	if sub.switchFrom != 0 && to == sub.switchFrom {
		// Back to where it was before the new rendition's keyframe came: cancel.
		sub.want.remove(sub.switchTo)
		sub.switchFrom, sub.switchTo = 0, 0
		s.countReadersLocked()
		return
	}
	if from == to {
		return
	}
	if sub.switchFrom != 0 && sub.switchTo != to {
		// Abandon the previous switch: its target is not read any more.
		sub.want.remove(sub.switchTo)
		from = sub.switchFrom
	}
	if !sub.want.has(from) {
		return
	}
	sub.want.add(to)
	sub.waitKey.add(to)
	sub.switchFrom, sub.switchTo = from, to
	s.countReadersLocked()
	s.requestKeyframeLocked(ts)
}

// offer hands f (with a reference for the reader) to the subscriber's queue, or says it is
// full.
func (sub *Subscriber) offer(f *Frame) bool {
	if sub.deliver != nil {
		return sub.deliver(f)
	}
	select {
	case sub.ch <- f:
		return true
	default:
		return false
	}
}

// Frames delivers the subscriber's frames; the receiver owns one reference to each and must
// Release it. The channel is closed by Close; nil for a SubscribeFunc reader.
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
		if sub.ch != nil {
			close(sub.ch)
		}
		sub.s.countReadersLocked()
		sub.s.mu.Unlock()
		if sub.ch != nil {
			for f := range sub.ch {
				f.Release()
			}
		}
	})
}
