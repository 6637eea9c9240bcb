package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/janus"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/signal"
)

// SFU is the SFU the device publishes to once its peer-to-peer audience is full (docs/sfu.md).
type SFU struct {
	// Janus is the root of a Janus server's HTTP API with the VideoRoom plugin
	// (http://HOST:8088/janus); "" is no SFU.
	Janus string
	// APISecret is Janus's api_secret ("" when it has none). Never logged.
	APISecret string
	// Linger is how long the device keeps publishing after its last SFU viewer left (0: 30 s),
	// so an audience that comes and goes does not republish each time.
	Linger time.Duration
}

// validateSFU checks the SFU settings: viewers reach the SFU only through a hub.
func (c Config) validateSFU() []error {
	var errs []error
	if c.P2PViewers < 0 {
		errs = append(errs, fmt.Errorf("p2p-viewers %d: want 0 (no limit) or more", c.P2PViewers))
	}
	if c.SFU.Janus == "" {
		if c.P2PViewers > 0 {
			errs = append(errs, errors.New("p2p-viewers: needs an SFU to send the others to (--sfu-janus)"))
		}
		return errs
	}
	if c.Hub.URL == "" || c.Hub.ID == "" {
		errs = append(errs, errors.New("sfu-janus: viewers reach the SFU through a hub (--hub, --id)"))
	}
	if _, err := janus.NewClient(c.SFU.Janus, "", nil); err != nil {
		errs = append(errs, fmt.Errorf("sfu-janus: %w", err))
	}
	if c.SFU.Linger < 0 {
		errs = append(errs, fmt.Errorf("sfu-linger %s: want 0 or more", c.SFU.Linger))
	}
	return errs
}

// Bounds of publishing.
const (
	defaultLinger = 30 * time.Second
	// sfuStart bounds everything from the first request to Janus to its "webrtcup".
	sfuStart = 15 * time.Second
	// sfuRetry is how long after a failed publication viewers past the limit are not sent to
	// the SFU (they stay peer to peer, up to --max-viewers).
	sfuRetry = 30 * time.Second
)

// overflow decides whether a new viewer goes to the SFU rather than peer to peer: the
// device serves p2p viewers already, limit of them at most (0: no limit), or its uplink is
// full. Only a viewer that may do nothing but watch goes: talk-back, desktop control and
// recordings need the device itself (those viewers stay peer to peer, up to --max-viewers).
func overflow(p2p, limit int, uplinkFull bool, a auth.Access) bool {
	if !a.Has(auth.GrantView) || len(a.Grants) != 1 {
		return false
	}
	return (limit > 0 && p2p >= limit) || (uplinkFull && p2p > 0)
}

// mainEncoderBitrate is the bitrate the adaptation policy holds the default source's main video
// encoder to (0: it has not set one). Below the configured bitrate with two viewers or more, the
// best of them takes less than the stream: every one is limited.
func (d *Device) mainEncoderBitrate() int {
	info, ok := d.stream.Info()
	if !ok || d.adapter == nil {
		return 0
	}
	var main uint8
	found := false
	for _, t := range info.Tracks {
		if t.Kind == codec.Video {
			main, found = t.ID, true
			break
		}
	}
	if !found {
		return 0
	}
	for _, e := range d.adapter.status().Encoders {
		if e.Track == main {
			return e.Bitrate
		}
	}
	return 0
}

// uplinkFull reads the adaptation estimates of the viewers served peer to peer: when every one
// of at least two is estimated below bitrate, they share a bottleneck, most likely the
// device's own uplink, and one more viewer would take from all of them.
func uplinkFull(estimates []int, bitrate int) bool {
	n := 0
	for _, e := range estimates {
		if e <= 0 {
			return false // a viewer without an estimate tells nothing
		}
		if e >= bitrate*9/10 {
			return false
		}
		n++
	}
	return n >= 2
}

// overflowTo is the SFU redirect for a viewer past the device's peer-to-peer audience, or nil
// to serve it peer to peer.
func (d *Device) overflowTo(a auth.Access) *signal.Redirect {
	d.mu.Lock()
	p2p := len(d.sessions)
	d.mu.Unlock()
	full := false
	if d.cfg.Bitrate > 0 {
		stats := d.sessionStats()
		est := make([]int, 0, len(stats))
		for _, s := range stats {
			e := 0
			if s.Network != nil && s.Network.Paced {
				e = s.Network.EstimateBPS
			}
			est = append(est, e)
		}
		enc := d.mainEncoderBitrate()
		full = uplinkFull(est, int(d.cfg.Bitrate)) || (p2p >= 2 && enc > 0 && enc < int(d.cfg.Bitrate)*9/10)
		d.log.Debug("SFU overflow decision", "p2p_viewers", p2p, "estimates_bps", est, "encoder_bps", enc,
			"bitrate", int(d.cfg.Bitrate), "uplink_full", full)
	}
	if !overflow(p2p, d.cfg.P2PViewers, full, a) {
		return nil
	}
	r := d.sfu.acquire()
	if r != nil {
		d.log.Info("viewer sent to the SFU", "p2p_viewers", p2p, "limit", d.cfg.P2PViewers, "uplink_full", full)
	}
	return r
}

// sfuPublisher publishes the device's default source to Janus's VideoRoom while viewers are
// served from there: started by the first, stopped Linger after the last.
type sfuPublisher struct {
	d      *Device
	cfg    SFU
	client *janus.Client
	log    *slog.Logger
	room   uint64

	mu       sync.Mutex
	base     context.Context // the device's: publishing ends with it
	viewers  int             // redirects held
	cur      *publication    // nil while not publishing
	failedAt time.Time
	lastErr  string
	linger   *time.Timer
}

// publication is one publishing run.
type publication struct {
	cancel context.CancelFunc
	ready  chan struct{} // closed when feed or err is set
	feed   signal.SFUFeed
	err    error
	done   chan struct{}
}

func newSFUPublisher(d *Device, cfg SFU, id string) (*sfuPublisher, error) {
	c, err := janus.NewClient(cfg.Janus, cfg.APISecret, nil)
	if err != nil {
		return nil, err
	}
	if cfg.Linger <= 0 {
		cfg.Linger = defaultLinger
	}
	return &sfuPublisher{d: d, cfg: cfg, client: c, log: d.log.With("sfu", cfg.Janus), room: hub.SFURoom(id),
		base: context.Background()}, nil
}

// run holds the publisher to the device's lifetime.
func (p *sfuPublisher) run(ctx context.Context) {
	p.mu.Lock()
	p.base = ctx
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	cur := p.cur
	p.cur = nil
	if p.linger != nil {
		p.linger.Stop()
	}
	p.mu.Unlock()
	if cur != nil {
		cur.cancel()
		<-cur.done
	}
}

// acquire gives a viewer a hold on the publication, starting it if needed; nil when the SFU
// failed lately (the viewer stays peer to peer).
func (p *sfuPublisher) acquire() *signal.Redirect {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.base.Err() != nil || (!p.failedAt.IsZero() && time.Since(p.failedAt) < sfuRetry && p.cur == nil) {
		return nil
	}
	if p.linger != nil {
		p.linger.Stop()
		p.linger = nil
	}
	if p.cur == nil {
		ctx, cancel := context.WithCancel(p.base)
		p.cur = &publication{cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
		go p.publish(ctx, p.cur)
	}
	p.viewers++
	cur := p.cur
	return &signal.Redirect{
		Wait: func() (signal.SFUFeed, error) {
			select {
			case <-cur.ready:
				return cur.feed, cur.err
			case <-time.After(sfuStart + 5*time.Second):
				return signal.SFUFeed{}, errors.New("publishing timed out")
			}
		},
		Release: p.release,
	}
}

func (p *sfuPublisher) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.viewers--; p.viewers > 0 || p.cur == nil {
		return
	}
	cur := p.cur
	p.linger = time.AfterFunc(p.cfg.Linger, func() {
		p.mu.Lock()
		if p.viewers > 0 || p.cur != cur {
			p.mu.Unlock()
			return
		}
		p.cur = nil
		p.mu.Unlock()
		p.log.Info("no viewers through the SFU: unpublishing")
		cur.cancel()
	})
}

// SFUStatus is the publication's state in GET /api/status.
type SFUStatus struct {
	// Publishing: the device publishes to the SFU now (Room, Feed say where).
	Publishing bool   `json:"publishing"`
	Room       uint64 `json:"room"`
	Feed       uint64 `json:"feed,omitempty"`
	// Viewers the SFU serves for the device (their holds on the publication).
	Viewers int `json:"viewers"`
	// LastError is why the last publication failed ("" if none did).
	LastError string `json:"last_error,omitempty"`
}

// Status is the publication's state now.
func (p *sfuPublisher) Status() SFUStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := SFUStatus{Room: p.room, Viewers: p.viewers, LastError: p.lastErr}
	if cur := p.cur; cur != nil {
		select {
		case <-cur.ready:
			st.Publishing, st.Feed = cur.err == nil, cur.feed.Feed
		default:
		}
	}
	return st
}

// publish runs one publication until ctx ends or it fails.
func (p *sfuPublisher) publish(ctx context.Context, cur *publication) {
	defer close(cur.done)
	started := false
	fail := func(step string, err error) {
		p.log.Warn("publishing to the SFU failed", "step", step, "err", err)
		p.mu.Lock()
		p.failedAt = time.Now()
		p.lastErr = step + ": " + err.Error()
		if p.cur == cur {
			p.cur = nil
		}
		p.mu.Unlock()
		if !started {
			cur.err = fmt.Errorf("%s: %w", step, err)
			close(cur.ready)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, sfuStart)
	defer cancel()
	sess, err := p.client.Create(sctx)
	if err != nil {
		fail("session", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sess.Destroy(dctx)
	}()
	go sess.KeepAlive(ctx)
	h, err := sess.Attach(sctx, janus.VideoRoom)
	if err != nil {
		fail("attach", err)
		return
	}
	if err := janus.CreateRoom(sctx, h, janus.Room{ID: p.room, Description: "p2pcast " + p.d.cfg.Hub.ID}); err != nil {
		fail("room", err)
		return
	}
	ice := p.d.cfg.ICEServers
	if l := p.d.hubICE.Load(); l != nil {
		ice = *l
	}
	s, err := p.d.engine.NewSession(p.d.stream, peer.SessionOptions{
		Access: auth.Access{TokenID: "sfu", Grants: []auth.Grant{auth.GrantView}}, ICEServers: ice})
	if err != nil {
		fail("session", err)
		return
	}
	defer s.Close()
	if _, err := s.Offer(); err != nil {
		fail("offer", err)
		return
	}
	select { // one offer with every candidate: Janus then needs no trickle from us
	case <-s.GatheringDone():
	case <-sctx.Done():
		fail("gathering", sctx.Err())
		return
	}
	offer := s.LocalDescription()
	feed, answer, err := janus.Publish(sctx, h, p.room, "", p.d.cfg.Hub.ID, offer)
	if err != nil {
		fail("publish", err)
		return
	}
	if err := s.SetAnswer(answer); err != nil {
		fail("answer", err)
		return
	}
	for up := false; !up; {
		select {
		case ev, ok := <-h.Events():
			if !ok {
				fail("connect", errors.New("handle detached"))
				return
			}
			switch ev.Janus {
			case "webrtcup":
				up = true
			case "hangup":
				fail("connect", errors.New("hangup: "+ev.Reason))
				return
			}
		case <-s.Done():
			fail("connect", errors.New("the session ended: "+s.EndReason()))
			return
		case <-sctx.Done():
			fail("connect", sctx.Err())
			return
		}
	}
	cur.feed = signal.SFUFeed{Room: p.room, Feed: feed, Mids: mediaMids(offer)}
	started = true
	close(cur.ready)
	p.log.Info("publishing to the SFU", "room", p.room, "feed", feed)
	for {
		select {
		case <-ctx.Done():
			p.log.Info("stopped publishing to the SFU")
			return
		case <-s.Done():
			fail("media", errors.New("the session ended: "+s.EndReason()))
			return
		case <-sess.Done():
			fail("janus", sess.Err())
			return
		case ev, ok := <-h.Events():
			if !ok {
				fail("janus", errors.New("handle detached"))
				return
			}
			if ev.Janus == "hangup" {
				fail("janus", errors.New("hangup: "+ev.Reason))
				return
			}
		}
	}
}

// mediaMids are the mids of an SDP's audio and video sections: what a subscriber takes (the
// device's own events channel stays between the device and Janus).
func mediaMids(sdp string) []string {
	var out []string
	media := false
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			media = strings.HasPrefix(line, "m=audio") || strings.HasPrefix(line, "m=video")
		case media && strings.HasPrefix(line, "a=mid:"):
			out = append(out, strings.TrimPrefix(line, "a=mid:"))
		}
	}
	return out
}
