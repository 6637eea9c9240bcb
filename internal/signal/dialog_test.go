package signal

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// redirectBackend answers every request that may overflow with a Redirect, and records what
// it was asked.
type redirectBackend struct {
	mu       sync.Mutex
	reqs     []Request
	released int
	feed     SFUFeed
	err      error
}

func (b *redirectBackend) NewSession(req Request) (Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = append(b.reqs, req)
	if !req.Overflow {
		return nil, errors.New("test: no peer-to-peer session here")
	}
	return nil, &Redirect{
		Wait: func() (SFUFeed, error) { return b.feed, b.err },
		Release: func() {
			b.mu.Lock()
			b.released++
			b.mu.Unlock()
		},
	}
}

func (b *redirectBackend) ICEServers() []webrtc.ICEServer { return nil }
func (b *redirectBackend) StreamInfo() *stream.Info       { return nil }

func (b *redirectBackend) state() ([]Request, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.reqs...), b.released
}

func collect() (func(any), <-chan map[string]any) {
	ch := make(chan map[string]any, 16)
	return func(m any) {
		var v map[string]any
		b, _ := json.Marshal(m)
		_ = json.Unmarshal(b, &v)
		ch <- v
	}, ch
}

func next(t *testing.T, ch <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func TestDialogRedirectsToTheSFU(t *testing.T) {
	b := &redirectBackend{feed: SFUFeed{Room: 9, Feed: 3, Mids: []string{"0"}}}
	send, out := collect()
	stop := make(chan struct{})
	view := auth.Access{Grants: []auth.Grant{auth.GrantView}}
	d := NewDialog(b, Viewer{Access: view, Overflow: true}, send, stop)
	d.Handle([]byte(`{"type":"watch"}`))
	m := next(t, out)
	if m["type"] != wire.TypeSFU || m["room"] != float64(9) || m["feed"] != float64(3) {
		t.Fatalf("got %v, want the sfu message", m)
	}
	// An offer from the viewer never overflows (the SFU makes the offers).
	d.Handle([]byte(`{"type":"offer","sdp":"v=0"}`))
	if m := next(t, out); m["type"] != wire.TypeError {
		t.Fatalf("got %v", m)
	}
	reqs, released := b.state()
	if len(reqs) != 2 || !reqs[0].Overflow || reqs[1].Overflow {
		t.Fatalf("requests %+v", reqs)
	}
	if released != 1 {
		t.Fatalf("released %d times after a new session replaced the redirect, want 1", released)
	}
	d.Handle([]byte(`{"type":"watch"}`))
	next(t, out)
	close(stop) // the transport ended: the hold goes with it
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, r := b.state(); r == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hold outlived the transport")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.Close()
	if _, r := b.state(); r != 2 {
		t.Fatalf("released %d times, want each hold once", r)
	}
}

func TestDialogSFUFailure(t *testing.T) {
	b := &redirectBackend{err: errors.New("janus is down")}
	send, out := collect()
	d := NewDialog(b, Viewer{Access: auth.FullAccess(), Overflow: true}, send, make(chan struct{}))
	d.Handle([]byte(`{"type":"watch"}`))
	if m := next(t, out); m["type"] != wire.TypeError || m["code"] != wire.CodeBusy {
		t.Fatalf("got %v, want busy", m)
	}
	if m := next(t, out); m["type"] != wire.TypeBye {
		t.Fatalf("got %v, want bye", m)
	}
	if _, r := b.state(); r != 1 {
		t.Fatalf("released %d", r)
	}
	// A transport that cannot bridge never asks for overflow.
	d2 := NewDialog(b, Viewer{Access: auth.FullAccess()}, send, make(chan struct{}))
	d2.Handle([]byte(`{"type":"watch"}`))
	if reqs, _ := b.state(); reqs[len(reqs)-1].Overflow {
		t.Fatal("overflow asked by a transport without an SFU")
	}
}

// An offer with no audio or video section (or only rejected ones) is a data session.
func TestOffersMedia(t *testing.T) {
	for sdp, want := range map[string]bool{
		"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n":                                   false,
		"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n": true,
		"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n":                                                    true,
		"v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n": false,
		"": false,
	} {
		if got := offersMedia(sdp); got != want {
			t.Errorf("offersMedia(%q) = %v, want %v", sdp, got, want)
		}
	}
}
