package congestion

import (
	"math"
	"time"
)

// The loss-based limit, from the packets the feedback reports as not received: high loss
// (congestion on a path with a shallow queue, or a policer, where delay never grows) cuts
// it, moderate loss freezes it, low loss lets it rise until it no longer limits.

const (
	// lossWindowPackets: a loss fraction is computed over at least this many packets;
	// fewer give steps too coarse to compare with the thresholds.
	lossWindowPackets = 20
	// lossSmoothing: the time constant of the smoothed loss. A decrease needs both the
	// last window and the smoothed loss above lossHigh, an increase both below lossLow, so
	// that random loss in a 20-packet window (5 % loss shows > 10 % in 1 window of 13)
	// does not move the limit while sustained loss still acts within a few windows.
	lossSmoothing = time.Second
	// lossHigh: above 10 % loss the path is congested: decrease.
	lossHigh = 0.10
	// lossLow: below 2 % loss is noise: allow increase.
	lossLow = 0.02
	// lossBackoff: on high loss the rate becomes rate × (1 − 0.5·loss).
	lossBackoff = 0.5
	// lossDecreaseInterval (+ RTT) between two loss-based decreases, so that the effect of
	// one shows in the feedback before the next.
	lossDecreaseInterval = 300 * time.Millisecond
	// lossIncreasePerSecond: with low loss the limit rises 8 %/s until it no longer limits.
	lossIncreasePerSecond = 1.08
)

type lossControl struct {
	limited      bool // whether rate limits the target at all
	rate         int
	lost, total  int     // the window being filled
	last         float64 // loss of the last window
	smoothed     float64 // loss smoothed over lossSmoothing
	lastUpdate   int64
	lastDecrease int64
}

func (l *lossControl) init() {
	*l = lossControl{lastDecrease: math.MinInt64 / 2}
}

// count records one packet's first report.
func (l *lossControl) count(received bool) {
	l.total++
	if !received {
		l.lost++
	}
}

// unlose records that a packet reported lost arrived after all (it was reordered, not
// lost). If its window is closed already the correction goes into the next one as a
// credit (lost may go negative) so that reordering does not read as loss.
func (l *lossControl) unlose() {
	if l.lost > -lossWindowPackets {
		l.lost--
	}
}

// update closes the window if it is full and adjusts the limit. target is the current
// target, delayRate the delay-based rate; it returns whether the limit changed, and
// whether it rose.
func (l *lossControl) update(now int64, target, delayRate, lo, hi int, rtt time.Duration) (changed, rose bool) {
	if l.total < lossWindowPackets {
		return false, false
	}
	frac := float64(max(l.lost, 0)) / float64(l.total)
	l.lost, l.total = min(l.lost, 0), 0
	l.last = frac
	dt := time.Second
	if l.lastUpdate != 0 {
		dt = min(time.Duration(now-l.lastUpdate), time.Second)
		l.smoothed = frac + math.Exp(-float64(dt)/float64(lossSmoothing))*(l.smoothed-frac)
	} else {
		l.smoothed = frac
	}
	l.lastUpdate = now
	high, low := min(frac, l.smoothed), max(frac, l.smoothed)
	old, wasLimited := l.rate, l.limited
	base := target
	if l.limited {
		base = min(l.rate, target)
	}
	switch {
	case high > lossHigh:
		if now-l.lastDecrease < (lossDecreaseInterval + rtt).Nanoseconds() {
			// Still reacting to the last decrease; but never let the limit sit above the
			// target meanwhile.
			l.rate, l.limited = base, true
			break
		}
		l.rate = clampInt(int(float64(base)*(1-lossBackoff*high)), lo, hi)
		l.limited = true
		l.lastDecrease = now
	case low >= lossLow:
		l.rate, l.limited = base, true // hold where we are
	default:
		if l.limited {
			l.rate = clampInt(int(float64(l.rate)*math.Pow(lossIncreasePerSecond, dt.Seconds())+minIncrease*dt.Seconds()), lo, hi)
			if l.rate >= delayRate {
				l.limited = false
			}
		}
	}
	changed = l.limited != wasLimited || (l.limited && l.rate != old)
	return changed, changed && (!l.limited || l.rate > old)
}

// raise lifts the limit to at least rate (a probe showed it fits).
func (l *lossControl) raise(rate int) {
	if l.limited && l.rate < rate {
		l.rate = rate
	}
}

func clampInt(v, lo, hi int) int {
	return min(max(v, lo), hi)
}
