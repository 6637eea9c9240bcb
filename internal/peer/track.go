package peer

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
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

// historyFrames is how many recent frames each viewer keeps per track for retransmission:
// about a second of 30 fps video. It holds references to frames every viewer shares, never
// copies of packets.
const historyFrames = 32

// localTrack is one viewer's copy of one source track (video or audio). The RTP payloads come
// ready-made in each shared stream.Frame; the track only writes this viewer's header (SSRC,
// payload type, sequence number, timestamp, extensions) in front of them.
type localTrack struct {
	id, streamID string
	src          stream.Track // the source track it carries
	codec        *codec.Codec
	playoutDelay []byte // 3-byte extension payload, nil when off (video only)

	mu       sync.Mutex
	bound    bool
	writer   webrtc.TrackLocalWriter
	header   rtp.Header
	seq      uint16
	tsOffset uint32
	// absCapture is the abs-capture-time payload the header points at (nil when not
	// negotiated); rewritten in place for each frame so no packet allocates.
	absCapture []byte
	extensions []string // negotiated extensions the track writes
	history    [historyFrames]sent
	histNext   int
	packets    uint64
	bytes      uint64
	lastSR     time.Time // when the last sender report went out
}

// sent remembers which sequence numbers a frame went out with.
type sent struct {
	frame    *stream.Frame
	firstSeq uint16
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
	t.header = rtp.Header{Version: 2, PayloadType: uint8(chosen.PayloadType), SSRC: uint32(ctx.SSRC())}
	// Extensions are set once: their payloads never change, so no packet allocates for them.
	// abs-capture-time keeps one 8-byte buffer that writeFrame rewrites per frame.
	t.extensions = nil
	for _, e := range ctx.HeaderExtensions() {
		var payload []byte
		switch {
		case e.URI == PlayoutDelayURI && t.playoutDelay != nil:
			payload = t.playoutDelay
		case e.URI == AbsCaptureTimeURI:
			t.absCapture = make([]byte, 8)
			payload = t.absCapture
		default:
			continue
		}
		if err := t.header.SetExtension(uint8(e.ID), payload); err != nil {
			return webrtc.RTPCodecParameters{}, err
		}
		t.extensions = append(t.extensions, e.URI)
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
	t.clearHistoryLocked()
	return nil
}

func (t *localTrack) clearHistoryLocked() {
	for i := range t.history {
		if t.history[i].frame != nil {
			t.history[i].frame.Release()
			t.history[i] = sent{}
		}
	}
}

// rtpTime converts a capture time to an RTP clock of rate Hz. Splitting seconds from the rest
// keeps the product inside 64 bits for any date; every track of a source shares the capture
// clock, so audio and video stay in step.
func rtpTime(captureNS int64, rate uint32) uint32 {
	sec, ns := captureNS/1e9, captureNS%1e9
	return uint32(sec*int64(rate) + ns*int64(rate)/1e9)
}

// writeFrame sends every payload of f. The caller keeps its own reference to f.
func (t *localTrack) writeFrame(f *stream.Frame) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return nil
	}
	n := f.Payloads.Len()
	if n == 0 {
		return nil
	}
	h := &t.header
	h.Timestamp = rtpTime(f.Capture, t.codec.ClockRate) + t.tsOffset
	if t.absCapture != nil {
		binary.BigEndian.PutUint64(t.absCapture, ntpTime(f.Capture))
	}
	video := t.src.Kind == codec.Video
	first := t.seq
	var err error
	for i := range n {
		h.SequenceNumber = t.seq
		t.seq++
		// Video marks a picture's last packet; audio marks nothing (no talkspurts: no DTX).
		h.Marker = video && i == n-1
		p := f.Payloads.At(i)
		if _, werr := t.writer.WriteRTP(h, p); werr != nil && err == nil {
			err = werr
		}
		t.packets++
		t.bytes += uint64(len(p))
	}
	// Remember the frame for NACKs, in place of the oldest.
	old := &t.history[t.histNext]
	if old.frame != nil {
		old.frame.Release()
	}
	f.Retain()
	*old = sent{frame: f, firstSeq: first}
	t.histNext = (t.histNext + 1) % historyFrames
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

// srInterval is how often each track sends a sender report (RFC 3550 suggests about 5 s for
// small sessions; browsers start lip sync only once they have one per track, so sooner).
const srInterval = time.Second

// retransmit resends the packets a receiver reported lost, if they are still in the history.
func (t *localTrack) retransmit(lost []uint16) (resent int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return 0
	}
	h := t.header // a copy: the live header's sequence number must not move
	if t.absCapture != nil {
		// The copy shares the abs-capture-time buffer: put the current frame's time back after.
		current := binary.BigEndian.Uint64(t.absCapture)
		defer binary.BigEndian.PutUint64(t.absCapture, current)
	}
	video := t.src.Kind == codec.Video
	for _, seq := range lost {
		for _, s := range t.history {
			if s.frame == nil {
				continue
			}
			idx := int(seq - s.firstSeq) // wraps correctly in uint16
			if idx >= s.frame.Payloads.Len() {
				continue
			}
			h.SequenceNumber = seq
			h.Timestamp = rtpTime(s.frame.Capture, t.codec.ClockRate) + t.tsOffset
			if t.absCapture != nil {
				binary.BigEndian.PutUint64(t.absCapture, ntpTime(s.frame.Capture))
			}
			h.Marker = video && idx == s.frame.Payloads.Len()-1
			if _, err := t.writer.WriteRTP(&h, s.frame.Payloads.At(idx)); err == nil {
				resent++
			}
			break
		}
	}
	return resent
}

// counters returns packets and payload bytes sent, and the extensions written.
func (t *localTrack) counters() (packets, bytes uint64, extensions []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.packets, t.bytes, t.extensions
}
