package congestion

import "time"

// Delay-based detection: packets are grouped by send time, the change of one-way delay
// between consecutive groups is accumulated, smoothed and fitted with a line over the
// last groups; the slope of that line (how fast the queue grows) compared with an
// adaptive threshold says overuse, underuse or normal. This is libwebrtc's trendline
// detector with its tuning, which is well studied against real browsers' feedback.

const (
	// groupLength: packets sent within 5 ms of a group's first form one group, so a frame's
	// burst gives one sample rather than many noisy ones.
	groupLength = 5 * time.Millisecond
	// burstArrival: a packet that arrives within 5 ms of its group's last one, earlier than
	// its send spacing implies, was held up with the group (by cross traffic): keep it there.
	burstArrival = 5 * time.Millisecond
	// maxBurstDuration bounds such a burst group, so that a long burst still gives samples.
	maxBurstDuration = 100 * time.Millisecond
	// arrivalJump: a change of one-way delay between two groups larger than any plausible
	// queue change means the receiver's clock (or the feedback) jumped: start over.
	arrivalJump = 3 * time.Second
	// maxReordered consecutive groups arriving before their predecessor also start over.
	maxReordered = 3

	// trendWindow is the number of group deltas in the linear fit: long enough to average
	// out jitter, short enough to react to a growing queue within a few hundred ms.
	trendWindow = 20
	// trendSmoothing smooths the accumulated delay before the fit (an EWMA coefficient).
	trendSmoothing = 0.9
	// trendGain turns the slope into a number comparable with the ms threshold.
	trendGain = 4.0
	// trendMinDeltas: the slope counts in proportion to the samples seen, up to this many,
	// so a fresh detector does not overreact.
	trendMinDeltas = 60
	// trendMaxDeltas caps the sample counter (it only matters below trendMinDeltas).
	trendMaxDeltas = 1000

	// thresholdInit, thresholdMin and thresholdMax (ms) bound the adaptive threshold.
	thresholdInit = 12.5
	thresholdMin  = 6.0
	thresholdMax  = 600.0
	// thresholdUp: the threshold rises slowly toward a signal above it, so that a competing
	// TCP flow's standing queue does not starve us ...
	thresholdUp = 0.0087
	// thresholdDown: ... and falls faster toward one below it, to regain sensitivity.
	thresholdDown = 0.039
	// thresholdMaxOffset (ms): a signal this far above the threshold is a spike (a capacity
	// drop), which must not teach the threshold to ignore the next one.
	thresholdMaxOffset = 15.0
	// thresholdMaxStep (ms) caps the time one threshold update accounts for.
	thresholdMaxStep = 100.0
	// overuseTime (ms): the signal must stay above the threshold this long (and for two
	// samples) before it counts as overuse, so a single late group does not.
	overuseTime = 10.0
)

type usage int8

const (
	usageNormal usage = iota
	usageOver
	usageUnder
)

func (u usage) String() string {
	switch u {
	case usageOver:
		return "overuse"
	case usageUnder:
		return "underuse"
	}
	return "normal"
}

type packetGroup struct {
	firstSend, lastSend       int64 // ns, local clock
	firstArrival, lastArrival int64 // µs, receiver's clock
	valid                     bool
}

// interArrival turns received packets, in send order, into deltas between groups.
type interArrival struct {
	cur, prev packetGroup
	reordered int
}

type groupDelta struct {
	sendMs, arrivalMs float64 // deltas between the two last complete groups
	atMs              float64 // receiver time of the sample
}

// add takes one received packet. It returns a delta when the packet completes a group;
// reset says that the history was thrown away and the trend must start over.
func (a *interArrival) add(sendNs, arrivalUs int64) (d groupDelta, ok, reset bool) {
	if !a.cur.valid {
		a.cur = packetGroup{sendNs, sendNs, arrivalUs, arrivalUs, true}
		return d, false, false
	}
	if sendNs < a.cur.firstSend {
		// Sent before the group being built (reordered, or reported late): it says nothing
		// about the queue now.
		return d, false, false
	}
	if !a.startsGroup(sendNs, arrivalUs) {
		a.cur.lastSend = max(a.cur.lastSend, sendNs)
		a.cur.lastArrival = max(a.cur.lastArrival, arrivalUs)
		return d, false, false
	}
	if a.prev.valid {
		sendDelta := a.cur.lastSend - a.prev.lastSend
		arrDelta := (a.cur.lastArrival - a.prev.lastArrival) * 1000
		if diff := arrDelta - sendDelta; diff >= arrivalJump.Nanoseconds() || diff <= -arrivalJump.Nanoseconds() {
			*a = interArrival{cur: packetGroup{sendNs, sendNs, arrivalUs, arrivalUs, true}}
			return d, false, true
		}
		if arrDelta < 0 {
			a.reordered++
			if a.reordered >= maxReordered {
				*a = interArrival{cur: packetGroup{sendNs, sendNs, arrivalUs, arrivalUs, true}}
				return d, false, true
			}
		} else {
			a.reordered = 0
			d = groupDelta{
				sendMs:    float64(sendDelta) / 1e6,
				arrivalMs: float64(arrDelta) / 1e6,
				atMs:      float64(arrivalUs) / 1e3,
			}
			ok = true
		}
	}
	a.prev = a.cur
	a.cur = packetGroup{sendNs, sendNs, arrivalUs, arrivalUs, true}
	return d, ok, false
}

func (a *interArrival) startsGroup(sendNs, arrivalUs int64) bool {
	// A burst: arrived right after the group and sooner than sent, i.e. it queued with it.
	arrDelta := (arrivalUs - a.cur.lastArrival) * 1000
	sendDelta := sendNs - a.cur.lastSend
	if sendDelta == 0 {
		return false
	}
	if arrDelta-sendDelta < 0 && arrDelta <= burstArrival.Nanoseconds() &&
		(arrivalUs-a.cur.firstArrival)*1000 < maxBurstDuration.Nanoseconds() {
		return false
	}
	return sendNs-a.cur.firstSend > groupLength.Nanoseconds()
}

// trendline fits a line to the smoothed accumulated delay and detects overuse.
type trendline struct {
	x, y       [trendWindow]float64 // ring of (arrival ms since first, smoothed delay ms)
	head, n    int
	firstMs    float64
	started    bool
	accDelay   float64
	smoothed   float64
	numDeltas  int
	prevTrend  float64
	threshold  float64
	lastThrMs  float64
	thrStarted bool
	overMs     float64 // time spent above the threshold, -1 when not
	overCount  int
	state      usage
}

func (t *trendline) reset() {
	*t = trendline{threshold: thresholdInit, overMs: -1}
}

func (t *trendline) update(d groupDelta) {
	t.numDeltas = min(t.numDeltas+1, trendMaxDeltas)
	if !t.started {
		t.started = true
		t.firstMs = d.atMs
	}
	t.accDelay += d.arrivalMs - d.sendMs
	t.smoothed = trendSmoothing*t.smoothed + (1-trendSmoothing)*t.accDelay
	i := (t.head + t.n) % trendWindow
	if t.n == trendWindow {
		i = t.head
		t.head = (t.head + 1) % trendWindow
	} else {
		t.n++
	}
	t.x[i], t.y[i] = d.atMs-t.firstMs, t.smoothed
	trend := t.prevTrend
	if t.n == trendWindow {
		if s, ok := t.slope(); ok {
			trend = s
		}
	}
	t.detect(trend, d.sendMs, d.atMs)
}

// slope is the least-squares slope of the window: (send rate − capacity) / capacity.
func (t *trendline) slope() (float64, bool) {
	var sx, sy float64
	for i := 0; i < t.n; i++ {
		sx += t.x[i]
		sy += t.y[i]
	}
	mx, my := sx/float64(t.n), sy/float64(t.n)
	var num, den float64
	for i := 0; i < t.n; i++ {
		dx := t.x[i] - mx
		num += dx * (t.y[i] - my)
		den += dx * dx
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

func (t *trendline) detect(trend, sendDeltaMs, nowMs float64) {
	if t.numDeltas < 2 {
		t.state = usageNormal
		return
	}
	modified := float64(min(t.numDeltas, trendMinDeltas)) * trend * trendGain
	switch {
	case modified > t.threshold:
		if t.overMs == -1 {
			t.overMs = sendDeltaMs / 2 // assume overuse began half way since the last sample
		} else {
			t.overMs += sendDeltaMs
		}
		t.overCount++
		if t.overMs > overuseTime && t.overCount > 1 && trend >= t.prevTrend {
			t.overMs, t.overCount = 0, 0
			t.state = usageOver
		}
	case modified < -t.threshold:
		t.overMs, t.overCount = -1, 0
		t.state = usageUnder
	default:
		t.overMs, t.overCount = -1, 0
		t.state = usageNormal
	}
	t.prevTrend = trend
	t.adapt(modified, nowMs)
}

func (t *trendline) adapt(modified, nowMs float64) {
	if !t.thrStarted {
		t.thrStarted = true
		t.lastThrMs = nowMs
	}
	abs := modified
	if abs < 0 {
		abs = -abs
	}
	if abs > t.threshold+thresholdMaxOffset {
		t.lastThrMs = nowMs
		return
	}
	k := thresholdUp
	if abs < t.threshold {
		k = thresholdDown
	}
	dt := min(max(nowMs-t.lastThrMs, 0), thresholdMaxStep)
	t.threshold += k * (abs - t.threshold) * dt
	t.threshold = min(max(t.threshold, thresholdMin), thresholdMax)
	t.lastThrMs = nowMs
}

const (
	// baseDelayWindow: the one-way delay floor (no queue) is the minimum over the last one
	// to two such windows, so that a route change or clock drift is forgotten.
	baseDelayWindow = 10 * time.Second
)

// queueDelay estimates the bottleneck's queueing delay from one-way delays (arrival on
// the receiver's clock minus departure on ours: an unknown but constant offset that the
// minimum cancels).
type queueDelay struct {
	cur, prev       int64 // minimum one-way delay (ns, with the offset) of this and the last window
	curStart        int64
	hasCur, hasPrev bool
	last            int64 // latest queue delay (ns)
}

func (q *queueDelay) reset() { *q = queueDelay{} }

// add takes the least one-way delay of a feedback's packets at local time now.
func (q *queueDelay) add(now, owd int64) {
	if !q.hasCur || now-q.curStart >= baseDelayWindow.Nanoseconds() {
		q.prev, q.hasPrev = q.cur, q.hasCur
		q.cur, q.curStart, q.hasCur = owd, now, true
	}
	q.cur = min(q.cur, owd)
	base := q.cur
	if q.hasPrev {
		base = min(base, q.prev)
	}
	q.last = owd - base
}
