package stream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
)

type fakeProducer struct {
	asked   atomic.Int32
	mu      sync.Mutex
	readers map[uint8]int
}

func (p *fakeProducer) RequestKeyframe(track uint8) error { p.asked.Add(1); return nil }
func (p *fakeProducer) SetReaders(track uint8, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readers == nil {
		p.readers = map[uint8]int{}
	}
	p.readers[track] = n
}

func (p *fakeProducer) SetBitrate(track uint8, bps int) {}
func (p *fakeProducer) SetFPS(track uint8, fps float64) {}

func (p *fakeProducer) readersOf(track uint8) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readers[track]
}

// video is a source with one H.264 track (id 1).
func video(canKeyframe bool) Info {
	return Describe("test", []Track{{ID: 1, Kind: codec.Video, Codec: "H264", ClockRate: 90000, CanKeyframe: canKeyframe}}, nil)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func frame(seq uint32, key bool, capture time.Time) *Frame {
	f := NewFrame()
	f.Track, f.Seq, f.Keyframe, f.Capture = 1, seq, key, capture.UnixNano()
	f.Data = append(f.Data, 0, 0, 0, 1, 0x65, byte(seq))
	return f
}

func recv(t *testing.T, sub *Subscriber) *Frame {
	t.Helper()
	select {
	case f := <-sub.Frames():
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame")
		return nil
	}
}

func empty(t *testing.T, sub *Subscriber) {
	t.Helper()
	select {
	case f := <-sub.Frames():
		t.Fatalf("unexpected frame %d", f.Seq)
	default:
	}
}

func TestFanOutStartsAtKeyframe(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: clk.Now})
	p := &fakeProducer{}
	s.Attach(video(true), p)
	a, b := s.Subscribe(), s.Subscribe()
	if got := p.asked.Load(); got != 1 {
		t.Fatalf("two joins asked %d keyframes, want 1", got)
	}
	s.Publish(frame(0, false, clk.Now())) // not a keyframe: nobody gets it
	empty(t, a)
	s.Publish(frame(1, true, clk.Now()))
	s.Publish(frame(2, false, clk.Now()))
	for _, sub := range []*Subscriber{a, b} {
		for _, want := range []uint32{1, 2} {
			f := recv(t, sub)
			if f.Seq != want {
				t.Fatalf("got frame %d, want %d", f.Seq, want)
			}
			f.Release()
		}
	}
	a.Close()
	b.Close()
	if st := s.Stats(); st.Frames != 3 || st.Keyframes != 1 || st.Subscribers != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSlowSubscriberDropsToKeyframeWithoutBlockingOthers(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: clk.Now, QueueFrames: 4, KeyframeInterval: time.Nanosecond})
	p := &fakeProducer{}
	s.Attach(video(true), p)
	fast, slow := s.Subscribe(), s.Subscribe()
	s.Publish(frame(0, true, clk.Now()))
	recv(t, fast).Release()
	for i := uint32(1); i < 10; i++ { // slow never reads; fast keeps up
		clk.Add(time.Millisecond)
		s.Publish(frame(i, false, clk.Now()))
		if f := recv(t, fast); f.Seq != i {
			t.Fatalf("fast got %d, want %d", f.Seq, i)
		} else {
			f.Release()
		}
	}
	// Frame 4 finds the queue full; after that slow waits for a keyframe, queueing nothing.
	if d := slow.Dropped(); d != 1 {
		t.Fatalf("slow refused %d frames, want 1", d)
	}
	asked := p.asked.Load()
	if asked < 2 {
		t.Fatalf("overflow did not ask for a keyframe (asked %d)", asked)
	}
	// slow drains its 4 queued frames, then gets nothing until a keyframe.
	for want := uint32(0); want < 4; want++ {
		if f := recv(t, slow); f.Seq != want {
			t.Fatalf("slow got %d, want %d", f.Seq, want)
		} else {
			f.Release()
		}
	}
	s.Publish(frame(10, false, clk.Now()))
	recv(t, fast).Release()
	empty(t, slow)
	s.Publish(frame(11, true, clk.Now()))
	if f := recv(t, slow); f.Seq != 11 || !f.Keyframe {
		t.Fatalf("slow resumed at %d key=%v, want keyframe 11", f.Seq, f.Keyframe)
	}
	fast.Close()
	slow.Close()
}

func TestKeyframeRequestsCoalesce(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: clk.Now, KeyframeInterval: 50 * time.Millisecond, FreshGOP: time.Nanosecond})
	p := &fakeProducer{}
	s.Attach(video(true), p)
	var subs []*Subscriber
	for range 50 { // fifty joins before the keyframe arrives share it
		subs = append(subs, s.Subscribe())
		s.RequestKeyframe(1) // and PLIs too
	}
	if got := p.asked.Load(); got != 1 {
		t.Fatalf("asked %d times, want 1", got)
	}
	s.Publish(frame(0, true, clk.Now()))
	// Right after a keyframe, a new request waits for the interval, then asks once.
	s.RequestKeyframe(1)
	s.RequestKeyframe(1)
	if got := p.asked.Load(); got != 1 {
		t.Fatalf("asked %d times inside the interval, want 1", got)
	}
	clk.Add(50 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for p.asked.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("deferred request never sent (asked %d)", p.asked.Load())
		}
		time.Sleep(time.Millisecond) // the deferred ask runs on a real timer
	}
	if st := s.Stats(); st.KeyframesAsked != 2 || st.KeyframesWanted < 100 {
		t.Fatalf("stats %+v", st)
	}
	for _, sub := range subs {
		sub.Close()
	}
}

func TestJoinReplaysFreshGOPOrAsks(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: clk.Now, FreshGOP: 100 * time.Millisecond, KeyframeInterval: time.Nanosecond})
	p := &fakeProducer{}
	s.Attach(video(true), p)
	s.Publish(frame(0, true, clk.Now()))
	s.Publish(frame(1, false, clk.Now()))
	clk.Add(50 * time.Millisecond)
	fresh := s.Subscribe()
	if p.asked.Load() != 0 {
		t.Fatal("a fresh GOP must be replayed, not re-asked")
	}
	for _, want := range []uint32{0, 1} {
		if f := recv(t, fresh); f.Seq != want {
			t.Fatalf("replay got %d want %d", f.Seq, want)
		} else {
			f.Release()
		}
	}
	clk.Add(100 * time.Millisecond)
	stale := s.Subscribe()
	if p.asked.Load() != 1 {
		t.Fatal("a stale GOP must make the join ask for a keyframe")
	}
	empty(t, stale)
	fresh.Close()
	stale.Close()
}

func TestUncontrollableSourceReplaysWholeGOP(t *testing.T) {
	s := New(Config{QueueFrames: 4})
	s.Attach(video(false), nil) // plain Annex-B: cannot be asked
	now := time.Now()
	s.Publish(frame(0, false, now)) // before any keyframe: not cached
	for i := uint32(1); i <= 10; i++ {
		s.Publish(frame(i, i == 1, now))
	}
	sub := s.Subscribe()
	for want := uint32(1); want <= 10; want++ {
		if f := recv(t, sub); f.Seq != want {
			t.Fatalf("got %d want %d", f.Seq, want)
		} else {
			f.Release()
		}
	}
	s.Publish(frame(11, false, now))
	if f := recv(t, sub); f.Seq != 11 {
		t.Fatalf("live frame after replay: %d", f.Seq)
	}
	sub.Close()
}

func TestSourceChangeWaitsForNewKeyframe(t *testing.T) {
	s := New(Config{})
	p1 := &fakeProducer{}
	detach1 := s.Attach(video(true), p1)
	sub := s.Subscribe()
	now := time.Now()
	s.Publish(frame(0, true, now))
	recv(t, sub).Release()
	changed := s.Changed()
	p2 := &fakeProducer{}
	second := video(true)
	second.Width = 2
	s.Attach(second, p2)
	select {
	case <-changed:
	default:
		t.Fatal("Changed not signalled")
	}
	detach1() // the old source's late detach must not remove the new one
	if info, ok := s.Info(); !ok || info.Width != 2 {
		t.Fatalf("info after stale detach: %+v %v", info, ok)
	}
	s.Publish(frame(0, false, now))
	empty(t, sub)
	s.RequestKeyframe(1)
	if p2.asked.Load() != 1 || p1.asked.Load() != 1 { // p1 was asked once, at the join
		t.Fatalf("keyframe asked of the wrong producer: p1 %d p2 %d", p1.asked.Load(), p2.asked.Load())
	}
	s.Publish(frame(1, true, now))
	if f := recv(t, sub); f.Seq != 1 {
		t.Fatalf("got %d", f.Seq)
	}
	sub.Close()
}

func TestCloseWhileReceiving(t *testing.T) {
	s := New(Config{})
	s.Attach(video(false), nil)
	sub := s.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range sub.Frames() {
			f.Release()
		}
	}()
	now := time.Now()
	for i := range uint32(1000) {
		s.Publish(frame(i, i%30 == 0, now))
		if i == 500 {
			sub.Close()
		}
	}
	<-done
	sub.Close()
}

func BenchmarkPublish10Subscribers(b *testing.B) {
	s := New(Config{})
	s.Attach(video(false), nil)
	var subs []*Subscriber
	var wg sync.WaitGroup
	for range 10 {
		sub := s.Subscribe()
		subs = append(subs, sub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range sub.Frames() {
				f.Release()
			}
		}()
	}
	data := make([]byte, 8000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f := NewFrame()
		f.Track, f.Keyframe = 1, i%60 == 0
		f.Data = append(f.Data, data...)
		s.Publish(f)
	}
	for _, sub := range subs {
		sub.Close()
	}
	wg.Wait()
}

func TestTimelineRecordsEachFrameOnce(t *testing.T) {
	st := New(Config{})
	st.Attach(video(false), nil)
	sub := st.Subscribe()
	defer sub.Close()
	for i := range TimelineFrames + 10 {
		f := NewFrame()
		f.Track, f.Keyframe = 1, true
		f.Capture, f.Encoded, f.Received = int64(i)*1e6, int64(i)*1e6+3000, int64(i)*1e6+4000
		st.Publish(f)
		g := <-sub.Frames()
		st.MarkSent(g, int64(i)*1e6+5000)
		st.MarkSent(g, int64(i)*1e6+9000) // a second viewer: the first one's time stays
		g.Release()
	}
	got := st.Timeline()
	if len(got) != TimelineFrames {
		t.Fatalf("timeline holds %d frames, want %d", len(got), TimelineFrames)
	}
	for j, ft := range got {
		i := int64(j + 10) // the oldest 10 were overwritten
		want := FrameTimes{CaptureUS: i * 1000, EncodedUS: i*1000 + 3, ReceivedUS: i*1000 + 4, SentUS: i*1000 + 5}
		if ft != want {
			t.Fatalf("frame %d: %+v, want %+v", i, ft, want)
		}
	}
}

// A source with video and audio: readers choose tracks; audio needs no keyframe and is never
// replayed; the producer learns each track's readers.
func TestTracksAndReaders(t *testing.T) {
	s := New(Config{})
	p := &fakeProducer{}
	info := Describe("av", []Track{
		{ID: 1, Kind: codec.Video, Codec: "H264", ClockRate: 90000, CanKeyframe: true},
		{ID: 2, Kind: codec.Audio, Codec: "opus", ClockRate: 48000, Channels: 1},
	}, nil)
	s.Attach(info, p)
	if info.Codec != "H264" || info.Width != 0 {
		t.Fatalf("info %+v", info)
	}
	audio := func(seq uint32) *Frame {
		f := NewFrame()
		f.Track, f.Seq, f.Capture = 2, seq, time.Now().UnixNano()
		f.Data = append(f.Data, 0xf8, byte(seq))
		return f
	}
	both, videoOnly, audioOnly := s.Subscribe(), s.Subscribe(1), s.Subscribe(2)
	defer both.Close()
	defer videoOnly.Close()
	p.mu.Lock()
	if p.readers[1] != 2 || p.readers[2] != 2 {
		t.Errorf("readers %v, want 2 and 2", p.readers)
	}
	p.mu.Unlock()
	s.Publish(audio(0)) // before any keyframe: audio still flows
	s.Publish(frame(0, true, time.Now()))
	s.Publish(audio(1))
	for _, c := range []struct {
		sub  *Subscriber
		want []uint8 // tracks, in order
	}{{both, []uint8{2, 1, 2}}, {videoOnly, []uint8{1}}, {audioOnly, []uint8{2, 2}}} {
		for _, want := range c.want {
			f := recv(t, c.sub)
			if f.Track != want {
				t.Fatalf("got track %d, want %d", f.Track, want)
			}
			f.Release()
		}
		empty(t, c.sub)
	}
	audioOnly.Close()
	p.mu.Lock()
	if p.readers[2] != 1 {
		t.Errorf("after one left, audio readers %d, want 1", p.readers[2])
	}
	p.mu.Unlock()
	// A late joiner gets the video GOP replayed (it is fresh), never old audio.
	late := s.Subscribe()
	defer late.Close()
	if f := recv(t, late); f.Track != 1 || !f.Keyframe {
		t.Fatalf("late joiner's first frame: track %d key %v", f.Track, f.Keyframe)
	} else {
		f.Release()
	}
	empty(t, late)
	if st := s.Stats(); len(st.Tracks) != 2 || st.Tracks[1].Frames != 2 || st.Tracks[0].Readers != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A frame that reached the device long after its capture is counted late.
	f := audio(2)
	f.Received = f.Capture + int64(LateArrival) + 1
	s.Publish(f)
	if st := s.Stats(); st.Tracks[1].LateFrames != 1 || st.Tracks[1].MaxArrivalMS < 100 {
		t.Fatalf("late frame not counted: %+v", st.Tracks[1])
	}
}

// TestSwitchRenditionAtKeyframe: a reader moving to another rendition keeps the old one until
// the new one's keyframe, then gets only the new one, and the producer hears who reads what.
func TestSwitchRenditionAtKeyframe(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: clk.Now})
	p := &fakeProducer{}
	main := Track{ID: 1, Kind: codec.Video, Codec: "H264", ClockRate: 90000, CanKeyframe: true, Bitrate: 2_000_000}
	sub := Track{ID: 4, Kind: codec.Video, Codec: "H264", ClockRate: 90000, CanKeyframe: true, AlternateOf: 1, Bitrate: 500_000}
	info := Describe("test", []Track{main, sub}, nil)
	s.Attach(info, p)
	if r := info.Renditions(1); len(r) != 2 || r[0].ID != 1 || r[1].ID != 4 {
		t.Fatalf("renditions %+v", r)
	}
	if f, _ := info.First(codec.Video); f.ID != 1 {
		t.Fatal("an alternate is not the first video track")
	}
	pub := func(track uint8, seq uint32, key bool) {
		f := frame(seq, key, clk.Now())
		f.Track = track
		s.Publish(f)
	}
	r := s.Subscribe(1)
	pub(1, 0, true)
	if f := recv(t, r); f.Track != 1 {
		t.Fatal("first frame")
	} else {
		f.Release()
	}
	asked := p.asked.Load()
	r.Switch(1, 4)
	if p.asked.Load() == asked || p.readersOf(4) != 1 {
		t.Fatalf("switching asks the sub stream for a keyframe and counts its reader (asked %d, readers %d)", p.asked.Load(), p.readersOf(4))
	}
	pub(4, 1, false) // not a keyframe: not delivered
	pub(1, 1, false) // the old rendition still flows
	pub(4, 2, true)  // the switch happens here
	pub(1, 2, false) // no longer read
	pub(4, 3, false)
	for _, want := range []struct {
		track uint8
		seq   uint32
	}{{1, 1}, {4, 2}, {4, 3}} {
		f := recv(t, r)
		if f.Track != want.track || f.Seq != want.seq {
			t.Fatalf("got track %d frame %d, want track %d frame %d", f.Track, f.Seq, want.track, want.seq)
		}
		f.Release()
	}
	empty(t, r)
	if p.readersOf(1) != 0 || p.readersOf(4) != 1 {
		t.Fatalf("readers main %d sub %d after the switch", p.readersOf(1), p.readersOf(4))
	}
	// Back up, and cancelled before the keyframe: nothing changes.
	r.Switch(4, 1)
	r.Switch(1, 4)
	pub(1, 3, true)
	pub(4, 4, false)
	if f := recv(t, r); f.Track != 4 || f.Seq != 4 {
		t.Fatalf("after a cancelled switch got track %d frame %d", f.Track, f.Seq)
	} else {
		f.Release()
	}
	empty(t, r)
	r.Close()
}
