// Package device runs a p2pcast device: it takes H.264 from a producer on a Unix socket
// (starting and supervising p2pcast-capture for the test pattern), fans it out to viewers over
// WebRTC, and serves the viewer page, WHEP and WebSocket signaling over HTTP.
package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/files"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/input"
	"github.com/p2pcast/p2pcast/internal/lifecycle"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/record"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/srtpdirect"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/udpbatch"
	"github.com/p2pcast/p2pcast/internal/webhook"
)

// Device is one running device.
type Device struct {
	cfg    Config
	log    *slog.Logger
	stream *stream.Stream
	engine *peer.Engine

	hub    *hub.Link      // nil without a hub
	sfu    *sfuPublisher  // publishes to the SFU for viewers past P2PViewers (sfu.go); nil without
	iceTCP net.Listener   // nil when ICE over TCP is off
	iceUDP net.PacketConn // nil: a UDP socket per session
	gate   signal.Gate    // who may use the LAN endpoints
	hubICE atomic.Pointer[[]webrtc.ICEServer]
	ingest *ingest
	talk   *talkFloor
	// adapter runs the adaptation policy (with Config.Adapt).
	adapter  *adapter
	counters counters

	// feeds are the device's sources, the default first; stream, ingest, talk and adapter
	// above are the default's.
	feeds []*srcFeed

	mu        sync.Mutex
	sessions  map[*peer.Session]*srcFeed // each session and the source it watches
	perSource map[string]int             // sessions (and reservations) per source
	desktop   *desktop                   // the wayland source's backend (whichever source it is), or nil
	control   *input.Control             // the desktop's control channel (wayland source), or nil
	revoked   revocations

	// events are the detection events (the producer's, detector processes'), kept for late
	// readers; webhook, with Config.Webhook, delivers them.
	events  *event.Bus
	webhook *webhook.Sender

	// manage is what Reload changes and the management API reads (manage.go).
	manage manageState
}

// New prepares a device; Run starts it.
func New(cfg Config, log *slog.Logger) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logs := newLogRing(logLines) // the management page's log tail (manage.go)
	log = slog.New(logs.handler(log.Handler()))
	var hook *webhook.Sender
	if cfg.Webhook.URL != "" {
		var err error
		if hook, err = webhook.New(webhook.Config{URL: cfg.Webhook.URL, Insecure: cfg.Webhook.Insecure}, log); err != nil {
			return nil, err
		}
	}
	fcs := cfg.feedConfigs()
	var desk *desktop
	var control *input.Control
	deskFeed := -1
	for i, fc := range fcs {
		if fc.Source != "wayland" {
			continue
		}
		var err error
		if desk, err = openDesktop(context.Background(), fc, log); err != nil {
			return nil, err
		}
		deskFeed = i
		// The control channel drives the device's one desktop, whichever source shows it.
		if control = desk.control; control != nil && cfg.Channels[ControlChannel] == nil {
			cfg.Channels = withChannel(cfg.Channels, ControlChannel, control)
		}
	}
	// The record channel serves the device made below.
	recordCh := &recordChannel{}
	if cfg.Record.Dir != "" && cfg.Channels[RecordChannel] == nil {
		cfg.Channels = withChannel(cfg.Channels, RecordChannel, recordCh)
	}
	// The files channel serves every source's recordings (DIR, or DIR/<id>/ with several
	// sources) from the device made below.
	catalog := &recordCatalog{dir: cfg.Record.Dir}
	if cfg.Record.Dir != "" && cfg.Channels[files.Label] == nil {
		cfg.Channels = withChannel(cfg.Channels, files.Label, files.NewServer(catalog, files.Limits{}))
	}
	closeControl := func() {
		if control != nil {
			_ = control.Close()
		}
		if desk != nil {
			desk.close()
		}
	}
	// Loopback candidates serve viewers on the same machine (and tests); a device that only
	// a hub reaches would just give remote viewers more dead pairs to check.
	pcfg := peer.Config{IncludeLoopback: !cfg.lanOff(), MaxSessions: cfg.MaxViewers, Logger: log,
		NegotiateTimeout: cfg.NegotiateTimeout, ConnectTimeout: cfg.ConnectTimeout, Channels: cfg.Channels,
		Recovery: cfg.Recovery}
	if cfg.PlayoutDelay >= 0 {
		pcfg.PlayoutDelay = &peer.PlayoutDelay{Min: cfg.PlayoutDelay, Max: cfg.PlayoutDelay}
	}
	pcfg.PublicIPs = cfg.PublicIPs
	if cfg.ICEUDPPort > 0 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{Port: cfg.ICEUDPPort})
		if err != nil {
			closeControl()
			return nil, fmt.Errorf("ICE UDP socket: %w", err)
		}
		// The pacer writes each slice for every viewer between Hold and Flush: the shared
		// socket sends them in a few system calls (sendmmsg, UDP GSO).
		b, err := udpbatch.New(c, udpbatch.Options{})
		if err != nil {
			c.Close()
			closeControl()
			return nil, fmt.Errorf("ICE UDP socket: %w", err)
		}
		pcfg.ICEUDP = b
	}
	if cfg.ICETCPPort >= 0 {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.ICETCPPort))
		if err != nil {
			if pcfg.ICEUDP != nil {
				pcfg.ICEUDP.Close()
			}
			closeControl()
			return nil, fmt.Errorf("ICE TCP listener: %w", err)
		}
		pcfg.ICETCP = l
	}
	engine, err := peer.NewEngine(pcfg)
	if err != nil {
		if pcfg.ICETCP != nil {
			pcfg.ICETCP.Close()
		}
		if pcfg.ICEUDP != nil {
			pcfg.ICEUDP.Close()
		}
		closeControl()
		return nil, err
	}
	d := &Device{cfg: cfg, log: log, engine: engine, iceTCP: pcfg.ICETCP, iceUDP: pcfg.ICEUDP, control: control, desktop: desk,
		sessions: map[*peer.Session]*srcFeed{}, perSource: map[string]int{}}
	recordCh.d = d
	d.events, d.webhook = event.NewBus(eventsKeep), hook
	for i, fc := range fcs {
		flog := log
		if cfg.multiSource() {
			flog = log.With("source", fc.defaultID())
		}
		f := &srcFeed{id: fc.defaultID(), cfg: fc, stream: stream.New(stream.Config{Logger: flog}), log: flog}
		if i == deskFeed {
			f.desktop = desk
		}
		f.ingest = &ingest{st: f.stream, log: flog, onEvent: d.publisherFor(f.id)}
		f.talk = &talkFloor{st: f.stream, ingest: f.ingest, log: flog}
		f.adapter = newAdapter(d, f, cfg.Adapt)
		d.feeds = append(d.feeds, f)
	}
	catalog.d = d
	d.stream, d.ingest, d.talk, d.adapter = d.feeds[0].stream, d.feeds[0].ingest, d.feeds[0].talk, d.feeds[0].adapter
	d.initManage(cfg, logs)
	if cfg.SFU.Janus != "" {
		if d.sfu, err = newSFUPublisher(d, cfg.SFU, cfg.Hub.ID); err != nil {
			return nil, err
		}
	}
	d.gate = signal.Open{}
	if cfg.LANAuth != nil {
		d.gate = d.reloadableGate(newLANGate(cfg.LANAuth, d.isRevoked)) // its keys reload
	}
	d.gate = countingGate{Gate: d.gate, c: &d.counters}
	return d, nil
}

// Stream is the device's stream (tests, benchmarks).
func (d *Device) Stream() *stream.Stream { return d.stream }

// Ready tells where a started device listens.
type Ready struct {
	URL        string // the viewer page ("" with NoLAN)
	SocketPath string
	// SocketPaths are every source's capture socket, by source id (the default's is SocketPath).
	SocketPaths map[string]string
	// OpsURL is where /metrics, /healthz and /readyz are ("" when not served).
	OpsURL string
}

// Run serves until ctx ends. ready, if not nil, is called once everything listens. The device
// is a list of components (lifecycle), started in order and stopped in reverse:
//
//	webrtc      the sessions and the shared ICE sockets: stopped last, ending every session
//	capture     the capture socket and the ingest of producers
//	http        the viewer page, WHEP, WebSocket signaling and the API (unless the LAN is off),
//	            and the operator's /metrics, /healthz, /readyz
//	revocations rereads the local key store's revocation list (LAN auth with a store)
//	hub         the outbound link to the hub (with --hub)
//	producer    starts and restarts p2pcast-capture (the test pattern, the desktop)
//	control     the desktop's input: who drives it (wayland source)
//	record      records the stream into segments (with --record-dir)
//
// A recorder, an RTSP client or metrics join as components of their own.
func (d *Device) Run(ctx context.Context, ready func(Ready)) error {
	var (
		sockPath string
		sock     net.Listener
		hl       net.Listener
		srv      *http.Server
		tempDir  string
	)
	components := []lifecycle.Component{{
		Name: "webrtc",
		Stop: func(context.Context) error {
			d.closeSessions()
			if d.iceTCP != nil {
				d.iceTCP.Close()
			}
			if d.iceUDP != nil {
				d.iceUDP.Close()
			}
			return nil
		},
	}, {
		Name: "capture",
		Start: func(context.Context) (err error) {
			sockPath = d.cfg.SocketPath
			if sockPath == "" {
				if tempDir, err = os.MkdirTemp("", "p2pcast-"); err != nil {
					return err
				}
				sockPath = filepath.Join(tempDir, "capture.sock")
			}
			sock, err = listenUnix(sockPath)
			return err
		},
		Run: func(ctx context.Context) error { d.ingest.serve(ctx, sock); return nil },
		Stop: func(context.Context) error {
			os.Remove(sockPath)
			if tempDir != "" {
				os.RemoveAll(tempDir)
			}
			return nil
		},
	}}
	// The HTTP server runs for the viewer endpoints, and without them (a device only a hub
	// reaches) for the operator's: metrics and health.
	if !d.cfg.lanOff() || d.cfg.HTTPAddr != "" {
		components = append(components, lifecycle.Component{
			Name: "http",
			Start: func(ctx context.Context) (err error) {
				if hl, err = net.Listen("tcp", d.cfg.HTTPAddr); err != nil {
					if d.cfg.lanOff() {
						// Only the operator's endpoints were to be here: the device's work
						// (the hub's viewers) goes on without them.
						d.log.Warn("metrics and health endpoints not served", "addr", d.cfg.HTTPAddr, "err", err)
						return nil
					}
					return fmt.Errorf("http listen: %w", err)
				}
				hl = httpguard.LimitListener(hl, maxConnsPerSource, nil, func(src string) {
					d.log.Debug("connection refused: too many from one source", "source", src)
				})
				srv = httpguard.NewServer(d.handler(ctx), d.log)
				return nil
			},
			Run: func(context.Context) error {
				if srv == nil {
					return nil
				}
				if err := srv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
					return fmt.Errorf("http server: %w", err)
				}
				return nil
			},
			// Waits for signaling sockets' bye, bounded.
			Stop: func(ctx context.Context) error {
				if srv == nil {
					return nil
				}
				return srv.Shutdown(ctx)
			},
			StopWait: 2 * time.Second,
		})
	}
	if d.cfg.LANAuth != nil && d.cfg.LANAuth.Store != nil {
		components = append(components, lifecycle.Component{
			Name: "revocations",
			Run:  func(ctx context.Context) error { d.watchLocalRevocations(ctx); return nil },
		})
	}
	if d.sfu != nil {
		components = append(components, lifecycle.Component{
			Name: "sfu",
			Run:  func(ctx context.Context) error { d.sfu.run(ctx); return nil },
		})
	}
	if d.cfg.Hub.URL != "" {
		components = append(components, lifecycle.Component{
			Name: "hub",
			Start: func(context.Context) error {
				dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment, TLSClientConfig: d.cfg.Hub.TLS}
				link, err := hub.NewLink(hub.LinkConfig{
					URL: d.cfg.Hub.URL, ID: d.cfg.Hub.ID, Key: d.cfg.Hub.Key, Backend: backend{d: d, viaHub: true},
					OnICEServers: func(s []webrtc.ICEServer) { d.hubICE.Store(&s) }, OnRevoked: d.setHubRevoked,
					StreamChanged: d.anyChanged, Logger: d.log, Dialer: dialer, Insecure: d.cfg.Hub.Insecure,
				})
				d.hub = link
				return err
			},
			Run: func(ctx context.Context) error {
				if err := d.hub.Run(ctx); err != nil {
					return fmt.Errorf("hub link: %w", err)
				}
				return nil
			},
		})
	}
	for _, f := range d.feeds {
		if f != d.feeds[0] {
			components = append(components, d.captureComponent(f, &tempDir))
		}
		components = append(components, d.feedComponents(f, func() string { return sockPath })...)
	}
	components = append(components, d.eventComponents()...)
	if ready != nil {
		components = append(components, lifecycle.Component{
			Name: "ready",
			Start: func(context.Context) error {
				r := Ready{SocketPath: sockPath, SocketPaths: map[string]string{d.feeds[0].id: sockPath}}
				for _, f := range d.feeds[1:] {
					r.SocketPaths[f.id] = f.sockPath
				}
				if hl != nil {
					r.OpsURL = "http://" + hl.Addr().String() + "/"
					if !d.cfg.lanOff() {
						r.URL = r.OpsURL
					}
				}
				ready(r)
				return nil
			},
		})
	}
	return lifecycle.Run(ctx, d.log, components...)
}

// captureArgs are the arguments of the device's own producer (p2pcast-capture) for the
// default source.
func (d *Device) captureArgs(sockPath string) []string {
	desk := d.desktop
	if d.cfg.Source != "wayland" {
		desk = nil
	}
	return producerArgs(d.cfg, desk, sockPath)
}

// producerArgs are the arguments of the device's own producer for a source of Config cfg.
func producerArgs(cfg Config, desk *desktop, sockPath string) []string {
	source := []string{"--source", cfg.Source}
	if desk != nil {
		source = desk.args // the desktop's backend says how it captures
	}
	args := append([]string{"--socket", sockPath}, source...)
	if cfg.Size.W != 0 {
		args = append(args, "--size", cfg.Size.String())
	}
	args = append(args, "--fps", strconv.Itoa(cfg.FPS), "--bitrate", strconv.FormatInt(int64(cfg.Bitrate), 10),
		"--gop", strconv.Itoa(cfg.gopFrames()))
	if cfg.Source == "v4l2" && cfg.Camera != "" {
		args = append(args, "--device", cfg.Camera)
	}
	if cfg.EncoderPriority != "" {
		args = append(args, "--encoder-priority", cfg.EncoderPriority)
	}

	if cfg.AudioIn != "" {
		args = append(args, "--audio-in", cfg.AudioIn)
	}
	if cfg.AudioOut != "" {
		args = append(args, "--audio-out", cfg.AudioOut)
	}
	args = append(args, cfg.motionArgs()...)
	return append(args, cfg.pictureArgs()...)
}

// listenUnix listens on path, replacing a stale socket file left by a crashed device but never
// one that another device is still serving.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		// --socket names a path the device owns; anything but a socket there is a mistake
		// (a typo naming a real file), and removing it would lose data.
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("capture socket %s: a %s is there, not a socket; refusing to remove it", path, fileKind(fi.Mode()))
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("capture socket %s is in use by another device", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("capture socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.Type() == fs.ModeSymlink:
		return "symbolic link"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

func (d *Device) closeSessions() {
	d.mu.Lock()
	all := make([]*peer.Session, 0, len(d.sessions))
	for s := range d.sessions {
		all = append(all, s)
	}
	d.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

// backend adapts the device to what signaling needs: one for its own endpoints, one for the
// sessions a hub relays (they get the hub's ICE servers, LAN viewers never do).
type backend struct {
	d      *Device
	viaHub bool
}

func (b backend) NewSession(req signal.Request) (signal.Session, error) {
	d := b.d
	if id := req.Access.TokenID; id != "" && d.isRevoked(id) {
		d.counters.refusedRevoked.Add(1)
		return nil, fmt.Errorf("%w: %s", peer.ErrForbidden, peer.ReasonRevoked)
	}
	ice := d.cfg.ICEServers
	if b.viaHub {
		if p := d.hubICE.Load(); p != nil {
			ice = *p
		}
	}
	// Per-source cap: the slot is reserved under the lock before the session is made, so a
	// burst of requests from one source cannot overshoot it.
	f := d.feedByID(req.SourceID)
	if f == nil {
		return nil, fmt.Errorf("%w: %q (this device has %s)", signal.ErrUnknownSource, req.SourceID, d.sourceIDs())
	}
	if b.viaHub && req.Overflow && d.sfu != nil && f == d.feeds[0] {
		if r := d.overflowTo(req.Access); r != nil {
			return nil, r
		}
	}
	limit, viewers := d.settings().caps() // reloadable (manage.go)
	d.mu.Lock()
	if len(d.sessions) >= viewers {
		d.mu.Unlock()
		d.counters.refusedBusy.Add(1)
		return nil, fmt.Errorf("%w: %d viewers already", peer.ErrBusy, viewers)
	}
	if n := d.perSource[req.Source]; req.Source != "" && n >= limit {
		d.mu.Unlock()
		d.log.Info("session refused: per-source cap", "source", req.Source, "limit", limit)
		d.counters.refusedBusy.Add(1)
		return nil, fmt.Errorf("%w: %d sessions from this source already", peer.ErrBusy, n)
	}
	d.perSource[req.Source]++
	d.mu.Unlock()
	release := func() {
		d.mu.Lock()
		if d.perSource[req.Source]--; d.perSource[req.Source] <= 0 {
			delete(d.perSource, req.Source)
		}
		d.mu.Unlock()
	}
	s, err := d.engine.NewSession(f.stream, peer.SessionOptions{Access: req.Access, ICEServers: ice,
		OnCandidate: req.OnCandidate, Talk: f.talk, Channels: d.channelsOf(f), DataOnly: req.DataOnly,
		OnPathWorse: f.adapter.nudge})
	if err != nil {
		release()
		d.counters.refused(err)
		return nil, err
	}
	d.counters.sessions.Add(1)
	go d.forwardEvents(s)
	d.mu.Lock()
	d.sessions[s] = f
	d.mu.Unlock()
	go func() {
		<-s.Done()
		d.mu.Lock()
		delete(d.sessions, s)
		d.counters.ended(s.Stats()) // with the delete: /metrics reads both at once
		d.mu.Unlock()
		release()
	}()
	return s, nil
}

func (b backend) ICEServers() []webrtc.ICEServer {
	if b.viaHub {
		if p := b.d.hubICE.Load(); p != nil {
			return *p
		}
	}
	return b.d.cfg.ICEServers
}

func (b backend) StreamInfo() *stream.Info {
	if info, ok := b.d.stream.Info(); ok {
		info.Channels = b.d.channelsOf(b.d.feeds[0])
		return &info
	}
	return nil
}

// Sources lists the device's sources for the hello and the hub; nil for a single-source
// device, whose hello stays as it was.
func (b backend) Sources() []signal.SourceInfo {
	if !b.d.cfg.multiSource() {
		return nil
	}
	out := b.d.Sources()
	for i := range out {
		if out[i].Stream != nil {
			out[i].Stream.Channels = b.d.channelsOf(b.d.feeds[i])
		}
	}
	return out
}

// Status is what GET /api/status returns.
type Status struct {
	Hub      *HubStatus   `json:"hub,omitempty"`
	Stream   *stream.Info `json:"stream"`
	Stats    stream.Stats `json:"stats"`
	Sessions []peer.Stats `json:"sessions"`
	// Adapt is the adaptation policy's state: encoder settings and recent decisions.
	Adapt *AdaptStatus `json:"adapt"`
	// UDP counts the shared ICE UDP socket's sends (with --ice-udp-port).
	UDP *udpbatch.Stats `json:"udp,omitempty"`
	// Direct counts the SRTP sent and SRTCP read below Pion on that socket (internal/srtpdirect).
	Direct *srtpdirect.Stats `json:"direct,omitempty"`
	// Control is who drives the desktop (the wayland source).
	Control *input.Status `json:"control,omitempty"`
	// Record is the recorder's state (with --record-dir).
	Record *record.Status `json:"record,omitempty"`
	// Webhook counts the webhook's deliveries (with --webhook).
	Webhook *webhook.Stats `json:"webhook,omitempty"`
	// SFU is the publication for viewers past --p2p-viewers (with --sfu-janus; docs/sfu.md).
	SFU *SFUStatus `json:"sfu,omitempty"`
	// Sources are every source of a multi-source device, the default first (whose stream,
	// stats, adaptation and recorder are also the fields above); absent with one source.
	Sources []SourceStatus `json:"sources,omitempty"`
	// Settings are the settings in force (a reload changes some: manage.go).
	Settings *ManageSettings `json:"settings,omitempty"`
}

// SourceStatus is one source in GET /api/status.
type SourceStatus struct {
	ID          string         `json:"id"`
	Description string         `json:"description"`
	Stream      *stream.Info   `json:"stream"`
	Stats       stream.Stats   `json:"stats"`
	Viewers     int            `json:"viewers"`
	Adapt       *AdaptStatus   `json:"adapt"`
	Record      *record.Status `json:"record,omitempty"`
}

func (d *Device) status(w http.ResponseWriter, r *http.Request) {
	if !d.allowed(w, r, auth.GrantControl) {
		return
	}
	st := Status{Stats: d.stream.Stats(), Sessions: []peer.Stats{}}
	if d.hub != nil {
		st.Hub = &HubStatus{URL: d.cfg.Hub.URL, ID: d.cfg.Hub.ID, Connected: d.hub.Connected()}
	}
	if info, ok := d.stream.Info(); ok {
		st.Stream = &info
	}
	st.Sessions = d.sessionStats()
	if b, ok := d.iceUDP.(*udpbatch.Conn); ok {
		u := b.Stats()
		st.UDP = &u
	}
	st.Direct = d.engine.DirectStats()
	st.Adapt = d.adapter.status()
	if d.control != nil {
		c := d.control.Status()
		st.Control = &c
	}
	st.Record = d.recordStatus()
	if d.sfu != nil {
		sfu := d.sfu.Status()
		st.SFU = &sfu
	}
	if d.webhook != nil {
		ws := d.webhook.Stats()
		st.Webhook = &ws
	}
	if d.cfg.multiSource() {
		st.Sources = d.sourceStatus()
	}
	settings := d.manageSettings()
	st.Settings = &settings
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// sessionStats describes every session.
func (d *Device) sessionStats() []peer.Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessionStatsLocked()
}

// sessionStatsLocked is sessionStats with d.mu held.
func (d *Device) sessionStatsLocked() []peer.Stats {
	out := make([]peer.Stats, 0, len(d.sessions))
	for s := range d.sessions {
		out = append(out, s.Stats())
	}
	return out
}

// frames serves the recent frames' times (GET /api/frames): what `p2pcast bench latency` joins
// with the page's per-frame readings to split capture → present into stages.
func (d *Device) frames(w http.ResponseWriter, r *http.Request) {
	if !d.allowed(w, r, auth.GrantView) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Frames []stream.FrameTimes `json:"frames"`
	}{d.stream.Timeline()})
}

// HubStatus tells whether the device is connected to its hub.
type HubStatus struct {
	URL       string `json:"url"`
	ID        string `json:"id"`
	Connected bool   `json:"connected"`
}
