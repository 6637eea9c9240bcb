package signal

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/wire"
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
	// EndReason says why the device ended the session itself ("" otherwise): told in bye.
	EndReason() string
	Close()
}

// Request is what a transport knows of the viewer it asks a session for.
type Request struct {
	// Access is what the viewer may do (checked by the session: view, and later talk, control,
	// files on their channels).
	Access auth.Access
	// Source groups a viewer's sessions for per-source caps: "ip:…" for a LAN viewer (its
	// address, or its /64), "token:…" for a viewer through a hub.
	Source string
	// SourceID is the device source to watch ("": the default). A backend without it
	// refuses with ErrUnknownSource.
	SourceID string
	// OnCandidate gets trickled device candidates (nil at the end); it may be nil.
	OnCandidate func(*webrtc.ICECandidateInit)
	// Overflow says the transport can move this viewer to an SFU (a hub that bridges
	// sessions to one, for a watch): a backend past its peer-to-peer audience limit may then
	// answer with a *Redirect instead of a session (docs/sfu.md).
	Overflow bool
	// DataOnly says the viewer's offer has no audio or video section (a data session): the
	// backend need not wait for a source to describe its tracks.
	DataOnly bool
}

// Redirect is a backend's answer to a watch it serves through an SFU rather than peer to
// peer. Wait blocks until the device publishes to the SFU and says where the viewer finds
// the stream; Release is called once when the viewer's session ends (the device stops
// publishing when the last one is released, after a grace period).
type Redirect struct {
	Wait    func() (SFUFeed, error)
	Release func()
}

func (*Redirect) Error() string { return "signal: this viewer is served through the SFU" }

// SFUFeed is where a redirected viewer finds the device's stream: a Janus VideoRoom room, the
// device's publisher id in it, and the media sections (mids) to subscribe to.
type SFUFeed struct {
	Room uint64   `json:"room"`
	Feed uint64   `json:"feed"`
	Mids []string `json:"mids,omitempty"`
}

// Backend makes sessions and says what viewers need to know first.
type Backend interface {
	NewSession(Request) (Session, error)
	// ICEServers are the STUN/TURN servers announced in hello (the device's own LAN ones).
	ICEServers() []webrtc.ICEServer
	// StreamInfo describes the current stream, or nil before the first picture.
	StreamInfo() *stream.Info
}

// Gate decides what a viewer on the device's own endpoints may do.
type Gate interface {
	// Required reports whether viewers must present a token before anything else.
	Required() bool
	// Admit checks a bearer token ("" when the viewer gave none) and returns its access.
	// Errors wrap ErrUnauthorized (no or bad token) or ErrForbidden (valid, but not for this).
	Admit(token string) (auth.Access, error)
}

// Open is the Gate of a device without LAN auth: every viewer holds every grant.
type Open struct{}

func (Open) Required() bool                    { return false }
func (Open) Admit(string) (auth.Access, error) { return auth.FullAccess(), nil }

// Errors a Gate returns.
var (
	ErrUnauthorized = errors.New("signal: token required or refused")
	ErrForbidden    = errors.New("signal: not allowed")
)

// httpStatus maps session errors to HTTP status codes.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, peer.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, peer.ErrBusy):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrUnknownSource):
		return http.StatusNotFound
	case errors.Is(err, peer.ErrBadSDP), errors.Is(err, peer.ErrBadState), errors.Is(err, ErrBadMessage):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// errorCode maps session errors to WebSocket error codes.
func errorCode(err error) string {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return wire.CodeUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, peer.ErrForbidden):
		return wire.CodeForbidden
	case errors.Is(err, peer.ErrBusy):
		return wire.CodeBusy
	case errors.Is(err, ErrUnknownSource):
		return wire.CodeUnknownSource
	case errors.Is(err, peer.ErrBadSDP), errors.Is(err, peer.ErrNoOffer), errors.Is(err, peer.ErrBadState):
		return wire.CodeBadSDP
	}
	return wire.CodeBadMessage
}

// Options configure the HTTP transports (WHEP, WebSocket) of a device.
type Options struct {
	// Gate admits viewers; nil is Open (no token needed, every grant).
	Gate Gate
	// Source names a request's source for per-source caps (default: "ip:" and the peer's
	// address, or its IPv6 /64).
	Source func(*http.Request) string
	// CheckOrigin decides which pages may open a WebSocket (default: same origin only).
	CheckOrigin func(*http.Request) bool
	Logger      *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Gate == nil {
		o.Gate = Open{}
	}
	if o.Source == nil {
		o.Source = func(r *http.Request) string {
			return "ip:" + httpguard.SourceKey(httpguard.ClientIP(r, httpguard.Trust{}))
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// BearerToken is the token of an "Authorization: Bearer …" header, or "".
func BearerToken(r *http.Request) string {
	t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(t)
}
