package congestion

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// A deterministic link simulator: the sender (an encoder producing frames at
// min(Target, app rate), a pacer, and probes when Probe asks) feeds a bottleneck of
// capacity C with a drop-tail queue and a propagation delay; the receiver reports
// arrivals in TWCC feedback, encoded as Chromium does (reference time, feedback count,
// run-length and status vector chunks, 250 µs deltas) and passed through pion/rtcp's
// Marshal and Unmarshal so the estimator sees real wire encoding.

const (
	simFrameInterval = time.Second / 30
	simMTU           = 1200
	simPaceFactor    = 2.5 // libwebrtc's pacer sends at 2.5× the target
	simProbeCall     = 5 * time.Millisecond
	simSample        = 100 * time.Millisecond
)

// step is a piecewise-constant value: v from at on.
type step struct {
	at time.Duration
	v  int
}

func valueAt(steps []step, t time.Duration) int {
	v := steps[0].v
	for _, s := range steps {
		if t >= s.at {
			v = s.v
		}
	}
	return v
}

type scenario struct {
	capacity   []step // bit/s of the bottleneck
	app        []step // bit/s the encoder could produce at most
	queue      int    // bytes of the drop-tail queue
	prop       time.Duration
	loss       float64 // random loss after the bottleneck
	fbInterval time.Duration
	duration   time.Duration
	noProbe    bool             // the sender ignores Probe
	blackout   [2]time.Duration // feedback lost in [from, to)
	seqStart   uint16
	refOffset  time.Duration // receiver clock at sim time 0
	cfg        Config
	seed       int64

	// burst > 0 makes the bottleneck a token bucket as Linux tbf: tokens accrue at the
	// capacity up to burst bytes, and a packet leaves at line rate while they last; queue
	// is then tbf's limit (see tbfLimit).
	burst int
	// keyframe > 0: the first frame has this many bytes and leaves unpaced (at line rate),
	// as the device sends a session's first keyframe.
	keyframe int
	// padProbes: probes are padding-only packets of at most 255 bytes of payload (RTP
	// padding's length is one byte) plus 50 bytes of headers, as the device sends them.
	padProbes bool
}

// simLineRate is the rate of the links around the bottleneck (a veth pair is faster).
const simLineRate = 1_000_000_000

// tbfLimit is the queue (bytes) tc gives a tbf of rate bit/s, latency and burst bytes.
func tbfLimit(rate int, latency time.Duration, burst int) int {
	return int(int64(rate)*int64(latency)/8/int64(time.Second)) + burst
}

type sample struct {
	at                      time.Duration
	capacity, target, acked int
	queue                   time.Duration // queueing delay of the last packet sent
	loss                    float64
	delay, reason           string
}

type simPacket struct {
	size    int
	sent    time.Duration
	arrival time.Duration // -1: lost
	wait    time.Duration // time queued at the bottleneck
}

type qItem struct {
	finish time.Duration
	size   int
}

type delivery struct {
	at  time.Duration
	raw []byte
}

type sim struct {
	t   testing.TB
	sc  scenario
	e   *Estimator
	t0  time.Time
	rng *rand.Rand

	pkts     []simPacket
	pacerQ   []int
	nextSend time.Duration
	probe    struct{ cluster, rate, left, size int }

	busyUntil time.Duration
	queue     []qItem
	qBytes    int
	tokens    float64 // tbf: bytes in the bucket at tokAt
	tokAt     time.Duration
	fast      int // packets of the first keyframe still to send unpaced

	reported  int
	fbCount   uint8
	pending   []delivery
	delivered int
	samples   []sample
	accepted  []int // targets set by probes that succeeded, in order
}

func runSim(t testing.TB, sc scenario) *sim {
	t.Helper()
	if sc.fbInterval == 0 {
		sc.fbInterval = 50 * time.Millisecond
	}
	if sc.prop == 0 {
		sc.prop = 25 * time.Millisecond
	}
	s := &sim{
		t:   t,
		sc:  sc,
		e:   NewEstimator(sc.cfg),
		t0:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		rng: rand.New(rand.NewSource(sc.seed + 1)),
	}
	s.tokens = float64(sc.burst)
	var now, nextFrame, nextProbe, nextSample time.Duration
	nextFb := sc.fbInterval
	for now < sc.duration {
		next := min(nextFb, nextFrame, nextSample, sc.duration)
		if !sc.noProbe {
			next = min(next, nextProbe)
		}
		if len(s.pending) > 0 {
			next = min(next, s.pending[0].at)
		}
		if s.hasWork() {
			next = min(next, max(s.nextSend, now))
		}
		now = next
		for len(s.pending) > 0 && s.pending[0].at <= now {
			s.deliver(s.pending[0])
			s.pending = s.pending[1:]
		}
		if now >= nextFb {
			s.feedback(now)
			nextFb += sc.fbInterval
		}
		if now >= nextFrame {
			s.frame(now)
			nextFrame += simFrameInterval
		}
		if !sc.noProbe && now >= nextProbe {
			if s.probe.left <= 0 {
				if c, r, b := s.e.Probe(s.t0.Add(now)); c != 0 {
					if !s.hasWork() {
						s.nextSend = max(s.nextSend, now)
					}
					s.probe.cluster, s.probe.rate, s.probe.left = c, r, b
					s.probe.size = min(simMTU, max(b/10, 100))
					if sc.padProbes {
						s.probe.size = 255 + 50
					}
				}
			}
			nextProbe += simProbeCall
		}
		for s.hasWork() && s.nextSend <= now {
			s.sendOne()
		}
		if now >= nextSample {
			s.sample(now)
			nextSample += simSample
		}
	}
	return s
}

func (s *sim) hasWork() bool { return len(s.pacerQ) > 0 || s.probe.left > 0 }

func (s *sim) frame(now time.Duration) {
	rate := min(s.e.Target(), valueAt(s.sc.app, now))
	bytes := rate / 8 / 30
	first := now == 0 && s.sc.keyframe > 0
	if first {
		bytes = s.sc.keyframe
	}
	if bytes <= 0 {
		return
	}
	if !s.hasWork() {
		s.nextSend = max(s.nextSend, now) // an idle pacer has no credit to catch up
	}
	n := (bytes + simMTU - 1) / simMTU
	if first {
		s.fast = n
	}
	for i := range n {
		sz := bytes / n
		if i < bytes%n {
			sz++
		}
		s.pacerQ = append(s.pacerQ, sz)
	}
}

func (s *sim) sendOne() {
	at := s.nextSend
	size, cluster := 0, 0
	rate := int(simPaceFactor * float64(s.e.Target()))
	if s.fast > 0 {
		s.fast--
		size, s.pacerQ, rate = s.pacerQ[0], s.pacerQ[1:], simLineRate
	} else if s.probe.left > 0 {
		cluster, rate = s.probe.cluster, s.probe.rate
		if len(s.pacerQ) > 0 {
			size, s.pacerQ = s.pacerQ[0], s.pacerQ[1:]
		} else {
			size = s.probe.size
			if s.sc.padProbes {
				size = min(s.probe.left, 255) + 50
			}
		}
		s.probe.left -= size
	} else {
		size, s.pacerQ = s.pacerQ[0], s.pacerQ[1:]
	}
	seq := s.sc.seqStart + uint16(len(s.pkts))
	s.e.Sent(seq, size, s.t0.Add(at), cluster)
	s.pkts = append(s.pkts, s.link(at, size))
	s.nextSend = at + time.Duration(int64(size)*8*int64(time.Second)/int64(max(rate, 1)))
}

// link passes a packet through the bottleneck.
func (s *sim) link(at time.Duration, size int) simPacket {
	for len(s.queue) > 0 && s.queue[0].finish <= at {
		s.qBytes -= s.queue[0].size
		s.queue = s.queue[1:]
	}
	p := simPacket{size: size, sent: at, arrival: -1}
	if s.qBytes+size > s.sc.queue {
		return p // drop-tail
	}
	start := max(at, s.busyUntil)
	c := valueAt(s.sc.capacity, start)
	finish := start + time.Duration(int64(size)*8*int64(time.Second)/int64(c))
	if s.sc.burst > 0 {
		// Token bucket: wait for the packet's tokens, then leave at line rate.
		tok := min(float64(s.sc.burst), s.tokens+float64(c)/8*(start-s.tokAt).Seconds())
		if tok < float64(size) {
			start += time.Duration((float64(size) - tok) * 8 / float64(c) * float64(time.Second))
			tok = float64(size)
		}
		s.tokens, s.tokAt = tok-float64(size), start
		finish = start + time.Duration(int64(size)*8*int64(time.Second)/simLineRate)
	}
	s.busyUntil = finish
	s.queue = append(s.queue, qItem{finish, size})
	s.qBytes += size
	p.wait = start - at
	if s.sc.loss > 0 && s.rng.Float64() < s.sc.loss {
		return p
	}
	p.arrival = finish + s.sc.prop
	return p
}

// feedback builds a TWCC report of the packets arrived by now and not yet reported.
func (s *sim) feedback(now time.Duration) {
	last := -1
	for i := s.reported; i < len(s.pkts) && s.pkts[i].sent <= now; i++ {
		if a := s.pkts[i].arrival; a >= 0 && a <= now {
			last = i
		}
	}
	if last < 0 {
		return
	}
	first := s.reported
	s.reported = last + 1
	raw := s.encode(first, last)
	if now >= s.sc.blackout[0] && now < s.sc.blackout[1] {
		return
	}
	s.pending = append(s.pending, delivery{at: now + s.sc.prop, raw: raw})
}

func (s *sim) remoteUs(t time.Duration) int64 { return (t + s.sc.refOffset).Microseconds() }

// encode makes a TWCC report for packets first..last, as Chromium's encoder does.
func (s *sim) encode(first, last int) []byte {
	var firstArr int64 = -1
	for i := first; i <= last; i++ {
		if s.pkts[i].arrival >= 0 {
			firstArr = s.remoteUs(s.pkts[i].arrival)
			break
		}
	}
	ref := firstArr / refTimeUnit.Microseconds()
	lastUs := ref * refTimeUnit.Microseconds()
	syms := make([]uint16, 0, last-first+1)
	var deltas []*rtcp.RecvDelta
	for i := first; i <= last; i++ {
		if s.pkts[i].arrival < 0 {
			syms = append(syms, rtcp.TypeTCCPacketNotReceived)
			continue
		}
		us := s.remoteUs(s.pkts[i].arrival)
		ticks := (us - lastUs + rtcp.TypeTCCDeltaScaleFactor/2) / rtcp.TypeTCCDeltaScaleFactor
		lastUs += ticks * rtcp.TypeTCCDeltaScaleFactor
		typ := uint16(rtcp.TypeTCCPacketReceivedSmallDelta)
		if ticks < 0 || ticks > 255 {
			typ = rtcp.TypeTCCPacketReceivedLargeDelta
		}
		syms = append(syms, typ)
		deltas = append(deltas, &rtcp.RecvDelta{Type: typ, Delta: ticks * rtcp.TypeTCCDeltaScaleFactor})
	}
	fb := &rtcp.TransportLayerCC{
		SenderSSRC:         1,
		MediaSSRC:          2,
		BaseSequenceNumber: s.sc.seqStart + uint16(first),
		PacketStatusCount:  uint16(len(syms)),
		ReferenceTime:      uint32(ref) & 0xFFFFFF,
		FbPktCount:         s.fbCount,
		PacketChunks:       encodeChunks(syms),
		RecvDeltas:         deltas,
	}
	s.fbCount++
	return marshalTWCC(s.t, fb)
}

// encodeChunks packs status symbols: runs of 7 or more as run-length chunks, the rest as
// 1-bit status vectors (14 symbols) or, when a large delta is among them, 2-bit ones (7).
func encodeChunks(syms []uint16) []rtcp.PacketStatusChunk {
	var out []rtcp.PacketStatusChunk
	for i := 0; i < len(syms); {
		j := i
		for j < len(syms) && syms[j] == syms[i] && j-i < 8191 {
			j++
		}
		if j-i >= 7 || j == len(syms) {
			out = append(out, &rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: syms[i], RunLength: uint16(j - i)})
			i = j
			continue
		}
		end := min(i+14, len(syms))
		if slices.Contains(syms[i:end], rtcp.TypeTCCPacketReceivedLargeDelta) {
			end = min(i+7, len(syms))
			list := make([]uint16, 7)
			copy(list, syms[i:end])
			out = append(out, &rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: list})
		} else {
			list := make([]uint16, 14)
			copy(list, syms[i:end])
			out = append(out, &rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: list})
		}
		i = end
	}
	return out
}

// marshalTWCC fills in the RTCP header and encodes fb.
func marshalTWCC(t testing.TB, fb *rtcp.TransportLayerCC) []byte {
	t.Helper()
	n := 4 + 16 + 2*len(fb.PacketChunks)
	for _, d := range fb.RecvDeltas {
		if d.Type == rtcp.TypeTCCPacketReceivedSmallDelta {
			n++
		} else {
			n += 2
		}
	}
	padded := (n + 3) / 4 * 4
	fb.Header = rtcp.Header{
		Padding: padded != n,
		Count:   rtcp.FormatTCC,
		Type:    rtcp.TypeTransportSpecificFeedback,
		Length:  uint16(padded/4 - 1),
	}
	raw, err := fb.Marshal()
	if err != nil {
		t.Fatalf("marshal TWCC: %v", err)
	}
	return raw
}

func (s *sim) deliver(d delivery) {
	won := s.e.pr.succeeded
	if err := s.e.Feedback(d.raw, s.t0.Add(d.at)); err != nil {
		s.t.Fatalf("TWCC: %v", err)
	}
	s.delivered++
	if s.e.pr.succeeded > won {
		s.accepted = append(s.accepted, s.e.Target())
	}
}

func (s *sim) sample(now time.Duration) {
	st := s.e.Stats()
	var q time.Duration
	if len(s.pkts) > 0 {
		q = s.pkts[len(s.pkts)-1].wait
	}
	s.samples = append(s.samples, sample{
		at: now, capacity: valueAt(s.sc.capacity, now), target: st.Target, acked: st.Acked,
		queue: q, loss: st.Loss, delay: st.Delay, reason: st.Reason,
	})
}

// targetAt is the target sampled at t (the last sample at or before it).
func (s *sim) targetAt(t time.Duration) int {
	v := 0
	for _, x := range s.samples {
		if x.at <= t {
			v = x.target
		}
	}
	return v
}

// firstAt is the first sample time at or after from where ok holds, or -1.
func (s *sim) firstAt(from time.Duration, ok func(sample) bool) time.Duration {
	for _, x := range s.samples {
		if x.at >= from && ok(x) {
			return x.at
		}
	}
	return -1
}

// queueDelays gives the median, 95th percentile and max bottleneck wait of the packets
// sent in [from, to).
func (s *sim) queueDelays(from, to time.Duration) (p50, p95, top time.Duration) {
	var w []time.Duration
	for _, p := range s.pkts {
		if p.sent >= from && p.sent < to {
			w = append(w, p.wait)
		}
	}
	if len(w) == 0 {
		return 0, 0, 0
	}
	slices.Sort(w)
	return w[len(w)/2], w[len(w)*95/100], w[len(w)-1]
}

// lossRate is the fraction of the packets sent in [from, to) that never arrived.
func (s *sim) lossRate(from, to time.Duration) float64 {
	var n, lost int
	for _, p := range s.pkts {
		if p.sent >= from && p.sent < to {
			n++
			if p.arrival < 0 {
				lost++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(lost) / float64(n)
}

// targetP95 is the 95th percentile of the sampled target in [from, to).
func (s *sim) targetP95(from, to time.Duration) int {
	var v []int
	for _, x := range s.samples {
		if x.at >= from && x.at < to {
			v = append(v, x.target)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)*95/100]
}

// logTrace prints target vs capacity every `every` in [from, to).
func (s *sim) logTrace(t *testing.T, from, to, every time.Duration) {
	t.Helper()
	var b strings.Builder
	next := from
	for _, x := range s.samples {
		if x.at < next || x.at >= to {
			continue
		}
		next = x.at + every
		fmt.Fprintf(&b, "\n  t=%5.1fs C=%5.2f target=%5.2f acked=%5.2f queue=%4dms loss=%4.1f%% %-8s %s",
			x.at.Seconds(), mbit(x.capacity), mbit(x.target), mbit(x.acked), x.queue.Milliseconds(), 100*x.loss, x.delay, x.reason)
	}
	t.Logf("trace (Mbit/s):%s", b.String())
}

func mbit(bps int) float64 { return float64(bps) / 1e6 }
