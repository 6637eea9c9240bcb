package signal

import (
	"errors"
	"net/http"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/peer"
)

// Session is what signaling needs of a viewer session; *peer.Session implements it.
type Session interface {
	ID() string
	Answer(offer string) (string, error)
	Offer() (string, error)
	Restart() (string, error)
	SetAnswer(answer string) error
	AddCandidate(c *webrtc.ICECandidateInit) error
	GatheringDone() <-chan struct{}
	LocalDescription() string
	Done() <-chan struct{}
	Close()
}

// Backend makes sessions and says what viewers need to know first.
type Backend interface {
	// NewSession makes a session; onCandidate gets trickled device candidates (nil at the end)
	// and may itself be nil.
	NewSession(onCandidate func(*webrtc.ICECandidateInit)) (Session, error)
	ICEServers() []webrtc.ICEServer
	// StreamInfo describes the current stream, or nil before the first picture.
	StreamInfo() any
}

// httpStatus maps session errors to HTTP status codes.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, peer.ErrBusy):
		return http.StatusServiceUnavailable
	case errors.Is(err, peer.ErrBadSDP), errors.Is(err, peer.ErrBadState), errors.Is(err, ErrBadMessage):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// errorCode maps session errors to WebSocket error codes.
func errorCode(err error) string {
	switch {
	case errors.Is(err, peer.ErrBusy):
		return CodeBusy
	case errors.Is(err, peer.ErrBadSDP), errors.Is(err, peer.ErrNoOffer), errors.Is(err, peer.ErrBadState):
		return CodeBadSDP
	}
	return CodeBadMessage
}
