package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/janus"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// SFUConfig is the SFU the hub bridges viewers to when a device is past its peer-to-peer
// audience limit (docs/sfu.md). Only the hub speaks to it: viewers never see its API.
type SFUConfig struct {
	// Janus is the root of a Janus server's HTTP API (http://HOST:8088/janus) with the
	// VideoRoom plugin; "" is no SFU.
	Janus string
	// APISecret is Janus's api_secret ("" when it has none). Never logged.
	APISecret string
}

// SFURoom is device id's VideoRoom room. Both sides derive it from the id, so they agree
// without a word, and the hub refuses any other: a device cannot send its viewers to another
// device's room. Janus's room ids are numbers a JavaScript client must read exactly (53 bits).
func SFURoom(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("p2pcast-room:" + id))
	r := h.Sum64() & (1<<52 - 1)
	if r == 0 {
		r = 1
	}
	return r
}

// Bounds of what a device may say in an sfu message.
const (
	maxSFUMids   = 8
	maxSFUMidLen = 32
	// sfuSetup bounds subscribing to the feed, and each later request to Janus.
	sfuSetup = 10 * time.Second
)

// sfuRelay bridges viewer sessions to Janus subscriber handles.
type sfuRelay struct {
	client *janus.Client
	log    *slog.Logger

	mu      sync.Mutex
	bridges map[string]*sfuBridge // by session id

	// One Janus session carries every bridge's handle: one long poll and one keep-alive for
	// all viewers, where a session each would cost Janus a connection (and with its HTTP
	// transport's defaults, a thread) per viewer. It lives while bridges use it.
	smu    sync.Mutex
	shared *sharedSession
}

// sharedSession is the Janus session of the bridges, with how many use it.
type sharedSession struct {
	s     *janus.Session
	users int
	stop  context.CancelFunc // ends its keep-alive
}

// session is the shared Janus session, made if there is none (or the last one died);
// release, once the caller's handle is detached, ends the caller's use of it.
func (r *sfuRelay) session(ctx context.Context) (*janus.Session, func(), error) {
	r.smu.Lock()
	defer r.smu.Unlock()
	ss := r.shared
	if ss != nil {
		select {
		case <-ss.s.Done():
			ss = nil // Janus forgot it (restarted): its users fail on their own
		default:
		}
	}
	if ss == nil {
		s, err := r.client.Create(ctx)
		if err != nil {
			return nil, nil, err
		}
		kctx, stop := context.WithCancel(context.Background())
		go s.KeepAlive(kctx)
		ss = &sharedSession{s: s, stop: stop}
		r.shared = ss
	}
	ss.users++
	var once sync.Once
	return ss.s, func() { once.Do(func() { r.releaseSession(ss) }) }, nil
}

func (r *sfuRelay) releaseSession(ss *sharedSession) {
	r.smu.Lock()
	ss.users--
	last := ss.users == 0
	if last && r.shared == ss {
		r.shared = nil
	}
	r.smu.Unlock()
	if last {
		ss.stop()
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ss.s.Destroy(dctx)
	}
}

func newSFURelay(cfg SFUConfig, log *slog.Logger) (*sfuRelay, error) {
	if cfg.Janus == "" {
		return nil, nil
	}
	c, err := janus.NewClient(cfg.Janus, cfg.APISecret, nil)
	if err != nil {
		return nil, fmt.Errorf("hub SFU: %w", err)
	}
	return &sfuRelay{client: c, log: log.With("sfu", cfg.Janus), bridges: map[string]*sfuBridge{}}, nil
}

// sfuBridge is one viewer session served by Janus: the hub speaks the viewer's protocol on
// one side (offer out, answer and candidates in) and Janus's subscriber API on the other.
type sfuBridge struct {
	r       *sfuRelay
	d       *deviceConn
	v       *viewerConn
	feed    signal.SFUFeed
	in      chan signal.Inbound // the viewer's messages, in order
	cancel  context.CancelFunc
	done    chan struct{}
	revoked func() bool // whether the session's token is revoked now
}

// sfuFromDevice takes a device's session message if it is an sfu redirect (true), and
// bridges that session to the feed it names.
func (s *Server) sfuFromDevice(d *deviceConn, m DeviceMessage) bool {
	var probe struct {
		Type string `json:"type"`
		signal.SFUFeed
	}
	if json.Unmarshal(m.Msg, &probe) != nil || probe.Type != wire.TypeSFU {
		return false
	}
	d.mu.Lock()
	v := d.sessions[m.SID]
	if v == nil {
		d.mu.Unlock()
		return true // the viewer left meanwhile
	}
	ws := v.ws
	d.mu.Unlock()
	if err := checkFeed(d.id, probe.SFUFeed); err != nil || s.sfu == nil {
		if err == nil {
			err = errors.New("this hub has no SFU")
		}
		s.log.Warn("device's SFU redirect refused", "device", d.id, "sid", m.SID, "err", err)
		sendTo(ws, errorMsg{Type: wire.TypeError, Code: wire.CodeBusy, Message: "the device is past its peer-to-peer limit and cannot be served through the SFU"})
		sendTo(ws, json.RawMessage(`{"type":"bye","reason":"SFU unavailable"}`))
		return true
	}
	s.sfu.start(d, v, probe.SFUFeed, func() bool { return s.isRevoked(v.tokenID) })
	return true
}

func checkFeed(device string, f signal.SFUFeed) error {
	if f.Room != SFURoom(device) {
		return fmt.Errorf("room %d is not the device's (%d)", f.Room, SFURoom(device))
	}
	if f.Feed == 0 {
		return errors.New("no feed")
	}
	if len(f.Mids) > maxSFUMids {
		return fmt.Errorf("%d mids", len(f.Mids))
	}
	for _, m := range f.Mids {
		if m == "" || len(m) > maxSFUMidLen {
			return fmt.Errorf("mid %.40q", m)
		}
	}
	return nil
}

// sfuFromViewer hands a viewer message to the session's bridge, if it has one (true). A
// watch or offer ends the bridge and goes to the device, which decides again where the new
// session is served; bye ends it and goes to the device too (it counts its SFU audience).
func (s *Server) sfuFromViewer(v *viewerConn, in signal.Inbound) bool {
	if s.sfu == nil {
		return false
	}
	b := s.sfu.get(v.sid)
	if b == nil {
		return false
	}
	switch in.Type {
	case wire.TypeAnswer, wire.TypeCandidate, wire.TypeRestart:
		select {
		case b.in <- in:
		case <-b.done:
		}
		return true
	case wire.TypeAuth:
		return true
	default:
		s.sfu.end(v.sid)
		return false
	}
}

// sfuFromEnvelope is sfuFromViewer for a viewer message that reaches the device's hub as a
// session envelope from another hub instance (a cluster): the bridge lives where the device is
// linked, so its viewer's messages are taken there, whichever instance holds the viewer's
// socket. v is the session's viewerConn at this hub.
func (s *Server) sfuFromEnvelope(v *viewerConn, envelope []byte) bool {
	if s.sfu == nil || v == nil || s.sfu.get(v.sid) == nil {
		return false
	}
	var env struct {
		Msg json.RawMessage `json:"msg"`
	}
	if json.Unmarshal(envelope, &env) != nil {
		return false
	}
	in, err := signal.ParseInbound(env.Msg)
	if err != nil {
		return false // the device answers it as before
	}
	return s.sfuFromViewer(v, in)
}

// sfuEnded ends session sid's bridge, if any (the session ended).
func (s *Server) sfuEnded(sid string) {
	if s.sfu != nil {
		s.sfu.end(sid)
	}
}

func (r *sfuRelay) get(sid string) *sfuBridge {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bridges[sid]
}

// start bridges v to feed. The bridge ends by itself when the token expires or is revoked:
// the media does not pass through the device, which would end a peer-to-peer session then,
// and a viewer whose socket closed keeps its Janus session until it resumes or gives up.
func (r *sfuRelay) start(d *deviceConn, v *viewerConn, feed signal.SFUFeed, revoked func() bool) {
	ctx, cancel := context.WithDeadline(context.Background(), v.claims.Expires)
	b := &sfuBridge{r: r, d: d, v: v, feed: feed, in: make(chan signal.Inbound, 32), cancel: cancel, done: make(chan struct{}), revoked: revoked}
	r.mu.Lock()
	old := r.bridges[v.sid]
	r.bridges[v.sid] = b
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}
	go b.run(ctx)
}

func (r *sfuRelay) end(sid string) {
	r.mu.Lock()
	b := r.bridges[sid]
	delete(r.bridges, sid)
	r.mu.Unlock()
	if b != nil {
		b.stop()
	}
}

func (b *sfuBridge) stop() {
	b.cancel()
	<-b.done
}

// send gives m to the viewer on its current socket.
func (b *sfuBridge) send(m any) {
	b.d.mu.Lock()
	ws := b.v.ws
	b.d.mu.Unlock()
	sendTo(ws, m)
}

// sendTo sends m, as JSON, to whatever carries a viewer's messages (Send is all it needs).
func sendTo(to interface{ Send([]byte) bool }, m any) {
	if b, err := json.Marshal(m); err == nil {
		to.Send(b)
	}
}

type sfuSDPMsg struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// run subscribes to the feed, offers Janus's offer to the viewer and relays until the
// session or Janus ends. Janus's handle and session are gone when it returns.
func (b *sfuBridge) run(ctx context.Context) {
	defer close(b.done)
	log := b.r.log.With("device", b.d.id, "sid", b.v.sid, "room", b.feed.Room, "feed", b.feed.Feed)
	fail := func(what string, err error) {
		log.Warn("SFU session failed", "step", what, "err", err)
		if ctx.Err() == nil {
			b.send(errorMsg{Type: wire.TypeError, Code: wire.CodeBusy, Message: "the SFU failed: " + what})
			b.send(json.RawMessage(`{"type":"bye","reason":"SFU session ended"}`))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, sfuSetup)
	defer cancel()
	sess, release, err := b.r.session(sctx)
	if err != nil {
		fail("session", err)
		return
	}
	defer release()
	h, err := sess.Attach(sctx, janus.VideoRoom)
	if err != nil {
		fail("attach", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Detach(dctx)
	}()
	offer, err := janus.Subscribe(sctx, h, b.feed.Room, "", b.feed.Feed, b.feed.Mids)
	if err != nil {
		fail("subscribe", err)
		return
	}
	log.Info("viewer served through the SFU")
	b.send(sfuSDPMsg{Type: wire.TypeOffer, SDP: offer})
	check := time.NewTicker(revokedPoll)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				log.Info("SFU session ended: the token expired")
			}
			return
		case <-check.C:
			if b.revoked() {
				log.Info("SFU session ended: the token was revoked")
				return
			}
		case <-sess.Done():
			fail("session", sess.Err())
			return
		case ev, ok := <-h.Events():
			if !ok {
				fail("handle", errors.New("detached"))
				return
			}
			switch ev.Janus {
			case "hangup":
				fail("hangup", errors.New(ev.Reason))
				return
			case "event":
				var d struct {
					VideoRoom string `json:"videoroom"`
				}
				// The publisher went away or changed (Janus renegotiates its subscribers):
				// the viewer starts over with a watch, and the device decides again.
				if ev.Plugin(&d) == nil && d.VideoRoom == "updated" {
					fail("the publisher changed", errors.New("updated"))
					return
				}
			}
		case in := <-b.in:
			rctx, cancel := context.WithTimeout(ctx, sfuSetup)
			err := b.fromViewer(rctx, h, in)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Info("viewer message refused by the SFU", "type", in.Type, "err", err)
				code := wire.CodeBadSDP
				if in.Type == wire.TypeRestart {
					code = wire.CodeBusy
				}
				b.send(errorMsg{Type: wire.TypeError, Code: code, Message: "SFU: " + err.Error()})
			}
		}
	}
}

func (b *sfuBridge) fromViewer(ctx context.Context, h *janus.Handle, in signal.Inbound) error {
	switch in.Type {
	case wire.TypeAnswer:
		return janus.Start(ctx, h, in.SDP)
	case wire.TypeCandidate:
		return h.Trickle(ctx, janusCandidate(in.Candidate))
	case wire.TypeRestart:
		offer, err := janus.RestartICE(ctx, h)
		if err != nil {
			return err
		}
		b.send(sfuSDPMsg{Type: wire.TypeOffer, SDP: offer})
	}
	return nil
}

func janusCandidate(c *webrtc.ICECandidateInit) janus.Candidate {
	if c == nil || c.Candidate == "" {
		return janus.Candidate{Completed: true}
	}
	out := janus.Candidate{Candidate: c.Candidate}
	if c.SDPMid != nil {
		out.SDPMid = *c.SDPMid
	}
	if c.SDPMLineIndex != nil {
		i := int(*c.SDPMLineIndex)
		out.SDPMLineIndex = &i
	}
	return out
}
