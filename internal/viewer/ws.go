package viewer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/wire"
	"github.com/p2pcast/p2pcast/internal/wsconn"
)

// Timings and limits of the WebSocket path.
const (
	dialWait   = 10 * time.Second // TCP + TLS + upgrade
	helloWait  = 10 * time.Second // from the upgrade to hello (through a hub: auth included)
	writeWait  = 5 * time.Second
	maxMessage = 64<<10 + 1024 // docs/signaling.md: 64 KiB per message
)

// Wire messages (docs/signaling.md, docs/hub.md).
type (
	// inMsg is any device (or hub) → viewer message.
	inMsg struct {
		Type       string             `json:"type"`
		Version    int                `json:"version"`
		ICEServers []webrtc.ICEServer `json:"iceServers"`
		Stream     json.RawMessage    `json:"stream"`
		SDP        string             `json:"sdp"`
		Candidate  json.RawMessage    `json:"candidate"`
		Code       string             `json:"code"`
		Message    string             `json:"message"`
		Reason     string             `json:"reason"`
	}
	authMsg struct {
		Type   string `json:"type"`
		Token  string `json:"token"`
		Device string `json:"device,omitempty"`
	}
	typeMsg struct {
		Type string `json:"type"`
	}
	watchMsg struct {
		Type   string `json:"type"`
		Source string `json:"source,omitempty"`
	}
	sdpMsg struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}
	candidateMsg struct {
		Type      string                   `json:"type"`
		Candidate *webrtc.ICECandidateInit `json:"candidate"` // null: end of candidates
	}
)

// wsURL checks a ws(s) URL and gives it the /ws path when it has none; http(s) become ws(s).
func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("viewer: signaling URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("viewer: signaling URL %q: want ws:// or wss://", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("viewer: signaling URL %q has no host", raw)
	}
	if u.User != nil || u.RawQuery != "" {
		// Credentials go in the auth message only: a URL ends up in logs and proxies.
		return "", errors.New("viewer: the signaling URL must not carry credentials or a query; give the token separately")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u.String(), nil
}

// wsSignaler speaks the WebSocket protocol of docs/signaling.md: to a device directly, or to a
// hub after authenticating (docs/hub.md). The device offers, so it controls ICE and can offer
// the header extensions it wants; the viewer answers; candidates trickle both ways.
type wsSignaler struct {
	url    string
	device string // hub only
	source string // the source to watch ("": the default)
	token  string // hub only; never logged
	log    *slog.Logger
	dialer *websocket.Dialer

	conn      *websocket.Conn // the read side
	ws        *wsconn.Conn    // the write side: one writer at a time (gorilla)
	closeOnce sync.Once

	// The viewer's candidates wait until the answer is out: a candidate before the answer would
	// reach a session without a remote description.
	cmu      sync.Mutex
	answered bool
	pending  []*webrtc.ICECandidateInit

	nmu      sync.Mutex
	lastNote error

	// noMedia answers the device's media sections inactive (OpenData): a session for its
	// data channels only.
	noMedia bool
}

func newWSSignaler(u, device, token string, tlsConf *tls.Config, dial func(context.Context, string, string) (net.Conn, error), log *slog.Logger) *wsSignaler {
	return &wsSignaler{url: u, device: device, token: token, log: log.With("signaling", u),
		dialer: &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: dialWait, TLSClientConfig: tlsConf, NetDialContext: dial}}
}

func (s *wsSignaler) kind() string {
	if s.device != "" {
		return "hub"
	}
	return "ws"
}

// where names the other side in errors.
func (s *wsSignaler) where() string {
	if s.device != "" {
		return fmt.Sprintf("hub %s (device %q)", s.url, s.device)
	}
	return "device " + s.url
}

func (s *wsSignaler) note() error {
	s.nmu.Lock()
	defer s.nmu.Unlock()
	return s.lastNote
}

func (s *wsSignaler) connect(ctx context.Context) ([]webrtc.ICEServer, error) {
	dctx, cancel := context.WithTimeout(ctx, dialWait)
	defer cancel()
	conn, resp, err := s.dialer.DialContext(dctx, s.url, nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if se := httpRefusal(resp.StatusCode, strings.TrimSpace(string(body))); se != nil {
				return nil, fmt.Errorf("%s refused the connection: %w", s.where(), se)
			}
			return nil, fmt.Errorf("connecting to %s: %s (is this a p2pcast signaling endpoint?)", s.where(), resp.Status)
		}
		return nil, fmt.Errorf("connecting to %s: %w", s.where(), err)
	}
	s.conn = conn
	s.ws = wsconn.New(conn, wsconn.Options{WriteWait: writeWait, Logger: s.log})
	conn.SetReadLimit(maxMessage)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(helloWait))
	if s.token != "" {
		// The one place the token goes: the first message, on the (TLS) socket.
		if err := s.write(authMsg{Type: wire.TypeAuth, Token: s.token, Device: s.device}); err != nil {
			return nil, fmt.Errorf("authenticating to %s: %w", s.where(), err)
		}
		s.log.Debug("sent auth", "device", s.device)
	}
	m, err := s.read()
	if err != nil {
		return nil, fmt.Errorf("waiting for hello from %s: %w", s.where(), err)
	}
	switch m.Type {
	case wire.TypeHello:
	case wire.TypeError:
		return nil, fmt.Errorf("%s refused the session: %w", s.where(), &SignalError{Code: m.Code, Message: m.Message})
	default:
		return nil, fmt.Errorf("%s: expected hello, got %q", s.where(), m.Type)
	}
	_ = conn.SetReadDeadline(time.Time{})
	s.log.Debug("hello", "version", m.Version, "ice_servers", len(m.ICEServers), "stream", string(m.Stream))
	return m.ICEServers, nil
}

func (s *wsSignaler) session(ctx context.Context, pc *webrtc.PeerConnection, requested func()) error {
	pc.OnICECandidate(s.localCandidate)
	stop := context.AfterFunc(ctx, s.close) // unblocks the read below
	defer stop()
	if err := s.write(watchMsg{Type: wire.TypeWatch, Source: s.source}); err != nil {
		return fmt.Errorf("sending watch to %s: %w", s.where(), err)
	}
	requested()
	var early []webrtc.ICECandidateInit // the device's candidates before its offer was applied
	for {
		m, err := s.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if s.keepWatching(ctx, pc, err) {
				return nil
			}
			if n := s.note(); n != nil {
				return fmt.Errorf("%s closed the signaling connection after: %w", s.where(), n)
			}
			return fmt.Errorf("%s closed the signaling connection: %w", s.where(), err)
		}
		switch m.Type {
		case wire.TypeOffer:
			if err := s.answer(pc, m.SDP); err != nil {
				return fmt.Errorf("answering the offer of %s: %w", s.where(), err)
			}
			for _, c := range early {
				s.addCandidate(pc, c)
			}
			early = nil
		case wire.TypeCandidate:
			if len(m.Candidate) == 0 || string(m.Candidate) == "null" {
				s.log.Debug("remote candidates complete")
				continue
			}
			var c webrtc.ICECandidateInit
			if err := json.Unmarshal(m.Candidate, &c); err != nil || c.Candidate == "" {
				s.log.Debug("ignoring a bad candidate", "err", err)
				continue
			}
			if pc.RemoteDescription() == nil {
				early = append(early, c)
				continue
			}
			s.addCandidate(pc, c)
		case wire.TypeBye:
			s.log.Info("the device ended the session", "reason", m.Reason)
			return sessionEnded(m.Reason)
		case wire.TypeError:
			se := &SignalError{Code: m.Code, Message: m.Message}
			if m.Code == wire.CodeShutdown && s.keepWatching(ctx, pc, se) {
				return nil
			}
			if terminal(m.Code) {
				return fmt.Errorf("%s: %w", s.where(), se)
			}
			s.log.Warn("signaling error", "code", m.Code, "message", m.Message)
			s.nmu.Lock()
			s.lastNote = se
			s.nmu.Unlock()
		case wire.TypeHello:
		default:
			s.log.Debug("ignoring a signaling message", "type", m.Type)
		}
	}
}

// answer applies the device's offer, sends the answer, then the candidates gathered meanwhile.
func (s *wsSignaler) answer(pc *webrtc.PeerConnection, offer string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return err
	}
	if s.noMedia {
		for _, tr := range pc.GetTransceivers() {
			if err := tr.Stop(); err != nil {
				return err
			}
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if err := s.write(sdpMsg{Type: wire.TypeAnswer, SDP: pc.LocalDescription().SDP}); err != nil {
		return err
	}
	s.answered = true
	for _, c := range s.pending {
		s.sendCandidate(c)
	}
	s.pending = nil
	return nil
}

func (s *wsSignaler) addCandidate(pc *webrtc.PeerConnection, c webrtc.ICECandidateInit) {
	if err := pc.AddICECandidate(c); err != nil {
		s.log.Debug("remote candidate refused", "candidate", c.Candidate, "err", err)
	}
}

// localCandidate trickles one of the viewer's candidates (nil: gathering is complete).
func (s *wsSignaler) localCandidate(c *webrtc.ICECandidate) {
	var init *webrtc.ICECandidateInit
	if c != nil {
		j := c.ToJSON()
		init = &j
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if !s.answered {
		s.pending = append(s.pending, init)
		return
	}
	s.sendCandidate(init)
}

func (s *wsSignaler) sendCandidate(c *webrtc.ICECandidateInit) {
	if err := s.write(candidateMsg{Type: wire.TypeCandidate, Candidate: c}); err != nil {
		s.log.Debug("sending a candidate", "err", err)
	}
}

// write sends m and waits until it is out.
func (s *wsSignaler) write(m any) error { return s.ws.WriteJSON(m) }

func (s *wsSignaler) read() (inMsg, error) {
	kind, data, err := s.conn.ReadMessage()
	if err != nil {
		return inMsg{}, err
	}
	if kind != websocket.TextMessage {
		return inMsg{}, errors.New("a binary frame is not a signaling message")
	}
	var m inMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return inMsg{}, fmt.Errorf("not a signaling message: %w", err)
	}
	return m, nil
}

// close says bye and closes the socket; safe to call more than once and concurrently.
func (s *wsSignaler) close() {
	s.closeOnce.Do(func() {
		if s.ws == nil {
			return
		}
		s.ws.Send([]byte(`{"type":"bye"}`))
		s.ws.CloseAfter(websocket.CloseNormalClosure, "")
		// A short wait: a peer that does not read must not hold up the end of the watch.
		s.ws.Finish(time.Second)
	})
}

// keepWatching waits out the watch when the signaling goes away (a hub restarting) once the
// answer is out: ICE, DTLS and the media need no more signaling (the device's candidates came
// with its offer or trickled, and it learns ours from our checks), so a connection still
// coming up is kept as well as one already up. Only the peer connection's state (failed,
// closed) or ctx (frames, duration, FirstFrameTimeout) ends the watch then. It reports
// whether it waited.
func (s *wsSignaler) keepWatching(ctx context.Context, pc *webrtc.PeerConnection, cause error) bool {
	s.cmu.Lock()
	answered := s.answered
	s.cmu.Unlock()
	if !answered {
		return false
	}
	switch st := pc.ConnectionState(); st {
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		return false
	default:
		s.log.Warn("signaling lost; the media goes on peer to peer", "cause", cause, "connection", st)
	}
	<-ctx.Done()
	return true
}
