package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/mp4"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// Source is what the recorder reads: a *stream.Stream.
type Source interface {
	Info() (stream.Info, bool)
	Changed() <-chan struct{}
	Subscribe(tracks ...uint8) *stream.Subscriber
	RequestKeyframe(track uint8)
}

// Status is the recorder's state (the device's /api/status "record").
type Status struct {
	Dir          string `json:"dir"`
	Current      string `json:"current,omitempty"` // the segment being written, relative to Dir
	CurrentBytes int64  `json:"current_bytes"`
	Segments     int    `json:"segments"` // closed segments kept
	Bytes        int64  `json:"bytes"`    // their total size
	Free         int64  `json:"free"`     // free space of Dir's file system at the last check
	Paused       string `json:"paused,omitempty"`
	// Mode is when it records; Recording says whether it is recording now (a segment is
	// open or the next keyframe opens one); Manual is "on" after a Start, "off" after a
	// Stop; OpenEvents counts the detection events going on.
	Mode       Mode   `json:"mode"`
	Recording  bool   `json:"recording"`
	Manual     string `json:"manual,omitempty"`
	OpenEvents int    `json:"open_events,omitempty"`
	// Dropped counts frames the recorder missed (its queue was full: the disk was slow) and
	// samples its writer refused.
	Dropped uint64 `json:"dropped"`
	// Frames counts the frames the recorder took off the stream.
	Frames uint64 `json:"frames"`
	Error  string `json:"error,omitempty"`
}

// Recorder records a Source continuously into segments (see docs/recording.md).
type Recorder struct {
	src  Source
	opts Options
	log  *slog.Logger
	// Now is the wall clock (retention by age, free-space checks); Free returns the bytes
	// available to us on dir's file system. Both are replaceable by tests before Run.
	Now  func() time.Time
	Free func(dir string) (int64, error)
	// IdleClose closes the segment when no frame came for this long (a stalled producer).
	IdleClose time.Duration

	mu      sync.Mutex
	entries []Entry // closed segments, oldest first
	status  Status

	// What to record (under mu): Start/Stop, the events going on, the end of the post-roll.
	manual    string
	open      map[string]event.Event
	postUntil time.Time
	events    []event.Event // kept for Events, oldest first
	wake      chan struct{} // a Start, Stop or event: Run looks again

	seg        *segment
	seq        int
	lastFree   time.Time
	subDropped uint64
	wrDropped  uint64
}

// segment is the file being written.
type segment struct {
	rel     string
	f       *os.File
	out     *syncWriter
	w       *mp4.Writer
	start   time.Time // capture time of its first sample
	last    time.Time
	tracks  []string
	index   map[uint8]int // stream track id → file track
	primary uint8         // the video track that cuts segments (0: audio only)
	trigger string
	events  []string // IDs of the events open while it was written (under the recorder's mu)
}

// syncWriter fsyncs the file every n Writes: each Write of an mp4.Writer after its header
// is one whole fragment.
type syncWriter struct {
	f      *os.File
	n, cnt int
	bytes  int64
}

func (s *syncWriter) Write(b []byte) (int, error) {
	n, err := s.f.Write(b)
	s.bytes += int64(n)
	if err != nil {
		return n, err
	}
	if s.cnt++; s.cnt >= s.n {
		s.cnt = 0
		if err := s.f.Sync(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// New prepares a recorder of src; Run records.
func New(src Source, opts Options, log *slog.Logger) (*Recorder, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{src: src, opts: opts, log: log, Now: time.Now, Free: freeSpace, IdleClose: 10 * time.Second,
		status: Status{Dir: opts.Dir, Mode: opts.Mode}, open: map[string]event.Event{}, wake: make(chan struct{}, 1)}, nil
}

// freeSpace is what statfs says unprivileged writers may still use.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("record: statfs: %w", err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Status returns a snapshot.
func (r *Recorder) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.Segments = len(r.entries)
	st.Bytes = 0
	for _, e := range r.entries {
		st.Bytes += e.Bytes
	}
	st.Dropped = r.subDropped + r.wrDropped
	st.Recording, _ = r.wantLocked(r.Now())
	st.Manual = r.manual
	st.OpenEvents = len(r.open)
	return st
}

// Segments returns the index: the closed segments kept, oldest first.
func (r *Recorder) Segments() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.entries)
}

// Run recovers the directory (torn tails truncated, the index made to match the files),
// then records until ctx ends, when it closes the current segment properly.
func (r *Recorder) Run(ctx context.Context) error {
	entries, err := reconcile(r.opts.Dir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.entries = entries
	r.mu.Unlock()
	r.loadEvents(entries)
	r.retain()
	defer func() {
		if err := r.closeSegment(); err != nil {
			r.log.Warn("record: closing the segment", "err", err)
		}
	}()
	for {
		changed := r.src.Changed()
		info, ok := r.src.Info()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
				continue
			}
		}
		if err := r.follow(ctx, info, changed); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// follow records one source until it changes (a new description, a producer gone) or ctx
// ends. The segment is closed either way: a new source starts a new segment.
func (r *Recorder) follow(ctx context.Context, info stream.Info, changed <-chan struct{}) error {
	defer func() {
		if err := r.closeSegment(); err != nil {
			r.log.Warn("record: closing the segment", "err", err)
		}
	}()
	var ids []uint8
	var tracks []mp4.Track
	var names []string
	index := map[uint8]int{}
	var primary uint8
	if v, ok := info.First(codec.Video); ok && (v.Codec == string(mp4.H264) || v.Codec == string(mp4.H265)) {
		primary = v.ID
		index[v.ID] = len(tracks)
		ids = append(ids, v.ID)
		tracks = append(tracks, mp4.Track{Codec: mp4.Codec(v.Codec), SampleDuration: frameDuration(v.FPS)})
		names = append(names, v.Codec)
	}
	if a, ok := info.First(codec.Audio); ok && slices.Contains([]mp4.Codec{mp4.Opus, mp4.PCMA, mp4.PCMU}, mp4.Codec(a.Codec)) {
		index[a.ID] = len(tracks)
		ids = append(ids, a.ID)
		tracks = append(tracks, mp4.Track{Codec: mp4.Codec(a.Codec), Channels: a.Channels})
		names = append(names, a.Codec)
	}
	if len(ids) == 0 {
		r.log.Warn("record: the source has no track a recording can hold", "source", info.Name)
		select {
		case <-ctx.Done():
		case <-changed:
		}
		return nil
	}
	var sub *stream.Subscriber
	unsubscribe := func() {
		if sub == nil {
			return
		}
		r.mu.Lock()
		r.subDropped += sub.Dropped()
		r.mu.Unlock()
		sub.Close()
		sub = nil
	}
	defer unsubscribe()
	idle := time.NewTimer(r.IdleClose)
	defer idle.Stop()
	until := time.NewTimer(time.Hour)
	defer until.Stop()
	// With ModeEvents the recorder reads the stream while it waits, and holds PreRoll of it
	// (from a keyframe) to begin an event's recording with: an event is known only once it
	// lasted --motion-min-duration, and its start must be in the recording.
	var pre preRoll
	defer pre.release()
	for {
		r.mu.Lock()
		want, change := r.wantLocked(r.Now())
		hold := r.opts.Mode == ModeEvents // SetOptions may change it
		r.mu.Unlock()
		if !hold {
			pre.release()
		}
		if !change.IsZero() {
			until.Reset(max(change.Sub(r.Now()), time.Millisecond))
		}
		var frames <-chan *stream.Frame
		switch {
		case (want || hold) && sub == nil:
			// A new subscription starts with the stream's cached pictures from the last
			// keyframe.
			sub = r.src.Subscribe(ids...)
			idle.Reset(r.IdleClose)
		case !want && !hold && sub != nil:
			unsubscribe()
			if err := r.closeSegment(); err != nil {
				return err
			}
		case !want && r.seg != nil:
			if err := r.closeSegment(); err != nil {
				return err
			}
		case want && len(pre.frames) > 0:
			// Recording begins: what was held first, in order.
			if err := r.writeAll(pre.take(), tracks, names, index, primary); err != nil {
				return err
			}
		}
		if sub != nil {
			frames = sub.Frames()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			return nil
		case <-r.wake:
		case <-until.C:
		case <-idle.C:
			if sub == nil {
				continue
			}
			// A stalled producer: close what we have; the next keyframe starts a new one.
			if err := r.closeSegment(); err != nil {
				return err
			}
			if primary != 0 {
				r.src.RequestKeyframe(primary)
			}
			idle.Reset(r.IdleClose)
		case f, ok := <-frames:
			if !ok {
				return nil
			}
			idle.Reset(r.IdleClose)
			r.mu.Lock()
			r.status.Frames++
			wanted, _ := r.wantLocked(r.Now())
			preRoll := r.opts.PreRoll
			r.mu.Unlock()
			if !wanted {
				pre.add(f, primary, preRoll)
				continue
			}
			// An event may have begun while this frame waited beside the wake-up: what was
			// held goes first, or the recording would start at this frame (a keyframe just
			// after the event was known) without its pre-roll.
			if err := r.writeAll(append(pre.take(), f), tracks, names, index, primary); err != nil {
				return err
			}
		}
	}
}

// preRoll holds the stream's latest frames, from the newest keyframe at least the pre-roll
// old (or the oldest one held), with a reference to each.
type preRoll struct {
	frames []*stream.Frame
	bytes  int
}

// maxPreRollBytes bounds what a pre-roll holds whatever its length (a stream with no keyframe
// for long): 16 MB is over 60 s of a 2 Mbit/s stream.
const maxPreRollBytes = 16 << 20

// add takes f (and the caller's reference to it), then lets go of what is older than needed.
func (p *preRoll) add(f *stream.Frame, primary uint8, keep time.Duration) {
	p.frames = append(p.frames, f)
	p.bytes += len(f.Data)
	newest := f.Capture
	// The cut: the last keyframe at least keep before the newest frame.
	cut := 0
	for i, g := range p.frames {
		if g.Keyframe && (primary == 0 || g.Track == primary) && time.Duration(newest-g.Capture) >= keep {
			cut = i
		}
	}
	for p.bytes > maxPreRollBytes && cut < len(p.frames)-1 {
		cut++ // over the bound: the oldest go even without a keyframe after them (the writer waits for one)
	}
	for _, g := range p.frames[:cut] {
		p.bytes -= len(g.Data)
		g.Release()
	}
	p.frames = slices.Delete(p.frames, 0, cut)
}

// take returns the held frames (the caller releases them) and empties the pre-roll.
func (p *preRoll) take() []*stream.Frame {
	out := p.frames
	p.frames, p.bytes = nil, 0
	return out
}

func (p *preRoll) release() {
	for _, f := range p.take() {
		f.Release()
	}
}

func frameDuration(fps float64) time.Duration {
	if fps <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / fps)
}

// segmentSlack: a keyframe this close to the segment length cuts (capture times jitter; a
// 30 fps clock in whole nanoseconds lands a hair short of 2 s at frame 60).
const segmentSlack = 10 * time.Millisecond

// writeAll writes fs in order and releases them all, also after an error.
func (r *Recorder) writeAll(fs []*stream.Frame, tracks []mp4.Track, names []string, index map[uint8]int, primary uint8) error {
	var err error
	for _, f := range fs {
		if err == nil {
			err = r.frame(f, tracks, names, index, primary)
		}
		f.Release()
	}
	return err
}

// frame writes one frame, opening and cutting segments at keyframes.
func (r *Recorder) frame(f *stream.Frame, tracks []mp4.Track, names []string, index map[uint8]int, primary uint8) error {
	capture := time.Unix(0, f.Capture)
	starts := primary == 0 || (f.Track == primary && f.Keyframe)
	if starts && (r.seg == nil || capture.Sub(r.seg.start) >= r.options().Segment-segmentSlack) {
		if err := r.closeSegment(); err != nil {
			return err
		}
		if !r.roomToRecord() {
			return nil
		}
		if err := r.openSegment(capture, tracks, names, index, primary); err != nil {
			r.setError(err)
			return nil // a full or failing disk pauses recording; it does not stop the device
		}
	}
	s := r.seg
	if s == nil {
		return nil
	}
	err := s.w.WriteSample(s.index[f.Track], mp4.Sample{Data: f.Data, Time: capture.Sub(s.start), Keyframe: f.Keyframe || f.Track != primary})
	if err != nil && !errors.Is(err, mp4.ErrSample) && !errors.Is(err, mp4.ErrParameterSets) {
		r.log.Warn("record: writing failed: segment closed", "segment", s.rel, "err", err)
		r.setError(err)
		r.abandonSegment()
		return nil
	}
	if capture.After(s.last) {
		s.last = capture
	}
	r.mu.Lock()
	r.status.CurrentBytes = s.out.bytes
	r.mu.Unlock()
	return nil
}

func (r *Recorder) setError(err error) {
	r.mu.Lock()
	r.status.Error = err.Error()
	r.mu.Unlock()
}

// openSegment creates the next segment under its final name.
func (r *Recorder) openSegment(start time.Time, tracks []mp4.Track, names []string, index map[uint8]int, primary uint8) error {
	var f *os.File
	var rel string
	for {
		r.seq++
		rel = segmentPath(start, r.seq)
		path := filepath.Join(r.opts.Dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue // another run's segment of the same millisecond: the next number
		}
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
		break
	}
	out := &syncWriter{f: f, n: r.opts.SyncEvery}
	w, err := mp4.NewWriter(out, tracks, mp4.Options{Created: start})
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("record: %w", err)
	}
	r.mu.Lock()
	r.seg = &segment{rel: rel, f: f, out: out, w: w, start: start, last: start, tracks: names, index: index, primary: primary,
		trigger: r.triggerLocked(), events: slices.Collect(maps.Keys(r.open))}
	r.status.Current, r.status.CurrentBytes, r.status.Error = rel, 0, ""
	r.mu.Unlock()
	return nil
}

// closeSegment ends the current segment: last fragment, fsync, close, index line, retention.
func (r *Recorder) closeSegment() error {
	s := r.seg
	if s == nil {
		return nil
	}
	err := s.w.Close()
	r.mu.Lock()
	r.seg = nil
	slices.Sort(s.events)
	r.wrDropped += uint64(s.w.Stats().Dropped)
	r.status.Current, r.status.CurrentBytes = "", 0
	r.mu.Unlock()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.setError(err)
		r.log.Warn("record: closing segment", "segment", s.rel, "err", err)
	}
	if s.out.bytes == 0 {
		// Nothing written (no keyframe came): no file to keep.
		os.Remove(s.f.Name())
		return nil
	}
	e, _, ok, rerr := recoverSegment(r.opts.Dir, s.rel) // exact bytes and duration, as the file has them
	if rerr != nil || !ok {
		os.Remove(s.f.Name())
		return rerr
	}
	e.Start = s.start.UTC()
	e.End = e.Start.Add(time.Duration(e.DurationMS) * time.Millisecond)
	e.Tracks = s.tracks
	e.Trigger, e.Events = s.trigger, s.events
	if err := appendIndex(r.opts.Dir, e); err != nil {
		r.setError(err)
		return nil
	}
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	r.retain()
	return nil
}

// abandonSegment closes a segment whose writes failed; the next start recovers it.
func (r *Recorder) abandonSegment() {
	if r.seg != nil {
		r.seg.f.Close()
	}
	r.mu.Lock()
	r.seg = nil
	r.status.Current, r.status.CurrentBytes = "", 0
	r.mu.Unlock()
}

// roomToRecord checks the free-space floor (at most every 5 s), deleting the oldest
// segments to keep it; false pauses recording.
func (r *Recorder) roomToRecord() bool {
	now := r.Now()
	r.mu.Lock()
	paused := r.status.Paused != ""
	r.mu.Unlock()
	if !paused && now.Sub(r.lastFree) < 5*time.Second && !r.lastFree.IsZero() {
		return true
	}
	r.lastFree = now
	r.retain()
	free, err := r.Free(r.opts.Dir)
	if err != nil {
		r.log.Warn("record: free space", "err", err)
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if free < int64(r.opts.MinFree) {
		if r.status.Paused == "" {
			r.log.Warn("record: paused: the disk is below its free-space floor with nothing left to delete",
				"free", Bytes(free), "min_free", r.opts.MinFree)
		}
		r.status.Paused = fmt.Sprintf("free space %s below the floor %s", Bytes(free), r.opts.MinFree)
		return false
	}
	if r.status.Paused != "" {
		r.log.Info("record: resumed", "free", Bytes(free))
	}
	r.status.Paused = ""
	return true
}

// retain deletes the oldest segments past MaxAge, beyond MaxSize in total, or while the
// free space is below MinFree, and rewrites the index when it deleted any.
func (r *Recorder) retain() {
	now := r.Now()
	r.mu.Lock()
	entries := slices.Clone(r.entries)
	r.mu.Unlock()
	var total int64
	for _, e := range entries {
		total += e.Bytes
	}
	free, ferr := r.Free(r.opts.Dir)
	r.mu.Lock()
	if ferr == nil {
		r.status.Free = free
	}
	r.mu.Unlock()
	n := 0
	for n < len(entries) {
		e := entries[n]
		opts := r.options()
		old := now.Sub(e.End) > opts.MaxAge
		big := total > int64(opts.MaxSize)
		low := ferr == nil && free < int64(opts.MinFree)
		if !old && !big && !low {
			break
		}
		path := filepath.Join(r.opts.Dir, filepath.FromSlash(e.Path))
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("record: retention", "segment", e.Path, "err", err)
			break
		}
		r.log.Debug("record: deleted", "segment", e.Path, "old", old, "over_size", big, "low_space", low)
		removeEmptyDirs(r.opts.Dir, filepath.Dir(path))
		total -= e.Bytes
		if low {
			if f, err := r.Free(r.opts.Dir); err == nil {
				free = f
			}
		}
		n++
	}
	if n == 0 {
		return
	}
	r.mu.Lock()
	r.entries = slices.Clone(r.entries[n:])
	kept := slices.Clone(r.entries)
	r.status.Free = free
	r.mu.Unlock()
	if err := writeIndex(r.opts.Dir, kept); err != nil {
		r.log.Warn("record: index", "err", err)
	}
}

// removeEmptyDirs removes dir and its parents up to root while they are empty.
func removeEmptyDirs(root, dir string) {
	for dir != root && len(dir) > len(root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// sampleEntries maps the sample entry box types this package's files use to codec names.
var sampleEntries = map[string]string{"avc1": "H264", "hvc1": "H265", "Opus": "opus", "mp4a": "AAC", "alaw": "PCMA", "ulaw": "PCMU"}

// fileTracks lists a file's codecs in track order, from the sample entries in its header.
func fileTracks(r io.ReaderAt, size int64) ([]string, error) {
	buf := make([]byte, min(size, 64<<10))
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	type hit struct {
		at    int
		codec string
	}
	var hits []hit
	for typ, name := range sampleEntries {
		if i := bytes.Index(buf, []byte(typ)); i >= 0 {
			hits = append(hits, hit{i, name})
		}
	}
	sort.Slice(hits, func(a, b int) bool { return hits[a].at < hits[b].at })
	out := []string{}
	for _, h := range hits {
		out = append(out, h.codec)
	}
	return out, nil
}
