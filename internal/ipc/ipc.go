// Package ipc speaks the capture socket protocol between a producer (p2pcast-capture, ffmpeg,
// GStreamer) and the device: the framed, versioned protocol of docs/ipc.md in both directions,
// and detection of plain Annex-B streams. It takes no config and logs nothing; callers decide.
package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Wire constants from docs/ipc.md; the C side defines the same in capture/ipc.h.
const (
	HeaderSize = 24
	Version    = 1
	// MaxPayload bounds one message so a broken producer cannot make the device allocate at will.
	MaxPayload = 8 << 20
	// HelloMinSize is the fixed part of a HELLO payload; the producer's name may follow.
	HelloMinSize = 20
	// MaxNameLen bounds the producer name carried in HELLO.
	MaxNameLen = 64
	// EncodedTimeSize prefixes every ACCESS_UNIT payload with the encoder's return time.
	EncodedTimeSize = 8
)

// Magic opens every framed message.
var Magic = [4]byte{'P', '2', 'P', 'C'}

// Type is a message type.
type Type uint8

// Producer → device.
const (
	TypeHello      Type = 0x01
	TypeAccessUnit Type = 0x02
	TypeBye        Type = 0x03
)

// Device → producer.
const (
	TypeKeyframe Type = 0x81
	TypeBitrate  Type = 0x82
	TypeFPS      Type = 0x83
	TypeViewers  Type = 0x84
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeAccessUnit:
		return "ACCESS_UNIT"
	case TypeBye:
		return "BYE"
	case TypeKeyframe:
		return "KEYFRAME"
	case TypeBitrate:
		return "BITRATE"
	case TypeFPS:
		return "FPS"
	case TypeViewers:
		return "VIEWERS"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// FlagKeyframe marks an ACCESS_UNIT holding an IDR picture.
const FlagKeyframe uint16 = 1 << 0

// Capabilities a producer announces in HELLO.
const (
	CapKeyframe uint16 = 1 << 0
	CapBitrate  uint16 = 1 << 1
	CapFPS      uint16 = 1 << 2
)

// Stream kinds and codecs in HELLO.
const (
	KindVideo = 1
	CodecH264 = 1
)

// Errors a reader reports; each closes the producer's connection.
var (
	ErrBadMagic       = errors.New("ipc: bad magic (not a p2pcast framed stream)")
	ErrVersion        = errors.New("ipc: unsupported protocol version")
	ErrTooLarge       = errors.New("ipc: payload larger than the limit")
	ErrTruncated      = errors.New("ipc: message truncated")
	ErrUnknownStream  = errors.New("ipc: stream is neither framed nor Annex-B")
	ErrBadHello       = errors.New("ipc: malformed HELLO")
	ErrExpectedHello  = errors.New("ipc: first message is not HELLO")
	ErrBadAccessUnit  = errors.New("ipc: malformed ACCESS_UNIT")
	ErrBadControl     = errors.New("ipc: malformed control message")
	ErrUnexpectedType = errors.New("ipc: unexpected message type")
)

// Header is the 24-byte header of every framed message.
type Header struct {
	Type      Type
	Flags     uint16
	Timestamp int64 // ns since the Unix epoch, CLOCK_REALTIME; 0 when not meaningful
	Seq       uint32
	Length    uint32
}

// Put writes h into b[:HeaderSize].
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	copy(b[0:4], Magic[:])
	b[4] = Version
	b[5] = byte(h.Type)
	binary.LittleEndian.PutUint16(b[6:], h.Flags)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.Timestamp))
	binary.LittleEndian.PutUint32(b[16:], h.Seq)
	binary.LittleEndian.PutUint32(b[20:], h.Length)
}

// ParseHeader decodes and checks a header, including the payload limit.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	if [4]byte(b[0:4]) != Magic {
		return Header{}, ErrBadMagic
	}
	if b[4] != Version {
		return Header{}, fmt.Errorf("%w: %d", ErrVersion, b[4])
	}
	h := Header{
		Type:      Type(b[5]),
		Flags:     binary.LittleEndian.Uint16(b[6:]),
		Timestamp: int64(binary.LittleEndian.Uint64(b[8:])),
		Seq:       binary.LittleEndian.Uint32(b[16:]),
		Length:    binary.LittleEndian.Uint32(b[20:]),
	}
	if h.Length > MaxPayload {
		return Header{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, h.Length, MaxPayload)
	}
	return h, nil
}

// Hello describes a producer's stream.
type Hello struct {
	Kind         uint8
	Codec        uint8
	Width        uint16
	Height       uint16
	FPSNum       uint16
	FPSDen       uint16
	Capabilities uint16
	Bitrate      uint32
	GOP          uint32
	Name         string
}

// FPS returns the frame rate as a float.
func (h Hello) FPS() float64 { return float64(h.FPSNum) / float64(h.FPSDen) }

// Can reports whether the producer announced capability c.
func (h Hello) Can(c uint16) bool { return h.Capabilities&c != 0 }

// ParseHello decodes and validates a HELLO payload.
func ParseHello(p []byte) (Hello, error) {
	if len(p) < HelloMinSize {
		return Hello{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadHello, len(p), HelloMinSize)
	}
	h := Hello{
		Kind:         p[0],
		Codec:        p[1],
		Width:        binary.LittleEndian.Uint16(p[2:]),
		Height:       binary.LittleEndian.Uint16(p[4:]),
		FPSNum:       binary.LittleEndian.Uint16(p[6:]),
		FPSDen:       binary.LittleEndian.Uint16(p[8:]),
		Capabilities: binary.LittleEndian.Uint16(p[10:]),
		Bitrate:      binary.LittleEndian.Uint32(p[12:]),
		GOP:          binary.LittleEndian.Uint32(p[16:]),
	}
	name := p[HelloMinSize:]
	switch {
	case h.Kind != KindVideo:
		return Hello{}, fmt.Errorf("%w: stream kind %d is not video", ErrBadHello, h.Kind)
	case h.Codec != CodecH264:
		return Hello{}, fmt.Errorf("%w: codec %d is not H.264", ErrBadHello, h.Codec)
	case h.Width == 0 || h.Height == 0:
		return Hello{}, fmt.Errorf("%w: size %dx%d", ErrBadHello, h.Width, h.Height)
	case h.FPSNum == 0 || h.FPSDen == 0:
		return Hello{}, fmt.Errorf("%w: frame rate %d/%d", ErrBadHello, h.FPSNum, h.FPSDen)
	case len(name) > MaxNameLen || !utf8.Valid(name):
		return Hello{}, fmt.Errorf("%w: name is not UTF-8 of at most %d bytes", ErrBadHello, MaxNameLen)
	}
	h.Name = string(name)
	return h, nil
}

// Marshal encodes h as a HELLO payload.
func (h Hello) Marshal() []byte {
	p := make([]byte, HelloMinSize, HelloMinSize+len(h.Name))
	p[0], p[1] = h.Kind, h.Codec
	binary.LittleEndian.PutUint16(p[2:], h.Width)
	binary.LittleEndian.PutUint16(p[4:], h.Height)
	binary.LittleEndian.PutUint16(p[6:], h.FPSNum)
	binary.LittleEndian.PutUint16(p[8:], h.FPSDen)
	binary.LittleEndian.PutUint16(p[10:], h.Capabilities)
	binary.LittleEndian.PutUint32(p[12:], h.Bitrate)
	binary.LittleEndian.PutUint32(p[16:], h.GOP)
	return append(p, h.Name...)
}
