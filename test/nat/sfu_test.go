//go:build nat

package nat

// The SFU test (docs/sfu.md): a device that serves one viewer peer to peer (--p2p-viewers 1)
// publishes to Debian's Janus when a second arrives, and the hub bridges that viewer to Janus's
// VideoRoom. Both are real headless Chromium through the hub's web app; the second one's pair
// must end at Janus, not at the device.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/natlab"
	"github.com/p2pcast/p2pcast/test/testbin"
)

// janusConfig writes a Janus configuration directory: the HTTP transport alone, on addr only
// (no admin API), the VideoRoom plugin alone, no event handlers or loggers, ICE on the lab's
// interface only (the host's one address: its candidates are the lab's, never loopback).
func janusConfig(t *testing.T, ip net.IP, port int) string {
	t.Helper()
	lib := "/usr/lib/" + multiarch(t) + "/janus"
	list := func(dir, keep string) string {
		entries, err := os.ReadDir(filepath.Join(lib, dir))
		if err != nil {
			t.Fatalf("Janus is not installed (apt-get install janus): %v", err)
		}
		var off []string
		for _, e := range entries {
			if n := e.Name(); strings.HasSuffix(n, ".so") && n != keep {
				off = append(off, n)
			}
		}
		return strings.Join(off, ",")
	}
	dir := t.TempDir()
	files := map[string]string{
		"janus.jcfg": fmt.Sprintf(`general: {
	configs_folder = "%[1]s"
	plugins_folder = "%[2]s/plugins"
	transports_folder = "%[2]s/transports"
	events_folder = "%[2]s/events"
	loggers_folder = "%[2]s/loggers"
	debug_level = 4
	session_timeout = 60
}
plugins: { disable = "%[3]s" }
transports: { disable = "%[4]s" }
events: { broadcast = false disable = "%[5]s" }
loggers: { disable = "%[6]s" }
media: { rtp_port_range = "20000-20200" }
nat: { ice_enforce_list = "eth0" }
`, dir, lib, list("plugins", "libjanus_videoroom.so"), list("transports", "libjanus_http.so"), list("events", ""), list("loggers", "")),
		"janus.transport.http.jcfg": fmt.Sprintf(`general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = %d
	ip = "%s"
	https = false
}
admin: { admin_http = false admin_https = false }
`, port, ip),
		"janus.plugin.videoroom.jcfg": "general: {\n}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func multiarch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("gcc", "-print-multiarch").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "x86_64-linux-gnu"
	}
	return strings.TrimSpace(string(out))
}

// TestSFU: Chromium plays a device through Janus after its peer-to-peer audience limit is
// reached; the first viewer stays peer to peer and keeps playing.
func TestSFU(t *testing.T) {
	janusBin, err := exec.LookPath("janus")
	if err != nil {
		if os.Getenv("P2PCAST_REQUIRE_NETNS") != "" {
			t.Fatal("janus is not installed (scripts/install-deps.sh installs it)")
		}
		t.Skip("janus is not installed")
	}
	start := time.Now()
	bin := testbin.Dir(t)
	p2pcast := filepath.Join(bin, "p2pcast")
	lab := natlab.New(t)
	hubHost := lab.PublicHost("hub")
	janusHost := lab.PublicHost("janus")
	data := t.TempDir()
	token := lastLine(t, p2pcast, "token", "--data", data, "--device", "*", "--grant", "view", "--ttl", "1h")
	const id = "cam-sfu"
	keyFile := secretFile(t, data, id+".key", lastLine(t, p2pcast, "device-key", "add", id, "--data", data))
	janusURL := "http://" + net.JoinHostPort(janusHost.IP.String(), "8088") + "/janus"
	janusProc := janusHost.Start(t, janusBin, "-F", janusConfig(t, janusHost.IP, 8088), "-o")
	hubAddr := net.JoinHostPort(hubHost.IP.String(), "8443")
	hubProc := hubHost.Start(t, p2pcast, "hub", "--data", data, "--http", hubAddr, "--public-ip", hubHost.IP.String(),
		"--turn-allow-peers", labPeers, "--sfu-janus", janusURL)
	devSite := lab.Site("sfu-dev", natlab.PortRestricted)
	devProc := devSite.Start(t, p2pcast, "device", "--hub", "ws://"+hubAddr, "--id", id,
		"--key-file", keyFile, "--no-lan", "--size", "640x360", "--fps", "30", "--bitrate", "600k",
		"--p2p-viewers", "1", "--sfu-janus", janusURL, "--sfu-linger", "5s")
	viewers := []*natlab.Host{lab.Site("sfu-v1", natlab.PortRestricted), lab.Site("sfu-v2", natlab.PortRestricted)}
	agents := []*agent{startAgent(t, viewers[0], hubHost.IP), startAgent(t, viewers[1], hubHost.IP)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("janus:\n%s", tail(janusProc.Output(), 6000))
			t.Logf("device:\n%s", tail(devProc.Output(), 6000))
			t.Logf("hub:\n%s", tail(hubProc.Output(), 6000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := janusProc.WaitOutput(ctx, "HTTP webserver started"); err != nil {
		t.Fatalf("janus did not start: %v", err)
	}
	if _, err := hubProc.WaitOutput(ctx, "hub listening"); err != nil {
		t.Fatalf("hub did not start: %v", err)
	}
	if _, err := devProc.WaitOutput(ctx, "connected to the hub"); err != nil {
		t.Fatalf("device did not reach the hub: %v", err)
	}
	for _, a := range agents {
		a.ready(t)
	}
	t.Logf("lab, Janus, hub, device and 2 browsers up in %s", time.Since(start).Round(time.Millisecond))
	page := "http://" + hubAddr + "/?device=" + id + "#token=" + token
	playing := func(s pageStats) bool { return s.FramesDecoded >= 30 && s.ConnectionState == "connected" }
	remote := func(s pageStats) string {
		if s.Pair == nil || s.Pair.Remote == nil {
			return ""
		}
		return s.Pair.Remote.Address
	}

	agents[0].open(t, page)
	first := agents[0].waitStats(t, "the first viewer plays peer to peer", 20*time.Second, playing)
	if r := remote(first); r == janusHost.IP.String() || r == "" {
		t.Fatalf("the first viewer's pair %s: want the device's address, not Janus's", first.pairString())
	}
	alone := uplinkBPS(t, devSite)
	agents[1].open(t, page)
	second := agents[1].waitStats(t, "the second viewer plays through Janus", 30*time.Second, playing)
	if r := remote(second); r != janusHost.IP.String() {
		t.Errorf("the second viewer's pair %s: want Janus's address %s", second.pairString(), janusHost.IP)
	}
	if second.FrameWidth != 640 || second.FrameHeight != 360 {
		t.Errorf("through Janus: %vx%v, want 640x360", second.FrameWidth, second.FrameHeight)
	}
	// Both go on playing: the first is not disturbed by the publication.
	f0 := agents[0].waitStats(t, "the first viewer plays on", 10*time.Second, func(s pageStats) bool { return s.FramesDecoded >= first.FramesDecoded+30 })
	f1 := agents[1].waitStats(t, "the second viewer plays on", 10*time.Second, func(s pageStats) bool { return s.FramesDecoded >= second.FramesDecoded+30 })
	if !strings.Contains(devProc.Output(), "viewer sent to the SFU") {
		t.Error("the device did not log sending a viewer to the SFU")
	}
	fmt.Printf("sfu p2p viewer: pair %s, first frame %.0f ms\n", f0.pairString(), f0.ttff())
	fmt.Printf("sfu janus viewer: pair %s, first frame %.0f ms\n", f1.pairString(), f1.ttff())

	// The device's upload with the browser through Janus, then with three `p2pcast view`
	// viewers more, also through Janus: it must not grow with them (one publication).
	devHost := devSite
	before := uplinkBPS(t, devHost)
	tokenFile := filepath.Join(data, "viewer.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const cli = 3
	cliHost := lab.Site("sfu-v3", natlab.PortRestricted)
	var views []*natlab.Proc
	for i := 0; i < cli; i++ {
		views = append(views, cliHost.Start(t, p2pcast, "view", "--hub", "ws://"+hubAddr, "--device", id, "--token-file", tokenFile,
			"--duration", "10s", "--stats", "json"))
	}
	// Measured while they watch: each was subscribed (the hub says so) a moment before.
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(hubProc.Output(), "viewer served through the SFU") < 1+cli {
		if time.Now().After(deadline) {
			t.Fatalf("the hub did not serve %d viewers through the SFU:\n%s", 1+cli, tail(hubProc.Output(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The device's metrics (on its own loopback) count the viewers it sent to the SFU.
	if m, err := getIn(ctx2(t, 5*time.Second), devSite, "http://127.0.0.1:8080/metrics"); err != nil {
		t.Errorf("device metrics: %v", err)
	} else if !strings.Contains(m, "p2pcast_sfu_publishing 1") || !strings.Contains(m, fmt.Sprintf("p2pcast_sfu_viewers %d", 1+cli)) {
		t.Errorf("device metrics do not show the publication and %d SFU viewers:\n%s", 1+cli, grepLines(m, "p2pcast_sfu"))
	}
	// Each new subscriber made Janus ask the device for a keyframe: let those pass.
	time.Sleep(2 * time.Second)
	during := uplinkBPS(t, devHost)
	for i, v := range views {
		lines, err := v.WaitOutput(ctx2(t, 20*time.Second), `\{"signaling"[^\n]*"frames":[1-9][^\n]*`)
		if err != nil {
			t.Fatalf("p2pcast view %d through Janus: %v\n%s", i, err, v.Output())
		}
		if i == 0 {
			t.Logf("p2pcast view through Janus: %s", lines[0])
		}
	}
	fmt.Printf("sfu device upload: %.0f kbit/s with 1 p2p viewer, %.0f kbit/s with 1 p2p + 1 Janus viewer, %.0f kbit/s with %d more through Janus\n",
		alone/1000, before/1000, during/1000, cli)
	if during > before*1.5+100_000 {
		t.Errorf("the device's upload grew from %.0f to %.0f kbit/s with %d more viewers through the SFU", before/1000, during/1000, cli)
	}

	// Time to first frame, a few joins each way (P2P: the first viewer's page reloaded
	// while... it holds the one P2P slot; through Janus: the second's).
	if n := joins(); n > 0 {
		var p2p, sfu []float64
		for i := 0; i < n; i++ {
			agents[1].open(t, "about:blank")
			agents[1].open(t, page)
			s := agents[1].waitStats(t, "rejoin through Janus", 30*time.Second, playing)
			sfu = append(sfu, s.ttff())
			agents[0].open(t, "about:blank")
			agents[0].open(t, page)
			s = agents[0].waitStats(t, "rejoin", 30*time.Second, playing)
			p2p = append(p2p, s.ttff())
		}
		fmt.Printf("sfu first frame, %d joins: p2p median %.0f ms %v; through Janus median %.0f ms %v\n", n, sfuMedian(p2p), p2p, sfuMedian(sfu), sfu)
	}
	// The audience through Janus leaves: the device stops publishing, --sfu-linger later.
	left := time.Now()
	agents[1].open(t, "about:blank")
	if _, err := devProc.WaitOutput(ctx2(t, 30*time.Second), "no viewers through the SFU: unpublishing"); err != nil {
		t.Errorf("the device kept publishing after its SFU audience left: %v", err)
	} else {
		fmt.Printf("sfu unpublished %.1f s after the last SFU viewer left (linger 5 s)\n", time.Since(left).Seconds())
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// TestSFUUplinkFull: with no configured limit, the adaptation estimates send viewers to the
// SFU. The device's uplink (its router's WAN egress) is shaped below what two viewers of the
// busy pattern need; `p2pcast view`s join one by one until the device, seeing every
// peer-to-peer viewer estimated below the bitrate, sends one to Janus.
func TestSFUUplinkFull(t *testing.T) {
	janusBin, err := exec.LookPath("janus")
	if err != nil {
		if os.Getenv("P2PCAST_REQUIRE_NETNS") != "" {
			t.Fatal("janus is not installed (scripts/install-deps.sh installs it)")
		}
		t.Skip("janus is not installed")
	}
	start := time.Now()
	p2pcast := filepath.Join(testbin.Dir(t), "p2pcast")
	lab := natlab.New(t)
	hubHost := lab.PublicHost("hub")
	janusHost := lab.PublicHost("janus")
	data := t.TempDir()
	tokenFile := secretFile(t, data, "viewer.token", lastLine(t, p2pcast, "token", "--data", data, "--device", "*", "--grant", "view", "--ttl", "1h"))
	const id = "cam-uplink"
	keyFile := secretFile(t, data, id+".key", lastLine(t, p2pcast, "device-key", "add", id, "--data", data))
	janusURL := "http://" + net.JoinHostPort(janusHost.IP.String(), "8088") + "/janus"
	janusProc := janusHost.Start(t, janusBin, "-F", janusConfig(t, janusHost.IP, 8088), "-o")
	hubAddr := net.JoinHostPort(hubHost.IP.String(), "8443")
	hubProc := hubHost.Start(t, p2pcast, "hub", "--data", data, "--http", hubAddr, "--public-ip", hubHost.IP.String(),
		"--turn-allow-peers", labPeers, "--sfu-janus", janusURL)
	devSite := lab.Site("up-dev", natlab.PortRestricted)
	// 2.2 Mbit/s of uplink: two viewers of 1.2 Mbit/s do not fit.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := devSite.Router.Run(ctx, sbinTool(t, "tc"), "qdisc", "replace", "dev", "wan", "root", "tbf",
		"rate", "2200kbit", "burst", fmt.Sprint(natlab.Burst(2_200_000)), "latency", "400ms"); err != nil {
		t.Fatal(err)
	}
	devProc := devSite.Start(t, p2pcast, "device", "--hub", "ws://"+hubAddr, "--id", id,
		"--key-file", keyFile, "--no-lan", "--size", "640x360", "--fps", "30", "--bitrate", "1200k", "--pattern", "busy",
		"--sfu-janus", janusURL, "-v")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("janus:\n%s", tail(janusProc.Output(), 3000))
			t.Logf("device:\n%s", tail(devProc.Output(), 6000))
			t.Logf("hub:\n%s", tail(hubProc.Output(), 4000))
		}
	})
	if _, err := janusProc.WaitOutput(ctx, "HTTP webserver started"); err != nil {
		t.Fatalf("janus did not start: %v", err)
	}
	if _, err := devProc.WaitOutput(ctx, "connected to the hub"); err != nil {
		t.Fatalf("device did not reach the hub: %v", err)
	}
	viewers := lab.Site("up-v", natlab.PortRestricted)
	for i := 1; ; i++ {
		viewers.Start(t, p2pcast, "view", "--hub", "ws://"+hubAddr, "--device", id, "--token-file", tokenFile, "--duration", "60s")
		// Each viewer's estimate settles within a few seconds; give the device time to see it.
		if lines, err := devProc.WaitOutput(ctx2(t, 8*time.Second), `viewer sent to the SFU[^\n]*`); err == nil {
			fmt.Printf("sfu uplink full: viewer %d sent to Janus after %s: %s\n", i, time.Since(start).Round(time.Second), lines[0])
			if !strings.Contains(lines[0], "uplink_full=true") {
				t.Errorf("sent to the SFU for another reason: %s", lines[0])
			}
			break
		}
		if i == 4 {
			t.Fatalf("4 viewers on a 2.2 Mbit/s uplink, none sent to the SFU")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(hubProc.Output(), "viewer served through the SFU") {
		if time.Now().After(deadline) {
			t.Fatal("the hub did not bridge the viewer to Janus")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// joins is how many extra joins the test times (P2PCAST_SFU_JOINS; 0 by default).
func joins() int {
	var n int
	fmt.Sscan(os.Getenv("P2PCAST_SFU_JOINS"), &n)
	return n
}

func sfuMedian(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func ctx2(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uplinkBPS is what host sends on its interface, in bit/s, over 3 s.
func uplinkBPS(t *testing.T, h *natlab.Host) float64 {
	t.Helper()
	read := func() float64 {
		out, err := h.Run(ctx2(t, 5*time.Second), "cat", "/sys/class/net/eth0/statistics/tx_bytes")
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		if _, err := fmt.Sscan(string(out), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := read()
	start := time.Now()
	time.Sleep(3 * time.Second) // a measuring window, not a synchronization
	b := read()
	return (b - a) * 8 / time.Since(start).Seconds()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// getIn GETs url from inside host's namespace.
func getIn(ctx context.Context, h *natlab.Host, url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: h.Dial}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}
