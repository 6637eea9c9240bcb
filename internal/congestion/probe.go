package congestion

import (
	"math"
	"time"
)

// Probing: short clusters of packets sent faster than the target, whose delivered rate
// (from their arrival times) says at once how much more the path takes, where the AIMD
// would need many seconds. Probes go out at start (3× Start, then 2× each successful
// result), while the sender is application-limited (it sends less than the target, so
// the target cannot be tested by media), and after a drop, until the rate is back.

const (
	// initialProbeFactor: the first probe goes at 3× Start; each success that used most of
	// its rate is followed by one at probeFactor × its result (3×, ~6×, ...).
	initialProbeFactor = 3
	// probeFactor: later probes test twice the current target: far enough to find a
	// recovered link in a few steps, near enough to cost little queue if it has not.
	probeFactor = 2.0
	// probeMinGain: a probe not at least 20 % above the target is not worth its queue.
	probeMinGain = 1.2
	// probeDuration: a cluster lasts about 20 ms at its rate, long enough for the 250 µs
	// feedback timestamps to give its rate within a few percent.
	probeDuration = 20 * time.Millisecond
	// probeMinBytes keeps slow probes at several packets.
	probeMinBytes = 1000
	// probeMaxQueue: once the path has delivered media, a probe is at most what it delivers
	// in 80 ms (never under probeCappedMinBytes, ten packets), so that a probe queues at most
	// ~80–100 ms at the bottleneck however far the estimate overshoots, and a probe at twice
	// an estimate the path has carried keeps its full 20 ms.
	// An estimate lifted by a probe a token bucket's burst carried (a small cluster rides the
	// burst at any rate) sized the next probes: 31 packets, 9 KB, into a 300 kbit/s link,
	// 250 ms of queue, and the picture froze (lab, TestShapedLink, 2026-12-06). A capped
	// probe at a high rate is shorter: the 250 µs feedback timestamps still time it.
	probeMaxQueue       = 80 * time.Millisecond
	probeCappedMinBytes = 3000
	// probeMinPackets and probeMinReceived: a result needs 5 packets and 80 % of them
	// received, else loss or reordering make the rate meaningless.
	probeMinPackets  = 5
	probeMinReceived = 0.8
	// probeUse: a successful probe sets the estimate to 90 % of what it delivered, below
	// the capacity it measured.
	probeUse = 0.9
	// probeFurther: a probe that delivered ≥ 70 % of its own rate was limited by itself,
	// not the path: probe again higher at once.
	probeFurther = 0.7
	// probeSaturated: a probe received slower than 90 % of its send rate filled the
	// bottleneck, so its receive rate is the path's capacity, and an estimate well above it
	// (more than 1/probeUse of it) comes down to it at once, not after a queue has built.
	probeSaturated = 0.9
	// probeDropFloor: such a probe lowers the estimate no further than 85 % of the
	// delivered rate, so a probe disturbed by cross traffic cannot collapse it.
	probeDropFloor = 0.85
	// probeMaxInterval: a send or receive span longer than this is not a probe's.
	probeMaxInterval = time.Second
	// probeMaxRatio: receiving faster than twice the send rate means bad timestamps.
	probeMaxRatio = 2.0
	// probeIdle: the sender has finished a cluster when it sent nothing more for it this long.
	probeIdle = 100 * time.Millisecond
	// probeSendTimeout: a cluster the sender has not started by then is abandoned.
	probeSendTimeout = 250 * time.Millisecond
	// probeResultTimeout: a cluster without complete feedback by then is judged on what
	// was reported.
	probeResultTimeout = time.Second
	// probeInterval between periodic probes (application-limited or recovering): one
	// 20 ms burst at 2× every 3 s costs ~1 % of the target. Below probeCheapRate a cluster
	// (probeMinBytes at least) is long against the target and queues behind a slow link
	// (12 KB at 2× a 200 kbit/s link: ~250 ms of queue, every 3 s a stall the viewer sees):
	// the interval grows in proportion, up to probeMaxPeriod.
	probeInterval  = 3 * time.Second
	probeCheapRate = 1_000_000
	probeMaxPeriod = 20 * time.Second
	// probeStable: no periodic probe within 2 s of a decrease: the path is still settling.
	probeStable = 2 * time.Second
	// alrRatio: the sender is application-limited when it sends less than 75 % of the
	// target (a static picture, a low rendition). Lower (0.5) stopped the probes that lift
	// a collapsed estimate: a viewer that joined a slow link on the main stream stayed at
	// ~60 kbit/s on an 800 kbit/s link (lab, TestTwoViewers).
	alrRatio = 0.75
	// dropRatio: a target below 70 % of the rate the path recently carried is a drop worth
	// recovering from.
	dropRatio = 0.7
	// peakHold: the recent peak forgets values older than this.
	peakHold = 5 * time.Second
	// recoveryWindow: after a drop, probe for this long while below the old peak.
	recoveryWindow = 30 * time.Second
	// recoveredRatio: back at 85 % of the old peak counts as recovered.
	recoveredRatio = 0.85
	// probeMemory: for this long after a probe its delivered rate counts as the delivered
	// rate an overuse cuts from (the acked window lags behind a probe's jump).
	probeMemory = time.Second
	// probeSlots clusters are tracked at once (ids map to slots by id modulo).
	probeSlots = 4
	// probeVanished: a cluster of which fewer than half the packets came back, while
	// feedback on packets sent probeFeedbackAfter later did, was not carried by the path;
	// it undoes a raise a probe made within probeUndoWindow before its result (vanished).
	probeVanished      = 0.5
	probeFeedbackAfter = 200 * time.Millisecond
	probeUndoWindow    = 3 * time.Second
)

type probeCluster struct {
	id          int
	rate, bytes int
	issued      int64
	lastSent    int64
	sentPackets int
	sentBytes   int
	reported    int
	received    int
	live        bool

	// over received packets
	firstSend, lastSend int64 // ns
	firstArr, lastArr   int64 // µs
	sizeTotal           int
	sizeLastSend        int
	sizeFirstArr        int
}

type prober struct {
	clusters   [probeSlots]probeCluster
	nextID     int
	active     int // cluster being sent or awaited, 0 none
	started    bool
	further    int // rate of a follow-up probe due now, 0 none
	lastIssued int64
	sent       int
	succeeded  int
}

func (p *prober) init() {
	*p = prober{nextID: 1, lastIssued: math.MinInt64 / 2}
}

func (p *prober) cluster(id int) *probeCluster {
	if id <= 0 {
		return nil
	}
	c := &p.clusters[id%probeSlots]
	if c.id != id || !c.live {
		return nil
	}
	return c
}

// issue starts a cluster at rate; delivered is the rate the path has delivered lately (0:
// none yet), which bounds its size (probeMaxQueue).
func (p *prober) issue(now int64, rate, delivered int) (int, int, int) {
	id := p.nextID
	p.nextID++
	if p.nextID > math.MaxInt32 {
		p.nextID = 1
	}
	bytes := max(int(float64(rate)*probeDuration.Seconds()/8), probeMinBytes)
	if delivered > 0 {
		bytes = min(bytes, max(int(float64(delivered)*probeMaxQueue.Seconds()/8), probeCappedMinBytes))
	}
	p.clusters[id%probeSlots] = probeCluster{id: id, rate: rate, bytes: bytes, issued: now, live: true}
	p.active = id
	p.lastIssued = now
	p.sent++
	return id, rate, bytes
}

func (c *probeCluster) onSent(now int64, size int) {
	c.sentPackets++
	c.sentBytes += size
	c.lastSent = now
}

func (c *probeCluster) onReceived(sendNs, arrUs int64, size int) {
	if c.received == 0 {
		c.firstSend, c.lastSend, c.firstArr, c.lastArr = sendNs, sendNs, arrUs, arrUs
		c.sizeLastSend, c.sizeFirstArr = size, size
	} else {
		c.firstSend = min(c.firstSend, sendNs)
		if sendNs > c.lastSend {
			c.lastSend, c.sizeLastSend = sendNs, size
		}
		if arrUs < c.firstArr {
			c.firstArr, c.sizeFirstArr = arrUs, size
		}
		c.lastArr = max(c.lastArr, arrUs)
	}
	c.received++
	c.sizeTotal += size
}

// complete says whether the cluster can be judged now.
func (c *probeCluster) complete(now int64) bool {
	if now-c.issued >= probeResultTimeout.Nanoseconds() {
		return true
	}
	if c.sentPackets == 0 {
		return false
	}
	doneSending := c.sentBytes >= c.bytes || now-c.lastSent >= probeIdle.Nanoseconds()
	return doneSending && c.reported >= c.sentPackets
}

// result is the rate the cluster was delivered at (bit/s), if it can be trusted, and
// whether the path could not carry the probe's own rate (it arrived clearly slower than
// it was sent: the probe measured the bottleneck).
func (c *probeCluster) result() (rate int, saturated, ok bool) {
	if c.received < probeMinPackets || float64(c.received) < probeMinReceived*float64(c.sentPackets) {
		return 0, false, false
	}
	sendSpan := c.lastSend - c.firstSend
	recvSpan := (c.lastArr - c.firstArr) * 1000
	if sendSpan <= 0 || recvSpan <= 0 || sendSpan > probeMaxInterval.Nanoseconds() || recvSpan > probeMaxInterval.Nanoseconds() {
		return 0, false, false
	}
	// Each span is bounded by packets at both ends: leave out the one whose bytes fall
	// outside it (the last sent, the first received).
	sendRate := float64(c.sizeTotal-c.sizeLastSend) * 8e9 / float64(sendSpan)
	recvRate := float64(c.sizeTotal-c.sizeFirstArr) * 8e9 / float64(recvSpan)
	if recvRate > probeMaxRatio*sendRate {
		return 0, false, false
	}
	return int(min(sendRate, recvRate)), recvRate < probeSaturated*sendRate, true
}

// periodicInterval is the time between periodic probes at target bit/s.
func periodicInterval(target int) time.Duration {
	if target <= 0 || target >= probeCheapRate {
		return probeInterval
	}
	return min(time.Duration(float64(probeInterval)*probeCheapRate/float64(target)), probeMaxPeriod)
}
