//go:build !device

package hub

// A hub cluster (docs/cluster.md): hub instances joined through a NATS server share which
// instance holds which device link and relay the sessions of a viewer on one instance to a
// device linked to another. Everything here is core NATS (subjects, request/reply with no
// responders): no JetStream, no state in the NATS server beyond its subscriptions.
//
// Subjects (device ids are escaped: see devSubject; instance ids and refs are [A-Za-z0-9_-]):
//
//	p2pcast.dev.<device>          the device's holder, subscribed while the link lives:
//	                              open (a session, request/reply), info (request/reply),
//	                              linked (another instance took the device's link over)
//	p2pcast.hub.<instance>.ping   liveness (request/reply)
//	p2pcast.hub.<instance>.d.<ref>  viewer → device: a session envelope, to the holder
//	p2pcast.hub.<instance>.x.<ref>  the viewer's socket ended (bye or not), to the holder
//	p2pcast.hub.<instance>.v.<ref>  device → viewer: a signaling message, to the viewer's instance
//	p2pcast.hub.<instance>.c.<ref>  the holder's word on the session: fail, close, lost
//
// A ref names one viewer socket's attachment to a session: the viewer's instance makes it, and
// both sides key the session by it, so a message for a socket that has been superseded (the
// viewer resumed elsewhere) finds nothing instead of the new socket.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/metrics"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Subjects.
const subjectPrefix = "p2pcast"

// devSubject is the subject of device id's holder; ok is false for an id auth refuses. A
// device id may hold '.', NATS's token separator: it becomes '~', which no device id holds,
// so the subject is one token and one device's alone (ids never hold '*', '>' or spaces).
func devSubject(id string) (string, bool) {
	if auth.ValidateDeviceID(id) != nil {
		return "", false
	}
	return subjectPrefix + ".dev." + strings.ReplaceAll(id, ".", "~"), true
}

func deviceOfSubject(subj string) string {
	return strings.ReplaceAll(strings.TrimPrefix(subj, subjectPrefix+".dev."), "~", ".")
}

func instSubject(instance string) string { return subjectPrefix + ".hub." + instance }

// Timings.
const (
	openWait       = 2 * time.Second        // a session's open request to the device's holder
	infoWait       = 500 * time.Millisecond // a device list's presence requests
	peerCheckEvery = time.Second            // how often instances we share sessions with are pinged
	peerPingWait   = time.Second
	peerMisses     = 3                      // pings timed out in a row (no answer, yet subscribed) before an instance counts as gone
	relocateEvery  = 250 * time.Millisecond // a session whose holder is gone looks for the device this often
	connectWait    = 5 * time.Second
	// reconnectGrace: after a NATS outage the instances reconnect at different times (each
	// waits 250 ms plus up to 1 s of jitter between attempts); none is taken for gone meanwhile.
	reconnectGrace = 5 * time.Second
)

// Operations on a device's subject.
const (
	opOpen   = "open"
	opInfo   = "info"
	opLinked = "linked"
)

// devRequest is a message on a device's subject.
type devRequest struct {
	Op   string `json:"op"`
	From string `json:"from"` // the sending instance
	// open: the viewer socket's ref, its token id, and the session to resume (a viewer's
	// resume) or to adopt (carry on with under the same id at a new holder).
	Ref     string `json:"ref,omitempty"`
	TokenID string `json:"tid,omitempty"`
	Resume  string `json:"resume,omitempty"`
	Adopt   string `json:"adopt,omitempty"`
	// linked: when the link was made (Unix ns): the newer link wins.
	At int64 `json:"at,omitempty"`
}

// devReply answers open and info.
type devReply struct {
	Holder   string          `json:"holder"`
	SID      string          `json:"sid,omitempty"`
	Resumed  bool            `json:"resumed,omitempty"`
	Refusal  string          `json:"refusal,omitempty"`
	Stream   json.RawMessage `json:"stream,omitempty"`
	Sources  json.RawMessage `json:"sources,omitempty"`
	Sessions int             `json:"sessions,omitempty"`
}

// control is the holder's word on a session, to the viewer's instance.
type control struct {
	Op      string `json:"op"` // fail, close, lost
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// detachMsg: the viewer's socket ended.
type detachMsg struct {
	Bye    bool   `json:"bye,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// cluster is a hub's membership of a cluster.
type cluster struct {
	id  string
	nc  *nats.Conn
	log *slog.Logger
	s   *Server // set by start

	devCh   chan *nats.Msg // every device subscription's messages
	instSub *nats.Subscription
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	owned   bool // New connected it: Server.Close closes it

	mu      sync.Mutex
	held    map[string]*heldLink     // device id → its link here
	sinks   map[string]*remoteSink   // ref → a session of a device here, its viewer elsewhere
	viewers map[string]*remoteViewer // ref → a viewer here, its device elsewhere
	misses  map[string]int           // instance → pings timed out in a row
	pinging map[string]bool

	reattached, peersLost atomic.Int64
	// reconnected is when the NATS connection last came back (Unix ns): the other instances
	// may take a moment longer, and are not judged meanwhile.
	reconnected atomic.Int64
}

// heldLink is a device link of this instance as the cluster knows it: one subscription (all
// of them feed devCh, read by one goroutine), no goroutine of its own.
type heldLink struct {
	d   *deviceConn
	at  int64 // Unix ns of the link
	sub *nats.Subscription
}

// connectCluster connects to NATS and claims the instance id; start puts it to work.
func connectCluster(cfg ClusterConfig, log *slog.Logger) (*cluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := cfg.instance()
	log = log.With("instance", id)
	c := &cluster{
		id: id, log: log,
		devCh:   make(chan *nats.Msg, 8192),
		stop:    make(chan struct{}),
		held:    map[string]*heldLink{},
		sinks:   map[string]*remoteSink{},
		viewers: map[string]*remoteViewer{},
		misses:  map[string]int{},
		pinging: map[string]bool{},
	}
	opts := []nats.Option{
		nats.Name("p2pcast hub " + id),
		nats.Timeout(connectWait),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed by this side
				log.Warn("cluster: NATS connection lost; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.reconnected.Store(time.Now().UnixNano())
			log.Info("cluster: NATS connection back", "server", nc.ConnectedUrlRedacted())
		}),
	}
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: NKey seed file: %w", err)
		}
		opts = append(opts, o)
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to NATS at %s: %w", redactURL(cfg.URL), err)
	}
	// The id is ours if nobody answers on its subject.
	if _, err := nc.Request(instSubject(id)+".ping", nil, peerPingWait); !errors.Is(err, nats.ErrNoResponders) {
		nc.Close()
		if err == nil {
			return nil, fmt.Errorf("cluster: instance id %q is taken by a running hub (--cluster-instance)", id)
		}
		return nil, fmt.Errorf("cluster: checking instance id %q: %w", id, err)
	}
	c.nc = nc
	return c, nil
}

// start serves s's part of the cluster: its instance subject, the devices' subjects, the
// liveness of the instances it shares sessions with. Devices already linked are announced.
func (c *cluster) start(s *Server) error {
	c.s = s
	s.cluster = c
	sub, err := c.nc.Subscribe(instSubject(c.id)+".>", c.onInstance)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	// An instance's subject carries every session message of its remote viewers: no limit but
	// memory (the default drops after 512 KiB pending).
	_ = sub.SetPendingLimits(-1, 64<<20)
	c.instSub = sub
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.wg.Add(2)
	go c.devLoop()
	go c.peerLoop()
	s.mu.Lock()
	devs := make([]*deviceConn, 0, len(s.devices))
	for _, d := range s.devices {
		devs = append(devs, d)
	}
	s.mu.Unlock()
	for _, d := range devs {
		c.linked(d)
	}
	c.log.Info("joined the hub cluster", "nats", c.nc.ConnectedUrlRedacted())
	return nil
}

// close leaves the cluster: after the device links have ended and their viewers elsewhere
// have been told (within a second), the connection is flushed and closed.
func (c *cluster) close() {
	c.once.Do(func() {
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			c.mu.Lock()
			n := len(c.held) + len(c.sinks)
			c.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(c.stop)
		if c.nc.IsConnected() { // while reconnecting there is nobody to flush to
			_ = c.nc.FlushTimeout(time.Second)
		}
		c.nc.Close()
		c.wg.Wait()
	})
}

// serverClosed: the hub is going away. Its viewers of devices at other instances hear so (as
// a hub's viewers do) and keep their media; New's connection closes with it.
func (c *cluster) serverClosed() {
	c.mu.Lock()
	rvs := make([]*remoteViewer, 0, len(c.viewers))
	for _, rv := range c.viewers {
		rvs = append(rvs, rv)
	}
	c.mu.Unlock()
	for _, rv := range rvs {
		rv.ws.fail(wire.CodeShutdown, "the hub is restarting")
	}
	if c.owned {
		go c.close()
	}
}

func (c *cluster) publishJSON(subj string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if err := c.nc.Publish(subj, b); err != nil {
		c.log.Debug("cluster: publish", "subject", subj, "err", err)
	}
}

// ---- the device's holder ----

// linked makes d findable through the cluster, and ends an older link of the device at
// another instance (the newer link wins, as within one hub).
func (c *cluster) linked(d *deviceConn) {
	subj, ok := devSubject(d.id)
	if !ok {
		return
	}
	at := time.Now().UnixNano()
	c.mu.Lock()
	h := c.held[d.id]
	fresh := h == nil
	if fresh {
		h = &heldLink{}
		c.held[d.id] = h
	}
	h.d, h.at = d, at
	c.mu.Unlock()
	// Before subscribing, so that we do not hear it ourselves.
	c.publishJSON(subj, devRequest{Op: opLinked, From: c.id, At: at})
	if !fresh {
		return
	}
	sub, err := c.nc.ChanSubscribe(subj, c.devCh)
	if err != nil {
		c.log.Warn("cluster: subscribing for a device", "device", d.id, "err", err)
		return
	}
	c.mu.Lock()
	if c.held[d.id] == h {
		h.sub, sub = sub, nil
	}
	c.mu.Unlock()
	if sub != nil { // unlinked meanwhile
		_ = sub.Unsubscribe()
		return
	}
	// Findable from the other instances before the device hears it is welcome (one round
	// trip to NATS; while NATS is away the subscription is made when it is back).
	if c.nc.IsConnected() {
		_ = c.nc.FlushTimeout(time.Second)
	}
}

// unlinked: d's link ended.
func (c *cluster) unlinked(d *deviceConn) {
	c.mu.Lock()
	h := c.held[d.id]
	if h == nil || h.d != d {
		c.mu.Unlock()
		return
	}
	delete(c.held, d.id)
	c.mu.Unlock()
	if h.sub != nil {
		_ = h.sub.Unsubscribe()
	}
}

// devLoop serves the device subjects' messages, one at a time; none of them waits on anything.
func (c *cluster) devLoop() {
	defer c.wg.Done()
	for {
		select {
		case m := <-c.devCh:
			c.onDevice(m)
		case <-c.stop:
			return
		}
	}
}

func (c *cluster) onDevice(m *nats.Msg) {
	var req devRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || !validInstance(req.From) {
		return
	}
	id := deviceOfSubject(m.Subject)
	c.mu.Lock()
	h := c.held[id]
	var d *deviceConn
	var at int64
	if h != nil {
		d, at = h.d, h.at
	}
	c.mu.Unlock()
	if d == nil {
		return // not (or no longer) here: another subscriber, the holder, answers
	}
	switch req.Op {
	case opLinked:
		if req.From != c.id && (at < req.At || at == req.At && c.id < req.From) {
			c.log.Info("device linked to another instance; ending its link here", "device", id, "instance", req.From)
			d.ws.fail(wire.CodeReplaced, "another connection of this device took over")
		}
	case opInfo:
		d.mu.Lock()
		r := devReply{Holder: c.id, Stream: d.stream, Sources: d.sources, Sessions: len(d.sessions)}
		d.mu.Unlock()
		c.reply(m, r)
	case opOpen:
		if validInstance(req.Ref) && m.Reply != "" {
			c.reply(m, c.open(d, req))
		}
	}
}

func (c *cluster) reply(m *nats.Msg, r devReply) {
	b, _ := json.Marshal(r)
	if err := m.Respond(b); err != nil {
		c.log.Debug("cluster: reply", "err", err)
	}
}

// open gives a viewer at another instance a session of d: a new one, the one it resumes (the
// same token's), or the one it adopts (the session it had with the device's previous holder,
// under the same id).
func (c *cluster) open(d *deviceConn, req devRequest) devReply {
	sink := &remoteSink{c: c, inst: req.From, ref: req.Ref, d: d}
	claims := auth.Claims{ID: req.TokenID}
	var v *viewerConn
	var resumed bool
	var refusal string
	switch {
	case req.Adopt != "" && len(req.Adopt) <= maxSessionID:
		d.mu.Lock()
		prev := d.sessions[req.Adopt]
		existing := prev != nil
		if existing {
			// The same socket coming back (its instance thought this one gone, as after a
			// NATS outage): the sink it replaces must not tell it to close.
			if r, ok := prev.ws.(*remoteSink); ok && r.inst == req.From && r.ref == req.Ref {
				r.quiet.Store(true)
			}
		}
		d.mu.Unlock()
		if existing {
			// The session is still here (the viewer came back before its link moved): resume
			// it; another token's session of that id leaves this one a new id of its own.
			v, resumed, refusal = c.s.attach(d, sink, req.Adopt, claims)
		} else if v, _, refusal = c.s.attach(d, sink, "", claims); refusal == "" {
			d.mu.Lock()
			if d.sessions[req.Adopt] == nil {
				delete(d.sessions, v.sid)
				v.sid = req.Adopt
				d.sessions[v.sid] = v
			}
			d.mu.Unlock()
			resumed = true
		}
	default:
		v, resumed, refusal = c.s.attach(d, sink, req.Resume, claims)
	}
	if refusal != "" {
		return devReply{Holder: c.id, Refusal: refusal}
	}
	d.mu.Lock()
	sink.v = v
	sid := v.sid
	stream, sources := d.stream, d.sources
	d.mu.Unlock()
	c.mu.Lock()
	if !sink.gone {
		c.sinks[sink.ref] = sink
	}
	c.mu.Unlock()
	return devReply{Holder: c.id, SID: sid, Resumed: resumed, Stream: stream, Sources: sources}
}

// remoteSink is a viewer's socket at another instance, as a session of a device here sees it.
type remoteSink struct {
	c    *cluster
	inst string // the viewer's instance
	ref  string
	d    *deviceConn
	v    *viewerConn // under d.mu
	gone bool        // under c.mu: dropped
	// quiet: replaced by a sink of the same socket; Close says nothing to it.
	quiet atomic.Bool
}

func (r *remoteSink) Send(msg []byte) bool {
	if err := r.c.nc.Publish(instSubject(r.inst)+".v."+r.ref, msg); err != nil {
		return false
	}
	return true
}

// fail: the session ends for a reason the viewer hears. The device's link ending (offline,
// or the hub shutting down) ends the session here: the viewer's instance looks for the
// device at another instance.
func (r *remoteSink) fail(code, msg string) {
	op := "fail"
	if code == wire.CodeShutdown {
		op = "lost"
	}
	r.c.publishJSON(instSubject(r.inst)+".c."+r.ref, control{Op: op, Code: code, Message: msg})
	if code == wire.CodeShutdown || code == wire.CodeOffline {
		r.c.dropSink(r) // after the publish: close waits for the sinks to go
	}
}

// Close: the session went on with another socket of the viewer.
func (r *remoteSink) Close() {
	r.c.dropSink(r)
	if r.quiet.Load() {
		return
	}
	r.c.publishJSON(instSubject(r.inst)+".c."+r.ref, control{Op: "close"})
}

func (c *cluster) dropSink(r *remoteSink) {
	c.mu.Lock()
	r.gone = true
	if c.sinks[r.ref] == r {
		delete(c.sinks, r.ref)
	}
	c.mu.Unlock()
}

// onInstance serves this instance's subject (one goroutine, in order).
func (c *cluster) onInstance(m *nats.Msg) {
	rest := strings.TrimPrefix(m.Subject, instSubject(c.id)+".")
	if rest == "ping" {
		_ = m.Respond([]byte("pong"))
		return
	}
	kind, ref, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	switch kind {
	case "d": // viewer → device
		c.mu.Lock()
		r := c.sinks[ref]
		c.mu.Unlock()
		if r != nil {
			r.d.mu.Lock()
			v := r.v
			r.d.mu.Unlock()
			if c.s.sfuFromEnvelope(v, m.Data) {
				return // a session the hub bridges to the SFU: not the device's
			}
			r.d.ws.Send(m.Data)
		}
	case "x": // the viewer's socket ended
		c.mu.Lock()
		r := c.sinks[ref]
		c.mu.Unlock()
		if r == nil {
			return
		}
		var dm detachMsg
		_ = json.Unmarshal(m.Data, &dm)
		c.detachSink(r, dm.Bye, dm.Reason)
	case "v": // device → viewer
		c.mu.Lock()
		rv := c.viewers[ref]
		c.mu.Unlock()
		if rv != nil {
			rv.ws.Send(m.Data)
		}
	case "c":
		c.mu.Lock()
		rv := c.viewers[ref]
		c.mu.Unlock()
		if rv == nil {
			return
		}
		var ctl control
		if json.Unmarshal(m.Data, &ctl) != nil {
			return
		}
		c.onControl(rv, ctl)
	}
}

// detachSink ends the viewer's part in a session here as a socket's end does (detach): at
// once after a bye, else after ResumeWait unless the viewer resumes it.
func (c *cluster) detachSink(r *remoteSink, bye bool, reason string) {
	r.d.mu.Lock()
	v := r.v
	r.d.mu.Unlock()
	if v == nil {
		return
	}
	c.s.detach(r.d, v, r, bye, func(string) {
		c.s.sfuEnded(v.sid)
		c.dropSink(r)
		if !bye {
			// Ended without its viewer's leave: should the viewer's instance still be there
			// (it was taken for gone), its viewer hears the session is over here.
			c.publishJSON(instSubject(r.inst)+".c."+r.ref, control{Op: "fail", Code: wire.CodeOffline, Message: "the session ended at the device's hub"})
		}
	}, reason)
}

// ---- the viewer's instance ----

// remoteViewer is a viewer socket here whose device is linked to another instance.
type remoteViewer struct {
	ref     string
	ws      *wsConn
	device  string
	tokenID string

	mu         sync.Mutex
	holder     string // the instance holding the device
	sid        string
	closed     bool // the holder moved the session to another socket: leave quietly
	relocating bool
}

func (rv *remoteViewer) target() (holder, sid string) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.holder, rv.sid
}

// request asks the device's holder; nats.ErrNoResponders when no instance holds it.
func (c *cluster) request(device string, req devRequest, wait time.Duration) (devReply, error) {
	subj, ok := devSubject(device)
	if !ok {
		return devReply{}, auth.ErrBadDeviceID
	}
	b, _ := json.Marshal(req)
	m, err := c.nc.Request(subj, b, wait)
	if err != nil {
		return devReply{}, err
	}
	var r devReply
	if err := json.Unmarshal(m.Data, &r); err != nil || !validInstance(r.Holder) {
		return devReply{}, fmt.Errorf("cluster: bad reply from the holder of %q", device)
	}
	return r, nil
}

// serveViewer relays ws's session to its device through the instance that holds it, as
// serveViewer does for a device here. It returns false, having done nothing, when no
// instance holds the device.
func (c *cluster) serveViewer(ws *wsConn, remote string, m authMsg, claims auth.Claims) bool {
	s := c.s
	if _, ok := devSubject(m.Device); !ok {
		return false
	}
	rv := &remoteViewer{ref: newID(), ws: ws, device: m.Device, tokenID: claims.ID}
	c.mu.Lock()
	c.viewers[rv.ref] = rv
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.viewers, rv.ref)
		c.mu.Unlock()
	}()
	rep, err := c.request(m.Device, devRequest{Op: opOpen, From: c.id, Ref: rv.ref, TokenID: claims.ID, Resume: m.Resume}, openWait)
	if err != nil {
		if !errors.Is(err, nats.ErrNoResponders) {
			c.log.Warn("cluster: no answer from the device's holder", "device", m.Device, "err", err)
		}
		return false
	}
	if rep.Refusal != "" {
		s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Device: m.Device, TokenID: claims.ID, Reason: rep.Refusal})
		ws.fail(wire.CodeBusy, "the device has too many viewers ("+rep.Refusal+")")
		<-ws.Done()
		return true
	}
	rv.mu.Lock()
	rv.holder, rv.sid = rep.Holder, rep.SID
	rv.mu.Unlock()
	if s.isRevoked(claims.ID) {
		ws.fail(wire.CodeUnauthorized, "token refused: revoked")
	}
	_ = ws.conn.SetReadDeadline(time.Now().Add(pongWait))
	event := EventSessionStarted
	if rep.Resumed {
		event = EventSessionResumed
	}
	s.audit.log(AuditEntry{Event: event, Remote: remote, Device: m.Device, TokenID: claims.ID, Session: rep.SID})
	ttl := min(s.cfg.ICE.TTL, claims.Expires.Sub(s.cfg.Now()))
	defer s.releaseRelay("viewer:" + rep.SID)
	ws.SendJSON(helloMsg{Type: wire.TypeHello, Version: 1, ICEServers: s.iceServers("viewer:"+rep.SID, "viewer:"+rep.SID, ttl),
		Stream: rep.Stream, Sources: rep.Sources, Session: rep.SID, Resumed: rep.Resumed})

	expiry := time.AfterFunc(claims.Expires.Sub(s.cfg.Now()), func() { ws.fail(wire.CodeExpired, "the token expired") })
	reason, bye := c.viewerLoop(rv, ws, claims)
	expiry.Stop()
	rv.mu.Lock()
	holder, sid, closed := rv.holder, rv.sid, rv.closed
	rv.mu.Unlock()
	if !closed {
		c.publishJSON(instSubject(holder)+".x."+rv.ref, detachMsg{Bye: bye, Reason: reason})
	}
	s.audit.log(AuditEntry{Event: EventSessionEnded, Remote: remote, Device: m.Device, TokenID: claims.ID, Session: sid, Reason: reason})
	return true
}

// viewerLoop is Server.viewerLoop for a device at another instance.
func (c *cluster) viewerLoop(rv *remoteViewer, ws *wsConn, claims auth.Claims) (reason string, bye bool) {
	return readViewer(ws, func(data []byte, _ signal.Inbound) bool {
		holder, sid := rv.target()
		sc := auth.ClaimsFor(claims, c.s.cfg.Now())
		env, err := json.Marshal(sessionMsg{Type: wire.TypeSession, SID: sid, Msg: data, Claims: &sc})
		if err == nil {
			if err := c.nc.Publish(instSubject(holder)+".d."+rv.ref, env); err != nil {
				c.log.Debug("cluster: relaying a viewer message", "err", err)
			}
		}
		return true
	})
}

// onControl applies the holder's word on rv's session.
func (c *cluster) onControl(rv *remoteViewer, ctl control) {
	switch ctl.Op {
	case "close":
		rv.mu.Lock()
		rv.closed = true
		rv.mu.Unlock()
		rv.ws.Close()
	case "lost":
		// The holder is shutting down: the device relinks elsewhere; wait for it there.
		go c.relocate(rv, c.s.cfg.ResumeWait)
	case "fail":
		if ctl.Code == wire.CodeOffline {
			// The device's link ended there: it may have moved to another instance already
			// (its newer link ended the old one). Offline only if it is nowhere.
			go c.relocate(rv, 0)
			return
		}
		rv.ws.fail(ctl.Code, ctl.Message)
	}
}

// relocate carries rv's session on at the device's new holder, under the same session id,
// looking for one for up to wait; past it the viewer hears the device is offline. The media
// goes on meanwhile: it flows peer to peer.
func (c *cluster) relocate(rv *remoteViewer, wait time.Duration) {
	rv.mu.Lock()
	if rv.relocating || rv.closed {
		rv.mu.Unlock()
		return
	}
	rv.relocating = true
	old := rv.holder
	rv.mu.Unlock()
	defer func() {
		rv.mu.Lock()
		rv.relocating = false
		rv.mu.Unlock()
	}()
	deadline := time.Now().Add(wait)
	for {
		_, sid := rv.target()
		rep, err := c.request(rv.device, devRequest{Op: opOpen, From: c.id, Ref: rv.ref, TokenID: rv.tokenID, Adopt: sid}, openWait)
		switch {
		case err == nil && rep.Refusal != "":
			rv.ws.fail(wire.CodeBusy, "the device has too many viewers ("+rep.Refusal+")")
			return
		case err == nil:
			rv.mu.Lock()
			rv.holder, rv.sid = rep.Holder, rep.SID
			rv.mu.Unlock()
			c.reattached.Add(1)
			c.log.Info("cluster: session carried on at the device's new holder", "device", rv.device, "session", rep.SID, "from", old, "to", rep.Holder)
			return
		}
		if !time.Now().Before(deadline) {
			rv.ws.fail(wire.CodeOffline, "the device went offline")
			return
		}
		select {
		case <-time.After(relocateEvery):
		case <-rv.ws.Done():
			return
		case <-c.stop:
			return
		}
	}
}

// ---- liveness ----

// peerLoop pings, every peerCheckEvery, the instances this one shares sessions with: a holder
// of its viewers' devices, an instance of its devices' viewers. One that has gone (its
// subscriptions went with its connection: no responders) is acted on at once.
func (c *cluster) peerLoop() {
	defer c.wg.Done()
	t := time.NewTicker(peerCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.stop:
			return
		}
		if !c.nc.IsConnected() || time.Since(time.Unix(0, c.reconnected.Load())) < reconnectGrace {
			continue // nobody can be judged from here now
		}
		peers := map[string]bool{}
		c.mu.Lock()
		for _, rv := range c.viewers {
			rv.mu.Lock()
			if rv.holder != "" && rv.holder != c.id && !rv.relocating {
				peers[rv.holder] = true
			}
			rv.mu.Unlock()
		}
		for _, r := range c.sinks {
			if r.inst != c.id {
				peers[r.inst] = true
			}
		}
		for p := range peers {
			if c.pinging[p] {
				continue
			}
			c.pinging[p] = true
			go c.ping(p)
		}
		c.mu.Unlock()
	}
}

func (c *cluster) ping(p string) {
	_, err := c.nc.Request(instSubject(p)+".ping", nil, peerPingWait)
	c.mu.Lock()
	delete(c.pinging, p)
	lost := false
	switch {
	case err == nil:
		delete(c.misses, p)
	case errors.Is(err, nats.ErrNoResponders):
		lost = true
	case errors.Is(err, nats.ErrTimeout):
		c.misses[p]++
		lost = c.misses[p] >= peerMisses
	}
	if lost {
		delete(c.misses, p)
	}
	c.mu.Unlock()
	if lost {
		c.peerLost(p)
	}
}

// peerLost: instance p is gone. Viewers here of its devices wait for those to relink
// elsewhere; sessions of devices here with viewers there wait for them to resume elsewhere.
func (c *cluster) peerLost(p string) {
	c.peersLost.Add(1)
	c.log.Warn("cluster: hub instance gone", "peer", p)
	var rvs []*remoteViewer
	var sinks []*remoteSink
	c.mu.Lock()
	for _, rv := range c.viewers {
		if h, _ := rv.target(); h == p {
			rvs = append(rvs, rv)
		}
	}
	for _, r := range c.sinks {
		if r.inst == p {
			sinks = append(sinks, r)
		}
	}
	c.mu.Unlock()
	for _, rv := range rvs {
		go c.relocate(rv, c.s.cfg.ResumeWait)
	}
	for _, r := range sinks {
		c.detachSink(r, false, "the viewer's hub instance is gone")
	}
}

// ---- lists and metrics ----

// infoAll asks for each id's holder, a few at a time; nil entries are offline everywhere.
func (c *cluster) infoAll(ids []string) []*devReply {
	out := make([]*devReply, len(ids))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if r, err := c.request(id, devRequest{Op: opInfo, From: c.id}, infoWait); err == nil {
				out[i] = &r
			}
		}()
	}
	wg.Wait()
	return out
}

// fillDevices marks the devices linked to other instances online in a viewer's list.
func (c *cluster) fillDevices(list []DeviceInfo) {
	var ids []string
	var at []int
	for i, d := range list {
		if !d.Online {
			ids, at = append(ids, d.ID), append(at, i)
		}
	}
	for k, r := range c.infoAll(ids) {
		if r != nil {
			d := &list[at[k]]
			d.Online, d.Stream, d.Sources = true, r.Stream, r.Sources
		}
	}
}

// fillAdminDevices says which instance holds each device in the admin list.
func (c *cluster) fillAdminDevices(list []AdminDevice) {
	var ids []string
	var at []int
	for i := range list {
		if list[i].Online {
			list[i].Instance = c.id
			continue
		}
		ids, at = append(ids, list[i].ID), append(at, i)
	}
	for k, r := range c.infoAll(ids) {
		if r != nil {
			d := &list[at[k]]
			d.Online, d.Stream, d.Sessions, d.Instance = true, r.Stream, r.Sessions, r.Holder
		}
	}
}

func (c *cluster) writeMetrics(w *metrics.Writer) {
	const g, ctr = metrics.Gauge, metrics.Counter
	c.mu.Lock()
	viewers, sinks := len(c.viewers), len(c.sinks)
	c.mu.Unlock()
	up := 0.0
	if c.nc.IsConnected() {
		up = 1
	}
	w.Family("p2pcast_hub_cluster_info", g, "This hub's instance id in its cluster: 1, labelled with it.",
		metrics.Sample{Labels: []string{"instance", c.id}, Value: 1})
	w.One("p2pcast_hub_cluster_connected", g, "Whether the NATS connection is up (1) or being re-established (0).", up)
	w.One("p2pcast_hub_cluster_remote_viewers", g, "Viewer sessions here whose devices are linked to other instances.", float64(viewers))
	w.One("p2pcast_hub_cluster_relayed_sessions", g, "Sessions of devices linked here whose viewers are connected to other instances.", float64(sinks))
	w.One("p2pcast_hub_cluster_relocated_total", ctr, "Sessions carried on at a device's new holder after its link moved.", float64(c.reattached.Load()))
	w.One("p2pcast_hub_cluster_peers_lost_total", ctr, "Times an instance this one shared sessions with was found gone.", float64(c.peersLost.Load()))
	w.One("p2pcast_hub_cluster_nats_reconnects_total", ctr, "Reconnections to NATS.", float64(c.nc.Stats().Reconnects))
}
