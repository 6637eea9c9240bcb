package hub

import (
	"sync"
	"time"
)

// limiter is a token bucket per source address: rate tokens a second, up to burst. Buckets of
// addresses not seen for a while are forgotten, so a flood from many addresses cannot grow it
// without bound.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the table; past it, idle buckets are swept first, then the call is refused.
const maxBuckets = 100_000

func newLimiter(rate, burst float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: burst, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token for addr.
func (l *limiter) allow(addr string) bool { return l.take(addr, 1, false) }

// exhausted reports whether addr has no token left, without taking one.
func (l *limiter) exhausted(addr string) bool { return !l.take(addr, 1, true) }

func (l *limiter) take(addr string, n float64, peek bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) > time.Minute || len(l.buckets) >= maxBuckets {
		l.sweep(now)
	}
	b := l.buckets[addr]
	if b == nil {
		if peek {
			return true
		}
		if len(l.buckets) >= maxBuckets {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[addr] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < n {
		return false
	}
	if !peek {
		b.tokens -= n
	}
	return true
}

// sweep forgets buckets that have refilled completely: they hold no information.
func (l *limiter) sweep(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
	l.swept = now
}
