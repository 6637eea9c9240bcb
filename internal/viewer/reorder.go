package viewer

import "time"

// reorder puts a track's packets back in sequence order for the depacketizer: a packet the
// viewer NACKed arrives again after a round trip, behind later ones. A missing packet is
// waited for at most reorderWait (after which it counts as lost), and never while
// reorderSlots packets wait behind it. Packets are copied into fixed slots: nothing
// allocates per packet.
type reorder struct {
	slots   [reorderSlots]reorderSlot
	next    uint16 // the sequence number to release next
	started bool
	waiting int       // packets held
	gapAt   time.Time // when the packet at next was first missed
	lost    int       // packets given up on since the last pop that returned one
}

type reorderSlot struct {
	full bool
	seq  uint16
	n    int
	data [1500]byte
}

const (
	// reorderSlots bounds the packets held behind a gap: about half a second of 2 Mbit/s.
	reorderSlots = 128
	// reorderWait is how long a missing packet is waited for: a retransmission comes a round
	// trip plus the NACK interval (Pion's generator: 100 ms) after the loss shows.
	reorderWait = 250 * time.Millisecond
)

// push takes a packet that arrived at now; false when it is a duplicate or too old (already
// released or given up on).
func (r *reorder) push(seq uint16, pkt []byte, now time.Time) bool {
	if !r.started {
		r.started, r.next = true, seq
	}
	ahead := seq - r.next // wraps: a packet behind next is far "ahead"
	if ahead >= reorderSlots*4 {
		return false // behind what was released, or absurdly far ahead: drop
	}
	for ahead >= reorderSlots {
		r.skip() // a jump: give up on the oldest to make room
		ahead = seq - r.next
	}
	s := &r.slots[seq%reorderSlots]
	if s.full || len(pkt) > len(s.data) {
		return false
	}
	s.full, s.seq, s.n = true, seq, copy(s.data[:], pkt)
	r.waiting++
	if seq != r.next && r.gapAt.IsZero() && !r.slots[r.next%reorderSlots].full {
		r.gapAt = now
	}
	return true
}

// pop returns the next packet in order, if it is here, or after a gap that has waited
// reorderWait (lost reports the packets given up on before it). The data is valid until
// the next push.
func (r *reorder) pop(now time.Time) (pkt []byte, lost int, ok bool) {
	for r.waiting > 0 {
		s := &r.slots[r.next%reorderSlots]
		if s.full && s.seq == r.next {
			s.full = false
			r.waiting--
			r.next++
			r.gapAt = time.Time{}
			if r.waiting > 0 && !r.slots[r.next%reorderSlots].full {
				r.gapAt = now
			}
			lost, r.lost = r.lost, 0
			return s.data[:s.n], lost, true
		}
		if r.gapAt.IsZero() {
			r.gapAt = now
		}
		if now.Sub(r.gapAt) < reorderWait {
			return nil, 0, false
		}
		r.skip()
	}
	return nil, 0, false
}

// skip gives up on the packet at next (missing, or held but pushed out by a jump).
func (r *reorder) skip() {
	s := &r.slots[r.next%reorderSlots]
	if s.full && s.seq == r.next {
		s.full = false
		r.waiting--
	}
	r.next++
	r.lost++
}
