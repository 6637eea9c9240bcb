//go:build nat

package nat

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/test/natlab"
	"github.com/p2pcast/p2pcast/test/testbin"
)

// TestHubCluster: a nats-server and three hubs sharing one data directory (docs/cluster.md). The
// device reaches "the hub" by a name that resolves to all three, as behind DNS round robin: it
// links to one of them, the holder. Through another instance, Chromium and `p2pcast view` watch
// it; their first frames are timed against viewers of the holder itself (the single-hub path).
// Then the holder is killed: the device relinks to a live instance, the viewers' sessions carry
// on there, their media never stops, and a new viewer reaches the device at its new holder.
func TestHubCluster(t *testing.T) {
	natsBin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("P2PCAST_REQUIRE_NETNS") != "" {
			t.Fatal("nats-server is not installed (scripts/install-deps.sh installs it)")
		}
		t.Skip("nats-server is not installed")
	}
	bin := testbin.Dir(t)
	p2pcast := filepath.Join(bin, "p2pcast")
	start := time.Now()
	lab := natlab.New(t)
	natsHost := lab.PublicHost("nats")
	names := []string{"a", "b", "c"}
	hubHosts := map[string]*natlab.Host{}
	for _, n := range names {
		hubHosts[n] = lab.PublicHost("hub" + n)
	}
	devSite := lab.Site("cdev", natlab.PortRestricted)
	viewSite := lab.Site("cview", natlab.PortRestricted)
	browserSite := lab.Site("cbrowse", natlab.PortRestricted)

	// The device's namespace resolves hub.lab to the three instances (`ip netns exec` mounts
	// /etc/netns/NS/hosts over /etc/hosts).
	etc := filepath.Join("/etc/netns", devSite.NS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	var hosts strings.Builder
	for _, n := range names {
		fmt.Fprintf(&hosts, "%s hub.lab\n", hubHosts[n].IP)
	}
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	data := t.TempDir()
	secret := func(name string, args ...string) string {
		t.Helper()
		return secretFile(t, data, name, lastLine(t, p2pcast, args...))
	}
	keyFile := secret("cam.key", "device-key", "add", "cam", "--data", data)
	tokenFile := secret("token", "token", "--data", data, "--device", "cam", "--grant", "view", "--ttl", "1h")
	token, _ := os.ReadFile(tokenFile)

	waitFor := func(p *natlab.Proc, pattern string, within time.Duration) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		m, err := p.WaitOutput(ctx, pattern)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	nats := natsHost.Start(t, natsBin, "-a", natsHost.IP.String(), "-p", "4222")
	waitFor(nats, "Server is ready", 10*time.Second)
	natsURL := "nats://" + natsHost.IP.String() + ":4222"

	hubs := map[string]*natlab.Proc{}
	for _, n := range names {
		h := hubHosts[n]
		hubs[n] = h.Start(t, p2pcast, "hub", "--data", data, "--http", h.IP.String()+":8443", "--public-ip", h.IP.String(),
			"--turn-allow-peers", labPeers, "--url", "ws://hub.lab:8443", "--cluster", natsURL, "--cluster-instance", n)
	}
	for _, n := range names {
		waitFor(hubs[n], "hub listening", 15*time.Second)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range names {
				t.Logf("hub %s:\n%s", n, tail(hubs[n].Output(), 6000))
			}
		}
	})
	dev := devSite.Start(t, p2pcast, "device", "--hub", "ws://hub.lab:8443", "--id", "cam", "--key-file", keyFile, "--no-lan",
		"--size", "320x240", "--fps", "15", "--bitrate", "300k")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("device:\n%s", tail(dev.Output(), 6000))
		}
	})
	waitFor(dev, "connected to the hub", 15*time.Second)
	holder := ""
	deadline := time.Now().Add(5 * time.Second)
	for holder == "" {
		for _, n := range names {
			if strings.Contains(hubs[n].Output(), "device connected") {
				holder = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no hub says the device connected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The viewers' instance is another one; the third takes the device over.
	i := slices.Index(names, holder)
	via, other := names[(i+1)%3], names[(i+2)%3]
	t.Logf("lab, nats-server, 3 hubs and the device up in %s; the device linked to %s, viewers come through %s",
		time.Since(start).Round(time.Millisecond), holder, via)
	// The name's order (which the device tries in turn) puts the third instance next, so that
	// the viewers' sessions move between instances, not onto their own. Written in place: the
	// namespace's /etc/hosts is this file, mounted.
	order := fmt.Sprintf("%s hub.lab\n%s hub.lab\n%s hub.lab\n", hubHosts[holder].IP, hubHosts[other].IP, hubHosts[via].IP)
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(order), 0o644); err != nil {
		t.Fatal(err)
	}

	hubURL := func(n string) string { return "ws://" + hubHosts[n].IP.String() + ":8443" }
	view := func(hub string, args ...string) (viewResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cmd := viewSite.Command(ctx, p2pcast, append([]string{"view", "--hub", hub, "--device", "cam",
			"--token-file", tokenFile, "--timeout", "15s", "--stats", "json"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return viewResult{}, fmt.Errorf("view through %s: %v\n%s", hub, err, stderr.String())
		}
		var r viewResult
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return r, fmt.Errorf("stats %q: %v", lines[len(lines)-1], err)
		}
		return r, nil
	}

	// 1. Signaling: a viewer's hello (token checked, device found) and the device's offer after
	// its watch, through the holder and through another instance (one more hop each way, over
	// NATS), 10 of each.
	signal := func(n string) (hello, offer time.Duration) {
		t.Helper()
		d := websocket.Dialer{NetDialContext: viewSite.Dial, HandshakeTimeout: 5 * time.Second}
		begin := time.Now()
		c, _, err := d.Dial(hubURL(n)+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		read := func(want string) time.Duration {
			for {
				var m struct{ Type, Code, Message string }
				if err := c.ReadJSON(&m); err != nil {
					t.Fatalf("signaling through %s: waiting for %s: %v", n, want, err)
				}
				if m.Type == want {
					return time.Since(begin)
				}
				if m.Type == "error" {
					t.Fatalf("signaling through %s: %s: %s", n, m.Code, m.Message)
				}
			}
		}
		_ = c.WriteJSON(map[string]string{"type": "auth", "token": strings.TrimSpace(string(token)), "device": "cam"})
		hello = read("hello")
		w := time.Now()
		_ = c.WriteJSON(map[string]string{"type": "watch"})
		read("offer")
		offer = time.Since(w)
		_ = c.WriteJSON(map[string]string{"type": "bye"})
		return hello, offer
	}
	var helloL, helloR, offerL, offerR []float64
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for range 10 {
		h, o := signal(holder)
		helloL, offerL = append(helloL, ms(h)), append(offerL, ms(o))
		h, o = signal(via)
		helloR, offerR = append(helloR, ms(h)), append(offerR, ms(o))
	}
	fmt.Printf("cluster signaling (median of 10): hello %.1f ms through the holder, %.1f ms through another instance; watch → offer %.1f ms, %.1f ms\n",
		median(helloL), median(helloR), median(offerL), median(offerR))
	if d := median(offerR) - median(offerL); d > 100 {
		t.Errorf("watch → offer through another instance takes %.0f ms longer (median): want within 100 ms", d)
	}

	// 2. First frame: through the holder (the single-hub path) and through another instance,
	// alternately. Direct joins are bimodal (docs/performance.md: Pion's nomination tick: ~20
	// or ~220 ms, ~40 % in the slow mode on either path), so the medians of a few joins swing
	// by ~200 ms either way, and so did the lower quartiles (6 slow joins of 8 on one path:
	// ~1 run in 20 failed). The test compares each path's fastest join: a delay the cluster
	// added would shift every join, the fastest included; the unimodal cost of the cluster's
	// path is the signaling measured above.
	joins := 8
	if n, err := strconv.Atoi(os.Getenv("P2PCAST_CLUSTER_JOINS")); err == nil && n > 0 {
		joins = n
	}
	var local, remote []float64
	for range joins {
		for _, n := range []string{holder, via} {
			r, err := view(hubURL(n), "--frames", "3")
			if err != nil {
				t.Fatal(err)
			}
			if n == holder {
				local = append(local, r.TTFFMS)
			} else {
				remote = append(remote, r.TTFFMS)
			}
		}
	}
	ml, mr := median(local), median(remote)
	ql, qr := quantile(local, 0.25), quantile(remote, 0.25)
	fmt.Printf("cluster first frame: through the holder median %.0f ms, p25 %.0f ms, mean %.0f ms %v; through another instance median %.0f ms, p25 %.0f ms, mean %.0f ms %v\n",
		ml, ql, mean(local), roundAll(local), mr, qr, mean(remote), roundAll(remote))
	if fl, fr := slices.Min(local), slices.Min(remote); fr-fl > 100 {
		t.Errorf("through another instance the fastest first frame comes %.0f ms after the holder's: want within 100 ms", fr-fl)
	}

	// 3. Chromium and `p2pcast view` watch through the viewers' instance.
	agent := startAgent(t, browserSite, hubHosts[via].IP)
	agent.ready(t)
	agent.open(t, "http://"+hubHosts[via].IP.String()+":8443/?device=cam#token="+url.QueryEscape(strings.TrimSpace(string(token))))
	s := agent.waitStats(t, "frames decode through "+via, 20*time.Second, func(s pageStats) bool {
		return s.FramesDecoded >= 15 && s.ConnectionState == "connected"
	})
	t.Logf("Chromium through %s: first frame %.0f ms", via, s.ttff())
	type result struct {
		r   viewResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := view(hubURL(via), "--duration", "12s")
		done <- result{r, err}
	}()
	waitFor(dev, fmt.Sprintf(`(?s)(viewer connected.*){%d}`, 2*joins+2), 15*time.Second) // the timed joins, Chromium, this one
	time.Sleep(2 * time.Second)                                                          // both play
	before := agent.mark(t)

	// 4. The holder dies (SIGKILL: no goodbye to anyone).
	_ = syscall.Kill(-hubs[holder].Pid(), syscall.SIGKILL)
	killed := time.Now()
	<-hubs[holder].Done()
	waitFor(dev, "(?s)connected to the hub.*hub link down.*connected to the hub", 20*time.Second)
	relinked := time.Since(killed)
	// The next address of the name (the hub logs it before its welcome reaches the device, but
	// the two outputs are read by different goroutines).
	waitFor(hubs[other], "device connected", 5*time.Second)
	waitFor(hubs[via], `(?s)session carried on at the device's new holder.*session carried on at the device's new holder`, 20*time.Second)
	moved := time.Since(killed)
	t.Logf("killed %s: the device relinked to %s in %s; both sessions at %s carried on there after %s",
		holder, other, relinked.Round(time.Millisecond), via, moved.Round(time.Millisecond))

	// The media went on: Chromium still decodes, on the same session.
	after := agent.waitStats(t, "frames decode after the holder died", 15*time.Second, func(s pageStats) bool {
		return s.FramesDecoded >= before.FramesDecoded+45 && s.ConnectionState == "connected"
	})
	if after.Sessions != before.Sessions {
		t.Errorf("Chromium started a new session (%v → %v); the old one should have carried on", before.Sessions, after.Sessions)
	}
	agent.checkMark(t)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	// 12 s at 15 fps, with the holder killed in the middle of it.
	if res.r.Frames < 150 {
		t.Fatalf("`p2pcast view` across the holder's death got %d frames in 12 s, want ≥ 150", res.r.Frames)
	}
	// New viewers reach the device at its new holder, through the viewers' instance and directly.
	for _, n := range []string{via, other} {
		if r, err := view(hubURL(n), "--frames", "10"); err != nil || r.Frames < 10 {
			t.Fatalf("after the move a new viewer through %s got %d frames: %v", n, r.Frames, err)
		}
	}
	if n := regexp.MustCompile(`hub link down`).FindAllStringIndex(dev.Output(), -1); len(n) != 1 {
		t.Errorf("the device's link went down %d times, want once", len(n))
	}
	fmt.Printf("cluster failover: holder killed, device relinked in %.1f s, sessions carried on in %.1f s; Chromium %v → %v frames (same session), view %d frames in 12 s\n",
		relinked.Seconds(), moved.Seconds(), before.FramesDecoded, after.FramesDecoded, res.r.Frames)
	t.Logf("hub cluster test in %s", time.Since(start).Round(time.Millisecond))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quantile is the q-quantile of v (nearest rank).
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(max(1, len(v)))
}

func roundAll(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}
