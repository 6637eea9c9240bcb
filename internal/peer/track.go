package peer

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/srtpdirect"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// Header extension URIs the device sends when a receiver negotiates them.
const (
	PlayoutDelayURI   = codec.PlayoutDelayURI
	AbsCaptureTimeURI = codec.AbsCaptureTimeURI
)

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const ntpEpochOffset = 2208988800

// ntpTime is a Unix time in ns as a 64-bit NTP timestamp (UQ32.32 seconds since 1900).
func ntpTime(ns int64) uint64 {
	sec, frac := uint64(ns/1e9), uint64(ns%1e9)
	return (sec+ntpEpochOffset)<<32 | (frac<<32)/1e9
}

// historyFrames bounds each viewer's retransmission history per track, and historyAge is how
// long a frame stays in it: a NACK comes within a round trip, and a second covers a
// retransmission's retransmission on a slow path. The history holds references to frames
// every viewer shares, never copies of packets, and a frame leaves it once it is older than
// historyAge, so a long history does not keep a slow viewer's old frames alive.
const (
	historyFrames = 256
	historyAge    = 1500 * time.Millisecond
	// historyFirst is the history's first size; it doubles up to historyFrames when frames
	// younger than historyAge fill it, so it holds 1.5 s at the track's frame rate (64 slots
	// at 30 fps, 128 for 20 ms audio) instead of 256 for every track of every viewer
	// (docs/performance.md "Footprint").
	historyFirst = 16
)

// localTrack is one viewer's copy of one source track (video or audio). The RTP payloads come
// ready-made in each shared stream.Frame; the track only writes this viewer's header (SSRC,
// payload type, sequence number, timestamp, extensions) in front of them.
type localTrack struct {
	id, streamID string
	src          stream.Track // the source track it carries
	codec        *codec.Codec
	playoutDelay []byte // 3-byte extension payload, nil when off (video only)

	mu     sync.Mutex
	bound  bool
	writer webrtc.TrackLocalWriter
	// direct is the session's path below Pion on the shared socket (nil: none); writer goes
	// through it when there is one.
	direct   *srtpdirect.Path
	header   rtp.Header
	seq      uint16
	tsOffset uint32
	// ts is the RTP timestamp of the frame being written (set at its first packet), and
	// tsTrack the source track it came from (a rendition).
	ts      uint32
	tsTrack uint8
	// absCapture is the abs-capture-time payload the header points at (nil when not
	// negotiated); rewritten in place for each frame so no packet allocates.
	absCapture []byte
	// twcc is the transport-wide sequence number's payload (nil when not negotiated),
	// rewritten in place for each packet.
	twcc       []byte
	extensions []string // negotiated extensions the track writes
	history    []sent   // a ring, historyFirst to historyFrames long
	histHead   int      // the oldest entry
	histLen    int
	packets    uint64
	bytes      uint64
	resent     uint64    // retransmitted packets (NACKs answered)
	lastSR     time.Time // when the last sender report went out
	report     receiverReport
	// padding is the payload of padding-only packets (zeros, then the count), and pads the
	// sequence numbers padding and FEC packets were sent as, so a NACK for one is answered
	// with padding (a second of them at 30 fps with FEC).
	padding  [maxPadding]byte
	pads     [256]uint16
	padsNext int
	padsLen  int
	// fec is the video's forward error correction when the viewer negotiated RED and ULPFEC
	// (nil otherwise); it runs while the viewer loses packets. nacked counts the packets the
	// viewer asked again for, and lossMark both counters at its previous report: the loss
	// before repair, which receiver reports do not show (a packet NACK repaired in time
	// counts as received there).
	fec      *fecState
	nacked   uint64
	lossMark [2]uint64
	// rtx is the retransmission stream (RFC 4588) when the viewer negotiated one (nil
	// otherwise): a copy goes there with a sequence number of its own, so the receiver's
	// SRTP replay check and its congestion feedback see every copy. A copy on the media
	// stream repeats a sequence number: the receiver drops all but the first to arrive before
	// its feedback counts them, and a packet asked for again looks lost on the path.
	rtx *rtxStream
	// mediaSSRC and rtxSSRC are the track's SSRC and rtx's (0: none), read without the lock:
	// Pion makes a stream's read buffer (rtcp.go) inside the first write, which holds mu.
	mediaSSRC, rtxSSRC atomic.Uint32
}

// rtxStream is where a track's retransmissions go.
type rtxStream struct {
	pt   uint8
	ssrc uint32
	seq  uint16
	buf  []byte // the copy being written: the original sequence number, then the payload
}

// rtxFor finds the retransmission payload type negotiated for payload type pt.
func rtxFor(codecs []webrtc.RTPCodecParameters, pt webrtc.PayloadType) (uint8, bool) {
	for _, c := range codecs {
		if !strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			continue
		}
		for _, kv := range strings.Split(c.SDPFmtpLine, ";") {
			if k, v, _ := strings.Cut(strings.TrimSpace(kv), "="); k == "apt" && v == strconv.Itoa(int(pt)) {
				return uint8(c.PayloadType), true
			}
		}
	}
	return 0, false
}

// maxPadding is the most padding an RTP packet carries (its count is one byte).
const maxPadding = 255

// receiverReport is what the viewer last reported of the track (RTCP receiver report).
type receiverReport struct {
	FractionLost float64 `json:"fraction_lost"` // since its previous report
	Lost         int32   `json:"lost"`          // cumulative
	JitterMS     float64 `json:"jitter_ms"`
	RTTMS        float64 `json:"rtt_ms"` // from the report's echo of a sender report; 0 before one
}

// sent remembers which sequence numbers a frame went out with, and when.
type sent struct {
	frame    *stream.Frame
	firstSeq uint16
	ts       uint32 // the RTP timestamp it went with
	at       int64  // when its first packet was sent, ns since the epoch
}

func newLocalTrack(src stream.Track, streamID string, playoutDelay []byte) *localTrack {
	var r [6]byte
	_, _ = rand.Read(r[:])
	t := &localTrack{
		id: src.Kind.String(), streamID: streamID, src: src, codec: codec.Lookup(src.Codec),
		// Random starting points (RFC 3550 5.1) so sessions cannot be correlated.
		seq:      binary.LittleEndian.Uint16(r[0:]),
		tsOffset: binary.LittleEndian.Uint32(r[2:]),
	}
	if src.Kind == codec.Video {
		t.playoutDelay = playoutDelay
	}
	return t
}

func (t *localTrack) ID() string                { return t.id }
func (t *localTrack) RID() string               { return "" }
func (t *localTrack) StreamID() string          { return t.streamID }
func (t *localTrack) Kind() webrtc.RTPCodecType { return t.src.Kind.RTPKind() }

// Bind picks the negotiated payload type that carries the track's codec as it is sent, and the
// extension ids.
func (t *localTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var chosen *webrtc.RTPCodecParameters
	for i, c := range ctx.CodecParameters() {
		if t.codec.SameMime(c.MimeType) && (t.codec.Accepts == nil || t.codec.Accepts(c.SDPFmtpLine, t.src.Params())) {
			chosen = &ctx.CodecParameters()[i]
			break
		}
	}
	if chosen == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: the receiver did not accept %s", ErrBadSDP, t.codec.Name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound = true
	t.writer = ctx.WriteStream()
	if t.direct != nil {
		t.writer = t.direct.Writer(t.writer)
	}
	t.header = rtp.Header{Version: 2, PayloadType: uint8(chosen.PayloadType), SSRC: uint32(ctx.SSRC())}
	// Extensions are set once: their payloads never change, so no packet allocates for them.
	// abs-capture-time keeps one 8-byte buffer that writeFrame rewrites per frame.
	t.extensions = nil
	var twccID uint8
	for _, e := range ctx.HeaderExtensions() {
		var payload []byte
		switch {
		case e.URI == PlayoutDelayURI && t.playoutDelay != nil:
			payload = t.playoutDelay
		case e.URI == AbsCaptureTimeURI:
			t.absCapture = make([]byte, 8)
			payload = t.absCapture
		case e.URI == codec.TransportCCURI:
			t.twcc = make([]byte, 2)
			payload = t.twcc
			twccID = uint8(e.ID)
		default:
			continue
		}
		if err := t.header.SetExtension(uint8(e.ID), payload); err != nil {
			return webrtc.RTPCodecParameters{}, err
		}
		t.extensions = append(t.extensions, e.URI)
	}
	t.fec, t.rtx = nil, nil
	t.rtxSSRC.Store(0)
	if t.src.Kind == codec.Video {
		f := &fecState{}
		if f.bind(ctx.CodecParameters(), twccID); f.negotiated() {
			t.fec = f
		}
		if pt, ok := rtxFor(ctx.CodecParameters(), chosen.PayloadType); ok && ctx.SSRCRetransmission() != 0 {
			var r [2]byte
			_, _ = rand.Read(r[:])
			t.rtx = &rtxStream{pt: pt, ssrc: uint32(ctx.SSRCRetransmission()), seq: binary.LittleEndian.Uint16(r[:]),
				buf: make([]byte, 0, 2+codec.DefaultMTU)}
			t.rtxSSRC.Store(t.rtx.ssrc)
		}
	}
	return *chosen, nil
}

// Unbind stops writing and lets go of the retransmission history.
func (t *localTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound = false
	t.writer = nil
	t.absCapture = nil
	t.twcc = nil
	t.clearHistoryLocked()
	return nil
}

func (t *localTrack) clearHistoryLocked() {
	for t.histLen > 0 {
		t.dropOldestLocked()
	}
}

func (t *localTrack) dropOldestLocked() {
	h := &t.history[t.histHead]
	h.frame.Release()
	*h = sent{}
	t.histHead = (t.histHead + 1) % len(t.history)
	t.histLen--
}

// growHistoryLocked doubles the history (or makes its first), oldest frame first.
func (t *localTrack) growHistoryLocked() {
	h := make([]sent, max(historyFirst, 2*len(t.history)))
	for i := range t.histLen {
		h[i] = t.history[(t.histHead+i)%len(t.history)]
	}
	t.history, t.histHead = h, 0
}

// rememberLocked puts f, sent from firstSeq with RTP timestamp ts at now, in the history,
// letting go of frames too old to be asked for again.
func (t *localTrack) rememberLocked(f *stream.Frame, firstSeq uint16, ts uint32, now int64) {
	for t.histLen > 0 && now-t.history[t.histHead].at > int64(historyAge) {
		t.dropOldestLocked()
	}
	if t.histLen == len(t.history) {
		if len(t.history) < historyFrames {
			t.growHistoryLocked()
		} else {
			t.dropOldestLocked()
		}
	}
	f.Retain()
	t.history[(t.histHead+t.histLen)%len(t.history)] = sent{frame: f, firstSeq: firstSeq, ts: ts, at: now}
	t.histLen++
}

// rtpTime converts a capture time to an RTP clock of rate Hz. Splitting seconds from the rest
// keeps the product inside 64 bits for any date; every track of a source shares the capture
// clock, so audio and video stay in step.
func rtpTime(captureNS int64, rate uint32) uint32 {
	sec, ns := captureNS/1e9, captureNS%1e9
	return uint32(sec*int64(rate) + ns*int64(rate)/1e9)
}

// writePacket sends payload idx of f, the next in the track's order: a frame's payloads are
// sent in order, one frame after the other (the pacer keeps each track's queue in order). The
// first payload of a frame puts the frame in the retransmission history. tw is the packet's
// transport-wide sequence number. It returns the packet's size on the wire before SRTP, and
// whether it carried tw (the viewer negotiated transport-wide feedback).
func (t *localTrack) writePacket(f *stream.Frame, idx int, tw uint16, now int64) (int, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return 0, false, nil
	}
	if idx == 0 {
		t.ts = t.frameTimestampLocked(f)
		t.rememberLocked(f, t.seq, t.ts, now)
		if t.fec != nil {
			t.fec.startFrame(f.Payloads.Len())
		}
	}
	seq := t.seq
	t.seq++
	p := f.Payloads.At(idx)
	t.packets++
	t.bytes += uint64(len(p))
	n, err := t.writeLocked(f, idx, seq, t.ts, tw, true)
	return n, t.twcc != nil, err
}

// frameTimestampLocked is the RTP timestamp of f, a new frame: its capture time on the RTP
// clock, and always after the previous frame's. Renditions are encoded from the same
// captures, so at a switch the new rendition's first frame can have the capture time of one
// of the old rendition's just sent: one timestamp would then name two pictures, and a
// receiver that finds an H.264 frame's start by walking back over packets of its timestamp
// (Chromium: RTP has no frame-start bit for H.264) would join the keyframe to the old
// rendition's picture where one of its packets is missing (seen: the sub stream's first
// keyframe waited seconds behind the main stream's lost packets).
func (t *localTrack) frameTimestampLocked(f *stream.Frame) uint32 {
	ts := rtpTime(f.Capture, t.codec.ClockRate) + t.tsOffset
	if t.packets > 0 && f.Track != t.tsTrack && int32(ts-t.ts) <= 0 {
		ts = t.ts + 1
	}
	t.tsTrack = f.Track
	return ts
}

// writeLocked writes payload idx of f as sequence number seq; live media of a frame sent with
// FEC goes in RED and into the frame's FEC; a retransmission goes as it is, on the
// retransmission stream when there is one.
func (t *localTrack) writeLocked(f *stream.Frame, idx int, seq uint16, ts uint32, tw uint16, live bool) (int, error) {
	h := &t.header
	h.SequenceNumber = seq
	h.Timestamp = ts
	if t.absCapture != nil {
		binary.BigEndian.PutUint64(t.absCapture, ntpTime(f.Capture))
	}
	if t.twcc != nil {
		binary.BigEndian.PutUint16(t.twcc, tw)
	}
	// Video marks a picture's last packet; audio marks nothing (no talkspurts: no DTX).
	h.Marker = t.src.Kind == codec.Video && idx == f.Payloads.Len()-1
	p := f.Payloads.At(idx)
	media, ssrc := h.PayloadType, h.SSRC
	switch {
	case live && t.fec != nil && t.fec.frame:
		p = t.fec.protect(h, p)
		h.PayloadType = t.fec.redPT
	case !live && t.rtx != nil:
		h.PayloadType, h.SSRC, h.SequenceNumber = t.rtx.pt, t.rtx.ssrc, t.rtx.seq
		t.rtx.seq++
		t.rtx.buf = append(binary.BigEndian.AppendUint16(t.rtx.buf[:0], seq), p...)
		p = t.rtx.buf
	}
	_, err := t.writer.WriteRTP(h, p)
	h.PayloadType, h.SSRC = media, ssrc
	if err != nil {
		return 0, err
	}
	return h.MarshalSize() + len(p), nil
}

// retransmitsApart reports whether the track's retransmissions go on a stream of their own.
func (t *localTrack) retransmitsApart() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rtx != nil
}

// nackedOnce counts a packet the viewer asked for again (once per round trip).
func (t *localTrack) nackedOnce() {
	t.mu.Lock()
	t.nacked++
	t.mu.Unlock()
}

// fecShare is the FEC sent per media packet now (0: off or not negotiated).
func (t *localTrack) fecShare() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fec == nil {
		return 0
	}
	return t.fec.share
}

// fecPending is how many FEC packets follow the frame whose last packet was just written.
func (t *localTrack) fecPending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fec == nil || !t.bound {
		return 0
	}
	return t.fec.pending()
}

// writeFEC sends FEC packet k of the frame just written, as the track's next sequence number
// (remembered, so that a NACK for it is answered with padding), with the frame's timestamp.
func (t *localTrack) writeFEC(k int, tw uint16) (int, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fec == nil || !t.bound {
		return 0, false, nil
	}
	p := t.fec.payload(k)
	if p == nil {
		return 0, false, nil
	}
	h := &t.header
	live := *h
	h.SequenceNumber, h.Timestamp, h.Marker, h.PayloadType = t.seq, t.fec.lastTS, false, t.fec.redPT
	t.notePaddedLocked(t.seq)
	t.seq++
	if t.twcc != nil {
		binary.BigEndian.PutUint16(t.twcc, tw)
	}
	_, err := t.writer.WriteRTP(h, p)
	h.SequenceNumber, h.Timestamp, h.Marker, h.PayloadType = live.SequenceNumber, live.Timestamp, live.Marker, live.PayloadType
	if err != nil {
		return 0, false, err
	}
	return h.MarshalSize() + len(p), t.twcc != nil, nil
}

// notePaddedLocked remembers that seq carried no media (padding, FEC).
func (t *localTrack) notePaddedLocked(seq uint16) {
	t.pads[t.padsNext] = seq
	t.padsNext = (t.padsNext + 1) % len(t.pads)
	t.padsLen = min(t.padsLen+1, len(t.pads))
}

// writeFrame sends every payload of f at once, unpaced (tests, benchmarks).
func (t *localTrack) writeFrame(f *stream.Frame) error {
	now := time.Now().UnixNano()
	var err error
	for i := range f.Payloads.Len() {
		if _, _, werr := t.writePacket(f, i, 0, now); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// senderReport returns the track's RTCP sender report for now when one is due (the first
// frame, then every srInterval), else nil. Its RTP time is now on the capture clock, the same
// mapping the packets' timestamps use: a receiver lines audio up with video by it (lip sync),
// and that holds only if the mapping does not include each track's own encode and queueing
// delay, as an SR extrapolated from the last packet's send time would.
func (t *localTrack) senderReport(now time.Time) *rtcp.SenderReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound || t.packets == 0 || now.Sub(t.lastSR) < srInterval {
		return nil
	}
	t.lastSR = now
	ns := now.UnixNano()
	return &rtcp.SenderReport{SSRC: t.header.SSRC, NTPTime: ntpTime(ns), RTPTime: rtpTime(ns, t.codec.ClockRate) + t.tsOffset,
		PacketCount: uint32(t.packets), OctetCount: uint32(t.bytes)}
}

// receiverReport takes the viewer's report of the track: loss, jitter, and the round trip
// from its echo of our last sender report (RFC 3550 6.4.1: now − LSR − DLSR).
// congested: the path is queueing, so its loss is congestion, which FEC would feed.
func (t *localTrack) receiverReport(rr *rtcp.ReceiverReport, now time.Time, congested bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range rr.Reports {
		if b.SSRC != t.header.SSRC {
			continue
		}
		t.report.FractionLost = float64(b.FractionLost) / 256
		if t.fec != nil {
			loss := t.report.FractionLost
			if sent := t.packets - t.lossMark[0]; sent > 0 {
				loss = max(loss, min(float64(t.nacked-t.lossMark[1])/float64(sent), 1))
			}
			t.lossMark = [2]uint64{t.packets, t.nacked}
			t.fec.report(loss, congested)
		}
		t.report.Lost = int32(b.TotalLost<<8) >> 8 // 24-bit signed
		t.report.JitterMS = float64(b.Jitter) / float64(t.codec.ClockRate) * 1000
		if b.LastSenderReport != 0 {
			mid := uint32(ntpTime(now.UnixNano()) >> 16)
			if rtt := mid - b.LastSenderReport - b.Delay; rtt < 1<<31 {
				t.report.RTTMS = float64(rtt) / 65536 * 1000
			}
		}
	}
}

// rtt is the round trip from the viewer's last report, ms (0: none yet).
func (t *localTrack) rtt() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.report.RTTMS
}

// srInterval is how often each track sends a sender report (RFC 3550 suggests about 5 s for
// small sessions; browsers start lip sync only once they have one per track, so sooner).
const srInterval = time.Second

// lookup finds the packet sent as seq in the history: its frame (retained for the caller,
// who must Release it), payload index and RTP timestamp.
func (t *localTrack) lookup(seq uint16) (f *stream.Frame, idx int, ts uint32, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.histLen {
		s := &t.history[(t.histHead+i)%len(t.history)]
		idx := int(seq - s.firstSeq) // wraps correctly in uint16
		if idx < s.frame.Payloads.Len() {
			s.frame.Retain()
			return s.frame, idx, s.ts, true
		}
	}
	return nil, 0, 0, false
}

// resend writes payload idx of f again as seq with RTP timestamp ts (a retransmission, or a
// probe's copy); the live header is left as it was.
func (t *localTrack) resend(f *stream.Frame, idx int, seq uint16, ts uint32, tw uint16, retransmission bool) (int, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return 0, false, nil
	}
	live := t.header.SequenceNumber
	var abs uint64
	if t.absCapture != nil {
		abs = binary.BigEndian.Uint64(t.absCapture)
	}
	n, err := t.writeLocked(f, idx, seq, ts, tw, false)
	t.header.SequenceNumber = live
	if t.absCapture != nil {
		binary.BigEndian.PutUint64(t.absCapture, abs)
	}
	if err == nil && retransmission {
		t.resent++
	}
	return n, t.twcc != nil, err
}

// writePadding sends a padding-only packet of size bytes (1 to maxPadding): a probe, made of
// new packets (copies of sent ones would be dropped by the receiver's SRTP replay check before
// its congestion feedback counts them), or, when resend is set, padding again as seq (a lost
// probe or FEC packet's number on the media stream). A probe goes on the retransmission
// stream when there is one, as libwebrtc sends its own: a lost one then leaves no gap in the
// media's sequence numbers. On the media stream a lost probe is a gap the receiver waits for,
// and Chromium's H.264 packet buffer did not go on from a gap filled late by padding: a viewer
// that lost a probe packet in its first second saw its picture stop until the next keyframe
// (1.8 s, in 7 of 8 runs of the lab's 2 % loss case).
func (t *localTrack) writePadding(size int, seq uint16, resend bool, tw uint16) (int, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound || t.packets == 0 {
		return 0, false, nil // nothing sent yet: no timestamp to pad with
	}
	size = min(max(size, 1), maxPadding)
	h := &t.header
	live, pt, ssrc := h.SequenceNumber, h.PayloadType, h.SSRC
	switch {
	case resend:
	case t.rtx != nil:
		h.PayloadType, h.SSRC, seq = t.rtx.pt, t.rtx.ssrc, t.rtx.seq
		t.rtx.seq++
	default:
		seq = t.seq
		t.seq++
		t.notePaddedLocked(seq)
	}
	h.SequenceNumber, h.Padding, h.Marker = seq, true, false
	if t.twcc != nil {
		binary.BigEndian.PutUint16(t.twcc, tw)
	}
	p := t.padding[:size]
	p[size-1] = byte(size)
	_, err := t.writer.WriteRTP(h, p)
	h.SequenceNumber, h.Padding, h.PayloadType, h.SSRC = live, false, pt, ssrc
	if err != nil {
		return 0, false, err
	}
	return h.MarshalSize() + size, t.twcc != nil, nil
}

// paddedAs reports whether seq was a padding-only packet lately.
func (t *localTrack) paddedAs(seq uint16) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.padsLen {
		if t.pads[i] == seq {
			return true
		}
	}
	return false
}

// retransmit resends the packets a receiver reported lost that are still in the history, at
// once (tests; sessions queue them with their pacer).
func (t *localTrack) retransmit(lost []uint16) (resent int) {
	for _, seq := range lost {
		f, idx, ts, ok := t.lookup(seq)
		if !ok {
			continue
		}
		if _, _, err := t.resend(f, idx, seq, ts, 0, true); err == nil {
			resent++
		}
		f.Release()
	}
	return resent
}

// counters returns packets and payload bytes sent, retransmissions, the viewer's last report,
// and the extensions written.
func (t *localTrack) counters() (packets, bytes, resent uint64, report receiverReport, extensions []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.packets, t.bytes, t.resent, t.report, t.extensions
}
