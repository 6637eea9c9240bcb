// Package udpbatch wraps a UDP socket so that the packets written between Hold and Flush leave
// in one sendmmsg(2) system call (and, where consecutive packets go to one destination with
// one size, as one UDP GSO message) instead of one sendto(2) each.
//
// The device serves every viewer through one shared socket (Pion's ICE UDP mux), and a profile
// showed the sendto per packet was most of the device's CPU per packet. The pacer writes a
// batch of SRTP packets for many viewers every few milliseconds; bracketing that batch with
// Hold/Flush turns N system calls into about N/Batch while Pion keeps writing through the
// ordinary net.PacketConn interface.
//
// # Writes from other goroutines during a window
//
// A window belongs to the Conn, not to a goroutine: Go has no goroutine identity, so the Conn
// cannot tell the pacer's writes from those Pion makes on its own goroutines (ICE checks, DTLS,
// SCTP, RTCP). Every write made while a window is open is queued, whichever goroutine makes it.
// That keeps one FIFO, so the packets a goroutine writes leave in the order it wrote them, and a
// write inside a window costs a copy, not a system call (only the write that finds the queue
// full sends it, and a write may wait for a flush in progress). A queued packet waits at most
// until the queue fills (Batch packets) or the window closes — the pacer's batch time, a few
// milliseconds at most — which ICE, DTLS and RTCP tolerate easily, and which costs Pion's own
// packets less than the system call it saves them. The price: a queued write reports no send
// error (UDP reports none worth acting on; Flush returns them and Stats counts them), and a
// window left open stalls everyone's writes, so every Hold must be paired with a Flush.
//
// Outside a window a write is a plain sendto on the caller's goroutine, with no copy.
//
// # With Pion
//
// Give the Conn to webrtc.NewICEUDPMux. It implements ice.AddrPortReaderWriter
// (ReadFromAddrPort, WriteToAddrPort), which the mux looks for on anything that is not a bare
// *net.UDPConn: without them it would read with ReadFrom, allocating a *net.UDPAddr per
// packet received, and write with WriteTo. LocalAddr is the socket's *net.UDPAddr, the type the mux requires. Pion writes
// SRTP synchronously on the writer's goroutine down to WriteToAddrPort, so a pacer's WriteRTP
// calls inside a window are queued. The mux owns the Conn: its Close closes it. One quirk: when
// an ICE candidate closes while any write is inside the mux, the mux aborts it by setting a
// write deadline of now on the whole shared socket until that write returns; a flush that
// starts (or waits for the socket) in that instant fails like any write on the socket would,
// and its packets are counted in Stats.Errors.
package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrNotHeld is returned by Flush without a matching Hold.
	ErrNotHeld = errors.New("udpbatch: Flush without Hold")
	// ErrAddress is returned for a destination that is not a valid UDP address.
	ErrAddress = errors.New("udpbatch: invalid UDP address")
	// ErrAddressFamily is returned for a destination the socket cannot reach (an IPv6 address on
	// an IPv4 socket).
	ErrAddressFamily = errors.New("udpbatch: address family does not match the socket")
	// ErrConnected is returned by New for a connected socket (writes carry their destination).
	ErrConnected = errors.New("udpbatch: socket is connected")
	// ErrDropped wraps the errors of packets a flush could not send; Stats.Errors counts them.
	ErrDropped = errors.New("udpbatch: packets not sent")
)

// Options tune a Conn. The zero value is usable.
type Options struct {
	// Batch is how many packets are queued (and sent per system call) before a window's
	// queue is flushed early (default 64).
	Batch int
	// MaxPacket is the size of a queue slot (default 1500). A larger packet written inside a
	// window flushes the queue and is sent on its own, so order is kept.
	MaxPacket int
	// NoGSO turns off UDP GSO. With it on (the default, where the kernel has it: Linux 4.18),
	// a run of consecutive queued packets to one destination with one size (the last may be
	// shorter) leaves as one message that the kernel cuts into datagrams (UDP_SEGMENT): the
	// stack is walked once per run instead of once per packet. On loopback (BenchmarkSend:
	// 30 viewers × 40 packets of 1200 bytes) it took the sender's CPU per packet from ~1650 ns
	// (sendmmsg alone; sendto: ~1900) to ~800 ns when the batch is written viewer by viewer;
	// packets interleaved across viewers form no runs and cost what sendmmsg alone does.
	NoGSO bool
}

// Stats counts what the Conn sent. Counters only grow.
type Stats struct {
	Packets  uint64 `json:"packets"`  // packets handed to the kernel (queued and direct)
	Bytes    uint64 `json:"bytes"`    // their payload bytes
	Syscalls uint64 `json:"syscalls"` // send system calls made (sendmmsg, sendto), failed ones included
	Batches  uint64 `json:"batches"`  // flushes of a non-empty queue
	Direct   uint64 `json:"direct"`   // packets written outside a window (one sendto each)
	GSO      uint64 `json:"gso"`      // GSO messages sent (each carrying two packets or more)
	Errors   uint64 `json:"errors"`   // packets that could not be sent (per-message errors, closed socket, deadline)
	// GSOOn says whether GSO is in use now (not turned off by Options, supported, and not
	// turned off after the kernel refused it).
	GSOOn bool `json:"gso_on"`
}

// PerSyscall is the mean number of packets per send system call.
func (s Stats) PerSyscall() float64 {
	if s.Syscalls == 0 {
		return 0
	}
	return float64(s.Packets) / float64(s.Syscalls)
}

type counters struct {
	packets, bytes, syscalls, batches, direct, gso, errors atomic.Uint64
	gsoOn                                                  atomic.Bool
}

// Conn is a net.PacketConn over a *net.UDPConn whose writes, between Hold and Flush, are
// queued and sent together with sendmmsg(2). It also implements ReadFromAddrPort and
// WriteToAddrPort, which Pion's UDP mux uses (allocation-free) when a conn has them.
type Conn struct {
	uc        *net.UDPConn
	batch     int
	maxPacket int

	mu      sync.Mutex
	depth   int              // open windows (Hold minus Flush)
	n       int              // queued packets
	buf     []byte           // batch slots of maxPacket bytes
	lens    []int            // length of each queued packet
	dsts    []netip.AddrPort // destination of each queued packet
	pending error            // first error of a flush made inside the window, for its Flush
	sys     sender           // the platform's way of sending the queue

	stats counters
}

// New wraps c, which must be an unconnected UDP socket; the Conn owns it from now on (Close
// closes it).
func New(c *net.UDPConn, opts Options) (*Conn, error) {
	if c.RemoteAddr() != nil {
		return nil, ErrConnected
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.MaxPacket <= 0 {
		opts.MaxPacket = 1500
	}
	bc := &Conn{
		uc:        c,
		batch:     opts.Batch,
		maxPacket: opts.MaxPacket,
		buf:       make([]byte, opts.Batch*opts.MaxPacket),
		lens:      make([]int, opts.Batch),
		dsts:      make([]netip.AddrPort, opts.Batch),
	}
	if err := bc.initSender(opts); err != nil {
		return nil, err
	}
	return bc, nil
}

// Hold opens (or nests) a batch window: until the matching Flush, writes are queued.
func (c *Conn) Hold() {
	c.mu.Lock()
	c.depth++
	c.mu.Unlock()
}

// Flush closes a window; when the outermost one closes, everything queued is sent. The error
// covers every flush of the window (including ones made early because the queue was full):
// it wraps ErrDropped when some packets could not be sent — the others were.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.depth == 0 {
		return ErrNotHeld
	}
	c.depth--
	if c.depth > 0 {
		return nil
	}
	c.flushLocked()
	err := c.pending
	c.pending = nil
	return err
}

// flushLocked sends the queue (c.mu held) and keeps the first error for the window's Flush.
func (c *Conn) flushLocked() {
	if c.n == 0 {
		return
	}
	c.stats.batches.Add(1)
	err := c.sendQueued()
	c.n = 0
	if err != nil && c.pending == nil {
		c.pending = err
	}
}

// WriteTo queues p for addr inside a window (returning len(p), nil), or sends it at once
// outside one. addr is a *net.UDPAddr or any net.Addr with an AddrPort method.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ap, err := addrPortOf(addr)
	if err != nil {
		return 0, err
	}
	return c.WriteToAddrPort(p, ap)
}

// WriteToAddrPort is WriteTo for a netip.AddrPort (Pion's mux writes through it).
func (c *Conn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	if !addr.IsValid() {
		return 0, ErrAddress
	}
	c.mu.Lock()
	if c.depth == 0 {
		// Every flush happens inside c.mu as a window closes (or fills), so a depth of 0 seen
		// here means this goroutine's queued packets, if any, are already with the kernel:
		// sending without the lock cannot overtake them.
		c.mu.Unlock()
		return c.writeDirect(p, addr)
	}
	if len(p) > c.maxPacket {
		// Does not fit a slot: send what is queued first, so order is kept, then this alone.
		c.flushLocked()
		c.mu.Unlock()
		return c.writeDirect(p, addr)
	}
	addr, err := c.sys.canon(addr)
	if err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if c.n == c.batch {
		c.flushLocked()
	}
	i := c.n
	c.lens[i] = copy(c.buf[i*c.maxPacket:(i+1)*c.maxPacket], p)
	c.dsts[i] = addr
	c.n++
	c.mu.Unlock()
	return len(p), nil
}

func (c *Conn) writeDirect(p []byte, addr netip.AddrPort) (int, error) {
	n, err := c.uc.WriteToUDPAddrPort(p, addr)
	c.stats.syscalls.Add(1)
	if err != nil {
		c.stats.errors.Add(1)
		return n, err
	}
	c.stats.direct.Add(1)
	c.stats.packets.Add(1)
	c.stats.bytes.Add(uint64(n))
	return n, nil
}

// addrPortOf converts a destination without allocating (a *net.UDPAddr's IP is read in place).
func addrPortOf(addr net.Addr) (netip.AddrPort, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		if a == nil || a.Port < 0 || a.Port > 0xffff {
			return netip.AddrPort{}, ErrAddress
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return netip.AddrPort{}, ErrAddress
		}
		if a.Zone != "" {
			ip = ip.WithZone(a.Zone)
		}
		return netip.AddrPortFrom(ip, uint16(a.Port)), nil
	case interface{ AddrPort() netip.AddrPort }:
		if ap := a.AddrPort(); ap.IsValid() {
			return ap, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w: %T", ErrAddress, addr)
}

// ReadFrom reads from the socket.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) { return c.uc.ReadFrom(p) }

// ReadFromAddrPort reads from the socket without allocating an address.
func (c *Conn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return c.uc.ReadFromUDPAddrPort(p)
}

// Close closes the socket. It does not wait for c.mu, so it also ends a flush waiting for the
// socket to become writable; packets still queued are then counted in Stats.Errors.
func (c *Conn) Close() error { return c.uc.Close() }

// LocalAddr is the socket's *net.UDPAddr (Pion's mux requires that type).
func (c *Conn) LocalAddr() net.Addr { return c.uc.LocalAddr() }

// SetDeadline sets the socket's deadlines; the write deadline also bounds flushes.
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// SetReadDeadline sets the socket's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// SetWriteDeadline sets the socket's write deadline, which also bounds flushes.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// Stats returns the counters so far.
func (c *Conn) Stats() Stats {
	return Stats{
		Packets:  c.stats.packets.Load(),
		Bytes:    c.stats.bytes.Load(),
		Syscalls: c.stats.syscalls.Load(),
		Batches:  c.stats.batches.Load(),
		Direct:   c.stats.direct.Load(),
		GSO:      c.stats.gso.Load(),
		Errors:   c.stats.errors.Load(),
		GSOOn:    c.stats.gsoOn.Load(),
	}
}

// dropped is a flush's error: n of total packets were not sent, the first because of err.
func dropped(n, total int, err error) error {
	return fmt.Errorf("%w: %d of %d: %w", ErrDropped, n, total, err)
}
