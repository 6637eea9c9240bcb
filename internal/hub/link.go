package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/ipclass"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// LinkConfig describes a device's link to its hub.
type LinkConfig struct {
	// URL of the hub, ws:// or wss://; "/device" is appended when it has no path.
	URL string
	ID  string
	Key auth.DeviceKey
	// Backend makes the viewer sessions the hub relays.
	Backend signal.Backend
	// OnICEServers receives the hub's STUN/TURN servers (with fresh credentials) for new sessions.
	OnICEServers func([]webrtc.ICEServer)
	// StreamChanged, if set, is a channel closed at the next change of the picture (new stream
	// info to announce); it is called again after each change.
	StreamChanged func() <-chan struct{}
	Logger        *slog.Logger
	// OnRevoked receives the hub's list of revoked token ids (whole, at each change): the device
	// ends their sessions and refuses new ones.
	OnRevoked func(ids []string)
	// Insecure allows ws:// to a hub at a globally routable address: without TLS anyone on the
	// path reads the signaling and can pose as the hub.
	Insecure bool
	// Dialer, for tests (TLS settings, timeouts).
	Dialer *websocket.Dialer
}

// ErrInsecureHub: ws:// to a hub on the internet without --insecure-hub.
var ErrInsecureHub = errors.New("hub: ws:// (no TLS) to a globally routable address")

// ErrRefused is returned by Link.Run when the hub refuses the device's key: retrying with the
// same key cannot help.
var ErrRefused = errors.New("hub: device refused")

// Link keeps a device connected to its hub, reconnecting with jittered backoff.
type Link struct {
	cfg       LinkConfig
	canonical string // the URL as signed in the challenge answer
	log       *slog.Logger
	mu        sync.Mutex
	connected bool

	// The backoff's random source and clock (tests inject theirs).
	rand func() float64
	now  func() time.Time
}

// NewLink checks the configuration.
func NewLink(cfg LinkConfig) (*Link, error) {
	u := cfg.URL
	if !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
		return nil, fmt.Errorf("hub URL %q: want ws:// or wss://", u)
	}
	if rest := u[strings.Index(u, "//")+2:]; !strings.Contains(rest, "/") {
		cfg.URL = u + "/device"
	}
	if err := auth.ValidateDeviceID(cfg.ID); err != nil {
		return nil, err
	}
	if cfg.Key.IsZero() {
		return nil, errors.New("hub: a device key is required")
	}
	if cfg.Backend == nil {
		return nil, errors.New("hub: a session backend is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	canonical, err := auth.CanonicalHubURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(u, "ws://") && !cfg.Insecure {
		d := *cfg.Dialer
		d.NetDialContext = PlainDialer(d.NetDialContext)
		cfg.Dialer = &d
	}
	return &Link{cfg: cfg, canonical: canonical, log: cfg.Logger.With("hub", cfg.URL), rand: rand.Float64, now: time.Now}, nil
}

// PlainDialer wraps dial (nil: a net.Dialer) for plain ws:// connections: it refuses
// globally routable addresses, so signaling without TLS never crosses the internet, while a
// hub on the LAN, a private network or a lab (private, shared, loopback addresses) is fine.
// The address checked is the one dialled, after name resolution.
func PlainDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		var last error
		for _, ip := range ips {
			if ipclass.IsGlobal(ip) {
				last = fmt.Errorf("%w: %s is %s (use wss://, or --insecure-hub)", ErrInsecureHub, host, ip)
				continue
			}
			c, err := dial(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			last = err
		}
		if last == nil {
			last = fmt.Errorf("hub: %s has no address", host)
		}
		return nil, last
	}
}

// Connected reports whether the link is up.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected
}

// Backoff of reconnections (docs/hub.md, "Device ↔ hub"): full jitter, each wait
// drawn evenly from [0, window), the window doubling from backoffMin to backoffMax, back to the
// start after a connection that lasted backoffStable. Thousands of devices that lost their hub
// at the same moment (behind one carrier-grade NAT, say) so come back spread out rather than
// in waves. A hub that says it is restarting (CodeShutdown) is tried again sooner: after
// restartMin plus up to the spread it names (spread_ms: the more devices it had, the longer,
// see restartSpreadFor), or restartSpread when it names none; spread evenly still.
const (
	backoffMin    = time.Second
	backoffMax    = 30 * time.Second
	backoffStable = time.Minute
	backoffFloor  = 50 * time.Millisecond // no retry sooner than this, however the draw falls
	restartMin    = 250 * time.Millisecond
	restartSpread = 5 * time.Second
)

// errRestarting: the hub said it is going away to come back (a restart).
var errRestarting = errors.New("hub: restarting")

// restartError is a hub's notice that it is restarting, with the time over which its devices
// are to spread their return (0: restartSpread).
type restartError struct {
	spread time.Duration
	msg    string
}

func (e restartError) Error() string        { return "hub: restarting: " + e.msg }
func (e restartError) Is(target error) bool { return target == errRestarting }

// shutdownMsg tells a device the hub is going away to come back: an error with code
// CodeShutdown, and the time over which to spread the return (milliseconds).
type shutdownMsg struct {
	Type     string `json:"type"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	SpreadMS int64  `json:"spread_ms,omitempty"`
}

// restartPerDevice is how much a hub's restart spread grows with each device it had: its
// devices come back at about 2,000 a second (docs/performance.md), within 1 to 30 s.
const restartPerDevice = 500 * time.Microsecond

// restartSpreadFor is the spread a hub with that many devices asks for when it restarts.
func restartSpreadFor(devices int) time.Duration {
	return min(backoffMax, max(time.Second, time.Duration(devices)*restartPerDevice))
}

// backoff is the reconnection schedule: what to wait after each failure.
type backoff struct {
	rand func() float64 // uniform in [0, 1)
	n    int            // failures since the last stable connection
}

// next is the wait before the next attempt, after a connection that was up for up (0: it never
// came up) and ended with err.
func (b *backoff) next(up time.Duration, err error) time.Duration {
	if up >= backoffStable {
		b.n = 0
	}
	if errors.Is(err, errRestarting) {
		b.n = 0
		spread := restartSpread
		var r restartError
		if errors.As(err, &r) && r.spread > 0 {
			spread = min(r.spread, backoffMax)
		}
		return restartMin + time.Duration(b.rand()*float64(spread))
	}
	window := backoffMax
	if b.n < 16 {
		window = min(backoffMax, backoffMin<<b.n)
	}
	b.n++
	return max(backoffFloor, time.Duration(b.rand()*float64(window)))
}

// Run keeps the link up until ctx ends. It returns ErrRefused when the hub rejects the key.
func (l *Link) Run(ctx context.Context) error {
	b := backoff{rand: l.rand}
	for {
		start := l.now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrInsecureHub) {
			return err
		}
		var up time.Duration
		if l.wasUp(err) {
			up = l.now().Sub(start)
		}
		d := b.next(up, err)
		l.log.Warn("hub link down, reconnecting", "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// wasUp tells a session that ended after its welcome from one that never came up.
func (l *Link) wasUp(err error) bool {
	var u upError
	return errors.As(err, &u)
}

// upError is the error of a session that had been welcomed: the link was up.
type upError struct{ error }

func (e upError) Unwrap() error { return e.error }

// session is one connection: authenticate, then relay until it breaks.
func (l *Link) session(ctx context.Context) error {
	c, resp, err := l.cfg.Dialer.DialContext(ctx, l.cfg.URL, nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			return fmt.Errorf("hub rate-limits this address: %w", err)
		}
		return err
	}
	ws := newWSConn(c, l.log)
	defer ws.Close()
	// Shutting down closes the socket, which ends the blocking reads below.
	defer context.AfterFunc(ctx, ws.Close)()
	_ = c.SetReadDeadline(time.Now().Add(authWait))

	data, err := ws.read()
	if err != nil {
		return fmt.Errorf("waiting for the challenge: %w", err)
	}
	var ch struct {
		Type  string         `json:"type"`
		Nonce auth.Challenge `json:"nonce"`
	}
	if err := json.Unmarshal(data, &ch); err != nil || ch.Type != wire.TypeChallenge {
		return fmt.Errorf("%w: expected a challenge", ErrBadMessage)
	}
	sig := auth.SignChallenge(l.cfg.Key, l.cfg.ID, l.canonical, ch.Nonce)
	ws.SendJSON(authMsg{Type: wire.TypeAuth, ID: l.cfg.ID, URL: l.canonical, Sig: base64.RawURLEncoding.EncodeToString(sig)})
	data, err = ws.read()
	if err != nil {
		return fmt.Errorf("waiting for the welcome: %w", err)
	}
	var first struct {
		Type       string             `json:"type"`
		Code       string             `json:"code"`
		Message    string             `json:"message"`
		SpreadMS   int64              `json:"spread_ms"`
		ICEServers []webrtc.ICEServer `json:"iceServers"`
		// SFU: the hub bridges viewers to an SFU, so sessions past the device's
		// peer-to-peer limit may be redirected there (docs/sfu.md).
		SFU bool `json:"sfu"`
	}
	if err := json.Unmarshal(data, &first); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	switch {
	case first.Type == wire.TypeError && first.Code == wire.CodeUnauthorized:
		return fmt.Errorf("%w: %s", ErrRefused, first.Message)
	case first.Type == wire.TypeError && first.Code == wire.CodeShutdown:
		return restartError{spread: time.Duration(first.SpreadMS) * time.Millisecond, msg: first.Message}
	case first.Type == wire.TypeError:
		return fmt.Errorf("hub: %s: %s", first.Code, first.Message)
	case first.Type != wire.TypeWelcome:
		return fmt.Errorf("%w: expected welcome, got %q", ErrBadMessage, first.Type)
	}
	_ = c.SetReadDeadline(time.Now().Add(pongWait))
	// The revocation list can be longer than any signaling message (see maxRevokedMsg).
	c.SetReadLimit(maxRevokedMsg)
	if l.cfg.OnICEServers != nil {
		l.cfg.OnICEServers(first.ICEServers)
	}
	l.setConnected(true)
	defer l.setConnected(false)
	return upError{l.relay(ws, first.SFU)}
}

// relay serves the hub's messages on an authenticated link until it breaks.
func (l *Link) relay(ws *wsConn, sfu bool) error {
	l.log.Info("connected to the hub", "device", l.cfg.ID)

	go l.announceStream(ws)
	dialogs := map[string]*relayed{}
	// Sessions outlive the link: media flows peer to peer, so a hub restart does not interrupt
	// viewers. Only their signaling ends here.
	defer func() {
		for _, r := range dialogs {
			close(r.stop)
		}
	}()
	for {
		data, err := ws.read()
		if err != nil {
			return err
		}
		var m struct {
			Type       string              `json:"type"`
			SID        string              `json:"sid"`
			Msg        json.RawMessage     `json:"msg"`
			Claims     *auth.SessionClaims `json:"claims"`
			IDs        []string            `json:"ids"`
			Code       string              `json:"code"`
			Message    string              `json:"message"`
			SpreadMS   int64               `json:"spread_ms"`
			ICEServers []webrtc.ICEServer  `json:"iceServers"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			l.log.Warn("bad message from the hub", "err", err)
			continue
		}
		switch m.Type {
		case wire.TypeSession:
			if m.SID == "" || len(m.SID) > maxSessionID {
				continue
			}
			r := dialogs[m.SID]
			if r == nil {
				// A session is what its token allows, for as long as it lives: the hub says so
				// with each session, and the device holds it to that on its own clock.
				var access auth.Access
				var err error
				if m.Claims == nil {
					err = fmt.Errorf("%w: session without claims", ErrBadMessage)
				} else {
					access, err = m.Claims.Access(time.Now())
				}
				if err != nil {
					l.log.Warn("relayed session refused", "sid", m.SID, "err", err)
					signal.Refuse(func(msg any) { sendSession(ws, m.SID, msg) }, wire.CodeUnauthorized, err.Error())
					continue
				}
				r = l.newRelayed(ws, m.SID, signal.Viewer{Access: access, Source: "token:" + access.TokenID, Overflow: sfu})
				dialogs[m.SID] = r
			}
			// The dialog ends its session on bye; a fatal error ends the dialog too.
			if fatal := r.d.Handle(m.Msg); fatal || isBye(m.Msg) {
				r.d.Close()
				close(r.stop)
				delete(dialogs, m.SID)
			}
		case wire.TypeICE:
			if l.cfg.OnICEServers != nil {
				l.cfg.OnICEServers(m.ICEServers)
			}
		case wire.TypeRevoked:
			if l.cfg.OnRevoked != nil && len(m.IDs) <= maxRevokedIDs {
				l.cfg.OnRevoked(m.IDs)
			}
		case wire.TypeError:
			l.log.Warn("hub error", "code", m.Code, "message", m.Message)
			if m.Code == wire.CodeReplaced {
				return fmt.Errorf("hub: %s", m.Message)
			}
			if m.Code == wire.CodeShutdown {
				return restartError{spread: time.Duration(m.SpreadMS) * time.Millisecond, msg: m.Message}
			}
		}
	}
}

// relayed is one viewer session's dialog over the hub link.
type relayed struct {
	d    *signal.Dialog
	stop chan struct{}
}

func (l *Link) newRelayed(ws *wsConn, sid string, v signal.Viewer) *relayed {
	stop := make(chan struct{})
	send := func(m any) { sendSession(ws, sid, m) }
	return &relayed{d: signal.NewDialog(l.cfg.Backend, v, send, stop), stop: stop}
}

// sendSession sends m to the viewer of session sid.
func sendSession(ws *wsConn, sid string, m any) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	ws.SendJSON(sessionMsg{Type: wire.TypeSession, SID: sid, Msg: b})
}

func isBye(msg json.RawMessage) bool {
	var m struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(msg, &m) == nil && m.Type == wire.TypeBye
}

// announceStream tells the hub what the device shows (the default source's stream, and every
// source of a multi-source device), now and at each change.
func (l *Link) announceStream(ws *wsConn) {
	for {
		var changed <-chan struct{}
		if l.cfg.StreamChanged != nil {
			changed = l.cfg.StreamChanged()
		}
		stream, _ := json.Marshal(l.cfg.Backend.StreamInfo())
		var sources []signal.SourceInfo
		if sl, ok := l.cfg.Backend.(signal.SourceLister); ok {
			sources = sl.Sources()
		}
		ws.SendJSON(struct {
			Type    string              `json:"type"`
			Stream  json.RawMessage     `json:"stream"`
			Sources []signal.SourceInfo `json:"sources,omitempty"`
		}{wire.TypeStream, stream, sources})
		if changed == nil {
			return
		}
		select {
		case <-changed:
		case <-ws.Done():
			return
		}
	}
}

func (l *Link) setConnected(v bool) {
	l.mu.Lock()
	l.connected = v
	l.mu.Unlock()
}
