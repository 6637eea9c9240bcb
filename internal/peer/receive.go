package peer

import (
	"errors"
	"io"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// talkGap is the silence after which the next talk-back packet starts a new burst (the
// producer resets its decoder and jitter buffer there).
const talkGap = 200 * time.Millisecond

// receivedStats counts the viewer's talk-back audio.
type receivedStats struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Lost    uint64 `json:"lost"`    // sequence numbers never seen
	Dropped uint64 `json:"dropped"` // refused by the sink (someone else talks, no producer)
	Bursts  uint64 `json:"bursts"`
}

// onTrack takes a track the viewer sends. Only a viewer allowed to talk has a send-receive
// audio section (addTransceivers); anything else is refused and logged.
func (s *Session) onTrack(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	if remote.Kind() != webrtc.RTPCodecTypeAudio || s.talk == nil || s.desc.talk == nil {
		s.log.Warn("viewer media refused: not granted talk", "kind", remote.Kind(), "token", s.access.TokenID)
		return
	}
	want := codec.Lookup(s.desc.talk.Codec)
	if !want.SameMime(remote.Codec().MimeType) {
		s.log.Warn("talk-back refused: wrong codec", "codec", remote.Codec().MimeType, "want", want.MimeType)
		return
	}
	s.log.Info("viewer talks", "codec", remote.Codec().MimeType, "token", s.access.TokenID)
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var last time.Time
	var lastSeq uint16
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("talk-back read", "err", err)
			}
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil || len(pkt.Payload) == 0 {
			continue
		}
		now := time.Now()
		resume := last.IsZero() || now.Sub(last) > talkGap
		s.mu.Lock()
		st := &s.received
		st.Packets++
		st.Bytes += uint64(len(pkt.Payload))
		if resume {
			st.Bursts++
		} else if gap := pkt.SequenceNumber - lastSeq; gap > 1 && gap < 1<<15 {
			st.Lost += uint64(gap - 1)
		}
		s.mu.Unlock()
		last, lastSeq = now, pkt.SequenceNumber
		if err := s.talk.TalkFrame(s.id, pkt.Payload, resume); err != nil {
			s.mu.Lock()
			s.received.Dropped++
			s.mu.Unlock()
		}
	}
}
