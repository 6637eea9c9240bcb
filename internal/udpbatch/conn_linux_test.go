package udpbatch

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBadPacketsMidBatch: packets the kernel refuses (EMSGSIZE: larger than a UDP datagram can
// be), first, in the middle and last of a batch, cost only themselves; a destination the
// socket cannot reach is refused at the write.
func TestBadPacketsMidBatch(t *testing.T) {
	for _, gso := range []bool{false, true} {
		r := newReceiver(t, "udp4", "127.0.0.1")
		other := newReceiver(t, "udp4", "127.0.0.1")
		c := newConn(t, "udp4", "127.0.0.1", Options{MaxPacket: 70000, NoGSO: !gso})
		huge := make([]byte, 66000)
		var want [][]byte
		c.Hold()
		for i := range 30 {
			if i == 0 || i == 13 || i == 29 {
				if _, err := c.WriteTo(huge, other.addr); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if i == 7 {
				if _, err := c.WriteTo([]byte("v6"), &net.UDPAddr{IP: net.IPv6loopback, Port: r.addr.Port}); !errors.Is(err, ErrAddressFamily) {
					t.Fatalf("IPv6 destination on an IPv4 socket: %v", err)
				}
			}
			if i == 20 {
				// A run a socket bound to 127.0.0.1 cannot send (EINVAL, or ENETUNREACH without a
				// route): as one GSO message it fails whole; its packets are tried one by one and
				// GSO stays on.
				for range 4 {
					if _, err := c.WriteTo(make([]byte, 1000), unreachable); err != nil {
						t.Fatal(err)
					}
				}
			}
			p := bytes.Repeat([]byte{byte(i)}, 1000)
			want = append(want, p)
			if _, err := c.WriteTo(p, r.addr); err != nil {
				t.Fatal(err)
			}
		}
		err := c.Flush()
		if !errors.Is(err, ErrDropped) || !errors.Is(err, syscall.EMSGSIZE) { // the first refused
			t.Fatalf("gso %v: flush: %v", gso, err)
		}
		check(t, []*receiver{r}, [][][]byte{want})
		st := c.Stats()
		if st.Errors != 3+4 || st.Packets != uint64(len(want)) {
			t.Fatalf("gso %v: stats %+v", gso, st)
		}
		if gso && (st.GSO == 0 || !st.GSOOn) {
			t.Fatalf("GSO: %+v", st)
		}
		t.Logf("gso %v: %v; %+v", gso, err, st)
		if n := other.count(); n != 0 {
			t.Fatalf("%d oversized packets arrived", n)
		}
	}
}

// unreachable is a destination a socket bound to 127.0.0.1 cannot send to (TEST-NET-1).
var unreachable = &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}

// TestGSORefused: a socket whose kernel refuses GSO at the first send (EINVAL: here because
// UDP checksums are off, SO_NO_CHECK) loses nothing: the batch goes one packet per message and
// GSO stays off.
func TestGSORefused(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	c := newConn(t, "udp4", "127.0.0.1", Options{})
	if !c.Stats().GSOOn {
		t.Skip("no UDP GSO in this kernel")
	}
	rc, err := c.uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	other := newReceiver(t, "udp4", "127.0.0.1")
	var want, wantOther [][]byte
	for round := range 2 {
		c.Hold()
		for i := range 40 {
			p := bytes.Repeat([]byte{byte(round), byte(i)}, 600)
			want = append(want, p)
			if _, err := c.WriteTo(p, r.addr); err != nil {
				t.Fatal(err)
			}
			if i%10 == 9 { // runs to another destination between
				for range 3 {
					wantOther = append(wantOther, p)
					if _, err := c.WriteTo(p, other.addr); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	check(t, []*receiver{r, other}, [][][]byte{want, wantOther})
	st := c.Stats()
	if st.GSOOn || st.GSO != 0 || st.Errors != 0 || st.Packets != 80+24 {
		t.Fatalf("stats %+v", st)
	}
	// The first run refused; its packets alone, up to the next run, also refused; the rest
	// of the batch rebuilt without GSO; the second batch: four calls.
	if st.Syscalls != 4 {
		t.Fatalf("%d syscalls", st.Syscalls)
	}
}

// TestGSORuns: viewer-major batches (each viewer's packets together, one size but the last)
// leave as one GSO message per viewer and queue, whichever form each write gives the address
// (IPv4, IPv4-mapped, *net.UDPAddr or netip.AddrPort).
func TestGSORuns(t *testing.T) {
	var rs []*receiver
	for range 30 {
		rs = append(rs, newReceiver(t, "udp4", "127.0.0.1"))
	}
	c := newConn(t, "udp4", "127.0.0.1", Options{Batch: 40})
	if !c.Stats().GSOOn {
		t.Skip("no UDP GSO in this kernel")
	}
	want := make([][][]byte, len(rs))
	c.Hold()
	for d, r := range rs {
		for i := range 40 {
			p := bytes.Repeat([]byte{byte(d), byte(i)}, 600)
			if i == 39 {
				p = p[:333]
			}
			want[d] = append(want[d], p)
			var err error
			switch i % 3 {
			case 0:
				_, err = c.WriteTo(p, r.addr)
			case 1:
				_, err = c.WriteTo(p, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: r.addr.Port}) // 16 bytes
			case 2:
				_, err = c.WriteToAddrPort(p, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(r.addr.Port)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	check(t, rs, want)
	if st := c.Stats(); st.GSO != 30 || st.Syscalls != 30 || st.Packets != 1200 {
		t.Fatalf("stats %+v", st)
	}
}

// threadCPU is the calling thread's CPU time (for benchmarks, with the goroutine locked to it).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// count is how many packets have arrived so far.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestZoneScope: an IPv6 zone, by name or number, becomes the sockaddr's scope id.
func TestZoneScope(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) == 0 {
		t.Skip("no interfaces")
	}
	var s sender
	s.zones = map[string]uint32{}
	if got := s.scope(ifs[0].Name); got != uint32(ifs[0].Index) {
		t.Fatalf("zone %s: scope %d, want %d", ifs[0].Name, got, ifs[0].Index)
	}
	if got := s.scope("7"); got != 7 {
		t.Fatalf("zone 7: scope %d", got)
	}
	if got := s.scope(""); got != 0 {
		t.Fatalf("no zone: scope %d", got)
	}
}
