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
	// HeaderSize is version 1's header; version 2 adds HeaderExtSize bytes (the track id).
	HeaderSize    = 24
	HeaderExtSize = 4
	HeaderSizeV2  = HeaderSize + HeaderExtSize
	// Version1 carries one H.264 video stream; Version2 carries tracks.
	Version1 = 1
	Version2 = 2
	// MaxPayload bounds one message so a broken producer cannot make the device allocate at will.
	MaxPayload = 8 << 20
	// HelloMinSize is the fixed part of a HELLO payload; the producer's name may follow.
	HelloMinSize = 20
	// MaxNameLen bounds the producer name carried in HELLO.
	MaxNameLen = 64
	// EncodedTimeSize prefixes every FRAME payload with the encoder's return time.
	EncodedTimeSize = 8
	// MaxTracks bounds the HELLOs of one version 2 connection.
	MaxTracks = 16
)

// Magic opens every framed message.
var Magic = [4]byte{'P', '2', 'P', 'C'}

// Type is a message type.
type Type uint8

// Producer → device.
const (
	TypeHello Type = 0x01
	// TypeFrame is one encoded frame of a track (version 1 calls it ACCESS_UNIT).
	TypeFrame Type = 0x02
	TypeBye   Type = 0x03
)

// Device → producer.
const (
	TypeKeyframe  Type = 0x81
	TypeBitrate   Type = 0x82
	TypeFPS       Type = 0x83
	TypeViewers   Type = 0x84
	TypeSinkFrame Type = 0x85
	// TypeInput is reserved for input events (remote desktop).
	TypeInput Type = 0x86
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeFrame:
		return "FRAME"
	case TypeBye:
		return "BYE"
	case TypeEvent:
		return "EVENT"
	case TypeKeyframe:
		return "KEYFRAME"
	case TypeBitrate:
		return "BITRATE"
	case TypeFPS:
		return "FPS"
	case TypeViewers:
		return "VIEWERS"
	case TypeSinkFrame:
		return "SINK_FRAME"
	case TypeInput:
		return "INPUT"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Flags, per message type.
const (
	// FlagKeyframe marks a video FRAME holding an IDR picture.
	FlagKeyframe uint16 = 1 << 0
	// FlagLast marks a producer's last HELLO (version 2): its tracks are complete.
	FlagLast uint16 = 1 << 0
	// FlagSink marks a HELLO for a track the producer plays (talk-back) instead of sends.
	FlagSink uint16 = 1 << 1
	// FlagResume marks the first SINK_FRAME after a gap.
	FlagResume uint16 = 1 << 0
)

// Capabilities a producer announces in HELLO.
const (
	CapKeyframe uint16 = 1 << 0
	CapBitrate  uint16 = 1 << 1
	CapFPS      uint16 = 1 << 2
)

// Track kinds in HELLO.
const (
	KindVideo = 1
	KindAudio = 2
)

// Codecs in HELLO.
const (
	CodecH264 = 1
	CodecH265 = 2 // reserved: refused until the device can send it
	CodecOpus = 3
	CodecPCMA = 4
	CodecPCMU = 5
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
	ErrBadFrame       = errors.New("ipc: malformed FRAME")
	ErrBadControl     = errors.New("ipc: malformed control message")
	ErrUnexpectedType = errors.New("ipc: unexpected message type")
	ErrBadTrack       = errors.New("ipc: bad track")
	// ErrBadAlternate: a video HELLO's alternate_of names no earlier video track, or one that
	// is an alternate itself. It is reported wrapped together with ErrBadHello.
	ErrBadAlternate = errors.New("ipc: bad alternate_of")
)

// Header is the header of every framed message: 24 bytes in version 1, 28 in version 2.
type Header struct {
	Version   uint8 // 0 is taken as Version1 when writing
	Type      Type
	Flags     uint16
	Timestamp int64 // ns since the Unix epoch, CLOCK_REALTIME; 0 when not meaningful
	Seq       uint32
	Length    uint32
	Track     uint8 // version 2: the track the message is about; 0 for the connection
	// AlternateOf is version 2's byte 25: in a video HELLO, the track id of the main rendition
	// this track is an alternate of (0: none); 0 in every other message.
	AlternateOf uint8
}

// Size is the header's length on the wire.
func (h Header) Size() int {
	if h.Version == Version2 {
		return HeaderSizeV2
	}
	return HeaderSize
}

// Put writes h into b[:h.Size()].
func (h Header) Put(b []byte) {
	_ = b[h.Size()-1]
	v := h.Version
	if v == 0 {
		v = Version1
	}
	copy(b[0:4], Magic[:])
	b[4] = v
	b[5] = byte(h.Type)
	binary.LittleEndian.PutUint16(b[6:], h.Flags)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.Timestamp))
	binary.LittleEndian.PutUint32(b[16:], h.Seq)
	binary.LittleEndian.PutUint32(b[20:], h.Length)
	if v == Version2 {
		b[24], b[25], b[26], b[27] = h.Track, h.AlternateOf, 0, 0
	}
}

// ParseHeader decodes and checks the first HeaderSize bytes of a header, including the
// payload limit. For version 2 the caller reads HeaderExtSize more bytes (ParseHeaderExt).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	if [4]byte(b[0:4]) != Magic {
		return Header{}, ErrBadMagic
	}
	if b[4] != Version1 && b[4] != Version2 {
		return Header{}, fmt.Errorf("%w: %d", ErrVersion, b[4])
	}
	h := Header{
		Version:   b[4],
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

// ParseHeaderExt reads version 2's extension: the track id and alternate_of (the reserved
// bytes after them are ignored).
func (h *Header) ParseHeaderExt(b []byte) { h.Track, h.AlternateOf = b[0], b[1] }

// Hello describes one track (version 1: the producer's one video stream).
type Hello struct {
	Kind  uint8
	Codec uint8
	// Video.
	Width  uint16
	Height uint16
	FPSNum uint16
	FPSDen uint16
	GOP    uint32
	// Audio.
	Channels      uint8
	SampleRate    uint32 // Hz
	FrameDuration uint32 // µs
	// Both.
	Capabilities uint16
	Bitrate      uint32
	Name         string
	// From the version 2 header: the track id, and its LAST and SINK flags.
	Track uint8
	Last  bool
	Sink  bool
	// AlternateOf (version 2, video only) is the track id of the main rendition this track is
	// an alternate of: the same pictures encoded again, smaller. 0: not an alternate.
	AlternateOf uint8
}

// FPS returns the frame rate as a float.
func (h Hello) FPS() float64 { return float64(h.FPSNum) / float64(h.FPSDen) }

// Can reports whether the producer announced capability c.
func (h Hello) Can(c uint16) bool { return h.Capabilities&c != 0 }

// ParseHello decodes and validates a HELLO message, taking the track and flags from its
// header (version 2).
func ParseHello(m Message) (Hello, error) {
	h, err := ParseHelloPayload(m.Payload)
	if err != nil {
		return Hello{}, err
	}
	if m.Version == Version2 {
		if m.Track == 0 {
			return Hello{}, fmt.Errorf("%w: HELLO for track 0", ErrBadTrack)
		}
		h.Track, h.Last, h.Sink = m.Track, m.Flags&FlagLast != 0, m.Flags&FlagSink != 0
		if h.Sink && h.Kind != KindAudio {
			return Hello{}, fmt.Errorf("%w: only audio tracks can be sinks", ErrBadHello)
		}
		// Byte 25 is alternate_of only in a video HELLO; elsewhere it is reserved (ignored).
		// Whether it names a fitting track is for the Reader to check: that takes the HELLOs
		// before it.
		if h.Kind == KindVideo {
			h.AlternateOf = m.AlternateOf
		}
	} else {
		if h.Kind != KindVideo {
			return Hello{}, fmt.Errorf("%w: version 1 carries video only", ErrBadHello)
		}
		h.Track, h.Last = 1, true
	}
	return h, nil
}

// ParseHelloPayload decodes and validates a HELLO payload.
func ParseHelloPayload(p []byte) (Hello, error) {
	if len(p) < HelloMinSize {
		return Hello{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadHello, len(p), HelloMinSize)
	}
	h := Hello{Kind: p[0], Codec: p[1],
		Capabilities: binary.LittleEndian.Uint16(p[10:]),
		Bitrate:      binary.LittleEndian.Uint32(p[12:]),
	}
	name := p[HelloMinSize:]
	if len(name) > MaxNameLen || !utf8.Valid(name) {
		return Hello{}, fmt.Errorf("%w: name is not UTF-8 of at most %d bytes", ErrBadHello, MaxNameLen)
	}
	h.Name = string(name)
	switch h.Kind {
	case KindVideo:
		h.Width = binary.LittleEndian.Uint16(p[2:])
		h.Height = binary.LittleEndian.Uint16(p[4:])
		h.FPSNum = binary.LittleEndian.Uint16(p[6:])
		h.FPSDen = binary.LittleEndian.Uint16(p[8:])
		h.GOP = binary.LittleEndian.Uint32(p[16:])
		switch {
		case h.Codec == CodecH265:
			return Hello{}, fmt.Errorf("%w: H.265 is not supported yet", ErrBadHello)
		case h.Codec != CodecH264:
			return Hello{}, fmt.Errorf("%w: codec %d is not a video codec", ErrBadHello, h.Codec)
		case h.Width == 0 || h.Height == 0:
			return Hello{}, fmt.Errorf("%w: size %dx%d", ErrBadHello, h.Width, h.Height)
		case h.FPSNum == 0 || h.FPSDen == 0:
			return Hello{}, fmt.Errorf("%w: frame rate %d/%d", ErrBadHello, h.FPSNum, h.FPSDen)
		}
	case KindAudio:
		h.Channels = p[2]
		h.SampleRate = binary.LittleEndian.Uint32(p[4:])
		h.FrameDuration = binary.LittleEndian.Uint32(p[16:])
		if err := h.checkAudio(); err != nil {
			return Hello{}, err
		}
	default:
		return Hello{}, fmt.Errorf("%w: track kind %d is neither video nor audio", ErrBadHello, h.Kind)
	}
	return h, nil
}

func (h Hello) checkAudio() error {
	switch h.Codec {
	case CodecOpus:
		switch {
		case h.SampleRate != 48000:
			return fmt.Errorf("%w: Opus at %d Hz (RTP carries Opus at 48000)", ErrBadHello, h.SampleRate)
		case h.Channels < 1 || h.Channels > 2:
			return fmt.Errorf("%w: Opus with %d channels", ErrBadHello, h.Channels)
		case h.FrameDuration < 2500 || h.FrameDuration > 120000:
			return fmt.Errorf("%w: Opus frames of %d µs", ErrBadHello, h.FrameDuration)
		}
	case CodecPCMA, CodecPCMU:
		switch {
		case h.SampleRate != 8000:
			return fmt.Errorf("%w: G.711 at %d Hz", ErrBadHello, h.SampleRate)
		case h.Channels != 1:
			return fmt.Errorf("%w: G.711 with %d channels", ErrBadHello, h.Channels)
		case h.FrameDuration < 10000 || h.FrameDuration > 60000:
			return fmt.Errorf("%w: G.711 frames of %d µs", ErrBadHello, h.FrameDuration)
		}
	default:
		return fmt.Errorf("%w: codec %d is not an audio codec", ErrBadHello, h.Codec)
	}
	return nil
}

// Marshal encodes h as a HELLO payload.
func (h Hello) Marshal() []byte {
	p := make([]byte, HelloMinSize, HelloMinSize+len(h.Name))
	p[0], p[1] = h.Kind, h.Codec
	if h.Kind == KindAudio {
		p[2] = h.Channels
		binary.LittleEndian.PutUint32(p[4:], h.SampleRate)
		binary.LittleEndian.PutUint32(p[16:], h.FrameDuration)
	} else {
		binary.LittleEndian.PutUint16(p[2:], h.Width)
		binary.LittleEndian.PutUint16(p[4:], h.Height)
		binary.LittleEndian.PutUint16(p[6:], h.FPSNum)
		binary.LittleEndian.PutUint16(p[8:], h.FPSDen)
		binary.LittleEndian.PutUint32(p[16:], h.GOP)
	}
	binary.LittleEndian.PutUint16(p[10:], h.Capabilities)
	binary.LittleEndian.PutUint32(p[12:], h.Bitrate)
	return append(p, h.Name...)
}

// Flags returns the version 2 header flags of h's HELLO.
func (h Hello) flags() uint16 {
	var f uint16
	if h.Last {
		f |= FlagLast
	}
	if h.Sink {
		f |= FlagSink
	}
	return f
}
