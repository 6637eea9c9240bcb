package turnserver

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

func TestBucket(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	us := newUsers(2, 80_000, clock, nil) // 10 kB/s, 16 KiB burst
	u, err := us.acquire("1700000000:viewer:s1", true)
	if err != nil {
		t.Fatal(err)
	}
	// The burst passes, then packets drop until time refills the bucket.
	for i := range 16 {
		if !u.up.take(1024) {
			t.Fatalf("packet %d of the burst dropped", i)
		}
	}
	if u.up.take(1024) {
		t.Fatal("packet past the burst passed")
	}
	if !u.down.take(1024) {
		t.Fatal("traffic one way spent the budget of the other")
	}
	now = now.Add(100 * time.Millisecond) // 1000 bytes
	if u.up.take(1024) || !u.up.take(1000) {
		t.Fatal("refill is not 10 kB/s")
	}
	// A stream goes into debt and is told how long to pause.
	if d := u.up.reserve(5000); d != 500*time.Millisecond {
		t.Fatalf("pause %v, want 500ms", d)
	}
	now = now.Add(time.Hour)
	if d := u.up.reserve(1000); d != 0 {
		t.Fatalf("pause %v after a refill", d)
	}
}

func TestUsers(t *testing.T) {
	var released []string
	us := newUsers(2, 1e6, time.Now, func(name string) { released = append(released, name) })
	a, err := us.acquire("100:device:cam1", true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := us.acquire("200:device:cam1", true) // a fresh credential is the same user
	if err != nil || b != a {
		t.Fatalf("%v %v", b, err)
	}
	if _, err := us.acquire("300:device:cam1", true); !errors.Is(err, ErrAllocationQuota) {
		t.Fatalf("third allocation: %v", err)
	}
	if _, err := us.acquire("100:device:cam1", false); err != nil { // a TCP connection is no allocation
		t.Fatal(err)
	}
	if us.allocations("1:device:cam1") != 2 || us.allocations("1:device:cam2") != 0 {
		t.Fatal("wrong counts")
	}
	us.release(a, true)
	us.release(a, true)
	us.release(a, false)
	if len(us.m) != 0 || len(released) != 2 || released[0] != "device:cam1" {
		t.Fatalf("users %v, released %v", us.m, released)
	}
}

func TestAllocateConnGuards(t *testing.T) {
	s := start(t, Config{Peers: loopbackLab, TCPAllocations: true})
	g := &relayGen{s: s}
	hub := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}
	// Even if the PermissionHandler were bypassed, the dial to the hub is refused.
	if _, err := g.AllocateConn(connConfig(hub)); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("dial to the hub: %v", err)
	}
	s.tcp = false
	if _, err := g.AllocateConn(connConfig(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 80})); !errors.Is(err, ErrTCPAllocationsOff) {
		t.Fatalf("dial with TCP off: %v", err)
	}
}

func connConfig(remote net.Addr) turn.AllocateConnConfig {
	return turn.AllocateConnConfig{Network: "tcp4", UserID: "1:x", RemoteAddr: remote, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
}
