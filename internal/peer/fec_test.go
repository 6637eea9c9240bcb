package peer

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/p2pcast/p2pcast/internal/fec"
)

// packetLog keeps every packet a track writes, marshaled as it goes out.
type packetLog struct {
	mu      sync.Mutex
	packets [][]byte
}

func (w *packetLog) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	b, err := h.Marshal()
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.packets = append(w.packets, append(b, payload...))
	w.mu.Unlock()
	return len(b) + len(payload), nil
}
func (w *packetLog) Write(b []byte) (int, error) { return len(b), nil }

const testTWCCID = 5

// fecTrack is a video track bound as with a viewer that takes RED and ULPFEC and
// transport-wide feedback.
func fecTrack(w *packetLog) *localTrack {
	t := newLocalTrack(testVideo, "s", nil)
	t.bound, t.writer = true, w
	t.header = rtp.Header{Version: 2, PayloadType: 102, SSRC: 1234}
	t.twcc = make([]byte, 2)
	_ = t.header.SetExtension(testTWCCID, t.twcc)
	t.fec = &fecState{redPT: redPayloadType, fecPT: ulpfecPayloadType}
	t.fec.bind(nil, testTWCCID)
	t.fec.redPT, t.fec.fecPT = redPayloadType, ulpfecPayloadType
	return t
}

// reportLoss tells the track the viewer lost this fraction of its packets.
func reportLoss(t *localTrack, lost float64) {
	t.receiverReport(&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: t.header.SSRC, FractionLost: uint8(lost * 256)}}}, time.Now(), false)
}

// A viewer that reports loss gets its video in RED with ULPFEC packets after each frame, from
// which any one lost packet of a group is rebuilt byte for byte as the receiver protects it;
// a NACK for an FEC packet is answered with padding on its sequence number. Without loss, video
// goes as it is.
func TestFECRebuildsALostPacket(t *testing.T) {
	w := &packetLog{}
	tr := fecTrack(w)
	snd := newSender(newPacer(nil), fixedRate(1<<40))
	snd.video, snd.paced, snd.fast = tr, true, false

	send := func(size int) {
		f := testFrame(size, false)
		snd.offer(tr, f)
		snd.drain(time.Now())
	}
	send(3000)
	for _, p := range w.packets {
		if p[1]&0x7f != 102 {
			t.Fatalf("without loss a packet went with payload type %d", p[1]&0x7f)
		}
	}
	for range 5 {
		reportLoss(tr, 0.05)
	}
	w.packets = nil
	send(20000) // 17 packets: one group
	var media, fecs [][]byte
	for _, p := range w.packets {
		var h rtp.Header
		n, err := h.Unmarshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.PayloadType != redPayloadType {
			t.Fatalf("with loss a packet went with payload type %d, not RED", h.PayloadType)
		}
		switch p[n] {
		case 102:
			// The packet as the receiver protects it: the media payload type, no RED byte,
			// the transport-wide number zeroed.
			h.PayloadType = 102
			_ = h.SetExtension(testTWCCID, []byte{0, 0})
			b, _ := h.Marshal()
			media = append(media, append(b, p[n+1:]...))
		case ulpfecPayloadType:
			if h.Marker {
				t.Error("an FEC packet carries the marker")
			}
			fecs = append(fecs, p[n+1:])
			if !tr.paddedAs(h.SequenceNumber) {
				t.Errorf("FEC packet %d would not be answered with padding", h.SequenceNumber)
			}
		default:
			t.Fatalf("RED block of payload type %d", p[n])
		}
	}
	share := fecShare(tr.fec.loss, true)
	t.Logf("%d media packets, %d FEC packets (loss %.3f, share %.2f)", len(media), len(fecs), tr.fec.loss, share)
	if len(media) != 17 || len(fecs) < 2 {
		t.Fatalf("%d media and %d FEC packets, want 17 and at least 2", len(media), len(fecs))
	}
	if last := media[len(media)-1]; last[1]&0x80 == 0 {
		t.Error("the frame's last media packet has no marker: FEC went inside the frame")
	}
	bySeq := map[uint16][]byte{}
	for _, m := range media {
		bySeq[uint16(m[2])<<8|uint16(m[3])] = m
	}
	for _, lost := range media {
		lostSeq := uint16(lost[2])<<8 | uint16(lost[3])
		rebuilt := false
		for _, f := range fecs {
			dst := make([]byte, 1500)
			seq, n, err := fec.Recover(f, 1234, func(s uint16) []byte {
				if s == lostSeq {
					return nil
				}
				return bySeq[s]
			}, dst)
			if err != nil || seq != lostSeq {
				continue
			}
			if !bytes.Equal(dst[:n], lost) {
				t.Fatalf("packet %d rebuilt wrong", lostSeq)
			}
			rebuilt = true
		}
		if !rebuilt {
			t.Errorf("packet %d could not be rebuilt from the FEC packets", lostSeq)
		}
	}
	if snd.stats.FECPackets != uint64(len(fecs)) {
		t.Errorf("stats count %d FEC packets, %d went out", snd.stats.FECPackets, len(fecs))
	}
	// Small frames share a group: one FEC packet for three two-packet frames, not one each.
	w.packets = nil
	for range fecFrames {
		send(1500)
	}
	red := 0
	for _, p := range w.packets {
		var h rtp.Header
		if n, err := h.Unmarshal(p); err == nil && p[n] == ulpfecPayloadType {
			red++
		}
	}
	if len(w.packets) != 2*fecFrames+1 || red != 1 {
		t.Errorf("%d small frames: %d packets, %d of them FEC; want %d and 1", fecFrames, len(w.packets), red, 2*fecFrames+1)
	}
	// The loss ends: FEC stops.
	for range 20 {
		reportLoss(tr, 0)
	}
	w.packets = nil
	send(3000)
	for _, p := range w.packets {
		if p[1]&0x7f != 102 {
			t.Fatalf("after the loss ended a packet went with payload type %d", p[1]&0x7f)
		}
	}
	snd.close()
}

func TestFECShare(t *testing.T) {
	for _, tc := range []struct {
		loss float64
		on   bool
		want float64
	}{{0, false, 0}, {0.005, false, 0}, {0.005, true, fecBase + fecPerLoss*0.005}, {0.002, true, 0},
		{0.02, false, fecBase + fecPerLoss*0.02}, {0.3, true, fecMaxShare}} {
		if got := fecShare(tc.loss, tc.on); got != tc.want {
			t.Errorf("fecShare(%g, on %v) = %g, want %g", tc.loss, tc.on, got, tc.want)
		}
	}
}

// Loss that NACK repairs in time does not show in receiver reports (a retransmitted packet
// counts as received): the packets asked for again turn FEC on all the same.
func TestFECFollowsLossBeforeRepair(t *testing.T) {
	tr := fecTrack(&packetLog{})
	for range 4 {
		tr.mu.Lock()
		tr.packets += 100
		tr.mu.Unlock()
		for range 3 {
			tr.nackedOnce()
		}
		reportLoss(tr, 0)
	}
	if got := tr.fecShare(); got == 0 {
		t.Fatalf("3 %% of packets NACKed, receiver reports 0: FEC stayed off (smoothed loss %.3f)", tr.fec.loss)
	}
}

// A congested path's loss is its queue's: no FEC for it.
func TestNoFECOnACongestedPath(t *testing.T) {
	tr := fecTrack(&packetLog{})
	for range 5 {
		tr.receiverReport(&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: tr.header.SSRC, FractionLost: 20}}}, time.Now(), true)
	}
	if got := tr.fecShare(); got != 0 {
		t.Fatalf("FEC share %.2f on a congested path losing 8 %%", got)
	}
	reportLoss(tr, 20.0/256)
	if got := tr.fecShare(); got == 0 {
		t.Fatal("no FEC once the same loss comes without a queue")
	}
}
