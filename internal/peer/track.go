package peer

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/stream"
)

// Header extension URIs the device sends when a receiver negotiates them.
const (
	PlayoutDelayURI   = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
	AbsCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
)

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const ntpEpochOffset = 2208988800

// ntpTime is a Unix time in ns as a 64-bit NTP timestamp (UQ32.32 seconds since 1900).
func ntpTime(ns int64) uint64 {
	sec, frac := uint64(ns/1e9), uint64(ns%1e9)
	return (sec+ntpEpochOffset)<<32 | (frac<<32)/1e9
}

// historyFrames is how many recent frames each viewer keeps for retransmission: about a second
// at 30 fps. It holds references to frames every viewer shares, never copies of packets.
const historyFrames = 32

var errNoH264 = errors.New("peer: the receiver did not accept H.264 with packetization-mode=1")

// videoTrack is one viewer's H.264 track. The RTP payloads come ready-made in each shared
// stream.Frame; the track only writes this viewer's header (SSRC, payload type, sequence
// number, timestamp, extensions) in front of them.
type videoTrack struct {
	id, streamID string
	playoutDelay []byte // 3-byte extension payload, nil when off

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
}

// sent remembers which sequence numbers a frame went out with.
type sent struct {
	frame    *stream.Frame
	firstSeq uint16
}

func newVideoTrack(id, streamID string, playoutDelay []byte) *videoTrack {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return &videoTrack{
		id: id, streamID: streamID, playoutDelay: playoutDelay,
		// Random starting points (RFC 3550 5.1) so sessions cannot be correlated.
		seq:      binary.LittleEndian.Uint16(r[0:]),
		tsOffset: binary.LittleEndian.Uint32(r[2:]),
	}
}

func (t *videoTrack) ID() string                { return t.id }
func (t *videoTrack) RID() string               { return "" }
func (t *videoTrack) StreamID() string          { return t.streamID }
func (t *videoTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeVideo }

// Bind picks the negotiated H.264 payload type and extension ids.
func (t *videoTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var codec *webrtc.RTPCodecParameters
	for i, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeH264) && strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
			codec = &ctx.CodecParameters()[i]
			break
		}
	}
	if codec == nil {
		return webrtc.RTPCodecParameters{}, errNoH264
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound = true
	t.writer = ctx.WriteStream()
	t.header = rtp.Header{Version: 2, PayloadType: uint8(codec.PayloadType), SSRC: uint32(ctx.SSRC())}
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
	return *codec, nil
}

// Unbind stops writing and lets go of the retransmission history.
func (t *videoTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound = false
	t.writer = nil
	t.absCapture = nil
	t.clearHistoryLocked()
	return nil
}

func (t *videoTrack) clearHistoryLocked() {
	for i := range t.history {
		if t.history[i].frame != nil {
			t.history[i].frame.Release()
			t.history[i] = sent{}
		}
	}
}

// rtpTime converts a capture time to the 90 kHz RTP clock. Splitting seconds from the rest
// keeps the product inside 64 bits for any date.
func rtpTime(captureNS int64) uint32 {
	sec, ns := captureNS/1e9, captureNS%1e9
	return uint32(sec*90000 + ns*9/100000)
}

// writeFrame sends every payload of f. The caller keeps its own reference to f.
func (t *videoTrack) writeFrame(f *stream.Frame) error {
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
	h.Timestamp = rtpTime(f.Capture) + t.tsOffset
	if t.absCapture != nil {
		binary.BigEndian.PutUint64(t.absCapture, ntpTime(f.Capture))
	}
	first := t.seq
	var err error
	for i := range n {
		h.SequenceNumber = t.seq
		t.seq++
		h.Marker = i == n-1
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

// retransmit resends the packets a receiver reported lost, if they are still in the history.
func (t *videoTrack) retransmit(lost []uint16) (resent int) {
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
			h.Timestamp = rtpTime(s.frame.Capture) + t.tsOffset
			if t.absCapture != nil {
				binary.BigEndian.PutUint64(t.absCapture, ntpTime(s.frame.Capture))
			}
			h.Marker = idx == s.frame.Payloads.Len()-1
			if _, err := t.writer.WriteRTP(&h, s.frame.Payloads.At(idx)); err == nil {
				resent++
			}
			break
		}
	}
	return resent
}

// counters returns packets and payload bytes sent, and the extensions written.
func (t *videoTrack) counters() (packets, bytes uint64, extensions []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.packets, t.bytes, t.extensions
}
