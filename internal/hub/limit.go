package hub

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Admission (docs/hub.md, "Abuse"). A connection at /device or /ws is a handshake until it
// authenticates: it takes one token of its source's connection budget (Config.ConnRate) and
// one of the source's handshake slots (MaxHandshakesPerSource). A device that proves its key
// gets the token back and its socket leaves the source's count of open connections
// (MaxConnsPerSource), so thousands of devices behind one carrier-grade NAT are held by their
// keys, not throttled by their shared address. Failed authentications are counted per source
// (AuthFailsPerMinute: a flood of bad ids from one address is stopped) and per device id and
// source (AuthFailsPerDevice: one misconfigured device does not lock out the others behind its
// address).

// handshake is one connection between admission and authentication.
type handshake struct {
	s      *Server
	remote string
	once   sync.Once
}

// admitHandshake admits a connection that is to authenticate, or answers 429.
func (s *Server) admitHandshake(w http.ResponseWriter, r *http.Request, remote string) (*handshake, bool) {
	if !s.handshakes.acquire(remote) {
		s.refuse(w, remote, "too many handshakes in progress", 1)
		return nil, false
	}
	if !s.admit(w, r, remote) {
		s.handshakes.release(remote)
		return nil, false
	}
	return &handshake{s: s, remote: remote}, true
}

// end frees the handshake's slot; later calls do nothing.
func (h *handshake) end() { h.once.Do(func() { h.s.handshakes.release(h.remote) }) }

// device ends the handshake of a device that proved its key: its connection token goes back
// to the source's budget and its socket out of the source's count of open connections.
func (h *handshake) device(c *websocket.Conn) {
	h.end()
	h.s.conns.refund(h.remote)
	httpguard.Unlimit(c.UnderlyingConn())
}

// deviceKey is the per-device failure budget's key: the id at its source.
func deviceKey(id, remote string) string { return id + " " + remote }

// deviceMayTry refuses, without checking its signature, a device id whose failures from
// remote used up its budget. Other ids from remote are not concerned.
func (s *Server) deviceMayTry(ws *wsConn, remote, id string) bool {
	if auth.ValidateDeviceID(id) != nil || !s.deviceFails.exhausted(deviceKey(id, remote)) {
		return true
	}
	s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Device: id, Reason: "too many failed authentications of this device id"})
	ws.fail(wire.CodeRateLimited, "too many failed authentications of this device id from this address")
	<-ws.Done()
	return false
}

// deviceAuthFailed counts a failed device authentication against its id at remote (authFailed
// counts it against remote). Ids that are not device ids count against remote only, so made-up
// ones cannot fill the table.
func (s *Server) deviceAuthFailed(remote, id string) {
	if auth.ValidateDeviceID(id) == nil {
		s.deviceFails.allow(deviceKey(id, remote))
	}
}

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

// refund gives back a token taken from addr (a connection that authenticated a device took
// nothing from its address's budget); a bucket swept meanwhile is full already.
func (l *limiter) refund(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[addr]; b != nil {
		b.tokens = min(l.burst, b.tokens+1)
	}
}

// gauge counts what is in progress per source address (handshakes not yet authenticated), up
// to max each. Sources at zero are removed, so it holds no more keys than there are handshakes.
type gauge struct {
	mu   sync.Mutex
	max  int
	open map[string]int
}

func newGauge(max int) *gauge { return &gauge{max: max, open: map[string]int{}} }

// acquire takes one of addr's slots; false when it holds max already.
func (g *gauge) acquire(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[addr] >= g.max {
		return false
	}
	g.open[addr]++
	return true
}

func (g *gauge) release(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[addr]--; g.open[addr] <= 0 {
		delete(g.open, addr)
	}
}

func (g *gauge) setMax(max int) {
	g.mu.Lock()
	g.max = max
	g.mu.Unlock()
}
