package congestion

import "time"

// Two rate meters: what the path delivered (from the receiver's arrival times in the
// feedback) and what the sender handed to it (from Sent), both over short sliding windows
// kept in fixed arrays so that measuring allocates nothing.

const (
	// ackedWindow is the span of arrival time the delivered rate is measured over: several
	// frames long so a frame's burst does not dominate, short enough that after a capacity
	// drop the rate reflects the new capacity within a few hundred ms.
	ackedWindow = 300 * time.Millisecond
	// ackedMinSpan is the least arrival span that gives a rate at all: the first feedback
	// may cover a single burst whose rate says nothing about the path.
	ackedMinSpan = 100 * time.Millisecond
	// ackedRingSize holds a window of packets at Max rate (20 Mbit/s, 1200 bytes: 625) with
	// room for small padding packets; when full the window just gets shorter.
	ackedRingSize = 2048
	ackedRingMin  = 32
	// ackedGap is a silence in arrivals after which the old window is discarded: the rate
	// before a pause says nothing about the rate after it.
	ackedGap = 2 * time.Second

	// sendBucket and sendBuckets make the send-rate window (500 ms): several frames of a
	// static picture, short enough to see the sender go quiet.
	sendBucket  = 50 * time.Millisecond
	sendBuckets = 10
)

type arrival struct {
	atUs int64
	size int32
}

// ackedRate is a sliding window over receive times of the bytes that arrived.
type ackedRate struct {
	// ring doubles when the window needs it, up to ackedRingSize: 300 ms at the board's
	// 2 Mbit/s is ~60 packets, and a fixed ring cost every viewer 32 kB
	// (docs/performance.md "Footprint").
	ring      []arrival
	head, n   int
	sum       int64
	newestUs  int64
	startUs   int64 // first arrival since the last reset: the window is shorter before it fills
	hasSample bool
}

func (a *ackedRate) reset() {
	a.head, a.n, a.sum, a.hasSample = 0, 0, 0, false
}

func (a *ackedRate) add(atUs int64, size int) {
	win := ackedWindow.Microseconds()
	if a.hasSample {
		if atUs > a.newestUs+ackedGap.Microseconds() {
			a.reset()
		} else if atUs <= a.newestUs-win {
			return // reported late and already outside the window
		}
	}
	if !a.hasSample {
		a.hasSample = true
		a.newestUs, a.startUs = atUs, atUs
	}
	// What has left the window goes first, so the ring grows only for what is in it.
	for a.n > 0 && a.ring[a.head].atUs <= max(a.newestUs, atUs)-win {
		a.pop()
	}
	if a.n == len(a.ring) {
		if len(a.ring) < ackedRingSize {
			a.grow()
		} else {
			a.pop()
		}
	}
	a.ring[(a.head+a.n)%len(a.ring)] = arrival{atUs: atUs, size: int32(size)}
	a.n++
	a.sum += int64(size)
	if atUs > a.newestUs {
		a.newestUs = atUs
	}
	for a.n > 0 && a.ring[a.head].atUs <= a.newestUs-win {
		a.pop()
	}
}

func (a *ackedRate) pop() {
	a.sum -= int64(a.ring[a.head].size)
	a.head = (a.head + 1) % len(a.ring)
	a.n--
}

// grow doubles the ring (or makes its first), oldest arrival first.
func (a *ackedRate) grow() {
	ring := make([]arrival, max(ackedRingMin, 2*len(a.ring)))
	for i := range a.n {
		ring[i] = a.ring[(a.head+i)%len(a.ring)]
	}
	a.ring, a.head = ring, 0
}

// rate is the delivered rate in bit/s, 0 while unknown.
func (a *ackedRate) rate() int {
	if !a.hasSample {
		return 0
	}
	span := min(a.newestUs-a.startUs, ackedWindow.Microseconds())
	if span < ackedMinSpan.Microseconds() {
		return 0
	}
	return int(a.sum * 8 * 1_000_000 / span)
}

// recentRate is the delivered rate in bit/s of the arrivals in the last span, over the time
// between the first and the last of them (0 when that is under a third of span): quicker than
// rate to show a drop, noisier. Measured between arrivals rather than over the whole span, a
// queued path's rate is its bottleneck's even when the sender paused before (a rendition
// switch's keyframe held back, a gap in the arrivals): packets that waited in a queue arrive
// as fast as the bottleneck serves them.
func (a *ackedRate) recentRate(span time.Duration) int {
	if !a.hasSample || a.n < 2 {
		return 0
	}
	from := a.newestUs - span.Microseconds()
	first, firstSize := int64(-1), int64(0)
	var sum int64
	for i := a.n - 1; i >= 0; i-- {
		p := a.ring[(a.head+i)%len(a.ring)]
		if p.atUs <= from {
			break
		}
		sum += int64(p.size)
		first, firstSize = p.atUs, int64(p.size)
	}
	d := a.newestUs - first
	if first < 0 || d < span.Microseconds()/3 {
		return 0
	}
	return int((sum - firstSize) * 8 * 1_000_000 / d)
}

// sendMeter counts the media bytes the sender sent in fixed time buckets.
type sendMeter struct {
	buckets [sendBuckets]int64
	cur     int64 // index (time / sendBucket) of the newest bucket
	startNs int64
	started bool
}

// bucketOf is the bucket index of a time, flooring so that times before the epoch work.
func bucketOf(ns int64) int64 {
	b := sendBucket.Nanoseconds()
	q := ns / b
	if ns%b < 0 {
		q--
	}
	return q
}

// slot is the ring position of bucket index i (never negative).
func slot(i int64) int64 {
	return (i%sendBuckets + sendBuckets) % sendBuckets
}

func (m *sendMeter) roll(nowNs int64) {
	idx := bucketOf(nowNs)
	if !m.started {
		m.started, m.cur, m.startNs = true, idx, nowNs
		return
	}
	if idx <= m.cur {
		return
	}
	for i := m.cur + 1; i <= idx && i <= m.cur+sendBuckets; i++ {
		m.buckets[slot(i)] = 0
	}
	m.cur = idx
}

func (m *sendMeter) add(nowNs int64, bytes int) {
	m.roll(nowNs)
	m.buckets[slot(m.cur)] += int64(bytes)
}

// rate is the send rate in bit/s over the window ending at now.
func (m *sendMeter) rate(nowNs int64) int {
	if !m.started {
		return 0
	}
	m.roll(nowNs)
	var sum int64
	for _, b := range m.buckets {
		sum += b
	}
	b := sendBucket.Nanoseconds()
	span := (sendBuckets-1)*b + (nowNs - m.cur*b)
	span = min(span, nowNs-m.startNs)
	span = max(span, b)
	return int(sum * 8 * 1_000_000_000 / span)
}
