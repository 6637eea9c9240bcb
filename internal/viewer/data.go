package viewer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// DataSession is a session for the device's data channels only (p2pcast fetch): the device
// offers its tracks as it does to every viewer, and the answer makes each of them inactive,
// so no media flows; the offer's data section lets the viewer open the channels its token's
// grants allow (files, control) without another negotiation.
type DataSession struct {
	pc     *webrtc.PeerConnection
	sig    signaler
	ctx    context.Context
	cancel context.CancelCauseFunc
	ended  chan struct{} // the signaling goroutine returned
	once   sync.Once
}

// ErrDataNeedsWS: OpenData negotiates over the device's WebSocket or a hub, where the device
// offers; a WHEP offer without media is refused by the device.
var ErrDataNeedsWS = errors.New("viewer: a data session needs the device's WebSocket signaling or a hub, not WHEP")

// OpenData negotiates a data session over o.WSURL or o.HubURL (o's media options are not
// used) and returns once the connection is up, or the reason it did not come up within
// timeout (0: as long as ctx allows).
func OpenData(ctx context.Context, o Options, timeout time.Duration) (*DataSession, error) {
	if o.WHEPURL != "" {
		return nil, ErrDataNeedsWS
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sig, err := newSignaler(&o)
	if err != nil {
		return nil, err
	}
	ws := sig.(*wsSignaler)
	ws.noMedia = true
	sctx, cancel := context.WithCancelCause(context.Background())
	s := &DataSession{sig: sig, ctx: sctx, cancel: cancel, ended: make(chan struct{})}
	fail := func(err error) (*DataSession, error) {
		cancel(err)
		if s.pc != nil {
			_ = s.pc.Close()
		}
		sig.close()
		return nil, err
	}
	wctx := ctx
	if timeout > 0 {
		var wcancel context.CancelFunc
		wctx, wcancel = context.WithTimeout(ctx, timeout)
		defer wcancel()
	}
	servers, err := sig.connect(wctx)
	if err != nil {
		return fail(err)
	}
	if o.ICEServers != nil {
		servers = o.ICEServers
	}
	cfg := webrtc.Configuration{ICEServers: servers, BundlePolicy: webrtc.BundlePolicyMaxBundle}
	if o.RelayOnly {
		if !hasTURN(servers) {
			return fail(errors.New("viewer: relay only, but no TURN server: the device or hub offered none and none was given"))
		}
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	api, err := newAPI(o.RelayOnly)
	if err != nil {
		return fail(err)
	}
	if s.pc, err = api.NewPeerConnection(cfg); err != nil {
		return fail(err)
	}
	connected := make(chan struct{})
	var connectedOnce sync.Once
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		o.Logger.Debug("connection state", "state", st)
		switch st {
		case webrtc.PeerConnectionStateConnected:
			connectedOnce.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed:
			cancel(fmt.Errorf("%w (ICE %s)", ErrConnectionFailed, s.pc.ICEConnectionState()))
		case webrtc.PeerConnectionStateClosed:
			cancel(sessionEnded("it closed the WebRTC connection"))
		}
	})
	go func() {
		defer close(s.ended)
		err := sig.session(sctx, s.pc, func() {})
		if err == nil {
			err = sessionEnded("the signaling ended")
		}
		cancel(err)
	}()
	select {
	case <-connected:
		return s, nil
	case <-sctx.Done():
		err := context.Cause(sctx)
		if n := sig.note(); n != nil {
			err = fmt.Errorf("%w (the device said: %v)", err, n)
		}
		s.Close()
		return nil, err
	case <-wctx.Done():
		s.Close()
		return nil, fmt.Errorf("%w: %s", ErrTimeout, stage(s.pc))
	}
}

// PeerConnection is the session's connection: open data channels on it.
func (s *DataSession) PeerConnection() *webrtc.PeerConnection { return s.pc }

// Done is closed when the session has ended (the device ended it, the connection failed,
// or Close).
func (s *DataSession) Done() <-chan struct{} { return s.ctx.Done() }

// Err says why the session ended; nil while it runs.
func (s *DataSession) Err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// Close ends the session: the connection closes and the signaling says bye.
func (s *DataSession) Close() {
	s.once.Do(func() {
		s.cancel(context.Canceled)
		// The signaling first: the device then ends the session on our bye, and no bye of
		// its own (for the closing connection) is read as news.
		s.sig.close()
		closed := make(chan struct{})
		go func() { _ = s.pc.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(time.Second): // see Watch: a slow gather must not hold up the end
		}
		select {
		case <-s.ended:
		case <-time.After(2 * time.Second):
		}
	})
}
