package peer

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

type tcpSends struct {
	mu   sync.Mutex
	list []string // candidate lines, "end" for nil
}

func (s *tcpSends) send(c *webrtc.ICECandidateInit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nil {
		s.list = append(s.list, "end")
		return
	}
	s.list = append(s.list, c.Candidate)
}

func (s *tcpSends) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.list...)
}

var (
	udpCand = &webrtc.ICECandidate{Foundation: "1", Protocol: webrtc.ICEProtocolUDP, Address: "100.64.0.4", Port: 5000, Typ: webrtc.ICECandidateTypeHost, Component: 1, Priority: 1}
	tcpCand = &webrtc.ICECandidate{Foundation: "2", Protocol: webrtc.ICEProtocolTCP, Address: "100.64.0.4", Port: 5001, Typ: webrtc.ICECandidateTypeHost, Component: 1, Priority: 1, TCPType: "passive"}
)

// The TCP candidates wait for the checks to start plus TCPCandidateDelay, however early they
// were gathered, and end-of-candidates waits for them; a session connected by then (over UDP:
// TCP was not offered yet) never offers them.
func TestTCPHold(t *testing.T) {
	for _, connected := range []bool{false, true} {
		var s tcpSends
		var sel atomic.Bool
		h := newTCPHold(s.send, sel.Load)
		h.candidate(udpCand)
		h.candidate(tcpCand)
		h.candidate(nil)
		time.Sleep(TCPCandidateDelay + 100*time.Millisecond) // gathering is not the start
		if got := s.get(); len(got) != 1 || !strings.Contains(got[0], "udp") {
			t.Fatalf("before the checks start: sent %q, want the UDP candidate only", got)
		}
		sel.Store(connected)
		start := time.Now()
		h.start()
		for len(s.get()) < map[bool]int{false: 3, true: 2}[connected] {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("connected %v: sent %q", connected, s.get())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(start); d < TCPCandidateDelay {
			t.Errorf("released after %v, before TCPCandidateDelay", d)
		}
		got := s.get()
		if connected && got[1] != "end" || !connected && (!strings.Contains(got[1], "tcp") || got[2] != "end") {
			t.Errorf("connected %v: sent %q", connected, got)
		}
		// Later TCP candidates of this round follow the decision.
		h.candidate(tcpCand)
		if n := len(s.get()); n != len(got)+map[bool]int{false: 1, true: 0}[connected] {
			t.Errorf("connected %v: a late TCP candidate: sent %q", connected, s.get())
		}
		h.stop()
	}
}

func TestWithoutTCPCandidates(t *testing.T) {
	sdp := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
		"a=candidate:1 1 udp 2130706431 100.64.0.4 5000 typ host\r\n" +
		"a=candidate:2 1 tcp 1671430143 100.64.0.4 5001 typ host tcptype passive\r\n" +
		"a=candidate:3 1 TCP 1671430143 100.64.0.4 5002 typ host tcptype passive\r\n" +
		"a=end-of-candidates\r\n"
	want := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
		"a=candidate:1 1 udp 2130706431 100.64.0.4 5000 typ host\r\n" +
		"a=end-of-candidates\r\n"
	if got := withoutTCPCandidates(sdp); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// TestNoLoopbackTCPCandidates: with ICE over TCP and loopback candidates on, a session offers
// loopback over UDP only, and TCP on the machine's other addresses.
func TestNoLoopbackTCPCandidates(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, _ := videoSessionWith(t, Config{IncludeLoopback: true, ICETCP: l})
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if _, err := s.Offer(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("gathering did not complete")
	}
	var udpLoopback, tcpOther int
	for _, line := range strings.Split(s.pc.LocalDescription().SDP, "\r\n") {
		f := strings.Fields(strings.TrimPrefix(line, "a=candidate:"))
		if !strings.HasPrefix(line, "a=candidate:") || len(f) < 5 {
			continue
		}
		ip := net.ParseIP(f[4])
		switch proto := strings.ToLower(f[2]); {
		case proto == "tcp" && ip.IsLoopback():
			t.Errorf("a loopback TCP candidate: %s", line)
		case proto == "tcp":
			tcpOther++
		case proto == "udp" && ip.IsLoopback():
			udpLoopback++
		}
	}
	if udpLoopback == 0 {
		t.Error("no loopback UDP candidate")
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && tcpOther == 0 {
			t.Errorf("this machine has %s, but no TCP candidate was offered", n.IP)
			break
		}
	}
	t.Logf("%d loopback UDP candidates, %d TCP candidates on other addresses", udpLoopback, tcpOther)
}
