// Package peer runs one WebRTC session per viewer on Pion: it negotiates an H.264 track in
// either direction (the viewer offers, or the device does), starts sending once DTLS is up,
// answers PLI/FIR with a shared keyframe request and NACKs from a history of shared frames.
// Signaling transports (WHEP, WebSocket, the hub) are adapters on top of Session.
package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v4/packetio"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/srtpdirect"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// Errors callers map to protocol replies.
var (
	ErrBadSDP   = errors.New("peer: unusable SDP")
	ErrBusy     = errors.New("peer: viewer limit reached")
	ErrClosed   = errors.New("peer: session closed")
	ErrNoOffer  = errors.New("peer: no offer made by this side")
	ErrBadState = errors.New("peer: wrong signaling state")
	// ErrForbidden: the session's access does not include what it asked for (view).
	ErrForbidden = errors.New("peer: not granted")
)

// Deadlines of a session that does not come up: a viewer that opens sessions and never
// completes them must not hold a viewer slot (issue: 300 unanswered watches filled a device).
const (
	// NegotiateTimeout: offer and answer must both be applied within it.
	NegotiateTimeout = 10 * time.Second
	// ConnectTimeout: ICE and DTLS must be up within it (relayed joins take ~2 s).
	ConnectTimeout = 30 * time.Second
)

// Reasons a session ended, as told to the viewer in bye.
const (
	ReasonExpired   = "token expired"
	ReasonRevoked   = "token revoked"
	ReasonTimeout   = "negotiation timed out"
	ReasonNoConnect = "connection not established in time"
)

// TCPCandidateDelay is how long ICE-TCP candidates are held once checks start (both
// descriptions applied), on whichever side controls nomination (the device trickling them, a
// WHEP viewer applying an answer): two of Pion's 200 ms check intervals, so a UDP path that
// works is valid first (the viewer's check opens its NAT, the device's next check succeeds).
const TCPCandidateDelay = 400 * time.Millisecond

// RelayAcceptanceWait is how long a valid relayed pair waits before it may be nominated.
const RelayAcceptanceWait = time.Second

// Recovery says which ways of repairing lost packets are off.
type Recovery struct {
	// NoNACK: retransmissions are neither offered (no "nack" feedback in the SDP) nor sent.
	NoNACK bool
	// NoFEC: RED and ULPFEC are not offered, so forward error correction never runs.
	NoFEC bool
}

// PlayoutDelay is what the playout-delay header extension asks of receivers: min = max = 0
// takes Chromium's low-latency path (render as soon as decoded). A max of 0 also forbids the
// receiver to hold video back for lip sync: sessions that carry audio raise it to LipSyncDelay.
type PlayoutDelay struct{ Min, Max time.Duration }

// LipSyncDelay is the most a session with audio lets the receiver hold its video back so that
// pictures meet their sound. Audio reaches the speaker 50–100 ms after capture (a 20 ms frame,
// the encoder's look-ahead, the jitter buffer, the audio device) where video is shown in ~5 ms:
// bench avsync measured audio ~100 ms late with max 0, in step with max raised.
const LipSyncDelay = 500 * time.Millisecond

// forSession is the delay a session asks for: with audio, video may wait for it.
func (d PlayoutDelay) forSession(withAudio bool) PlayoutDelay {
	if withAudio {
		d.Max = max(d.Max, LipSyncDelay)
	}
	return d
}

// payload encodes the extension: two 12-bit values in 10 ms units.
func (d PlayoutDelay) payload() []byte {
	lo := min(uint32(d.Min/(10*time.Millisecond)), 0xfff)
	hi := min(uint32(d.Max/(10*time.Millisecond)), 0xfff)
	v := lo<<12 | hi
	return []byte{byte(v >> 16), byte(v >> 8), byte(v)}
}

// Config builds an Engine.
type Config struct {
	ICEServers []webrtc.ICEServer
	// Recovery turns the ways of repairing loss off one by one (both are on in the zero
	// value): for measuring what each buys (docs/performance.md), not for users.
	Recovery Recovery
	// PlayoutDelay is sent to receivers that negotiate the extension; nil sends nothing.
	PlayoutDelay *PlayoutDelay
	// IncludeLoopback offers 127.0.0.1 candidates too (a viewer on the same machine, tests).
	IncludeLoopback bool
	// MaxSessions bounds concurrent viewers (default 200).
	MaxSessions int
	// ICETCP, when set, is a listener for ICE over TCP (passive candidates on every address but
	// loopback, shared by every session): a viewer whose network drops UDP still reaches a
	// device it can route to.
	ICETCP net.Listener
	// ICEUDP, when set, is one UDP socket shared by every session instead of a socket per
	// session: one port to open in a firewall or forward on a router.
	ICEUDP net.PacketConn
	// PublicIPs are addresses the device is reached on through a 1:1 NAT or a port forward;
	// they are offered beside the host candidates, on the same ports.
	PublicIPs []string
	// SourceWait is how long a session made while the stream has no source waits for one
	// (default 2 s; negative: not at all).
	SourceWait time.Duration
	// Channels are the data channels viewers may open, by label, each with the grant it needs.
	Channels map[string]Channel
	Logger   *slog.Logger
	// NegotiateTimeout and ConnectTimeout override the package defaults (tests).
	NegotiateTimeout, ConnectTimeout time.Duration
}

// Engine makes sessions that share Pion APIs (one per set of codecs offered; extensions,
// interceptors) and one DTLS certificate, so a join costs no key generation.
type Engine struct {
	cfg      Config
	ice      atomic.Pointer[[]webrtc.ICEServer]
	cert     webrtc.Certificate
	se       webrtc.SettingEngine
	ir       *interceptor.Registry
	sessions atomic.Int32
	pacer    *pacer
	// direct is the shared UDP socket as Pion's mux sees it, where sessions whose pair is on
	// it send SRTP and read SRTCP below Pion's stack (nil: no shared socket).
	direct *srtpdirect.Socket

	mu    sync.Mutex
	media map[string]*webrtc.MediaEngine // by description key
}

// NewEngine prepares the shared WebRTC state.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 200
	}
	if cfg.NegotiateTimeout <= 0 {
		cfg.NegotiateTimeout = NegotiateTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	if cfg.SourceWait == 0 {
		cfg.SourceWait = sourceWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	se := webrtc.SettingEngine{}
	// One logger factory for all sessions' APIs (NewAPI would make one per session).
	se.LoggerFactory = logging.NewDefaultLoggerFactory()
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// When the device offers it controls ICE, and a viewer on the LAN (or loopback) shows up as a
	// peer-reflexive candidate: Pion's default would wait 1 s before accepting that direct pair.
	// Relayed pairs keep their longer wait, so a relay never wins over a direct path.
	// How long a pair of each kind must wait, once valid, before the controlling side may
	// nominate it. Direct pairs go at once; a relayed pair waits long enough for hole punching
	// to succeed first wherever it can, so a relay never wins over a direct path: Chromium paces
	// its checks and reached the direct pair of a cone↔cone cell only ~700 ms after the answer,
	// while a pair to its TURN relay is valid almost at once. Pion's defaults (srflx 0.5 s,
	// prflx 1 s, relay 2 s) made every join through a NAT wait for nothing.
	se.SetHostAcceptanceMinWait(0)
	se.SetSrflxAcceptanceMinWait(0)
	se.SetPrflxAcceptanceMinWait(0)
	se.SetRelayAcceptanceMinWait(RelayAcceptanceWait)
	var direct *srtpdirect.Socket
	if cfg.ICEUDP != nil {
		var mux net.PacketConn = cfg.ICEUDP
		// A session whose pair is on it sends and reads below Pion's stack (internal/srtpdirect).
		if c, ok := cfg.ICEUDP.(srtpdirect.Conn); ok {
			direct = srtpdirect.NewSocket(c)
			mux = direct
		}
		se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, mux))
	}
	if len(cfg.PublicIPs) > 0 {
		// Appended to the host candidates, on the same sockets (a port forward maps the same
		// port); LAN viewers keep the private address.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend,
		}); err != nil {
			return nil, fmt.Errorf("public IPs: %w", err)
		}
	}
	if cfg.ICETCP != nil {
		// 8 packets queued per TCP connection, not 64: a full queue stops reading the
		// connection (TCP's own backpressure, nothing is lost), and each viewer's ICE-TCP
		// connections (one per device address) held 64 slots each (docs/performance.md
		// "Footprint").
		se.SetICETCPMux(lanTCPMux{webrtc.NewICETCPMux(nil, cfg.ICETCP, iceTCPReadBuffer)})
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	}
	// No mDNS: resolving a browser's ".local" candidates is not needed (its checks reach us and
	// become peer-reflexive candidates), and each session's mDNS sockets made a burst of joins
	// wait in SetRemoteDescription (p95 72 ms for 50 at once, 11 ms without).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// Data channels are read by readChannel (channel.go) with a buffer sized to the messages,
	// not by Pion's read loop and its 64 kB buffer per channel.
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(channelReadMax)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, err
	}
	// Receiver reports only (for talk-back). Sender reports come from each track (on the
	// capture clock, for lip sync: localTrack.senderReport) and retransmissions from the shared
	// frame history, not from a per-viewer copy of every packet (Pion's NACK responder).
	ir := &interceptor.Registry{}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	// A shared socket that batches sends takes each pacing slice in a few system calls.
	batch, _ := cfg.ICEUDP.(Batcher)
	e := &Engine{cfg: cfg, cert: *cert, se: se, ir: ir, media: map[string]*webrtc.MediaEngine{}, pacer: newPacer(batch),
		direct: direct}
	e.SetICEServers(cfg.ICEServers)
	return e, nil
}

// iceTCPReadBuffer is how many received packets each ICE-TCP connection queues.
const iceTCPReadBuffer = 8

// maxMediaEngines bounds the cache of Pion media engines, one per distinct set of codec
// descriptions (a producer that changes profile often must not grow it without end).
const maxMediaEngines = 16

// mediaFor returns the Pion media engine that offers exactly what d sends and receives: the
// stream's real H.264 profile, its audio codec, Opus for talk-back.
func (e *Engine) mediaFor(d description) (*webrtc.MediaEngine, error) {
	key := d.key()
	e.mu.Lock()
	defer e.mu.Unlock()
	if m := e.media[key]; m != nil {
		return m, nil
	}
	m := &webrtc.MediaEngine{}
	video := false
	for _, c := range d.codecs() {
		p := c.codec.Parameters(c.params)
		if e.cfg.Recovery.NoNACK {
			// Not offered, so receivers do not ask; "nack pli" (a keyframe request) stays.
			p.RTCPFeedback = slices.DeleteFunc(slices.Clone(p.RTCPFeedback), func(f webrtc.RTCPFeedback) bool {
				return f.Type == webrtc.TypeRTCPFBNACK && f.Parameter == ""
			})
		}
		if err := m.RegisterCodec(p, c.codec.Kind.RTPKind()); err != nil {
			return nil, err
		}
		if c.codec.Kind == codec.Video {
			// Retransmissions on a stream of their own (RFC 4588, track.go rtxStream), and
			// probes there too (track.go writePadding): offered without NACK as well.
			rtx := webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: p.ClockRate,
					SDPFmtpLine: fmt.Sprintf("apt=%d", p.PayloadType)},
				PayloadType: p.PayloadType + 1,
			}
			if err := m.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, err
			}
		}
		video = video || c.codec.Kind == codec.Video
	}
	if video && !e.cfg.Recovery.NoFEC {
		// RED and ULPFEC: forward error correction for viewers that report loss (fec.go).
		for _, c := range []webrtc.RTPCodecParameters{
			{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: redMime, ClockRate: 90000}, PayloadType: redPayloadType},
			{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: ulpfecMime, ClockRate: 90000}, PayloadType: ulpfecPayloadType},
		} {
			if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, err
			}
		}
	}
	// abs-capture-time tells receivers when each frame was captured (the capture clock, not
	// the RTP clock), so a viewer can measure capture → present itself.
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{{AbsCaptureTimeURI, webrtc.RTPCodecTypeVideo}, {AbsCaptureTimeURI, webrtc.RTPCodecTypeAudio},
		// Transport-wide sequence numbers on every packet: the viewer's feedback on them is
		// the bandwidth estimate's input.
		{codec.TransportCCURI, webrtc.RTPCodecTypeVideo}, {codec.TransportCCURI, webrtc.RTPCodecTypeAudio}}
	if e.cfg.PlayoutDelay != nil {
		exts = append(exts, struct {
			uri  string
			kind webrtc.RTPCodecType
		}{PlayoutDelayURI, webrtc.RTPCodecTypeVideo})
	}
	for _, x := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: x.uri}, x.kind); err != nil {
			return nil, err
		}
	}
	if len(e.media) >= maxMediaEngines {
		clear(e.media)
	}
	e.media[key] = m
	return m, nil
}

// SetICEServers replaces the STUN/TURN servers of sessions made from now on (a hub hands out
// fresh TURN credentials from time to time).
func (e *Engine) SetICEServers(servers []webrtc.ICEServer) {
	e.ice.Store(&servers)
}

// Sessions is the number of open sessions.
func (e *Engine) Sessions() int { return int(e.sessions.Load()) }

// DirectStats counts the SRTP sent and SRTCP read below Pion on the shared socket (nil
// without one).
func (e *Engine) DirectStats() *srtpdirect.Stats {
	if e.direct == nil {
		return nil
	}
	st := e.direct.Stats()
	return &st
}

// directRemote is where a session's path leads for a selected pair: the viewer's address when
// the pair's local end is the shared socket (a host candidate on its port, or a public address
// offered on it), none for a relay, TCP or any other socket.
func (e *Engine) directRemote(pair *webrtc.ICECandidatePair) netip.AddrPort {
	if pair == nil || pair.Local == nil || pair.Remote == nil || pair.Local.Protocol != webrtc.ICEProtocolUDP ||
		pair.Local.Typ != webrtc.ICECandidateTypeHost || int(pair.Local.Port) != e.direct.Port() {
		return netip.AddrPort{}
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, pair.Remote.Port)
}

// ICEServers returns the current ICE servers.
func (e *Engine) ICEServers() []webrtc.ICEServer { return *e.ice.Load() }

// Session is one viewer's WebRTC connection, built from the source's description: one
// WebRTC track per source track it sends (the first video and the first audio), a received
// audio track handed to the talk-back sink when the viewer may talk, and the data channels
// the viewer's grants open.
type Session struct {
	id   string
	e    *Engine
	st   *stream.Stream
	pc   *webrtc.PeerConnection
	desc description
	// idle are the kinds whose section the viewer's answer left inactive (or receive-only
	// on our side): a session for data channels only (p2pcast fetch) answers so.
	idle    map[string]bool
	tracks  []*localTrack    // what it sends, by kind: video first
	direct  *srtpdirect.Path // nil: not on the shared socket
	snd     *sender          // paces what it sends; made at start
	est     bandwidthEstimator
	onWorse func() // SessionOptions.OnPathWorse
	log     *slog.Logger
	created time.Time

	mu        sync.Mutex
	sub       *stream.Subscriber
	rendition uint8 // the video track it sends (or is switching to): main or an alternate
	offered   bool
	tcp       *tcpHold // nil when the caller does not trickle

	access   auth.Access
	channels []string // SessionOptions.Channels: nil, all
	talk     TalkSink // nil: the viewer cannot send audio
	timers   []*time.Timer
	reason   string  // under mu: why the session ended, for the viewer's bye
	notice   *Notice // under mu: told the viewer when its events channel opens (description.go)
	received receivedStats

	ctx       context.Context // ends at Close: data channel handlers
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	started   atomic.Bool
	firstSent atomic.Int64  // ns after created when the first frame went out
	feedback  atomic.Uint64 // transport-wide feedback reports received
	// route is the track that carries each source track id, set once: every frame to every
	// viewer looks it up (a scan showed at 3 % of the device's CPU at 300 viewers).
	route [256]*localTrack
	// events is the "events" data channel once open (the device's own when it offered, the
	// viewer's when it did): what the device tells the viewer of its path.
	events atomic.Pointer[webrtc.DataChannel]
}

// TalkSink takes what viewers say: the device plays it on its speaker. Frames are payloads of
// the sink's codec (Opus packets), in order; resume marks the first of a burst (after a gap).
// It must not block.
type TalkSink interface {
	// Sink is the producer's sink track: the codec viewers must send.
	Sink() stream.Track
	// TalkFrame hands one frame from session id; an error (the floor is someone else's, the
	// producer is gone) drops it.
	TalkFrame(session string, payload []byte, resume bool) error
}

// SessionOptions says who a session is for.
type SessionOptions struct {
	// Access is what the viewer may do; a session needs auth.GrantView. Its deadline ends the
	// session (on the monotonic clock).
	Access auth.Access
	// ICEServers for this session: a LAN viewer gets the device's own, a hub viewer the hub's.
	ICEServers []webrtc.ICEServer
	// OnCandidate receives the device's ICE candidates as they are gathered, then nil; it may
	// be nil when the caller waits for gathering instead.
	OnCandidate func(*webrtc.ICECandidateInit)
	// Talk plays what the viewer says. It is used only when Access has auth.GrantTalk; nil
	// (or no grant) negotiates audio send-only, so the viewer's browser sends none.
	Talk TalkSink
	// Channels are the labels of Config.Channels this session may open (nil: all of them):
	// a device of several sources serves its desktop's "control" channel only to that
	// source's viewers.
	Channels []string
	// DataOnly: the viewer offered no audio or video (a data session: fetch, record
	// control), so the session does not wait for the stream's source to describe its tracks.
	DataOnly bool
	// OnPathWorse is called when the viewer's estimate falls steeply (below pathWorseShare of
	// what it was at one feedback): its path got worse, and the adaptation policy should act
	// now rather than at its next round. It is called from Pion's SRTCP reader (rtcp.go) and
	// must not block.
	OnPathWorse func()
}

// NewSession makes a session watching st for a viewer with opts.Access.
func (e *Engine) NewSession(st *stream.Stream, opts SessionOptions) (*Session, error) {
	now := time.Now()
	if !opts.Access.Has(auth.GrantView) {
		return nil, fmt.Errorf("%w: view", ErrForbidden)
	}
	if opts.Access.Expired(now) {
		return nil, fmt.Errorf("%w: the token has expired", ErrForbidden)
	}
	talk := opts.Talk
	if talk != nil && !opts.Access.Has(auth.GrantTalk) {
		talk = nil
	}
	wait := e.cfg.SourceWait
	if opts.DataOnly {
		wait = 0 // its recordings are there whether or not the camera is
	}
	desc := describe(st, talk, wait)
	if desc.talk == nil {
		talk = nil // the producer plays nothing: audio is send-only
	}
	m, err := e.mediaFor(desc)
	if err != nil {
		return nil, err
	}
	// An API of the session's own (cheap: Pion copies the media engine per connection
	// anyway), so that its read buffers know whose they are (rtcp.go).
	var buffers atomic.Pointer[readBuffers]
	se := e.se
	se.BufferFactory = func(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
		return buffers.Load().make(kind, ssrc)
	}
	// On the shared socket the session's SRTP may go below Pion (internal/srtpdirect): the
	// DTLS master secret goes to its path, in memory, to derive the keys Pion does not expose.
	var s *Session
	var path *srtpdirect.Path
	if e.direct != nil {
		path = e.direct.NewPath(func(report []byte) bool { return s.takeDirectRTCP(report) })
		se.SetDTLSKeyLogWriter(path.KeyLog())
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(e.ir), webrtc.WithSettingEngine(se))
	if int(e.sessions.Add(1)) > e.cfg.MaxSessions {
		e.sessions.Add(-1)
		return nil, ErrBusy
	}
	onCandidate := opts.OnCandidate
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		ICEServers:   opts.ICEServers,
		Certificates: []webrtc.Certificate{e.cert},
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	})
	if err != nil {
		e.sessions.Add(-1)
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s = &Session{
		id: hex.EncodeToString(b[:]), e: e, st: st, pc: pc, desc: desc, direct: path,
		created:  now,
		access:   opts.Access,
		channels: opts.Channels,
		talk:     talk,
		done:     make(chan struct{}),
		est:      e.newEstimator(),
		onWorse:  opts.OnPathWorse,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var playoutDelay []byte
	if e.cfg.PlayoutDelay != nil {
		playoutDelay = e.cfg.PlayoutDelay.forSession(desc.sends(codec.Audio)).payload()
	}
	for _, t := range desc.send {
		lt := newLocalTrack(t, "p2pcast", playoutDelay)
		lt.direct = path
		s.tracks = append(s.tracks, lt)
	}
	buffers.Store(s.readBuffers())
	for id := range s.route {
		s.route[id] = s.findTrack(uint8(id))
	}
	s.log = e.cfg.Logger.With("session", s.id)
	if onCandidate != nil {
		// TCP candidates wait until UDP has had its chance (icetcp.go).
		s.tcp = newTCPHold(onCandidate, func() bool {
			st := pc.ICEConnectionState()
			return st == webrtc.ICEConnectionStateConnected || st == webrtc.ICEConnectionStateCompleted
		})
		pc.OnICECandidate(s.tcp.candidate)
	}
	if path != nil {
		// The path leads to the viewer while the selected pair is on the shared socket.
		pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
			path.SetRemote(e.directRemote(pair))
		})
	}
	pc.OnICEConnectionStateChange(func(state webrtc.ICEConnectionState) {
		s.log.Debug("ice state", "state", state, "after", time.Since(s.created).Round(time.Millisecond))
	})
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		s.log.Debug("connection state", "state", state, "after", time.Since(s.created).Round(time.Millisecond))
		switch state {
		case webrtc.PeerConnectionStateConnected:
			s.start()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			go s.Close()
		}
	})
	pc.OnTrack(s.onTrack)
	pc.OnDataChannel(s.onDataChannel)
	s.arm(e.cfg.NegotiateTimeout, ReasonTimeout, func() bool {
		return pc.RemoteDescription() != nil && pc.LocalDescription() != nil
	})
	s.arm(e.cfg.ConnectTimeout, ReasonNoConnect, func() bool { return s.started.Load() })
	if !opts.Access.Deadline.IsZero() {
		s.arm(opts.Access.Deadline.Sub(now), ReasonExpired, nil)
	}
	return s, nil
}

// arm ends the session with reason after d unless ok says it got where it had to.
func (s *Session) arm(d time.Duration, reason string, ok func() bool) {
	t := time.AfterFunc(d, func() {
		if ok == nil || !ok() {
			s.End(reason)
		}
	})
	s.mu.Lock()
	s.timers = append(s.timers, t)
	s.mu.Unlock()
}

// Access is what the session's viewer may do.
func (s *Session) Access() auth.Access { return s.access }

// End closes the session, telling the viewer why (bye's reason).
func (s *Session) End(reason string) {
	s.mu.Lock()
	if s.reason == "" {
		s.reason = reason
	}
	s.mu.Unlock()
	s.log.Info("session ended by the device", "reason", reason)
	s.Close()
}

// EndReason says why the device ended the session ("" when it just closed).
func (s *Session) EndReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// ID names the session (WHEP resource, logs).
func (s *Session) ID() string { return s.id }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// addTransceivers adds one transceiver per track the session sends, and one to receive the
// viewer's audio when it may talk. Added before the viewer's offer is applied, Pion pairs
// them with the offer's sections, and the answer's directions say what may flow: audio is
// sendrecv only for a viewer allowed to talk.
func (s *Session) addTransceivers(offering bool) error {
	audio := false
	for _, t := range s.offerOrder(offering) {
		dir := webrtc.RTPTransceiverDirectionSendonly
		if t.src.Kind == codec.Audio {
			audio = true
			if s.talk != nil {
				dir = webrtc.RTPTransceiverDirectionSendrecv
			}
		}
		tr, err := s.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: dir})
		if err != nil {
			return err
		}
		// Pion opens the stream's RTCP read buffer at the first write, after negotiation:
		// the SSRC is known by then (rtcp.go).
		if enc := tr.Sender().GetParameters().Encodings; len(enc) > 0 {
			t.mediaSSRC.Store(uint32(enc[0].SSRC))
		}
	}
	if !audio && s.talk != nil {
		if _, err := s.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	if offering {
		// The device's own channel to the viewer (network reports). It also opens the data
		// section (SCTP) in the offer, so the viewer can open the channels its grants allow
		// without another negotiation.
		dc, err := s.pc.CreateDataChannel(EventsChannel, nil)
		if err != nil {
			return err
		}
		s.adoptEvents(dc)
	}
	return nil
}

// offerOrder is the order of the session's sections in its own offer: video first, except
// for a video codec many browsers lack (H.265). A browser rejects such a section, and when the
// rejected section is the bundle's first, its transport goes with it and the answer fails
// (Chromium: "Failed to setup RTCP mux"), so that video comes after the audio.
func (s *Session) offerOrder(offering bool) []*localTrack {
	if !offering || len(s.tracks) < 2 || s.tracks[0].src.Codec != codec.H265.Name {
		return s.tracks
	}
	return append(slices.Clone(s.tracks[1:]), s.tracks[0])
}

// dropVideo takes the video out of a session whose viewer cannot play it (before any
// transceiver is added), and keeps n to tell it.
// trackList is the session's tracks now: dropVideo replaces the list (under mu) while
// negotiating, when Stats or the adaptation policy may be reading it.
func (s *Session) trackList() []*localTrack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracks
}

func (s *Session) dropVideo(n *Notice) {
	s.mu.Lock()
	s.desc = s.desc.withoutVideo()
	s.tracks = slices.DeleteFunc(slices.Clone(s.tracks), func(t *localTrack) bool { return t.src.Kind == codec.Video })
	for id := range s.route {
		s.route[id] = s.findTrack(uint8(id))
	}
	s.notice = n
	s.mu.Unlock()
	s.log.Info("viewer takes no video the device sends: audio only", "codec", n.Codec, "offered", n.Offered)
}

// adoptEvents makes dc the session's events channel once it opens. Messages from the viewer
// on it are ignored: the channel is the device's to speak on.
func (s *Session) adoptEvents(dc *webrtc.DataChannel) {
	closed := func() { s.events.CompareAndSwap(dc, nil) }
	dc.OnOpen(func() {
		s.events.Store(dc)
		s.mu.Lock()
		n := s.notice
		s.mu.Unlock()
		if n != nil {
			if b, err := json.Marshal(n); err == nil {
				_ = dc.SendText(string(b))
			}
		}
		readChannel(dc, nil, closed) // the viewer sends nothing on it; drained, and its close seen
	})
	dc.OnClose(closed)
}

// SendEvent sends msg (one JSON message, docs/adaptation.md) on the events channel; false
// when the viewer has none open. It never blocks: a message that finds the previous ones
// still buffered is dropped, the next one replaces it.
func (s *Session) SendEvent(msg []byte) bool {
	dc := s.events.Load()
	if dc == nil || dc.BufferedAmount() > eventsBacklog {
		return false
	}
	return dc.SendText(string(msg)) == nil // text: a page reads it as a string
}

// eventsBacklog is how many bytes of events may wait for a viewer whose path is full.
const eventsBacklog = 16 << 10

// Answer applies the viewer's offer and returns the device's answer. Candidates trickle
// through onCandidate; use LocalDescription after gathering for a complete answer.
func (s *Session) Answer(offer string) (string, error) {
	if sd, err := parseSDP(offer); err == nil {
		if n, refused := s.desc.videoRefused(sd); refused && s.desc.withoutVideo().checkOffer(offer) == nil {
			s.dropVideo(n)
		}
	}
	if err := s.desc.checkOffer(offer); err != nil {
		return "", err
	}
	if err := s.addTransceivers(false); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if s.talk == nil {
		if narrowed := receiveOnlyAudio(offer); narrowed != offer {
			s.log.Info("viewer may not talk: its audio is taken as receive-only", "token", s.access.TokenID)
			offer = narrowed
		}
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	s.requestKeyframe() // so a fresh one is likely waiting when DTLS completes
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if err := s.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return s.localSDP(true), nil
}

// localSDP is the description to send; when trickling, without TCP candidates (they are held,
// icetcp.go), and checksStart tells that both descriptions are now applied.
func (s *Session) localSDP(checksStart bool) string {
	sdp := s.pc.LocalDescription().SDP
	if s.tcp == nil {
		return sdp
	}
	if checksStart {
		s.tcp.start()
	}
	return withoutTCPCandidates(sdp)
}

// Offer makes the device's offer: a send-only section per track, audio send-receive for a
// viewer who may talk, and a data section when the device has channels.
func (s *Session) Offer() (string, error) {
	if err := s.addTransceivers(true); err != nil {
		return "", err
	}
	s.requestKeyframe()
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.offered = true
	s.mu.Unlock()
	return s.localSDP(false), nil
}

// Restart makes a new offer with fresh ICE credentials (an ICE restart, RFC 8445 9): the
// viewer's network changed and the old candidate pairs are dead. Media resumes on the same
// session once the viewer answers and a new pair is up.
func (s *Session) Restart() (string, error) {
	s.mu.Lock()
	offered := s.offered
	s.mu.Unlock()
	if !offered {
		return "", ErrNoOffer
	}
	if s.tcp != nil {
		s.tcp.restart()
	}
	offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadState, err)
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadState, err)
	}
	s.log.Info("ICE restart")
	s.requestKeyframe()
	return s.localSDP(false), nil
}

// SetAnswer applies the viewer's answer to the device's offer.
func (s *Session) SetAnswer(answer string) error {
	s.mu.Lock()
	offered := s.offered
	s.mu.Unlock()
	if !offered {
		return ErrNoOffer
	}
	sd, err := parseSDP(answer)
	if err != nil {
		return err
	}
	if n, refused := s.desc.videoRefused(sd); refused {
		// The viewer rejected the video section: its track leaves the session before Pion
		// would bind it to a codec the viewer does not have.
		for _, tr := range s.pc.GetTransceivers() {
			if snd := tr.Sender(); snd != nil && snd.Track() != nil && snd.Track().Kind() == webrtc.RTPCodecTypeVideo {
				if err := s.pc.RemoveTrack(snd); err != nil {
					return fmt.Errorf("%w: %v", ErrBadState, err)
				}
			}
		}
		s.dropVideo(n)
	}
	idle := map[string]bool{}
	for _, m := range sd.MediaDescriptions {
		// Rejected (port 0), or the viewer's direction inactive or only sending: nothing for
		// us to send in that section.
		if m.MediaName.Port.Value == 0 || slices.ContainsFunc(m.Attributes, func(a sdp.Attribute) bool {
			return a.Key == "inactive" || a.Key == "sendonly"
		}) {
			idle[m.MediaName.Media] = true
		}
	}
	s.mu.Lock()
	s.idle = idle
	s.mu.Unlock()
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if s.tcp != nil {
		s.tcp.start() // the checks begin
	}
	return nil
}

// AddCandidate adds a viewer's trickled candidate; nil or an empty candidate ends them.
func (s *Session) AddCandidate(c *webrtc.ICECandidateInit) error {
	if c == nil || c.Candidate == "" {
		return nil
	}
	if s.pc.RemoteDescription() == nil {
		return fmt.Errorf("%w: candidate before the remote description", ErrBadState)
	}
	if err := s.pc.AddICECandidate(*c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	return nil
}

// GatheringDone is closed when the device has gathered all its candidates.
func (s *Session) GatheringDone() <-chan struct{} { return webrtc.GatheringCompletePromise(s.pc) }

// LocalDescription returns the device's current SDP, candidates included.
func (s *Session) LocalDescription() string {
	if d := s.pc.LocalDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// requestKeyframe asks for a keyframe on the video track the session sends (the rendition
// it is on).
func (s *Session) requestKeyframe() {
	s.mu.Lock()
	r := s.rendition
	tracks := s.tracks
	s.mu.Unlock()
	for _, t := range tracks {
		if t.src.Kind == codec.Video {
			if r == 0 {
				r = t.src.ID
			}
			s.st.RequestKeyframe(r)
		}
	}
}

// start begins sending once DTLS is up: writes before that are dropped by Pion anyway.
func (s *Session) start() {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	ids := make([]uint8, 0, len(s.tracks))
	for _, t := range s.tracks {
		t.mu.Lock()
		bound := t.bound
		t.mu.Unlock()
		if !bound || s.idle[t.src.Kind.String()] {
			// The viewer's answer made the section inactive (a session for data channels
			// only: p2pcast fetch): nothing of the track is read, packetized or sent.
			continue
		}
		ids = append(ids, t.src.ID)
		if t.src.Kind == codec.Video {
			s.rendition = t.src.ID // a viewer starts on the main stream
		}
	}
	snd := newSender(s.e.pacer, s.est)
	snd.frameSent = s.frameSent
	snd.keyframe = s.st.RequestKeyframe
	for _, t := range s.tracks {
		if t.src.Kind == codec.Video {
			snd.video = t
			t.mu.Lock()
			snd.paced = t.twcc != nil
			t.mu.Unlock()
		}
	}
	s.snd = snd
	// The sender is registered before frames come, and frames come straight from the
	// stream's publish: no goroutine per viewer.
	s.e.pacer.add(snd)
	var sub *stream.Subscriber
	if len(ids) > 0 {
		sub = s.st.SubscribeFunc(s.deliver(snd), ids...)
	}
	s.sub = sub
	s.mu.Unlock()
	s.log.Info("viewer connected", "after", time.Since(s.created).Round(time.Millisecond), "tracks", len(ids), "talk", s.talk != nil,
		"paced", snd.paced)
}

// frameSent is told by the pacer when a frame's last packet has left: the stream's timeline,
// and the track's sender report when one is due.
func (s *Session) frameSent(t *localTrack, f *stream.Frame, now time.Time) {
	s.st.MarkSent(f, now.UnixNano())
	if s.firstSent.Load() == 0 {
		s.firstSent.Store(int64(now.Sub(s.created)))
	}
	if sr := t.senderReport(now); sr != nil {
		if err := s.pc.WriteRTCP([]rtcp.Packet{sr}); err != nil {
			s.log.Debug("sender report", "err", err)
		}
	}
}

// deliver takes a frame the stream publishes to this session: its sender queues it.
func (s *Session) deliver(snd *sender) stream.Deliver {
	return func(f *stream.Frame) bool {
		t := s.trackFor(f.Track)
		if t == nil {
			f.Release()
			return true
		}
		return snd.offer(t, f)
	}
}

// trackFor is the track that carries source track id (nil: none).
func (s *Session) trackFor(id uint8) *localTrack { return s.route[id] }

// findTrack is the track that carries source track id: the video track carries every
// rendition of its picture.
func (s *Session) findTrack(id uint8) *localTrack {
	for _, t := range s.tracks {
		if t.src.ID == id {
			return t
		}
	}
	for _, r := range s.desc.renditions {
		if r.ID == id {
			for _, t := range s.tracks {
				if t.src.Kind == codec.Video {
					return t
				}
			}
		}
	}
	return nil
}

// congested says whether the viewer's path is congested (congestion.Stats.Congested): its
// loss is then the bottleneck's, which FEC would add to, not repair.
func (s *Session) congested() bool {
	e, ok := s.est.(estimator)
	return ok && e.Stats().Congested()
}

// Delivered is what the viewer's path carried lately, bit/s, as its feedback tells (0 before
// there is an estimate).
func (s *Session) Delivered() int {
	if _, ok := s.Estimate(); !ok {
		return 0
	}
	if e, ok := s.est.(estimator); ok {
		return e.Stats().Acked
	}
	return 0
}

// SendsAudio reports whether the session sends audio.
func (s *Session) SendsAudio() bool { return s.desc.sends(codec.Audio) }

// Renditions are the video tracks the session can send, main first.
func (s *Session) Renditions() []stream.Track { return s.desc.renditions }

// Rendition is the video track the session sends, or is switching to (0: none yet).
func (s *Session) Rendition() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rendition
}

// SwitchTo moves the viewer to another rendition of its video at that rendition's next
// keyframe (asked for now).
func (s *Session) SwitchTo(track uint8) {
	if !slices.ContainsFunc(s.desc.renditions, func(r stream.Track) bool { return r.ID == track }) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil || s.rendition == track {
		return
	}
	s.sub.Switch(s.rendition, track)
	s.log.Info("rendition switch", "from", s.rendition, "to", track)
	s.rendition = track
}

// Estimate is the viewer's bandwidth estimate in bit/s, and whether there is one (the viewer
// sends transport-wide feedback and some has come).
func (s *Session) Estimate() (int, bool) {
	s.mu.Lock()
	snd := s.snd
	s.mu.Unlock()
	if snd == nil || !snd.paced || s.feedback.Load() == 0 {
		return 0, false
	}
	return s.est.Target(), true
}

// Protection is the share of FEC packets the session sends per video packet now: what its
// path carries beyond the video (0: none).
func (s *Session) Protection() float64 {
	for _, t := range s.trackList() {
		if t.src.Kind == codec.Video {
			return t.fecShare()
		}
	}
	return 0
}

// sender is the session's pacing queue, nil before the session starts.
func (s *Session) sender() *sender {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snd
}

// takeRTCP handles one report other than transport-wide feedback that the viewer addressed
// to track t's media stream (rtcp.go, takeReport).
func (s *Session) takeRTCP(t *localTrack, p rtcp.Packet) {
	switch p := p.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		if t.src.Kind == codec.Video {
			s.requestKeyframe()
		}
	case *rtcp.TransportLayerNack:
		var lost []uint16
		for _, n := range p.Nacks {
			lost = append(lost, n.PacketList()...)
		}
		if snd := s.sender(); snd != nil && !s.e.cfg.Recovery.NoNACK {
			snd.resend(t, lost)
		}
	case *rtcp.ReceiverReport:
		t.receiverReport(p, time.Now(), s.congested())
	}
}

// takeFeedback hands a transport-wide feedback packet (b, as received) to the session's
// estimator, whichever stream it was addressed to (rtcp.go).
func (s *Session) takeFeedback(b []byte) {
	before := s.est.Target()
	if s.est.Feedback(b, time.Now()) != nil {
		return // malformed: dropped, as Pion drops what it cannot parse
	}
	s.feedback.Add(1)
	if s.onWorse != nil && float64(s.est.Target()) < pathWorseShare*float64(before) {
		s.onWorse()
	}
}

// pathWorseShare: an estimate that falls below this share of itself at one feedback is a path
// that got worse (SessionOptions.OnPathWorse).
const pathWorseShare = 0.7

// Stats describes a session for status pages and logs.
type Stats struct {
	ID          string  `json:"id"`
	State       string  `json:"state"`
	Packets     uint64  `json:"packets"`
	Bytes       uint64  `json:"bytes"`
	Dropped     uint64  `json:"dropped_frames"`
	FirstSentMS float64 `json:"first_sent_ms"` // session created → first frame written
	// Extensions are the RTP header extensions negotiated and sent (abs-capture-time,
	// playout-delay): whether this receiver takes them.
	Extensions []string `json:"extensions"`
	// Tracks are what the session sends, per track.
	Tracks []TrackStats `json:"tracks"`
	// Rendition is the video track it sends (main or an alternate), or is switching to.
	Rendition uint8 `json:"rendition"`
	// Talk counts the viewer's talk-back audio (nil when it may not talk).
	Talk *receivedStats `json:"talk,omitempty"`
	// Network is the viewer's path as the device sees it (nil before media flows).
	Network *NetworkStats `json:"network,omitempty"`
	// Pair is the ICE candidate pair the session uses (nil before one is selected).
	Pair *PairStats `json:"pair,omitempty"`
}

// PairStats names the selected ICE candidate pair: the candidate types (host, srflx, prflx,
// relay) and the transport.
type PairStats struct {
	Local    string `json:"local"`
	Remote   string `json:"remote"`
	Protocol string `json:"protocol"`
	// RemoteAddress is the viewer's end of the pair (its host, reflexive or relay address):
	// which viewer a session is, for an operator (GET /api/status needs the control grant).
	RemoteAddress string `json:"remote_address"`
}

// selectedPair is the session's ICE candidate pair, if one is selected. Only once the session
// started (DTLS up: Pion's ICE transport has finished starting): before, Pion writes what
// GetSelectedCandidatePair reads without a lock.
func (s *Session) selectedPair() *PairStats {
	if !s.started.Load() {
		return nil
	}
	var it *webrtc.ICETransport
	for _, tr := range s.pc.GetTransceivers() {
		if snd := tr.Sender(); snd != nil && snd.Transport() != nil {
			it = snd.Transport().ICETransport()
			break
		}
	}
	if it == nil {
		if sctp := s.pc.SCTP(); sctp != nil && sctp.Transport() != nil {
			it = sctp.Transport().ICETransport()
		}
	}
	if it == nil {
		return nil
	}
	p, err := it.GetSelectedCandidatePair()
	if err != nil || p == nil || p.Local == nil || p.Remote == nil {
		return nil
	}
	return &PairStats{Local: p.Local.Typ.String(), Remote: p.Remote.Typ.String(), Protocol: p.Local.Protocol.String(),
		RemoteAddress: net.JoinHostPort(p.Remote.Address, strconv.Itoa(int(p.Remote.Port)))}
}

// TrackStats counts one sent track.
type TrackStats struct {
	Kind          codec.Kind `json:"kind"`
	Codec         string     `json:"codec"`
	Packets       uint64     `json:"packets"`
	Bytes         uint64     `json:"bytes"`
	Retransmitted uint64     `json:"retransmitted"`
	// Report is the viewer's last receiver report of the track.
	Report receiverReport `json:"report"`
}

// NetworkStats is what the device knows of the viewer's path.
type NetworkStats struct {
	// Paced: the viewer sends transport-wide feedback, so the device estimates its bandwidth
	// and paces to it.
	Paced       bool    `json:"paced"`
	EstimateBPS int     `json:"estimate_bps"`
	RTTMS       float64 `json:"rtt_ms"`
	Loss        float64 `json:"loss"`      // fraction, the video track's last report
	JitterMS    float64 `json:"jitter_ms"` // the video track's, as reported
	QueueMS     float64 `json:"queue_ms"`  // media waiting in the pacer, at the estimate
	// FECShare is the forward error correction sent per media packet now (0: off, or the
	// viewer takes no RED/ULPFEC).
	FECShare float64 `json:"fec_share"`
	// FeedbackReports counts the viewer's transport-wide feedback reports.
	FeedbackReports uint64 `json:"feedback_reports"`
	senderStats
	// Estimator is the bandwidth estimator's own view (delay state, acked rate, probes).
	Estimator any `json:"estimator,omitempty"`
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	st := Stats{ID: s.id, State: s.pc.ConnectionState().String(),
		FirstSentMS: float64(s.firstSent.Load()/1e5) / 10, Extensions: []string{}, Tracks: []TrackStats{},
		Pair: s.selectedPair()}
	var net NetworkStats
	for _, t := range s.trackList() {
		p, b, resent, report, ext := t.counters()
		st.Packets += p
		st.Bytes += b
		for _, e := range ext {
			if !slices.Contains(st.Extensions, e) {
				st.Extensions = append(st.Extensions, e)
			}
		}
		st.Tracks = append(st.Tracks, TrackStats{Kind: t.src.Kind, Codec: t.src.Codec, Packets: p, Bytes: b,
			Retransmitted: resent, Report: report})
		if report.RTTMS > 0 && (net.RTTMS == 0 || t.src.Kind == codec.Video) {
			net.RTTMS = report.RTTMS
		}
		if t.src.Kind == codec.Video {
			net.Loss, net.JitterMS = report.FractionLost, report.JitterMS
			net.FECShare = t.fecShare()
		}
	}
	s.mu.Lock()
	if s.sub != nil {
		st.Dropped = s.sub.Dropped()
	}
	if s.talk != nil {
		r := s.received
		st.Talk = &r
	}
	snd := s.snd
	st.Rendition = s.rendition
	s.mu.Unlock()
	if snd != nil {
		snd.mu.Lock()
		net.Paced = snd.paced
		net.senderStats = snd.stats
		net.QueueMS = float64(snd.queueDelayLocked().Microseconds()) / 1000
		snd.mu.Unlock()
		net.EstimateBPS = s.est.Target()
		net.FeedbackReports = s.feedback.Load()
		if sr, ok := s.est.(interface{ StatsAny() any }); ok {
			net.Estimator = sr.StatsAny()
		}
		st.Network = &net
	}
	return st
}

// Close ends the session; safe to call more than once.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		s.cancel()
		sub, snd := s.sub, s.snd
		for _, t := range s.timers {
			t.Stop()
		}
		s.mu.Unlock()
		if sub != nil {
			sub.Close()
		}
		if snd != nil {
			snd.close()
		}
		if s.tcp != nil {
			s.tcp.stop()
		}
		if s.direct != nil {
			s.direct.Close()
		}
		if err := s.pc.Close(); err != nil {
			s.log.Debug("close", "err", err)
		}
		s.e.sessions.Add(-1)
		s.log.Info("viewer left")
	})
}

// Wait blocks until the session ends or ctx is done.
func (s *Session) Wait(ctx context.Context) {
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// maxSDP bounds an SDP blob; real offers are a few KiB.
const maxSDP = 64 << 10

func parseSDP(text string) (*sdp.SessionDescription, error) {
	if len(text) > maxSDP {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadSDP, len(text), maxSDP)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return &d, nil
}
