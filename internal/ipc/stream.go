package ipc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Protocol is what a producer speaks on the socket.
type Protocol int

// Protocols told apart by Detect.
const (
	Framed Protocol = iota + 1
	AnnexB
)

func (p Protocol) String() string {
	switch p {
	case Framed:
		return "framed"
	case AnnexB:
		return "annexb"
	}
	return "unknown"
}

// Detect peeks at the first bytes of a connection to tell the framed protocol from a plain
// Annex-B stream, consuming nothing.
func Detect(br *bufio.Reader) (Protocol, error) {
	b, err := br.Peek(4)
	if len(b) >= 3 && b[0] == 0 && b[1] == 0 && b[2] == 1 {
		return AnnexB, nil
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return 0, fmt.Errorf("%w: %d bytes then EOF", ErrTruncated, len(b))
		}
		return 0, err
	}
	switch {
	case bytes.Equal(b, Magic[:]):
		return Framed, nil
	case b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 1:
		return AnnexB, nil
	}
	return 0, fmt.Errorf("%w: first bytes % x", ErrUnknownStream, b)
}

// Message is one framed message. Payload aliases the Reader's buffer and is valid until the
// next call to Next.
type Message struct {
	Header
	Payload []byte
}

// Reader decodes framed messages, reusing one buffer so steady state does not allocate. A
// connection speaks one version: the first message's.
type Reader struct {
	r       io.Reader
	hdr     [HeaderSizeV2]byte
	buf     []byte
	version uint8
	// videos are the video tracks HELLOs described so far, and whether each is an alternate:
	// what a later HELLO's alternate_of is checked against.
	videos map[uint8]bool
}

// NewReader reads framed messages from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Version is the connection's protocol version (0 before the first message).
func (r *Reader) Version() uint8 { return r.version }

// Next returns the next message. It returns io.EOF only at a message boundary; a stream that
// ends inside a message returns ErrTruncated.
func (r *Reader) Next() (Message, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:HeaderSize]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Message{}, fmt.Errorf("%w: inside a header", ErrTruncated)
		}
		return Message{}, err
	}
	h, err := ParseHeader(r.hdr[:HeaderSize])
	if err != nil {
		return Message{}, err
	}
	switch r.version {
	case 0:
		r.version = h.Version
	case h.Version:
	default:
		return Message{}, fmt.Errorf("%w: version %d on a version %d connection", ErrVersion, h.Version, r.version)
	}
	if h.Version == Version2 {
		if _, err := io.ReadFull(r.r, r.hdr[HeaderSize:]); err != nil {
			return Message{}, fmt.Errorf("%w: inside a header", ErrTruncated)
		}
		h.ParseHeaderExt(r.hdr[HeaderSize:])
	}
	if cap(r.buf) < int(h.Length) {
		r.buf = make([]byte, h.Length, max(int(h.Length), 2*cap(r.buf)))
	}
	p := r.buf[:h.Length]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Message{}, fmt.Errorf("%w: %s payload of %d bytes", ErrTruncated, h.Type, h.Length)
		}
		return Message{}, err
	}
	m := Message{Header: h, Payload: p}
	if h.Version == Version2 && h.Type == TypeHello {
		if err := r.checkAlternate(m); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

// checkAlternate refuses a video HELLO whose alternate_of names no video track described by an
// earlier HELLO, or one that is itself an alternate: renditions hang off one main track, so a
// consumer never has to resolve a chain or a forward reference. Checked here, where the
// connection's HELLOs pass in order, so that every reader of the protocol gets it.
func (r *Reader) checkAlternate(m Message) error {
	h, err := ParseHello(m)
	if err != nil || h.Kind != KindVideo {
		return nil // not a video HELLO that parses: whoever parses it says what is wrong
	}
	if h.AlternateOf != 0 {
		alt, known := r.videos[h.AlternateOf]
		switch {
		case h.AlternateOf == h.Track:
			return fmt.Errorf("%w (%w): track %d names itself as the track it is an alternate of",
				ErrBadAlternate, ErrBadHello, h.Track)
		case !known:
			return fmt.Errorf("%w (%w): track %d is an alternate of track %d, which no earlier HELLO describes as video",
				ErrBadAlternate, ErrBadHello, h.Track, h.AlternateOf)
		case alt:
			return fmt.Errorf("%w (%w): track %d is an alternate of track %d, itself an alternate (name the main track)",
				ErrBadAlternate, ErrBadHello, h.Track, h.AlternateOf)
		}
	}
	if r.videos == nil {
		r.videos = make(map[uint8]bool)
	}
	r.videos[h.Track] = h.AlternateOf != 0
	return nil
}

// Frame is a decoded FRAME message. Data aliases the message payload.
type Frame struct {
	Track    uint8 // 1 in version 1
	Seq      uint32
	Keyframe bool
	Capture  int64 // capture time (of the first sample, for audio), ns since the Unix epoch
	Encoded  int64 // encoder return time, ns; 0 if the producer does not know
	Data     []byte
}

// ParseFrame checks a FRAME message and splits its payload.
func ParseFrame(m Message) (Frame, error) {
	if m.Type != TypeFrame {
		return Frame{}, fmt.Errorf("%w: %s", ErrUnexpectedType, m.Type)
	}
	if len(m.Payload) <= EncodedTimeSize {
		return Frame{}, fmt.Errorf("%w: %d-byte payload holds no frame", ErrBadFrame, len(m.Payload))
	}
	if m.Timestamp <= 0 {
		return Frame{}, fmt.Errorf("%w: no capture timestamp", ErrBadFrame)
	}
	track := m.Track
	if m.Version != Version2 {
		track = 1
	}
	return Frame{
		Track:    track,
		Seq:      m.Seq,
		Keyframe: m.Flags&FlagKeyframe != 0,
		Capture:  m.Timestamp,
		Encoded:  int64(binary.LittleEndian.Uint64(m.Payload)),
		Data:     m.Payload[EncodedTimeSize:],
	}, nil
}

// Control is a decoded device → producer message.
type Control struct {
	Type    Type
	Track   uint8
	Bitrate uint32 // TypeBitrate
	FPSNum  uint16 // TypeFPS
	FPSDen  uint16
	Viewers uint32 // TypeViewers
	Resume  bool   // TypeSinkFrame
	Data    []byte // TypeSinkFrame: aliases the message payload
}

// ParseControl decodes a device → producer message. Unknown types are returned as they are
// (producers ignore them), with no error.
func ParseControl(m Message) (Control, error) {
	c := Control{Type: m.Type, Track: m.Track}
	need := 0
	switch m.Type {
	case TypeBitrate, TypeFPS, TypeViewers:
		need = 4
	case TypeSinkFrame:
		need = 1
	}
	if len(m.Payload) < need {
		return Control{}, fmt.Errorf("%w: %s needs %d payload bytes, got %d", ErrBadControl, m.Type, need, len(m.Payload))
	}
	switch m.Type {
	case TypeBitrate:
		c.Bitrate = binary.LittleEndian.Uint32(m.Payload)
		if c.Bitrate == 0 {
			return Control{}, fmt.Errorf("%w: bitrate 0", ErrBadControl)
		}
	case TypeFPS:
		c.FPSNum = binary.LittleEndian.Uint16(m.Payload)
		c.FPSDen = binary.LittleEndian.Uint16(m.Payload[2:])
		if c.FPSNum == 0 || c.FPSDen == 0 {
			return Control{}, fmt.Errorf("%w: frame rate %d/%d", ErrBadControl, c.FPSNum, c.FPSDen)
		}
	case TypeViewers:
		c.Viewers = binary.LittleEndian.Uint32(m.Payload)
	case TypeSinkFrame:
		c.Resume = m.Flags&FlagResume != 0
		c.Data = m.Payload
	}
	return c, nil
}

// Writer writes framed messages of one protocol version; safe for concurrent use, with one
// sequence counter per direction as docs/ipc.md asks.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	version uint8
	seq     uint32
	hdr     [HeaderSizeV2]byte
	bufs    net.Buffers
}

// NewWriter writes framed messages of version (Version1 or Version2) to w.
func NewWriter(w io.Writer, version uint8) *Writer {
	return &Writer{w: w, version: version, bufs: make(net.Buffers, 0, 4)}
}

// Write sends one message whose payload is the concatenation of parts, with h.Seq as given.
func (w *Writer) Write(h Header, parts ...[]byte) error { return w.write(h, false, parts...) }

// next sends a message numbered by the writer's own counter.
func (w *Writer) next(t Type, track uint8, parts ...[]byte) error {
	return w.write(Header{Type: t, Track: track}, true, parts...)
}

func (w *Writer) write(h Header, counted bool, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h.Version = w.version
	h.Length = uint32(n)
	if counted {
		h.Seq = w.seq
		w.seq++
	}
	h.Put(w.hdr[:])
	// WriteTo consumes the slice it is given: hand it a copy of the reused header so the
	// steady state allocates nothing.
	bufs := append(w.bufs[:0], w.hdr[:h.Size()])
	bufs = append(bufs, parts...)
	w.bufs = bufs[:0]
	_, err := bufs.WriteTo(w.w)
	return err
}

// RequestKeyframe asks the producer for an IDR on a video track.
func (w *Writer) RequestKeyframe(track uint8) error { return w.next(TypeKeyframe, track) }

// SetBitrate asks the producer for a new target bitrate in bit/s.
func (w *Writer) SetBitrate(track uint8, bps uint32) error {
	return w.next(TypeBitrate, track, binary.LittleEndian.AppendUint32(nil, bps))
}

// SetFPS asks the producer for a new frame rate.
func (w *Writer) SetFPS(track uint8, num, den uint16) error {
	p := binary.LittleEndian.AppendUint16(nil, num)
	return w.next(TypeFPS, track, binary.LittleEndian.AppendUint16(p, den))
}

// SetViewers tells the producer how many readers a track has (version 1: viewers).
func (w *Writer) SetViewers(track uint8, n uint32) error {
	return w.next(TypeViewers, track, binary.LittleEndian.AppendUint32(nil, n))
}

// WriteSinkFrame sends a frame for a sink track (talk-back audio): received is when the device
// got it, resume marks the first after a gap.
func (w *Writer) WriteSinkFrame(track uint8, received int64, resume bool, data []byte) error {
	var flags uint16
	if resume {
		flags = FlagResume
	}
	return w.write(Header{Type: TypeSinkFrame, Track: track, Flags: flags, Timestamp: received}, true, data)
}

// WriteHello sends a track's HELLO (used by Go producers and tests); in version 2 its
// AlternateOf goes in the header (a video track's).
func (w *Writer) WriteHello(h Hello) error {
	hdr := Header{Type: TypeHello, Track: h.Track, Flags: h.flags()}
	if h.Kind == KindVideo {
		hdr.AlternateOf = h.AlternateOf
	}
	return w.write(hdr, true, h.Marshal())
}

// WriteBye says the producer is stopping on purpose.
func (w *Writer) WriteBye() error { return w.next(TypeBye, 0) }

// WriteFrame sends one frame (used by Go producers and tests).
func (w *Writer) WriteFrame(f Frame) error {
	var flags uint16
	if f.Keyframe {
		flags = FlagKeyframe
	}
	var enc [EncodedTimeSize]byte
	binary.LittleEndian.PutUint64(enc[:], uint64(f.Encoded))
	return w.Write(Header{Type: TypeFrame, Flags: flags, Timestamp: f.Capture, Seq: f.Seq, Track: f.Track}, enc[:], f.Data)
}
