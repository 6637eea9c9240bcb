package device

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// helloWait bounds how long a new producer may take to say who it is.
const helloWait = 5 * time.Second

// Errors that drop a producer's connection.
var (
	errNotH264  = errors.New("device: access unit holds no H.264 NAL unit")
	errNoFrame  = errors.New("device: empty frame")
	errBadTrack = errors.New("device: bad track")
)

// ingest accepts producers on the capture socket and publishes their frames. One producer feeds
// the stream at a time: a new connection replaces the current one.
type ingest struct {
	st  *stream.Stream
	log *slog.Logger
	// onEvent takes the producer's detection events (EVENT messages), each edge as it comes;
	// nil drops them.
	onEvent func(event.Event)

	mu       sync.Mutex
	current  net.Conn
	producer *producerLink // the current framed producer, nil for none or plain Annex-B
}

// serve accepts producers until ctx ends or the listener fails.
func (in *ingest) serve(ctx context.Context, l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
		in.mu.Lock()
		if in.current != nil {
			in.current.Close()
		}
		in.mu.Unlock()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				in.log.Error("capture socket accept failed", "err", err)
			}
			return
		}
		in.mu.Lock()
		if in.current != nil {
			in.log.Info("new producer replaces the current one")
			in.current.Close()
		}
		in.current = conn
		in.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := in.handle(conn)
			in.mu.Lock()
			if in.current == conn {
				in.current = nil
			}
			in.mu.Unlock()
			conn.Close()
			switch {
			case err == nil || errors.Is(err, io.EOF):
				in.log.Info("producer disconnected")
			case errors.Is(err, net.ErrClosed):
			default:
				in.log.Warn("producer dropped", "reason", err)
			}
		}()
	}
}

// handle reads one producer connection to its end. The returned error says why it was dropped.
func (in *ingest) handle(conn net.Conn) error {
	br := bufio.NewReaderSize(conn, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(helloWait))
	proto, err := ipc.Detect(br)
	if err != nil {
		return err
	}
	if proto == ipc.AnnexB {
		_ = conn.SetReadDeadline(time.Time{})
		return in.annexB(br)
	}
	return in.framed(conn, br)
}

// sinkFrame sends talk-back audio to the current producer's audio sink.
func (in *ingest) sinkFrame(payload []byte, resume bool) error {
	in.mu.Lock()
	p := in.producer
	in.mu.Unlock()
	if p == nil {
		return errNoProducer
	}
	return p.sinkFrame(payload, resume)
}

// source is what a framed producer announced: its tracks (by id) and sinks.
type source struct {
	name   string
	tracks []stream.Track
	sinks  []stream.Track
	// spsSeen marks H.264 tracks whose first SPS has set the profile and size: the source is
	// published only when every one has, so the SDP offers what is really sent.
	spsSeen map[uint8]bool
	// events marks the video tracks whose HELLO said EVENTs may come about them.
	events map[uint8]bool
}

func (src *source) track(id uint8) *stream.Track {
	for i := range src.tracks {
		if src.tracks[i].ID == id {
			return &src.tracks[i]
		}
	}
	return nil
}

func (src *source) complete() bool {
	for _, t := range src.tracks {
		if t.Codec == codec.H264.Name && !src.spsSeen[t.ID] {
			return false
		}
	}
	return true
}

// codecNames maps the socket protocol's codec ids to the registry's names.
var codecNames = map[uint8]string{
	ipc.CodecH264: codec.H264.Name, ipc.CodecOpus: codec.Opus.Name,
	ipc.CodecPCMA: codec.PCMA.Name, ipc.CodecPCMU: codec.PCMU.Name,
}

// trackOf describes a HELLO's track.
func trackOf(h ipc.Hello) (stream.Track, error) {
	c := codec.Lookup(codecNames[h.Codec])
	if c == nil {
		return stream.Track{}, fmt.Errorf("%w: codec %d", ipc.ErrBadHello, h.Codec)
	}
	t := stream.Track{ID: h.Track, Kind: c.Kind, Codec: c.Name, ClockRate: c.ClockRate,
		Bitrate: int(h.Bitrate), CanBitrate: h.Can(ipc.CapBitrate)}
	switch c.Kind {
	case codec.Video:
		t.Width, t.Height, t.FPS = int(h.Width), int(h.Height), h.FPS()
		t.CanKeyframe, t.CanFPS = h.Can(ipc.CapKeyframe), h.Can(ipc.CapFPS)
		t.AlternateOf = h.AlternateOf
	case codec.Audio:
		t.Channels = int(h.Channels)
		t.FrameMS = float64(h.FrameDuration) / 1000
	}
	return t, nil
}

// readHellos reads a framed producer's HELLOs up to the LAST one.
func readHellos(r *ipc.Reader) (*source, error) {
	src := &source{spsSeen: map[uint8]bool{}, events: map[uint8]bool{}}
	seen := map[uint8]bool{}
	for {
		m, err := r.Next()
		if err != nil {
			return nil, err
		}
		if m.Type != ipc.TypeHello {
			return nil, fmt.Errorf("%w: got %s before the last HELLO", ipc.ErrExpectedHello, m.Type)
		}
		h, err := ipc.ParseHello(m)
		if err != nil {
			return nil, err
		}
		if seen[h.Track] {
			return nil, fmt.Errorf("%w: track %d announced twice", ipc.ErrBadHello, h.Track)
		}
		if seen[h.Track] = true; len(seen) > ipc.MaxTracks {
			return nil, fmt.Errorf("%w: more than %d tracks", ipc.ErrBadHello, ipc.MaxTracks)
		}
		t, err := trackOf(h)
		if err != nil {
			return nil, err
		}
		if src.name == "" {
			src.name = h.Name
		}
		if h.Kind == ipc.KindVideo && h.Can(ipc.CapEvents) {
			src.events[h.Track] = true
		}
		if h.Sink {
			src.sinks = append(src.sinks, t)
		} else {
			src.tracks = append(src.tracks, t)
		}
		if h.Last {
			return src, nil
		}
	}
}

func (in *ingest) framed(conn net.Conn, br *bufio.Reader) error {
	r := ipc.NewReader(br)
	src, err := readHellos(r)
	if err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Time{})
	for _, t := range append(src.tracks, src.sinks...) {
		in.log.Info("producer track", "name", src.name, "track", t.ID, "kind", t.Kind, "codec", t.Codec,
			"size", fmt.Sprintf("%dx%d", t.Width, t.Height), "fps", t.FPS, "channels", t.Channels, "sink", t.ID != 0 && src.track(t.ID) == nil)
	}
	link := newProducerLink(ipc.NewWriter(conn, r.Version()), src, in.log)
	defer link.close()
	in.mu.Lock()
	in.producer = link
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		if in.producer == link {
			in.producer = nil
		}
		in.mu.Unlock()
	}()
	pub := &publisher{st: in.st, src: src, link: link}
	defer pub.close()
	events := &producerEvents{src: src, publish: in.onEvent}
	defer events.endOpen()
	if src.complete() {
		pub.attach()
	}
	for {
		m, err := r.Next()
		if err != nil {
			return err
		}
		switch m.Type {
		case ipc.TypeFrame:
			f, err := ipc.ParseFrame(m)
			if err != nil {
				return err
			}
			t := src.track(f.Track)
			if t == nil {
				return fmt.Errorf("%w: frame for track %d, which no HELLO announced as a source", errBadTrack, f.Track)
			}
			if err := pub.publish(t, f.Data, f.Seq, f.Capture, f.Encoded); err != nil {
				return err
			}
		case ipc.TypeEvent:
			if err := events.take(m); err != nil {
				return err
			}
		case ipc.TypeHello:
			return fmt.Errorf("%w: HELLO after the last one", ipc.ErrBadHello)
		case ipc.TypeBye:
			return nil
		default:
			return fmt.Errorf("%w: %s from a producer", ipc.ErrUnexpectedType, m.Type)
		}
	}
}

// annexB ingests a plain H.264 stream: no timestamps (frames are stamped on arrival) and no
// way to ask for keyframes (joins replay the GOP).
func (in *ingest) annexB(br *bufio.Reader) error {
	r := media.NewAUReader(br, ipc.MaxPayload)
	src := &source{name: "annexb", spsSeen: map[uint8]bool{},
		tracks: []stream.Track{{ID: 1, Kind: codec.Video, Codec: codec.H264.Name, ClockRate: codec.H264.ClockRate}}}
	pub := &publisher{st: in.st, src: src, onAttach: func() {
		t := src.tracks[0]
		in.log.Info("plain Annex-B producer connected", "size", fmt.Sprintf("%dx%d", t.Width, t.Height), "profile", t.ProfileLevelID)
	}}
	defer pub.close()
	for seq := uint32(0); ; seq++ {
		au, err := r.Next()
		if err != nil {
			return err
		}
		if err := pub.publish(&src.tracks[0], au, seq, time.Now().UnixNano(), 0); err != nil {
			return err
		}
	}
}

// publisher hands one producer connection's frames to the stream, and its description
// whenever that is complete or changes.
type publisher struct {
	st       *stream.Stream
	src      *source
	link     *producerLink // nil for plain Annex-B, which cannot be asked for anything
	onAttach func()        // may be nil
	detach   func()
}

// attach makes the source's current description the stream's.
func (p *publisher) attach() {
	p.close()
	var producer stream.Producer
	if p.link != nil {
		producer = p.link
	}
	p.detach = p.st.Attach(stream.Describe(p.src.name, p.src.tracks, p.src.sinks), producer)
	if p.onAttach != nil {
		p.onAttach()
	}
}

func (p *publisher) close() {
	if p.detach != nil {
		p.detach()
		p.detach = nil
	}
}

// publish packetizes a frame of track t once and hands it to every reader. For H.264 it reads
// the SPS of each keyframe: when the profile or size is new it updates the track and attaches
// the new description before the frame goes out. Before a track's first SPS frames are
// undecodable and dropped (a keyframe is asked for), and so is everything until every H.264
// track has had its SPS (nobody can watch yet).
func (p *publisher) publish(t *stream.Track, data []byte, seq uint32, capture, encoded int64) error {
	if len(data) == 0 {
		return errNoFrame
	}
	f := newFrame(t, data, seq, capture, encoded)
	if f.Payloads.Len() == 0 {
		f.Release()
		if t.Codec == codec.H264.Name {
			return errNotH264
		}
		return errNoFrame
	}
	if t.Codec == codec.H264.Name {
		if f.Keyframe && p.src.learnSPS(t, f.Data) && p.src.complete() {
			p.attach()
		}
		if !p.src.spsSeen[t.ID] {
			f.Release()
			if p.link != nil {
				p.link.askKeyframeOnce(t.ID)
			}
			return nil
		}
	}
	if !p.src.complete() {
		f.Release()
		return nil
	}
	p.st.Publish(f)
	return nil
}

// learnSPS reads the SPS of a keyframe of H.264 track t and reports whether it changed what
// the track says (its first SPS, another profile or size).
func (src *source) learnSPS(t *stream.Track, au []byte) (changed bool) {
	sps, ok := media.FirstSPS(au)
	if !ok {
		return false
	}
	plid := sps.ProfileLevelID()
	if src.spsSeen[t.ID] && plid == t.ProfileLevelID && sps.Width == t.Width && sps.Height == t.Height {
		return false
	}
	src.spsSeen[t.ID] = true
	t.ProfileLevelID, t.Width, t.Height = plid, sps.Width, sps.Height
	if sps.FPS > 0 && t.FPS == 0 {
		t.FPS = sps.FPS
	}
	return true
}

// newFrame makes a frame of track t, packetized once for every viewer.
func newFrame(t *stream.Track, data []byte, seq uint32, capture, encoded int64) *stream.Frame {
	c := codec.Lookup(t.Codec)
	f := stream.NewFrame()
	f.Track, f.Seq, f.Capture, f.Encoded, f.Received = t.ID, seq, capture, encoded, time.Now().UnixNano()
	f.Data = append(f.Data, data...)
	// The bitstream decides what a keyframe is: a flag that lies would stall every new viewer.
	f.Keyframe = c.Keyframe == nil || c.Keyframe(f.Data)
	c.Packetize(f.Data, codec.DefaultMTU, &f.Payloads)
	return f
}
