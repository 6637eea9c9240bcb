package httpguard

import (
	"net"
	"net/netip"
	"sync"
)

// LimitListener closes, at once, a new connection from a source (SourceKey of the TCP peer)
// that already holds max open connections; exempt prefixes (trusted proxies) are not limited.
// onRefuse (may be nil) is called with the source key. max ≤ 0 limits nothing.
//
// It works below HTTP, so it also bounds connections that never send a request and hijacked
// ones (WebSockets): a slot is freed when the connection is closed, by whoever owns it.
func LimitListener(l net.Listener, max int, exempt []netip.Prefix, onRefuse func(source string)) net.Listener {
	return &limitListener{Listener: l, max: max, exempt: exempt, onRefuse: onRefuse, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	max      int
	exempt   []netip.Prefix
	onRefuse func(string)

	mu   sync.Mutex
	open map[string]int // open connections per source; sources at zero are removed
}

// Accept returns the next connection within its source's limit; refused ones are closed here
// and never reach the caller, which would otherwise back off as after an error.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max <= 0 {
			return c, nil
		}
		ip := peerAddr(c)
		if !ip.IsValid() || inAny(l.exempt, ip) {
			return c, nil
		}
		key := SourceKey(ip)
		if l.acquire(key) {
			return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
		}
		c.Close()
		if l.onRefuse != nil {
			l.onRefuse(key)
		}
	}
}

func (l *limitListener) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return false
	}
	l.open[key]++
	return true
}

func (l *limitListener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// peerAddr is the connection's remote IP, or the zero Addr for a non-IP listener.
func peerAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().WithZone("")
	}
	return parseHop(c.RemoteAddr().String())
}

// limitedConn gives its slot back once, however often it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps net/http's half-close of a TCP connection (it lets an error answer reach the
// client before the reset) working through the wrapper.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Unlimit takes c, a connection LimitListener returned (or a TLS connection over one), out of
// its source's count: what it carries proved itself (an authenticated device link), so the
// source may open more. Other connections are left alone.
func Unlimit(c net.Conn) {
	for c != nil {
		switch v := c.(type) {
		case *limitedConn:
			v.once.Do(v.release)
			return
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return
		}
	}
}
