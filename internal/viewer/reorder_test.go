package viewer

import (
	"slices"
	"testing"
	"time"
)

// Packets come out in sequence order: a late one (a retransmission) fills its gap, a gap
// that waited reorderWait is given up on and counted, duplicates and old packets are
// dropped, and the sequence number wraps.
func TestReorder(t *testing.T) {
	t0 := time.Unix(100, 0)
	var r reorder
	var got []uint16
	lostTotal := 0
	feed := func(seq uint16, at time.Duration) {
		r.push(seq, []byte{byte(seq >> 8), byte(seq)}, t0.Add(at))
		for {
			p, lost, ok := r.pop(t0.Add(at))
			lostTotal += lost
			if !ok {
				return
			}
			got = append(got, uint16(p[0])<<8|uint16(p[1]))
		}
	}
	feed(65533, 0)
	feed(65535, time.Millisecond) // 65534 missing
	feed(0, 2*time.Millisecond)
	if len(got) != 1 {
		t.Fatalf("released %v before the gap was filled", got)
	}
	feed(65534, 50*time.Millisecond) // the retransmission
	if want := []uint16{65533, 65534, 65535, 0}; !slices.Equal(got, want) || lostTotal != 0 {
		t.Fatalf("released %v (lost %d), want %v", got, lostTotal, want)
	}
	feed(65534, 60*time.Millisecond) // a duplicate of a released packet
	feed(3, 70*time.Millisecond)     // 1 and 2 missing
	feed(4, 80*time.Millisecond)
	feed(5, 70*time.Millisecond+reorderWait)
	if want := []uint16{65533, 65534, 65535, 0, 3, 4, 5}; !slices.Equal(got, want) || lostTotal != 2 {
		t.Fatalf("released %v (lost %d), want %v and 2 lost", got, lostTotal, want)
	}
}
