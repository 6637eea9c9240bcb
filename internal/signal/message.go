// Package signal negotiates viewer sessions over HTTP: WHEP (draft-ietf-wish-whep) and a
// WebSocket protocol with trickle ICE in both directions (docs/signaling.md). Both are thin
// adapters onto one Session interface, so a session behaves the same whichever path made it.
package signal

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// MaxMessage bounds one signaling message (WebSocket frame or HTTP body).
const MaxMessage = 64 << 10

// maxCandidate bounds one ICE candidate line; real ones are under 200 bytes.
const maxCandidate = 1024

// ErrBadMessage wraps every reason a signaling message is refused.
var ErrBadMessage = errors.New("signal: bad message")

// Inbound is a parsed viewer → device message.
type Inbound struct {
	Type string
	SDP  string
	// Token is an auth message's bearer token ("" if none).
	Token string
	// SourceID is the device source a watch or offer asks for ("": the default).
	SourceID string
	// Candidate is nil for end-of-candidates.
	Candidate *webrtc.ICECandidateInit
}

type wireInbound struct {
	Type      string          `json:"type"`
	SDP       string          `json:"sdp"`
	Token     string          `json:"token"`
	Source    string          `json:"source"`
	Candidate json.RawMessage `json:"candidate"`
}

// ParseInbound decodes and validates one viewer → device message. Unknown fields are ignored
// so newer viewers keep working; unknown types are refused.
func ParseInbound(data []byte) (Inbound, error) {
	if len(data) > MaxMessage {
		return Inbound{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadMessage, len(data), MaxMessage)
	}
	var w wireInbound
	if err := json.Unmarshal(data, &w); err != nil {
		return Inbound{}, fmt.Errorf("%w: not a JSON object: %v", ErrBadMessage, err)
	}
	in := Inbound{Type: w.Type, SDP: w.SDP}
	if w.Source != "" && (w.Type == wire.TypeWatch || w.Type == wire.TypeOffer) {
		if !ValidSourceID(w.Source) {
			return Inbound{}, fmt.Errorf("%w: source %q: want 1 to 32 of a-z, 0-9 and -", ErrBadMessage, truncate(w.Source, 40))
		}
		in.SourceID = w.Source
	}
	switch w.Type {
	case wire.TypeWatch, wire.TypeBye, wire.TypeRestart:
	case wire.TypeAuth:
		in.Token = w.Token
	case wire.TypeOffer, wire.TypeAnswer:
		if w.SDP == "" {
			return Inbound{}, fmt.Errorf("%w: %s without sdp", ErrBadMessage, w.Type)
		}
	case wire.TypeCandidate:
		if len(w.Candidate) == 0 {
			return Inbound{}, fmt.Errorf("%w: candidate field missing (null ends candidates)", ErrBadMessage)
		}
		if string(w.Candidate) == "null" {
			break
		}
		var c webrtc.ICECandidateInit
		if err := json.Unmarshal(w.Candidate, &c); err != nil {
			return Inbound{}, fmt.Errorf("%w: candidate is not an RTCIceCandidateInit: %v", ErrBadMessage, err)
		}
		if len(c.Candidate) > maxCandidate {
			return Inbound{}, fmt.Errorf("%w: candidate of %d bytes", ErrBadMessage, len(c.Candidate))
		}
		in.Candidate = &c
	case "":
		return Inbound{}, fmt.Errorf("%w: no type", ErrBadMessage)
	default:
		return Inbound{}, fmt.Errorf("%w: unknown type %q", ErrBadMessage, w.Type)
	}
	return in, nil
}

// Outbound messages, device → viewer.
type (
	helloMsg struct {
		Type       string             `json:"type"`
		Version    int                `json:"version"`
		ICEServers []webrtc.ICEServer `json:"iceServers"`
		Stream     *stream.Info       `json:"stream,omitempty"`
		// Sources lists a multi-source device's sources, the default first (absent with one).
		Sources []SourceInfo `json:"sources,omitempty"`
	}
	sdpMsg struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}
	candidateMsg struct {
		Type      string                   `json:"type"`
		Candidate *webrtc.ICECandidateInit `json:"candidate"` // null: end of candidates
	}
	errorMsg struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		last    bool   // the socket closes once this is out
	}
	byeMsg struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	// sfuMsg goes to the hub, never to a viewer (docs/sfu.md).
	sfuMsg struct {
		Type string `json:"type"`
		SFUFeed
	}
)

// SourceInfo describes one of a device's sources: in the hello, the hub's stream message and
// device list.
type SourceInfo struct {
	ID string `json:"id"`
	// Description says what it is: testpattern, wayland, v4l2, socket, a camera's URL without
	// its password.
	Description string `json:"description"`
	// Default marks the source a viewer that names none watches.
	Default bool `json:"default,omitempty"`
	// Stream is its picture and tracks; nil before its first picture.
	Stream *stream.Info `json:"stream,omitempty"`
}

// SourceLister is a Backend with several sources: its hello lists them.
type SourceLister interface {
	Sources() []SourceInfo
}

// ErrUnknownSource: a viewer asked for a source the device does not have.
var ErrUnknownSource = errors.New("signal: no such source")

// ValidSourceID reports whether id is a well-formed source id: 1 to 32 of a-z, 0-9 and -.
func ValidSourceID(id string) bool {
	if len(id) < 1 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
