//go:build linux

package udpbatch

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// maxSegments is the kernel's UDP_MAX_SEGMENTS before Linux 6.10 (128 after).
	maxSegments = 64
	// maxGSOBytes bounds a GSO message's payload: an IP packet is at most 65535 bytes with its
	// headers (20 IPv4 or 40 IPv6, 8 UDP); the margin covers IP options.
	maxGSOBytes = 65000
)

// mmsghdr is struct mmsghdr; Go pads it as C does (64 bytes on 64-bit, 32 on 32-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // bytes sent, set by the kernel
}

// sender holds everything sendmmsg points to, allocated once in New so that a flush allocates
// nothing: one iovec and one raw sockaddr per queue slot, one mmsghdr and one UDP_SEGMENT
// control message per message (a message is one slot, or a GSO run of slots).
type sender struct {
	rc     syscall.RawConn
	family int // unix.AF_INET or unix.AF_INET6
	gso    bool

	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6 // an IPv4 sockaddr is written over the start of one
	msgs    []mmsghdr
	first   []int // first slot of each message
	count   []int // slots in each message
	oob     []byte
	oobSize int

	// The current flush: messages [next, nmsgs) are still to send.
	next, nmsgs int
	failed      int   // packets of this flush not sent
	firstErr    error // why the first of them was not
	plainUntil  int   // slots before this one are sent one per message (after a GSO error)
	// Slots [suspectFrom, suspectTo) were a GSO message refused with EIO or EINVAL, which
	// means either "no GSO here" or "not to this destination": if one of them then goes
	// alone, GSO was the trouble and is turned off.
	suspectFrom, suspectTo int

	zones map[string]uint32 // IPv6 zone name → interface index
	write func(fd uintptr) bool
}

func (c *Conn) initSender(opts Options) error {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return err
	}
	s := &c.sys
	s.rc = rc
	var soErr error
	if err := rc.Control(func(fd uintptr) {
		s.family, soErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if !opts.NoGSO {
			// Present since Linux 4.18; the first send may still refuse it (EIO where the
			// route's device cannot checksum, EINVAL), which turns it off without losing
			// packets.
			_, gerr := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			s.gso = gerr == nil
		}
	}); err != nil {
		return err
	}
	if soErr != nil {
		return soErr
	}
	c.stats.gsoOn.Store(s.gso)
	b := c.batch
	s.iovs = make([]unix.Iovec, b)
	for i := range s.iovs {
		s.iovs[i].Base = &c.buf[i*c.maxPacket]
	}
	s.names = make([]unix.RawSockaddrInet6, b)
	s.msgs = make([]mmsghdr, b)
	s.first = make([]int, b)
	s.count = make([]int, b)
	s.oobSize = unix.CmsgSpace(2)
	s.oob = make([]byte, b*s.oobSize)
	for i := range b {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&s.oob[i*s.oobSize]))
		h.Level = unix.IPPROTO_UDP
		h.Type = unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
	}
	s.zones = map[string]uint32{}
	// One closure for the life of the Conn: RawConn.Write takes a func, and a new one per
	// flush would allocate.
	s.write = c.sendSome
	return nil
}

// canon refuses a destination the socket's family cannot reach, before it is queued, and
// writes the others in the socket's form (IPv4 on an IPv4 socket, IPv4-mapped IPv6 on an IPv6
// one), so that one destination written either way still forms one GSO run.
func (s *sender) canon(ap netip.AddrPort) (netip.AddrPort, error) {
	a := ap.Addr()
	if s.family == unix.AF_INET {
		if a = a.Unmap(); !a.Is4() {
			return ap, ErrAddressFamily
		}
		return netip.AddrPortFrom(a, ap.Port()), nil
	}
	if a.Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(a.As16()), ap.Port()), nil
	}
	return ap, nil
}

// sendQueued sends the queue (c.mu held): every packet is sent or counted in Stats.Errors.
func (c *Conn) sendQueued() error {
	s := &c.sys
	for i := range c.n {
		s.iovs[i].SetLen(c.lens[i])
	}
	s.failed, s.firstErr, s.plainUntil = 0, nil, 0
	s.suspectFrom, s.suspectTo = 0, 0
	s.next = 0
	s.nmsgs = c.build(0, 0)
	err := s.rc.Write(s.write)
	if s.next < s.nmsgs {
		// The socket refused to send at all (closed, write deadline passed): the rest is lost.
		for mi := s.next; mi < s.nmsgs; mi++ {
			s.failed += s.count[mi]
		}
		c.stats.errors.Add(uint64(s.failed))
		if err == nil {
			err = syscall.EIO // not expected: Write returned without running to the end
		}
		return dropped(s.failed, c.n, err)
	}
	if s.failed > 0 {
		return dropped(s.failed, c.n, s.firstErr)
	}
	return nil
}

// build turns queued slots [from, c.n) into messages starting at message index mi and
// returns the message count. With GSO, a run of slots to one destination whose sizes are equal
// (the last may be shorter) becomes one message whose iovecs are the slots themselves: the
// kernel cuts the concatenation every UDP_SEGMENT bytes, so nothing is copied.
func (c *Conn) build(from, mi int) int {
	s := &c.sys
	for i := from; i < c.n; mi++ {
		j := i + 1
		size := c.lens[i]
		if s.gso && i >= s.plainUntil && size > 0 {
			total := size
			for j < c.n && j-i < maxSegments && c.dsts[j] == c.dsts[i] &&
				c.lens[j] <= size && c.lens[j] > 0 && total+c.lens[j] <= maxGSOBytes {
				// (An empty packet would vanish in the concatenation: it goes on its own.)
				total += c.lens[j]
				j++
				if c.lens[j-1] < size {
					break // a shorter segment must be the last
				}
			}
		}
		m := &s.msgs[mi].hdr
		m.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		m.Namelen = s.sockaddr(i, c.dsts[i])
		m.Iov = &s.iovs[i]
		m.SetIovlen(j - i)
		if j-i > 1 {
			oob := s.oob[mi*s.oobSize : (mi+1)*s.oobSize]
			*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(size)
			m.Control = &oob[0]
			m.SetControllen(len(oob))
		} else {
			m.Control = nil
			m.SetControllen(0)
		}
		s.first[mi], s.count[mi] = i, j-i
		i = j
	}
	return mi
}

// sockaddr writes slot i's destination as a raw sockaddr of the socket's family and returns
// its length.
func (s *sender) sockaddr(i int, ap netip.AddrPort) uint32 {
	port := ap.Port()
	if s.family == unix.AF_INET {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.names[i]))
		sa.Family = unix.AF_INET
		putPort(&sa.Port, port)
		sa.Addr = ap.Addr().As4() // canon made it IPv4
		sa.Zero = [8]uint8{}
		return unix.SizeofSockaddrInet4
	}
	sa := &s.names[i]
	sa.Family = unix.AF_INET6
	putPort(&sa.Port, port)
	sa.Flowinfo = 0
	sa.Addr = ap.Addr().As16() // an IPv4 address becomes IPv4-mapped, for a dual-stack socket
	sa.Scope_id = s.scope(ap.Addr().Zone())
	return unix.SizeofSockaddrInet6
}

// putPort stores port in network byte order, whatever the machine's.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}

// scope is the interface index of an IPv6 zone; names are looked up once and cached.
func (s *sender) scope(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if idx, ok := s.zones[zone]; ok {
		return idx
	}
	var idx uint32
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		idx = uint32(n)
	} else if ifi, err := net.InterfaceByName(zone); err == nil {
		idx = uint32(ifi.Index)
	}
	s.zones[zone] = idx
	return idx
}

// sendSome is the RawConn.Write callback: it sends messages [next, nmsgs) and returns false to
// wait for the socket to become writable (EAGAIN), true when every message was sent or
// skipped. sendmmsg stops at the first message that fails and reports only the ones before
// it; the failing one is then the first of the next call, which reports its error.
func (c *Conn) sendSome(fd uintptr) bool {
	s := &c.sys
	for s.next < s.nmsgs {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&s.msgs[s.next])), uintptr(s.nmsgs-s.next), 0, 0, 0)
		c.stats.syscalls.Add(1)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			c.skip(errno)
			continue
		}
		if r == 0 {
			c.skip(unix.EIO) // not expected; never spin on it
			continue
		}
		var packets, bytes, gso uint64
		gsoOff := false
		for mi := s.next; mi < s.next+int(r); mi++ {
			packets += uint64(s.count[mi])
			bytes += uint64(s.msgs[mi].n)
			if s.count[mi] > 1 {
				gso++
			} else if f := s.first[mi]; f >= s.suspectFrom && f < s.suspectTo && s.gso {
				gsoOff = true
			}
		}
		c.stats.packets.Add(packets)
		c.stats.bytes.Add(bytes)
		if gso > 0 {
			c.stats.gso.Add(gso)
		}
		s.next += int(r)
		if gsoOff {
			// A packet of a refused GSO message went alone: the refusal was GSO's. The
			// rest of the queue is rebuilt without it rather than refused run by run.
			s.gso = false
			c.stats.gsoOn.Store(false)
			if s.next < s.nmsgs {
				s.nmsgs = c.build(s.first[s.next], s.next)
			}
		}
	}
	return true
}

// skip handles message next failing with errno. A single packet is counted and skipped, so
// one bad destination does not cost the others their packets. A GSO message is split: its
// packets are sent again one per message (only the bad ones, if any, are then lost). EIO and
// EINVAL may mean the kernel or the route's device will not segment (no checksum offload,
// IPsec, UDP checksums off) — or just a destination the socket cannot send to (EINVAL from a
// socket bound to 127.0.0.1): GSO is turned off only if the split packets then go.
func (c *Conn) skip(errno unix.Errno) {
	s := &c.sys
	mi := s.next
	if s.count[mi] > 1 {
		first := s.first[mi]
		if errno == unix.EIO || errno == unix.EINVAL {
			s.suspectFrom, s.suspectTo = first, first+s.count[mi]
		}
		s.plainUntil = first + s.count[mi]
		s.nmsgs = c.build(first, mi)
		return
	}
	s.failed++
	if s.firstErr == nil {
		s.firstErr = errno
	}
	c.stats.errors.Add(1)
	s.next++
}
