package natlab_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/natlab"
)

func TestBurst(t *testing.T) {
	for _, tc := range []struct{ rate, want int64 }{
		{0, 4096}, {180_000, 4096}, {800_000, 4096}, {1_024_000, 4096}, {4_000_000, 16000}, {20_000_000, 80000},
	} {
		if got := natlab.Burst(tc.rate); got != tc.want {
			t.Errorf("Burst(%d) = %d, want %d", tc.rate, got, tc.want)
		}
	}
}

// udpRun is what a receiver got of a paced UDP stream.
type udpRun struct {
	sent, got   int
	bytes       int64
	first, last time.Time
}

// rate is the receiver's goodput in bit/s (payload only), between the first and last packet.
func (r udpRun) rate() float64 {
	d := r.last.Sub(r.first).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(r.bytes*8) / d
}

// blast sends n datagrams of size bytes from one host to another, one every gap, and counts what
// arrives. The receiver stops when nothing has come for idle: the end of a UDP stream shows only
// as silence (a shaped link's queue drains within natlab.TBFLatency).
func blast(t *testing.T, from, to *natlab.Host, n, size int, gap time.Duration) udpRun {
	t.Helper()
	const idle = time.Second
	rx, err := to.ListenPacket("udp4", to.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := from.ListenPacket("udp4", from.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	res := make(chan udpRun, 1)
	go func() {
		var r udpRun
		buf := make([]byte, 2048)
		for {
			rx.SetReadDeadline(time.Now().Add(idle))
			m, _, err := rx.ReadFrom(buf)
			if err != nil {
				res <- r
				return
			}
			now := time.Now()
			if r.got == 0 {
				r.first = now
			}
			r.got++
			r.bytes += int64(m)
			r.last = now
		}
	}()
	payload := make([]byte, size)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		if _, err := tx.WriteTo(payload, rx.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	r := <-res
	r.sent = n
	return r
}

func counters(t *testing.T, k *natlab.Link) natlab.LinkCounters {
	t.Helper()
	c, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLAN proves the LAN's promises: routed hosts reach each other, a shaped downlink carries its
// rate and drops the excess, random loss drops about the asked share of UDP and only UDP, and
// the counters add up across changes.
func TestLAN(t *testing.T) {
	lab := natlab.New(t)
	lan := lab.LAN("lan")
	a, b := lan.Add("a"), lan.Add("b")
	if a.Host.IP.String() != "10.101.1.2" || b.Host.IP.String() != "10.101.2.2" || a.Dev != "l1" || b.Dev != "l2" {
		t.Fatalf("addresses %s (%s), %s (%s); want 10.101.1.2 (l1), 10.101.2.2 (l2)", a.Host.IP, a.Dev, b.Host.IP, b.Dev)
	}

	// TCP crosses the router in both directions (and is counted on b's link).
	ln, err := b.Host.Listen("tcp4", b.Host.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the lab closed the listener
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	echo := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := a.Host.Dial(ctx, "tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		msg := strings.Repeat("x", 100_000)
		go conn.Write([]byte(msg))
		back := make([]byte, len(msg))
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, back); err != nil {
			t.Fatalf("TCP echo across the router: %v", err)
		}
	}
	echo()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Nothing from the outside world: refused at once by the router.
	start := time.Now()
	if c, err := a.Host.Dial(ctx, "tcp4", "192.0.2.1:80"); err == nil {
		c.Close()
		t.Error("a LAN host reached an address outside the lab")
	} else if time.Since(start) > time.Second {
		t.Errorf("took %v to fail (%v), want an immediate refusal", time.Since(start), err)
	}

	t.Run("shape", func(t *testing.T) {
		const rate = 800_000
		if err := b.Shape(rate); err != nil {
			t.Fatal(err)
		}
		// 1200-byte datagrams at ~1.9 Mbit/s for 2 s, more than twice the rate.
		r := blast(t, a.Host, b.Host, 400, 1200, 5*time.Millisecond)
		c := counters(t, b)
		// tbf meters whole frames: payload + UDP, IP and Ethernet headers (8 + 20 + 14).
		want := rate * 1200.0 / (1200 + 42)
		t.Logf("shaped to %d bit/s: %d of %d datagrams, goodput %.0f bit/s (want ≈ %.0f); qdisc %+v", rate, r.got, r.sent, r.rate(), want, c.Qdisc)
		if r.rate() < 0.9*want || r.rate() > 1.1*want {
			t.Errorf("goodput %.0f bit/s, want %.0f ± 10%%", r.rate(), want)
		}
		if c.Qdisc.Kind != "tbf" || c.Qdisc.Drops == 0 || c.UDP.Packets < uint64(r.sent) {
			t.Errorf("counters %+v: want a tbf that dropped, and every datagram offered", c)
		}
		if dropped := uint64(r.sent - r.got); c.Qdisc.Drops != dropped {
			t.Errorf("the qdisc dropped %d, the receiver missed %d", c.Qdisc.Drops, dropped)
		}

		// Unshaped again: all of it arrives, and the counters keep what the shaper counted.
		if err := b.Shape(0); err != nil {
			t.Fatal(err)
		}
		r2 := blast(t, a.Host, b.Host, 200, 1200, 5*time.Millisecond)
		c2 := counters(t, b)
		if r2.got != r2.sent {
			t.Errorf("unshaped: %d of %d datagrams arrived", r2.got, r2.sent)
		}
		if c2.Qdisc.Kind != "noqueue" || c2.Qdisc.Drops != c.Qdisc.Drops || c2.Qdisc.Packets != c.Qdisc.Packets {
			t.Errorf("after unshaping the qdisc reads %+v, want noqueue with the tbf's counters %+v kept", c2.Qdisc, c.Qdisc)
		}
		if b.Rate() != 0 {
			t.Errorf("Rate() = %d after Shape(0)", b.Rate())
		}
	})

	t.Run("loss", func(t *testing.T) {
		const p, n = 0.1, 1000
		before := counters(t, b)
		if err := b.Loss(p); err != nil {
			t.Fatal(err)
		}
		r := blast(t, a.Host, b.Host, n, 200, time.Millisecond)
		c := counters(t, b)
		lost := c.Lost.Packets - before.Lost.Packets
		t.Logf("loss %g: %d of %d arrived; the rule dropped %d", p, r.got, r.sent, lost)
		// Binomial: σ ≈ 9.5 packets; ±6σ never fails by chance.
		if r.got < n*(1-p)-57 || r.got > n*(1-p)+57 {
			t.Errorf("%d of %d arrived, want about %.0f", r.got, n, n*(1-p))
		}
		if lost != uint64(r.sent-r.got) {
			t.Errorf("the rule dropped %d, the receiver missed %d", lost, r.sent-r.got)
		}
		if offered := c.UDP.Packets - before.UDP.Packets; offered < n {
			t.Errorf("%d UDP packets offered to the link, want at least %d", offered, n)
		}

		// TCP is not touched: a transfer during the loss goes through and none of it is dropped.
		echo()
		c3 := counters(t, b)
		if c3.Lost != c.Lost {
			t.Errorf("TCP toward the host was dropped: lost %+v → %+v", c.Lost, c3.Lost)
		}
		if c3.TCP.Packets <= c.TCP.Packets {
			t.Errorf("no TCP counted toward the host (%d → %d)", c.TCP.Packets, c3.TCP.Packets)
		}

		// Loss(0) ends it; the count of what it dropped stays.
		if err := b.Loss(0); err != nil {
			t.Fatal(err)
		}
		r2 := blast(t, a.Host, b.Host, 200, 200, time.Millisecond)
		c2 := counters(t, b)
		if r2.got != r2.sent || c2.Lost != c.Lost {
			t.Errorf("after Loss(0): %d of %d arrived, lost %+v → %+v", r2.got, r2.sent, c.Lost, c2.Lost)
		}
		if err := b.Loss(1); err == nil {
			t.Error("Loss(1) accepted")
		}
	})

	if d := lab.Dump(); !strings.Contains(d, "== LAN router lan-router") || !strings.Contains(d, "-A FORWARD -o l2 -p udp -j l2-loss") {
		t.Errorf("Dump lacks the LAN:\n%s", d)
	}
}
