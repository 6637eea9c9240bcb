package congestion

import (
	"testing"
	"time"
)

// The history and the arrival window are sized by the packet rate (a viewer of the board's
// 2 Mbit/s must not carry a ring for 20 Mbit/s), and growing loses nothing.
func TestRingsGrowWithRate(t *testing.T) {
	for _, tc := range []struct {
		pps            int // packets a second
		histLo, histHi int // the history's length after 3 s
		ackedHi        int // the arrival window's length at most
	}{
		{pps: 250, histLo: 256, histHi: 512, ackedHi: 128},      // 2 Mbit/s and audio
		{pps: 2000, histLo: 2048, histHi: 2048, ackedHi: 1024},  // 20 Mbit/s
		{pps: 20000, histLo: 2048, histHi: 2048, ackedHi: 2048}, // beyond: capped
	} {
		var h history
		var a ackedRate
		step := int64(time.Second) / int64(tc.pps)
		var seq uint16
		for ns := int64(0); ns < 3*int64(time.Second); ns += step {
			u := h.add(seq, ns, 1200, 0, false)
			// Every packet sent in the last second is still there.
			if old := u - int64(tc.pps) + 1; tc.histHi < historySize && old > seqOrigin && h.get(old) == nil {
				t.Fatalf("%d pps: packet %d, sent a second ago, forgotten (ring %d)", tc.pps, old-seqOrigin, len(h.ring))
			}
			if h.get(u) == nil {
				t.Fatalf("%d pps: packet %d just added is missing", tc.pps, u-seqOrigin)
			}
			a.add(ns/1000, 1200)
			seq++
		}
		if n := len(h.ring); n < tc.histLo || n > tc.histHi {
			t.Errorf("%d pps: history of %d, want %d–%d", tc.pps, n, tc.histLo, tc.histHi)
		}
		if n := len(a.ring); n > tc.ackedHi {
			t.Errorf("%d pps: arrival window of %d, want ≤ %d", tc.pps, n, tc.ackedHi)
		}
		// The rate over a full window is what was sent (1200-byte packets at pps).
		want := tc.pps * 1200 * 8
		if tc.pps*int(ackedWindow/time.Millisecond)/1000 > ackedRingSize {
			continue // the window is cut short by the cap: the rate is only approximate
		}
		if got := a.rate(); got < want*95/100 || got > want*105/100 {
			t.Errorf("%d pps: acked rate %d bit/s, want ~%d", tc.pps, got, want)
		}
	}
}

// A packet added out of order, older than the ring holds, does not overwrite a newer one.
func TestHistoryOldPacket(t *testing.T) {
	var h history
	for i := range 100 {
		h.add(uint16(i), int64(i)*int64(time.Second), 1000, 0, false) // 1 pps: the ring stays small
	}
	if len(h.ring) != historyMin {
		t.Fatalf("ring of %d, want %d", len(h.ring), historyMin)
	}
	u := h.add(uint16(100-historyMin-1), 100*int64(time.Second), 500, 0, false)
	if p := h.get(u); p != nil && p.size != 500 {
		t.Errorf("old packet recorded as %+v", *p)
	}
	for i := 100 - historyMin/2; i < 100; i++ {
		if p := h.get(h.unwrap(uint16(i))); p == nil || p.size != 1000 {
			t.Errorf("packet %d lost to an old one", i)
		}
	}
}
