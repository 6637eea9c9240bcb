package hub

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/metrics/metricstest"
)

func TestValidate(t *testing.T) {
	ok := Config{HTTPAddr: "127.0.0.1:8443"}
	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
		want string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"external TURN only", func(c *Config) {
			c.TURN.Off, c.ExternalTURN = true, ExternalTURN{URLs: []string{"turn:t.example"}, Secret: "s"}
		}, ""},
		{"no relay", func(c *Config) { c.TURN.Off = true }, "--no-embedded-turn without --turn-url leaves viewers behind strict NATs with no relay"},
		{"no secret", func(c *Config) { c.ExternalTURN.URLs = []string{"turn:t.example"} },
			"--turn-url needs the server's shared secret (--turn-secret-file, P2PCAST_TURN_SECRET or --turn-secret)"},
		{"not TURN", func(c *Config) { c.ExternalTURN = ExternalTURN{URLs: []string{"http://x"}, Secret: "s"} },
			`--turn-url "http://x" is not a turn or turns URL`},
		{"IPv6 public IP", func(c *Config) { c.PublicIP = "::1" }, `--public-ip "::1": want an IPv4 address`},
		{"no address to advertise", func(c *Config) { c.HTTPAddr = "0.0.0.0:8443" },
			"the embedded TURN server needs --public-ip (the address viewers and devices reach this host on)"},
		{"no address needed without embedded TURN", func(c *Config) {
			c.HTTPAddr, c.TURN.Off, c.ExternalTURN = "0.0.0.0:8443", true, ExternalTURN{URLs: []string{"turn:t.example"}, Secret: "s"}
		}, ""},
		{"bad URL", func(c *Config) { c.URLs = []string{"ftp://x"} }, "--url: "},
		{"negative quota", func(c *Config) { c.TURN.MaxAllocationsPerUser = -1 }, "TURN quotas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.cfg(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// The hub hands out an external TURN server's URLs instead of its own: each over UDP and TCP
// when it names no transport, with a STUN URL for each turn: host.
func TestExternalTURNReplacesTheEmbeddedOne(t *testing.T) {
	r := &runner{cfg: Config{TURN: TURNConfig{Off: true}, ExternalTURN: ExternalTURN{Secret: "s", URLs: []string{
		"turn:a.example:3478", "turns:b.example:5349?transport=tcp", "turn:c.example?transport=udp", "turn:a.example:3478?transport=tcp"}}}}
	if err := r.startTURN(t.Context()); err != nil {
		t.Fatal(err)
	}
	ice := r.cfg.ICE
	if want := []string{"stun:a.example:3478", "stun:c.example"}; !slices.Equal(ice.STUN, want) {
		t.Errorf("STUN %v, want %v", ice.STUN, want)
	}
	want := []string{"turn:a.example:3478?transport=udp", "turn:a.example:3478?transport=tcp",
		"turns:b.example:5349?transport=tcp", "turn:c.example?transport=udp", "turn:a.example:3478?transport=tcp"}
	if !slices.Equal(ice.TURN, want) {
		t.Errorf("TURN %v, want %v", ice.TURN, want)
	}
	if string(ice.Secret) != "s" || r.turn != nil {
		t.Errorf("secret %q, embedded server %v", ice.Secret, r.turn)
	}
}

func TestHubURLs(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}
	for _, tc := range []struct {
		name     string
		given    []string
		httpAddr string
		publicIP string
		tls      bool
		want     []string
	}{
		{name: "given", given: []string{"wss://hub.example.com", "WSS://hub.example.com:443"}, httpAddr: "127.0.0.1:8443",
			want: []string{"wss://hub.example.com:443"}},
		{name: "loopback", httpAddr: "127.0.0.1:8443", want: []string{"ws://localhost:8443", "ws://127.0.0.1:8443"}},
		{name: "a name, TLS, a public IP", httpAddr: "localhost:8443", publicIP: "203.0.113.5", tls: true,
			want: []string{"wss://localhost:8443", "wss://127.0.0.1:8443", "wss://203.0.113.5:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hubURLs(tc.given, lo, tc.httpAddr, tc.publicIP, tc.tls)
			if !slices.Equal(got, tc.want) {
				t.Errorf("hubURLs = %v, want %v", got, tc.want)
			}
		})
	}
	// On every address: loopback's among them.
	if got := hubURLs(nil, &net.TCPAddr{IP: net.IPv4zero, Port: 1}, "0.0.0.0:1", "", false); !slices.Contains(got, "ws://127.0.0.1:1") {
		t.Errorf("on 0.0.0.0: %v, want loopback among them", got)
	}
}

// Run serves the hub with its embedded TURN server, keeps a device link, writes the audit
// log, serves /metrics (promtool accepts it) and /readyz to this machine, and stops it all
// when its context ends.
func TestRunServesUntilItsContextEnds(t *testing.T) {
	dir := t.TempDir()
	store, err := auth.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	readyc := make(chan Ready, 1)
	done := make(chan error, 1)
	cfg := Config{HTTPAddr: "127.0.0.1:0", DataDir: dir, TURN: TURNConfig{Port: -1, AllowPeers: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	go func() { done <- Run(ctx, cfg, func(r Ready) { readyc <- r }) }()
	var ready Ready
	select {
	case ready = <-readyc:
	case err := <-done:
		t.Fatalf("Run = %v before it was ready", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready in 10 s")
	}
	resp, err := http.Get(ready.URL + "api/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %s", resp.Status)
	}

	// A device links up with the URL derived from the listener.
	link, err := NewLink(LinkConfig{URL: "ws" + strings.TrimPrefix(ready.URL, "http") + "device", ID: "cam1", Key: key, Backend: &fakeBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithCancel(ctx)
	linkDone := make(chan error, 1)
	go func() { linkDone <- link.Run(lctx) }()
	for deadline := time.Now().Add(10 * time.Second); !link.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the device did not link up")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		body := get(t, ready.URL+"metrics")
		if strings.Contains(body, "\np2pcast_hub_devices_online 1\n") {
			for _, want := range []string{`p2pcast_hub_events_total{event="device_connected"} 1`, "p2pcast_turn_allocations 0",
				`p2pcast_build_info{version="",role="hub"} 1`} {
				if !strings.Contains(body, want+"\n") {
					t.Errorf("/metrics lacks %q:\n%s", want, body)
				}
			}
			metricstest.Promtool(t, body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics does not count the device:\n%s", body)
		}
	}
	if body := get(t, ready.URL+"readyz"); body != "ready\n" {
		t.Errorf("/readyz: %q", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop in 10 s")
	}
	lcancel()
	<-linkDone
	if c, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(ready.URL, "http://"), "/"), time.Second); err == nil {
		c.Close()
		t.Error("the listener is still open")
	}
	f, err := os.Open(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		events = append(events, sc.Text())
	}
	if len(events) == 0 || !strings.Contains(events[0], EventDeviceConnected) {
		t.Errorf("audit log %v, want the device's connection first", events)
	}
}

// A component that cannot start stops those before it, and Run says why.
func TestRunFailsWhenItCannotListen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := Config{HTTPAddr: l.Addr().String(), DataDir: t.TempDir(), TURN: TURNConfig{Port: -1}}
	err = Run(t.Context(), cfg, func(Ready) { t.Error("ready called") })
	if err == nil || !strings.HasPrefix(err.Error(), "http listen: ") {
		t.Fatalf("Run = %v, want http listen: …", err)
	}
	// The audit file was closed: a hub on the same directory starts.
	cfg.HTTPAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Run(ctx, cfg, nil); err != nil {
		t.Fatalf("second Run = %v", err)
	}
	if err := Run(t.Context(), Config{HTTPAddr: "0.0.0.0:1"}, nil); err == nil {
		t.Error("Run started an invalid Config")
	}
}

// get GETs url and wants 200.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}
