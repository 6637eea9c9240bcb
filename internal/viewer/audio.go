package viewer

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// audioCounter counts the audio track, under receiver.mu.
type audioCounter struct {
	on          bool
	res         AudioResult
	first, last time.Time
	seq         seqCounter
	delays      []float64
}

// readAudio counts the audio track's packets until ctx ends, and with an MP4 output writes them.
func (rc *receiver) readAudio(ctx context.Context, t *webrtc.TrackRemote, absID uint8) {
	name := t.Codec().MimeType
	name = name[strings.IndexByte(name, '/')+1:]
	rc.mu.Lock()
	rc.audio.on = true
	rc.audio.res.Codec = name
	rc.mu.Unlock()
	if rc.mp4 != nil {
		rc.mp4.audioTrack(name)
	}
	var pkt rtp.Packet
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		now := time.Now()
		rc.mu.Lock()
		a := &rc.audio
		if a.res.Packets == 0 {
			a.first = now
		}
		a.last = now
		a.res.Packets++
		a.res.Bytes += int64(len(pkt.Payload))
		a.seq.count(pkt.SequenceNumber)
		// A device that sends only audio: the duration counts from its first packet.
		done := rc.res.Frames == 0 && rc.o.Duration > 0 && now.Sub(a.first) >= rc.o.Duration
		if absID != 0 && len(a.delays) < maxDelaySamples {
			if ext := pkt.GetExtension(absID); len(ext) >= 8 {
				a.delays = append(a.delays, ms(now.Sub(ntpToTime(binary.BigEndian.Uint64(ext)))))
			}
		}
		rc.mu.Unlock()
		if rc.mp4 != nil {
			at := now
			if absID != 0 {
				if ext := pkt.GetExtension(absID); len(ext) >= 8 {
					at = ntpToTime(binary.BigEndian.Uint64(ext))
				}
			}
			if err := rc.mp4.audioPacket(pkt.Payload, at); err != nil {
				if !errors.Is(err, errOutputClosed) {
					rc.o.Logger.Error("writing output", "err", err)
					rc.done()
				}
				return
			}
		}
		if done {
			rc.done()
			return
		}
	}
}

func (a *audioCounter) result() *AudioResult {
	if !a.on || a.res.Packets == 0 {
		return nil
	}
	r := a.res
	r.Lost = a.seq.lost(r.Packets)
	if span := a.last.Sub(a.first); span > 0 {
		r.DurationS = span.Seconds()
		r.BitrateBPS = int64(float64(r.Bytes*8) / span.Seconds())
	}
	if n := len(a.delays); n > 0 {
		s := slices.Clone(a.delays)
		slices.Sort(s)
		r.CaptureToReceiveMS = float64(int64(s[n/2]*1000)) / 1000
	}
	return &r
}
