package congestion

// The history remembers what was sent so that feedback, which names packets only by their
// 16-bit transport-wide sequence number, can be matched to send times, sizes and probe
// clusters.

import "time"

const (
	// historySize is the most sent packets remembered (a power of two): 1 s at
	// 20 Mbit/s in 1200-byte packets, 4 s at 5 Mbit/s; feedback comes every 50–100 ms, and
	// each viewer's ring costs memory the board (256 MB) counts per viewer.
	historySize = 2048
	// historyMin is the ring's first size. It doubles (up to historySize) when a packet
	// would overwrite one sent less than historySpan ago, so it holds about a second of
	// packets at the viewer's rate: 256–512 slots (8–16 kB) at the board's 2 Mbit/s instead
	// of a fixed 64 kB (docs/performance.md "Footprint").
	historyMin  = 64
	historySpan = int64(time.Second)
	// seqOrigin is the first unwrapped sequence number: it keeps unwrapped numbers positive
	// however far back a (bogus) feedback points, so 0 can mean "never written".
	seqOrigin = 1 << 32
	// maxPacketSize bounds a caller's size so that sums cannot overflow; nothing on a UDP
	// path is larger.
	maxPacketSize = 1 << 16
)

// What the feedback has said about a packet so far.
const (
	stateUnreported uint8 = iota
	stateLost
	stateReceived
)

type sentPacket struct {
	seq     int64 // unwrapped; tells a live slot from a stale or never-written one
	sendNs  int64 // local clock, since the estimator's epoch
	size    int32 // bytes on the wire
	cluster int32 // probe cluster id, 0 = media
	state   uint8
	// again: a packet the receiver may already have (Estimator.SentAgain), whose loss is
	// not the path's.
	again bool
}

type history struct {
	ring    []sentPacket // a power of two long, from historyMin to historySize
	highest int64        // highest unwrapped sequence number sent
	started bool
}

// unwrap maps a 16-bit sequence number to the unwrapped one nearest the highest sent:
// feedback and the sender both stay within ±32767 of it, and anything further is bogus
// and falls outside the ring.
func (h *history) unwrap(seq uint16) int64 {
	return h.highest + int64(int16(seq-uint16(h.highest)))
}

func (h *history) add(seq uint16, sendNs int64, size, cluster int, again bool) int64 {
	var u int64
	if !h.started {
		h.started = true
		if h.ring == nil {
			h.ring = make([]sentPacket, historyMin)
		}
		u = seqOrigin + int64(seq)
		h.highest = u
	} else {
		u = h.unwrap(seq)
		if u > h.highest || h.highest-u >= historySize {
			// Newer, or so far from the history that the sender's counter must have
			// jumped (a reset): either way the numbering goes on from here.
			h.highest = u
		}
	}
	slot := &h.ring[u&int64(len(h.ring)-1)]
	for slot.seq != 0 && slot.seq != u && len(h.ring) < historySize &&
		(slot.seq > u || sendNs-slot.sendNs < historySpan) {
		h.grow()
		slot = &h.ring[u&int64(len(h.ring)-1)]
	}
	if slot.seq > u {
		return u // older than all the ring holds: nothing newer is overwritten
	}
	*slot = sentPacket{seq: u, sendNs: sendNs, size: int32(size), cluster: int32(cluster), again: again}
	return u
}

// grow doubles the ring, keeping what it holds: the ring holds the last len(ring) numbers
// at most, so none collide in one twice as long.
func (h *history) grow() {
	ring := make([]sentPacket, 2*len(h.ring))
	mask := int64(len(ring) - 1)
	for _, p := range h.ring {
		if p.seq != 0 {
			ring[p.seq&mask] = p
		}
	}
	h.ring = ring
}

// get returns the record of unwrapped sequence number u, or nil if it was never sent or
// has been overwritten.
func (h *history) get(u int64) *sentPacket {
	if !h.started || u > h.highest || h.highest-u >= int64(len(h.ring)) {
		return nil
	}
	p := &h.ring[u&int64(len(h.ring)-1)]
	if p.seq != u {
		return nil
	}
	return p
}
