package signal

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Dialog is one viewer's side of the signaling protocol (docs/signaling.md) over any message
// transport: it applies the viewer's messages to a session and sends the device's. The
// device's own /ws and the hub relay (one Dialog per relayed session) both run on it, so a
// session behaves the same however the viewer reached the device.
type Dialog struct {
	backend Backend
	viewer  Viewer
	send    func(any)       // queues one device → viewer message; must not block
	stop    <-chan struct{} // closed when the transport ends

	sess  Session       // owned by the caller's single reading goroutine
	quiet chan struct{} // closed before the dialog itself ends sess: no bye for that
	bad   int
	// release ends the viewer's hold on the device's SFU publication (a redirected watch),
	// once; nil without one.
	release func()
}

// Viewer is who is on the other end of a dialog: what it may do, and the source its sessions
// count against.
type Viewer struct {
	Access auth.Access
	Source string
	// Overflow: the transport can bridge this viewer to an SFU (Request.Overflow).
	Overflow bool
}

// NewDialog starts a dialog for v. send must not block; stop is closed when the transport ends.
func NewDialog(b Backend, v Viewer, send func(any), stop <-chan struct{}) *Dialog {
	return &Dialog{backend: b, viewer: v, send: send, stop: stop}
}

// Refuse tells a viewer its session will not be made, through send: an error with code and
// message, then bye. A transport uses it when it refuses before any Dialog exists (a hub
// session whose claims do not hold).
func Refuse(send func(any), code, message string) {
	send(errorMsg{Type: wire.TypeError, Code: code, Message: message})
	send(byeMsg{Type: wire.TypeBye, Reason: "refused"})
}

// Hello sends the first message: version, ICE servers and the stream.
func (d *Dialog) Hello() {
	h := helloMsg{Type: wire.TypeHello, Version: 1, ICEServers: d.backend.ICEServers(), Stream: d.backend.StreamInfo()}
	if l, ok := d.backend.(SourceLister); ok {
		h.Sources = l.Sources()
	}
	d.send(h)
}

// Handle applies one viewer message. It returns true when the transport must end: the viewer
// sent more than maxBadMessages bad messages (a fatal error has been sent).
func (d *Dialog) Handle(data []byte) (fatal bool) {
	in, err := ParseInbound(data)
	if err != nil {
		return d.Fail(wire.CodeBadMessage, err.Error())
	}
	d.handle(in)
	return d.tooMany()
}

// Fail reports a bad message to the viewer; true as for Handle.
func (d *Dialog) Fail(code, msg string) (fatal bool) {
	d.bad++
	d.send(errorMsg{Type: wire.TypeError, Code: code, Message: msg})
	return d.tooMany()
}

func (d *Dialog) tooMany() bool {
	if d.bad <= maxBadMessages {
		return false
	}
	d.send(errorMsg{Type: wire.TypeError, Code: wire.CodeFatal, Message: "too many bad messages"})
	return true
}

// Close ends the current session on the viewer's behalf, so no bye is sent for it.
func (d *Dialog) Close() {
	if d.release != nil {
		d.release()
		d.release = nil
	}
	if d.sess != nil {
		close(d.quiet)
		d.sess.Close()
		d.sess = nil
	}
}

// newSession replaces the current session (a second watch/offer restarts the viewer).
func (d *Dialog) newSession(sourceID string, watch, dataOnly bool) bool {
	d.Close()
	s, err := d.backend.NewSession(Request{Access: d.viewer.Access, Source: d.viewer.Source, SourceID: sourceID,
		OnCandidate: func(cand *webrtc.ICECandidateInit) {
			d.send(candidateMsg{Type: wire.TypeCandidate, Candidate: cand})
		}, Overflow: watch && d.viewer.Overflow, DataOnly: dataOnly})
	var r *Redirect
	if errors.As(err, &r) {
		d.redirect(r)
		return false
	}
	if err != nil {
		d.Fail(errorCode(err), err.Error())
		return false
	}
	quiet := make(chan struct{})
	d.sess, d.quiet = s, quiet
	// A session that ends by itself (ICE failed) is reported, so the viewer restarts it.
	go func() {
		select {
		case <-s.Done():
			select {
			case <-quiet:
			default:
				reason := s.EndReason()
				if reason == "" {
					reason = "session ended"
				}
				d.send(byeMsg{Type: wire.TypeBye, Reason: reason})
			}
		case <-d.stop:
		}
	}()
	return true
}

// redirect serves the viewer through the SFU: once the device publishes there, the transport
// (the hub) is told where, and bridges the session to it. The hold ends with the dialog's
// session (Close) or with the transport (stop).
func (d *Dialog) redirect(r *Redirect) {
	var once sync.Once
	var gone atomic.Bool // the viewer moved on (bye, another watch) or the transport ended
	release := func() {
		gone.Store(true)
		once.Do(r.Release)
	}
	d.release = release
	go func() {
		feed, err := r.Wait()
		if gone.Load() {
			return // told now, the hub would bridge a session the viewer has replaced
		}
		if err != nil {
			release()
			d.send(errorMsg{Type: wire.TypeError, Code: wire.CodeBusy, Message: "past the peer-to-peer limit, and the SFU failed: " + err.Error()})
			d.send(byeMsg{Type: wire.TypeBye, Reason: "SFU unavailable"})
			return
		}
		d.send(sfuMsg{Type: wire.TypeSFU, SFUFeed: feed})
	}()
	go func() {
		<-d.stop
		release()
	}()
}

func (d *Dialog) handle(in Inbound) {
	switch in.Type {
	case wire.TypeWatch:
		if !d.newSession(in.SourceID, true, false) {
			return
		}
		offer, err := d.sess.Offer()
		if err != nil {
			d.Fail(errorCode(err), err.Error())
			return
		}
		d.send(sdpMsg{Type: wire.TypeOffer, SDP: offer})
	case wire.TypeOffer:
		if !d.newSession(in.SourceID, false, !offersMedia(in.SDP)) {
			return
		}
		answer, err := d.sess.Answer(in.SDP)
		if err != nil {
			d.Fail(errorCode(err), err.Error())
			d.Close()
			return
		}
		d.send(sdpMsg{Type: wire.TypeAnswer, SDP: answer})
	case wire.TypeRestart:
		if d.sess == nil {
			d.Fail(wire.CodeNoSession, "restart before a session exists")
			return
		}
		offer, err := d.sess.Restart()
		if err != nil {
			d.Fail(errorCode(err), err.Error())
			return
		}
		d.send(sdpMsg{Type: wire.TypeOffer, SDP: offer})
	case wire.TypeAnswer, wire.TypeCandidate:
		if d.sess == nil {
			d.Fail(wire.CodeNoSession, in.Type+" before a session exists")
			return
		}
		var err error
		if in.Type == wire.TypeAnswer {
			err = d.sess.SetAnswer(in.SDP)
		} else {
			err = d.sess.AddCandidate(in.Candidate)
		}
		if err != nil {
			d.Fail(errorCode(err), err.Error())
		}
	case wire.TypeBye:
		d.Close()
	case wire.TypeAuth:
		// The transport authenticated the viewer already (or needs no token): nothing to do.
	}
}

// offersMedia tells whether an offer has an audio or video section (not rejected: port 0).
func offersMedia(sdp string) bool {
	for _, line := range strings.Split(sdp, "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[0] == "m=audio" || f[0] == "m=video") && f[1] != "0" {
			return true
		}
	}
	return false
}
