package hub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// MaxMessage bounds one WebSocket message on either link; a session envelope carries a signaling
// message (at most signal.MaxMessage) plus a little.
const MaxMessage = signal.MaxMessage + 1024

// maxRevokedIDs bounds a revocation list on the wire.
const maxRevokedIDs = auth.MaxRevoked

// maxRevokedMsg bounds a revoked message: maxRevokedIDs token ids (at most auth.MaxTokenIDLen
// characters each, as auth allows), quoted and comma-separated, and the envelope. It is far
// above MaxMessage (about 2,600 ids of 22 characters already exceed that), so a Link reads its
// hub with this limit: under MaxMessage a long list broke the read, and the device dropped its
// link at every reconnect, as the list comes with each welcome.
const maxRevokedMsg = 1024 + maxRevokedIDs*(auth.MaxTokenIDLen+3)

// ErrBadMessage wraps every reason a hub message is refused.
var ErrBadMessage = errors.New("hub: bad message")

// maxSessionID bounds a session id; the hub makes 16 hex digits.
const maxSessionID = 64

// DeviceMessage is a parsed device → hub message after authentication.
type DeviceMessage struct {
	Type string
	// SID and Msg: a session message for one viewer (Type session); Msg is the raw signaling
	// message, forwarded as it is.
	SID string
	Msg json.RawMessage
	// Stream is the device's picture description (Type stream).
	Stream json.RawMessage
	// Sources are a multi-source device's sources (Type stream; signal.SourceInfo each), nil
	// for a device with one.
	Sources json.RawMessage
}

type wireEnvelope struct {
	Type   string          `json:"type"`
	SID    string          `json:"sid,omitempty"`
	Msg    json.RawMessage `json:"msg,omitempty"`
	Stream json.RawMessage `json:"stream,omitempty"`
	// Sources is a JSON array (type stream).
	Sources json.RawMessage `json:"sources,omitempty"`
}

// ParseDeviceMessage decodes and checks one device → hub message.
func ParseDeviceMessage(data []byte) (DeviceMessage, error) {
	if len(data) > MaxMessage {
		return DeviceMessage{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadMessage, len(data), MaxMessage)
	}
	var w wireEnvelope
	if err := json.Unmarshal(data, &w); err != nil {
		return DeviceMessage{}, fmt.Errorf("%w: not a JSON object: %v", ErrBadMessage, err)
	}
	switch w.Type {
	case wire.TypeSession:
		if w.SID == "" || len(w.SID) > maxSessionID {
			return DeviceMessage{}, fmt.Errorf("%w: session message without a valid sid", ErrBadMessage)
		}
		if len(w.Msg) == 0 || w.Msg[0] != '{' {
			return DeviceMessage{}, fmt.Errorf("%w: session message without a msg object", ErrBadMessage)
		}
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(w.Msg, &probe); err != nil || probe.Type == "" {
			return DeviceMessage{}, fmt.Errorf("%w: session msg has no type", ErrBadMessage)
		}
		return DeviceMessage{Type: w.Type, SID: w.SID, Msg: w.Msg}, nil
	case wire.TypeStream:
		if len(w.Stream) == 0 || (w.Stream[0] != '{' && string(w.Stream) != "null") {
			return DeviceMessage{}, fmt.Errorf("%w: stream must be an object or null", ErrBadMessage)
		}
		m := DeviceMessage{Type: w.Type, Stream: w.Stream}
		if len(w.Sources) > 0 && string(w.Sources) != "null" {
			var list []struct {
				ID string `json:"id"`
			}
			if w.Sources[0] != '[' || json.Unmarshal(w.Sources, &list) != nil {
				return DeviceMessage{}, fmt.Errorf("%w: sources must be an array of sources", ErrBadMessage)
			}
			for _, src := range list {
				if !signal.ValidSourceID(src.ID) {
					return DeviceMessage{}, fmt.Errorf("%w: source id %q", ErrBadMessage, src.ID)
				}
			}
			m.Sources = w.Sources
		}
		return m, nil
	case "":
		return DeviceMessage{}, fmt.Errorf("%w: no type", ErrBadMessage)
	default:
		return DeviceMessage{}, fmt.Errorf("%w: unknown type %q", ErrBadMessage, w.Type)
	}
}

// authMsg is the first message on either link: a device's signed challenge, or a viewer's token
// and the device it wants.
type authMsg struct {
	Type   string `json:"type"`
	ID     string `json:"id,omitempty"`     // device link
	Sig    string `json:"sig,omitempty"`    // device link, base64url
	URL    string `json:"url,omitempty"`    // device link: the hub URL the device dialled and signed
	Token  string `json:"token,omitempty"`  // viewer link (or the Authorization header)
	Device string `json:"device,omitempty"` // viewer link
	// Resume names the session of an earlier socket of this viewer (same token), to carry on
	// with it on this one.
	Resume string `json:"resume,omitempty"`
}

// ParseAuth decodes the first message of a link.
func ParseAuth(data []byte) (authMsg, error) {
	if len(data) > auth.MaxTokenLen+1024 {
		return authMsg{}, fmt.Errorf("%w: auth message of %d bytes", ErrBadMessage, len(data))
	}
	var m authMsg
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return authMsg{}, fmt.Errorf("%w: auth: %v", ErrBadMessage, err)
	}
	if m.Type != wire.TypeAuth {
		return authMsg{}, fmt.Errorf("%w: the first message must be auth, not %q", ErrBadMessage, m.Type)
	}
	return m, nil
}

// Hub → device messages.
type (
	challengeMsg struct {
		Type  string         `json:"type"`
		Nonce auth.Challenge `json:"nonce"`
	}
	iceMsg struct {
		Type       string             `json:"type"` // welcome or ice
		ICEServers []webrtc.ICEServer `json:"iceServers"`
		// SFU (welcome): this hub bridges viewers to an SFU (docs/sfu.md).
		SFU bool `json:"sfu,omitempty"`
	}
	sessionMsg struct {
		Type string          `json:"type"`
		SID  string          `json:"sid"`
		Msg  json.RawMessage `json:"msg"`
		// Claims (hub → device) say what the session's token allows and for how long.
		Claims *auth.SessionClaims `json:"claims,omitempty"`
	}
	revokedMsg struct {
		Type string   `json:"type"`
		IDs  []string `json:"ids"`
	}
	errorMsg struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	helloMsg struct {
		Type       string             `json:"type"`
		Version    int                `json:"version"`
		ICEServers []webrtc.ICEServer `json:"iceServers"`
		Stream     json.RawMessage    `json:"stream,omitempty"`
		Sources    json.RawMessage    `json:"sources,omitempty"` // a multi-source device's
		Session    string             `json:"session"`           // to resume it from another socket
		Resumed    bool               `json:"resumed,omitempty"` // this socket carries on an earlier one's session
	}
)

// byeJSON is the signaling bye the hub sends a device for a viewer that went away.
var byeJSON = json.RawMessage(`{"type":"bye","reason":"viewer left"}`)

// decodeSig decodes a base64url signature.
func decodeSig(s string) ([]byte, error) {
	if len(s) > 200 {
		return nil, fmt.Errorf("%w: signature too long", ErrBadMessage)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url: %v", ErrBadMessage, err)
	}
	return b, nil
}
