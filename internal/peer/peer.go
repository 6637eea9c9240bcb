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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
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

// PlayoutDelay is what the playout-delay header extension asks of receivers: min = max = 0
// takes Chromium's low-latency path (render as soon as decoded).
type PlayoutDelay struct{ Min, Max time.Duration }

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
	// PlayoutDelay is sent to receivers that negotiate the extension; nil sends nothing.
	PlayoutDelay *PlayoutDelay
	// IncludeLoopback offers 127.0.0.1 candidates too (a viewer on the same machine, tests).
	IncludeLoopback bool
	// MaxSessions bounds concurrent viewers (default 200).
	MaxSessions int
	// ICETCP, when set, is a listener for ICE over TCP (passive candidates, shared by every
	// session): a viewer whose network drops UDP still reaches a device it can route to.
	ICETCP net.Listener
	// ICEUDP, when set, is one UDP socket shared by every session instead of a socket per
	// session: one port to open in a firewall or forward on a router.
	ICEUDP net.PacketConn
	// PublicIPs are addresses the device is reached on through a 1:1 NAT or a port forward;
	// they are offered beside the host candidates, on the same ports.
	PublicIPs []string
	Logger    *slog.Logger
	// NegotiateTimeout and ConnectTimeout override the package defaults (tests).
	NegotiateTimeout, ConnectTimeout time.Duration
}

// Engine makes sessions that share one Pion API (codecs, extensions, interceptors) and one DTLS
// certificate, so a join costs no key generation.
type Engine struct {
	cfg      Config
	ice      atomic.Pointer[[]webrtc.ICEServer]
	api      *webrtc.API
	cert     webrtc.Certificate
	sessions atomic.Int32
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	// Constrained baseline is what every browser decodes; level-asymmetry lets the stream's real
	// level differ from the 3.1 announced here.
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	// abs-capture-time tells receivers when each frame was captured (the capture clock, not
	// the RTP clock), so a viewer can measure capture → present itself.
	exts := []string{AbsCaptureTimeURI}
	if cfg.PlayoutDelay != nil {
		exts = append(exts, PlayoutDelayURI)
	}
	for _, uri := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	// Sender and receiver reports only: retransmissions come from the shared frame history in
	// videoTrack, not from a per-viewer copy of every packet (Pion's NACK responder).
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
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
	if cfg.ICEUDP != nil {
		se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, cfg.ICEUDP))
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
		se.SetICETCPMux(webrtc.NewICETCPMux(nil, cfg.ICETCP, 64))
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	}
	// No mDNS: resolving a browser's ".local" candidates is not needed (its checks reach us and
	// become peer-reflexive candidates), and each session's mDNS sockets made a burst of joins
	// wait in SetRemoteDescription (p95 72 ms for 50 at once, 11 ms without).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:  cfg,
		api:  webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		cert: *cert,
	}
	e.SetICEServers(cfg.ICEServers)
	return e, nil
}

// SetICEServers replaces the STUN/TURN servers of sessions made from now on (a hub hands out
// fresh TURN credentials from time to time).
func (e *Engine) SetICEServers(servers []webrtc.ICEServer) {
	e.ice.Store(&servers)
}

// Sessions is the number of open sessions.
func (e *Engine) Sessions() int { return int(e.sessions.Load()) }

// ICEServers returns the current ICE servers.
func (e *Engine) ICEServers() []webrtc.ICEServer { return *e.ice.Load() }

// Session is one viewer's WebRTC connection.
type Session struct {
	id      string
	e       *Engine
	st      *stream.Stream
	pc      *webrtc.PeerConnection
	track   *videoTrack
	log     *slog.Logger
	created time.Time

	mu      sync.Mutex
	sub     *stream.Subscriber
	offered bool
	tcp     *tcpHold // nil when the caller does not trickle

	access auth.Access
	timers []*time.Timer // deadlines, stopped at Close
	reason string        // under mu: why the session ended, for the viewer's bye

	done      chan struct{}
	closeOnce sync.Once
	started   atomic.Bool
	firstSent atomic.Int64 // ns after created when the first frame went out
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
	if int(e.sessions.Add(1)) > e.cfg.MaxSessions {
		e.sessions.Add(-1)
		return nil, ErrBusy
	}
	onCandidate := opts.OnCandidate
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{
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
	s := &Session{
		id: hex.EncodeToString(b[:]), e: e, st: st, pc: pc,
		track:   newVideoTrack("video", "p2pcast", nil),
		created: now,
		access:  opts.Access,
		done:    make(chan struct{}),
	}
	if e.cfg.PlayoutDelay != nil {
		s.track.playoutDelay = e.cfg.PlayoutDelay.payload()
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

// Answer applies the viewer's offer and returns the device's answer. Candidates trickle
// through onCandidate; use LocalDescription after gathering for a complete answer.
func (s *Session) Answer(offer string) (string, error) {
	if err := checkOffer(offer); err != nil {
		return "", err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	sender, err := s.pc.AddTrack(s.track)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	go s.readRTCP(sender)
	s.st.RequestKeyframe() // so a fresh one is likely waiting when DTLS completes
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

// Offer makes the device's offer (one send-only H.264 track).
func (s *Session) Offer() (string, error) {
	tr, err := s.pc.AddTransceiverFromTrack(s.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return "", err
	}
	go s.readRTCP(tr.Sender())
	s.st.RequestKeyframe()
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
	s.st.RequestKeyframe()
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
	if _, err := parseSDP(answer); err != nil {
		return err
	}
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
	sub := s.st.Subscribe()
	s.sub = sub
	s.mu.Unlock()
	s.log.Info("viewer connected", "after", time.Since(s.created).Round(time.Millisecond))
	go func() {
		for f := range sub.Frames() {
			if err := s.track.writeFrame(f); err != nil {
				s.log.Debug("write", "err", err)
			}
			now := time.Now()
			s.st.MarkSent(f, now.UnixNano())
			if s.firstSent.Load() == 0 {
				s.firstSent.Store(int64(now.Sub(s.created)))
			}
			f.Release()
		}
	}()
}

func (s *Session) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.st.RequestKeyframe()
			case *rtcp.TransportLayerNack:
				var lost []uint16
				for _, n := range p.Nacks {
					lost = append(lost, n.PacketList()...)
				}
				s.track.retransmit(lost)
			}
		}
	}
}

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
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	p, b, ext := s.track.counters()
	st := Stats{ID: s.id, State: s.pc.ConnectionState().String(), Packets: p, Bytes: b,
		FirstSentMS: float64(s.firstSent.Load()/1e5) / 10, Extensions: ext}
	s.mu.Lock()
	if s.sub != nil {
		st.Dropped = s.sub.Dropped()
	}
	s.mu.Unlock()
	return st
}

// Close ends the session; safe to call more than once.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		sub := s.sub
		for _, t := range s.timers {
			t.Stop()
		}
		s.mu.Unlock()
		if sub != nil {
			sub.Close()
		}
		if s.tcp != nil {
			s.tcp.stop()
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

// checkOffer refuses, with a reason a person can act on, offers the device cannot answer.
func checkOffer(text string) error {
	d, err := parseSDP(text)
	if err != nil {
		return err
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		h264 := map[string]bool{}
		for _, a := range m.Attributes {
			if pt, codec, ok := strings.Cut(a.Value, " "); a.Key == "rtpmap" && ok && strings.EqualFold(codec, "H264/90000") {
				h264[pt] = true
			}
		}
		for _, a := range m.Attributes {
			if a.Key != "fmtp" {
				continue
			}
			pt, params, _ := strings.Cut(a.Value, " ")
			if h264[pt] && strings.Contains(params, "packetization-mode=1") {
				return nil
			}
		}
		return fmt.Errorf("%w: the offer's video accepts no H.264 with packetization-mode=1", ErrBadSDP)
	}
	return fmt.Errorf("%w: the offer has no video section", ErrBadSDP)
}
