package congestion

import (
	"math"
	"time"
)

// The delay-based rate: additive-increase, multiplicative-decrease driven by the detector.
// On overuse the rate goes just below what the path delivered, then holds while the queue
// drains (underuse), then rises: multiplicatively while far below the capacity last seen
// at an overuse, additively near it. It never rises above what the sender has shown the
// path to carry (ackedHeadroom), so a static picture does not inflate it. For a while after
// an overuse it stays below the capacity that overuse showed (capacityHold).

const (
	// decreaseFactor: on overuse go to 85 % of the delivered rate, below capacity, so the
	// queue drains.
	decreaseFactor = 0.85
	// increasePerSecond: 8 %/s multiplicative increase far from the known capacity.
	increasePerSecond = 1.08
	// minIncrease (bit/s) keeps the rate rising at very low rates.
	minIncrease = 1000
	// ackedHeadroom and ackedHeadroomAbs: never increase above 1.5 × the delivered rate
	// + 10 kbit/s; beyond that the estimate says nothing the path has shown (the constant
	// keeps a very low rate from getting stuck on an encoder's uneven output).
	ackedHeadroom    = 1.5
	ackedHeadroomAbs = 10_000
	// nearCapacity: at or above this fraction of the capacity seen at the last overuse the
	// increase is additive (the queue builds soon); below it multiplicative.
	nearCapacity = 0.7
	// additiveFrameRate and additivePacketSize size the additive step: about one packet
	// per frame per response time, the least change the detector can see.
	additiveFrameRate  = 30
	additivePacketSize = 1200 * 8
	// responseExtra: overuse shows about 100 ms after it begins, on top of the RTT.
	responseExtra = 100 * time.Millisecond
	// minAdditivePerSecond (bit/s per s) keeps the additive increase from stalling.
	minAdditivePerSecond = 4000
	// reduceMin and reduceMax clamp the RTT between two decreases: the first must have had
	// time to show before another.
	reduceMin = 10 * time.Millisecond
	reduceMax = 200 * time.Millisecond
	// queueAllowance and drainTime: an overuse cut goes deeper by what it takes to drain
	// the queue beyond 20 ms within a second (a capacity drop leaves hundreds of ms of
	// video queued, which a cut to 85 % of the new capacity takes many seconds to drain) ...
	queueAllowance = 20 * time.Millisecond
	drainTime      = time.Second
	// drainFloor: ... but not below half the delivered rate.
	drainFloor = 0.5
	// restoreWithin: once the queue such a deeper cut drained is gone (queueAllowance), the
	// rate goes back to what the plain cut would have set, if that is within this time of the
	// cut: the extra was to drain, and climbing back from it at 8 %/s took ~10 s behind a
	// 180 kbit/s link.
	restoreWithin = 3 * time.Second
	// initialBackoff: overuse before there is a delivered rate to go by halves the rate this
	// often.
	initialBackoff = 200 * time.Millisecond
	// capacityHold and capacityHoldShare: for this long after an overuse the rate rises to
	// at most this share of the capacity seen at overuses, not past it. On a link that has
	// not changed, rising past the capacity just measured only repeats the overuse: a
	// queue of ~150–200 ms before the trendline sees it, every ~10 s behind a slow link
	// (the lab's sawtooth). A better link is still found at once by a probe above the
	// capacity's spread, which forgets the capacity and so ends the hold (the prober probes
	// periodically while it holds, as while application-limited: a held sender sends
	// close to the target); the plain search resumes after it.
	capacityHold      = 30 * time.Second
	capacityHoldShare = 0.95

	// capacityAlpha: the link-capacity estimate (delivered rate at overuse) is an EWMA.
	capacityAlpha = 0.05
	// capacityDevMin, capacityDevMax, capacityDevInit bound its normalised variance (kbit/s),
	// as libwebrtc: ±3 deviations is "near the last known capacity".
	capacityDevMin  = 0.4
	capacityDevMax  = 2.5
	capacityDevInit = 0.4
)

type rcState int8

const (
	rcHold rcState = iota
	rcIncrease
	rcDecrease
)

// linkCapacity is the capacity seen at overuse, with its spread (kbit/s, as libwebrtc).
type linkCapacity struct {
	est, dev float64
	has      bool
}

func (c *linkCapacity) reset() { *c = linkCapacity{dev: capacityDevInit} }

func (c *linkCapacity) update(sampleBps int, alpha float64) {
	s := float64(sampleBps) / 1000
	if !c.has {
		c.has, c.est = true, s
	} else {
		c.est = (1-alpha)*c.est + alpha*s
	}
	norm := max(c.est, 1)
	e := c.est - s
	c.dev = (1-alpha)*c.dev + alpha*e*e/norm
	c.dev = min(max(c.dev, capacityDevMin), capacityDevMax)
}

func (c *linkCapacity) spread() float64 { return math.Sqrt(c.dev * c.est) }

func (c *linkCapacity) upper() float64 {
	if !c.has {
		return math.Inf(1)
	}
	return (c.est + 3*c.spread()) * 1000
}

func (c *linkCapacity) lower() float64 {
	if !c.has {
		return 0
	}
	return max(0, c.est-3*c.spread()) * 1000
}

type rateControl struct {
	rate         int
	min, max     int
	state        rcState
	lastChange   int64 // ns
	lastDecrease int64
	capacity     linkCapacity
	decreased    bool // at least one decrease happened
	// restore is the rate the last overuse cut would have set without going deeper to drain
	// the queue (0: it did not go deeper); see restoreWithin.
	restore int
}

func (r *rateControl) init(start, lo, hi int) {
	*r = rateControl{rate: start, min: lo, max: hi, lastDecrease: math.MinInt64 / 2}
	r.capacity.reset()
}

func (r *rateControl) clamp(v float64) int {
	if v != v || v < float64(r.min) {
		return r.min
	}
	if v > float64(r.max) {
		return r.max
	}
	return int(v)
}

// timeToReduce says whether a further decrease is due: one RTT (clamped) after the last
// change, or at once if the delivered rate fell below half the estimate.
func (r *rateControl) timeToReduce(now int64, acked int, rtt time.Duration) bool {
	interval := min(max(rtt, reduceMin), reduceMax)
	if now-r.lastChange >= interval.Nanoseconds() {
		return true
	}
	return acked < r.rate/2
}

// onOveruse reacts to overuse, with queue the bottleneck's current queueing delay; measures
// says whether acked measures the path (false while the sender is application-limited: what
// is delivered is then what it sends). It returns whether the rate changed.
func (r *rateControl) onOveruse(now int64, acked int, rtt, queue time.Duration, measures bool) bool {
	if acked <= 0 {
		if now-r.lastChange < initialBackoff.Nanoseconds() {
			return false
		}
		r.rate = r.clamp(float64(r.rate) / 2)
		r.lastChange, r.lastDecrease, r.state = now, now, rcHold
		return true
	}
	if !r.timeToReduce(now, acked, rtt) {
		return false
	}
	factor := decreaseFactor
	if queue > queueAllowance {
		factor = max(drainFloor, factor-float64(queue-queueAllowance)/float64(drainTime))
	}
	base := float64(acked)
	if factor*base > float64(r.rate) && r.capacity.has {
		base = r.capacity.est * 1000
	}
	dec := factor * base
	if now-r.lastDecrease > restoreWithin.Nanoseconds() {
		r.restore = 0
	}
	if factor < decreaseFactor {
		// What the plain cut would set, at most the rate before it; the highest of a run of
		// cuts (each deeper one measures the same link).
		r.restore = max(r.restore, r.clamp(min(decreaseFactor*base, float64(r.rate))))
	}
	// The capacity is measured only by an overuse that cuts, while the sender is not
	// application-limited: one that finds the rate already below what it would set comes from
	// the queue an earlier cut is draining, and what is delivered then, or while the sender
	// sends less than its target, is the sender's own rate, not the link's (sampled so, the
	// capacity fell to 94–140 kbit/s behind a 181 kbit/s link and the hold kept the estimate
	// there for 30 s).
	changed := false
	if dec < float64(r.rate) {
		if measures {
			if float64(acked) < r.capacity.lower() {
				r.capacity.reset() // the path got worse: forget the old capacity
			}
			r.capacity.update(acked, capacityAlpha)
		}
		r.rate = r.clamp(dec)
		changed = true
	}
	r.decreased = true
	r.state = rcHold // until the queue has drained
	r.lastChange, r.lastDecrease = now, now
	return changed
}

// onSignal handles normal and underuse.
func (r *rateControl) onSignal(u usage, now int64, acked int, rtt time.Duration) bool {
	switch u {
	case usageUnder:
		r.state = rcHold // the queue is draining: let it
		return false
	case usageNormal:
		if r.state == rcHold {
			r.state = rcIncrease
			r.lastChange = now
		}
	}
	if r.state != rcIncrease {
		return false
	}
	// While holding, the sender sends below the capacity: more delivered than its spread is
	// a burst (a token bucket's, a keyframe's at line rate), not a better path, and only a
	// probe may say otherwise.
	holding := r.holding(now)
	if !holding && acked > 0 && float64(acked) > r.capacity.upper() {
		r.capacity.reset() // more got through than we thought fits: the path improved
	}
	limit := math.Inf(1)
	if acked > 0 {
		limit = ackedHeadroom*float64(acked) + ackedHeadroomAbs
	}
	if holding {
		limit = min(limit, capacityHoldShare*r.capacity.est*1000)
	}
	dt := min(time.Duration(now-r.lastChange), time.Second)
	r.lastChange = now
	cur := float64(r.rate)
	if cur >= limit {
		return false // application-limited (the path has not been shown to carry more) or holding
	}
	var next float64
	if r.capacity.has && cur >= nearCapacity*r.capacity.est*1000 {
		// Never faster than the multiplicative increase: at low rates a packet per
		// response time is ~20 %/s, which behind a slow link builds a 150 ms queue before
		// the trendline sees it.
		perSecond := min(additivePerSecond(cur, rtt), max(cur*(increasePerSecond-1), minAdditivePerSecond))
		next = cur + perSecond*dt.Seconds()
	} else {
		next = cur + max(cur*(math.Pow(increasePerSecond, dt.Seconds())-1), minIncrease)
	}
	next = min(next, limit)
	old := r.rate
	r.rate = r.clamp(max(next, cur))
	return r.rate != old
}

// drained raises the rate to what the last overuse cut would have set without draining
// (restore), once the queue is back within queueAllowance; it reports whether the rate changed.
func (r *rateControl) drained(now int64, queue time.Duration) bool {
	if r.restore == 0 || queue > queueAllowance {
		return false
	}
	restore := r.restore
	r.restore = 0
	if r.capacity.has {
		// The cuts' first delivered rates may still hold arrivals from before the queue:
		// no more than the plain cut from the capacity they measured.
		restore = min(restore, r.clamp(decreaseFactor*r.capacity.est*1000))
	}
	if now-r.lastDecrease > restoreWithin.Nanoseconds() || restore <= r.rate {
		return false
	}
	r.rate = restore
	r.lastChange = now
	return true
}

// holding says whether the rate is held below the capacity an overuse showed
// (capacityHold).
func (r *rateControl) holding(now int64) bool {
	return r.capacity.has && now-r.lastDecrease < capacityHold.Nanoseconds()
}

// additivePerSecond is about one average packet per response time.
func additivePerSecond(rate float64, rtt time.Duration) float64 {
	frameBits := rate / additiveFrameRate
	packets := math.Ceil(frameBits / additivePacketSize)
	packetBits := frameBits / max(packets, 1)
	response := (rtt + responseExtra).Seconds()
	return max(packetBits/response, minAdditivePerSecond)
}

// setFromProbe raises the rate to what a probe showed fits.
func (r *rateControl) setFromProbe(now int64, rate int) {
	r.rate = r.clamp(float64(rate))
	if r.capacity.has && float64(rate) > r.capacity.upper() {
		r.capacity.reset()
	}
	r.lastChange = now
}
