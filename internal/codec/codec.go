// Package codec knows, for every codec the device carries, how it is named and described in SDP
// and how one encoded frame is cut into RTP payloads. A codec is one registration here
// (registry.go); the media model (internal/stream), the sessions (internal/peer) and the
// ingest look codecs up by name and never special-case one.
package codec

import (
	"fmt"
	"strings"
)

// Kind is a track's media kind.
type Kind uint8

// Kinds.
const (
	Video Kind = iota + 1
	Audio
)

func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText writes the kind as "video" or "audio".
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads "video" or "audio".
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "video":
		*k = Video
	case "audio":
		*k = Audio
	default:
		return fmt.Errorf("codec: unknown kind %q", b)
	}
	return nil
}

// Feedback is one RTCP feedback type a codec's receivers may send (a=rtcp-fb).
type Feedback struct{ Type, Parameter string }

// Params are what a track adds to its codec's SDP description.
type Params struct {
	// ProfileLevelID is H.264's profile-level-id as found in the stream's SPS ("42c01f");
	// empty before the first SPS.
	ProfileLevelID string
	// Channels of an audio track.
	Channels int
}

// Codec describes one codec for RTP and SDP.
type Codec struct {
	// Name is how tracks and logs name the codec: "H264", "opus", "PCMA", "PCMU".
	Name     string
	Kind     Kind
	MimeType string // "video/H264", as Pion and SDP spell it
	// ClockRate of its RTP timestamps, Hz.
	ClockRate uint32
	// SDPChannels is the channel count in a=rtpmap (Opus is always 2 there, RFC 7587).
	SDPChannels uint16
	// PayloadType is the one the device offers (static for G.711). A video codec's next
	// number is its retransmissions' (RFC 4588), so video codecs take every other one.
	PayloadType uint8
	Feedback    []Feedback
	// Fmtp returns the a=fmtp parameters that describe a track with p.
	Fmtp func(p Params) string
	// Accepts reports whether a receiver's negotiated fmtp can carry a track with p (H.264:
	// packetization mode and profile); nil accepts any.
	Accepts func(fmtp string, p Params) bool
	// Packetize cuts one frame into payloads of at most mtu bytes, replacing what out held.
	Packetize func(frame []byte, mtu int, out *Payloads)
	// Keyframe reports whether a frame starts a picture a decoder can begin at (video); nil
	// for codecs where every frame does (audio).
	Keyframe func(frame []byte) bool
}

// SameMime reports whether a negotiated MIME type is this codec's.
func (c *Codec) SameMime(mime string) bool { return strings.EqualFold(mime, c.MimeType) }

// fmtpParam returns one parameter of an a=fmtp line ("" if absent).
func fmtpParam(fmtp, key string) string {
	for p := range strings.SplitSeq(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
