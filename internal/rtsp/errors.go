package rtsp

import (
	"errors"
	"fmt"
)

// Errors, wrapped with detail where they are raised; test them with errors.Is.
var (
	// ErrBadURL: the URL is not an rtsp:// URL this client can play.
	ErrBadURL = errors.New("rtsp: bad URL")
	// ErrUnauthorized: the camera refused the credentials (or none were given).
	ErrUnauthorized = errors.New("rtsp: unauthorized")
	// ErrStatus: the camera answered a request with an error status (see StatusError).
	ErrStatus = errors.New("rtsp: error status")
	// ErrProtocol: the camera sent something that is not RTSP, RTP or SDP as expected.
	ErrProtocol = errors.New("rtsp: protocol error")
	// ErrTooLarge: a message, frame or access unit exceeds its bound.
	ErrTooLarge = errors.New("rtsp: too large")
	// ErrNoTracks: the stream has no track this client can play (the error lists why).
	ErrNoTracks = errors.New("rtsp: no playable track")
	// ErrTimeout: the camera sent nothing for Options.ReadTimeout, or did not answer a
	// request within Options.Timeout.
	ErrTimeout = errors.New("rtsp: timeout")
	// ErrServerClosed: the camera closed the connection.
	ErrServerClosed = errors.New("rtsp: connection closed by the server")
	// ErrClosed: the Conn was closed.
	ErrClosed = errors.New("rtsp: connection closed")
)

// StatusError is a request the camera answered with a status other than 2xx (401 aside:
// that is ErrUnauthorized). errors.Is(err, ErrStatus) holds.
type StatusError struct {
	Method string
	URL    string // redacted
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("rtsp: %s %s: %d %s", e.Method, e.URL, e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrStatus) true.
func (e *StatusError) Is(target error) bool { return target == ErrStatus }
