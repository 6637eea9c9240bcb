package peer

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// echoChannel answers every message with itself: a channel registered with one map entry.
// It starts late, as a Serve with setup work would: the viewer's first message, sent the
// moment the channel opened, must still reach it (it was dropped when Serve set its own
// message handler, one run in twenty).
type echoChannel struct{}

func (echoChannel) Grant() auth.Grant { return auth.GrantControl }
func (echoChannel) Serve(ctx context.Context, dc *webrtc.DataChannel, msgs <-chan webrtc.DataChannelMessage, _ auth.Access, _ *slog.Logger) {
	time.Sleep(100 * time.Millisecond) // not synchronization: the slow start under test
	for {
		select {
		case m := <-msgs:
			_ = dc.Send(m.Data)
		case <-ctx.Done():
			return
		}
	}
}

// A viewer opens the channels its grants allow; others are closed by the device. The device's
// own offer carries a data section so channels need no renegotiation.
func TestDataChannelsNeedTheirGrant(t *testing.T) {
	e, err := NewEngine(Config{IncludeLoopback: true, Channels: map[string]Channel{"echo": echoChannel{}}})
	if err != nil {
		t.Fatal(err)
	}
	st := stream.New(stream.Config{})
	st.Attach(stream.Describe("t", []stream.Track{testVideo}, nil), nil)
	control := []auth.Grant{auth.GrantView, auth.GrantControl}
	for _, tc := range []struct {
		name     string
		grants   []auth.Grant
		channels []string // SessionOptions.Channels
		echo     bool
	}{
		{"granted", control, nil, true},
		{"not granted", []auth.Grant{auth.GrantView}, nil, false},
		{"granted, listed for the session", control, []string{"echo"}, true},
		// A viewer of a camera source may hold the control grant; the desktop's channel is
		// not its session's.
		{"granted, not the session's", control, []string{"other"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := e.NewSession(st, SessionOptions{Access: auth.Access{Grants: tc.grants}, Channels: tc.channels})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			offer, err := s.Offer()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(offer, "m=application") {
				t.Fatal("the device's offer has no data section")
			}
			pc, _ := talkingViewer(t)
			for _, tr := range pc.GetTransceivers() {
				_ = tr.Stop() // this viewer answers the device's offer instead
			}
			echo, err := pc.CreateDataChannel("echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			closed := make(chan struct{})
			echo.OnOpen(func() { _ = echo.SendText("ping") })
			echo.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
			echo.OnClose(func() { close(closed) })
			<-s.GatheringDone()
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s.LocalDescription()}); err != nil {
				t.Fatal(err)
			}
			answer, err := pc.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			done := webrtc.GatheringCompletePromise(pc)
			if err := pc.SetLocalDescription(answer); err != nil {
				t.Fatal(err)
			}
			<-done
			if err := s.SetAnswer(pc.LocalDescription().SDP); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				t.Logf("echoed %q", m)
				if !tc.echo || m != "ping" {
					t.Fatalf("echo %q (granted %v)", m, tc.echo)
				}
				// The connected session names its candidate pair: on this host, the device's
				// host candidate and the viewer's address, signalled (host) or learnt from a
				// check that came before the answer or from an address the viewer did not
				// signal (prflx, RFC 8445 7.3.1.3: seen once, in make test's parallel unit
				// stage, from the viewer's IPv6 link-local address; 0 in 40 runs alone).
				if p := s.Stats().Pair; p == nil || p.Local != "host" || (p.Remote != "host" && p.Remote != "prflx") || p.Protocol == "" {
					t.Errorf("selected pair %+v, want the device's host candidate to the viewer's host or peer-reflexive one", p)
				} else if ap, err := netip.ParseAddrPort(p.RemoteAddress); err != nil || ap.Port() == 0 {
					t.Errorf("selected pair's remote address %q: %v; want the viewer's address and port", p.RemoteAddress, err)
				}
				// A message larger than the device's first read buffer (readChannel) arrives whole.
				big := strings.Repeat("0123456789", 3000)
				if err := echo.Send([]byte(big)); err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-got:
					if m != big {
						t.Fatalf("a %d-byte message echoed as %d bytes", len(big), len(m))
					}
				case <-time.After(10 * time.Second):
					t.Fatal("a 30 kB message was not echoed")
				}
			case <-closed:
				t.Log("closed by the device")
				if tc.echo {
					t.Fatal("the device closed a granted channel")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the channel neither answered nor closed")
			}
		})
	}
}

// TestDataOnlySessionDoesNotWaitForASource: a data session (fetch, record control) on a stream
// no source describes yet is made at once; a media session waits SourceWait for the tracks.
func TestDataOnlySessionDoesNotWaitForASource(t *testing.T) {
	const wait = 10 * time.Second
	e, err := NewEngine(Config{IncludeLoopback: true, SourceWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	st := stream.New(stream.Config{}) // no source
	start := time.Now()
	s, err := e.NewSession(st, SessionOptions{Access: auth.FullAccess(), DataOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if took := time.Since(start); took >= wait/2 {
		t.Fatalf("a data session took %v to make: it waited for the source", took)
	}
}
