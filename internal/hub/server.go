package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

var errBinary = errors.New("binary frames are not hub messages")

// Server is a running hub.
type Server struct {
	cfg      Config
	log      *slog.Logger
	audit    *audit
	conns    *limiter
	fails    *limiter
	upgrader websocket.Upgrader

	// deviceFails counts failed authentications per (device id, source); handshakes are the
	// sockets of each source not authenticated yet (limit.go).
	deviceFails *limiter
	handshakes  *gauge

	urls      map[string]bool    // canonical forms of cfg.URLs
	stopWatch context.CancelFunc // ends the revocation watcher New started (nil under Run)
	closeOnce sync.Once

	turn      turnRef        // the embedded TURN server, for /metrics
	tokenKeys auth.KeySource // verifies viewer tokens (tokens.go)
	relays    *relayFleet    // several external TURN servers: one per session (relays.go); nil for one
	sfu       *sfuRelay      // bridges viewers past a device's peer-to-peer limit to Janus (sfu.go); nil without

	// live are the settings Reload changes (reload.go); reloadMu serializes reloads.
	live     atomic.Pointer[hubLive]
	reloadMu sync.Mutex

	// cluster, when the hub is one instance of several (--cluster), finds devices linked to
	// the others and relays their sessions over NATS (cluster.go); nil for a single hub.
	cluster *cluster

	mu      sync.Mutex
	devices map[string]*deviceConn
	revoked map[string]time.Time // token id → until; from the store, refreshed
	closing bool                 // Close was called: links end without telling anyone a device went away
}

// New makes a hub's HTTP side from cfg (Run's fields are ignored) and starts its revocation
// watcher; Close stops it. Handler serves it.
func New(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Cluster.Enabled() {
		c, err := connectCluster(cfg.Cluster, s.log)
		if err != nil {
			return nil, err
		}
		c.owned = true
		if err := c.start(s); err != nil {
			c.close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	go s.watchRevoked(ctx)
	go s.checkRelays(ctx)
	return s, nil
}

// newServer is New without the revocation watcher, which Run runs as a component of its own.
func newServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("hub: a key store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSessionsPerDevice <= 0 {
		cfg.MaxSessionsPerDevice = 200
	}
	cfg = limitDefaults(cfg, cfg.MaxSessionsPerDevice)
	urls := map[string]bool{}
	for _, u := range cfg.URLs {
		c, err := auth.CanonicalHubURL(u)
		if err != nil {
			return nil, fmt.Errorf("hub URL: %w", err)
		}
		urls[c] = true
	}
	if len(urls) == 0 {
		return nil, errors.New("hub: no URL devices reach it at (Config.URLs)")
	}
	if cfg.ResumeWait <= 0 {
		cfg.ResumeWait = 15 * time.Second
	}
	if cfg.ICE.TTL <= 0 {
		cfg.ICE.TTL = 12 * time.Hour
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		audit:   &audit{w: cfg.Audit, now: cfg.Now},
		conns:   newLimiter(cfg.ConnRate, cfg.ConnBurst, cfg.Now),
		fails:   newLimiter(cfg.AuthFailsPerMinute/60, cfg.AuthFailsPerMinute, cfg.Now),
		devices: map[string]*deviceConn{},
		urls:    urls,
		// Viewer pages come from the hub itself; other origins are refused (CheckOrigin default).
		// Memory per link (docs/performance.md): reads use the HTTP server's buffer, which the
		// connection holds anyway (ReadBufferSize 0); writes borrow one from a pool, as links
		// are idle almost always.
		upgrader: websocket.Upgrader{WriteBufferPool: writeBuffers},
	}
	s.relays = newRelayFleet(cfg.ICE.STUN, cfg.ICE.TURN, cfg.Logger)
	s.deviceFails = newLimiter(cfg.AuthFailsPerDevice/60, cfg.AuthFailsPerDevice, cfg.Now)
	s.handshakes = newGauge(cfg.MaxHandshakesPerSource)
	sfu, err := newSFURelay(cfg.SFU, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s.sfu = sfu
	s.live.Store(liveOf(cfg)) // after the defaults above
	keys, err := newTokenKeys(cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.tokenKeys = keys
	if err := s.refreshRevoked(); err != nil {
		return nil, err
	}
	return s, nil
}

// revokedPoll is how often the hub rereads the revocation list (`p2pcast token revoke` writes
// it from another process): a revoked token's sessions end within about this long.
const revokedPoll = time.Second

// watchRevoked rereads the revocation list every revokedPoll until ctx ends.
func (s *Server) watchRevoked(ctx context.Context) {
	t := time.NewTicker(revokedPoll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.refreshRevoked(); err != nil {
				s.log.Warn("revocation list", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// refreshRevoked rereads the revocation list; on a change it tells every device and ends the
// hub's sessions of newly revoked tokens.
func (s *Server) refreshRevoked() error {
	list, err := s.cfg.Store.Revoked(s.cfg.Now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	changed := len(list) != len(s.revoked)
	var fresh []string
	for id := range list {
		if _, ok := s.revoked[id]; !ok {
			changed = true
			fresh = append(fresh, id)
		}
	}
	if !changed {
		s.mu.Unlock()
		return nil
	}
	s.revoked = list
	devs := make([]*deviceConn, 0, len(s.devices))
	for _, d := range s.devices {
		devs = append(devs, d)
	}
	s.mu.Unlock()
	msg := s.revokedMsg()
	for _, d := range devs {
		d.ws.SendJSON(msg)
		d.mu.Lock()
		for _, v := range d.sessions {
			if slices.Contains(fresh, v.tokenID) {
				v.ws.fail(wire.CodeUnauthorized, "the token was revoked")
			}
		}
		d.mu.Unlock()
	}
	return nil
}

func (s *Server) revokedMsg() revokedMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.revoked))
	for id := range s.revoked {
		// Longer is no token id (auth refuses it), and would outgrow maxRevokedMsg.
		if len(id) <= auth.MaxTokenIDLen {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > maxRevokedIDs {
		ids = ids[:maxRevokedIDs]
	}
	return revokedMsg{Type: wire.TypeRevoked, IDs: ids}
}

func (s *Server) isRevoked(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[id]
	return ok
}

// Handler serves the hub's HTTP API, its WebSockets and the web app.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /device", s.serveDevice)
	mux.HandleFunc("GET /ws", s.serveViewer)
	mux.HandleFunc("GET /api/devices", s.listDevices)
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`+"\n")
	})
	ops := s.opsHandler()
	for _, p := range opsPaths {
		mux.Handle("GET "+p, ops)
	}
	s.registerAdmin(mux)  // admin.go
	s.registerTokens(mux) // tokens.go: /.well-known/jwks.json
	if s.cfg.Web != nil {
		mux.Handle("GET /", http.FileServerFS(s.cfg.Web))
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.ServeFileFS(w, r, s.cfg.Web, "hub.html") })
	}
	return mux
}

// Close ends every device and viewer connection.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.stopWatch != nil {
			s.stopWatch()
		}
		s.audit.Close() // the last window's refusal counts
	})
	s.mu.Lock()
	s.closing = true
	devs := make([]*deviceConn, 0, len(s.devices))
	for _, d := range s.devices {
		devs = append(devs, d)
	}
	s.mu.Unlock()
	// Devices are told the hub is restarting, so they come back soon, spread over a time that
	// grows with their number (link.go, backoff); the messages get a second to leave.
	bye := shutdownMsg{Type: wire.TypeError, Code: wire.CodeShutdown, Message: "the hub is restarting",
		SpreadMS: restartSpreadFor(len(devs)).Milliseconds()}
	for _, d := range devs {
		d.ws.SendJSON(bye)
		d.ws.CloseAfter(websocket.CloseGoingAway, "")
	}
	flushed := time.After(time.Second)
	for _, d := range devs {
		select {
		case <-d.ws.Done():
		case <-flushed:
		}
		d.ws.Close()
	}
	if s.cluster != nil {
		s.cluster.serverClosed() // its viewers of devices at other instances
	}
}

// remoteAddr is the key of the per-source limits: the client's address (behind trusted
// proxies, the rightmost untrusted X-Forwarded-For hop), or its /64 for IPv6.
func (s *Server) remoteAddr(r *http.Request) string {
	return httpguard.SourceKey(httpguard.ClientIP(r, s.settings().trust)) // reloadable
}

// admit applies the per-source limits before any work is done for a connection.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, remote string) bool {
	reason := ""
	switch {
	case s.fails.exhausted(remote):
		reason = "too many failed authentications"
	case !s.conns.allow(remote):
		reason = "too many connections"
	default:
		return true
	}
	s.refuse(w, remote, reason, 60)
	return false
}

// refuse answers 429 with Retry-After, and audits it.
func (s *Server) refuse(w http.ResponseWriter, remote, reason string, retryAfter int) {
	s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Reason: reason})
	w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	http.Error(w, wire.CodeRateLimited+": "+reason, http.StatusTooManyRequests)
}

// authFailed records a failed authentication against the source's budget.
func (s *Server) authFailed(remote, device, tokenID, reason string) {
	s.fails.allow(remote)
	s.audit.log(AuditEntry{Event: EventAuthFailed, Remote: remote, Device: device, TokenID: tokenID, Reason: reason})
	s.log.Info("authentication failed", "remote", remote, "device", device, "reason", reason)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readAuth reads a link's first message, which must authenticate it within authWait. A
// missing or malformed one is refused here (check adds the link's own rules); ok is false then.
func (s *Server) readAuth(ws *wsConn, remote string, check func(authMsg) error) (authMsg, bool) {
	_ = ws.conn.SetReadDeadline(time.Now().Add(authWait))
	data, err := ws.read()
	if err != nil {
		s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Reason: "no authentication: " + err.Error()})
		return authMsg{}, false
	}
	m, err := ParseAuth(data)
	if err == nil && check != nil {
		err = check(m)
	}
	if err != nil {
		s.authFailed(remote, "", "", err.Error())
		ws.fail(wire.CodeBadMessage, err.Error())
		<-ws.Done()
		return authMsg{}, false
	}
	return m, true
}

// ---- devices ----

// deviceConn is one authenticated device link and the viewer sessions relayed over it.
type deviceConn struct {
	id     string
	ws     *wsConn
	remote string

	mu       sync.Mutex
	stream   json.RawMessage
	sources  json.RawMessage // a multi-source device's, as it sent them
	sessions map[string]*viewerConn
}

func (s *Server) serveDevice(w http.ResponseWriter, r *http.Request) {
	remote := s.remoteAddr(r)
	hs, ok := s.admitHandshake(w, r, remote)
	if !ok {
		return
	}
	defer hs.end()
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws := newWSConn(c, s.log.With("remote", remote))
	handedOff := false
	defer func() {
		if !handedOff {
			ws.finish()
		}
	}()

	challenge, err := auth.NewChallenge()
	if err != nil {
		ws.fail(wire.CodeBadMessage, "internal error")
		return
	}
	ws.SendJSON(challengeMsg{Type: wire.TypeChallenge, Nonce: challenge})
	m, ok := s.readAuth(ws, remote, func(m authMsg) error {
		if m.ID == "" {
			return fmt.Errorf("%w: auth without a device id", ErrBadMessage)
		}
		if m.URL == "" {
			return fmt.Errorf("%w: auth without the hub URL the device dialled (an older device?)", ErrBadMessage)
		}
		return nil
	})
	if !ok || !s.deviceMayTry(ws, remote, m.ID) {
		return
	}
	if err := s.verifyDevice(m, challenge); err != nil {
		s.deviceAuthFailed(remote, m.ID)
		s.authFailed(remote, m.ID, "", err.Error())
		ws.fail(wire.CodeUnauthorized, "device authentication failed")
		<-ws.Done()
		return
	}
	hs.device(c) // its key, not its address, holds it from now on
	// The link lives on in a goroutine of its own and this handler returns, which frees the
	// stack the handshake grew and the HTTP server's buffers of this connection (memory per
	// link, docs/performance.md).
	handedOff = true
	go func() {
		defer ws.finish()
		s.runDevice(c, ws, m, remote)
	}()
}

// runDevice serves an authenticated device link until it ends.
func (s *Server) runDevice(c *websocket.Conn, ws *wsConn, m authMsg, remote string) {
	_ = c.SetReadDeadline(time.Now().Add(pongWait))

	d := &deviceConn{id: m.ID, ws: ws, remote: remote, sessions: map[string]*viewerConn{}}
	s.mu.Lock()
	old := s.devices[m.ID]
	s.devices[m.ID] = d
	s.mu.Unlock()
	if old != nil {
		old.ws.fail(wire.CodeReplaced, "another connection of this device took over")
	}
	if s.cluster != nil {
		s.cluster.linked(d) // the device's presence, and the end of its link at another instance
	}
	s.audit.log(AuditEntry{Event: EventDeviceConnected, Remote: remote, Device: m.ID})
	s.log.Info("device connected", "device", m.ID, "remote", remote)
	relayLease := fmt.Sprintf("device:%s@%p", m.ID, d) // this link's: a replacing link holds its own
	defer s.releaseRelay(relayLease)
	ws.SendJSON(iceMsg{Type: wire.TypeWelcome, ICEServers: s.iceServers(relayLease, "device:"+m.ID, s.cfg.ICE.TTL), SFU: s.sfu != nil})
	ws.SendJSON(s.revokedMsg())

	// Fresh TURN credentials well before the old ones expire: a timer, not a goroutine per link.
	defer every(s.cfg.ICE.TTL/2, func() {
		ws.SendJSON(iceMsg{Type: wire.TypeICE, ICEServers: s.iceServers(relayLease, "device:"+m.ID, s.cfg.ICE.TTL)})
	})()

	reason := s.deviceLoop(d)
	s.mu.Lock()
	if s.devices[m.ID] == d {
		delete(s.devices, m.ID)
	}
	closing := s.closing
	s.mu.Unlock()
	if s.cluster != nil {
		s.cluster.unlinked(d)
	}
	d.mu.Lock()
	viewers := make([]*viewerConn, 0, len(d.sessions))
	for _, v := range d.sessions {
		viewers = append(viewers, v)
	}
	d.mu.Unlock()
	for _, v := range viewers {
		d.mu.Lock()
		if v.orphan != nil {
			v.orphan.Stop()
		}
		vws := v.ws
		d.mu.Unlock()
		if closing {
			// Media flows peer to peer and outlives the hub: viewers keep watching and
			// reconnect their signaling when the hub is back.
			vws.fail(wire.CodeShutdown, "the hub is restarting")
		} else {
			vws.fail(wire.CodeOffline, "the device went offline")
		}
	}
	s.audit.log(AuditEntry{Event: EventDeviceDisconnected, Remote: remote, Device: m.ID, Reason: reason})
	s.log.Info("device disconnected", "device", m.ID, "reason", reason)
}

func (s *Server) urlList() string {
	list := make([]string, 0, len(s.urls))
	for u := range s.urls {
		list = append(list, u)
	}
	slices.Sort(list)
	return strings.Join(list, ", ")
}

func (s *Server) verifyDevice(m authMsg, c auth.Challenge) error {
	if err := auth.ValidateDeviceID(m.ID); err != nil {
		return err
	}
	pub, err := s.cfg.Store.DevicePublicKey(m.ID)
	if err != nil {
		return err
	}
	sig, err := decodeSig(m.Sig)
	if err != nil {
		return err
	}
	if !s.urls[m.URL] {
		return fmt.Errorf("the device dialled %.100q, which is not this hub (it answers at %s; see --url)", m.URL, s.urlList())
	}
	return auth.VerifyChallenge(pub, m.ID, m.URL, c, sig)
}

// deviceLoop relays the device's messages until the link ends, and says why it ended.
func (s *Server) deviceLoop(d *deviceConn) string {
	bad := 0
	for {
		data, err := d.ws.read()
		if err != nil {
			if errors.Is(err, errBinary) {
				d.ws.fail(wire.CodeBadMessage, err.Error())
				return err.Error()
			}
			return "connection closed: " + err.Error()
		}
		m, err := ParseDeviceMessage(data)
		if err != nil {
			bad++
			d.ws.SendJSON(errorMsg{Type: wire.TypeError, Code: wire.CodeBadMessage, Message: err.Error()})
			if bad > 20 {
				d.ws.fail(wire.CodeBadMessage, "too many bad messages")
				return "too many bad messages"
			}
			continue
		}
		switch m.Type {
		case wire.TypeStream:
			d.mu.Lock()
			d.stream, d.sources = m.Stream, m.Sources
			d.mu.Unlock()
		case wire.TypeSession:
			if s.sfuFromDevice(d, m) { // sfu.go
				continue
			}
			d.mu.Lock()
			var ws viewerSink
			if v := d.sessions[m.SID]; v != nil {
				ws = v.ws
			}
			d.mu.Unlock()
			if ws != nil {
				ws.Send(m.Msg)
			}
			// A message for a session that just ended is normal (the viewer left meanwhile).
		}
	}
}

// ---- viewers ----

// viewerConn is one viewer session relayed to a device. Its socket can change: a viewer whose
// network changed comes back on a new socket and resumes the session (then restarts ICE on it).
type viewerConn struct {
	sid     string
	tokenID string
	claims  auth.Claims
	ws      viewerSink  // under deviceConn.mu
	orphan  *time.Timer // under deviceConn.mu: set while the session waits to be resumed
}

// viewerSink is where a session's device messages go: the viewer's socket on this hub
// (*wsConn), or, in a cluster, the hub instance the viewer is connected to (cluster.go).
type viewerSink interface {
	Send(msg []byte) bool
	fail(code, msg string)
	Close()
}

func (s *Server) serveViewer(w http.ResponseWriter, r *http.Request) {
	remote := s.remoteAddr(r)
	hs, ok := s.admitHandshake(w, r, remote)
	if !ok {
		return
	}
	defer hs.end()
	headerToken := signal.BearerToken(r)
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws := newWSConn(c, s.log.With("remote", remote))
	defer ws.finish()
	m, ok := s.readAuth(ws, remote, nil)
	hs.end()
	if !ok {
		return
	}
	token := m.Token
	if token == "" {
		token = headerToken
	}
	claims, err := s.verifyToken(token)
	if err != nil {
		s.authFailed(remote, m.Device, "", err.Error())
		ws.fail(wire.CodeUnauthorized, "token refused: "+err.Error())
		<-ws.Done()
		return
	}
	if s.isRevoked(claims.ID) {
		s.authFailed(remote, m.Device, claims.ID, "token revoked")
		ws.fail(wire.CodeUnauthorized, "token refused: revoked")
		<-ws.Done()
		return
	}
	if !claims.Allows(m.Device, auth.GrantView) {
		s.authFailed(remote, m.Device, claims.ID, "token does not grant view on this device")
		ws.fail(wire.CodeForbidden, fmt.Sprintf("this token does not allow viewing %q", m.Device))
		<-ws.Done()
		return
	}
	s.mu.Lock()
	d := s.devices[m.Device]
	s.mu.Unlock()
	if d == nil && s.cluster != nil && s.cluster.serveViewer(ws, remote, m, claims) {
		return // the device is linked to another instance: the session went through it
	}
	if d == nil {
		s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Device: m.Device, TokenID: claims.ID, Reason: "device offline"})
		ws.fail(wire.CodeOffline, fmt.Sprintf("device %q is not connected to the hub", m.Device))
		<-ws.Done()
		return
	}
	v, resumed, refusal := s.attach(d, ws, m.Resume, claims)
	if refusal != "" {
		s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Device: m.Device, TokenID: claims.ID, Reason: refusal})
		ws.fail(wire.CodeBusy, "the device has too many viewers ("+refusal+")")
		<-ws.Done()
		return
	}
	// A revocation that landed between the check above and attach would not reach this
	// session through refreshRevoked (it was not registered yet): look again.
	if s.isRevoked(claims.ID) {
		ws.fail(wire.CodeUnauthorized, "token refused: revoked")
	}
	d.mu.Lock()
	stream, sources := d.stream, d.sources
	d.mu.Unlock()
	_ = c.SetReadDeadline(time.Now().Add(pongWait))
	event := EventSessionStarted
	if resumed {
		event = EventSessionResumed
	}
	s.audit.log(AuditEntry{Event: event, Remote: remote, Device: d.id, TokenID: claims.ID, Session: v.sid})
	// TURN credentials live no longer than the token.
	ttl := min(s.cfg.ICE.TTL, claims.Expires.Sub(s.cfg.Now()))
	ws.SendJSON(helloMsg{Type: wire.TypeHello, Version: 1, ICEServers: s.iceServers("viewer:"+v.sid, "viewer:"+v.sid, ttl),
		Stream: stream, Sources: sources, Session: v.sid, Resumed: resumed})

	// The session lasts no longer than the token.
	expiry := time.AfterFunc(claims.Expires.Sub(s.cfg.Now()), func() { ws.fail(wire.CodeExpired, "the token expired") })
	reason, bye := s.viewerLoop(d, v, ws)
	expiry.Stop()
	s.detach(d, v, ws, bye, func(why string) {
		s.releaseRelay("viewer:" + v.sid)
		s.sfuEnded(v.sid)
		s.audit.log(AuditEntry{Event: EventSessionEnded, Remote: remote, Device: d.id, TokenID: claims.ID, Session: v.sid, Reason: why})
	}, reason)
}

// attach gives ws a session of d: the one named resume if the same token made it (the viewer
// came back on a new socket; the old one, if the hub still thinks it alive, is closed), or a
// new one. refusal is set when the device has no room for another.
func (s *Server) attach(d *deviceConn, ws viewerSink, resume string, claims auth.Claims) (v *viewerConn, resumed bool, refusal string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.sessions[resume]; resume != "" && old != nil && old.tokenID == claims.ID {
		if old.orphan != nil {
			old.orphan.Stop()
			old.orphan = nil
		}
		prev := old.ws
		old.ws = ws
		if prev != ws {
			prev.Close() // its loop sees it is no longer the session's socket and leaves quietly
		}
		return old, true, ""
	}
	if len(d.sessions) >= s.cfg.MaxSessionsPerDevice {
		return nil, false, "device busy"
	}
	n := 0
	for _, o := range d.sessions {
		if o.tokenID == claims.ID {
			n++
		}
	}
	if n >= s.settings().maxPerToken { // reloadable
		return nil, false, fmt.Sprintf("token holds %d sessions on this device already", n)
	}
	v = &viewerConn{sid: newID(), tokenID: claims.ID, claims: claims, ws: ws}
	d.sessions[v.sid] = v
	return v, false, ""
}

// detach ends ws's part in session v. A session resumed on another socket is left alone; one
// its viewer left (bye) ends now; one whose socket just dropped waits ResumeWait for the
// viewer to come back, then its device session is ended. ended is called when it ends.
func (s *Server) detach(d *deviceConn, v *viewerConn, ws viewerSink, bye bool, ended func(string), reason string) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	end := func() {
		d.mu.Lock()
		if d.sessions[v.sid] != v || v.ws != ws {
			d.mu.Unlock()
			return // resumed meanwhile, or already gone with its device
		}
		delete(d.sessions, v.sid)
		d.mu.Unlock()
		if !bye {
			d.ws.SendJSON(sessionMsg{Type: wire.TypeSession, SID: v.sid, Msg: byeJSON})
		}
		ended(reason)
	}
	d.mu.Lock()
	current := v.ws == ws
	d.mu.Unlock()
	switch {
	case !current:
		return
	case closing:
		// The hub goes away: media goes on and the session with it, on the device's side.
		ended(reason)
	case bye:
		end()
	default:
		d.mu.Lock()
		if v.ws == ws && v.orphan == nil {
			v.orphan = time.AfterFunc(s.cfg.ResumeWait, end)
		}
		d.mu.Unlock()
	}
}

// viewerLoop forwards the viewer's signaling to the device.
func (s *Server) viewerLoop(d *deviceConn, v *viewerConn, ws *wsConn) (reason string, bye bool) {
	return readViewer(ws, func(data []byte, in signal.Inbound) bool {
		if s.sfuFromViewer(v, in) { // sfu.go: a session served by the SFU
			return false
		}
		// Every envelope carries the claims, so a device that (re)learns of the session from
		// any message knows what it may do, and for how long from now.
		claims := auth.ClaimsFor(v.claims, s.cfg.Now())
		d.ws.SendJSON(sessionMsg{Type: wire.TypeSession, SID: v.sid, Msg: data, Claims: &claims})
		return true
	})
}

// readViewer reads a viewer's signaling until its socket ends or it says bye, and hands each
// message to forward. Messages are checked here, so a device only ever sees well-formed ones
// and a misbehaving viewer is stopped at the hub (the 21st bad message ends its socket).
// forward reports whether it sent the message on to the device: a bye it did not send (one
// the SFU bridge took) does not end the loop.
func readViewer(ws *wsConn, forward func(data []byte, in signal.Inbound) bool) (reason string, bye bool) {
	bad := 0
	for {
		data, err := ws.read()
		var in signal.Inbound
		var perr error
		if err == nil {
			in, perr = signal.ParseInbound(data)
		} else if errors.Is(err, errBinary) {
			perr = err
		} else {
			return "connection closed: " + err.Error(), false
		}
		if perr != nil {
			bad++
			ws.SendJSON(errorMsg{Type: wire.TypeError, Code: wire.CodeBadMessage, Message: perr.Error()})
			if bad > 20 {
				ws.fail(wire.CodeFatal, "too many bad messages")
				return "too many bad messages", false
			}
			continue
		}
		if forward(data, in) && in.Type == wire.TypeBye {
			return "the viewer left", true
		}
	}
}

// ---- HTTP API ----

// DeviceInfo is one entry of GET /api/devices.
type DeviceInfo struct {
	ID     string          `json:"id"`
	Online bool            `json:"online"`
	Stream json.RawMessage `json:"stream,omitempty"`
	// Sources are a multi-source device's sources (id, description, default, stream), the
	// default first; absent for a device with one.
	Sources json.RawMessage `json:"sources,omitempty"`
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	remote := s.remoteAddr(r)
	if !s.admit(w, r, remote) {
		return
	}
	token := signal.BearerToken(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="p2pcast"`)
		http.Error(w, "a bearer token is required", http.StatusUnauthorized)
		return
	}
	claims, err := s.verifyToken(token)
	if err == nil && s.isRevoked(claims.ID) {
		err = auth.ErrRevoked
	}
	if err != nil {
		s.authFailed(remote, "", "", err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer realm="p2pcast", error="invalid_token"`)
		http.Error(w, "token refused: "+err.Error(), http.StatusUnauthorized)
		return
	}
	enrolled, err := s.cfg.Store.Devices()
	if err != nil {
		http.Error(w, "device registry unreadable", http.StatusInternalServerError)
		return
	}
	out := struct {
		Devices []DeviceInfo `json:"devices"`
	}{Devices: []DeviceInfo{}}
	s.mu.Lock()
	for _, id := range claims.VisibleDevices(enrolled) {
		info := DeviceInfo{ID: id}
		if d := s.devices[id]; d != nil {
			info.Online = true
			d.mu.Lock()
			info.Stream, info.Sources = d.stream, d.sources
			d.mu.Unlock()
		}
		out.Devices = append(out.Devices, info)
	}
	s.mu.Unlock()
	if s.cluster != nil {
		s.cluster.fillDevices(out.Devices) // those online at other instances
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// ---- ICE ----

// ICEConfig is the STUN/TURN service the hub hands out.
type ICEConfig struct {
	// STUN and TURN URLs, e.g. "stun:203.0.113.5:3478", "turn:203.0.113.5:3478?transport=udp".
	STUN []string
	TURN []string
	// Secret of the TURN REST scheme shared with the TURN server.
	Secret []byte
	// TTL of the TURN credentials (default 12 h).
	TTL time.Duration
}

// iceServers are the STUN/TURN servers for a session, with TURN credentials for name valid
// for ttl: every one the hub has, or, with several external relays, the one lease holds.
func (s *Server) iceServers(lease, name string, ttl time.Duration) []webrtc.ICEServer {
	ice := s.cfg.ICE
	if s.relays != nil {
		ice.STUN, ice.TURN = s.relays.pick(lease)
	}
	return ice.servers(name, ttl, s.cfg.Now())
}

// releaseRelay ends lease's hold on its relay (the session ended).
func (s *Server) releaseRelay(lease string) {
	if s.relays != nil {
		s.relays.release(lease)
	}
}

// checkRelays checks the external relays' health until ctx ends (nothing to do for one).
func (s *Server) checkRelays(ctx context.Context) {
	if s.relays != nil {
		s.relays.run(ctx)
	}
}

// servers are the STUN/TURN servers with TURN credentials valid for ttl.
func (c ICEConfig) servers(name string, ttl time.Duration, now time.Time) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	if len(c.STUN) > 0 {
		out = append(out, webrtc.ICEServer{URLs: c.STUN})
	}
	if len(c.TURN) > 0 && len(c.Secret) > 0 {
		user, pass := auth.TURNCredential(c.Secret, name, max(ttl, time.Second), now)
		out = append(out, webrtc.ICEServer{URLs: c.TURN, Username: user, Credential: pass})
	}
	return out
}
