package viewer

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/mp4"
)

// Output formats (Options.Format).
const (
	FormatAnnexB = "annexb" // H.264 access units, Annex-B, video only
	FormatMP4    = "mp4"    // fragmented MP4 (internal/mp4): video and audio, playable while it grows
)

// holdForAudio is how long the MP4 output holds video back, after the first keyframe, for the
// audio track to show itself: the file's tracks are fixed when it starts.
const holdForAudio = 500 * time.Millisecond

// errOutputClosed: a write after the watch ended.
var errOutputClosed = errors.New("viewer: output closed")

// mp4Out writes what arrives as fragmented MP4: the H.264 video and the audio (Opus, G.711),
// each sample at its capture time (the device's abs-capture-time, else the arrival time), so
// they stay in sync. Called from the video and the audio goroutine: one lock.
type mp4Out struct {
	mu  sync.Mutex
	out io.Writer
	w   *mp4.Writer
	// videoCodec is the video track's (H.265 when the session's is; "" is H.264).
	videoCodec mp4.Codec
	audio      mp4.Codec // the audio track's, once it showed up ("" before)
	audioIdx   int       // its index in the file, -1 without audio
	epoch      time.Time // sample times count from it: the first capture time seen
	held       []heldAU  // video waiting for the file to start
	heldFrom   time.Time // arrival of the first held keyframe
	closed     bool
}

type heldAU struct {
	data    []byte
	key     bool
	capture time.Time
}

func newMP4Out(out io.Writer) *mp4Out { return &mp4Out{out: out, audioIdx: -1} }

// videoTrack says the session's video is H.265 (H.264 otherwise), before its first access unit.
func (m *mp4Out) videoTrack(c mp4.Codec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.videoCodec = c
}

// audioTrack says the session carries audio in codec (an SDP name: opus, PCMA, PCMU);
// codecs the file cannot hold are left out.
func (m *mp4Out) audioTrack(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range []mp4.Codec{mp4.Opus, mp4.PCMA, mp4.PCMU} {
		if strings.EqualFold(string(c), name) {
			m.audio = c
		}
	}
}

// video takes one access unit.
func (m *mp4Out) video(au []byte, key bool, capture, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errOutputClosed
	}
	m.note(capture)
	if m.w == nil {
		if len(m.held) == 0 && !key {
			return nil // the file starts at a keyframe
		}
		if len(m.held) == 0 {
			m.heldFrom = now
		}
		m.held = append(m.held, heldAU{data: append([]byte(nil), au...), key: key, capture: capture})
		if m.audio == "" && now.Sub(m.heldFrom) < holdForAudio {
			return nil
		}
		return m.start()
	}
	return sampleErr(m.w.WriteSample(0, mp4.Sample{Data: au, Time: capture.Sub(m.epoch), Keyframe: key}))
}

// sampleErr keeps the errors that end the file: one sample the writer refused (ErrSample,
// ErrParameterSets: it counts them) does not.
func sampleErr(err error) error {
	if errors.Is(err, mp4.ErrSample) || errors.Is(err, mp4.ErrParameterSets) {
		return nil
	}
	return err
}

// audioPacket takes one audio packet.
func (m *mp4Out) audioPacket(payload []byte, capture time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errOutputClosed
	}
	m.note(capture)
	if m.w == nil && len(m.held) > 0 && m.audio != "" {
		if err := m.start(); err != nil {
			return err
		}
	}
	if m.w == nil || m.audioIdx < 0 || len(payload) == 0 {
		return nil // before the file starts, or a track the file does not have
	}
	return sampleErr(m.w.WriteSample(m.audioIdx, mp4.Sample{Data: payload, Time: capture.Sub(m.epoch), Keyframe: true}))
}

func (m *mp4Out) note(capture time.Time) {
	if m.epoch.IsZero() || capture.Before(m.epoch) {
		m.epoch = capture
	}
}

// start writes the file's header with the tracks known now and the video held so far.
func (m *mp4Out) start() error {
	video := mp4.H264
	if m.videoCodec != "" {
		video = m.videoCodec
	}
	tracks := []mp4.Track{{Codec: video}}
	if m.audio != "" {
		m.audioIdx = len(tracks)
		tracks = append(tracks, mp4.Track{Codec: m.audio})
	}
	w, err := mp4.NewWriter(m.out, tracks, mp4.Options{})
	if err != nil {
		return fmt.Errorf("mp4 output: %w", err)
	}
	m.w = w
	held := m.held
	m.held = nil
	for _, h := range held {
		if err := sampleErr(w.WriteSample(0, mp4.Sample{Data: h.data, Time: h.capture.Sub(m.epoch), Keyframe: h.key})); err != nil {
			return err
		}
	}
	return nil
}

// close ends the file: the last fragment is written. Later writes are refused.
func (m *mp4Out) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.w == nil && len(m.held) > 0 {
		if err := m.start(); err != nil {
			return err
		}
	}
	if m.w == nil {
		return nil
	}
	return m.w.Close()
}
