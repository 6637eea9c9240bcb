package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors ReadFragments reports.
var (
	// ErrNotMP4: the file does not begin with an ftyp box.
	ErrNotMP4 = errors.New("mp4: not an MP4 file")
	// ErrNotFragmented: the file has no mvex in its moov, or media before its moov.
	ErrNotFragmented = errors.New("mp4: not a fragmented MP4 file")
	// ErrMalformed: a box is inconsistent (bad size, fields past its end, samples outside
	// the mdat, a track the moov does not declare).
	ErrMalformed = errors.New("mp4: malformed box")
	// ErrTorn: the file ends inside a box: what a crash during a write leaves.
	ErrTorn = errors.New("mp4: file ends inside a box")
)

// TailError reports that the file's end is not a sequence of complete fragments: the
// fragments ReadFragments returned with it are complete and usable, and Offset is where the
// rest begins (truncating the file there recovers it; 0 when even the header is incomplete).
type TailError struct {
	Offset int64
	Err    error // ErrTorn, or an error wrapping ErrMalformed
}

func (e *TailError) Error() string {
	return fmt.Sprintf("mp4: unusable tail from byte %d: %v", e.Offset, e.Err)
}

func (e *TailError) Unwrap() error { return e.Err }

// FragmentInfo describes one complete fragment (moof and its mdat).
type FragmentInfo struct {
	Sequence uint32          // mfhd sequence_number
	Offset   int64           // where the moof begins
	Size     int64           // bytes from the moof's start to the mdat's end
	Tracks   []FragmentTrack // one per traf, in file order
}

// FragmentTrack is one track's part of a fragment.
type FragmentTrack struct {
	ID        uint32
	Timescale uint32
	BaseTime  uint64 // tfdt baseMediaDecodeTime, ticks
	Duration  uint64 // sum of the sample durations, ticks
	Samples   int
	// Sync is the number of sync samples (keyframes; every sample of an audio track).
	Sync int
	// FirstSync reports whether the first sample is a sync sample: a player can start at
	// this fragment.
	FirstSync bool
}

// Start is the fragment's start time on this track.
func (t FragmentTrack) Start() time.Duration { return fromTicks64(t.BaseTime, t.Timescale) }

// End is the end time of the fragment's last sample on this track.
func (t FragmentTrack) End() time.Duration {
	return fromTicks64(t.BaseTime+t.Duration, t.Timescale)
}

func fromTicks64(tick uint64, ts uint32) time.Duration {
	if ts == 0 {
		return 0
	}
	t := uint64(ts)
	return time.Duration(tick/t*1e9 + tick%t*1e9/t)
}

// Bounds on what the reader loads or counts, so a hostile file cannot make it allocate or
// loop without end.
const (
	maxMoovSize   = 8 << 20
	maxMoofSize   = 16 << 20
	maxTrunCount  = 1 << 24
	maxReadTracks = 1024
)

// trackInfo is what the reader keeps of a moov track.
type trackInfo struct {
	id, timescale                  uint32
	defDuration, defSize, defFlags uint32 // trex
}

// ReadFragments lists the complete fragments of a fragmented MP4 file of size bytes, in
// file order. When the file does not end with a complete fragment (a crash mid-write, or
// garbage), it returns the complete ones together with a *TailError saying where the rest
// begins. Boxes other than moof+mdat between fragments (free, sidx, styp, …) are skipped.
func ReadFragments(r io.ReaderAt, size int64) ([]FragmentInfo, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size", ErrMalformed)
	}
	var tracks []trackInfo
	off := int64(0)
	// The header: ftyp first, then anything until moov.
	for first := true; ; first = false {
		h, err := readBoxHeader(r, off, size)
		if err != nil {
			if first && !errors.Is(err, ErrTorn) {
				return nil, ErrNotMP4
			}
			return nil, &TailError{Offset: 0, Err: err}
		}
		if first && h.typ != "ftyp" {
			return nil, ErrNotMP4
		}
		switch h.typ {
		case "moof", "mdat":
			return nil, ErrNotFragmented
		case "moov":
			if h.size > maxMoovSize {
				return nil, fmt.Errorf("%w: moov of %d bytes", ErrMalformed, h.size)
			}
			buf := make([]byte, h.size-int64(h.hdr))
			if _, err := r.ReadAt(buf, off+int64(h.hdr)); err != nil {
				return nil, &TailError{Offset: 0, Err: ErrTorn}
			}
			if tracks, err = parseMoov(buf); err != nil {
				return nil, err
			}
		}
		off += h.size
		if tracks != nil {
			break
		}
	}

	var frags []FragmentInfo
	var moofBuf []byte
	for off < size {
		h, err := readBoxHeader(r, off, size)
		if err != nil {
			return frags, &TailError{Offset: off, Err: err}
		}
		if h.typ != "moof" {
			off += h.size // a complete box of another kind: not part of any fragment
			continue
		}
		if h.size > maxMoofSize {
			return frags, &TailError{Offset: off, Err: fmt.Errorf("%w: moof of %d bytes", ErrMalformed, h.size)}
		}
		if n := int(h.size) - h.hdr; cap(moofBuf) < n {
			moofBuf = make([]byte, n)
		} else {
			moofBuf = moofBuf[:n]
		}
		if _, err := r.ReadAt(moofBuf, off+int64(h.hdr)); err != nil {
			return frags, &TailError{Offset: off, Err: ErrTorn}
		}
		mdatAt := off + h.size
		mh, err := readBoxHeader(r, mdatAt, size)
		if err != nil {
			return frags, &TailError{Offset: off, Err: err}
		}
		if mh.typ != "mdat" {
			return frags, &TailError{Offset: off, Err: fmt.Errorf("%w: %q after moof, want mdat", ErrMalformed, mh.typ)}
		}
		f, err := parseMoof(moofBuf, off, mdatAt+int64(mh.hdr), mdatAt+mh.size, tracks)
		if err != nil {
			return frags, &TailError{Offset: off, Err: err}
		}
		f.Offset, f.Size = off, mdatAt+mh.size-off
		frags = append(frags, f)
		off = mdatAt + mh.size
	}
	return frags, nil
}

// boxHeader is a box's type, total size (header included) and header length.
type boxHeader struct {
	typ  string
	size int64
	hdr  int
}

// readBoxHeader reads the header of the top-level box at off in a file of size bytes. It
// reports ErrTorn when the header or the box extends past the end, and ErrMalformed for a
// size smaller than the header. A size of 0 (to the end of the file) is taken as such.
func readBoxHeader(r io.ReaderAt, off, size int64) (boxHeader, error) {
	var b [16]byte
	if size-off < 8 {
		return boxHeader{}, ErrTorn
	}
	if _, err := r.ReadAt(b[:8], off); err != nil {
		return boxHeader{}, ErrTorn
	}
	h := boxHeader{typ: string(b[4:8]), size: int64(binary.BigEndian.Uint32(b[:4])), hdr: 8}
	switch h.size {
	case 0:
		h.size = size - off
	case 1:
		if size-off < 16 {
			return boxHeader{}, ErrTorn
		}
		if _, err := r.ReadAt(b[8:16], off+8); err != nil {
			return boxHeader{}, ErrTorn
		}
		large := binary.BigEndian.Uint64(b[8:16])
		if large > 1<<62 {
			return boxHeader{}, fmt.Errorf("%w: %q of %d bytes", ErrMalformed, h.typ, large)
		}
		h.size, h.hdr = int64(large), 16
	}
	if h.size < int64(h.hdr) {
		return boxHeader{}, fmt.Errorf("%w: %q of %d bytes", ErrMalformed, h.typ, h.size)
	}
	if h.size > size-off {
		return boxHeader{}, ErrTorn
	}
	return h, nil
}

// children iterates over the boxes inside a container's payload.
type children struct {
	b   []byte
	err error
}

// next returns the next child's type and payload; ok is false at the end or on an error.
func (c *children) next() (typ string, payload []byte, ok bool) {
	if c.err != nil || len(c.b) == 0 {
		return "", nil, false
	}
	if len(c.b) < 8 {
		c.err = fmt.Errorf("%w: %d stray bytes in a container", ErrMalformed, len(c.b))
		return "", nil, false
	}
	size := uint64(binary.BigEndian.Uint32(c.b))
	typ = string(c.b[4:8])
	hdr := uint64(8)
	switch size {
	case 0:
		size = uint64(len(c.b))
	case 1:
		if len(c.b) < 16 {
			c.err = fmt.Errorf("%w: short largesize", ErrMalformed)
			return "", nil, false
		}
		size, hdr = binary.BigEndian.Uint64(c.b[8:]), 16
	}
	if size < hdr || size > uint64(len(c.b)) {
		c.err = fmt.Errorf("%w: %q of %d bytes in %d", ErrMalformed, typ, size, len(c.b))
		return "", nil, false
	}
	payload, c.b = c.b[hdr:size], c.b[size:]
	return typ, payload, true
}

// fields reads big-endian fields from a box payload; errors are sticky.
type fields struct {
	b   []byte
	err bool
}

func (f *fields) take(n int) []byte {
	if f.err || len(f.b) < n {
		f.err = true
		return nil
	}
	v := f.b[:n]
	f.b = f.b[n:]
	return v
}

func (f *fields) u32() uint32 {
	if v := f.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (f *fields) u64() uint64 {
	if v := f.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (f *fields) skip(n int) { f.take(n) }

// parseMoov finds the tracks (ID, timescale) and their trex defaults; a moov without mvex
// is not fragmented.
func parseMoov(b []byte) ([]trackInfo, error) {
	var tracks []trackInfo
	fragmented := false
	c := children{b: b}
	for typ, p, ok := c.next(); ok; typ, p, ok = c.next() {
		switch typ {
		case "trak":
			t, err := parseTrak(p)
			if err != nil {
				return nil, err
			}
			if len(tracks) >= maxReadTracks {
				return nil, fmt.Errorf("%w: over %d tracks", ErrMalformed, maxReadTracks)
			}
			tracks = append(tracks, t)
		case "mvex":
			fragmented = true
			mc := children{b: p}
			for typ, p, ok := mc.next(); ok; typ, p, ok = mc.next() {
				if typ != "trex" {
					continue
				}
				f := fields{b: p}
				f.skip(4) // version, flags
				id := f.u32()
				f.skip(4) // default_sample_description_index
				dur, size, flags := f.u32(), f.u32(), f.u32()
				if f.err {
					return nil, fmt.Errorf("%w: short trex", ErrMalformed)
				}
				for i := range tracks {
					if tracks[i].id == id {
						tracks[i].defDuration, tracks[i].defSize, tracks[i].defFlags = dur, size, flags
					}
				}
			}
			if mc.err != nil {
				return nil, mc.err
			}
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if !fragmented {
		return nil, ErrNotFragmented
	}
	if len(tracks) == 0 {
		return nil, fmt.Errorf("%w: moov without tracks", ErrMalformed)
	}
	return tracks, nil
}

func parseTrak(b []byte) (trackInfo, error) {
	var t trackInfo
	c := children{b: b}
	for typ, p, ok := c.next(); ok; typ, p, ok = c.next() {
		switch typ {
		case "tkhd":
			f := fields{b: p}
			if v := f.take(4); v != nil && v[0] == 1 {
				f.skip(16) // 64-bit creation and modification times
			} else {
				f.skip(8)
			}
			t.id = f.u32()
			if f.err {
				return t, fmt.Errorf("%w: short tkhd", ErrMalformed)
			}
		case "mdia":
			mc := children{b: p}
			for typ, p, ok := mc.next(); ok; typ, p, ok = mc.next() {
				if typ != "mdhd" {
					continue
				}
				f := fields{b: p}
				if v := f.take(4); v != nil && v[0] == 1 {
					f.skip(16)
				} else {
					f.skip(8)
				}
				t.timescale = f.u32()
				if f.err {
					return t, fmt.Errorf("%w: short mdhd", ErrMalformed)
				}
			}
			if mc.err != nil {
				return t, mc.err
			}
		}
	}
	if c.err != nil {
		return t, c.err
	}
	if t.id == 0 || t.timescale == 0 {
		return t, fmt.Errorf("%w: trak without track ID or timescale", ErrMalformed)
	}
	return t, nil
}

// tfhd and trun flags (ISO/IEC 14496-12 8.8.7, 8.8.8).
const (
	tfhdBaseDataOffset   = 0x000001
	tfhdSampleDescIndex  = 0x000002
	tfhdDefaultDuration  = 0x000008
	tfhdDefaultSize      = 0x000010
	tfhdDefaultFlags     = 0x000020
	tfhdDefaultBaseMoof  = 0x020000
	trunDataOffset       = 0x000001
	trunFirstSampleFlags = 0x000004
	trunDuration         = 0x000100
	trunSize             = 0x000200
	trunFlags            = 0x000400
	trunCTO              = 0x000800
)

// parseMoof reads a moof payload. moofAt is the moof's offset in the file; the samples it
// describes must lie within [dataStart, dataEnd), the following mdat's payload.
func parseMoof(b []byte, moofAt, dataStart, dataEnd int64, tracks []trackInfo) (FragmentInfo, error) {
	var f FragmentInfo
	sawMfhd := false
	prevEnd := moofAt // where a traf without explicit base continues (14496-12 8.8.7.1)
	c := children{b: b}
	for typ, p, ok := c.next(); ok; typ, p, ok = c.next() {
		switch typ {
		case "mfhd":
			fl := fields{b: p}
			fl.skip(4)
			f.Sequence = fl.u32()
			if fl.err {
				return f, fmt.Errorf("%w: short mfhd", ErrMalformed)
			}
			sawMfhd = true
		case "traf":
			if len(f.Tracks) >= maxReadTracks {
				return f, fmt.Errorf("%w: over %d trafs", ErrMalformed, maxReadTracks)
			}
			ft, end, err := parseTraf(p, moofAt, prevEnd, dataStart, dataEnd, tracks)
			if err != nil {
				return f, err
			}
			prevEnd = end
			f.Tracks = append(f.Tracks, ft)
		}
	}
	if c.err != nil {
		return f, c.err
	}
	if !sawMfhd {
		return f, fmt.Errorf("%w: moof without mfhd", ErrMalformed)
	}
	return f, nil
}

// parseTraf reads one traf and checks that its samples lie in the mdat; it returns where its
// data ends.
func parseTraf(b []byte, moofAt, prevEnd, dataStart, dataEnd int64, tracks []trackInfo) (FragmentTrack, int64, error) {
	var ft FragmentTrack
	var ti *trackInfo
	var flags uint32
	var base int64
	var defDuration, defSize, defFlags uint32
	sawTfhd := false
	next := int64(0) // where the next trun's data begins when it gives no data_offset
	c := children{b: b}
	for typ, p, ok := c.next(); ok; typ, p, ok = c.next() {
		switch typ {
		case "tfhd":
			fl := fields{b: p}
			flags = fl.u32() & 0xffffff
			id := fl.u32()
			for i := range tracks {
				if tracks[i].id == id {
					ti = &tracks[i]
				}
			}
			if ti == nil {
				return ft, 0, fmt.Errorf("%w: traf for track %d the moov does not declare", ErrMalformed, id)
			}
			ft.ID, ft.Timescale = id, ti.timescale
			defDuration, defSize, defFlags = ti.defDuration, ti.defSize, ti.defFlags
			switch {
			case flags&tfhdBaseDataOffset != 0:
				base = int64(fl.u64() & (1<<62 - 1))
			case flags&tfhdDefaultBaseMoof != 0:
				base = moofAt
			default:
				base = prevEnd
			}
			if flags&tfhdSampleDescIndex != 0 {
				fl.skip(4)
			}
			if flags&tfhdDefaultDuration != 0 {
				defDuration = fl.u32()
			}
			if flags&tfhdDefaultSize != 0 {
				defSize = fl.u32()
			}
			if flags&tfhdDefaultFlags != 0 {
				defFlags = fl.u32()
			}
			if fl.err {
				return ft, 0, fmt.Errorf("%w: short tfhd", ErrMalformed)
			}
			sawTfhd = true
			next = base
		case "tfdt":
			fl := fields{b: p}
			if v := fl.take(4); v != nil && v[0] == 1 {
				ft.BaseTime = fl.u64()
			} else {
				ft.BaseTime = uint64(fl.u32())
			}
			if fl.err {
				return ft, 0, fmt.Errorf("%w: short tfdt", ErrMalformed)
			}
		case "trun":
			if !sawTfhd {
				return ft, 0, fmt.Errorf("%w: trun before tfhd", ErrMalformed)
			}
			fl := fields{b: p}
			tf := fl.u32() & 0xffffff
			count := fl.u32()
			start := next
			if tf&trunDataOffset != 0 {
				start = base + int64(int32(fl.u32()))
			}
			firstFlags, hasFirst := defFlags, false
			if tf&trunFirstSampleFlags != 0 {
				firstFlags, hasFirst = fl.u32(), true
			}
			per := 0
			for _, bit := range [...]uint32{trunDuration, trunSize, trunFlags, trunCTO} {
				if tf&bit != 0 {
					per += 4
				}
			}
			if fl.err || count > maxTrunCount || (per > 0 && uint64(count)*uint64(per) > uint64(len(fl.b))) {
				return ft, 0, fmt.Errorf("%w: trun of %d samples in %d bytes", ErrMalformed, count, len(p))
			}
			var bytes uint64
			if per == 0 {
				// Every sample takes the defaults: no need to walk them.
				bytes = uint64(count) * uint64(defSize)
				ft.Duration += uint64(count) * uint64(defDuration)
				if count > 0 {
					sync := !nonSync(firstFlags)
					ft.Sync += boolInt(sync)
					if ft.Samples == 0 {
						ft.FirstSync = sync
					}
					if !nonSync(defFlags) {
						ft.Sync += int(count) - 1
					}
				}
			}
			for i := uint32(0); per > 0 && i < count; i++ {
				dur, size, sflags := defDuration, defSize, defFlags
				if i == 0 && hasFirst {
					sflags = firstFlags
				}
				if tf&trunDuration != 0 {
					dur = fl.u32()
				}
				if tf&trunSize != 0 {
					size = fl.u32()
				}
				if tf&trunFlags != 0 {
					sflags = fl.u32()
				}
				if tf&trunCTO != 0 {
					fl.skip(4)
				}
				ft.Duration += uint64(dur)
				bytes += uint64(size)
				sync := !nonSync(sflags)
				if sync {
					ft.Sync++
				}
				if ft.Samples == 0 && i == 0 {
					ft.FirstSync = sync
				}
			}
			if count > 0 && (start < dataStart || bytes > uint64(dataEnd-start)) {
				return ft, 0, fmt.Errorf("%w: track %d samples at %d+%d outside mdat data %d–%d",
					ErrMalformed, ft.ID, start, bytes, dataStart, dataEnd)
			}
			ft.Samples += int(count)
			next = start + int64(bytes)
		}
	}
	if c.err != nil {
		return ft, 0, c.err
	}
	if !sawTfhd {
		return ft, 0, fmt.Errorf("%w: traf without tfhd", ErrMalformed)
	}
	return ft, next, nil
}

// nonSync reports sample_is_non_sync_sample in sample flags.
func nonSync(flags uint32) bool { return flags&0x00010000 != 0 }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
