package peer

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// recorder stands in for Pion's SRTP write stream: it marshals what it is given, as the real
// one does, and keeps the last packet.
type recorder struct {
	n    atomic.Int64
	buf  []byte
	last rtp.Header
	abs  uint64 // the abs-capture-time extension (id 4) as it was when written
	mu   sync.Mutex
}

func (r *recorder) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := h.MarshalTo(r.buf[:cap(r.buf)])
	r.last = *h
	if e := h.GetExtension(4); len(e) == 8 {
		r.abs = binary.BigEndian.Uint64(e)
	}
	r.n.Add(1)
	return n + len(payload), err
}
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }

var testVideo = stream.Track{ID: 1, Kind: codec.Video, Codec: "H264", ClockRate: 90000}

func boundTrack(w *recorder) *localTrack {
	return boundTrackOf(w, testVideo)
}

func boundTrackOf(w *recorder, src stream.Track) *localTrack {
	t := newLocalTrack(src, "s", PlayoutDelay{}.payload())
	t.bound, t.writer = true, w
	t.header = rtp.Header{Version: 2, PayloadType: 102, SSRC: 1234}
	if t.playoutDelay != nil {
		_ = t.header.SetExtension(3, t.playoutDelay)
	}
	t.absCapture = make([]byte, 8)
	_ = t.header.SetExtension(4, t.absCapture)
	return t
}

func testFrame(size int, key bool) *stream.Frame {
	f := stream.NewFrame()
	f.Track, f.Keyframe, f.Capture = 1, key, time.Now().UnixNano()
	f.Data = append(f.Data, 0, 0, 0, 1, 0x65)
	for len(f.Data) < size {
		f.Data = append(f.Data, 0x55)
	}
	codec.PacketizeH264(f.Data, codec.DefaultMTU, &f.Payloads)
	return f
}

func TestWriteFrameHeadersAndRetransmit(t *testing.T) {
	w := &recorder{buf: make([]byte, 0, 1500)}
	tr := boundTrack(w)
	f := testFrame(5000, true)
	start := tr.seq
	if err := tr.writeFrame(f); err != nil {
		t.Fatal(err)
	}
	n := f.Payloads.Len()
	if int(w.n.Load()) != n || !w.last.Marker || w.last.SequenceNumber != start+uint16(n-1) {
		t.Fatalf("wrote %d packets, last %+v", w.n.Load(), w.last)
	}
	if w.last.Timestamp != rtpTime(f.Capture, 90000)+tr.tsOffset {
		t.Fatal("RTP timestamp does not derive from the capture time")
	}
	if got := tr.retransmit([]uint16{start + 1, start + 999}); got != 1 {
		t.Fatalf("retransmitted %d packets, want 1 (the other is unknown)", got)
	}
	if w.last.SequenceNumber != start+1 || w.last.Marker {
		t.Fatalf("retransmission header %+v", w.last)
	}
	f.Release()
}

func TestAbsCaptureTimeFollowsEachFrame(t *testing.T) {
	w := &recorder{buf: make([]byte, 0, 1500)}
	tr := boundTrack(w)
	first, second := testFrame(3000, true), testFrame(3000, false)
	second.Capture = first.Capture + 33_333_333
	defer first.Release()
	defer second.Release()
	absOf := func() uint64 { return w.abs }
	_ = tr.writeFrame(first)
	if absOf() != ntpTime(first.Capture) {
		t.Fatal("abs-capture-time is not the first frame's capture time")
	}
	start := tr.seq
	_ = tr.writeFrame(second)
	if absOf() != ntpTime(second.Capture) {
		t.Fatal("abs-capture-time is not the second frame's capture time")
	}
	// A retransmitted packet of the first frame carries the first frame's time...
	if tr.retransmit([]uint16{start - 1}) != 1 || absOf() != ntpTime(first.Capture) {
		t.Fatal("retransmission does not carry its own frame's capture time")
	}
	// ...and the live header is back at the current frame's.
	if binary.BigEndian.Uint64(tr.absCapture) != ntpTime(second.Capture) {
		t.Fatal("retransmission left the live header's abs-capture-time changed")
	}
}

func TestNTPTime(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		want uint64
	}{
		{0, 2208988800 << 32},
		{1_500_000_000, (2208988800+1)<<32 | 1<<31},
		{time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC).UnixNano(), 0xffffffff << 32}, // last second of NTP era 0
	} {
		if got := ntpTime(c.ns); got != c.want {
			t.Errorf("ntpTime(%d) = %#x, want %#x", c.ns, got, c.want)
		}
	}
}

func TestRTPTimeIsContinuous(t *testing.T) {
	base := time.Date(2033, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, d := range []time.Duration{time.Millisecond, 33 * time.Millisecond, time.Second} {
		if got := rtpTime(base+int64(d), 90000) - rtpTime(base, 90000); got != uint32(d.Seconds()*90000) {
			t.Errorf("%v → %d ticks", d, got)
		}
	}
}

var testAudio = stream.Track{ID: 2, Kind: codec.Audio, Codec: "opus", ClockRate: 48000, Channels: 1}

// BenchmarkFanOut measures the device's per-packet path for 10 viewers of video and audio:
// publish a 720p-sized frame (packetized once) and the audio of that frame's time (two 20 ms
// Opus packets every 33 ms, rounded up), each viewer's goroutine takes them from its queue and
// writes its own headers on the track they belong to. ns/packet and allocs/packet count every
// forwarded packet (frames × payloads × viewers). The writer marshals the header as Pion's
// SRTP stream would; encryption itself is not included.
func BenchmarkFanOut(b *testing.B) {
	b.Run("video", func(b *testing.B) { benchmarkFanOut(b, false) })
	b.Run("video+audio", func(b *testing.B) { benchmarkFanOut(b, true) })
}

func benchmarkFanOut(b *testing.B, withAudio bool) {
	const viewers = 10
	st := stream.New(stream.Config{QueueFrames: 256})
	st.Attach(stream.Describe("bench", []stream.Track{testVideo, testAudio}, nil), nil)
	var wg sync.WaitGroup
	var packets atomic.Int64
	var subs []*stream.Subscriber
	for range viewers {
		video := boundTrackOf(&recorder{buf: make([]byte, 0, 1500)}, testVideo)
		audio := boundTrackOf(&recorder{buf: make([]byte, 0, 1500)}, testAudio)
		sub := st.Subscribe(testVideo.ID, testAudio.ID)
		subs = append(subs, sub)
		wg.Go(func() {
			for f := range sub.Frames() {
				tr := video
				if f.Track == testAudio.ID {
					tr = audio
				}
				_ = tr.writeFrame(f)
				st.MarkSent(f, time.Now().UnixNano())
				packets.Add(int64(f.Payloads.Len()))
				f.Release()
			}
		})
	}
	template := testFrame(8000, false) // 2 Mbit/s at 30 fps: about 8 kB a frame, 7 packets
	data := template.Data
	opus := make([]byte, 80) // 32 kbit/s in 20 ms
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	i := 0
	for b.Loop() {
		f := stream.NewFrame()
		f.Track, f.Keyframe, f.Capture = testVideo.ID, i%60 == 0, int64(i)*33_000_000
		f.Data = append(f.Data, data...)
		codec.PacketizeH264(f.Data, codec.DefaultMTU, &f.Payloads)
		st.Publish(f)
		for j := range 2 * boolInt(withAudio) {
			a := stream.NewFrame()
			a.Track, a.Capture = testAudio.ID, int64(i)*33_000_000+int64(j)*20_000_000
			a.Data = append(a.Data, opus...)
			codec.Opus.Packetize(a.Data, codec.DefaultMTU, &a.Payloads)
			st.Publish(a)
		}
		i++
	}
	for _, s := range subs {
		s.Close()
	}
	wg.Wait()
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	if p := packets.Load(); p > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(p), "ns/packet")
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(p), "allocs/packet")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkPacedFanOut is BenchmarkFanOut on the path sessions use: the stream hands each
// frame straight to every viewer's sender (SubscribeFunc), and the pacer writes them in its
// passes, each viewer at its budget (an estimate too high to hold anything back: this
// measures the work, not the pacing). ns/packet and allocs/packet
// count every packet written; the writer marshals the header as Pion's SRTP stream would.
func BenchmarkPacedFanOut(b *testing.B) {
	const viewers = 10
	st := stream.New(stream.Config{QueueFrames: 256})
	st.Attach(stream.Describe("bench", []stream.Track{testVideo}, nil), nil)
	p := newPacer(nil)
	var senders []*sender
	var subs []*stream.Subscriber
	written := make([]*recorder, viewers)
	for i := range viewers {
		w := &recorder{buf: make([]byte, 0, 1500)}
		written[i] = w
		video := boundTrackOf(w, testVideo)
		snd := newSender(p, fixedRate(1<<40))
		snd.video, snd.paced, snd.fast = video, true, false
		p.add(snd)
		senders = append(senders, snd)
		subs = append(subs, st.SubscribeFunc(func(f *stream.Frame) bool { return snd.offer(video, f) }, testVideo.ID))
	}
	template := testFrame(8000, false)
	data := template.Data
	template.Release()
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	i := 0
	for b.Loop() {
		f := stream.NewFrame()
		f.Track, f.Keyframe, f.Capture = testVideo.ID, i%60 == 0, int64(i)*33_000_000
		f.Data = append(f.Data, data...)
		codec.PacketizeH264(f.Data, codec.DefaultMTU, &f.Payloads)
		st.Publish(f)
		i++
	}
	// Every packet published has been written once the queues are empty.
	for _, snd := range senders {
		for {
			snd.mu.Lock()
			n := snd.media.len()
			snd.mu.Unlock()
			if n == 0 {
				break
			}
			runtime.Gosched()
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	var packets int64
	for _, w := range written {
		packets += w.n.Load()
	}
	for i, s := range subs {
		s.Close()
		senders[i].close()
	}
	if packets > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(packets), "ns/packet")
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(packets), "allocs/packet")
	}
}

// fixedRate is an estimator with a constant target (0: none, the sender is not paced).
type fixedRate int

func (r fixedRate) Sent(uint16, int, time.Time, int)           {}
func (r fixedRate) SentAgain(uint16, int, time.Time)           {}
func (r fixedRate) Delivered(uint16) (bool, bool)              { return false, false }
func (r fixedRate) RTT() time.Duration                         { return 0 }
func (r fixedRate) Queue() time.Duration                       { return 0 }
func (r fixedRate) Feedback([]byte, time.Time) error           { return nil }
func (r fixedRate) Target() int                                { return int(r) }
func (r fixedRate) Probe(time.Time) (cluster, rate, bytes int) { return 0, 0, 0 }

// TestShedKeepsTheQueueShort: video that would wait longer than maxQueueDelay at the estimate
// is dropped at the sender to the next keyframe, which is asked for; what comes before that
// keyframe is dropped too, and the keyframe is the next picture to leave.
func TestShedKeepsTheQueueShort(t *testing.T) {
	p := newPacer(nil)
	w := &recorder{buf: make([]byte, 0, 1500)}
	video := boundTrackOf(w, testVideo)
	snd := newSender(p, fixedRate(100_000))
	snd.video, snd.paced, snd.fast = video, true, false
	asked := make(chan uint8, 4)
	snd.keyframe = func(track uint8) { asked <- track }
	for range 3 {
		snd.offer(video, testFrame(12000, false)) // ~1 s at 100 kbit/s each
	}
	snd.mu.Lock()
	snd.shedLocked()
	left, wait := snd.media.len(), snd.waitKey
	snd.mu.Unlock()
	if left != 0 || !wait {
		t.Fatalf("after shedding: %d packets queued, waiting for a keyframe %v", left, wait)
	}
	select {
	case track := <-asked:
		if track != testVideo.ID {
			t.Fatalf("keyframe asked on track %d", track)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no keyframe asked for")
	}
	// Until the keyframe, video is not queued; the keyframe is.
	snd.offer(video, testFrame(3000, false))
	key := testFrame(3000, true)
	snd.offer(video, key)
	snd.mu.Lock()
	first := snd.media.q[snd.media.head]
	snd.mu.Unlock()
	if !first.f.Keyframe || first.idx != 0 {
		t.Fatal("the next picture queued is not the keyframe")
	}
	snd.close()
}

// A switch of rendition drops what the old one still had waiting (pictures and
// retransmissions), all but the rest of a picture partly sent: the new rendition's keyframe
// goes next, after the picture on the wire is whole.
func TestSwitchDropsTheOldRenditionsBacklog(t *testing.T) {
	p := newPacer(nil)
	video := boundTrackOf(&recorder{buf: make([]byte, 0, 1500)}, testVideo)
	snd := newSender(p, fixedRate(100_000))
	defer snd.close()
	snd.video, snd.paced, snd.fast = video, true, false
	key := testFrame(3000, true)
	snd.offer(video, key)
	snd.drain(time.Now()) // the main keyframe's first packets leave, and go in the history
	snd.mu.Lock()
	rest := snd.media.len()
	partly := snd.midFrame
	snd.mu.Unlock()
	if !partly || rest == 0 || rest >= key.Payloads.Len() {
		t.Fatalf("%d of the keyframe's %d packets still queued (mid-frame %v), want part of it sent", rest, key.Payloads.Len(), partly)
	}
	snd.offer(video, testFrame(3000, false))
	snd.resend(video, []uint16{video.seq - 1})
	snd.mu.Lock()
	rtx := snd.rtx.len()
	snd.mu.Unlock()
	if rtx == 0 {
		t.Fatal("no retransmission queued")
	}
	sub := testFrame(2000, true)
	sub.Track = 2
	snd.offer(video, sub)
	snd.mu.Lock()
	defer snd.mu.Unlock()
	if snd.rtx.len() != 0 {
		t.Errorf("%d retransmissions of the old rendition still queued", snd.rtx.len())
	}
	for i := snd.media.head; i < len(snd.media.q); i++ {
		want := uint8(2)
		if i < snd.media.head+rest {
			want = 1 // the rest of the main keyframe
		}
		if pk := snd.media.q[i]; pk.f.Track != want {
			t.Fatalf("queued packet %d is of track %d, want %d", i-snd.media.head, pk.f.Track, want)
		}
	}
	if snd.media.len() != rest+sub.Payloads.Len() {
		t.Fatalf("%d packets queued, want the main keyframe's last %d and the sub keyframe's %d", snd.media.len(), rest, sub.Payloads.Len())
	}
	want := rest * len(key.Payloads.At(0))
	for i := range sub.Payloads.Len() {
		want += len(sub.Payloads.At(i))
	}
	if snd.queued > want || snd.queued <= 0 {
		t.Errorf("queued bytes %d, want at most %d", snd.queued, want)
	}
}

// A switch behind a short queue drops nothing: the old rendition's pictures already queued
// go first (cutting them is a gap in the picture), then the new rendition's keyframe.
func TestSwitchKeepsAShortQueue(t *testing.T) {
	p := newPacer(nil)
	video := boundTrackOf(&recorder{buf: make([]byte, 0, 1500)}, testVideo)
	snd := newSender(p, fixedRate(10_000_000))
	defer snd.close()
	snd.video, snd.paced, snd.fast = video, true, false
	snd.offer(video, testFrame(3000, true))
	snd.offer(video, testFrame(1000, false))
	snd.mu.Lock()
	main := snd.media.len()
	snd.mu.Unlock()
	sub := testFrame(2000, true)
	sub.Track = 2
	snd.offer(video, sub)
	snd.mu.Lock()
	defer snd.mu.Unlock()
	if got, want := snd.media.len(), main+sub.Payloads.Len(); got != want {
		t.Fatalf("%d packets queued after the switch, want the main stream's %d and the sub keyframe's %d", got, main, sub.Payloads.Len())
	}
	if snd.stats.QueueDropped != 0 {
		t.Errorf("%d pictures dropped, want none", snd.stats.QueueDropped)
	}
	if last := snd.media.q[len(snd.media.q)-1]; last.f.Track != 2 {
		t.Errorf("the queue ends with track %d, want the sub keyframe", last.f.Track)
	}
}

// queueingRate is fixedRate on a path whose feedback shows a queue of q.
type queueingRate struct {
	fixedRate
	q atomic.Int64
}

func (r *queueingRate) Queue() time.Duration { return time.Duration(r.q.Load()) }

// A switch while the path queues (its queue filling: why the policy switched) drops the old
// rendition's video and holds the new keyframe until the feedback shows the queue drained, at
// most maxDrainWait: sent at once, it joined the queue the old rendition filled and was lost
// there (the lab's cut to 40 %: 1–3 s of still picture while its repairs went one round
// trip apart). Audio is not held.
func TestSwitchWaitsForTheQueueToDrain(t *testing.T) {
	for _, drains := range []bool{true, false} {
		p := newPacer(nil)
		w := &recorder{buf: make([]byte, 0, 1500)}
		video := boundTrackOf(w, testVideo)
		aw := &recorder{buf: make([]byte, 0, 1500)}
		audio := boundTrackOf(aw, testAudio)
		est := &queueingRate{fixedRate: 10_000_000}
		snd := newSender(p, est)
		snd.video, snd.paced, snd.fast = video, true, false
		start := time.Now()
		snd.offer(video, testFrame(3000, true))
		snd.drain(start)
		est.q.Store(int64(300 * time.Millisecond))
		snd.offer(video, testFrame(1000, false)) // the main stream, still queued at the switch
		sub := testFrame(2000, true)
		sub.Track = 2
		before := w.n.Load()
		snd.offer(video, sub)
		snd.mu.Lock()
		dropped := snd.stats.QueueDropped
		snd.mu.Unlock()
		if dropped != 1 {
			t.Errorf("%d pictures of the old rendition dropped at the switch, want the one queued", dropped)
		}
		f := stream.NewFrame()
		f.Track = testAudio.ID
		f.Payloads.Buf, f.Payloads.Ends = append(f.Payloads.Buf, 1, 2, 3), append(f.Payloads.Ends, 3)
		snd.offer(audio, f)
		for at := start.Add(5 * time.Millisecond); at.Before(start.Add(maxDrainWait - 10*time.Millisecond)); at = at.Add(pacingSlice) {
			if at.After(start.Add(200*time.Millisecond)) && drains {
				est.q.Store(int64(20 * time.Millisecond))
				if !snd.drain(at) {
					break
				}
				continue
			}
			snd.drain(at)
			if n := w.n.Load(); n != before {
				t.Fatalf("%d video packets left %v after a switch while the path queues 300 ms", n-before, at.Sub(start))
			}
		}
		if aw.n.Load() != 1 {
			t.Errorf("%d audio packets sent while the keyframe waits, want 1", aw.n.Load())
		}
		if !drains {
			// The queue never drained: the wait ends maxDrainWait after the switch (taken
			// from now, which is after it however slowly the test ran).
			snd.drain(time.Now().Add(maxDrainWait + pacingSlice))
		}
		if got, want := w.n.Load()-before, int64(sub.Payloads.Len()); got != want {
			t.Errorf("drained %v: %d video packets left after the wait, want the keyframe's %d", drains, got, want)
		}
		snd.close()
	}
}

// countingRate is fixedRate that counts what it is told was sent, new and again, and
// reports the transport-wide numbers in delivered as arrived, those in lost as lost.
type countingRate struct {
	fixedRate
	mu              sync.Mutex
	sent, again     int
	last            uint16 // the last number sent
	delivered, lost map[uint16]bool
}

func (r *countingRate) Sent(tw uint16, _ int, _ time.Time, _ int) {
	r.mu.Lock()
	r.sent++
	r.last = tw
	r.mu.Unlock()
}

func (r *countingRate) SentAgain(tw uint16, _ int, _ time.Time) {
	r.mu.Lock()
	r.again++
	r.last = tw
	r.mu.Unlock()
}

func (r *countingRate) Delivered(tw uint16) (bool, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[tw], r.delivered[tw] || r.lost[tw]
}

// Once the new rendition's keyframe has begun to leave, NACKs for the old rendition are not
// answered: its repairs would queue ahead of the keyframe on a path too slow for the old
// rendition (the lab's slow joiner stalled 2–7 s at 1280x720 while Chromium asked for the
// main stream's lost packets, 36 NACKs a second; without them the sub stream shows within a
// second). A packet asked for again is resent while its last copy is not known to have
// arrived, and not once one is (Chromium asks again for packets it got). A copy whose
// predecessor's fate is not known is told to the estimator as one the viewer may have (a
// viewer without RTX drops such copies before its feedback counts them); the others as new
// packets, whose loss is the path's.
func TestResendsAcrossASwitch(t *testing.T) {
	p := newPacer(nil)
	video := boundTrackOf(&recorder{buf: make([]byte, 0, 1500)}, testVideo)
	video.twcc = make([]byte, 2) // the viewer negotiated transport-wide feedback
	_ = video.header.SetExtension(5, video.twcc)
	est := &countingRate{fixedRate: 100_000_000, delivered: map[uint16]bool{}, lost: map[uint16]bool{}}
	snd := newSender(p, est)
	defer snd.close()
	snd.video, snd.paced, snd.fast = video, true, false
	snd.offer(video, testFrame(3000, true))
	snd.drain(time.Now())
	mainSeq := video.seq - 1
	sub := testFrame(2000, true)
	sub.Track = 2
	snd.offer(video, sub)
	for at := time.Now(); ; at = at.Add(10 * time.Millisecond) {
		snd.drain(at)
		snd.mu.Lock()
		left := snd.media.len()
		snd.mu.Unlock()
		if left == 0 {
			break
		}
	}
	subSeq := video.seq - 1
	est.mu.Lock()
	sentBefore := est.sent
	est.mu.Unlock()
	at := time.Now()
	// ask NACKs seqs a round trip after the last time and drains what it queued: how many
	// copies went, told as new and as again, and the last one's number.
	ask := func(seqs ...uint16) (sent, again int, last uint16) {
		snd.mu.Lock()
		for i := range snd.recent {
			snd.recent[i].at = snd.recent[i].at.Add(-time.Second)
		}
		snd.mu.Unlock()
		snd.resend(video, seqs)
		at = at.Add(time.Second)
		snd.drain(at)
		est.mu.Lock()
		defer est.mu.Unlock()
		sent, again = est.sent-sentBefore, est.again
		sentBefore, est.again = est.sent, 0
		return sent, again, est.last
	}
	snd.mu.Lock()
	skipped := snd.stats.ResendsSkipped
	snd.mu.Unlock()
	if sent, again, _ := ask(mainSeq, subSeq); sent != 1 || again != 0 {
		t.Errorf("first resends of a packet of each rendition: %d new and %d copies, want 1 (the new rendition's) and 0", sent, again)
	}
	snd.mu.Lock()
	if snd.stats.ResendsSkipped != skipped+1 {
		t.Errorf("%d NACKs skipped, want 1 (the rendition left)", snd.stats.ResendsSkipped-skipped)
	}
	snd.mu.Unlock()
	// Asked again before the feedback told of the copy: it may have arrived.
	sent, again, last := ask(subSeq)
	if sent != 0 || again != 1 {
		t.Errorf("resent while the last copy's fate is unknown: %d new and %d copies, want 0 and 1", sent, again)
	}
	// That copy was lost: the next is a new packet for the estimate.
	est.mu.Lock()
	est.lost[last] = true
	est.mu.Unlock()
	sent, again, last = ask(subSeq)
	if sent != 1 || again != 0 {
		t.Errorf("resent after the last copy was lost: %d new and %d copies, want 1 and 0", sent, again)
	}
	// Asked again before that copy's fate is known: another goes. Then the feedback says the
	// earlier one arrived: the viewer has the packet, however often it asks.
	if sent, again, _ := ask(subSeq); sent != 0 || again != 1 {
		t.Errorf("resent while the last copy's fate is unknown: %d new and %d copies, want 0 and 1", sent, again)
	}
	est.mu.Lock()
	est.delivered[last] = true
	est.mu.Unlock()
	for range 3 {
		if sent, again, _ := ask(subSeq); sent != 0 || again != 0 {
			t.Errorf("asked for a packet whose copy arrived: %d new and %d copies resent, want none", sent, again)
		}
	}
}

// The retransmission history holds historyAge of frames at the track's rate, sized to that
// rate (not historyFrames for every track of every viewer), and finds every frame in it.
func TestHistorySizedByRate(t *testing.T) {
	for _, tc := range []struct {
		fps      int
		min, max int
	}{{fps: 30, min: 45, max: 64}, {fps: 50, min: 75, max: 128}, {fps: 1000, min: historyFrames, max: historyFrames}} {
		tr := boundTrack(&recorder{buf: make([]byte, 0, 1500)})
		var frames []*stream.Frame
		step := int64(time.Second) / int64(tc.fps)
		var seq uint16
		for i := range 3 * tc.fps {
			f := testFrame(100, i == 0)
			tr.mu.Lock()
			tr.rememberLocked(f, seq, 0, int64(i)*step)
			tr.mu.Unlock()
			frames = append(frames, f)
			seq += uint16(f.Payloads.Len())
		}
		if n := len(tr.history); n < tc.min || n > tc.max {
			t.Errorf("%d fps: history of %d, want %d–%d", tc.fps, n, tc.min, tc.max)
		}
		// The newest frames are all there, in order.
		for i := range min(tr.histLen, 40) {
			want := frames[len(frames)-1-i]
			got, _, _, ok := tr.lookup(seq - 1 - uint16(i))
			if !ok || got != want {
				t.Fatalf("%d fps: frame %d back not found", tc.fps, i)
			}
			got.Release()
		}
		tr.mu.Lock()
		tr.clearHistoryLocked()
		tr.mu.Unlock()
	}
}

// At a switch the new rendition's first frame may have the capture time of the old one's
// last: it goes one RTP tick later, so no timestamp names two pictures (a receiver finds an
// H.264 frame's start by its timestamp), and its retransmissions carry the same timestamp.
// Frames of one rendition keep their capture times.
func TestRenditionsNeverShareATimestamp(t *testing.T) {
	w := &recorder{buf: make([]byte, 0, 1500)}
	tr := boundTrack(w)
	capture := time.Now().UnixNano()
	frame := func(track uint8, at int64, key bool) *stream.Frame {
		f := testFrame(3000, key)
		f.Track, f.Capture = track, at
		return f
	}
	natural := func(at int64) uint32 { return rtpTime(at, 90000) + tr.tsOffset }
	write := func(f *stream.Frame) (first uint16, ts uint32) {
		first = tr.seq
		if err := tr.writeFrame(f); err != nil {
			t.Fatal(err)
		}
		return first, w.last.Timestamp
	}
	main := frame(1, capture, true)
	if _, ts := write(main); ts != natural(capture) {
		t.Fatalf("main: timestamp %d, want %d", ts, natural(capture))
	}
	sub := frame(2, capture, true) // the same capture, the other rendition
	subSeq, subTS := write(sub)
	if subTS != natural(capture)+1 {
		t.Fatalf("sub keyframe: timestamp %d, want %d (one after the main frame's)", subTS, natural(capture)+1)
	}
	next := frame(2, capture+33_000_000, false)
	if _, ts := write(next); ts != natural(capture+33_000_000) {
		t.Fatalf("next sub frame: timestamp %d, want its capture's %d", ts, natural(capture+33_000_000))
	}
	if got := tr.retransmit([]uint16{subSeq + 1}); got != 1 {
		t.Fatalf("retransmitted %d", got)
	}
	if w.last.SequenceNumber != subSeq+1 || w.last.Timestamp != subTS {
		t.Fatalf("retransmission %d with timestamp %d, want %d with %d", w.last.SequenceNumber, w.last.Timestamp, subSeq+1, subTS)
	}
	for _, f := range []*stream.Frame{main, sub, next} {
		f.Release()
	}
}

// fallingRate is an estimator whose target becomes each of next in turn at a feedback.
type fallingRate struct {
	fixedRate
	next []int
}

func (r *fallingRate) Feedback([]byte, time.Time) error {
	r.fixedRate, r.next = fixedRate(r.next[0]), r.next[1:]
	return nil
}
func (r *fallingRate) Target() int { return int(r.fixedRate) }

// A feedback that brings the viewer's estimate down steeply tells the device at once
// (SessionOptions.OnPathWorse: the policy runs a round then, not at its next tick); the
// usual ups and downs do not.
func TestSteepFallTellsTheDevice(t *testing.T) {
	told := 0
	s := &Session{est: &fallingRate{fixedRate: 2_000_000, next: []int{1_800_000, 2_100_000, 400_000, 380_000, 200_000}},
		onWorse: func() { told++ }}
	want := []int{0, 0, 1, 1, 2}
	for i, w := range want {
		s.takeFeedback(nil)
		if told != w {
			t.Fatalf("after feedback %d (target %d): told %d times, want %d", i+1, s.est.Target(), told, w)
		}
	}
}
