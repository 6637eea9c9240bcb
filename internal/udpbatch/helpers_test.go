package udpbatch

import (
	"net"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait for packets: a test that reaches it has failed (packets lost),
// it is never what a test synchronizes on.
const waitLimit = 10 * time.Second

var (
	aLongTimeAgo = time.Unix(1, 0)
	noDeadline   = time.Time{}
)

// receiver is a loopback socket whose goroutine records every packet in arrival order.
type receiver struct {
	conn   *net.UDPConn
	addr   *net.UDPAddr
	notify chan struct{}

	mu  sync.Mutex
	got [][]byte
}

func newReceiver(t testing.TB, network, ip string) *receiver {
	t.Helper()
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	// Big enough for everything a test sends before it reads: loopback drops what does not fit.
	_ = c.SetReadBuffer(4 << 20)
	r := &receiver{conn: c, addr: c.LocalAddr().(*net.UDPAddr), notify: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 70000)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, append([]byte(nil), buf[:n]...))
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return r
}

// wait returns the first n packets once they have arrived.
func (r *receiver) wait(t testing.TB, n int) [][]byte {
	t.Helper()
	limit := time.After(waitLimit)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			got := r.got[:n:n]
			r.mu.Unlock()
			return got
		}
		have := len(r.got)
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-limit:
			t.Fatalf("receiver %v: %d of %d packets", r.addr, have, n)
		}
	}
}

// newConn wraps a new socket on ip (network "udp" on "::" makes a dual-stack socket).
func newConn(t testing.TB, network, ip string, opts Options) *Conn {
	t.Helper()
	uc, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(uc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ipv6 says whether ::1 can be bound here.
func ipv6() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
}
