package viewer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/p2pcast/p2pcast/internal/wire"
)

// Errors Watch returns. Refusals by a hub or a device come as *SignalError, which matches both
// its own sentinel (ErrUnauthorized, ErrOffline, …) and its group (ErrRefused, ErrUnavailable)
// with errors.Is.
var (
	// ErrNoMedia is returned when the session ended before any frame arrived.
	ErrNoMedia = errors.New("viewer: no frame received")
	// ErrTimeout is returned when no frame arrived within Options.FirstFrameTimeout.
	ErrTimeout = errors.New("viewer: timed out waiting for the first frame")
	// ErrConnectionFailed is returned when the WebRTC connection failed before any frame.
	ErrConnectionFailed = errors.New("viewer: WebRTC connection failed")
	// ErrSessionEnded is returned (with ErrNoMedia) when the device said bye before any frame.
	ErrSessionEnded = errors.New("viewer: the device ended the session")

	// ErrRefused groups the refusals that retrying will not fix: ErrUnauthorized,
	// ErrForbidden, ErrExpired, ErrUnknownSource.
	ErrRefused = errors.New("viewer: refused")
	// ErrUnauthorized: the hub refused the token (malformed, forged or expired).
	ErrUnauthorized = errors.New("viewer: unauthorized")
	// ErrForbidden: the token does not cover this device or lacks the view right.
	ErrForbidden = errors.New("viewer: forbidden")
	// ErrExpired: the token expired during the session.
	ErrExpired = errors.New("viewer: token expired")
	// ErrUnknownSource: the device has no source of the id asked for (Options.Source).
	ErrUnknownSource = errors.New("viewer: no such source")

	// ErrUnavailable groups the refusals that may pass: ErrOffline, ErrBusy, ErrRateLimited.
	ErrUnavailable = errors.New("viewer: unavailable")
	// ErrOffline: the device is not connected to the hub.
	ErrOffline = errors.New("viewer: device offline")
	// ErrBusy: the device (or the hub for it) has reached its viewer limit.
	ErrBusy = errors.New("viewer: device busy")
	// ErrRateLimited: the hub refuses this address for a while (too many connections or
	// failed authentications).
	ErrRateLimited = errors.New("viewer: rate limited")
)

// SignalError is an error message from the device or the hub,
// {"type":"error","code":…,"message":…}, that ended the watch.
type SignalError struct {
	Code    string
	Message string
}

func (e *SignalError) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is matches the sentinel of the code and its group.
func (e *SignalError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == wire.CodeUnauthorized
	case ErrForbidden:
		return e.Code == wire.CodeForbidden
	case ErrExpired:
		return e.Code == wire.CodeExpired
	case ErrUnknownSource:
		return e.Code == wire.CodeUnknownSource
	case ErrRefused:
		return e.Code == wire.CodeUnauthorized || e.Code == wire.CodeForbidden || e.Code == wire.CodeExpired ||
			e.Code == wire.CodeUnknownSource
	case ErrOffline:
		return e.Code == wire.CodeOffline
	case ErrBusy:
		return e.Code == wire.CodeBusy
	case ErrRateLimited:
		return e.Code == wire.CodeRateLimited
	case ErrUnavailable:
		return e.Code == wire.CodeOffline || e.Code == wire.CodeBusy || e.Code == wire.CodeRateLimited
	}
	return false
}

// terminal reports whether an error message after hello ends the watch: the device or hub
// closes the socket after these (fatal, and the hub's refusals), or no session will come (busy,
// a source the device does not have).
// Other codes (bad_message, bad_sdp, no_session) leave the socket open.
func terminal(code string) bool {
	switch code {
	case wire.CodeFatal, wire.CodeBusy, wire.CodeUnauthorized, wire.CodeForbidden, wire.CodeExpired, wire.CodeOffline, wire.CodeRateLimited, wire.CodeReplaced,
		wire.CodeUnknownSource:
		return true
	}
	return false
}

// sessionEnded is the device's bye; it matches ErrSessionEnded.
type sessionEnded string

func (e sessionEnded) Error() string {
	if e == "" {
		return "the device ended the session"
	}
	return "the device ended the session: " + string(e)
}

func (e sessionEnded) Is(target error) bool { return target == ErrSessionEnded }

// httpRefusal maps an HTTP status that refused a WHEP offer or a WebSocket upgrade to the
// protocol's error codes, or nil.
func httpRefusal(status int, body string) *SignalError {
	code := ""
	switch status {
	case 401:
		code = wire.CodeUnauthorized
	case 403:
		code = wire.CodeForbidden
	case 429:
		code = wire.CodeRateLimited
	case 503:
		code = wire.CodeBusy
	case 404:
		// A device's WHEP answers an unknown /whep/ID so; any other 404 is a wrong URL.
		if !strings.Contains(body, "no such source") {
			return nil
		}
		code = wire.CodeUnknownSource
	default:
		return nil
	}
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return &SignalError{Code: code, Message: strings.TrimSpace(fmt.Sprintf("HTTP %d %s", status, body))}
}
