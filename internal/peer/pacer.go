package peer

import (
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// Pacing. Every session queues its packets with its sender; one pacer per engine writes them
// in time slices, each session at its own rate (a multiple of its bandwidth estimate), so a
// frame's packets are spread over part of the frame interval instead of leaving in one burst
// that overflows a bottleneck's queue or a receiver's socket buffer. Within a slice the pacer
// writes for every session it serves before it flushes: with a batching socket (Batcher) the
// whole slice leaves in a few system calls.

// Batcher is a socket that sends the writes made between Hold and Flush together (the
// engine's shared UDP socket: internal/udpbatch).
type Batcher interface {
	Hold()
	Flush() error
}

// bandwidthEstimator is what a sender needs of its viewer's bandwidth estimate.
type bandwidthEstimator interface {
	// Sent records a packet leaving: its transport-wide number, size on the wire, time, and
	// probe cluster (0: media).
	Sent(seq uint16, size int, at time.Time, probe int)
	// SentAgain records a packet the receiver may already have, whose loss it may report for
	// a copy it dropped as one it has.
	SentAgain(seq uint16, size int, at time.Time)
	// Delivered says whether the feedback reported transport-wide number seq (known), and
	// whether it arrived.
	Delivered(seq uint16) (delivered, known bool)
	// RTT is the round trip from a packet's send to its feedback, the queue included.
	RTT() time.Duration
	// Queue is the path's queueing delay as the last feedback showed it.
	Queue() time.Duration
	// Feedback takes a transport-wide feedback packet (one RTCP packet, read in place); one
	// it cannot read changes nothing and is an error.
	Feedback(b []byte, now time.Time) error
	// Target is the estimate in bit/s.
	Target() int
	// Probe says whether to probe now: send about bytes at rate bit/s, marked cluster.
	Probe(now time.Time) (cluster, rate, bytes int)
}

const (
	// pacingSlice is how often the pacer runs while it has work: short against a frame
	// interval (33 ms), long enough that a slice holds packets for many viewers.
	pacingSlice = 5 * time.Millisecond
	// pacingFactor is the pacing rate over the estimate: a frame leaves in under half its
	// interval, and the encoder's overshoot (a keyframe) does not wait behind it.
	pacingFactor = 2.5
	// fastStartRate paces a viewer's first keyframe: a picture at once (fast start), at a rate
	// that still interleaves many joining viewers instead of one burst of each.
	fastStartRate = 50_000_000
	// maxQueueDelay: beyond it the sender drops queued video to the next keyframe (shedLocked)
	// rather than let the viewer's picture fall further behind.
	maxQueueDelay = 250 * time.Millisecond
	// drainQueue and maxDrainWait: the first keyframe of a rendition switched to waits while
	// the path queues more than drainQueue, at most maxDrainWait (sender.drainingLocked).
	drainQueue   = 50 * time.Millisecond
	maxDrainWait = 500 * time.Millisecond
	// maxQueuePackets bounds a sender's queue; past it video is dropped to the next keyframe.
	maxQueuePackets = 4096
	// minResendInterval is the least time between two retransmissions of one packet.
	minResendInterval = 20 * time.Millisecond
	// resendMemory: a packet last resent longer ago than this is another one (sequence
	// numbers wrap; the history answers NACKs for 1.5 s at most).
	resendMemory = 5 * time.Second
	// maxResendDebt: retransmissions wait while the budget is overdrawn by this much of the
	// pacing rate.
	maxResendDebt = 100 * time.Millisecond
	// maxResends bounds the retransmissions waiting per viewer.
	maxResends = 512
	// resendShare of the estimate is the most retransmissions take, with resendBurst of
	// it saved up: the pacing budget runs at 2.5 × the estimate, and retransmissions that
	// used all of it starved new video behind a slow path (a viewer that NACKed every lost
	// packet each 100 ms ended with 43 s of video queued at 50 kbit/s).
	resendShare = 0.3
	resendBurst = 200 * time.Millisecond
	// wireOverhead is what SRTP (10-byte tag), UDP and IPv4 add to each RTP packet.
	wireOverhead = 10 + 8 + 20
)

// pkt is one queued packet: payload idx of frame f on track t.
type pkt struct {
	t     *localTrack
	f     *stream.Frame
	idx   int32
	seq   uint16 // resends: the sequence number it had
	ts    uint32 // resends: the RTP timestamp it had
	kind  uint8
	probe int32 // probe cluster of a probe's copy
	last  bool  // the frame's last packet of this push: its reference is released after it
	// again: a resend of a packet resent before. The receiver may have the earlier copy and
	// drop this one before its feedback counts it (Chromium asks again for packets it got),
	// so its loss is not the path's.
	again bool
}

const (
	pktMedia  uint8 = iota
	pktResend       // a retransmission of payload idx of f, as seq
	pktProbe        // a padding-only packet of idx bytes, part of probe cluster probe
	pktRepad        // a padding-only packet sent again as seq (it was NACKed)
)

// pktQueue is a FIFO of packets that reuses its storage: no allocation in steady state.
type pktQueue struct {
	q    []pkt
	head int
}

func (q *pktQueue) len() int { return len(q.q) - q.head }
func (q *pktQueue) push(p pkt) {
	if q.head > 0 && len(q.q) == cap(q.q) {
		n := copy(q.q, q.q[q.head:])
		clear(q.q[n:])
		q.q, q.head = q.q[:n], 0
	}
	q.q = append(q.q, p)
}
func (q *pktQueue) pop() pkt {
	p := q.q[q.head]
	q.q[q.head] = pkt{}
	q.head++
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	}
	return p
}

// drop releases every queued packet's frame reference.
func (q *pktQueue) drop() {
	for q.len() > 0 {
		if p := q.pop(); p.f != nil && (p.last || p.kind == pktResend) {
			p.f.Release()
		}
	}
}

// pacer writes every session's queued packets at the session's rate. A sender with new
// packets is served at once (a frame's first packets do not wait for a slice); a sender
// whose budget left packets waiting is served again each pacingSlice until its queue is
// empty. Idle senders cost nothing: a slice visits only the senders with work.
type pacer struct {
	batch Batcher // nil: each packet is written at once
	wake  chan struct{}

	mu      sync.Mutex
	senders int       // registered
	ready   []*sender // poked since the last pass (listed)
	running bool

	// Owned by run.
	work, busy []*sender
	pass       uint64
}

func newPacer(batch Batcher) *pacer {
	return &pacer{batch: batch, wake: make(chan struct{}, 1)}
}

// add registers s; the pacer runs while it has senders.
func (p *pacer) add(s *sender) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.senders++
	if !p.running {
		p.running = true
		go p.run()
	}
}

func (p *pacer) remove(*sender) {
	p.mu.Lock()
	p.senders--
	p.mu.Unlock()
	p.signal()
}

// poke tells the pacer s has new packets.
func (p *pacer) poke(s *sender) {
	p.mu.Lock()
	if !s.listed {
		s.listed = true
		p.ready = append(p.ready, s)
	}
	p.mu.Unlock()
	p.signal()
}

func (p *pacer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pacer) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed, sliceDue := false, false
	for {
		p.mu.Lock()
		if p.senders == 0 && len(p.ready) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.work = append(p.work[:0], p.ready...)
		for _, s := range p.ready {
			s.listed = false
		}
		clear(p.ready)
		p.ready = p.ready[:0]
		p.mu.Unlock()
		if sliceDue {
			for _, s := range p.busy {
				s.busy = false
			}
			p.work = append(p.work, p.busy...)
			clear(p.busy)
			p.busy = p.busy[:0]
			sliceDue = false
		}
		p.pass++
		now := time.Now()
		if p.batch != nil {
			p.batch.Hold()
		}
		for _, s := range p.work {
			if s.pass == p.pass {
				continue // listed twice (ready and busy)
			}
			s.pass = p.pass
			if s.drain(now) && !s.busy {
				s.busy = true
				p.busy = append(p.busy, s)
			}
		}
		if p.batch != nil {
			_ = p.batch.Flush() // per-destination errors are counted by the batcher
		}
		clear(p.work)
		// Senders with packets left are due again a slice later; senders with new packets
		// are served as they come, without moving that slice.
		if len(p.busy) > 0 && !armed {
			timer.Reset(pacingSlice)
			armed = true
		}
		if armed {
			select {
			case <-timer.C:
				armed, sliceDue = false, true
			case <-p.wake:
			}
			continue
		}
		<-p.wake
	}
}

// sender is one session's packet queue and pacing state.
type sender struct {
	p   *pacer
	est bandwidthEstimator
	// paced: the receiver gives transport-wide feedback, so there is an estimate to pace
	// at; without one packets leave at fastStartRate.
	paced bool
	// frameSent is called when a frame's last packet has been written.
	frameSent func(t *localTrack, f *stream.Frame, now time.Time)
	// keyframe asks the source for a keyframe on a video track (the queue was cut).
	keyframe func(track uint8)
	// video is the session's video track, whose history probes copy (nil: no probes).
	video *localTrack

	mu      sync.Mutex
	media   pktQueue // in order, paced
	prio    pktQueue // audio: first, counted against the budget
	rtx     pktQueue // retransmissions: before new video, within the budget's debt limit
	probes  pktQueue // a probe's copies, at the probe's rate
	queued  int      // payload bytes in media
	budget  float64  // bytes that may leave now
	rbudget float64  // bytes retransmissions may take now (resendShare)
	pbudget float64  // the probe's
	prate   int      // the probe's rate
	last    time.Time
	tw      uint16
	// videoTrack is the source track (rendition) of the video queued last; keyTrack that of
	// the last video keyframe that began to leave.
	videoTrack, keyTrack uint8
	fast                 bool // until the first video keyframe has left
	waitKey              bool // the queue was cut: video waits for the next keyframe
	// drainSince: video waits for the path's queue to drain before a switch's keyframe
	// (zero: it does not).
	drainSince time.Time
	// midFrame: part of a video frame has left, the rest waits (no padding in between).
	midFrame bool
	// listed (under the pacer's mu): in the pacer's ready list; pass: the pacer's pass that
	// served it last (the pacer's goroutine only).
	listed bool
	pass   uint64
	busy   bool // in the pacer's busy list (the pacer's goroutine only)
	closed bool
	stats  senderStats
	// recent are the last packets queued for retransmission, so a repeated NACK within a
	// round trip is not answered twice.
	recent     [128]resent
	recentNext int
}

type resent struct {
	t   *localTrack
	seq uint16
	at  time.Time
	// tws are the transport-wide numbers of the last copies written, newest at
	// (copies-1) % len; queued: a copy waits in the queue.
	tws    [4]uint16
	copies uint8
	queued bool
}

// delivered reports whether the feedback says one of r's copies arrived, and whether the
// newest copy's fate is known (false also while a copy waits in the queue).
func (r *resent) delivered(est bandwidthEstimator) (delivered, lastKnown bool) {
	n := min(int(r.copies), len(r.tws))
	for k := range n {
		d, known := est.Delivered(r.tws[k])
		if d {
			return true, true
		}
		if k == (int(r.copies)-1)%len(r.tws) {
			lastKnown = known
		}
	}
	return false, lastKnown && !r.queued
}

type senderStats struct {
	Retransmitted uint64 `json:"retransmitted"`
	// ResendsSkipped: NACKed packets resent less than a round trip before, or whose last
	// copy the viewer's feedback says arrived; ResendsDropped:
	// retransmissions that waited behind maxResends others.
	ResendsSkipped uint64 `json:"resends_skipped"`
	ResendsDropped uint64 `json:"resends_dropped"`
	ProbePackets   uint64 `json:"probe_packets"`
	// FECPackets: forward error correction packets sent (RED/ULPFEC, while the viewer
	// reports loss).
	FECPackets   uint64 `json:"fec_packets"`
	QueueDropped uint64 `json:"queue_dropped_frames"`
}

func newSender(p *pacer, est bandwidthEstimator) *sender {
	return &sender{p: p, est: est, fast: true}
}

// offer queues every payload of f on t, taking over the caller's reference to f; false
// refuses it (the queue is full: the stream then drops the track to its next keyframe). It is
// called as the stream publishes, with the stream's lock held: it never blocks.
func (s *sender) offer(t *localTrack, f *stream.Frame) bool {
	n := f.Payloads.Len()
	if n == 0 {
		f.Release()
		return true
	}
	video := t.src.Kind == codec.Video
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f.Release()
		return true
	}
	q := &s.media
	if !video {
		q = &s.prio
	} else if s.waitKey && !f.Keyframe {
		// The queue was cut: nothing may refer to what it dropped.
		s.stats.QueueDropped++
		s.mu.Unlock()
		f.Release()
		return true
	} else if f.Keyframe {
		s.waitKey = false
		// A keyframe behind a long queue makes the video still waiting useless: send the new
		// picture rather than stale ones. At the first keyframe of another rendition (a
		// switch) so are the old one's retransmissions: they would only delay it on a path
		// too slow for the old one (seen: 9 s of main stream backlog before the sub stream
		// showed). A short queue goes first, switch or not: dropped pictures are a gap the
		// viewer sees (a switch that cut 100 ms of main stream before a 200 ms sub keyframe
		// froze the picture).
		//
		// A switch while the path queues (the usual reason for one: its queue is filling)
		// cuts the old rendition's video and holds the new keyframe until the queue has
		// drained: sent at once it joins the queue the old rendition filled and is lost there,
		// with its repairs one round trip apart behind it (seconds of still picture).
		switched := s.videoTrack != 0 && s.videoTrack != f.Track
		drain := switched && s.paced && !s.fast && s.est.Queue() > drainQueue
		if s.media.len() > 0 && (drain || s.queueDelayLocked() > maxQueueDelay/2) {
			s.cutVideoLocked(len(s.media.q))
			if switched {
				s.dropResendsLocked(f.Track)
			}
		}
		if drain {
			s.drainSince = time.Now()
		}
		s.videoTrack = f.Track
	} else if s.media.len()+n > maxQueuePackets {
		s.stats.QueueDropped++
		s.mu.Unlock()
		return false
	}
	for i := range n {
		q.push(pkt{t: t, f: f, idx: int32(i), kind: pktMedia, last: i == n-1})
		if video {
			s.queued += len(f.Payloads.At(i))
		}
	}
	s.mu.Unlock()
	s.p.poke(s)
	return true
}

// resend queues retransmissions of the packets a receiver reported lost on t. A packet
// resent less than a round trip ago is not sent again (its retransmission may still be on its
// way: a receiver repeats its NACKs), so loss on a slow path does not multiply its traffic.
func (s *sender) resend(t *localTrack, lost []uint16) {
	// A copy may still be on its way for a round trip, queue included: the receiver report's
	// round trip can miss the queue (0.7 ms while 400 ms of a slow link's queue stood between,
	// and a packet went 6 times, each copy but the first dropped by the viewer as a replay).
	interval := max(time.Duration(t.rtt()*float64(time.Millisecond)), s.est.RTT(), minResendInterval)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	// Copies on a retransmission stream of their own each count (none is dropped as a replay).
	apart := t.retransmitsApart()
	for _, seq := range lost {
		lately, again := s.resentLately(t, seq, now, interval)
		again = again && !apart
		if lately {
			s.stats.ResendsSkipped++
			continue
		}
		t.nackedOnce()
		if f, idx, ts, ok := t.lookup(seq); ok {
			if t.src.Kind == codec.Video && s.keyTrack != 0 && f.Track != s.keyTrack {
				// A rendition the viewer has left: the new one's keyframe is on its way,
				// and repairs of the old picture would only queue ahead of it on a path
				// too slow for the old rendition.
				f.Release()
				s.stats.ResendsSkipped++
				continue
			}
			s.pushResendLocked(pkt{t: t, f: f, idx: int32(idx), seq: seq, ts: ts, kind: pktResend, again: again})
		} else if t.paddedAs(seq) {
			// A lost probe packet: its sequence number must arrive, or the receiver waits
			// for it and asks for a keyframe.
			s.pushResendLocked(pkt{t: t, idx: 1, seq: seq, kind: pktRepad, again: again})
		}
	}
	s.p.poke(s)
}

// resentLately reports whether seq on t is not to be resent now (lately: it was resent less
// than interval ago, or the viewer's feedback says its last copy arrived: Chromium asks
// again for packets it got, up to 10 times each, after a rendition switch behind a slow
// link: 36 NACKs a second for 8 s, filling the link with copies it dropped), and whether the
// copy about to go may duplicate one the viewer has (again: a copy went whose fate is not
// known yet). Unless lately, it notes seq as resent now.
func (s *sender) resentLately(t *localTrack, seq uint16, now time.Time, interval time.Duration) (lately, again bool) {
	for i := range s.recent {
		r := &s.recent[i]
		if r.t != t || r.seq != seq {
			continue
		}
		if now.Sub(r.at) > resendMemory {
			// Another packet with the same (wrapped) sequence number: its copies' numbers
			// would name others' now.
			*r = resent{t: t, seq: seq, at: now, queued: true}
			return false, false
		}
		if now.Sub(r.at) < interval {
			return true, true
		}
		delivered, known := r.delivered(s.est)
		if delivered {
			return true, true
		}
		// A copy still queued, or one whose fate is not known, may be what the viewer gets.
		r.at, r.queued = now, true
		return false, !known
	}
	s.recent[s.recentNext] = resent{t: t, seq: seq, at: now, queued: true}
	s.recentNext = (s.recentNext + 1) % len(s.recent)
	return false, false
}

// wroteResend notes the transport-wide number a resend of seq on t went with.
func (s *sender) wroteResend(t *localTrack, seq, tw uint16) {
	for i := range s.recent {
		if r := &s.recent[i]; r.t == t && r.seq == seq {
			r.tws[int(r.copies)%len(r.tws)] = tw
			r.copies++
			r.queued = false
			return
		}
	}
}

// queueDelayLocked is how long the queued media takes at the estimate.
func (s *sender) queueDelayLocked() time.Duration {
	rate := s.est.Target()
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(s.queued*8) / float64(rate) * float64(time.Second))
}

// rateLocked is the media pacing rate now, bit/s.
func (s *sender) rateLocked() float64 {
	if s.fast || !s.paced {
		return fastStartRate
	}
	return float64(s.est.Target()) * pacingFactor
}

// shedLocked keeps the queue's wait under maxQueueDelay by dropping video at the sender
// rather than pushing it into a bottleneck that cannot take it (where it would wait in the
// queue of a router and be lost there, and the viewer's jitter buffer would grow by
// seconds). What is kept: the rest of a picture partly sent, and a queued keyframe with what
// follows it; without one, video waits for the next keyframe, asked for at once. Sequence
// numbers are given as packets leave, so the viewer sees no gap, and the next picture after
// the cut is a keyframe: nothing refers to what was dropped.
func (s *sender) shedLocked() {
	if !s.paced || s.fast || s.queueDelayLocked() <= maxQueueDelay {
		return
	}
	q := &s.media
	key := -1
	for i := s.partialEndLocked(); i < len(q.q); i++ {
		if p := &q.q[i]; p.idx == 0 && p.f.Keyframe {
			key = i
		}
	}
	end := len(q.q)
	if key >= 0 {
		end = key
	}
	track := s.cutVideoLocked(end)
	if key < 0 && track != 0 {
		s.waitKey = true
		if s.keyframe != nil {
			go s.keyframe(track) // not under this lock: the stream calls in under its own
		}
	}
}

// partialEndLocked is the index in the media queue just past the rest of a picture partly
// sent (the queue's head when none is): a cut starts there, since a picture missing its
// last packets is one the viewer can neither decode nor complete (its sequence numbers are
// given as it leaves, so nothing is NACKed: the viewer waits and asks for a keyframe).
func (s *sender) partialEndLocked() int {
	q := &s.media
	keep := q.head
	if s.midFrame {
		for keep < len(q.q) && !q.q[keep].last {
			keep++
		}
		keep++ // the partial picture's last packet
	}
	return min(keep, len(q.q))
}

// cutVideoLocked drops the queued video from after a picture partly sent up to index end of
// the media queue, releasing the frames; it returns the track of the last picture dropped
// (0: none was).
func (s *sender) cutVideoLocked(end int) uint8 {
	q := &s.media
	keep := s.partialEndLocked()
	if keep >= end {
		return 0
	}
	var track uint8
	for i := keep; i < end; i++ {
		p := q.q[i]
		s.queued -= len(p.f.Payloads.At(int(p.idx)))
		if p.last {
			track = p.f.Track
			s.stats.QueueDropped++
			p.f.Release()
		}
	}
	n := copy(q.q[keep:], q.q[end:])
	clear(q.q[keep+n:])
	q.q = q.q[:keep+n]
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	}
	return track
}

// drain writes what the budget allows; it reports whether packets are still waiting.
func (s *sender) drain(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	elapsed := now.Sub(s.last).Seconds()
	if s.last.IsZero() || elapsed > pacingSlice.Seconds()*4 {
		elapsed = pacingSlice.Seconds()
	}
	s.last = now
	rate := s.rateLocked()
	// The budget accrues for the time since the last slice, and at most two slices' worth
	// (a sender idle for long must not burst its savings).
	s.budget = min(s.budget+rate/8*elapsed, max(rate/8*pacingSlice.Seconds()*2, 2*1500))
	nowNS := now.UnixNano()
	// Audio always goes; retransmissions go before new video but only while the path's
	// budget is not overdrawn by more than maxResendDebt: a slow path's loss must not turn
	// into more traffic than it takes. They wait, never dropped (a keyframe's lost packet
	// that is never resent stalls the picture until the next keyframe).
	for s.prio.len() > 0 {
		p := s.prio.pop()
		s.budget -= float64(s.write(&p, now, nowNS))
	}
	debt := -rate / 8 * maxResendDebt.Seconds()
	limited := s.paced && !s.fast
	if limited {
		share := float64(s.est.Target()) * resendShare / 8
		s.rbudget = min(s.rbudget+share*elapsed, max(share*resendBurst.Seconds(), 2*1500))
	}
	for s.rtx.len() > 0 && (!limited || (s.budget > debt && s.rbudget > 0)) {
		p := s.rtx.pop()
		n := float64(s.write(&p, now, nowNS))
		s.budget -= n
		s.rbudget -= n
	}
	s.shedLocked()
	for s.budget > 0 && s.media.len() > 0 && !s.drainingLocked(now) {
		p := s.media.pop()
		s.queued -= len(p.f.Payloads.At(int(p.idx)))
		s.budget -= float64(s.write(&p, now, nowNS))
	}
	if s.media.len() == 0 && s.budget > 0 {
		s.budget = 0 // nothing saved up while idle
	}
	s.probeLocked(now, nowNS, elapsed)
	return s.media.len() > 0 || s.probes.len() > 0 || s.rtx.len() > 0
}

// drainingLocked says whether video waits for the path's queue to drain (drainSince): until
// the feedback shows the queue at most drainQueue, for at most maxDrainWait. A picture partly
// sent finishes first.
func (s *sender) drainingLocked(now time.Time) bool {
	if s.drainSince.IsZero() || s.midFrame {
		return false
	}
	if now.Sub(s.drainSince) < maxDrainWait && s.est.Queue() > drainQueue {
		return true
	}
	s.drainSince = time.Time{}
	return false
}

// dropResendsLocked drops the queued retransmissions of video other than track's.
func (s *sender) dropResendsLocked(track uint8) {
	q := &s.rtx
	keep := q.head
	for i := q.head; i < len(q.q); i++ {
		p := q.q[i]
		if p.kind == pktResend && p.t.src.Kind == codec.Video && p.f.Track != track {
			p.f.Release()
			s.stats.ResendsDropped++
			continue
		}
		q.q[keep] = p
		keep++
	}
	clear(q.q[keep:])
	q.q = q.q[:keep]
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	}
}

// pushResendLocked queues a retransmission; past maxResends waiting, the oldest is dropped
// (a path that loses that much has the policy's attention; its old losses are moot).
func (s *sender) pushResendLocked(p pkt) {
	if s.rtx.len() >= maxResends {
		if old := s.rtx.pop(); old.f != nil {
			old.f.Release()
		}
		s.stats.ResendsDropped++
	}
	s.rtx.push(p)
}

// probeLocked sends a probe the estimator asks for: padding-only packets on the video
// track at the probe's rate, whose arrival tells whether the path takes more than is sent
// now.
func (s *sender) probeLocked(now time.Time, nowNS int64, elapsed float64) {
	if s.probes.len() == 0 && s.paced && !s.fast && s.video != nil && s.drainSince.IsZero() {
		if cluster, rate, bytes := s.est.Probe(now); cluster != 0 && rate > 0 && bytes > 0 {
			for bytes > 0 {
				size := min(bytes, maxPadding)
				s.probes.push(pkt{t: s.video, idx: int32(size), kind: pktProbe, probe: int32(cluster)})
				bytes -= size + 12 + wireOverhead
			}
			// The probe starts now with one packet and goes on at its rate: the time
			// before it was issued is not its budget. It was: a sender last served 20 ms
			// earlier (its audio's packet interval) sent a whole 20 ms cluster in one
			// slice, at one instant, and a cluster without a send span is no result
			// (congestion probeCluster.result): the small periodic probes of an
			// application-limited viewer never raised its estimate (TestBandwidthStep's
			// return to 4 Mbit/s went unnoticed until a long chain of probes).
			s.prate, s.pbudget, elapsed = rate, 1, 0
		}
	}
	if s.probes.len() == 0 {
		return
	}
	s.pbudget += float64(s.prate) / 8 * elapsed
	// Never inside a picture: padding between two of a frame's packets (their sequence
	// numbers are given as they leave) would split the frame for the receiver.
	for s.pbudget > 0 && s.probes.len() > 0 && !s.midFrame {
		p := s.probes.pop()
		s.pbudget -= float64(s.write(&p, now, nowNS))
	}
}

// write sends one packet and returns its size on the wire.
func (s *sender) write(p *pkt, now time.Time, nowNS int64) int {
	tw := s.tw
	var n int
	var withTW bool
	var err error
	switch p.kind {
	case pktMedia:
		n, withTW, err = p.t.writePacket(p.f, int(p.idx), tw, nowNS)
		if p.t == s.video {
			s.midFrame = !p.last
			if p.f.Keyframe {
				s.fast = s.fast && !p.last
				if p.idx == 0 && s.keyTrack != p.f.Track {
					if s.keyTrack != 0 {
						s.dropResendsLocked(p.f.Track)
					}
					s.keyTrack = p.f.Track
				}
			}
		}
	case pktResend:
		n, withTW, err = p.t.resend(p.f, int(p.idx), p.seq, p.ts, tw, true)
		s.stats.Retransmitted++
	case pktProbe:
		n, withTW, err = p.t.writePadding(int(p.idx), 0, false, tw)
		s.stats.ProbePackets++
	case pktRepad:
		n, withTW, err = p.t.writePadding(int(p.idx), p.seq, true, tw)
	}
	switch {
	case p.kind == pktMedia && p.last:
		if s.frameSent != nil {
			s.frameSent(p.t, p.f, now)
		}
		p.f.Release()
	case p.kind == pktResend:
		p.f.Release()
	}
	if err != nil || n == 0 {
		return 0
	}
	s.tw++
	switch {
	case !withTW:
	case p.again:
		s.est.SentAgain(tw, n+wireOverhead, now)
		s.wroteResend(p.t, p.seq, tw)
	case p.kind == pktResend || p.kind == pktRepad:
		s.est.Sent(tw, n+wireOverhead, now, 0)
		s.wroteResend(p.t, p.seq, tw)
	default:
		s.est.Sent(tw, n+wireOverhead, now, int(p.probe))
	}
	size := n + wireOverhead
	if p.kind == pktMedia && p.last && p.t == s.video {
		size += s.writeFEC(p.t, now)
	}
	return size
}

// writeFEC sends the FEC packets of the frame t just finished, right after its last packet
// (never inside a picture), and returns their size on the wire.
func (s *sender) writeFEC(t *localTrack, now time.Time) int {
	size := 0
	for k := range t.fecPending() {
		tw := s.tw
		n, withTW, err := t.writeFEC(k, tw)
		if err != nil || n == 0 {
			continue
		}
		s.tw++
		s.stats.FECPackets++
		if withTW {
			s.est.Sent(tw, n+wireOverhead, now, 0)
		}
		size += n + wireOverhead
	}
	return size
}

// close drops everything queued; the pacer forgets the sender.
func (s *sender) close() {
	s.mu.Lock()
	s.closed = true
	s.media.drop()
	s.prio.drop()
	s.rtx.drop()
	s.probes.drop()
	s.queued = 0
	s.mu.Unlock()
	s.p.remove(s)
}
