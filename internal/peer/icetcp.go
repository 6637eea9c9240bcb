package peer

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// lanTCPMux offers ICE over TCP on every address but loopback. A viewer on the device itself
// reaches it over loopback UDP, which nothing filters, so a loopback TCP candidate only gave
// remote viewers dead pairs to try and cost each session a receive loop, its buffer and its
// accepted connections (docs/performance.md "Footprint").
type lanTCPMux struct{ ice.TCPMux }

// GetAllConns is what Pion's gathering asks a mux that can give several connections (ice's
// AllConnsGetter); none is no candidate, silently.
func (m lanTCPMux) GetAllConns(ufrag string, isIPv6 bool, local net.IP) ([]net.PacketConn, error) {
	if local.IsLoopback() {
		return nil, nil
	}
	c, err := m.GetConnByUfrag(ufrag, isIPv6, local)
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{c}, nil
}

// LocalAddr is the listener's address: Pion offers TCP only on the address a listener bound
// to one is on.
func (m lanTCPMux) LocalAddr() net.Addr {
	if a, ok := m.TCPMux.(interface{ LocalAddr() net.Addr }); ok {
		return a.LocalAddr()
	}
	return nil
}

// tcpHold keeps a trickling session's ICE-TCP candidates back until UDP has had its chance.
//
// Whichever side controls ICE nominates the first valid pair (acceptance wait 0 for direct
// pairs), and a viewer's active TCP connect to the device is valid at once, while a UDP pair
// through a port-restricted NAT is valid only once the viewer's own check has opened its
// mapping and the device's next check (Pion checks every 200 ms) has come back. So the
// candidates are held from gathering until TCPCandidateDelay after checks start (both
// descriptions applied), not from gathering, which raced the answer; and when a pair is
// selected by then, TCP can no longer be chosen (Pion does not renominate) and is not
// offered at all. An ICE restart starts a new round.
type tcpHold struct {
	send     func(*webrtc.ICECandidateInit)
	selected func() bool // a pair is selected (ICE connected)

	mu       sync.Mutex // also orders the sends
	held     []webrtc.ICECandidateInit
	started  bool // checks started: the timer runs
	released bool // this round's TCP candidates go out as gathered
	dropped  bool // a pair was selected before the release: TCP is not offered
	ended    bool // end of candidates seen while holding
	timer    *time.Timer
}

func newTCPHold(send func(*webrtc.ICECandidateInit), selected func() bool) *tcpHold {
	return &tcpHold{send: send, selected: selected}
}

// candidate trickles a gathered candidate (nil: gathering is complete).
func (h *tcpHold) candidate(c *webrtc.ICECandidate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c == nil {
		if !h.released {
			h.ended = true
			return
		}
		h.send(nil)
		return
	}
	init := c.ToJSON()
	switch {
	case c.Protocol != webrtc.ICEProtocolTCP:
		h.send(&init)
	case !h.released:
		h.held = append(h.held, init)
	case !h.dropped:
		h.send(&init)
	}
}

// start is called when both descriptions are applied (the checks begin).
func (h *tcpHold) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.released {
		return
	}
	h.started = true
	h.timer = time.AfterFunc(TCPCandidateDelay, h.release)
}

func (h *tcpHold) release() {
	selected := h.selected()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released, h.dropped = true, selected
	if !selected {
		for i := range h.held {
			h.send(&h.held[i])
		}
	}
	h.held = nil
	if h.ended {
		h.ended = false
		h.send(nil)
	}
}

// restart begins a new round for an ICE restart's candidates.
func (h *tcpHold) restart() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
	}
	h.held, h.timer = nil, nil
	h.started, h.released, h.dropped, h.ended = false, false, false, false
}

// stop ends the hold with the session.
func (h *tcpHold) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
	}
}

// withoutTCPCandidates removes ICE-TCP candidate lines from an SDP: Pion's LocalDescription
// includes every candidate gathered so far, and a TCP one there would skip the hold.
func withoutTCPCandidates(sdp string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(sdp, "\n") {
		c, ok := strings.CutPrefix(strings.TrimRight(l, "\r\n"), "a=candidate:")
		if f := strings.Fields(c); ok && len(f) > 2 && strings.EqualFold(f[2], "tcp") {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}
