// Package wire names, once, the message types and error codes of p2pcast's signaling protocol
// (docs/signaling.md) and of the hub's links (docs/hub.md). The device, the hub and the CLI
// viewer use these constants; a test checks that the page (web/player.js) uses no others. The
// names are part of the wire format: new ones may be added, none renamed.
package wire

// Message types: the "type" field of every JSON message.
const (
	// Signaling, viewer ↔ device (directly, or relayed by a hub).
	TypeHello     = "hello"     // device → viewer, first: version, ICE servers, stream
	TypeWatch     = "watch"     // viewer → device: make me an offer
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
)

// Error codes: the "code" field of an error message.
const (
	CodeBadMessage = "bad_message" // not JSON, no or unknown type, missing field; the socket stays open
	CodeBadSDP     = "bad_sdp"     // the SDP could not be applied
	CodeNoSession  = "no_session"  // candidate or restart before a session exists
	CodeBusy       = "busy"        // the viewer limit, or this source's or token's share of it
	CodeFatal      = "fatal"       // too many bad messages: the socket closes
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
		TypeAuth, TypeChallenge, TypeWelcome, TypeSession, TypeStream, TypeICE, TypeRevoked}
}

// Codes lists every error code.
func Codes() []string {
	return []string{CodeBadMessage, CodeBadSDP, CodeNoSession, CodeBusy, CodeFatal, CodeUnauthorized, CodeForbidden,
		CodeExpired, CodeOffline, CodeRateLimited, CodeReplaced, CodeShutdown}
}
