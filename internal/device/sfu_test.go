package device

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/janus/janustest"
)

func TestOverflowDecision(t *testing.T) {
	view := auth.Access{Grants: []auth.Grant{auth.GrantView}}
	talk := auth.Access{Grants: []auth.Grant{auth.GrantView, auth.GrantTalk}}
	for _, tc := range []struct {
		name       string
		p2p, limit int
		full       bool
		a          auth.Access
		want       bool
	}{
		{"under the limit", 0, 1, false, view, false},
		{"at the limit", 1, 1, false, view, true},
		{"past the limit", 5, 1, false, view, true},
		{"no limit", 50, 0, false, view, false},
		{"talk stays peer to peer", 1, 1, false, talk, false},
		{"full control stays", 1, 1, false, auth.FullAccess(), false},
		{"uplink full", 2, 0, true, view, true},
		{"uplink full but nobody yet", 0, 0, true, view, false},
		{"no view", 1, 1, false, auth.Access{Grants: []auth.Grant{auth.GrantTalk}}, false},
	} {
		if got := overflow(tc.p2p, tc.limit, tc.full, tc.a); got != tc.want {
			t.Errorf("%s: overflow = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUplinkFull(t *testing.T) {
	const rate = 1_000_000
	for _, tc := range []struct {
		est  []int
		want bool
	}{
		{nil, false},
		{[]int{400_000}, false},                   // one limited viewer: its own path
		{[]int{400_000, 450_000}, true},           // all limited together: the shared uplink
		{[]int{400_000, 2_000_000}, false},        // one has room: not the uplink
		{[]int{400_000, 0}, false},                // one without an estimate tells nothing
		{[]int{950_000, 920_000, 910_000}, false}, // near the bitrate: fine
	} {
		if got := uplinkFull(tc.est, rate); got != tc.want {
			t.Errorf("uplinkFull(%v) = %v, want %v", tc.est, got, tc.want)
		}
	}
}

func TestMediaMids(t *testing.T) {
	sdp := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n"
	if got := mediaMids(sdp); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("mids %q", got)
	}
}

func TestSFUConfig(t *testing.T) {
	key, err := auth.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	hubbed := func(c *Config) { c.Hub.URL, c.Hub.ID, c.Hub.Key, c.NoLAN = "ws://127.0.0.1:1", "cam", key, true }
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		err    string
	}{
		{"none", func(c *Config) {}, ""},
		{"janus with a hub", func(c *Config) { hubbed(c); c.SFU.Janus, c.P2PViewers = "http://10.0.0.5:8088/janus", 2 }, ""},
		{"limit without an SFU", func(c *Config) { hubbed(c); c.P2PViewers = 2 }, "needs an SFU"},
		{"janus without a hub", func(c *Config) { c.SFU.Janus = "http://10.0.0.5:8088/janus" }, "through a hub"},
		{"bad URL", func(c *Config) { hubbed(c); c.SFU.Janus = "ws://x/janus" }, "sfu-janus"},
		{"negative limit", func(c *Config) { c.P2PViewers = -1 }, "p2p-viewers -1"},
		{"negative linger", func(c *Config) {
			hubbed(c)
			c.SFU.Janus, c.SFU.Linger = "http://10.0.0.5:8088/janus", -time.Second
		}, "sfu-linger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.change(&c)
			err := c.Validate()
			if tc.err == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// The publisher against a fake Janus whose answer is no SDP: it offers the device's tracks with
// their candidates, fails at the answer, tells the waiting viewer, cleans up on Janus, and
// sends no one to the SFU for a while (viewers stay peer to peer).
func TestPublisherFailureBacksOff(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	key, err := auth.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	r, d := startDevice(t, func(c *Config) {
		c.Hub.URL, c.Hub.ID, c.Hub.Key, c.InsecureNoAuth = "ws://127.0.0.1:9", "cam", key, true
		c.SFU.Janus, c.P2PViewers = fake.API(), 1
	})
	feed(t, r.SocketPath)
	view := auth.Access{Grants: []auth.Grant{auth.GrantView}}
	if red := d.overflowTo(view); red != nil {
		t.Fatal("sent to the SFU with no viewer peer to peer")
	}
	red := d.sfu.acquire()
	if red == nil {
		t.Fatal("no redirect")
	}
	_, err = red.Wait()
	if err == nil || !strings.Contains(err.Error(), "answer") {
		t.Fatalf("Wait: %v, want the answer's failure", err)
	}
	red.Release()
	if st := d.sfu.Status(); st.Publishing || st.LastError == "" || st.Viewers != 0 {
		t.Fatalf("status %+v", st)
	}
	if d.sfu.acquire() != nil {
		t.Fatal("a failed SFU was tried again at once")
	}
	deadline := time.Now().Add(5 * time.Second)
	for fake.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failed publication's Janus session was left behind")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fake.Lock()
	defer fake.Unlock()
	if len(fake.Publishes) != 1 {
		t.Fatalf("%d publications", len(fake.Publishes))
	}
	offer := fake.Publishes[0]
	for _, want := range []string{"m=video", "H264", "a=candidate:", "a=sendonly"} {
		if !strings.Contains(offer, want) {
			t.Errorf("the offer to Janus lacks %q", want)
		}
	}
}
