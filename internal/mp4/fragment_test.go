package mp4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"slices"
	"testing"
	"time"
)

// Synthetic H.264: the parameter sets of a 320x180 baseline stream (x264) and access units
// whose slice data is filler. Not decodable, but exactly what the Writer's bookkeeping sees;
// the tests that need a decoder use ffmpeg's streams.
var (
	testSPS, _ = hex.DecodeString("6742c00dd901419f9f0110000003001000000303c0f142a480")
	testPPS, _ = hex.DecodeString("68cb83cb20")
)

func syntheticAU(key bool, size int) []byte {
	au := []byte{0, 0, 0, 1}
	if key {
		au = append(au, testSPS...)
		au = append(au, 0, 0, 0, 1)
		au = append(au, testPPS...)
		au = append(au, 0, 0, 0, 1, 0x65)
	} else {
		au = append(au, 0x41)
	}
	return append(au, bytes.Repeat([]byte{0xaa}, size)...)
}

// opusPacket is a 20 ms CELT packet (config 31, one frame).
var opusPacket = append([]byte{31 << 3}, bytes.Repeat([]byte{0x55}, 60)...)

// memFile is an in-memory file for the Writer.
type memFile struct{ bytes.Buffer }

func (m *memFile) fragments(t testing.TB) []FragmentInfo {
	t.Helper()
	frags, err := ReadFragments(bytes.NewReader(m.Bytes()), int64(m.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return frags
}

func newTestWriter(t testing.TB, w io.Writer, opts Options, tracks ...Track) *Writer {
	t.Helper()
	wr, err := NewWriter(w, tracks, opts)
	if err != nil {
		t.Fatal(err)
	}
	return wr
}

func mustWrite(t testing.TB, w *Writer, track int, s Sample) {
	t.Helper()
	if err := w.WriteSample(track, s); err != nil {
		t.Fatal(err)
	}
}

func frameTime(i int) time.Duration { return time.Duration(i) * time.Second / 30 }

// TestCutsAtKeyframes: a fragment ends at the first keyframe once it spans
// FragmentDuration, whatever the GOP, and every fragment starts with a keyframe.
func TestCutsAtKeyframes(t *testing.T) {
	keyAt := map[int]bool{0: true, 10: true, 40: true, 45: true, 100: true, 101: true, 170: true}
	var f memFile
	w := newTestWriter(t, &f, Options{}, Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}})
	for i := range 200 {
		mustWrite(t, w, 0, Sample{Data: syntheticAU(keyAt[i], 500), Time: frameTime(i), Keyframe: keyAt[i]})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frags := f.fragments(t)
	checkFragments(t, f.Bytes(), frags, 1)
	// From 0: 10 and 15 are under 1 s; 40 is the first keyframe at ≥ 30 frames. From 40:
	// 45 too soon, 100 is. From 100: 101 too soon, 170.
	wantStarts := []uint64{0, 40 * 3000, 100 * 3000, 170 * 3000}
	if len(frags) != len(wantStarts) {
		t.Fatalf("%d fragments, want %d", len(frags), len(wantStarts))
	}
	for i, fr := range frags {
		if fr.Tracks[0].BaseTime != wantStarts[i] {
			t.Errorf("fragment %d starts at %d, want %d", i, fr.Tracks[0].BaseTime, wantStarts[i])
		}
	}
	last := frags[len(frags)-1].Tracks[0]
	if end := last.BaseTime + last.Duration; end != 200*3000 {
		t.Errorf("file ends at %d, want %d (the last frame lasts as long as the one before)", end, 200*3000)
	}
	if s := w.Stats(); s.Samples != 200 || s.Fragments != 4 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestKeyframeOnAJitteryClock: a GOP as long as FragmentDuration, timed by a capture clock a
// few ms either side of the schedule, cuts at every keyframe: one that came early by less than
// keyframeEarly must not double its fragment (they were 1 or 2 s, as the clock fell).
func TestKeyframeOnAJitteryClock(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{}, Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}})
	for i := range 300 {
		// -4, -1, +2, +5, -4, … ms: every other keyframe comes early.
		jitter := time.Duration(i%4*3-4) * time.Millisecond
		key := i%30 == 0
		mustWrite(t, w, 0, Sample{Data: syntheticAU(key, 300), Time: frameTime(i) + jitter, Keyframe: key})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frags := f.fragments(t)
	checkFragments(t, f.Bytes(), frags, 1)
	if len(frags) != 10 {
		t.Fatalf("%d fragments, want 10 of one GOP each", len(frags))
	}
	for i, fr := range frags {
		if fr.Tracks[0].Samples != 30 {
			t.Errorf("fragment %d: %d samples, want 30", i, fr.Tracks[0].Samples)
		}
	}
}

// TestMaxFragmentDuration: without keyframes a fragment is cut at MaxFragmentDuration.
func TestMaxFragmentDuration(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{FragmentDuration: time.Second, MaxFragmentDuration: 2 * time.Second},
		Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}})
	for i := range 300 {
		mustWrite(t, w, 0, Sample{Data: syntheticAU(i == 0, 100), Time: frameTime(i), Keyframe: i == 0})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frags := f.fragments(t)
	if len(frags) != 5 {
		t.Fatalf("%d fragments, want 5 of 2 s", len(frags))
	}
	for i, fr := range frags {
		if got := fr.Tracks[0].Samples; got != 60 {
			t.Errorf("fragment %d: %d samples, want 60", i, got)
		}
		if fr.Tracks[0].FirstSync != (i == 0) {
			t.Errorf("fragment %d: first sample sync %v", i, fr.Tracks[0].FirstSync)
		}
	}
}

// TestAudioOnlyCutsByTime: an audio-only file is cut every FragmentDuration.
func TestAudioOnlyCutsByTime(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{FragmentDuration: 500 * time.Millisecond}, Track{Codec: Opus})
	for i := range 100 { // 2 s
		mustWrite(t, w, 0, Sample{Data: opusPacket, Time: time.Duration(i) * 20 * time.Millisecond})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frags := f.fragments(t)
	checkFragments(t, f.Bytes(), frags, 1)
	if len(frags) != 4 {
		t.Fatalf("%d fragments, want 4", len(frags))
	}
	for i, fr := range frags {
		ft := fr.Tracks[0]
		if ft.Samples != 25 || ft.Duration != 25*960 || ft.BaseTime != uint64(i)*25*960 || ft.Sync != 25 {
			t.Errorf("fragment %d: %+v, want 25 samples of 960 from %d", i, ft, i*25*960)
		}
	}
}

// TestInterleavedTracks: three tracks, one of which stops for a while: a fragment carries
// no traf for it, its last packet before the pause goes out in the next fragment with its own
// duration, and it resumes after a gap; the other tracks' timelines are continuous.
func TestInterleavedTracks(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{},
		Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}},
		Track{Codec: Opus},
		Track{Codec: PCMU})
	pcm := bytes.Repeat([]byte{0xff}, 160)
	frame := 0
	for ms := 0; ms < 4000; ms++ {
		now := time.Duration(ms) * time.Millisecond
		if ms%20 == 0 {
			mustWrite(t, w, 1, Sample{Data: opusPacket, Time: now})
			if ms < 1000 || ms >= 3500 {
				mustWrite(t, w, 2, Sample{Data: pcm, Time: now})
			}
		}
		if ms == frame*1000/30 {
			mustWrite(t, w, 0, Sample{Data: syntheticAU(frame%30 == 0, 300), Time: frameTime(frame), Keyframe: frame%30 == 0})
			frame++
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frags := f.fragments(t)
	checkFragments(t, f.Bytes(), frags, 3, 3)
	if len(frags) != 4 {
		t.Fatalf("%d fragments, want 4", len(frags))
	}
	var pcmu []FragmentTrack
	for i, fr := range frags {
		has := map[uint32]bool{}
		for _, ft := range fr.Tracks {
			has[ft.ID] = true
			if ft.ID == 3 {
				pcmu = append(pcmu, ft)
			}
		}
		if !has[1] || !has[2] || has[3] == (i == 2) {
			t.Errorf("fragment %d has tracks %v", i, has)
		}
	}
	// PCMU per fragment: 0–960 ms (the packet at 980 waits for a successor), then 980 alone
	// with its own 20 ms once a whole fragment went by without one, nothing in the third,
	// then from 3500 ms.
	want := []FragmentTrack{
		{ID: 3, Timescale: 8000, BaseTime: 0, Duration: 49 * 160, Samples: 49, Sync: 49, FirstSync: true},
		{ID: 3, Timescale: 8000, BaseTime: 980 * 8, Duration: 160, Samples: 1, Sync: 1, FirstSync: true},
		{ID: 3, Timescale: 8000, BaseTime: 3500 * 8, Duration: 25 * 160, Samples: 25, Sync: 25, FirstSync: true},
	}
	if !slices.Equal(pcmu, want) {
		t.Errorf("PCMU trafs\n%+v\nwant\n%+v", pcmu, want)
	}
}

// TestTimestamps: jitter backwards is clamped, a long gap or a clock step back rebases the
// track; durations stay positive and the timeline continuous.
func TestTimestamps(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{MaxGap: 5 * time.Second}, Track{Codec: Opus})
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	times := []time.Duration{
		ms(0), ms(20), ms(40), ms(39), ms(40), ms(80), // back 1 ms, then a duplicate: clamped twice
		ms(60000), ms(60020), // a minute's gap: rebased to 80+20
		ms(30000), ms(30020), // 30 s back: rebased again
		ms(30040),
	}
	for _, at := range times {
		mustWrite(t, w, 0, Sample{Data: opusPacket, Time: at})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := w.Stats()
	if s.Clamped != 2 || s.Rebased != 2 || s.Samples != int64(len(times)) {
		t.Errorf("stats %+v, want 2 clamped, 2 rebased", s)
	}
	frags := f.fragments(t)
	var total uint64
	for _, fr := range frags {
		total += fr.Tracks[0].Duration
	}
	// 0,20,40,41,42,80 | 100,120 | 140,160,180 (+20 at Close)
	if want := uint64(200 * 48); total != want {
		t.Errorf("total duration %d ticks, want %d", total, want)
	}
}

// TestParameterSetsFromKeyframe: without parameter sets, frames before the first keyframe
// are dropped, the header waits for it, and the SPS gives the picture size.
func TestParameterSetsFromKeyframe(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{}, Track{Codec: H264}, Track{Codec: Opus})
	mustWrite(t, w, 1, Sample{Data: opusPacket, Time: 0})
	mustWrite(t, w, 0, Sample{Data: syntheticAU(false, 100), Time: 0})
	if f.Len() != 0 {
		t.Fatalf("%d bytes written before the first keyframe", f.Len())
	}
	for i := range 40 {
		mustWrite(t, w, 0, Sample{Data: syntheticAU(i%30 == 0, 100), Time: frameTime(i + 1), Keyframe: i%30 == 0})
		mustWrite(t, w, 1, Sample{Data: opusPacket, Time: frameTime(i + 1)})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Dropped != 2 {
		t.Errorf("dropped %d, want 2", s.Dropped)
	}
	if o, ok := w.Origin(); !ok || o != frameTime(1) {
		t.Errorf("origin %v %v, want %v", o, ok, frameTime(1))
	}
	b := f.Bytes()
	if !bytes.Contains(b, []byte("avcC")) || !bytes.Contains(b, testSPS) {
		t.Error("no avcC with the stream's SPS")
	}
	i := bytes.Index(b, []byte("avc1"))
	if w, h := int(b[i+4+24])<<8|int(b[i+4+25]), int(b[i+4+26])<<8|int(b[i+4+27]); w != 320 || h != 180 {
		t.Errorf("sample entry %dx%d, want 320x180", w, h)
	}
	frags := f.fragments(t)
	checkFragments(t, b, frags, 2)
	if frags[0].Tracks[0].BaseTime != 0 {
		t.Errorf("video starts at %d", frags[0].Tracks[0].BaseTime)
	}
}

// TestStoredSample: AUDs and filler are dropped, parameter sets kept, NAL units length
// prefixed.
func TestStoredSample(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{}, Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}})
	au := append([]byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1}, syntheticAU(true, 10)[4:]...)
	au = append(au, 0, 0, 1, 0x0c, 0xff, 0xff)
	mustWrite(t, w, 0, Sample{Data: au, Keyframe: true})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, nal := range [][]byte{testSPS, testPPS, append([]byte{0x65}, bytes.Repeat([]byte{0xaa}, 10)...)} {
		want = append(want, 0, 0, 0, byte(len(nal)))
		want = append(want, nal...)
	}
	if !bytes.HasSuffix(f.Bytes(), want) {
		t.Errorf("stored sample\n%x\nwant suffix\n%x", f.Bytes()[f.Len()-len(want):], want)
	}
}

// TestPageAlignedMoofs: over many fragments of varying sizes no moof straddles a page.
func TestPageAlignedMoofs(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{FragmentDuration: time.Millisecond}, Track{Codec: Opus}, Track{Codec: PCMA})
	for i := range 2000 {
		at := time.Duration(i) * 20 * time.Millisecond
		mustWrite(t, w, 0, Sample{Data: opusPacket[:1+i%50], Time: at})
		mustWrite(t, w, 1, Sample{Data: bytes.Repeat([]byte{1}, 160), Time: at})
		if i%3 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frags := f.fragments(t)
	checkFragments(t, f.Bytes(), frags, 2)
	if len(frags) < 1000 {
		t.Errorf("%d fragments", len(frags))
	}
}

// TestErrors: bad tracks and samples are refused with named errors; a failed write is
// sticky; a closed Writer says so.
func TestErrors(t *testing.T) {
	badTracks := []struct {
		name   string
		tracks []Track
		want   error
	}{
		{"none", nil, ErrNoTracks},
		{"codec", []Track{{Codec: "VP8"}}, ErrCodec},
		{"aac without config", []Track{{Codec: AAC}}, ErrTrack},
		{"opus 6 channels", []Track{{Codec: Opus, Channels: 6}}, ErrTrack},
		{"bad sps", []Track{{Codec: H264, ParameterSets: [][]byte{{0x67, 0x42}, testPPS}}}, ErrParameterSets},
		{"no pps", []Track{{Codec: H264, ParameterSets: [][]byte{testSPS}}}, ErrParameterSets},
		{"h265 with h264 sets", []Track{{Codec: H265, ParameterSets: [][]byte{testSPS, testPPS}}}, ErrParameterSets},
		{"huge", []Track{{Codec: H264, Width: 1 << 20}}, ErrTrack},
	}
	for _, c := range badTracks {
		if _, err := NewWriter(io.Discard, c.tracks, Options{}); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	w := newTestWriter(t, io.Discard, Options{}, Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}})
	for name, s := range map[string]Sample{
		"empty":      {},
		"not annexb": {Data: []byte{1, 2, 3, 4}},
		"only aud":   {Data: []byte{0, 0, 1, 0x09, 0xf0}},
		"too large":  {Data: make([]byte, MaxSampleSize+1)},
	} {
		if err := w.WriteSample(0, s); !errors.Is(err, ErrSample) {
			t.Errorf("%s: %v, want ErrSample", name, err)
		}
	}
	if err := w.WriteSample(1, Sample{Data: opusPacket}); !errors.Is(err, ErrSample) {
		t.Errorf("track 1: %v", err)
	}
	mustWrite(t, w, 0, Sample{Data: syntheticAU(true, 10), Keyframe: true})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSample(0, Sample{Data: syntheticAU(true, 10), Keyframe: true}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	broken := errors.New("disk full")
	fw := &failWriter{after: 1, err: broken}
	w = newTestWriter(t, fw, Options{FragmentDuration: time.Millisecond}, Track{Codec: Opus})
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = w.WriteSample(0, Sample{Data: opusPacket, Time: time.Duration(i) * 20 * time.Millisecond})
	}
	if !errors.Is(err, broken) {
		t.Fatalf("write error not reported: %v", err)
	}
	if err := w.WriteSample(0, Sample{Data: opusPacket, Time: time.Hour}); !errors.Is(err, broken) {
		t.Errorf("write error not sticky: %v", err)
	}
	if err := w.Close(); !errors.Is(err, broken) {
		t.Errorf("Close after a write error: %v", err)
	}
}

// failWriter fails every Write after the first after.
type failWriter struct {
	after int
	err   error
}

func (f *failWriter) Write(b []byte) (int, error) {
	if f.after == 0 {
		return 0, f.err
	}
	f.after--
	return len(b), nil
}

// TestBoxHeader: the 64-bit largesize form is used exactly when the 32-bit size cannot
// hold the box.
func TestBoxHeader(t *testing.T) {
	for _, c := range []struct {
		payload uint64
		want    string
	}{
		{0, "00000008mdat"},
		{math.MaxUint32 - 8, "ffffffffmdat"},
		{math.MaxUint32 - 7, "00000001mdat0000000100000008"},
		{5 << 32, "00000001mdat0000000500000010"},
	} {
		b := appendBoxHeader(nil, "mdat", c.payload)
		got := hex.EncodeToString(b[:4]) + string(b[4:8]) + hex.EncodeToString(b[8:])
		if got != c.want || len(b) != boxHeaderSize(c.payload) {
			t.Errorf("payload %d: %s (%d bytes), want %s", c.payload, got, len(b), c.want)
		}
	}
}

// TestOpusSamples checks TOC parsing against RFC 6716's frame sizes.
func TestOpusSamples(t *testing.T) {
	for _, c := range []struct {
		packet []byte
		want   int
	}{
		{[]byte{0 << 3}, 480},           // SILK NB 10 ms
		{[]byte{3 << 3}, 2880},          // SILK NB 60 ms
		{[]byte{13 << 3}, 960},          // hybrid 20 ms
		{[]byte{16 << 3}, 120},          // CELT 2.5 ms
		{[]byte{31<<3 | 1}, 1920},       // two 20 ms frames
		{[]byte{31<<3 | 3, 0x83}, 2880}, // code 3, three frames
		{[]byte{31<<3 | 3}, 0},          // code 3 without its count
		{nil, 0},
	} {
		if got := opusSamples(c.packet); got != c.want {
			t.Errorf("% x: %d, want %d", c.packet, got, c.want)
		}
	}
}

// TestStillVideo: a desktop that stops changing sends no frames for seconds while audio goes
// on. The still frame lasts until the next one (no rebase, no gap, the tracks stay in sync),
// and fragments are cut by time meanwhile, carrying audio only. (The fragment where video
// resumes begins with the still frame, written once its duration is known.)
func TestStillVideo(t *testing.T) {
	var f memFile
	w := newTestWriter(t, &f, Options{},
		Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}}, Track{Codec: Opus})
	frame := 0
	for ms := 0; ms < 8000; ms += 10 {
		now := time.Duration(ms) * time.Millisecond
		if ms%20 == 0 {
			mustWrite(t, w, 1, Sample{Data: opusPacket, Time: now})
		}
		// Frames at 0–1 s, then nothing until 6 s.
		if (ms < 1000 || ms >= 6000) && ms%40 == 0 {
			mustWrite(t, w, 0, Sample{Data: syntheticAU(frame%25 == 0, 100), Time: now, Keyframe: frame%25 == 0})
			frame++
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Rebased != 0 || s.Clamped != 0 || s.Samples != 400+75 {
		t.Errorf("stats %+v", s)
	}
	audioOnly := 0
	end := map[uint32]uint64{}
	for i, fr := range f.fragments(t) {
		if len(fr.Tracks) == 1 && fr.Tracks[0].ID == 2 {
			audioOnly++
		}
		for _, ft := range fr.Tracks {
			if e, ok := end[ft.ID]; ok && e != ft.BaseTime {
				t.Errorf("fragment %d track %d: starts at %d, previous ended at %d", i, ft.ID, ft.BaseTime, e)
			}
			end[ft.ID] = ft.BaseTime + ft.Duration
		}
	}
	if audioOnly < 3 {
		t.Errorf("%d audio-only fragments during the 5 s still, want them cut by time", audioOnly)
	}
	if end[1] != 8000*90 || end[2] != 8000*48 {
		t.Errorf("video ends at %d, audio at %d; want both at 8 s", end[1], end[2])
	}
}
