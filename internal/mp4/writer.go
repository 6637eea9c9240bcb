package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/p2pcast/p2pcast/internal/media"
)

// ErrClosed is returned by a Writer used after Close.
var ErrClosed = errors.New("mp4: writer closed")

// Limits that bound what one fragment holds, so that a stream without keyframes or with
// absurd samples cannot make the Writer buffer without end, and so that the reader can bound
// what it accepts.
const (
	// MaxSampleSize bounds one sample (the same 8 MiB as media.DefaultMaxAU).
	MaxSampleSize = media.DefaultMaxAU
	// maxFragmentBytes: a fragment is cut before it would grow past this.
	maxFragmentBytes = 32 << 20
	// maxFragmentSamples: a fragment is cut when a track has this many samples in it.
	maxFragmentSamples = 1 << 16
	// maxBackStep: a timestamp at most this far behind its predecessor is jitter and is
	// clamped; further back is a clock step and the track's timeline is rebased.
	maxBackStep = 200 * time.Millisecond
	// maxTimescale keeps tick arithmetic and 32-bit sample durations far from overflow.
	maxTimescale = 1_000_000
)

// Options tune a Writer; zero values take the defaults noted.
type Options struct {
	// FragmentDuration is how long a fragment lasts at least: a new one starts at the first
	// keyframe of the first video track once the pending one spans this long, or nearly (a
	// keyframe up to 10 ms early, capture clock jitter, counts), and in audio-only files at
	// the first sample past it. It bounds what a crash loses. Default 1 s.
	FragmentDuration time.Duration
	// MaxFragmentDuration cuts a fragment even without a keyframe once it spans this long
	// (a camera with very long GOPs). Default 10 × FragmentDuration.
	MaxFragmentDuration time.Duration
	// MaxGap is the longest step forward between two samples of a track kept as it is: the
	// earlier sample lasts until the later one (a still desktop sends no frames; its picture
	// stands until the next), so the tracks stay in sync. A longer step (a clock that
	// jumped) is closed up: the track continues one sample duration after its last sample,
	// and Stats.Rebased counts it. Default 10 minutes, at most an hour.
	MaxGap time.Duration
	// Created is the creation time recorded in mvhd, tkhd and mdhd (zero: none).
	Created time.Time
}

// Sample is one access unit or audio packet.
type Sample struct {
	// Data is an H.264/H.265 access unit in Annex-B form (stored as length-prefixed NAL
	// units, access unit delimiters and filler dropped), or one audio packet. The Writer
	// copies it: the caller may reuse Data once WriteSample returns.
	Data []byte
	// Time is the capture time from the stream start. The file's time zero is the first
	// sample it accepts (see Writer.Origin), so a recording segment starts at 0 whatever
	// its place in the stream.
	Time time.Duration
	// Keyframe marks a video access unit a decoder can start at (IDR / IRAP).
	Keyframe bool
}

// Stats counts what a Writer did.
type Stats struct {
	Fragments int64 // moof+mdat pairs written
	Samples   int64 // samples written into fragments
	Bytes     int64 // bytes written, header included
	// Dropped samples: video before its track's first keyframe, anything before the header
	// could be written (parameter sets still unknown), samples before the file's time zero.
	Dropped int64
	// Clamped timestamps: not after their predecessor (jitter), placed one tick after it.
	Clamped int64
	// Rebased tracks: a step forward over MaxGap, or back by more than 200 ms (a clock
	// step, which every track sees alike); the track's timeline continues from its last
	// sample.
	Rebased int64
}

// Writer writes one fragmented MP4 file. It is not safe for concurrent use.
type Writer struct {
	w      io.Writer
	opts   Options
	tracks []track
	// primary is the track whose keyframes (or, audio only, whose samples) cut fragments.
	primary int

	headerDone bool
	originSet  bool
	origin     time.Duration
	sequence   uint32
	// fragStart is the file time of the first sample added since the last fragment was cut.
	fragStart    time.Duration
	fragStartSet bool
	pendingBytes int // sample bytes buffered over all tracks

	// pageSize is the granularity at which a killed write(2) stops (see padding).
	pageSize int

	out    boxBuf // the header, then each fragment, built here and written with one Write
	stats  Stats
	err    error // sticky write error
	closed bool
}

// track is a Track's state in a Writer.
type track struct {
	cfg           Track
	id            uint32
	video         bool
	width, height int
	ps            [][]byte // parameter sets, once known
	record        []byte   // avcC / hvcC payload
	started       bool     // video: the first keyframe was accepted

	offset    int64 // ticks added to raw times by rebases
	lastDelta int64 // the last sample duration taken from timestamps, ticks
	held      bool  // the last entry of samples waits for its successor's time
	// carried: the held sample was already pending when the last fragment was written.
	carried bool
	// ended: the track's last sample was written with its nominal duration and ends at end.
	ended bool
	end   int64

	// The pending fragment: samples in order, their bytes (length-prefixed NAL units for
	// video) back to back in data.
	samples []sampleRec
	data    []byte
}

type sampleRec struct {
	tick  int64 // decode time in the track's timescale, file time
	dur   uint32
	size  uint32
	flags uint32
}

// Sample flags (ISO/IEC 14496-12 8.8.3.1): sample_depends_on and sample_is_non_sync_sample.
const (
	flagsSync    = 0x02000000 // depends on no other sample
	flagsNonSync = 0x01010000 // depends on others, not a sync sample
)

// NewWriter starts a file on w with tracks (track n has ID n+1 in the file). It writes the
// header (ftyp, moov) at once when every video track's parameter sets are given, otherwise
// with the first sample written after each video track has shown a keyframe carrying them.
// w is taken to be a new file written from its first byte (see Writer.padding for why the
// offset matters).
func NewWriter(w io.Writer, tracks []Track, opts Options) (*Writer, error) {
	if len(tracks) == 0 {
		return nil, ErrNoTracks
	}
	if len(tracks) > 255 {
		return nil, fmt.Errorf("%w: %d tracks", ErrTrack, len(tracks))
	}
	if opts.FragmentDuration <= 0 {
		opts.FragmentDuration = time.Second
	}
	if opts.MaxFragmentDuration <= 0 {
		opts.MaxFragmentDuration = 10 * opts.FragmentDuration
	}
	opts.MaxFragmentDuration = max(opts.MaxFragmentDuration, opts.FragmentDuration)
	if opts.MaxGap <= 0 {
		opts.MaxGap = 10 * time.Minute
	}
	if opts.MaxGap > time.Hour {
		// Sample durations are 32-bit: an hour fits at any timescale up to maxTimescale.
		return nil, fmt.Errorf("%w: MaxGap %v over an hour", ErrTrack, opts.MaxGap)
	}
	wr := &Writer{w: w, opts: opts, tracks: make([]track, len(tracks)), primary: -1, pageSize: os.Getpagesize()}
	for i, tc := range tracks {
		cfg, err := tc.normalize()
		if err != nil {
			return nil, fmt.Errorf("track %d: %w", i, err)
		}
		if cfg.Timescale > maxTimescale {
			return nil, fmt.Errorf("%w: track %d timescale %d", ErrTrack, i, cfg.Timescale)
		}
		t := &wr.tracks[i]
		t.cfg, t.id, t.video = cfg, uint32(i+1), cfg.Codec.IsVideo()
		if t.video && wr.primary < 0 {
			wr.primary = i
		}
		if t.video && len(cfg.ParameterSets) > 0 {
			if err := t.setParameterSets(cfg.ParameterSets); err != nil {
				return nil, fmt.Errorf("track %d: %w", i, err)
			}
		}
	}
	if wr.primary < 0 {
		wr.primary = 0
	}
	if wr.ready() {
		if err := wr.writeHeader(); err != nil {
			return nil, err
		}
	}
	return wr, nil
}

// setParameterSets checks parameter sets and keeps copies.
func (t *track) setParameterSets(ps [][]byte) error {
	cfg, err := configure(t.cfg.Codec, ps)
	if err != nil {
		return err
	}
	t.ps = make([][]byte, len(ps))
	for i, p := range ps {
		t.ps[i] = append([]byte(nil), p...)
	}
	t.record = cfg.record
	t.width, t.height = cfg.width, cfg.height
	if t.cfg.Width > 0 && t.cfg.Height > 0 {
		t.width, t.height = t.cfg.Width, t.cfg.Height
	}
	return nil
}

// ready reports whether the header can be written: every video track has parameter sets.
func (w *Writer) ready() bool {
	for i := range w.tracks {
		if w.tracks[i].video && w.tracks[i].ps == nil {
			return false
		}
	}
	return true
}

func (w *Writer) writeHeader() error {
	w.out.b = w.out.b[:0]
	w.appendHeader(&w.out)
	w.headerDone = true
	return w.write(w.out.b)
}

func (w *Writer) write(b []byte) error {
	n, err := w.w.Write(b)
	w.stats.Bytes += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("mp4: write: %w", err)
		return w.err
	}
	return nil
}

// Origin returns the stream time that is the file's time zero: the Time of the first sample
// the Writer accepted (ok false before that).
func (w *Writer) Origin() (origin time.Duration, ok bool) { return w.origin, w.originSet }

// Stats returns the counters so far.
func (w *Writer) Stats() Stats { return w.stats }

// WriteSample adds a sample to track (an index into the tracks given to NewWriter). It cuts
// and writes a fragment when the sample starts a new one. A sample is stored once its
// successor on the same track is known, since its duration is the step to that successor's
// time; Close gives the last sample of each track a nominal duration. Errors wrapping
// ErrSample or ErrParameterSets concern that sample only; a write error is returned again by
// every later call.
func (w *Writer) WriteSample(track int, s Sample) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	if track < 0 || track >= len(w.tracks) {
		return fmt.Errorf("%w: no track %d", ErrSample, track)
	}
	t := &w.tracks[track]
	if len(s.Data) == 0 || len(s.Data) > MaxSampleSize {
		return fmt.Errorf("%w: %d bytes", ErrSample, len(s.Data))
	}
	size := len(s.Data)
	if t.video {
		if !media.HasStartCode(s.Data) {
			return fmt.Errorf("%w: not Annex-B", ErrSample)
		}
		if size = t.storedSize(s.Data); size == 0 {
			return fmt.Errorf("%w: no NAL unit to store", ErrSample)
		}
		if size > MaxSampleSize {
			return fmt.Errorf("%w: %d bytes stored", ErrSample, size)
		}
	}

	if t.video && !t.started {
		if !s.Keyframe {
			w.stats.Dropped++
			return nil
		}
		if t.ps == nil {
			if err := t.setParameterSets(parameterSets(t.cfg.Codec, s.Data)); err != nil {
				w.stats.Dropped++
				return err
			}
		}
	}
	if !w.headerDone {
		if !w.ready() {
			w.stats.Dropped++
			return nil
		}
		if err := w.writeHeader(); err != nil {
			return err
		}
	}

	if !w.originSet {
		w.origin, w.originSet = s.Time, true
	}
	ts := t.cfg.Timescale
	raw := toTicks(s.Time-w.origin, ts) + t.offset
	tick := raw
	switch {
	case t.held:
		prev := &t.samples[len(t.samples)-1]
		delta := raw - prev.tick
		switch {
		case delta > toTicks(w.opts.MaxGap, ts) || delta < -toTicks(maxBackStep, ts):
			tick = prev.tick + t.nominal(t.data[len(t.data)-int(prev.size):])
			t.offset += tick - raw
			w.stats.Rebased++
		case delta <= 0:
			tick = prev.tick + 1
			w.stats.Clamped++
		default:
			t.lastDelta = delta
		}
		prev.dur = uint32(tick - prev.tick)
		t.held = false
	case t.ended:
		// The track's last sample went out with its nominal duration (see flush): continue
		// after it, leaving a gap when this one comes later.
		switch delta := raw - t.end; {
		case delta > toTicks(w.opts.MaxGap, ts) || delta < -toTicks(maxBackStep, ts):
			tick = t.end
			t.offset += tick - raw
			w.stats.Rebased++
		case delta < 0:
			tick = t.end
			w.stats.Clamped++
		}
		t.ended = false
	case raw < 0:
		// Before the file's time zero (an audio packet captured just before the video
		// keyframe the file starts at, arriving after it).
		w.stats.Dropped++
		return nil
	}
	t.started = true

	now := fromTicks(tick, ts)
	if w.fragStartSet {
		span := now - w.fragStart
		// At the first keyframe of the primary track past FragmentDuration (or a little
		// before: keyframes every FragmentDuration come on a capture clock, a few ms either
		// side, and one that came 1 ms short would double that fragment); by time when the
		// primary track is audio, or idle (a still desktop) so that the other tracks still get
		// cut.
		fd := w.opts.FragmentDuration
		cut := track == w.primary && t.video && s.Keyframe && span >= fd-keyframeEarly(fd) ||
			track == w.primary && !t.video && span >= fd ||
			track != w.primary && span >= fd && w.idle(w.primary, now)
		cut = cut || span >= w.opts.MaxFragmentDuration
		cut = cut || w.pendingBytes+size > maxFragmentBytes || len(t.samples) >= maxFragmentSamples
		if cut {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}

	flags := uint32(flagsSync)
	if t.video && !s.Keyframe {
		flags = flagsNonSync
	}
	if t.video {
		t.appendNALs(s.Data)
	} else {
		t.data = append(t.data, s.Data...)
	}
	t.samples = append(t.samples, sampleRec{tick: tick, size: uint32(size), flags: flags})
	t.held, t.carried = true, false
	w.pendingBytes += size
	if !w.fragStartSet {
		w.fragStart, w.fragStartSet = now, true
	}
	return nil
}

// keyframeEarly is how much sooner than a fragment's duration a keyframe may come and still
// start the next fragment: less than a frame at up to 60 fps.
func keyframeEarly(fragment time.Duration) time.Duration {
	return min(10*time.Millisecond, fragment/10)
}

// idle reports whether track i has had no sample for FragmentDuration before now.
func (w *Writer) idle(i int, now time.Duration) bool {
	t := &w.tracks[i]
	var last int64
	switch {
	case t.held:
		last = t.samples[len(t.samples)-1].tick
	case t.ended:
		last = t.end
	default:
		return true
	}
	return now-fromTicks(last, t.cfg.Timescale) >= w.opts.FragmentDuration
}

// storedSize is the size of an Annex-B access unit once stored length-prefixed.
func (t *track) storedSize(au []byte) int {
	n := 0
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if !skipNAL(t.cfg.Codec, nalType(t.cfg.Codec, nal)) {
			n += 4 + len(nal)
		}
	}
	return n
}

// appendNALs stores an Annex-B access unit as 4-byte length-prefixed NAL units.
func (t *track) appendNALs(au []byte) {
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if !skipNAL(t.cfg.Codec, nalType(t.cfg.Codec, nal)) {
			t.data = binary.BigEndian.AppendUint32(t.data, uint32(len(nal)))
			t.data = append(t.data, nal...)
		}
	}
}

// nominal is the duration, in ticks, given to a sample whose successor's time does not tell
// it: the last one at Close, or the one before a rebase. Audio packets know their own
// length; video takes the last step between frames, or the track's SampleDuration.
func (t *track) nominal(data []byte) int64 {
	ts := int64(t.cfg.Timescale)
	var d int64
	switch t.cfg.Codec {
	case Opus:
		d = int64(opusSamples(data)) * ts / 48000
	case AAC:
		d = 1024 * ts / int64(t.cfg.SampleRate)
	case PCMA, PCMU:
		d = int64(len(data)/t.cfg.Channels) * ts / int64(t.cfg.SampleRate)
	}
	if d <= 0 {
		d = t.lastDelta
	}
	if d <= 0 {
		d = toTicks(t.cfg.SampleDuration, t.cfg.Timescale)
	}
	return max(d, 1)
}

// finish gives the held sample its nominal duration.
func (t *track) finish() {
	last := &t.samples[len(t.samples)-1]
	last.dur = uint32(t.nominal(t.data[len(t.data)-int(last.size):]))
	t.held, t.ended, t.end = false, true, last.tick+int64(last.dur)
}

// Flush writes the pending fragment: every sample whose duration is known, i.e. all but the
// last of each track. It does nothing when there is none (or before the header).
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return w.flush()
}

// Close gives the last sample of each track its nominal duration, writes the last fragment
// and ends the file. It does not close the underlying io.Writer. A second Close does
// nothing.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if w.err != nil {
		return w.err
	}
	for i := range w.tracks {
		if w.tracks[i].held {
			w.tracks[i].finish()
		}
	}
	err := w.flush()
	w.closed = true
	return err
}

// flush builds moof+mdat for the samples with known durations and writes them with one
// Write, so that a crash leaves either the whole fragment or a torn tail that
// ReadFragments recognises.
func (w *Writer) flush() error {
	if !w.headerDone {
		return nil
	}
	for i := range w.tracks {
		// An audio track that had nothing new since the last fragment (its source stopped)
		// gives its held packet the packet's own duration rather than keep it for a
		// successor that may never come. Video keeps waiting: a still desktop sends no
		// frames, and its last one lasts until the next.
		t := &w.tracks[i]
		if t.held && !t.video && t.carried {
			t.finish()
		}
	}
	total := 0
	for i := range w.tracks {
		total += w.tracks[i].ready()
	}
	if total == 0 {
		return nil
	}
	w.sequence++
	b := &w.out
	b.b = b.b[:0]
	moof := b.open("moof")
	mfhd := b.openFull("mfhd", 0, 0)
	b.u32(w.sequence)
	b.close(mfhd)
	// Where each traf's trun data_offset goes, patched once the moof's size is known.
	var offsetAt [256]int
	dataBytes := 0
	for i := range w.tracks {
		t := &w.tracks[i]
		n := t.ready()
		if n == 0 {
			continue // a track with nothing in this fragment has no traf
		}
		traf := b.open("traf")
		tfhd := b.openFull("tfhd", 0, 0x020000) // default-base-is-moof
		b.u32(t.id)
		b.close(tfhd)
		tfdt := b.openFull("tfdt", 1, 0)
		b.u64(uint64(t.samples[0].tick))
		b.close(tfdt)
		// data-offset, sample duration, size and flags present; composition offsets are
		// absent (all 0: live encoders here send no B-frames, decode order is display order).
		trun := b.openFull("trun", 0, 0x000701)
		b.u32(uint32(n))
		offsetAt[i] = len(b.b)
		b.u32(0)
		for _, s := range t.samples[:n] {
			b.u32(s.dur)
			b.u32(s.size)
			b.u32(s.flags)
			dataBytes += int(s.size)
		}
		b.close(trun)
		b.close(traf)
	}
	b.close(moof)
	moofSize := len(b.b)
	if pad := w.padding(moofSize); pad > 0 {
		// Move the moof behind a free box that ends at a page boundary.
		b.zeros(pad)
		copy(b.b[pad:], b.b[:moofSize])
		clear(b.b[:pad])
		binary.BigEndian.PutUint32(b.b, uint32(pad))
		copy(b.b[4:], "free")
		for i := range w.tracks {
			offsetAt[i] += pad
		}
	}
	hdr := boxHeaderSize(uint64(dataBytes))
	offset := moofSize + hdr
	for i := range w.tracks {
		t := &w.tracks[i]
		n := t.ready()
		if n == 0 {
			continue
		}
		b.patch32(offsetAt[i], uint32(offset))
		offset += t.readyBytes(n)
	}
	b.b = appendBoxHeader(b.b, "mdat", uint64(dataBytes))
	for i := range w.tracks {
		t := &w.tracks[i]
		if n := t.ready(); n > 0 {
			b.bytes(t.data[:t.readyBytes(n)])
		}
	}
	if err := w.write(b.b); err != nil {
		return err
	}
	w.stats.Fragments++
	w.stats.Samples += int64(total)

	// Keep each track's held sample as the start of the next fragment.
	w.pendingBytes = 0
	for i := range w.tracks {
		t := &w.tracks[i]
		n := t.ready()
		cut := t.readyBytes(n)
		t.data = t.data[:copy(t.data, t.data[cut:])]
		t.samples = t.samples[:copy(t.samples, t.samples[n:])]
		t.carried = t.held
		w.pendingBytes += len(t.data)
	}
	w.fragStartSet = false
	return nil
}

// padding returns the size of the free box to write before a moof of moofSize bytes so that
// the moof does not straddle a page boundary of the file (0: none needed).
//
// When a process is killed in the middle of a write(2) to a regular file, Linux stops
// copying at a page boundary of the file (and so does a full disk), so the file then ends at
// a page boundary. A moof within one page is therefore never torn: the tail is a torn free
// box or a torn mdat, which players skip or read up to the cut, whereas a torn moof makes
// ffmpeg (5.1) refuse the whole file. A moof larger than a page (over ~300 samples in a
// fragment) cannot be protected this way. The cost is half a moof per fragment on average.
func (w *Writer) padding(moofSize int) int {
	page := int64(w.pageSize)
	if page <= 0 || int64(moofSize) > page {
		return 0
	}
	pos := w.stats.Bytes
	if pos%page+int64(moofSize) <= page {
		return 0
	}
	pad := page - pos%page
	if pad < 8 { // a free box needs its header
		pad += page
	}
	return int(pad)
}

// ready is how many samples of the pending fragment have their duration.
func (t *track) ready() int {
	if t.held {
		return len(t.samples) - 1
	}
	return len(t.samples)
}

// readyBytes is the size of the first n pending samples.
func (t *track) readyBytes(n int) int {
	size := 0
	for _, s := range t.samples[:n] {
		size += int(s.size)
	}
	return size
}

// toTicks converts d to ticks of a timescale ts, rounding to the nearest tick; ticks are
// always computed from the time since the file's start, so rounding never accumulates.
func toTicks(d time.Duration, ts uint32) int64 {
	sec, rem := int64(d)/1e9, int64(d)%1e9
	q := rem * int64(ts)
	if q >= 0 {
		q = (q + 5e8) / 1e9
	} else {
		q = (q - 5e8) / 1e9
	}
	return sec*int64(ts) + q
}

// fromTicks converts ticks of a timescale ts to a duration.
func fromTicks(tick int64, ts uint32) time.Duration {
	t := int64(ts)
	return time.Duration(tick/t*1e9 + tick%t*1e9/t)
}
