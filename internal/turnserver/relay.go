package turnserver

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/turn/v5"
)

// relayGen wraps pion/turn's relay address generator: it is where the server learns the user of
// each relay socket (AllocateListenerConfig.UserID), so it counts allocations, turns TCP relays
// off, and wraps every relay socket to filter peers and limit bandwidth packet by packet.
type relayGen struct {
	inner *turn.RelayAddressGeneratorStatic
	s     *Server
}

func (g *relayGen) Validate() error { return g.inner.Validate() }

func (g *relayGen) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if c.UserID == "" {
		// pion/turn's EVEN-PORT probe: an anonymous socket it closes at once.
		return g.inner.AllocatePacketConn(c)
	}
	u, err := g.s.acquireAllocation(c.UserID)
	if err != nil {
		return nil, nil, err
	}
	conn, addr, err := g.inner.AllocatePacketConn(c)
	if err != nil {
		g.s.users.release(u, true)
		return nil, nil, err
	}
	rc := &relayPacketConn{PacketConn: conn, s: g.s, u: u, key: relayKey(addr), perms: map[netip.Addr]bool{}}
	g.s.relays.add(rc)
	return rc, addr, nil
}

func (g *relayGen) AllocateListener(c turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	if !g.s.tcp {
		g.s.allocRefused.Add(1)
		g.s.log.Info("turn TCP allocation refused: TCP allocations are off", "user", userName(c.UserID))
		return nil, nil, ErrTCPAllocationsOff
	}
	u, err := g.s.acquireAllocation(c.UserID)
	if err != nil {
		return nil, nil, err
	}
	l, addr, err := g.inner.AllocateListener(c)
	if err != nil {
		g.s.users.release(u, true)
		return nil, nil, err
	}
	return &relayListener{Listener: l, s: g.s, u: u}, addr, nil
}

// AllocateConn dials a peer for a Connect request (RFC 6062). pion/turn accepts Connect on any
// allocation, UDP ones included, so this is the one place that keeps TCP relaying off.
func (g *relayGen) AllocateConn(c turn.AllocateConnConfig) (net.Conn, error) {
	if !g.s.tcp {
		g.s.allocRefused.Add(1)
		g.s.log.Info("turn TCP connect refused: TCP allocations are off", "user", userName(c.UserID), "peer", c.RemoteAddr.String())
		return nil, ErrTCPAllocationsOff
	}
	if ip := addrIP(c.RemoteAddr); !g.s.peers.Permits(ip) {
		// The PermissionHandler has already refused it; this guards the dial itself.
		g.s.refusePeer(nil, ip, "connect")
		return nil, fmt.Errorf("%w: %v", ErrPeerRefused, c.RemoteAddr)
	}
	// Bind the relay's port on the listening address: the relayed address carries the public IP,
	// which a host behind a 1:1 NAT does not have.
	if local, ok := c.LocalAddr.(*net.TCPAddr); ok {
		c.LocalAddr = &net.TCPAddr{IP: g.s.listenIP, Port: local.Port}
	}
	u, err := g.s.users.acquire(c.UserID, false)
	if err != nil {
		return nil, err
	}
	conn, err := g.inner.AllocateConn(c)
	if err != nil {
		g.s.users.release(u, false)
		return nil, err
	}
	return newRelayConn(conn, g.s, u), nil
}

func (s *Server) acquireAllocation(userID string) (*user, error) {
	u, err := s.users.acquire(userID, true)
	if err != nil {
		s.allocRefused.Add(1)
		s.log.Info("turn allocation refused: quota reached", "user", userName(userID), "max", s.users.max)
	}
	return u, err
}

func addrIP(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

func relayKey(a net.Addr) string { return a.Network() + " " + a.String() }

// relayTable finds a UDP relay socket by its relayed address, for pion/turn's permission events.
type relayTable struct {
	mu sync.Mutex
	m  map[string]*relayPacketConn
}

func (t *relayTable) add(c *relayPacketConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*relayPacketConn{}
	}
	t.m[c.key] = c
}

func (t *relayTable) remove(c *relayPacketConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[c.key] == c {
		delete(t.m, c.key)
	}
}

// permission records a permission pion/turn created (or deleted) on a UDP relay.
func (t *relayTable) permission(relay net.Addr, peer net.IP, ok bool) {
	if relay == nil {
		return
	}
	t.mu.Lock()
	c := t.m[relayKey(relay)]
	t.mu.Unlock()
	if c == nil {
		return // a TCP relay: pion/turn checks its permissions on accept
	}
	ip, _ := netip.AddrFromSlice(peer)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.perms[ip.Unmap()] = true
	} else {
		delete(c.perms, ip.Unmap())
	}
}

// relayPacketConn is a UDP relay socket. Every datagram is checked against the policy (pion/turn
// already refused the permission; this keeps a future gap there from becoming a hole), and
// charged to its user's bandwidth; over the limit it is dropped.
type relayPacketConn struct {
	net.PacketConn
	s    *Server
	u    *user
	key  string
	once sync.Once

	mu    sync.Mutex
	perms map[netip.Addr]bool // peers with a permission: only their packets are charged
}

// WriteTo sends client → peer.
func (c *relayPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ip := addrIP(addr); !c.s.peers.Permits(ip) {
		c.s.refusePeer(nil, ip, "send")
		return 0, fmt.Errorf("%w: %v", ErrPeerRefused, addr)
	}
	if !c.u.up.take(len(p)) {
		c.s.bwDropped.Add(1)
		return len(p), nil // dropped as a congested link would
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.s.relayedUp.Add(uint64(max(n, 0)))
	return n, err
}

// ReadFrom receives peer → client.
func (c *relayPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		ip := addrIP(addr)
		c.mu.Lock()
		permitted := c.perms[ip]
		c.mu.Unlock()
		switch {
		case !permitted:
			// pion/turn drops it too; skipping it here keeps strangers from spending the
			// user's bandwidth.
			continue
		case !c.s.peers.Permits(ip):
			c.s.refusePeer(nil, ip, "receive")
			continue
		case !c.u.down.take(n):
			c.s.bwDropped.Add(1)
			continue
		}
		c.s.relayedDown.Add(uint64(n))
		return n, addr, nil
	}
}

func (c *relayPacketConn) Close() error {
	c.once.Do(func() {
		c.s.relays.remove(c)
		c.s.users.release(c.u, true)
	})
	return c.PacketConn.Close()
}

// relayListener is a TCP relay's listening socket (RFC 6062): peers connect to it.
type relayListener struct {
	net.Listener
	s    *Server
	u    *user
	once sync.Once
}

func (l *relayListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ip := addrIP(conn.RemoteAddr()); !l.s.peers.Permits(ip) {
			l.s.refusePeer(nil, ip, "accept")
			conn.Close()
			continue
		}
		l.s.users.ref(l.u)
		return newRelayConn(conn, l.s, l.u), nil
	}
}

func (l *relayListener) Close() error {
	l.once.Do(func() { l.s.users.release(l.u, true) })
	return l.Listener.Close()
}

// relayConn is a TCP relay connection to a peer. A stream cannot drop bytes, so over the
// bandwidth limit it is slowed: reads and writes pause until the bucket has paid back.
type relayConn struct {
	net.Conn
	s      *Server
	u      *user
	closed chan struct{}
	once   sync.Once
}

func newRelayConn(conn net.Conn, s *Server, u *user) *relayConn {
	return &relayConn{Conn: conn, s: s, u: u, closed: make(chan struct{})}
}

// Read receives peer → client.
func (c *relayConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.relayedDown.Add(uint64(n))
		c.pause(c.u.down.reserve(n))
	}
	return n, err
}

// Write sends client → peer.
func (c *relayConn) Write(p []byte) (int, error) {
	c.pause(c.u.up.reserve(len(p)))
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	n, err := c.Conn.Write(p)
	c.s.relayedUp.Add(uint64(max(n, 0)))
	return n, err
}

func (c *relayConn) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closed:
	}
}

func (c *relayConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.s.users.release(c.u, false)
	})
	return c.Conn.Close()
}
