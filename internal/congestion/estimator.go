// Package congestion estimates how fast one viewer's path can take media, from the
// transport-wide congestion control feedback (TWCC,
// draft-holmer-rmcat-transport-wide-cc-extensions-01) that the viewer's browser returns
// about every RTP packet the device sends it.
//
// The sender stamps each packet with a transport-wide sequence number and reports it to
// Sent as it leaves; the RTCP reader hands every TWCC report to Feedback; the sender reads
// Target to pick the viewer's rendition, to pace and to set the encoder, and asks Probe
// whether to send a short probe burst.
//
// The design is libwebrtc's GoogCC, rebuilt here to allocate nothing per packet or per
// feedback:
//   - delay-based: packets grouped by send time (5 ms), a trendline filter over the delay
//     change between groups and an adaptive threshold detect a growing queue; an AIMD
//     controller cuts to 85 % of the delivered rate on overuse, holds while the queue
//     drains, and increases otherwise (8 %/s far below the capacity last seen at an
//     overuse, additively near it), never above 1.5 × the delivered rate while the sender
//     uses less (application-limited);
//   - loss-based: the loss the feedback reports cuts (> 10 %), holds (2–10 %) or frees
//     (< 2 %) a second limit; the target is the lower of the two;
//   - probing: at start (3× Start, then 2× each success), while application-limited or
//     held below a measured capacity, and for a while after a drop, a 20 ms burst at twice
//     the target whose delivered rate raises the estimate at once.
//
// Where GoogCC is slow to recover or to drain, it goes further: a probe that the path
// could not carry brings an estimate above the bottleneck down at once (so a too-high
// Start costs no queue); an overuse cut goes deeper by what drains the measured queue
// within a second (after a capacity drop, seconds of latency less); a queue that fills
// while the sender sends far more than the path delivers is cut at once, from what the path
// delivers, without waiting for the trendline (at a camera's packet rates it sees a link
// that dropped to a fraction of the rate only after half a second); an overuse right
// after a probe cuts from the probe's delivered rate, not from the slower media before
// it; loss acts only when both the last 20 packets and the loss smoothed over a second
// agree, so random loss does not ratchet the estimate down; after a drop, probes
// every 3 s find a recovered link even while the sender sends little; and for 30 s after an
// overuse the rate stays below the capacity that overuse measured instead of climbing past
// it again (GoogCC's sawtooth: a queue every few seconds behind a slow link), unless a probe
// shows more.
//
// An Estimator holds a few kB at a camera's rates: its history of sent packets and its window
// of arrivals grow with the viewer's packet rate, to ~100 kB at most.
//
// All times are only compared with each other: pass time.Now() (its monotonic reading is
// used) or any other clock, the same one to every method.
package congestion

import (
	"math"
	"sync"
	"time"
)

const (
	// DefaultStart is the rate before any feedback: enough for a decent 720p picture;
	// probing corrects it within about half a second.
	DefaultStart = 1_500_000
	// DefaultMin: below this video is useless, and a floor keeps recovery quick.
	DefaultMin = 100_000
	// DefaultMax is above what any rendition needs.
	DefaultMax = 20_000_000

	// feedbackTimeout: sending without feedback for this long backs off by
	// noFeedbackBackoff, and again every feedbackTimeout after (libwebrtc backs off after
	// a few missed reports, as here).
	feedbackTimeout   = time.Second
	noFeedbackBackoff = 0.8
	// rttSmoothing: the RTT is an EWMA with this weight on the new sample (as TCP's SRTT).
	rttSmoothing = 0.125
	// maxRTT: a larger RTT sample is garbage (bad timestamps), not a path.
	maxRTT = 10 * time.Second
	// refTimeUnit is the unit of TWCC's 24-bit reference time.
	refTimeUnit = 64 * time.Millisecond
)

// Config bounds the estimate. Zero fields take the defaults.
type Config struct {
	Start, Min, Max int // bit/s
}

// Stats describes the estimator's state for logs and the status page.
type Stats struct {
	Target          int     `json:"target"`           // bit/s, what Target returns
	DelayBased      int     `json:"delay_based"`      // bit/s, the delay-based (AIMD) rate
	LossBased       int     `json:"loss_based"`       // bit/s, the loss-based limit, 0 while loss does not limit
	Acked           int     `json:"acked"`            // bit/s delivered, from the feedback's arrival times
	Sending         int     `json:"sending"`          // bit/s of media the sender sent lately (probes excluded)
	AppLimited      bool    `json:"app_limited"`      // the sender sends well below the target
	RTTms           float64 `json:"rtt_ms"`           // smoothed round-trip time, 0 until measured
	QueueMs         float64 `json:"queue_ms"`         // queueing delay on the path now (one-way delay above its recent floor)
	Loss            float64 `json:"loss"`             // fraction lost lately (smoothed over about a second)
	Delay           string  `json:"delay"`            // "normal", "overuse" or "underuse"
	Reason          string  `json:"reason"`           // what made the last change of Target: "start", "increase", "overuse", "filling", "drained", "loss", "probe" or "no feedback"
	ProbesSent      int     `json:"probes_sent"`      // probe clusters issued
	ProbesSucceeded int     `json:"probes_succeeded"` // probe clusters that raised the estimate
	Feedbacks       int     `json:"feedbacks"`        // TWCC reports taken
}

const (
	// queueingDelay: a path queueing this much is congested, not just lossy.
	queueingDelay = 50 * time.Millisecond
	// fillingRatio: sending this many times what the path delivers, on a path that queues,
	// fills its queue (Estimator.fillingRate).
	fillingRatio = 1.3
	// fillingWindow: the delivered rate that a filling queue is judged by (and cut to) is
	// measured over this last span of arrivals: the 300 ms of the delivered rate still held
	// the faster path for as long after a drop.
	fillingWindow = 150 * time.Millisecond
)

// Queueing reports whether the path queues now (a queueing delay over 50 ms, or the delay
// detector in overuse): more is sent than it carries.
func (s Stats) Queueing() bool {
	return s.QueueMs > queueingDelay.Seconds()*1000 || s.Delay == usageOver.String()
}

// Congested reports whether the path queues, or the target's last change was a cut
// (overuse, loss, feedback lost), which says the same until it rises again: loss on such a
// path is the bottleneck's.
func (s Stats) Congested() bool {
	return s.Queueing() || s.Reason == "overuse" || s.Reason == "filling" || s.Reason == "loss" || s.Reason == "no feedback"
}

// Estimator is one viewer's send-side bandwidth estimator. Its methods may be called from
// any goroutine: a mutex, held only for the few microseconds of each call, serialises them.
type Estimator struct {
	mu  sync.Mutex
	cfg Config

	epoch    time.Time
	clockSet bool

	hist  history
	ia    interArrival
	trend trendline
	rc    rateControl
	loss  lossControl
	acked ackedRate
	sent  sendMeter
	pr    prober

	// TWCC reference time, unwrapped from its 24 bits.
	refSet       bool
	ref24        uint32
	refUnwrapped int64

	rtt         time.Duration // smoothed, 0 until measured
	queue       queueDelay
	feedbacks   int
	lastFbNs    int64
	firstSentNs int64
	lastSentNs  int64
	lastBackoff int64

	target   int
	reason   string
	peak     int // highest rate the path delivered (acked or probed) in the last peakHold
	peakAt   int64
	dropPeak int // the peak before the last drop, 0 when recovered
	dropAt   int64
	lastDrop int64 // last decrease of the target, of any size
	probeRes int   // delivered rate of the last valid probe
	probeAt  int64
	// raisedAt and raisedBefore are the last raise a probe made: when (0: none to undo) and the target
	// before it (see vanished).
	raisedAt     int64
	raisedBefore int
}

// NewEstimator returns an estimator at cfg.Start.
func NewEstimator(cfg Config) *Estimator {
	if cfg.Min <= 0 {
		cfg.Min = DefaultMin
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Max < cfg.Min {
		cfg.Max = cfg.Min
	}
	if cfg.Start <= 0 {
		cfg.Start = DefaultStart
	}
	cfg.Start = clampInt(cfg.Start, cfg.Min, cfg.Max)
	e := &Estimator{cfg: cfg, target: cfg.Start, reason: "start"}
	e.trend.reset()
	e.rc.init(cfg.Start, cfg.Min, cfg.Max)
	e.loss.init()
	e.pr.init()
	e.lastBackoff = math.MinInt64 / 2
	e.lastDrop = math.MinInt64 / 2
	e.probeAt = math.MinInt64 / 2
	return e
}

// ns converts t to nanoseconds since the first time the estimator was given.
func (e *Estimator) ns(t time.Time) int64 {
	if !e.clockSet {
		e.clockSet = true
		e.epoch = t
	}
	return int64(t.Sub(e.epoch))
}

// Sent records a packet as it leaves: its transport-wide sequence number, its size on the
// wire in bytes (RTP header and payload, SRTP overhead if the caller adds it), when it left
// (time.Now() at the socket write, or the same clock that Feedback and Probe get), and the
// probe cluster it belongs to (as returned by Probe; 0 = media, or a cluster no longer
// current). Sequence numbers are expected to rise in sending order, as TWCC stamps them;
// they may wrap.
func (e *Estimator) Sent(seq uint16, size int, at time.Time, probe int) {
	e.record(seq, size, at, probe, false)
}

// SentAgain records a packet with transport-wide number seq that the receiver may already
// have: a copy resent while the fate of the one before is not known. It is like Sent except
// that its loss is not counted as the path's: a receiver that has an earlier copy drops this
// one before its feedback counts it (Chromium asks again for packets before its last resend
// could arrive, and without RTX a copy goes as it was: SRTP's replay check drops it). Its
// arrival counts like any other.
func (e *Estimator) SentAgain(seq uint16, size int, at time.Time) {
	e.record(seq, size, at, 0, true)
}

func (e *Estimator) record(seq uint16, size int, at time.Time, probe int, again bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.ns(at)
	size = clampInt(size, 0, maxPacketSize)
	if !e.hist.started {
		e.firstSentNs = now
	}
	e.lastSentNs = now
	c := e.pr.cluster(probe)
	if c != nil {
		c.onSent(now, size)
	} else {
		probe = 0
		e.sent.add(now, size)
	}
	e.hist.add(seq, now, size, probe, again)
	e.checkFeedbackTimeout(now)
}

// Delivered says what the feedback said of the packet with transport-wide number seq, sent
// lately: known is false until a report covered it (or once it is too old to remember), and
// delivered whether it arrived. A sender asked again for a packet whose copy arrived knows
// the receiver has it.
func (e *Estimator) Delivered(seq uint16) (delivered, known bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.hist.started {
		return false, false
	}
	p := e.hist.get(e.hist.unwrap(seq))
	if p == nil || p.state == stateUnreported {
		return false, false
	}
	return p.state == stateReceived, true
}

// RTT is the smoothed round trip from a packet's send to its feedback (0: none yet). It
// includes the bottleneck's queue, which a receiver report's round trip may not.
func (e *Estimator) RTT() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rtt
}

// Queue is the bottleneck's queueing delay as the last feedback showed it (the one-way delay
// above its recent floor; 0 until measured).
func (e *Estimator) Queue() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Duration(e.queue.last)
}

// Target is the rate (bit/s) the path takes now, for media, not counting probes.
func (e *Estimator) Target() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.target
}

// Probe says whether the sender should probe now: send about rate bit/s, bytes in all, as
// at least 5 packets paced evenly (padding or retransmissions; media may be mixed in), each
// passed to Sent with the cluster id. Zero values: no probe due. The sender calls it on its
// own schedule, every few ms to every frame.
func (e *Estimator) Probe(now time.Time) (cluster int, rate int, bytes int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.ns(now)
	e.checkFeedbackTimeout(n)
	return e.nextProbe(n)
}

// Stats returns a snapshot of the estimator's state.
func (e *Estimator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{
		Target:          e.target,
		DelayBased:      e.rc.rate,
		Acked:           e.acked.rate(),
		RTTms:           float64(e.rtt) / 1e6,
		QueueMs:         float64(e.queue.last) / 1e6,
		Loss:            e.loss.smoothed,
		Delay:           e.trend.state.String(),
		Reason:          e.reason,
		ProbesSent:      e.pr.sent,
		ProbesSucceeded: e.pr.succeeded,
		Feedbacks:       e.feedbacks,
	}
	if e.loss.limited {
		s.LossBased = e.loss.rate
	}
	if e.clockSet {
		s.Sending = e.sent.rate(e.lastSentNs)
		s.AppLimited = e.appLimited(e.lastSentNs)
	}
	return s
}

// walk is the state of one feedback's decoding.
type walk struct {
	now       int64
	matched   int   // statuses about packets we sent
	newest    int64 // latest arrival (µs) among them: about when the report was made
	minOffset int64 // min over received packets of arrival − departure (ns, mixed clocks)
	hasRTT    bool
}

// Feedback takes one transport-wide feedback packet (b: the RTCP packet, as received) that
// arrived at now. A packet that cannot be read changes nothing and is ErrFeedback.
func (e *Estimator) Feedback(b []byte, now time.Time) error {
	fb, err := parseFeedback(b)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.ns(now)
	if !e.hist.started {
		return nil
	}
	e.feedbacks++
	e.lastFbNs = n
	e.lastBackoff = math.MinInt64 / 2

	ref := e.unwrapRef(fb.ref)
	arrUs := ref * refTimeUnit.Microseconds()
	base := e.hist.unwrap(fb.base)
	w := walk{now: n, minOffset: math.MaxInt64, newest: math.MinInt64}
	st := fb.statuses()
	for i := int64(0); ; i++ {
		sym, deltaUs, ok := st.next()
		if !ok {
			break
		}
		switch sym {
		case symSmallDelta, symLargeDelta:
			arrUs += deltaUs
			e.onStatus(&w, base+i, true, arrUs)
		case symNotRecv:
			e.onStatus(&w, base+i, false, 0)
		}
		// symNoDelta: received, but without a time it tells nothing.
	}
	if w.matched == 0 {
		return nil // nothing about our packets: not even the reference time is trusted
	}
	e.ref24, e.refSet = fb.ref, true
	e.refUnwrapped = ref
	e.afterFeedback(&w)
	return nil
}

// unwrapRef unwraps the 24-bit reference time against the last trusted one.
func (e *Estimator) unwrapRef(r uint32) int64 {
	if !e.refSet {
		return int64(r)
	}
	d := int64((r - e.ref24) & 0xFFFFFF)
	if d >= 1<<23 {
		d -= 1 << 24
	}
	return e.refUnwrapped + d
}

// onStatus handles what one feedback says about one packet.
func (e *Estimator) onStatus(w *walk, seq int64, received bool, arrUs int64) {
	p := e.hist.get(seq)
	if p == nil {
		return // never sent, or too old: ignore
	}
	switch p.state {
	case stateReceived:
		return // a duplicate report
	case stateLost:
		if !received {
			return
		}
		if !p.again {
			e.loss.unlose() // it was late, not lost
		}
	default:
		if !p.again {
			e.loss.count(received)
		}
		if c := e.pr.cluster(int(p.cluster)); c != nil {
			c.reported++
		}
	}
	w.matched++
	if !received {
		p.state = stateLost
		return
	}
	p.state = stateReceived
	size := int(p.size)
	if c := e.pr.cluster(int(p.cluster)); c != nil {
		c.onReceived(p.sendNs, arrUs, size)
	}
	e.acked.add(arrUs, size)
	if off := arrUs*1000 - p.sendNs; off < w.minOffset {
		w.minOffset = off
	}
	w.newest = max(w.newest, arrUs)
	w.hasRTT = true
	d, ok, reset := e.ia.add(p.sendNs, arrUs)
	if reset {
		e.trend.reset()
		e.queue.reset() // the receiver's clock jumped: the old delay floor is meaningless
	}
	if ok {
		e.trend.update(d)
	}
}

// afterFeedback updates RTT, the rates and the probes after a feedback was decoded.
func (e *Estimator) afterFeedback(w *walk) {
	now := w.now
	if w.hasRTT {
		// The packet that waited least at the receiver before this report went out gives
		// the RTT: (now − departure) − (report time − arrival), report time ≈ newest arrival.
		sample := time.Duration(now + w.minOffset - w.newest*1000)
		if sample >= 0 && sample <= maxRTT {
			if e.rtt == 0 {
				e.rtt = sample
			} else {
				e.rtt += time.Duration(rttSmoothing * float64(sample-e.rtt))
			}
		}
		e.queue.add(now, w.minOffset)
	}
	acked := e.acked.rate()
	e.notePeak(now, acked)
	fill := e.fillingRate()
	switch {
	case e.trend.state == usageOver:
		delivered := acked
		if now-e.probeAt < probeMemory.Nanoseconds() && e.probeAt > e.lastDrop {
			// A probe just showed what the path delivers; the acked window still holds
			// the slower media before it, and the overuse may be the probe's own queue.
			// Not one judged before the last cut: it measured the path before it got
			// worse (a probe sent just before a link dropped to 40 % put the capacity at
			// 385 kbit/s for a 176 kbit/s link, and the next overuse reset it low).
			delivered = max(delivered, e.probeRes)
		}
		if e.rc.onOveruse(now, delivered, e.rtt, time.Duration(e.queue.last), !e.appLimited(e.lastSentNs)) {
			e.setTarget(now, "overuse")
		}
	case fill > 0:
		if e.rc.onOveruse(now, fill, e.rtt, time.Duration(e.queue.last), true) {
			e.setTarget(now, "filling")
		}
	default:
		if e.rc.drained(now, time.Duration(e.queue.last)) {
			e.setTarget(now, "drained")
		} else if e.rc.onSignal(e.trend.state, now, acked, e.rtt) {
			e.setTarget(now, "increase")
		}
	}
	e.judgeProbes(now)
	if changed, rose := e.loss.update(now, e.target, e.rc.rate, e.cfg.Min, e.cfg.Max, e.rtt); changed {
		reason := "loss"
		if rose {
			reason = "increase"
		}
		e.setTarget(now, reason)
	}
}

// setTarget recomputes the target from the two limits; reason names what changed.
func (e *Estimator) setTarget(now int64, reason string) {
	t := e.rc.rate
	if e.loss.limited && e.loss.rate < t {
		t = e.loss.rate
	}
	t = clampInt(t, e.cfg.Min, e.cfg.Max)
	if t == e.target {
		return
	}
	if t < e.target {
		e.lastDrop = now
		if float64(t) < dropRatio*float64(e.peak) {
			if now-e.dropAt >= recoveryWindow.Nanoseconds() {
				e.dropPeak = 0 // the last drop is history
			}
			e.dropPeak = max(e.dropPeak, e.peak)
			e.dropAt = now
		}
	}
	if e.dropPeak > 0 && float64(t) >= recoveredRatio*float64(e.dropPeak) {
		e.dropPeak = 0
	}
	e.target = t
	e.reason = reason
}

// notePeak tracks the highest rate the path has shown it carries lately: a target well
// below it after a decrease is a drop to recover from (a start value that was too high is
// not).
func (e *Estimator) notePeak(now int64, rate int) {
	if rate > e.peak || now-e.peakAt > peakHold.Nanoseconds() {
		e.peak, e.peakAt = rate, now
	}
}

// checkFeedbackTimeout backs off gently while sending without any feedback.
func (e *Estimator) checkFeedbackTimeout(now int64) {
	last := e.lastFbNs
	if e.feedbacks == 0 {
		last = e.firstSentNs
	}
	if !e.hist.started || now-last < feedbackTimeout.Nanoseconds() ||
		now-e.lastBackoff < feedbackTimeout.Nanoseconds() ||
		now-e.lastSentNs >= feedbackTimeout.Nanoseconds() {
		return
	}
	e.lastBackoff = now
	r := e.rc.clamp(noFeedbackBackoff * float64(e.target))
	e.rc.rate = r
	e.rc.lastChange = now
	if e.loss.limited {
		e.loss.rate = min(e.loss.rate, r)
	}
	e.setTarget(now, "no feedback")
}

// fillingRate is what the path delivers lately when its queue is filling faster than the
// trendline shows, 0 when it is not: the
// sender sends far more than the path has delivered lately (fillingRatio, over
// fillingWindow) and the path already queues (queueingDelay). At a camera's low packet
// rates the trendline's 20 packet groups span half a second or more, so after a link drops
// to a fraction of the rate it sees overuse only 0.3–0.7 s later, its queue by then full and
// losing; meanwhile the target stayed at what the link took before (an application-limited
// sender's estimate, megabits above what it sends), which paced the viewer and set its
// encoder. Without the queue the ratio alone misleads (a keyframe in the send window,
// against a delivery window without it).
func (e *Estimator) fillingRate() int {
	if e.queue.last <= queueingDelay.Nanoseconds() {
		return 0
	}
	recent := e.acked.recentRate(fillingWindow)
	if recent <= 0 || float64(e.sent.rate(e.lastSentNs)) <= fillingRatio*float64(recent) {
		return 0
	}
	return recent
}

// appLimited says whether the sender sends well below the target.
func (e *Estimator) appLimited(now int64) bool {
	return float64(e.sent.rate(now)) < alrRatio*float64(e.target)
}

// nextProbe decides whether a probe is due.
func (e *Estimator) nextProbe(now int64) (int, int, int) {
	p := &e.pr
	if !e.hist.started && p.started {
		return 0, 0, 0
	}
	if !p.started {
		p.started = true
		r := min(initialProbeFactor*e.cfg.Start, e.cfg.Max)
		if float64(r) >= probeMinGain*float64(e.target) {
			return p.issue(now, r, e.acked.rate())
		}
	}
	if c := p.cluster(p.active); c != nil {
		if c.sentPackets > 0 || now-c.issued < probeSendTimeout.Nanoseconds() {
			return 0, 0, 0 // one cluster at a time
		}
		c.live = false // the sender never sent it
	}
	p.active = 0
	if p.further > 0 {
		r := p.further
		p.further = 0
		if float64(r) >= probeMinGain*float64(e.target) {
			return p.issue(now, r, e.acked.rate())
		}
	}
	if now-p.lastIssued < periodicInterval(e.target).Nanoseconds() || now-e.lastDrop < probeStable.Nanoseconds() ||
		e.feedbacks == 0 || now-e.lastFbNs >= feedbackTimeout.Nanoseconds() {
		return 0, 0, 0
	}
	recovering := e.dropPeak > 0 && now-e.dropAt < recoveryWindow.Nanoseconds()
	if !recovering && !e.rc.holding(now) && !e.appLimited(now) {
		return 0, 0, 0
	}
	r := min(int(probeFactor*float64(e.target)), e.cfg.Max)
	if float64(r) < probeMinGain*float64(e.target) {
		return 0, 0, 0
	}
	return p.issue(now, r, e.acked.rate())
}

// vanished handles a cluster that could not be judged: when most of its packets never came
// back (neither received nor reported lost, while feedback on later packets kept coming), the
// path did not carry it, and a raise the previous probe made shortly before is undone. Behind
// a token bucket (the lab's tbf; traffic policers) a cluster small enough to ride the bucket's
// burst "succeeds" at up to twice the link, and the larger follow-up at that rate vanishes:
// Chromium's transport feedback starts its next window after such packets, so they are never
// reported (docs/adaptation.md, "Probes that vanish"). Left alone, the inflated estimate held
// for seconds on an application-limited stream and moved the viewer up to a rendition its
// path could not carry.
func (e *Estimator) vanished(now int64, c *probeCluster) {
	if c.sentPackets < probeMinPackets || float64(c.received) >= probeVanished*float64(c.sentPackets) ||
		e.lastFbNs-c.lastSent < probeFeedbackAfter.Nanoseconds() {
		return // too small to tell, mostly there, or no feedback since: nothing learnt
	}
	if e.raisedAt == 0 || now-e.raisedAt > probeUndoWindow.Nanoseconds() || e.raisedBefore >= e.target {
		return
	}
	before := e.raisedBefore
	e.raisedAt = 0
	e.pr.further = 0
	if before < e.rc.rate {
		e.rc.setFromProbe(now, before)
	}
	e.setTarget(now, "probe vanished")
}

// judgeProbes evaluates the clusters whose feedback is complete.
func (e *Estimator) judgeProbes(now int64) {
	for i := range e.pr.clusters {
		c := &e.pr.clusters[i]
		if !c.live || !c.complete(now) {
			continue
		}
		c.live = false
		if e.pr.active == c.id {
			e.pr.active = 0
		}
		res, saturated, ok := c.result()
		if !ok {
			e.vanished(now, c)
			continue
		}
		e.probeRes, e.probeAt = res, now
		rate := e.rc.clamp(probeUse * float64(res))
		if saturated && rate < e.target {
			// The probe found the bottleneck below the estimate: come down to it now
			// rather than after the queue it implies has built.
			floor := int(probeDropFloor * float64(e.acked.rate()))
			if low := max(rate, floor); low < e.rc.rate {
				e.rc.setFromProbe(now, low)
				e.setTarget(now, "probe")
			}
			continue
		}
		if rate <= e.target || e.trend.state == usageOver {
			continue // nothing new, or the queue grows: trust the detector
		}
		e.notePeak(now, res)
		e.raisedAt, e.raisedBefore = now, e.target
		e.rc.setFromProbe(now, rate)
		e.loss.raise(rate)
		e.pr.succeeded++
		e.setTarget(now, "probe")
		if float64(res) >= probeFurther*float64(c.rate) && rate < e.cfg.Max {
			e.pr.further = min(int(probeFactor*float64(res)), e.cfg.Max)
		}
	}
}
