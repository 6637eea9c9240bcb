package udpbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
)

// packet is one write of a scenario: what goes to which receiver.
type packet struct {
	dst  int
	data []byte
}

// scenario makes n packets in runs to one destination, mostly of one size with the last of a run
// sometimes shorter (what GSO groups), with empty and one-byte packets among them.
func scenario(rng *rand.Rand, ndst, n, maxSize int) []packet {
	var ps []packet
	for len(ps) < n {
		dst := rng.IntN(ndst)
		size := 1 + rng.IntN(maxSize)
		switch rng.IntN(20) {
		case 0:
			size = 0
		case 1:
			size = 1
		}
		run := 1 + rng.IntN(8)
		for k := 0; k < run && len(ps) < n; k++ {
			s := size
			if k == run-1 && rng.IntN(2) == 0 {
				s = rng.IntN(size + 1)
			}
			data := make([]byte, s)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			ps = append(ps, packet{dst, data})
		}
	}
	return ps
}

// check compares what each receiver got with what was written to it, in order.
func check(t *testing.T, rs []*receiver, want [][][]byte) {
	t.Helper()
	for d, r := range rs {
		got := r.wait(t, len(want[d]))
		for i := range want[d] {
			if !bytes.Equal(got[i], want[d][i]) {
				t.Fatalf("receiver %d packet %d: got %d bytes, want %d (or different bytes)", d, i, len(got[i]), len(want[d][i]))
			}
		}
	}
}

func receivers(t *testing.T) []*receiver {
	var rs []*receiver
	for range 20 {
		rs = append(rs, newReceiver(t, "udp4", "127.0.0.1"))
	}
	if ipv6() {
		for range 3 {
			rs = append(rs, newReceiver(t, "udp6", "::1"))
		}
	}
	return rs
}

// TestBatches sends rounds of mixed sizes and destinations (IPv4 and IPv6 receivers through a
// dual-stack socket) in nested windows whose queue fills several times.
func TestBatches(t *testing.T) {
	for _, gso := range []bool{false, true} {
		t.Run(map[bool]string{false: "sendmmsg", true: "gso"}[gso], func(t *testing.T) {
			rs := receivers(t)
			network, ip := "udp4", "127.0.0.1"
			if ipv6() {
				network, ip = "udp", "::" // dual-stack: reaches 127.0.0.1 (IPv4-mapped) and ::1
			}
			c := newConn(t, network, ip, Options{Batch: 16, NoGSO: !gso})
			rng := rand.New(rand.NewPCG(1, 2))
			want := make([][][]byte, len(rs))
			total := 0
			for round := range 30 {
				ps := scenario(rng, len(rs), 20+rng.IntN(80), 1500)
				c.Hold()
				half := len(ps) / 2
				for i, p := range ps {
					if i == half {
						c.Hold() // nested: its Flush must not send
					}
					var err error
					if (i+round)%2 == 0 {
						_, err = c.WriteTo(p.data, rs[p.dst].addr)
					} else {
						_, err = c.WriteToAddrPort(p.data, rs[p.dst].addr.AddrPort())
					}
					if err != nil {
						t.Fatal(err)
					}
					want[p.dst] = append(want[p.dst], p.data)
				}
				before := c.Stats().Packets
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := c.Stats().Packets; got != before {
					t.Fatalf("the inner Flush sent %d packets", got-before)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				total += len(ps)
				// Each round read before the next is written, so no receive buffer overflows
				// (where net.core.rmem_max keeps them small).
				for d, r := range rs {
					r.wait(t, len(want[d]))
				}
			}
			check(t, rs, want)
			st := c.Stats()
			t.Logf("%+v, %.1f packets per syscall", st, st.PerSyscall())
			if st.Packets != uint64(total) || st.Errors != 0 || st.Direct != 0 {
				t.Fatalf("stats %+v, want %d packets", st, total)
			}
			if runtime.GOOS == "linux" {
				if st.Syscalls >= st.Packets/4 {
					t.Fatalf("%d syscalls for %d packets", st.Syscalls, st.Packets)
				}
				if gso && (!st.GSOOn || st.GSO == 0) {
					t.Fatalf("GSO not used: %+v", st)
				}
			}
		})
	}
}

// TestQueueFull: a window longer than the queue sends each full queue at once.
func TestQueueFull(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	c := newConn(t, "udp4", "127.0.0.1", Options{Batch: 4})
	var want [][]byte
	c.Hold()
	for i := range 10 {
		p := []byte{byte(i), 1, 2, 3}
		want = append(want, p)
		if _, err := c.WriteTo(p, r.addr); err != nil {
			t.Fatal(err)
		}
	}
	// Two full queues have left before the window closes.
	r.wait(t, 8)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	check(t, []*receiver{r}, [][][]byte{want})
	if st := c.Stats(); st.Batches != 3 || st.Packets != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOversizedInWindow: a packet larger than a slot is sent on its own, after what was queued.
func TestOversizedInWindow(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	c := newConn(t, "udp4", "127.0.0.1", Options{MaxPacket: 100})
	want := [][]byte{bytes.Repeat([]byte{1}, 50), bytes.Repeat([]byte{2}, 200), bytes.Repeat([]byte{3}, 50)}
	c.Hold()
	for _, p := range want {
		if n, err := c.WriteTo(p, r.addr); err != nil || n != len(p) {
			t.Fatal(n, err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	check(t, []*receiver{r}, [][][]byte{want})
	if st := c.Stats(); st.Direct != 1 || st.Packets != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFlushWithoutHold(t *testing.T) {
	c := newConn(t, "udp4", "127.0.0.1", Options{})
	if err := c.Flush(); !errors.Is(err, ErrNotHeld) {
		t.Fatal(err)
	}
	c.Hold()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); !errors.Is(err, ErrNotHeld) {
		t.Fatal(err)
	}
}

func TestDirectWrites(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	c := newConn(t, "udp4", "127.0.0.1", Options{})
	want := [][]byte{[]byte("one"), []byte("two")}
	if _, err := c.WriteTo(want[0], r.addr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToAddrPort(want[1], r.addr.AddrPort()); err != nil {
		t.Fatal(err)
	}
	check(t, []*receiver{r}, [][][]byte{want})
	if st := c.Stats(); st.Direct != 2 || st.Syscalls != 2 || st.Batches != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := c.WriteTo([]byte("x"), &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}); !errors.Is(err, ErrAddress) {
		t.Fatalf("a non-UDP address: %v", err)
	}
	if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{Port: 1}); !errors.Is(err, ErrAddress) {
		t.Fatalf("no IP: %v", err)
	}
}

func TestConnectedRejected(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	uc, err := net.DialUDP("udp4", nil, r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := New(uc, Options{}); !errors.Is(err, ErrConnected) {
		t.Fatal(err)
	}
}

// TestConcurrentWriters: other goroutines write (to the same receivers) while the pacer's
// windows are open: first in lockstep (each writer writes 3 packets inside each of the first
// windows, so those are surely queued), then freely, racing windows as they open and flush.
// Every packet arrives, each writer's in its order. Run with -race.
func TestConcurrentWriters(t *testing.T) {
	const writers, perWriter, windows, perWindow, lockstep, perStep = 4, 300, 60, 25, 20, 3
	rs := []*receiver{newReceiver(t, "udp4", "127.0.0.1"), newReceiver(t, "udp4", "127.0.0.1"), newReceiver(t, "udp4", "127.0.0.1")}
	c := newConn(t, "udp4", "127.0.0.1", Options{Batch: 16})
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	// Packets carry writer and sequence: 1 byte writer (0 is the pacer), 4 bytes sequence.
	write := func(w, seq int) {
		var p [64]byte
		p[0] = byte(w)
		binary.BigEndian.PutUint32(p[1:], uint32(seq))
		if _, err := c.WriteTo(p[:5+seq%50], rs[seq%len(rs)].addr); err != nil {
			fail(err)
		}
	}
	step := make([]chan struct{}, writers+1)
	for w := range step {
		step[w] = make(chan struct{})
	}
	stepped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(writers + 1)
	go func() {
		defer wg.Done()
		seq := 0
		for i := range windows {
			c.Hold()
			if i < lockstep {
				for w := 1; w <= writers; w++ {
					step[w] <- struct{}{}
				}
			}
			for range perWindow {
				write(0, seq)
				seq++
			}
			if i < lockstep {
				for range writers {
					<-stepped
				}
			}
			if err := c.Flush(); err != nil {
				fail(err)
			}
		}
	}()
	for w := 1; w <= writers; w++ {
		go func() {
			defer wg.Done()
			for seq := range perWriter {
				if seq < lockstep*perStep && seq%perStep == 0 {
					<-step[w]
				}
				write(w, seq)
				if seq < lockstep*perStep && seq%perStep == perStep-1 {
					stepped <- struct{}{}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	total := windows*perWindow + writers*perWriter
	per := total / len(rs) // every writer's count is a multiple of 3
	next := map[[2]int]int{}
	for d, r := range rs {
		for _, p := range r.wait(t, per) {
			w, seq := int(p[0]), int(binary.BigEndian.Uint32(p[1:]))
			if seq%len(rs) != d || len(p) != 5+seq%50 {
				t.Fatalf("receiver %d got writer %d's packet %d (%d bytes)", d, w, seq, len(p))
			}
			k := [2]int{d, w}
			want, ok := next[k]
			if !ok {
				want = d
			}
			if seq != want {
				t.Fatalf("receiver %d: writer %d's packet %d where %d was due", d, w, seq, want)
			}
			next[k] = seq + len(rs)
		}
	}
	st := c.Stats()
	if st.Packets != uint64(total) || st.Errors != 0 || st.Direct > writers*(perWriter-lockstep*perStep) {
		t.Fatalf("stats %+v, want %d packets", st, total)
	}
	t.Logf("%+v", st)
}

// TestWriteDeadline: a passed write deadline makes a flush fail (counted), and the next one
// works once it is cleared.
func TestWriteDeadline(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	c := newConn(t, "udp4", "127.0.0.1", Options{})
	if err := c.SetWriteDeadline(aLongTimeAgo); err != nil {
		t.Fatal(err)
	}
	c.Hold()
	for range 3 {
		if _, err := c.WriteTo([]byte("lost"), r.addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); !errors.Is(err, ErrDropped) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("flush past the deadline: %v", err)
	}
	if st := c.Stats(); st.Errors != 3 || st.Packets != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := c.SetWriteDeadline(noDeadline); err != nil {
		t.Fatal(err)
	}
	c.Hold()
	if _, err := c.WriteTo([]byte("kept"), r.addr); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	check(t, []*receiver{r}, [][][]byte{{[]byte("kept")}})
}

// TestCloseInWindow: closing the socket with packets queued makes the Flush fail, not hang.
func TestCloseInWindow(t *testing.T) {
	r := newReceiver(t, "udp4", "127.0.0.1")
	c := newConn(t, "udp4", "127.0.0.1", Options{})
	c.Hold()
	if _, err := c.WriteTo([]byte("x"), r.addr); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Flush(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}
}

// TestNoAllocations: a steady window of writes, and writes outside a window, allocate nothing.
func TestNoAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, gso := range []bool{false, true} {
		c := newConn(t, "udp4", "127.0.0.1", Options{NoGSO: !gso})
		// Receivers nobody reads: once their buffers fill the kernel drops quietly, and no
		// reader goroutine allocates during the measurement.
		var addrs []*net.UDPAddr
		var aps []netip.AddrPort
		for range 4 {
			rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			addrs = append(addrs, rc.LocalAddr().(*net.UDPAddr))
			aps = append(aps, rc.LocalAddr().(*net.UDPAddr).AddrPort())
		}
		payload := make([]byte, 1200)
		cycle := func() {
			c.Hold()
			for i := range 100 { // fills the 64-slot queue once mid-window
				if _, err := c.WriteTo(payload[:1200-i%2*300], addrs[i/25]); err != nil {
					panic(err)
				}
				if _, err := c.WriteToAddrPort(payload, aps[i%4]); err != nil {
					panic(err)
				}
			}
			if err := c.Flush(); err != nil {
				panic(err)
			}
		}
		cycle()
		if a := testing.AllocsPerRun(50, cycle); a != 0 {
			t.Errorf("gso %v: %v allocations per window", gso, a)
		}
		direct := func() {
			if _, err := c.WriteTo(payload, addrs[0]); err != nil {
				panic(err)
			}
			if _, err := c.WriteToAddrPort(payload, aps[1]); err != nil {
				panic(err)
			}
		}
		if a := testing.AllocsPerRun(50, direct); a != 0 {
			t.Errorf("%v allocations per direct write", a)
		}
	}
}
