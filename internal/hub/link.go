package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/signal"
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
	// Dialer, for tests (TLS settings, timeouts).
	Dialer *websocket.Dialer
}

// ErrRefused is returned by Link.Run when the hub refuses the device's key: retrying with the
// same key cannot help.
var ErrRefused = errors.New("hub: device refused")

// Link keeps a device connected to its hub, reconnecting with jittered backoff.
type Link struct {
	cfg       LinkConfig
	log       *slog.Logger
	mu        sync.Mutex
	connected bool
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
	return &Link{cfg: cfg, log: cfg.Logger.With("hub", cfg.URL)}, nil
}

// Connected reports whether the link is up.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected
}

// Backoff of reconnections: 0.5 s doubling to 30 s, each wait ±50 %, back to the start after a
// connection that lasted a minute.
const (
	backoffMin    = 500 * time.Millisecond
	backoffMax    = 30 * time.Second
	backoffStable = time.Minute
)

// Run keeps the link up until ctx ends. It returns ErrRefused when the hub rejects the key.
func (l *Link) Run(ctx context.Context) error {
	wait := backoffMin
	for {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			return err
		}
		if time.Since(start) > backoffStable {
			wait = backoffMin
		}
		d := time.Duration(float64(wait) * (0.5 + rand.Float64()))
		l.log.Warn("hub link down, reconnecting", "err", err, "in", d.Round(time.Millisecond))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil
		}
		wait = min(2*wait, backoffMax)
	}
}

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
	defer ws.close()
	// Shutting down closes the socket, which ends the blocking reads below.
	defer context.AfterFunc(ctx, ws.close)()
	_ = c.SetReadDeadline(time.Now().Add(authWait))

	data, err := ws.read()
	if err != nil {
		return fmt.Errorf("waiting for the challenge: %w", err)
	}
	var ch struct {
		Type  string         `json:"type"`
		Nonce auth.Challenge `json:"nonce"`
	}
	if err := json.Unmarshal(data, &ch); err != nil || ch.Type != TypeChallenge {
		return fmt.Errorf("%w: expected a challenge", ErrBadMessage)
	}
	sig := auth.SignChallenge(l.cfg.Key, l.cfg.ID, ch.Nonce)
	ws.send(authMsg{Type: TypeAuth, ID: l.cfg.ID, Sig: base64.RawURLEncoding.EncodeToString(sig)})
	data, err = ws.read()
	if err != nil {
		return fmt.Errorf("waiting for the welcome: %w", err)
	}
	var first struct {
		Type       string             `json:"type"`
		Code       string             `json:"code"`
		Message    string             `json:"message"`
		ICEServers []webrtc.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal(data, &first); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	switch {
	case first.Type == TypeError && first.Code == CodeUnauthorized:
		return fmt.Errorf("%w: %s", ErrRefused, first.Message)
	case first.Type == TypeError:
		return fmt.Errorf("hub: %s: %s", first.Code, first.Message)
	case first.Type != TypeWelcome:
		return fmt.Errorf("%w: expected welcome, got %q", ErrBadMessage, first.Type)
	}
	_ = c.SetReadDeadline(time.Now().Add(pongWait))
	if l.cfg.OnICEServers != nil {
		l.cfg.OnICEServers(first.ICEServers)
	}
	l.setConnected(true)
	defer l.setConnected(false)
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
			Type       string             `json:"type"`
			SID        string             `json:"sid"`
			Msg        json.RawMessage    `json:"msg"`
			Code       string             `json:"code"`
			Message    string             `json:"message"`
			ICEServers []webrtc.ICEServer `json:"iceServers"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			l.log.Warn("bad message from the hub", "err", err)
			continue
		}
		switch m.Type {
		case TypeSession:
			if m.SID == "" || len(m.SID) > maxSessionID {
				continue
			}
			r := dialogs[m.SID]
			if r == nil {
				r = l.newRelayed(ws, m.SID)
				dialogs[m.SID] = r
			}
			// The dialog ends its session on bye; a fatal error ends the dialog too.
			if fatal := r.d.Handle(m.Msg); fatal || isBye(m.Msg) {
				r.d.Close()
				close(r.stop)
				delete(dialogs, m.SID)
			}
		case TypeICE:
			if l.cfg.OnICEServers != nil {
				l.cfg.OnICEServers(m.ICEServers)
			}
		case TypeError:
			l.log.Warn("hub error", "code", m.Code, "message", m.Message)
			if m.Code == CodeReplaced {
				return fmt.Errorf("hub: %s", m.Message)
			}
		}
	}
}

// relayed is one viewer session's dialog over the hub link.
type relayed struct {
	d    *signal.Dialog
	stop chan struct{}
}

func (l *Link) newRelayed(ws *wsConn, sid string) *relayed {
	stop := make(chan struct{})
	send := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		ws.send(sessionMsg{Type: TypeSession, SID: sid, Msg: b})
	}
	return &relayed{d: signal.NewDialog(l.cfg.Backend, send, stop), stop: stop}
}

func isBye(msg json.RawMessage) bool {
	var m struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(msg, &m) == nil && m.Type == signal.TypeBye
}

// announceStream tells the hub what the device shows, now and at each change.
func (l *Link) announceStream(ws *wsConn) {
	for {
		var changed <-chan struct{}
		if l.cfg.StreamChanged != nil {
			changed = l.cfg.StreamChanged()
		}
		stream, _ := json.Marshal(l.cfg.Backend.StreamInfo())
		ws.send(struct {
			Type   string          `json:"type"`
			Stream json.RawMessage `json:"stream"`
		}{TypeStream, stream})
		if changed == nil {
			return
		}
		select {
		case <-changed:
		case <-ws.stop:
			return
		}
	}
}

func (l *Link) setConnected(v bool) {
	l.mu.Lock()
	l.connected = v
	l.mu.Unlock()
}
