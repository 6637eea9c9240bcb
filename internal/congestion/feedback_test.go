package congestion

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// stream sends n packets of 1200 bytes, 1 ms apart, from seq on, starting at `at`.
func stream(e *Estimator, seq uint16, n int, at time.Time) {
	for i := range n {
		e.Sent(seq+uint16(i), 1200, at.Add(time.Duration(i)*time.Millisecond), 0)
	}
}

// received builds feedback saying packets base..base+n-1 arrived 1 ms apart (deltas in
// 250 µs units, so 4 each), the first at refMs.
func received(base uint16, n int, ref uint32, fbCount uint8) *rtcp.TransportLayerCC {
	syms := make([]uint16, n)
	deltas := make([]*rtcp.RecvDelta, n)
	for i := range syms {
		syms[i] = rtcp.TypeTCCPacketReceivedSmallDelta
		d := int64(1000)
		if i == 0 {
			d = 0
		}
		deltas[i] = &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: d}
	}
	return &rtcp.TransportLayerCC{
		BaseSequenceNumber: base,
		PacketStatusCount:  uint16(n),
		ReferenceTime:      ref,
		FbPktCount:         fbCount,
		PacketChunks:       encodeChunks(syms),
		RecvDeltas:         deltas,
	}
}

func lost(base uint16, n int) *rtcp.TransportLayerCC {
	return &rtcp.TransportLayerCC{
		BaseSequenceNumber: base,
		PacketStatusCount:  uint16(n),
		PacketChunks:       []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: uint16(n)}},
	}
}

// feed hands fb to e as it goes on the wire.
func feed(t testing.TB, e *Estimator, fb *rtcp.TransportLayerCC, at time.Time) {
	t.Helper()
	if err := e.Feedback(marshalTWCC(t, fb), at); err != nil {
		t.Fatalf("feedback: %v", err)
	}
}

func checkSane(t *testing.T, e *Estimator) {
	t.Helper()
	st := e.Stats()
	if st.Target < DefaultMin || st.Target > DefaultMax || st.Loss < 0 || st.Loss > 1 || st.RTTms < 0 {
		t.Fatalf("insane state: %+v", st)
	}
}

func TestOddFeedback(t *testing.T) {
	e := NewEstimator(Config{})
	now := t0.Add(100 * time.Millisecond)
	// Before anything was sent.
	feed(t, e, received(0, 10, 0, 0), now)
	stream(e, 1000, 100, t0)
	start := e.Target()
	odd := []struct {
		name string
		fb   *rtcp.TransportLayerCC
	}{
		{"empty", &rtcp.TransportLayerCC{}},
		{"only lost, never sent", lost(5000, 100)},
		{"base far future", received(1000+30000, 20, 5, 1)},
		{"base far past", received(1000+65536-30000, 20, 5, 2)},
		{"just past the end", received(1100, 20, 5, 3)},
		{"without delta", &rtcp.TransportLayerCC{BaseSequenceNumber: 1000, PacketStatusCount: 3, PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedWithoutDelta, RunLength: 3}}}},
		// Valid packets with absurd arrival times (a clock jump): used, but must not
		// break anything.
		{"huge deltas", &rtcp.TransportLayerCC{BaseSequenceNumber: 1000, PacketStatusCount: 2, ReferenceTime: 0xFFFFFF, PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedLargeDelta, RunLength: 2}},
			RecvDeltas: []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: -8192000}, {Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: 8191750}}}},
	}
	for _, c := range odd {
		feed(t, e, c.fb, now)
		checkSane(t, e)
		if c.name != "huge deltas" && e.Target() != start {
			t.Errorf("%s: target %d → %d", c.name, start, e.Target())
		}
	}
	// What cannot be read is refused whole and changes nothing.
	start = e.Target()
	good := marshalTWCC(t, received(1000, 20, 5, 1))
	with := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	header := func(count, words uint16, chunks ...uint16) []byte {
		b := []byte{0x8f, 205, byte(words >> 8), byte(words), 0, 0, 0, 1, 0, 0, 0, 2, 0x03, 0xe8, byte(count >> 8), byte(count), 0, 0, 5, 1}
		for _, c := range chunks {
			b = append(b, byte(c>>8), byte(c))
		}
		return append(b, make([]byte, 4*(int(words)+1)-len(b))...)
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"nothing", nil},
		{"a header only", good[:4]},
		{"cut short", good[:len(good)-4]},
		{"length past the packet", with(good, func(b []byte) { b[3]++ })},
		{"version 1", with(good, func(b []byte) { b[0] = b[0]&0x3f | 0x40 })},
		{"a NACK", with(good, func(b []byte) { b[0] = b[0]&0xe0 | 1 })},
		{"a receiver report", with(good, func(b []byte) { b[1] = 201 })},
		{"count without chunks", header(50, 4)},
		{"a run of received without their deltas", header(65535, 5, 0x3fff)},
		{"a short vector", header(30, 5, 0xc000|0x1000|0x0800)},
	}
	for _, c := range bad {
		if err := e.Feedback(c.b, now); !errors.Is(err, ErrFeedback) {
			t.Errorf("%s: %v, want ErrFeedback", c.name, err)
		}
		if err := (&rtcp.TransportLayerCC{}).Unmarshal(c.b); err == nil {
			t.Errorf("%s: pion/rtcp reads it", c.name)
		}
		if e.Target() != start {
			t.Errorf("%s: target %d → %d", c.name, start, e.Target())
		}
	}
	// Packets never sent and far away were ignored: they did not count as loss.
	feed(t, e, lost(5000, 100), now)
	if st := e.Stats(); st.Loss != 0 {
		t.Errorf("loss %.2f from feedback about packets never sent", st.Loss)
	}
	// Good feedback still works afterwards.
	feed(t, e, received(1000, 100, 10, 9), now.Add(50*time.Millisecond))
	if st := e.Stats(); st.Acked == 0 || st.RTTms == 0 {
		t.Errorf("good feedback after odd ones not used: %+v", st)
	}
}

func TestOnlyLostFeedback(t *testing.T) {
	e := NewEstimator(Config{})
	at := t0
	for i := range 20 {
		stream(e, uint16(i*50), 50, at)
		at = at.Add(100 * time.Millisecond)
		feed(t, e, lost(uint16(i*50), 50), at)
	}
	st := e.Stats()
	if st.Loss < 0.9 || st.Target >= DefaultStart || st.Reason != "loss" {
		t.Errorf("all packets lost: %+v, want loss ≈ 1 and a loss-based decrease", st)
	}
}

func TestDuplicateAndReorderedFeedback(t *testing.T) {
	run := func(deliver func(e *Estimator, fbs []*rtcp.TransportLayerCC, at time.Time)) Stats {
		e := NewEstimator(Config{})
		var fbs []*rtcp.TransportLayerCC
		for i := range 40 {
			// 1 packet in 10 lost.
			base := uint16(i * 20)
			stream(e, base, 20, t0.Add(time.Duration(i)*20*time.Millisecond))
			fb := received(base, 20, uint32(i*20/64), uint8(i))
			fb.PacketChunks = encodeChunks(append(make([]uint16, 0, 20), symbols(20, 10)...))
			fb.RecvDeltas = fb.RecvDeltas[:18]
			fbs = append(fbs, fb)
		}
		deliver(e, fbs, t0.Add(900*time.Millisecond))
		return e.Stats()
	}
	once := run(func(e *Estimator, fbs []*rtcp.TransportLayerCC, at time.Time) {
		for _, fb := range fbs {
			feed(t, e, fb, at)
		}
	})
	twice := run(func(e *Estimator, fbs []*rtcp.TransportLayerCC, at time.Time) {
		for _, fb := range fbs {
			feed(t, e, fb, at)
			feed(t, e, fb, at)
		}
	})
	shuffled := run(func(e *Estimator, fbs []*rtcp.TransportLayerCC, at time.Time) {
		r := rand.New(rand.NewSource(1))
		for _, i := range r.Perm(len(fbs)) {
			feed(t, e, fbs[i], at)
		}
	})
	if twice.Loss != once.Loss || twice.Acked != once.Acked || twice.Target != once.Target {
		t.Errorf("duplicates changed the result: %+v vs %+v", twice, once)
	}
	if shuffled.Loss < 0.05 || shuffled.Loss > 0.15 || shuffled.Acked == 0 {
		t.Errorf("reordered feedback: %+v", shuffled)
	}
}

// symbols gives n received symbols with every k-th one lost.
func symbols(n, k int) []uint16 {
	s := make([]uint16, n)
	for i := range s {
		s[i] = rtcp.TypeTCCPacketReceivedSmallDelta
		if i%k == k-1 {
			s[i] = rtcp.TypeTCCPacketNotReceived
		}
	}
	return s
}

func TestReorderingIsNotLoss(t *testing.T) {
	// Each report says the second-last packet is missing; the next one reports it
	// received (it was reordered, as a browser re-reports a late packet).
	e := NewEstimator(Config{})
	for i := range 100 { // 2 s: the first report's apparent loss has decayed
		base := uint16(i * 20)
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		stream(e, base, 20, at)
		syms := make([]uint16, 0, 22)
		n := 20
		if i > 0 {
			// Re-report the previous report's missing packet (and, again, its last).
			base -= 2
			n += 2
			syms = append(syms, rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedSmallDelta)
		}
		for k := range 20 {
			if k == 18 {
				syms = append(syms, rtcp.TypeTCCPacketNotReceived)
			} else {
				syms = append(syms, rtcp.TypeTCCPacketReceivedSmallDelta)
			}
		}
		fb := received(base, n, uint32(i*20/64), uint8(i))
		fb.PacketChunks = encodeChunks(syms)
		fb.RecvDeltas = fb.RecvDeltas[:n-1]
		feed(t, e, fb, at.Add(60*time.Millisecond))
	}
	if st := e.Stats(); st.Loss >= lossLow || st.Reason == "loss" {
		t.Errorf("reordered packets count as lost: %+v", st)
	}
}

// A receiver without RTX drops a retransmitted copy of a packet it already has, and its
// feedback says that copy was not received. Chromium asks again for packets it got after a
// rendition switch (the network lab's bandwidth step): the copies, a tenth of what was
// sent, read as 13 % loss and held the estimate down for 10 s on an idle link. Copies
// sent with SentAgain are not the path's loss; their arrivals still count.
func TestResentCopiesLostAreNotLoss(t *testing.T) {
	e := NewEstimator(Config{})
	var seq uint16
	for i := range 100 { // 2 s of 20-packet reports, every fifth packet a copy reported lost
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		syms := make([]uint16, 20)
		for k := range 20 {
			syms[k] = rtcp.TypeTCCPacketReceivedSmallDelta
			if k%5 == 4 {
				e.SentAgain(seq+uint16(k), 1200, at.Add(time.Duration(k)*time.Millisecond))
				syms[k] = rtcp.TypeTCCPacketNotReceived
			} else {
				e.Sent(seq+uint16(k), 1200, at.Add(time.Duration(k)*time.Millisecond), 0)
			}
		}
		fb := received(seq, 20, uint32(i*20/64), uint8(i))
		fb.PacketChunks = encodeChunks(syms)
		fb.RecvDeltas = fb.RecvDeltas[:16]
		feed(t, e, fb, at.Add(60*time.Millisecond))
		seq += 20
	}
	if st := e.Stats(); st.Loss != 0 || st.Reason == "loss" {
		t.Errorf("lost copies count as the path's loss: %+v", st)
	}
	// The same packets sent as new ones are loss (20 %): the estimator does see it.
	e = NewEstimator(Config{})
	seq = 0
	for i := range 100 {
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		stream(e, seq, 20, at)
		fb := received(seq, 20, uint32(i*20/64), uint8(i))
		fb.PacketChunks = encodeChunks(symbols(20, 5))
		fb.RecvDeltas = fb.RecvDeltas[:16]
		feed(t, e, fb, at.Add(60*time.Millisecond))
		seq += 20
	}
	if st := e.Stats(); st.Loss < lossHigh {
		t.Errorf("20 %% loss of new packets reads as %.3f", st.Loss)
	}
}

// Delivered tells what the feedback said of one packet: nothing before a report, then
// whether it arrived.
func TestDelivered(t *testing.T) {
	e := NewEstimator(Config{})
	if _, known := e.Delivered(0); known {
		t.Fatal("known before anything was sent")
	}
	stream(e, 100, 20, t0)
	if _, known := e.Delivered(105); known {
		t.Fatal("known before any feedback")
	}
	fb := received(100, 20, 0, 0)
	fb.PacketChunks = encodeChunks(symbols(20, 5)) // 104, 109, 114, 119 lost
	fb.RecvDeltas = fb.RecvDeltas[:16]
	feed(t, e, fb, t0.Add(60*time.Millisecond))
	for seq, want := range map[uint16]bool{100: true, 103: true, 104: false, 119: false} {
		if got, known := e.Delivered(seq); !known || got != want {
			t.Errorf("packet %d: delivered %v known %v, want %v", seq, got, known, want)
		}
	}
	if _, known := e.Delivered(120); known {
		t.Error("a packet never sent is known")
	}
}

func TestSequenceJump(t *testing.T) {
	// The sender's counter jumps (a reset): feedback about the new numbers still counts.
	e := NewEstimator(Config{})
	stream(e, 100, 100, t0)
	feed(t, e, received(100, 100, 0, 0), t0.Add(150*time.Millisecond))
	stream(e, 40000, 100, t0.Add(200*time.Millisecond))
	feed(t, e, lost(40000, 100), t0.Add(350*time.Millisecond))
	if st := e.Stats(); st.Loss == 0 {
		t.Errorf("feedback after a sequence jump ignored: %+v", st)
	}
}

func TestConfigDefaults(t *testing.T) {
	e := NewEstimator(Config{})
	if e.Target() != DefaultStart {
		t.Errorf("default start %d", e.Target())
	}
	e = NewEstimator(Config{Start: 50_000_000, Min: 200_000, Max: 10_000_000})
	if e.Target() != 10_000_000 {
		t.Errorf("start above max: %d", e.Target())
	}
	e = NewEstimator(Config{Start: 1, Min: 300_000, Max: 100})
	if e.Target() != 300_000 {
		t.Errorf("max below min: %d", e.Target())
	}
}

func TestProbeSchedule(t *testing.T) {
	e := NewEstimator(Config{Start: 1_000_000})
	c, rate, bytes := e.Probe(t0)
	if c == 0 || rate != 3_000_000 || bytes != rate/8/50 {
		t.Fatalf("initial probe: cluster %d rate %d bytes %d, want 3× start for 20 ms", c, rate, bytes)
	}
	if c2, _, _ := e.Probe(t0.Add(time.Millisecond)); c2 != 0 {
		t.Fatalf("second probe while the first is outstanding")
	}
	// The sender ignores it: it is abandoned, and no periodic probe is due without feedback.
	if c2, _, _ := e.Probe(t0.Add(time.Second)); c2 != 0 {
		t.Fatalf("probe without any feedback")
	}
	if st := e.Stats(); st.ProbesSent != 1 || st.ProbesSucceeded != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentUse(t *testing.T) {
	// One goroutine sends, one takes feedback, one reads: the race detector checks the
	// locking.
	e := NewEstimator(Config{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			e.Sent(uint16(i), 1200, t0.Add(time.Duration(i)*time.Millisecond), 0)
			e.Probe(t0.Add(time.Duration(i) * time.Millisecond))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 100 {
			feed(t, e, received(uint16(i*20), 20, uint32(i*20/64), uint8(i)), t0.Add(time.Duration(i*20+50)*time.Millisecond))
		}
	}()
	go func() {
		defer wg.Done()
		for range 1000 {
			_ = e.Target()
			_ = e.Stats()
		}
	}()
	wg.Wait()
}

// steady drives an estimator through a few seconds of 2 Mbit/s with feedback every 50
// ms, then returns a function that sends the next 10 packets (at 4.8 ms spacing) and
// one that takes their feedback, reusing one feedback packet (its numbers rewritten in
// place) so that the test measures the estimator, its reading of the packet included, not
// the feedback's construction.
func steady(tb testing.TB) (send, feed func()) {
	tb.Helper()
	e := NewEstimator(Config{})
	raw := marshalTWCC(tb, received(0, 10, 0, 0))
	seq := uint16(0)
	at := t0
	fbSeq := uint16(0)
	fbAt := t0
	send = func() {
		for range 10 {
			e.Sent(seq, 1200, at, 0)
			seq++
			at = at.Add(4800 * time.Microsecond)
		}
	}
	feed = func() {
		binary.BigEndian.PutUint16(raw[12:], fbSeq)
		ref := uint32(fbAt.Sub(t0)/refTimeUnit) & 0xFFFFFF
		raw[16], raw[17], raw[18] = byte(ref>>16), byte(ref>>8), byte(ref)
		raw[19]++
		if err := e.Feedback(raw, fbAt.Add(60*time.Millisecond)); err != nil {
			tb.Fatal(err)
		}
		fbSeq += 10
		fbAt = fbAt.Add(48 * time.Millisecond)
	}
	for range 200 {
		send()
		feed()
	}
	return send, feed
}

func TestNoAllocations(t *testing.T) {
	send, feed := steady(t)
	if n := testing.AllocsPerRun(1000, send); n != 0 {
		t.Errorf("Sent: %.1f allocations per 10 packets", n)
	}
	if n := testing.AllocsPerRun(1000, func() { send(); feed() }); n != 0 {
		t.Errorf("Sent+Feedback: %.1f allocations per feedback", n)
	}
	e := NewEstimator(Config{})
	if n := testing.AllocsPerRun(100, func() { e.Probe(t0); _ = e.Stats(); _ = e.Target() }); n != 0 {
		t.Errorf("Probe/Stats/Target: %.1f allocations", n)
	}
}

func BenchmarkSent(b *testing.B) {
	e := NewEstimator(Config{})
	at := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Sent(uint16(i), 1200, at, 0)
		at = at.Add(500 * time.Microsecond)
	}
}

// BenchmarkFeedback measures one feedback about 10 packets (plus sending them).
func BenchmarkFeedback(b *testing.B) {
	send, feed := steady(b)
	b.ReportAllocs()
	for b.Loop() {
		send()
		feed()
	}
}

// BenchmarkFeedbackRead reads a 10-packet report's statuses and deltas: in place (what the
// estimator does) and with pion/rtcp (what it did until session 19), for docs/performance.md.
func BenchmarkFeedbackRead(b *testing.B) {
	raw := marshalTWCC(b, received(0, 10, 0, 0))
	b.Run("in-place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fb, err := parseFeedback(raw)
			if err != nil {
				b.Fatal(err)
			}
			for st := fb.statuses(); ; {
				if _, _, ok := st.next(); !ok {
					break
				}
			}
		}
	})
	b.Run("pion-rtcp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var fb rtcp.TransportLayerCC
			if err := fb.Unmarshal(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSimulation is one simulated minute at 5 Mbit/s (about 31 000 packets and 1200
// feedbacks through the wire encoding), for a sense of the whole.
func BenchmarkSimulation(b *testing.B) {
	for b.Loop() {
		runSim(b, scenario{capacity: []step{{0, 5_000_000}}, app: []step{{0, unlimited}}, queue: 150_000, duration: time.Minute})
	}
}

// Periodic probes come every 3 s at 1 Mbit/s and above, less often below, where a cluster
// is long against the link.
func TestPeriodicProbeInterval(t *testing.T) {
	for _, tc := range []struct {
		target int
		want   time.Duration
	}{{0, probeInterval}, {4_000_000, probeInterval}, {1_000_000, probeInterval}, {500_000, 6 * time.Second}, {200_000, 15 * time.Second}, {50_000, probeMaxPeriod}} {
		if got := periodicInterval(tc.target); got != tc.want {
			t.Errorf("periodicInterval(%d) = %s, want %s", tc.target, got, tc.want)
		}
	}
}

// A path queues on a queueing delay over 50 ms or overuse; it is congested also while the
// target's last change was a cut.
func TestStatsCongestion(t *testing.T) {
	for _, tc := range []struct {
		st                  Stats
		queueing, congested bool
	}{
		{Stats{QueueMs: 10, Delay: "normal", Reason: "increase"}, false, false},
		{Stats{QueueMs: 80, Delay: "normal", Reason: "increase"}, true, true},
		{Stats{QueueMs: 10, Delay: "overuse", Reason: "increase"}, true, true},
		{Stats{QueueMs: 10, Delay: "normal", Reason: "loss"}, false, true},
		{Stats{QueueMs: 10, Delay: "normal", Reason: "no feedback"}, false, true},
	} {
		if q, c := tc.st.Queueing(), tc.st.Congested(); q != tc.queueing || c != tc.congested {
			t.Errorf("%+v: queueing %v congested %v, want %v %v", tc.st, q, c, tc.queueing, tc.congested)
		}
	}
}

// TestVanishedProbeUndoesTheRaise: a probe small enough to ride a token bucket's burst
// raises the estimate; the follow-up at twice that rate never comes back (its packets are
// not in any feedback, while packets sent after it are): the raise is undone.
func TestVanishedProbeUndoesTheRaise(t *testing.T) {
	e := NewEstimator(Config{Start: 1_000_000, Max: 20_000_000})
	at := t0
	// Some media first, acknowledged, so that the estimator has feedback and a clock.
	stream(e, 0, 20, at)
	feed(t, e, received(0, 20, 0, 0), at.Add(30*time.Millisecond))
	before := e.Target()

	at = at.Add(100 * time.Millisecond)
	c, _, bytes := e.Probe(at)
	if c == 0 {
		t.Fatal("no initial probe")
	}
	n := (bytes + 1199) / 1200
	for i := range n {
		e.Sent(uint16(20+i), 1200, at.Add(time.Duration(i)*time.Millisecond), c)
	}
	feed(t, e, received(20, n, 1, 1), at.Add(40*time.Millisecond))
	raised := e.Target()
	if raised <= before {
		t.Fatalf("the probe did not raise the target: %d → %d", before, raised)
	}

	at = at.Add(50 * time.Millisecond)
	c2, _, bytes2 := e.Probe(at)
	if c2 == 0 {
		t.Fatal("no follow-up probe after a probe limited by its own rate")
	}
	n2 := (bytes2 + 1199) / 1200
	next := uint16(20 + n)
	for i := range n2 {
		e.Sent(next+uint16(i), 1200, at.Add(time.Duration(i)*time.Millisecond), c2)
	}
	// Media after it is acknowledged; the follow-up's packets are in no feedback.
	media := next + uint16(n2)
	for k := range 12 {
		sent := at.Add(time.Duration(300+100*k) * time.Millisecond)
		stream(e, media+uint16(10*k), 10, sent)
		feed(t, e, received(media+uint16(10*k), 10, uint32(sent.Sub(t0)/(64*time.Millisecond)), uint8(2+k)), sent.Add(30*time.Millisecond))
	}
	if got := e.Target(); got >= raised || got > before*11/10 {
		t.Errorf("after the follow-up vanished the target is %d (before the probe %d, raised to %d): want the raise undone", got, before, raised)
	}
}

// A probe holds at most what the path has been seen to deliver in probeMaxQueue, and never
// fewer bytes than a result needs: an estimate far above a slow link (a token bucket's burst
// carried an earlier probe) must not size a probe that queues there for a quarter of a second.
// Before anything was delivered, the rate alone sizes it.
func TestProbeSizeIsBoundByTheDeliveredRate(t *testing.T) {
	var p prober
	p.init()
	for _, tc := range []struct{ rate, delivered, want int }{
		{2_000_000, 0, 5000},              // 20 ms at the probe's rate
		{2_000_000, 1_000_000, 5000},      // twice what the path carries: the rate decides
		{8_000_000, 400_000, 4000},        // 80 ms of what 400 kbit/s delivers
		{2_000_000, 200_000, 3000},        // never under ten packets
		{100_000, 200_000, probeMinBytes}, // a slow probe keeps its floor
	} {
		if _, _, got := p.issue(0, tc.rate, tc.delivered); got != tc.want {
			t.Errorf("a probe at %d bit/s on a path delivering %d: %d bytes, want %d", tc.rate, tc.delivered, got, tc.want)
		}
	}
}

// The recent delivered rate is measured between arrivals: after a pause (a held keyframe),
// packets that come back to back out of a queue give the bottleneck's rate, not the average
// over a window that was half empty; arrivals spread over too short a time give none.
func TestRecentRate(t *testing.T) {
	var a ackedRate
	us := int64(1_000_000)
	add := func(every time.Duration, n int) {
		for range n {
			us += every.Microseconds()
			a.add(us, 1000)
		}
	}
	add(8*time.Millisecond, 50) // 1 Mbit/s
	if r := a.recentRate(150 * time.Millisecond); r < 990_000 || r > 1_010_000 {
		t.Errorf("steady 1 Mbit/s: recent rate %d", r)
	}
	us += (120 * time.Millisecond).Microseconds() // a pause, then 80 ms back to back at 0.5 Mbit/s
	add(16*time.Millisecond, 5)
	if r := a.recentRate(150 * time.Millisecond); r < 490_000 || r > 510_000 {
		t.Errorf("0.5 Mbit/s after a pause: recent rate %d, want the rate between arrivals", r)
	}
	us += (200 * time.Millisecond).Microseconds()
	add(10*time.Millisecond, 3) // 20 ms of arrivals: too short to tell
	if r := a.recentRate(150 * time.Millisecond); r != 0 {
		t.Errorf("arrivals spread over 20 ms: recent rate %d, want none", r)
	}
}
