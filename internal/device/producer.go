package device

import (
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/ipc"
)

// Errors of the talk-back path.
var (
	errNoProducer = errors.New("device: no producer connected")
	errNoSink     = errors.New("device: the producer plays no audio")
	errQueueFull  = errors.New("device: producer queue full")
)

// producerQueue bounds what waits to be written to a producer: 2 s of talk-back at 50 frames
// a second, with room for control messages.
const producerQueue = 128

// producerLink is the device's side of one framed producer connection: what the stream asks of
// it (keyframes, how many read each track) and talk-back audio for its sink, written by one
// goroutine so a producer that stops reading never blocks the stream or a viewer's session.
type producerLink struct {
	w     *ipc.Writer
	sink  uint8 // the audio sink's track id, 0 when there is none
	log   *slog.Logger
	queue chan producerMsg
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	asked  map[uint8]bool // tracks asked for a first keyframe
	closed bool
}

type producerMsg struct {
	typ     ipc.Type
	track   uint8
	n       uint32
	resume  bool
	payload []byte
	at      int64
}

func newProducerLink(w *ipc.Writer, src *source, log *slog.Logger) *producerLink {
	p := &producerLink{w: w, log: log, queue: make(chan producerMsg, producerQueue), done: make(chan struct{}), asked: map[uint8]bool{}}
	for _, t := range src.sinks {
		if t.Kind == codec.Audio && p.sink == 0 {
			p.sink = t.ID
		}
	}
	p.wg.Go(p.write)
	return p
}

func (p *producerLink) write() {
	for {
		select {
		case <-p.done:
			return
		case m := <-p.queue:
			var err error
			switch m.typ {
			case ipc.TypeKeyframe:
				err = p.w.RequestKeyframe(m.track)
			case ipc.TypeViewers:
				err = p.w.SetViewers(m.track, m.n)
			case ipc.TypeBitrate:
				err = p.w.SetBitrate(m.track, m.n)
			case ipc.TypeFPS:
				err = p.w.SetFPS(m.track, uint16(m.n>>16), uint16(m.n))
			case ipc.TypeSinkFrame:
				err = p.w.WriteSinkFrame(m.track, m.at, m.resume, m.payload)
			}
			if err != nil {
				p.log.Debug("write to producer", "type", m.typ, "err", err)
			}
		}
	}
}

func (p *producerLink) enqueue(m producerMsg) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errNoProducer
	}
	select {
	case p.queue <- m:
		return nil
	default:
		return errQueueFull
	}
}

// RequestKeyframe queues a keyframe request (the stream has coalesced it already).
func (p *producerLink) RequestKeyframe(track uint8) error {
	return p.enqueue(producerMsg{typ: ipc.TypeKeyframe, track: track})
}

// SetReaders tells the producer how many read a track: it may idle the ones nobody reads.
func (p *producerLink) SetReaders(track uint8, n int) {
	if err := p.enqueue(producerMsg{typ: ipc.TypeViewers, track: track, n: uint32(n)}); err != nil {
		p.log.Debug("readers not told to the producer", "track", track, "err", err)
	}
}

// SetBitrate asks a track's encoder for bps bit/s.
func (p *producerLink) SetBitrate(track uint8, bps int) {
	if err := p.enqueue(producerMsg{typ: ipc.TypeBitrate, track: track, n: uint32(max(bps, 1))}); err != nil {
		p.log.Debug("bitrate not told to the producer", "track", track, "err", err)
	}
}

// SetFPS asks a video track's encoder for fps frames a second (as a fraction: 29.97 is
// 30000/1001).
func (p *producerLink) SetFPS(track uint8, fps float64) {
	num, den := fpsFraction(fps)
	if err := p.enqueue(producerMsg{typ: ipc.TypeFPS, track: track, n: uint32(num)<<16 | uint32(den)}); err != nil {
		p.log.Debug("frame rate not told to the producer", "track", track, "err", err)
	}
}

// fpsFraction writes fps as num/den: whole rates over 1, others over 1001 or 1000.
func fpsFraction(fps float64) (num, den uint16) {
	fps = min(max(fps, 1), 240)
	if r := math.Round(fps); math.Abs(fps-r) < 1e-6 {
		return uint16(r), 1
	}
	if n := math.Round(fps * 1001); math.Abs(n/1001-fps) < 1e-4 {
		return uint16(n), 1001
	}
	return uint16(math.Round(fps * 1000)), 1000
}

// askKeyframeOnce asks for a keyframe on a track that started without one (nothing can be
// decoded before it).
func (p *producerLink) askKeyframeOnce(track uint8) {
	p.mu.Lock()
	asked := p.asked[track]
	p.asked[track] = true
	p.mu.Unlock()
	if !asked {
		_ = p.RequestKeyframe(track)
	}
}

// sinkFrame queues one frame of talk-back audio (copied: the caller reuses its buffer).
func (p *producerLink) sinkFrame(payload []byte, resume bool) error {
	if p.sink == 0 {
		return errNoSink
	}
	return p.enqueue(producerMsg{typ: ipc.TypeSinkFrame, track: p.sink, resume: resume,
		payload: append([]byte(nil), payload...), at: nowNS()})
}

func (p *producerLink) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func nowNS() int64 { return time.Now().UnixNano() }
