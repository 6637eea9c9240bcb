// Package viewer is a WebRTC receiver for p2pcast devices: it negotiates over WHEP, over the
// device's WebSocket signaling, or through a hub (docs/signaling.md, docs/hub.md), rebuilds
// H.264 access units, and measures what a viewer experiences (frames, RTP sequence gaps, time
// to the first frame, capture → receive delay, the ICE pair). `p2pcast view`, the load
// benchmark and the end-to-end tests use it.
//
// Only the signaling differs between the paths (a signaler); the PeerConnection, the track
// reading and the measurements are one implementation.
package viewer

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/mp4"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Options configure one viewing. Exactly one of WHEPURL, WSURL and HubURL says where to watch.
type Options struct {
	// WHEPURL is the device's WHEP endpoint, e.g. http://127.0.0.1:8080/whep.
	WHEPURL string
	// WSURL is the device's WebSocket signaling endpoint, e.g. ws://192.168.1.20:8080/ws: the
	// device sends hello, the viewer asks it to offer (watch) and answers.
	WSURL string
	// HubURL is a hub's viewer endpoint, ws[s]://HOST[:PORT][/ws] (the path defaults to /ws).
	// The viewer authenticates with Token for Device, then negotiates as on WSURL.
	HubURL string
	// Device is the id of the device to watch through the hub.
	Device string
	// Source is the device source to watch ("": the default): the watch names it on WSURL and
	// HubURL; WHEPURL's path names it itself (/whep/ID, see WHEPSourceURL).
	Source string
	// Token is the bearer token: the hub's, or a device's with LAN auth. It travels only in the
	// first WebSocket message or WHEP's Authorization header: never in a URL, a log or an error.
	Token string

	// ICEServers, when not nil, replace the STUN/TURN servers of the device's or hub's hello
	// (WHEP offers none).
	ICEServers []webrtc.ICEServer
	// RelayOnly uses TURN relay candidates only (ICETransportPolicy relay).
	RelayOnly bool
	// FirstFrameTimeout ends the watch with ErrTimeout when no frame has arrived this long
	// after Watch started; 0 waits as long as ctx allows.
	FirstFrameTimeout time.Duration

	// Out receives what arrives, in Format; may be nil.
	Out io.Writer
	// Format is Out's: FormatAnnexB (the default: the H.264 access units) or FormatMP4
	// (fragmented MP4 with the audio too).
	Format string
	// Duration counts from the first frame; 0 watches until ctx ends.
	Duration time.Duration
	// Frames stops after this many frames; 0 means no limit.
	Frames int
	// OnFrame, if set, sees every complete frame (Annex-B, valid during the call).
	OnFrame func(au []byte, keyframe bool, rtpTime uint32)
	// Progress, if set, is called about once a second while watching with the figures so far
	// (a terminal's live line); never after Watch returns.
	Progress func(Result)
	// Reconnect starts a new session when one ends before the watch does (the device
	// restarted, its path failed), until ctx, Duration or Frames ends the watch, waiting 1 s
	// and up to 10 s between tries. Duration and Frames count over all sessions; the output
	// goes on (an MP4 file stays one file while the video keeps its codec). Without it, a
	// session that ends ends the watch; a hub that restarts does not: the media goes on peer
	// to peer.
	Reconnect bool
	Logger    *slog.Logger
	// Client makes the WHEP requests (default: a 10 s timeout, with TLS).
	Client *http.Client
	// TLS configures https:// and wss:// connections (e.g. a private CA); nil uses the system's.
	TLS *tls.Config
	// NetDial, when set, dials the WebSocket's TCP connection (a policy on where plain ws:// may go).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Pair is the selected ICE candidate pair when the first frame arrived.
type Pair struct {
	LocalType  string `json:"local_type"`
	RemoteType string `json:"remote_type"`
	// Protocol is the pair's transport (udp, tcp); for a local relay candidate, the transport
	// to the TURN server (udp, tcp, tls).
	Protocol string `json:"protocol"`
}

// Result is what a viewing measured.
type Result struct {
	// Signaling is the path used: whep, ws (the device's own WebSocket) or hub.
	Signaling  string  `json:"signaling"`
	Frames     int     `json:"frames"`
	Keyframes  int     `json:"keyframes"`
	Bytes      int64   `json:"bytes"`
	BitrateBPS int64   `json:"bitrate_bps"`
	FPS        float64 `json:"fps"`
	Packets    uint64  `json:"packets"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	// TTFFMS is Watch start → first complete frame. FirstKeyframeMS is the media request (the
	// WHEP POST, or the WebSocket watch) → first keyframe.
	TTFFMS          float64 `json:"ttff_ms"`
	FirstKeyframeMS float64 `json:"first_keyframe_ms"`
	Width           int     `json:"width"`
	Height          int     `json:"height"`
	Pair            Pair    `json:"pair"`
	DurationS       float64 `json:"duration_s"`
	// AbsCaptureTime tells whether frames carried the abs-capture-time header extension.
	AbsCaptureTime bool `json:"abs_capture_time"`
	// CaptureToReceiveMS is the median, over frames, of the local wall clock when the packet
	// completing a frame arrived minus the frame's abs-capture-time: meaningful on one machine
	// or with synchronized clocks. Absent without abs-capture-time.
	CaptureToReceiveMS float64 `json:"capture_to_receive_ms,omitempty"`
	// Audio is what arrived on the audio track; nil when the device sent none.
	Audio *AudioResult `json:"audio,omitempty"`
	// Network is the device's last report of this viewer's path (estimate, RTT, loss, the
	// rendition sent); nil when it sent none. Decisions are the adaptation decisions all its
	// reports told, oldest first (the latest maxDecisions).
	Network   *wire.Network   `json:"network,omitempty"`
	Decisions []wire.Decision `json:"decisions,omitempty"`
	// Sessions counts the sessions of a watch with Reconnect (0 without).
	Sessions int `json:"sessions,omitempty"`

	// ended is why a session ended before the watch did (nil: the watch's own end).
	ended error
}

// maxDecisions bounds Result.Decisions: the latest are kept.
const maxDecisions = 64

// AudioResult counts the audio track: packets (one frame each), bytes, loss, bitrate.
type AudioResult struct {
	Codec      string  `json:"codec"`
	Packets    uint64  `json:"packets"`
	Bytes      int64   `json:"bytes"`
	Lost       uint64  `json:"lost"`
	BitrateBPS int64   `json:"bitrate_bps"`
	DurationS  float64 `json:"duration_s"`
	// CaptureToReceiveMS: as for video, from the packets' abs-capture-time.
	CaptureToReceiveMS float64 `json:"capture_to_receive_ms,omitempty"`
}

// Header extensions the viewer accepts; the device sends them when negotiated.
const (
	absCaptureTimeURI = codec.AbsCaptureTimeURI
	playoutDelayURI   = codec.PlayoutDelayURI
)

// h264Profiles are the H.264 profiles the viewer takes (its depacketizer does not care; the
// device sends the profile its producer encodes), each on its own payload type.
var h264Profiles = []string{"42e01f", "4d001f", "64001f"}

// signaler is the only part of a watch that differs between WHEP and WebSocket signaling.
type signaler interface {
	// kind names the path in Result.Signaling.
	kind() string
	// connect reaches the device or hub and returns the ICE servers it offers (may be nil).
	connect(ctx context.Context) ([]webrtc.ICEServer, error)
	// session negotiates pc, calling requested when the media request goes out, then keeps
	// the signaling until ctx ends (nil) or the session ends from the other side (its reason).
	session(ctx context.Context, pc *webrtc.PeerConnection, requested func()) error
	// note is the last non-fatal complaint from the other side, to explain a watch that
	// got nothing; nil if none.
	note() error
	// close releases the signaling (says bye, deletes the WHEP resource); idempotent.
	close()
}

func newSignaler(o *Options) (signaler, error) {
	set := 0
	for _, u := range []string{o.WHEPURL, o.WSURL, o.HubURL} {
		if u != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("viewer: set exactly one of WHEPURL, WSURL and HubURL")
	}
	switch {
	case o.WHEPURL != "":
		return &whepSignaler{url: o.WHEPURL, token: o.Token, client: o.Client, log: o.Logger}, nil
	case o.WSURL != "":
		u, err := wsURL(o.WSURL)
		if err != nil {
			return nil, err
		}
		ws := newWSSignaler(u, "", o.Token, o.TLS, o.NetDial, o.Logger)
		ws.source = o.Source
		return ws, nil
	default:
		if o.Device == "" || o.Token == "" {
			return nil, errors.New("viewer: watching through a hub needs Device and Token")
		}
		u, err := wsURL(o.HubURL)
		if err != nil {
			return nil, err
		}
		ws := newWSSignaler(u, o.Device, o.Token, o.TLS, o.NetDial, o.Logger)
		ws.source = o.Source
		return ws, nil
	}
}

// WHEPSourceURL is the WHEP endpoint of source id at a device's endpoint base (…/whep):
// base/ID, or base itself for "" (the default source).
func WHEPSourceURL(base, id string) string {
	if id == "" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + url.PathEscape(id)
}

func newAPI(relayOnly bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for i, plid := range h264Profiles {
		c := codec.H264.Parameters(codec.Params{ProfileLevelID: plid})
		c.PayloadType += webrtc.PayloadType(i)
		c.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	// H.265 too (a camera that sends it, republished as it is): what no browser here takes, a
	// terminal viewer can still record and count.
	h265 := codec.H265.Parameters(codec.Params{})
	h265.PayloadType = codec.H264.Parameters(codec.Params{}).PayloadType + webrtc.PayloadType(len(h264Profiles)) // after the H.264 ones
	h265.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := m.RegisterCodec(h265, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	// Retransmissions on a stream of their own (RFC 4588), numbered after the video payload
	// types (102–105 → 106–109): Pion's receiver hands them to the track as the packets they
	// repair.
	firstVideo := codec.H264.Parameters(codec.Params{}).PayloadType
	for pt := firstVideo; pt <= h265.PayloadType; pt++ {
		rtx := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", pt)},
			PayloadType:        h265.PayloadType + 1 + (pt - firstVideo),
		}
		if err := m.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	for _, c := range []*codec.Codec{codec.Opus, codec.PCMU, codec.PCMA} {
		if err := m.RegisterCodec(c.Parameters(codec.Params{Channels: 2}), webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	// Accepting these lets the device's offer (or answer) keep them: abs-capture-time gives
	// capture → receive, playout-delay is what a browser would honor (this viewer ignores it).
	for _, x := range []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{{absCaptureTimeURI, webrtc.RTPCodecTypeVideo}, {playoutDelayURI, webrtc.RTPCodecTypeVideo}, {absCaptureTimeURI, webrtc.RTPCodecTypeAudio}} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: x.uri}, x.kind); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	// Transport-wide feedback, as a browser sends it: the device paces this viewer to its own
	// bandwidth estimate and counts it in its adaptation, instead of sending blind.
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, err
	}
	// NACKs for lost video packets, answered from the device's history; the track's reader
	// puts the retransmissions back in order (reorder).
	// At most a few NACKs per packet (Pion's default repeats one every 100 ms until it comes):
	// on a congested path, a storm of them is more traffic the path cannot take.
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorMaxNacksPerPacket(3), nack.GeneratorInterval(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	// ICE timings stay Pion's defaults: on the WebSocket path the device offers, controls ICE
	// and decides nomination.
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // devices send IP candidates
	// TCP too: where the network drops UDP, the viewer dials a device's passive ICE-TCP
	// candidate, a direct path. Not when only relays are wanted: Pion makes those active TCP
	// candidates whatever the transport policy says.
	if !relayOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	}
	// Where the viewer controls ICE (WHEP: it offers), a relayed pair waits as long as on the
	// device (peer.RelayAcceptanceWait), so hole punching wins where it can.
	se.SetRelayAcceptanceMinWait(time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// errDone ends a watch that got what it asked for (frames, duration).
var errDone = errors.New("viewer: done")

// Watch views a device until the duration, the frame count or ctx ends it. It returns the
// measurements and nil when at least one frame arrived; otherwise an error saying why not
// (see ErrNoMedia, ErrTimeout, ErrConnectionFailed, *SignalError).
func Watch(ctx context.Context, o Options) (Result, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Reconnect {
		return watchReconnecting(ctx, o)
	}
	return watchSession(ctx, o, nil)
}

// watchSession is one session; out, when not nil, is the MP4 output of a reconnecting watch
// (left open at the end).
func watchSession(ctx context.Context, o Options, out *mp4Out) (Result, error) {
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
		if o.TLS != nil {
			o.Client.Transport = &http.Transport{TLSClientConfig: o.TLS, Proxy: http.ProxyFromEnvironment}
		}
	}
	sig, err := newSignaler(&o)
	if err != nil {
		return Result{}, err
	}
	defer sig.close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rc := &receiver{o: o, start: start, done: func() { cancel(errDone) }}
	if out != nil {
		rc.mp4 = out
	} else if o.Out != nil && o.Format == FormatMP4 {
		rc.mp4 = newMP4Out(o.Out)
	}
	rc.res.Signaling = sig.kind()
	if o.Progress != nil {
		tick := time.NewTicker(time.Second)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					o.Progress(rc.result())
				}
			}
		}()
		// Deferred after cancel's own defer, so it runs first: end the ticker, then wait.
		defer func() { cancel(nil); <-stopped }()
	}
	var pcRef atomic.Pointer[webrtc.PeerConnection]
	if o.FirstFrameTimeout > 0 {
		t := time.AfterFunc(o.FirstFrameTimeout, func() {
			if !rc.gotFrame() {
				cancel(fmt.Errorf("%w (%s): %s", ErrTimeout, o.FirstFrameTimeout, stage(pcRef.Load())))
			}
		})
		defer t.Stop()
	}

	servers, err := sig.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return rc.result(), noMedia(err, sig)
	}
	if o.ICEServers != nil {
		servers = o.ICEServers
	}
	cfg := webrtc.Configuration{ICEServers: servers, BundlePolicy: webrtc.BundlePolicyMaxBundle}
	if o.RelayOnly {
		if !hasTURN(servers) {
			return rc.result(), errors.New("viewer: relay only, but no TURN server: the device or hub offered none and none was given")
		}
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	api, err := newAPI(o.RelayOnly)
	if err != nil {
		return Result{}, err
	}
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return Result{}, err
	}
	pcRef.Store(pc)

	var (
		trackMu     sync.Mutex
		reading     bool
		stopReading bool
		trackDone   = make(chan struct{})
	)
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		// Reading the device's RTCP drives the interceptors: its sender reports are what our
		// receiver reports echo, so that it can measure the round trip.
		go func() {
			for {
				if _, _, err := r.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		absID := 0
		for _, e := range r.GetParameters().HeaderExtensions {
			if e.URI == absCaptureTimeURI {
				absID = e.ID
			}
		}
		if t.Kind() == webrtc.RTPCodecTypeAudio {
			rc.readAudio(ctx, t, uint8(absID))
			return
		}
		trackMu.Lock()
		if reading || stopReading {
			trackMu.Unlock()
			o.Logger.Debug("ignoring an extra track", "kind", t.Kind())
			return
		}
		reading = true
		trackMu.Unlock()
		defer close(trackDone)
		rc.read(ctx, t, uint8(absID), func() Pair { return selectedPair(pc, r) })
	})
	// The device's reports come on the events channel: its own when it offers, this one
	// when the viewer does (WHEP).
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == wire.EventsChannel {
			dc.OnMessage(rc.event)
		}
	})
	if sig.kind() == "whep" {
		dc, err := pc.CreateDataChannel(wire.EventsChannel, nil)
		if err != nil {
			return Result{}, err
		}
		dc.OnMessage(rc.event)
	}
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		o.Logger.Debug("ice state", "state", s, "after", time.Since(start).Round(time.Millisecond))
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		o.Logger.Debug("connection state", "state", s, "after", time.Since(start).Round(time.Millisecond))
		switch s {
		case webrtc.PeerConnectionStateFailed:
			cancel(fmt.Errorf("%w (ICE %s)", ErrConnectionFailed, pc.ICEConnectionState()))
		case webrtc.PeerConnectionStateClosed: // by the device (DTLS close_notify), or by us at the end
			cancel(sessionEnded("it closed the WebRTC connection"))
		}
	})

	if err := sig.session(ctx, pc, rc.requested); err != nil {
		cancel(err)
	}
	cancel(nil) // the signaling ended with ctx: the cause is already set
	cause := context.Cause(ctx)
	// Closing waits for candidate gathering to end, and where UDP is blocked a STUN or TURN
	// request over UDP is still timing out (seconds). The measurement is done: wait a moment
	// for a clean close (the device learns at once that the viewer left), not for that.
	closed := make(chan struct{})
	go func() { _ = pc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		o.Logger.Debug("closing the connection is slow; not waiting for it")
	}
	trackMu.Lock()
	stopReading = true
	wait := reading
	trackMu.Unlock()
	if wait {
		select {
		case <-trackDone:
		case <-time.After(2 * time.Second):
		}
	}
	rc.mu.Lock()
	if rc.timer != nil {
		rc.timer.Stop()
	}
	rc.mu.Unlock()
	if rc.mp4 != nil && out == nil {
		if err := rc.mp4.close(); err != nil {
			o.Logger.Error("writing output", "err", err)
		}
	}
	res := rc.result()
	if res.Frames == 0 && res.Audio == nil {
		return res, noMedia(cause, sig)
	}
	if !errors.Is(cause, errDone) && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		if !o.Reconnect {
			o.Logger.Warn("the session ended early", "reason", cause)
		}
		res.ended = cause
	}
	return res, nil
}

// Reconnecting: the wait before a new session, doubled after a session without frames.
const (
	reconnectFirst = time.Second
	reconnectMax   = 10 * time.Second
)

// watchReconnecting runs sessions one after the other (Options.Reconnect).
func watchReconnecting(ctx context.Context, o Options) (Result, error) {
	var out *mp4Out
	if o.Out != nil && o.Format == FormatMP4 {
		out = newMP4Out(o.Out)
		defer func() {
			if err := out.close(); err != nil {
				o.Logger.Error("writing output", "err", err)
			}
		}()
	}
	var total Result
	var firstFrame time.Time
	var last error // the last session's error
	end := func() (Result, error) {
		if total.Frames == 0 && total.Audio == nil {
			if last == nil {
				last = ErrNoMedia
			}
			return total, last
		}
		return total, nil
	}
	wait := reconnectFirst
	for {
		so := o
		if o.Frames > 0 {
			so.Frames = o.Frames - total.Frames
		}
		if o.Duration > 0 && !firstFrame.IsZero() {
			so.Duration = o.Duration - time.Since(firstFrame)
			if so.Duration <= 0 {
				break
			}
		}
		if total.Frames > 0 {
			so.FirstFrameTimeout = 0 // --timeout is for the first frame of the watch
		}
		began := time.Now()
		res, err := watchSession(ctx, so, out)
		total.Sessions++
		if res.Frames > 0 && firstFrame.IsZero() {
			firstFrame = began.Add(time.Duration(res.TTFFMS * float64(time.Millisecond)))
		}
		total.merge(res)
		last = err
		switch {
		case ctx.Err() != nil:
			return end()
		case err != nil && (total.Frames == 0 && errors.Is(err, ErrTimeout) || errors.Is(err, ErrRefused)):
			return total, err // no frame before --timeout, or a refusal a new try would meet again
		case err == nil && res.ended == nil:
			return total, nil // the watch's own end: frames, duration
		}
		cause := res.ended
		if err != nil {
			cause = err
		}
		if res.Frames > 0 {
			wait = reconnectFirst
		}
		o.Logger.Warn("the session ended; a new one follows", "reason", cause, "in", wait, "sessions", total.Sessions)
		select {
		case <-ctx.Done():
			return end()
		case <-time.After(wait):
		}
		if res.Frames == 0 {
			wait = min(2*wait, reconnectMax)
		}
	}
	return end()
}

// merge adds a later session's figures to r.
func (r *Result) merge(s Result) {
	if r.Sessions <= 1 {
		first := r.Sessions
		*r = s
		r.Sessions, r.ended = first, nil
		return
	}
	r.Frames += s.Frames
	r.Keyframes += s.Keyframes
	r.Bytes += s.Bytes
	r.Packets += s.Packets
	r.Lost += s.Lost
	r.DurationS += s.DurationS
	if r.DurationS > 0 {
		r.BitrateBPS = int64(float64(r.Bytes*8) / r.DurationS)
		r.FPS = float64(r.Frames) / r.DurationS
	}
	if r.Packets+r.Lost > 0 {
		r.LossPct = 100 * float64(r.Lost) / float64(r.Packets+r.Lost)
	}
	if s.Width > 0 {
		r.Width, r.Height = s.Width, s.Height
	}
	if s.Signaling != "" {
		r.Signaling, r.Pair = s.Signaling, s.Pair
	}
	if s.Audio != nil {
		r.Audio = s.Audio
	}
	if s.Network != nil {
		r.Network = s.Network
	}
	r.Decisions = append(r.Decisions, s.Decisions...)
	if len(r.Decisions) > maxDecisions {
		r.Decisions = r.Decisions[len(r.Decisions)-maxDecisions:]
	}
}

// noMedia is the error of a watch that got no frame, because of cause.
func noMedia(cause error, sig signaler) error {
	switch {
	case cause == nil, errors.Is(cause, errDone):
		return ErrNoMedia
	case errors.Is(cause, ErrSessionEnded), errors.Is(cause, context.Canceled), errors.Is(cause, context.DeadlineExceeded):
		cause = fmt.Errorf("%w: %w", ErrNoMedia, cause)
	}
	// A complaint the device made on the way (e.g. bad_sdp for the answer) is often the reason.
	if n := sig.note(); n != nil && !errors.As(cause, new(*SignalError)) {
		return fmt.Errorf("%w (the device said: %v)", cause, n)
	}
	return cause
}

// stage describes how far a watch that got no frame came.
func stage(pc *webrtc.PeerConnection) string {
	if pc == nil {
		return "still signaling (no answer from the device or hub)"
	}
	switch s := pc.ConnectionState(); s {
	case webrtc.PeerConnectionStateConnected:
		return "connected, but no decodable frame (keyframe) arrived"
	case webrtc.PeerConnectionStateNew:
		if pc.RemoteDescription() == nil {
			return "no offer or answer from the device yet"
		}
		return "the WebRTC connection did not start"
	default:
		return fmt.Sprintf("the WebRTC connection did not come up (connection %s, ICE %s)", s, pc.ICEConnectionState())
	}
}

func hasTURN(servers []webrtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				return true
			}
		}
	}
	return false
}

// selectedPair is the pair ICE uses now; for a relay, the transport to the TURN server.
func selectedPair(pc *webrtc.PeerConnection, r *webrtc.RTPReceiver) Pair {
	dt := r.Transport()
	if dt == nil {
		return Pair{}
	}
	it := dt.ICETransport()
	p, err := it.GetSelectedCandidatePair()
	if err != nil || p == nil {
		return Pair{}
	}
	pair := Pair{LocalType: p.Local.Typ.String(), RemoteType: p.Remote.Typ.String(), Protocol: p.Local.Protocol.String()}
	if p.Local.Typ == webrtc.ICECandidateTypeRelay {
		if ps, ok := it.GetSelectedCandidatePairStats(); ok {
			if c, ok := pc.GetStats()[ps.LocalCandidateID].(webrtc.ICECandidateStats); ok && c.RelayProtocol != "" {
				pair.Protocol = c.RelayProtocol
			}
		}
	}
	return pair
}

// maxDelaySamples bounds the capture → receive samples kept for the median (reservoir
// sampling beyond it): about 18 minutes at 30 fps.
const maxDelaySamples = 1 << 15

// receiver counts what arrives on the track.
type receiver struct {
	o     Options
	start time.Time
	done  func()

	mu        sync.Mutex
	res       Result
	audio     audioCounter
	mp4       *mp4Out     // the output, with Format mp4; nil otherwise
	format    videoFormat // the video track's codec (set before its first packet is read)
	requestAt time.Time
	first     time.Time
	last      time.Time
	seq       seqCounter
	delays    []float64 // capture → receive per frame, ms
	delaySeen int
	timer     *time.Timer // Duration's end, from the first frame
}

// event takes one message of the events channel; anything but a network report is ignored
// (a newer device may say more).
func (rc *receiver) event(m webrtc.DataChannelMessage) {
	var n wire.Network
	if !m.IsString || json.Unmarshal(m.Data, &n) != nil || n.Type != wire.TypeNetwork {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.res.Decisions = append(rc.res.Decisions, n.Decisions...)
	if k := len(rc.res.Decisions) - maxDecisions; k > 0 {
		rc.res.Decisions = rc.res.Decisions[k:]
	}
	n.Decisions = nil // in Decisions
	rc.res.Network = &n
}

func (rc *receiver) requested() {
	rc.mu.Lock()
	rc.requestAt = time.Now()
	rc.mu.Unlock()
}

func (rc *receiver) gotFrame() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.res.Frames > 0 || rc.audio.res.Packets > 0
}

// depacketizer rebuilds access units from a video track's RTP payloads.
type depacketizer interface {
	Push(payload []byte, marker bool) ([]byte, error)
	Lost()
}

// videoFormat is what the receiver needs to know of the session's video codec.
type videoFormat struct {
	h265 bool
}

// keyframe reports whether au is one a decoder can start at.
func (f videoFormat) keyframe(au []byte) bool {
	if f.h265 {
		return codec.H265Keyframe(au)
	}
	return media.IsKeyframe(au)
}

// size is the picture size the access unit's SPS gives (0, 0 without one).
func (f videoFormat) size(au []byte) (int, int) {
	if !f.h265 {
		return frameSize(au)
	}
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if codec.H265Type(nal) == media.H265SPSType {
			if s, err := media.ParseH265SPS(nal); err == nil {
				return s.Width, s.Height
			}
		}
	}
	return 0, 0
}

func (rc *receiver) read(ctx context.Context, t *webrtc.TrackRemote, absID uint8, pair func() Pair) {
	var d depacketizer = &codec.H264Depacketizer{}
	if strings.EqualFold(t.Codec().MimeType, webrtc.MimeTypeH265) {
		d = &codec.H265Depacketizer{}
		rc.format = videoFormat{h265: true}
		if rc.mp4 != nil {
			rc.mp4.videoTrack(mp4.H265)
		}
	}
	var pkt rtp.Packet
	// Packets are counted as they arrive and depacketized in sequence order: a packet lost
	// and retransmitted on NACK arrives late, behind later ones.
	var ro reorder
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		now := time.Now()
		seq := binary.BigEndian.Uint16(buf[2:4])
		rc.mu.Lock()
		rc.res.Packets++
		rc.seq.count(seq)
		rc.mu.Unlock()
		ro.push(seq, buf[:n], now)
		for {
			p, lost, ok := ro.pop(now)
			if lost > 0 {
				d.Lost()
			}
			if !ok {
				break
			}
			if rc.depacketize(d, &pkt, p, absID, now, pair) {
				return
			}
		}
	}
}

// depacketize takes the track's next packet in order into d, and counts and hands on the
// frame it completes; true ends the watch.
func (rc *receiver) depacketize(d depacketizer, pkt *rtp.Packet, p []byte, absID uint8, now time.Time, pair func() Pair) bool {
	if err := pkt.Unmarshal(p); err != nil {
		return false
	}
	var capture time.Time // abs-capture-time of the packet; zero if it has none
	if absID != 0 {
		if ext := pkt.GetExtension(absID); len(ext) >= 8 {
			capture = ntpToTime(binary.BigEndian.Uint64(ext))
		}
	}
	au, _ := d.Push(pkt.Payload, pkt.Marker)
	if au == nil {
		return false
	}
	key := rc.format.keyframe(au)
	rc.mu.Lock()
	if rc.res.Frames == 0 && !key {
		rc.mu.Unlock()
		return false // undecodable until the first keyframe
	}
	if rc.res.Frames == 0 {
		rc.first = now
		if rc.o.Duration > 0 {
			// Ends the watch on time even when frames stop coming (a path that stalled).
			rc.timer = time.AfterFunc(rc.o.Duration+time.Second, rc.done)
		}
		rc.res.TTFFMS = ms(now.Sub(rc.start))
		if !rc.requestAt.IsZero() {
			rc.res.FirstKeyframeMS = ms(now.Sub(rc.requestAt))
		}
		rc.res.Pair = pair()
	}
	if key {
		rc.res.Keyframes++
		if rc.res.Width == 0 {
			rc.res.Width, rc.res.Height = rc.format.size(au)
		}
	}
	if !capture.IsZero() {
		rc.res.AbsCaptureTime = true
		rc.addDelay(ms(now.Sub(capture))) // wall clock against wall clock
	}
	rc.res.Frames++
	rc.res.Bytes += int64(len(au))
	rc.last = now
	frames := rc.res.Frames
	rc.mu.Unlock()
	var err error
	switch {
	case rc.mp4 != nil:
		at := capture
		if at.IsZero() {
			at = now
		}
		err = rc.mp4.video(au, key, at, now)
	case rc.o.Out != nil:
		_, err = rc.o.Out.Write(au)
	}
	if err != nil {
		if !errors.Is(err, errOutputClosed) {
			rc.o.Logger.Error("writing output", "err", err)
		}
		rc.done()
		return true
	}
	if rc.o.OnFrame != nil {
		rc.o.OnFrame(au, key, pkt.Timestamp)
	}
	if (rc.o.Frames > 0 && frames >= rc.o.Frames) || (rc.o.Duration > 0 && now.Sub(rc.first) >= rc.o.Duration) {
		rc.done()
		return true
	}
	return false
}

// addDelay keeps a uniform sample of at most maxDelaySamples delays (algorithm R).
func (rc *receiver) addDelay(v float64) {
	rc.delaySeen++
	if len(rc.delays) < maxDelaySamples {
		rc.delays = append(rc.delays, v)
		return
	}
	if i := rand.IntN(rc.delaySeen); i < maxDelaySamples {
		rc.delays[i] = v
	}
}

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const ntpEpochOffset = 2208988800

// ntpToTime converts a 64-bit NTP timestamp (UQ32.32 seconds since 1900).
func ntpToTime(v uint64) time.Time {
	sec := int64(v>>32) - ntpEpochOffset
	nsec := int64((v & 0xffffffff) * 1e9 >> 32)
	return time.Unix(sec, nsec)
}

// seqCounter tracks a track's extended sequence number (RFC 3550 A.1).
type seqCounter struct {
	first, high uint32 // extended highest sequence number
	have        bool
}

// count takes one packet's sequence number and reports a gap before it.
func (c *seqCounter) count(seq uint16) (gap bool) {
	if !c.have {
		c.have, c.first, c.high = true, uint32(seq), uint32(seq)
		return false
	}
	delta := int16(seq - uint16(c.high))
	if delta <= 0 {
		return false // reordered or retransmitted
	}
	c.high += uint32(delta)
	return delta > 1
}

// expected is how many packets the sequence numbers span.
func (c *seqCounter) expected() uint64 {
	if !c.have {
		return 0
	}
	return uint64(c.high-c.first) + 1
}

// lost is how many of them never arrived, given how many did.
func (c *seqCounter) lost(received uint64) uint64 {
	if e := c.expected(); e > received {
		return e - received
	}
	return 0
}

func (rc *receiver) result() Result {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	r := rc.res
	r.Decisions = slices.Clone(rc.res.Decisions)
	r.Audio = rc.audio.result()
	if expected := rc.seq.expected(); expected > 0 {
		r.Lost = rc.seq.lost(r.Packets)
		r.LossPct = 100 * float64(r.Lost) / float64(expected)
	}
	if r.Frames > 1 {
		span := rc.last.Sub(rc.first)
		r.DurationS = span.Seconds()
		if span > 0 {
			r.FPS = float64(r.Frames-1) / span.Seconds()
			r.BitrateBPS = int64(float64(r.Bytes*8) / span.Seconds())
		}
	}
	if n := len(rc.delays); n > 0 {
		s := slices.Clone(rc.delays)
		slices.Sort(s)
		if n%2 == 1 {
			r.CaptureToReceiveMS = s[n/2]
		} else {
			r.CaptureToReceiveMS = (s[n/2-1] + s[n/2]) / 2
		}
		r.CaptureToReceiveMS = float64(int64(r.CaptureToReceiveMS*1000)) / 1000
	}
	return r
}

func frameSize(au []byte) (int, int) {
	sps, _ := media.FirstSPS(au)
	return sps.Width, sps.Height
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
