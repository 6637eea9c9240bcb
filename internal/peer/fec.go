package peer

import (
	"math"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/fec"
)

// Forward error correction. A viewer whose receiver reports show loss gets its video in RED
// with ULPFEC packets after each frame (internal/fec): a lost packet that an FEC packet
// covers is rebuilt by the receiver at once, without a round trip for its retransmission.
// NACK stays on: it repairs what FEC could not. FEC packets follow a frame's last packet, never
// sit inside one (an empty packet between a picture's packets splits it for Chromium's H.264
// assembly, as padding did), and a NACKed FEC packet is answered with padding on its sequence
// number, as a lost probe is: the receiver cannot tell it from lost media and waits for it.

const (
	// redMime and ulpfecMime are what a receiver must accept for FEC (Chromium does by default).
	redMime    = "video/red"
	ulpfecMime = "video/ulpfec"
	// redPayloadType and ulpfecPayloadType are the device's own numbers when it offers.
	redPayloadType    = 116
	ulpfecPayloadType = 117
	// fecOnLoss and fecOffLoss: FEC starts when the smoothed loss reaches 1 % and stops below
	// 0.3 % (hysteresis: a clean second or two does not toggle it).
	fecOnLoss  = 0.01
	fecOffLoss = 0.003
	// fecLossWeight smooths receiver reports' fraction lost (about one a second).
	fecLossWeight = 0.3
	// fecBase and fecPerLoss set the protection: FEC packets per media packet = fecBase +
	// fecPerLoss × loss, at most fecMaxShare (2 % loss: 8 %, one FEC packet for a 12-packet
	// frame; 10 % loss: 32 %).
	fecBase     = 0.02
	fecPerLoss  = 3
	fecMaxShare = 0.5
	// fecMaxPerGroup bounds the FEC packets of one group; fecGroups bounds the groups of one
	// frame (fec.MaxGroup packets each): a frame's packets past them go unprotected (a
	// keyframe over ~220 KB; NACK repairs those).
	fecMaxPerGroup = 8
	fecGroups      = 4
	// maxRTPHeader bounds a marshaled header with the extensions a track writes.
	maxRTPHeader = 12 + 4 + 64
)

// fecState is one video track's FEC: off until the viewer negotiated RED and ULPFEC and
// loses packets. Media packets go into groups of consecutive packets (at most fec.MaxGroup
// each), and a group's FEC packets follow the frame that completes it. A group spans small
// frames until it has enough packets for its share (at most fecFrames frames): one FEC packet
// per two-packet frame would cost half the video instead of the share chosen.
type fecState struct {
	redPT, fecPT uint8   // 0: not negotiated
	loss         float64 // smoothed fraction lost
	share        float64 // FEC packets per media packet now; 0: off
	twccID       uint8
	// frame: the frame being sent goes in RED into the groups. cur is the group packets go
	// into (-1: none open), frames how many frames the open groups hold, emit the FEC packets
	// due after the frame just finished (the groups start afresh after them).
	frame    bool
	groups   [fecGroups]*fec.Encoder // allocated the first time FEC runs
	perGroup [fecGroups]int
	size     [fecGroups]int // the packets each group was sized for
	cur      int
	frames   int
	emit     int
	header   [maxRTPHeader]byte
	red      [1 + 1500]byte // a media packet's RED payload: the RED byte, then the payload
	out      [1 + fec.MaxPayloadLen]byte
	lastTS   uint32 // the RTP timestamp of the frame the FEC packets follow
}

// fecFrames is the most frames one group spans: its FEC packets come at most ~100 ms after
// its first packet, inside a receiver's jitter buffer.
const fecFrames = 3

// bind finds the negotiated RED and ULPFEC payload types; FEC stays off without both.
func (f *fecState) bind(codecs []webrtc.RTPCodecParameters, twccID uint8) {
	f.redPT, f.fecPT, f.twccID = 0, 0, twccID
	for _, c := range codecs {
		switch {
		case strings.EqualFold(c.MimeType, redMime):
			f.redPT = uint8(c.PayloadType)
		case strings.EqualFold(c.MimeType, ulpfecMime):
			f.fecPT = uint8(c.PayloadType)
		}
	}
	if f.fecPT == 0 {
		f.redPT = 0
	}
	f.frame, f.cur, f.frames, f.emit = false, -1, 0, 0
	for _, g := range f.groups {
		if g != nil {
			g.ZeroExtension(twccID)
		}
	}
}

// negotiated reports whether the viewer takes RED and ULPFEC.
func (f *fecState) negotiated() bool { return f.redPT != 0 }

// report takes the loss measured since the previous report and sets the protection. A
// congested path gets none: its loss is a full queue's, and FEC would only add to what the
// queue drops (a 185 kbit/s link spent half its bits on repairs and showed 9 fps).
func (f *fecState) report(lost float64, congested bool) {
	f.loss = (1-fecLossWeight)*f.loss + fecLossWeight*lost
	f.share = fecShare(f.loss, f.share > 0)
	if congested {
		f.share = 0
	}
}

// fecShare is the FEC packets per media packet for a smoothed loss, given whether FEC is on.
func fecShare(loss float64, on bool) float64 {
	if loss < fecOffLoss || (!on && loss < fecOnLoss) {
		return 0
	}
	return min(fecBase+fecPerLoss*loss, fecMaxShare)
}

// fecCount is how many FEC packets protect a group of n packets at share.
func fecCount(n int, share float64) int {
	return min(max(int(math.Ceil(float64(n)*share)), 1), fecMaxPerGroup)
}

// startFrame begins a frame of n packets: in RED and into the groups while FEC is on.
func (f *fecState) startFrame(n int) {
	if f.emit > 0 || !f.negotiated() || f.share == 0 {
		f.cur, f.frames, f.emit = -1, 0, 0 // emitted, or FEC off: what was open goes unprotected
	}
	f.frame = f.negotiated() && f.share > 0
	if !f.frame {
		return
	}
	if f.cur < 0 {
		// A frame that fills a group's share alone gets FEC sized to it; a small one starts a
		// group that later frames join, with one FEC packet.
		size := min(n, fec.MaxGroup)
		if float64(size)*f.share < 1 {
			size = min(max(int(1/f.share), 1), fec.MaxGroup) // one FEC packet
		}
		f.open(0, size)
	}
	f.frames++
}

// open starts group g for size packets, with FEC packets for them at the share.
func (f *fecState) open(g, size int) {
	if f.groups[g] == nil {
		f.groups[g] = fec.NewEncoder()
		f.groups[g].ZeroExtension(f.twccID)
	}
	n := fecCount(size, f.share)
	f.groups[g].Start(n)
	f.perGroup[g], f.size[g], f.cur = n, size, g
}

// protect adds a media packet with header h (as it would go without RED) to the open group,
// moving to a new group when that one is full, and returns the RED payload to send instead
// of p.
func (f *fecState) protect(h *rtp.Header, p []byte) []byte {
	if f.cur >= 0 && f.groups[f.cur].Len() == fec.MaxGroup && f.cur+1 < fecGroups {
		f.open(f.cur+1, fec.MaxGroup)
	}
	if f.cur >= 0 {
		if n, err := h.MarshalTo(f.header[:]); err == nil {
			_ = f.groups[f.cur].Add(f.header[:n], p) // a packet it refuses goes unprotected
		}
	}
	f.lastTS = h.Timestamp
	red := f.red[:1+len(p)]
	fec.PutRED(red, h.PayloadType)
	copy(red[1:], p)
	return red
}

// pending decides, after a frame's last packet, whether the open groups' FEC packets go now:
// when the group has the packets it was sized for, spans fecFrames frames, or more than one
// group is open. It returns how many go.
func (f *fecState) pending() int {
	if !f.frame || f.cur < 0 || f.emit > 0 {
		return f.emit
	}
	last := f.groups[f.cur]
	if last.Len() < f.size[f.cur] && f.frames < fecFrames && f.cur == 0 {
		return 0 // more frames join the group first
	}
	for g := range f.cur + 1 {
		f.emit += min(f.perGroup[g], f.groups[g].Len())
	}
	return f.emit
}

// payload writes FEC packet k of those pending (over all the open groups) as a RED payload.
func (f *fecState) payload(k int) []byte {
	for g := range f.cur + 1 {
		c := min(f.perGroup[g], f.groups[g].Len())
		if k >= c {
			k -= c
			continue
		}
		fec.PutRED(f.out[:], f.fecPT)
		n := f.groups[g].FEC(k, f.out[1:])
		if n == 0 {
			return nil
		}
		return f.out[:1+n]
	}
	return nil
}
