package input

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/peer"
)

var _ peer.Channel = (*Control)(nil)

// pcPair connects two Pion peer connections in this process over loopback. The device side
// hands every "control" channel to ch as a peer.Session does: messages queued from the moment
// the channel exists, Serve started once it is open, its context ended when it closes.
func pcPair(t *testing.T, ch peer.Channel, access auth.Access) (viewer, device *webrtc.PeerConnection) {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	device, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	viewer, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	served := &sync.WaitGroup{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = viewer.Close()
		_ = device.Close()
		served.Wait() // every Serve returned: no goroutine left behind
	})
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	device.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != Label {
			t.Errorf("unexpected channel %q", dc.Label())
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		msgs := make(chan webrtc.DataChannelMessage, 64)
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case msgs <- m:
			case <-ctx.Done():
			}
		})
		dc.OnClose(cancel)
		served.Add(1)
		dc.OnOpen(func() {
			go func() {
				defer served.Done()
				defer cancel()
				ch.Serve(ctx, dc, msgs, access, log)
			}()
		})
	})
	return viewer, device
}

// connect runs the offer/answer between the pair, after the viewer made its channels.
func connect(t *testing.T, viewer, device *webrtc.PeerConnection) {
	t.Helper()
	offer, err := viewer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(viewer)
	if err := viewer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := device.SetRemoteDescription(*viewer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := device.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done = webrtc.GatheringCompletePromise(device)
	if err := device.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := viewer.SetRemoteDescription(*device.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// page is the viewer page's end of one control channel.
type page struct {
	dc     *webrtc.DataChannel
	got    chan out
	closed chan struct{}
}

func openPage(t *testing.T, pc *webrtc.PeerConnection) *page {
	t.Helper()
	dc, err := pc.CreateDataChannel(Label, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &page{dc: dc, got: make(chan out, 256), closed: make(chan struct{})}
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var o out
		if err := json.Unmarshal(m.Data, &o); err != nil {
			t.Errorf("device sent %q: %v", m.Data, err)
		}
		p.got <- o
	})
	dc.OnClose(func() { close(p.closed) })
	return p
}

// next waits for the next message of type typ, skipping others.
func (p *page) next(t *testing.T, typ string) out {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case o := <-p.got:
			if o.Type == typ {
				return o
			}
		case <-deadline:
			t.Fatalf("no %s message", typ)
		}
	}
}

func (p *page) send(t *testing.T, msg string) {
	t.Helper()
	if err := p.dc.SendText(msg); err != nil {
		t.Fatal(err)
	}
}

// waitCalls waits until the injector has recorded want (after what it recorded before).
func waitCalls(t *testing.T, inj *fakeInjector, want []string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var got []string
	for {
		got = append(got, inj.take()...)
		if len(got) >= len(want) {
			break
		}
		select {
		case <-inj.called:
		case <-deadline:
			t.Fatalf("desktop got %q, want %q", got, want)
		}
	}
	eq(t, "desktop", got, want)
}

// Through real Pion data channels: the device's Serve gives the page its state, the
// controller's input reaches the desktop, a second page waits for control and gets it when
// the first closes, and a page sending garbage is cut off.
func TestServeOverPion(t *testing.T) {
	inj := newFakeInjector()
	ctl := NewControl(inj, Config{}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	defer ctl.Close()

	viewer, device := pcPair(t, ctl, auth.Access{TokenID: "tok", Grants: []auth.Grant{auth.GrantControl}})
	first := openPage(t, viewer)
	second := openPage(t, viewer)
	connect(t, viewer, device)

	// Which page joined first is up to the network: find the controller.
	a, b := first.next(t, TypeState), second.next(t, TypeState)
	ctlPage, other, otherID := first, second, b.You
	if b.You == b.Controller {
		ctlPage, other, otherID = second, first, a.You
	}
	if name := a.Viewers[0].Name; !strings.HasPrefix(name, "tok (") {
		t.Fatalf("viewer name %q", name)
	}
	waitCalls(t, inj, []string{"release"})

	ctlPage.send(t, `{"type":"move","x":0.5,"y":0.25}`)
	ctlPage.send(t, `{"type":"key","code":"KeyA","down":true}`)
	ctlPage.send(t, `{"type":"key","code":"KeyA","down":false}`)
	ctlPage.send(t, `{"type":"button","button":2,"down":true}`)
	waitCalls(t, inj, []string{"move 0.5 0.25", "key 30 true", "key 30 false", "button 0x111 true"})

	other.send(t, `{"type":"key","code":"KeyB","down":true}`)
	if r := other.next(t, TypeRefused); r.Reason != "not in control" {
		t.Fatalf("refusal %+v", r)
	}
	other.send(t, `{"type":"request"}`)
	if r := ctlPage.next(t, TypeRequest); r.From != otherID {
		t.Fatalf("request %+v, want from %s", r, otherID)
	}

	inj.clip <- "copied on the desktop"
	if c := ctlPage.next(t, TypeClipboard); c.Text != "copied on the desktop" {
		t.Fatalf("clipboard %+v", c)
	}

	_ = ctlPage.dc.Close() // the controller's page goes: its button is released, the waiting page takes over
	for {
		if st := other.next(t, TypeState); st.Controller == otherID {
			if len(st.Viewers) != 1 || len(st.Requests) != 0 {
				t.Fatalf("state %+v", st)
			}
			break
		}
	}
	waitCalls(t, inj, []string{"release"})
	if c := other.next(t, TypeClipboard); c.Text != "copied on the desktop" {
		t.Fatalf("the new controller's clipboard %+v", c)
	}
	if st := ctl.Status(); st.Controller != otherID || st.Handovers != 2 {
		t.Fatalf("status %+v", st)
	}

	for range maxErrors + 1 {
		other.send(t, `{"type":"jump"}`)
	}
	select {
	case <-other.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the device kept the channel of a page sending garbage")
	}
	waitCalls(t, inj, []string{"release"}) // its leaving released the desktop
	if st := ctl.Status(); st.Controller != "" || len(st.Viewers) != 0 {
		t.Fatalf("status %+v", st)
	}
}
