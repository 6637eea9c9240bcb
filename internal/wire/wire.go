// Package wire names, once, the message types and error codes of p2pcast's signaling protocol
// (docs/signaling.md) and of the hub's links (docs/hub.md). The device, the hub and the CLI
// viewer use these constants; a test checks that the page (web/player.js) uses no others. The
// names are part of the wire format: new ones may be added, none renamed.
package wire

import (
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
)

// Message types: the "type" field of every JSON message.
const (
	// Signaling, viewer ↔ device (directly, or relayed by a hub).
	TypeHello     = "hello"     // device → viewer, first: version, ICE servers, stream
	TypeWatch     = "watch"     // viewer → device: make me an offer (of "source", or the default)
	TypeOffer     = "offer"     // either way
	TypeAnswer    = "answer"    // either way
	TypeCandidate = "candidate" // either way; null ends the candidates
	TypeRestart   = "restart"   // viewer → device: ICE restart on the same session
	TypeBye       = "bye"       // either way: the session ends
	TypeError     = "error"     // code and message
	// TypeAuth carries a bearer token: first on a hub's /ws, and on a device's /ws when it
	// requires one (a device that requires none ignores it); first on a device link, with its
	// signed challenge.
	TypeAuth = "auth"

	// The device link, hub ↔ device.
	TypeChallenge = "challenge" // hub → device: the nonce to sign
	TypeWelcome   = "welcome"   // hub → device: authenticated; ICE servers
	TypeSession   = "session"   // both ways: one viewer session's message, in an envelope
	TypeStream    = "stream"    // device → hub: what the device shows
	TypeICE       = "ice"       // hub → device: fresh TURN credentials
	TypeRevoked   = "revoked"   // hub → device: the revoked token ids, whole, at each change
	// TypeSFU (device → hub, in a session envelope): serve this viewer from the device's SFU
	// feed (room, feed, mids) instead; the hub bridges the session there (docs/sfu.md).
	TypeSFU = "sfu"

	// On the session's "events" data channel, device → viewer.
	TypeNetwork = "network" // the viewer's path and what adaptation made of it (Network)
	// TypeEvent is a detection event's start or end (Event); a viewer whose channel opens gets
	// the device's recent ones first, oldest first.
	TypeEvent = "event"
)

// EventsChannel is the label of every session's data channel on which the device reports
// to the viewer (TypeNetwork and TypeEvent messages).
const EventsChannel = "events"

// Error codes: the "code" field of an error message.
const (
	CodeBadMessage = "bad_message" // not JSON, no or unknown type, missing field; the socket stays open
	CodeBadSDP     = "bad_sdp"     // the SDP could not be applied
	CodeNoSession  = "no_session"  // candidate or restart before a session exists
	CodeBusy       = "busy"        // the viewer limit, or this source's or token's share of it
	// CodeUnknownSource: a watch or offer named a source the device does not have.
	CodeUnknownSource = "unknown_source"
	CodeFatal         = "fatal" // too many bad messages: the socket closes
	// CodeUnauthorized: no token, or one that is malformed, forged, expired or revoked; a
	// device that failed its challenge. The socket closes.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: a valid token that does not allow this (another device, a missing grant).
	CodeForbidden = "forbidden"
	// CodeExpired: the token ran out; its sessions have ended and the socket closes.
	CodeExpired     = "expired"
	CodeOffline     = "offline"      // hub: the device is not connected
	CodeRateLimited = "rate_limited" // hub: too many connections or failed authentications from this source
	CodeReplaced    = "replaced"     // hub → device: another connection of this device took over
	// CodeShutdown: the hub is going away; sessions go on (their media does not pass through
	// it), signaling reconnects.
	CodeShutdown = "shutdown"
)

// Types lists every message type.
func Types() []string {
	return []string{TypeHello, TypeWatch, TypeOffer, TypeAnswer, TypeCandidate, TypeRestart, TypeBye, TypeError,
		TypeAuth, TypeChallenge, TypeWelcome, TypeSession, TypeStream, TypeICE, TypeRevoked, TypeSFU, TypeNetwork, TypeEvent}
}

// Codes lists every error code.
func Codes() []string {
	return []string{CodeBadMessage, CodeBadSDP, CodeNoSession, CodeBusy, CodeUnknownSource, CodeFatal, CodeUnauthorized, CodeForbidden,
		CodeExpired, CodeOffline, CodeRateLimited, CodeReplaced, CodeShutdown}
}

// Network is a TypeNetwork message, sent about once a second and at each decision: the
// viewer's path as the device measures it, the rendition it gets, and the adaptation
// decisions about this viewer or its encoder since the previous report (docs/adaptation.md). The page's overlay and
// `p2pcast view --stats json` show it.
type Network struct {
	Type string `json:"type"`
	// EstimateBPS is the device's bandwidth estimate of the path; 0 when the viewer sends no
	// transport-wide feedback (nothing to estimate from: not paced, not adapted).
	EstimateBPS int     `json:"estimate_bps"`
	RTTMS       float64 `json:"rtt_ms"`
	Loss        float64 `json:"loss"` // fraction, from the viewer's last receiver report
	JitterMS    float64 `json:"jitter_ms"`
	QueueMS     float64 `json:"queue_ms"` // media waiting in the device's pacer for this viewer
	// Retransmitted and FEC count the packets sent to repair losses: resent on NACK, and
	// forward error correction.
	Retransmitted uint64     `json:"retransmitted"`
	FEC           uint64     `json:"fec_packets"`
	Rendition     Rendition  `json:"rendition"`
	Decisions     []Decision `json:"decisions,omitempty"`
}

// Rendition is the video a viewer gets: one of the source's renditions, at the encoder's
// current settings.
type Rendition struct {
	Track      uint8   `json:"track"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	BitrateBPS int     `json:"bitrate_bps"` // the encoder's setting; 0 when it takes none
	FPS        float64 `json:"fps"`
}

// Decision is one adaptation decision: a viewer switched between renditions ("switch"), or
// an encoder's "bitrate" or "fps" changed, from From to To, and why.
type Decision struct {
	At    time.Time `json:"at"`
	What  string    `json:"what"`
	Track uint8     `json:"track"`
	From  float64   `json:"from"`
	To    float64   `json:"to"`
	Why   string    `json:"why"`
}

// Event is a TypeEvent message: one event as the device publishes it, at its start (no end)
// and again at its end, under the same id (a viewer replaces the start with the end).
type Event struct {
	Type  string      `json:"type"`
	Event event.Event `json:"event"`
}
