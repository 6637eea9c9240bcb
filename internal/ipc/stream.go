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

// Reader decodes framed messages, reusing one buffer so steady state does not allocate.
type Reader struct {
	r   io.Reader
	hdr [HeaderSize]byte
	buf []byte
}

// NewReader reads framed messages from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next returns the next message. It returns io.EOF only at a message boundary; a stream that
// ends inside a message returns ErrTruncated.
func (r *Reader) Next() (Message, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Message{}, fmt.Errorf("%w: inside a header", ErrTruncated)
		}
		return Message{}, err
	}
	h, err := ParseHeader(r.hdr[:])
	if err != nil {
		return Message{}, err
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
	return Message{Header: h, Payload: p}, nil
}

// AccessUnit is a decoded ACCESS_UNIT message. Data aliases the message payload.
type AccessUnit struct {
	Seq      uint32
	Keyframe bool
	Capture  int64 // capture time, ns since the Unix epoch
	Encoded  int64 // encoder return time, ns; 0 if the producer does not know
	Data     []byte
}

// ParseAccessUnit checks an ACCESS_UNIT message and splits its payload.
func ParseAccessUnit(m Message) (AccessUnit, error) {
	if m.Type != TypeAccessUnit {
		return AccessUnit{}, fmt.Errorf("%w: %s", ErrUnexpectedType, m.Type)
	}
	if len(m.Payload) <= EncodedTimeSize {
		return AccessUnit{}, fmt.Errorf("%w: %d-byte payload holds no picture", ErrBadAccessUnit, len(m.Payload))
	}
	if m.Timestamp <= 0 {
		return AccessUnit{}, fmt.Errorf("%w: no capture timestamp", ErrBadAccessUnit)
	}
	return AccessUnit{
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
	Bitrate uint32 // TypeBitrate
	FPSNum  uint16 // TypeFPS
	FPSDen  uint16
	Viewers uint32 // TypeViewers
}

// ParseControl decodes a device → producer message. Unknown types are returned as they are
// (producers ignore them), with no error.
func ParseControl(m Message) (Control, error) {
	c := Control{Type: m.Type}
	need := 0
	switch m.Type {
	case TypeBitrate, TypeFPS, TypeViewers:
		need = 4
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
	}
	return c, nil
}

// Writer writes framed messages; safe for concurrent use, with one sequence counter per
// direction as docs/ipc.md asks.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	seq uint32
	hdr [HeaderSize]byte
}

// NewWriter writes framed messages to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends one message whose payload is the concatenation of parts, with h.Seq as given.
func (w *Writer) Write(h Header, parts ...[]byte) error { return w.write(h, false, parts) }

// next sends a message numbered by the writer's own counter.
func (w *Writer) next(t Type, parts ...[]byte) error { return w.write(Header{Type: t}, true, parts) }

func (w *Writer) write(h Header, counted bool, parts [][]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h.Length = uint32(n)
	if counted {
		h.Seq = w.seq
		w.seq++
	}
	h.Put(w.hdr[:])
	bufs := make(net.Buffers, 0, 1+len(parts))
	bufs = append(bufs, w.hdr[:])
	bufs = append(bufs, parts...)
	_, err := bufs.WriteTo(w.w)
	return err
}

// RequestKeyframe asks the producer for an IDR.
func (w *Writer) RequestKeyframe() error { return w.next(TypeKeyframe) }

// SetBitrate asks the producer for a new target bitrate in bit/s.
func (w *Writer) SetBitrate(bps uint32) error {
	return w.next(TypeBitrate, binary.LittleEndian.AppendUint32(nil, bps))
}

// SetFPS asks the producer for a new frame rate.
func (w *Writer) SetFPS(num, den uint16) error {
	p := binary.LittleEndian.AppendUint16(nil, num)
	return w.next(TypeFPS, binary.LittleEndian.AppendUint16(p, den))
}

// SetViewers tells the producer how many viewers watch.
func (w *Writer) SetViewers(n uint32) error {
	return w.next(TypeViewers, binary.LittleEndian.AppendUint32(nil, n))
}

// WriteHello sends HELLO (used by Go producers and tests).
func (w *Writer) WriteHello(h Hello) error { return w.next(TypeHello, h.Marshal()) }

// WriteAccessUnit sends one access unit (used by Go producers and tests).
func (w *Writer) WriteAccessUnit(au AccessUnit) error {
	var flags uint16
	if au.Keyframe {
		flags = FlagKeyframe
	}
	var enc [EncodedTimeSize]byte
	binary.LittleEndian.PutUint64(enc[:], uint64(au.Encoded))
	return w.Write(Header{Type: TypeAccessUnit, Flags: flags, Timestamp: au.Capture, Seq: au.Seq}, enc[:], au.Data)
}
