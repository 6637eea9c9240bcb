//go:build nat

// Package nat proves p2pcast's connectivity across real NATs: a hub and TURN servers on a
// "public" segment, devices and viewers behind no NAT, full-cone, port-restricted-cone and
// symmetric NATs (and viewers whose network drops UDP), all in network namespaces this test
// creates (test/natlab). For every cell it asserts that media flows and which candidate pair
// carried the first frame: direct wherever the NATs allow it, relayed only where they don't.
package nat

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/natlab"
	"github.com/p2pcast/p2pcast/test/testbin"
)

var (
	deviceKinds = []natlab.Kind{natlab.None, natlab.FullCone, natlab.PortRestricted, natlab.Symmetric}
	viewerKinds = []natlab.Kind{natlab.None, natlab.FullCone, natlab.PortRestricted, natlab.Symmetric, natlab.NoUDP}
)

// labPeers is the lab's internet, 100.64.0.0/24: shared address space, which the embedded TURN
// server refuses to relay to unless told (--turn-allow-peers).
const labPeers = "100.64.0.0/10"

// needsRelay says whether no direct path exists between a device and a viewer: the two NAT
// behaviours cannot be hole-punched, or UDP is blocked and the device cannot take TCP
// straight from the viewer (it is behind a NAT).
func needsRelay(device, viewer natlab.Kind) bool {
	if viewer == natlab.NoUDP {
		return device != natlab.None
	}
	strict := func(k natlab.Kind) int { // 0 open/fullcone, 1 port-restricted, 2 symmetric
		switch k {
		case natlab.PortRestricted:
			return 1
		case natlab.Symmetric:
			return 2
		}
		return 0
	}
	d, v := strict(device), strict(viewer)
	if device == natlab.None || viewer == natlab.None {
		return false
	}
	return d+v >= 3 // cone↔symmetric, symmetric↔symmetric
}

// viewResult is the part of `p2pcast view --stats json` this test reads.
type viewResult struct {
	Frames int     `json:"frames"`
	TTFFMS float64 `json:"ttff_ms"`
	Pair   struct {
		LocalType  string `json:"local_type"`
		RemoteType string `json:"remote_type"`
		Protocol   string `json:"protocol"`
	} `json:"pair"`
}

func (r viewResult) relayed() bool {
	return r.Pair.LocalType == "relay" || r.Pair.RemoteType == "relay"
}

// cell is one run of the matrix.
type cell struct {
	device, viewer natlab.Kind
	turn           string
	res            viewResult
	err            error
}

func (c cell) String() string {
	return fmt.Sprintf("device %-9s viewer %-9s turn %-8s pair %-5s → %-5s %-3s first frame %5.0f ms",
		c.device, c.viewer, c.turn, c.res.Pair.LocalType, c.res.Pair.RemoteType, c.res.Pair.Protocol, c.res.TTFFMS)
}

func TestNATMatrix(t *testing.T) {
	bin := testbin.Dir(t)
	p2pcast := filepath.Join(bin, "p2pcast")
	lab := natlab.New(t)
	hubHost := lab.PublicHost("hub")
	turnHost := lab.PublicHost("turn")
	coturn := lab.StartCoturn(t, turnHost, natlab.CoturnOptions{})

	// Keys: enroll one device per kind and hub, mint one token for all of them.
	data := t.TempDir()
	run := func(args ...string) string { t.Helper(); return lastLine(t, p2pcast, args...) }
	writeSecret := func(name, secret string) string { t.Helper(); return secretFile(t, data, name, secret) }
	tokenFile := writeSecret("token", run("token", "--data", data, "--device", "*", "--grant", "view", "--ttl", "1h"))
	turnSecret := writeSecret("turn.coturn", coturn.Secret())

	// Two hubs on the public host: one with its embedded TURN, one handing out coturn.
	hubs := map[string]string{"embedded": "ws://" + hubHost.IP.String() + ":8443", "coturn": "ws://" + hubHost.IP.String() + ":8444"}
	startHub := func(args ...string) {
		t.Helper()
		p := hubHost.Start(t, p2pcast, append([]string{"hub", "--data", data}, args...)...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.WaitOutput(ctx, "hub listening"); err != nil {
			t.Fatalf("hub did not start: %v\n%s", err, p.Output())
		}
	}
	startHub("--http", hubHost.IP.String()+":8443", "--public-ip", hubHost.IP.String(), "--turn-allow-peers", labPeers)
	startHub("--http", hubHost.IP.String()+":8444", "--no-embedded-turn",
		"--turn-url", "turn:"+coturn.IP.String()+":3478", "--turn-secret-file", turnSecret)

	// Devices: one per NAT kind and hub, small pictures (the matrix tests paths, not encoders).
	devSites := map[natlab.Kind]*natlab.Host{}
	devices := map[string]*natlab.Proc{} // by hub name/kind
	for _, k := range deviceKinds {
		devSites[k] = lab.Site("d"+k.String(), k)
		for hubName, url := range hubs {
			id := "dev-" + hubName + "-" + k.String()
			keyFile := writeSecret(id+".key", run("device-key", "add", id, "--data", data))
			p := devSites[k].Start(t, p2pcast, "device", "-v", "--hub", url, "--id", id, "--key-file", keyFile,
				"--no-lan", "--size", "320x240", "--fps", "15", "--bitrate", "300k")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := p.WaitOutput(ctx, "connected to the hub")
			cancel()
			if err != nil {
				t.Fatalf("device %s did not reach its hub: %v\n%s", id, err, p.Output())
			}
			devices[hubName+"/"+k.String()] = p
		}
	}
	viewSites := map[natlab.Kind]*natlab.Host{}
	for _, k := range viewerKinds {
		viewSites[k] = lab.Site("v"+k.String(), k)
	}

	// watch runs one join; its debug log (-v) is kept for the failure report.
	watch := func(c *cell) (log string) {
		id := "dev-" + c.turn + "-" + c.device.String()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := viewSites[c.viewer].Command(ctx, p2pcast, "view", "-v", "--hub", hubs[c.turn], "--device", id,
			"--token-file", tokenFile, "--frames", "10", "--timeout", "20s", "--stats", "json")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			c.err = fmt.Errorf("view: %v", err)
			return stderr.String()
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &c.res); err != nil {
			c.err = fmt.Errorf("stats %q: %v", lines[len(lines)-1], err)
		}
		return stderr.String()
	}

	var cells []*cell
	for _, d := range deviceKinds {
		for _, v := range viewerKinds {
			cells = append(cells, &cell{device: d, viewer: v, turn: "embedded"})
		}
	}
	for _, d := range deviceKinds {
		for _, v := range viewerKinds {
			if needsRelay(d, v) {
				cells = append(cells, &cell{device: d, viewer: v, turn: "coturn"})
			}
		}
	}
	// P2PCAST_NAT_JOINS repeats every cell (the join-time benchmark of docs/performance.md).
	joins := 1
	if n, err := strconv.Atoi(os.Getenv("P2PCAST_NAT_JOINS")); err == nil && n > 0 {
		joins = n
	}
	ttff := map[string][]float64{}
	// One subtest per cell (-test.run 'TestNATMatrix/embedded/none-device/cone-viewer'); the
	// lab, hubs and devices are shared.
	for _, c := range cells {
		name := fmt.Sprintf("%s/%s-device/%s-viewer", c.turn, c.device, c.viewer)
		t.Run(name, func(t *testing.T) {
			for range joins {
				log := watch(c)
				fmt.Println(c)
				switch {
				case c.err != nil:
					t.Errorf("%v", c.err)
				case c.res.Frames < 10:
					t.Errorf("%d frames", c.res.Frames)
				case needsRelay(c.device, c.viewer) && !c.res.relayed():
					t.Errorf("direct pair %+v where no direct path should exist (check the lab)", c.res.Pair)
				case !needsRelay(c.device, c.viewer) && c.res.relayed():
					t.Errorf("relayed (%+v) although a direct path exists", c.res.Pair)
				case c.viewer != natlab.NoUDP && c.res.Pair.Protocol != "udp":
					t.Errorf("%+v over TCP although UDP gets through", c.res.Pair)
				case c.viewer == natlab.NoUDP && c.res.Pair.Protocol != "tcp":
					t.Errorf("%+v: this viewer's network drops UDP", c.res.Pair)
				default:
					class := "direct"
					if c.res.relayed() {
						class = "relayed/" + c.turn
					}
					ttff[class] = append(ttff[class], c.res.TTFFMS)
				}
				// P2PCAST_NAT_LOGS=1 shows every join's logs (with PION_LOG_TRACE=ice, say).
				if t.Failed() || os.Getenv("P2PCAST_NAT_LOGS") != "" {
					t.Logf("viewer's log:\n%s\ndevice's log (its end):\n%s", log, tail(devices[c.turn+"/"+c.device.String()].Output(), 20000))
				}
				c.res, c.err = viewResult{}, nil
			}
		})
	}
	for _, class := range []string{"direct", "relayed/embedded", "relayed/coturn"} {
		v := ttff[class]
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		pct := func(p float64) float64 { return v[min(len(v)-1, int(p*float64(len(v))))] }
		fmt.Printf("first frame, %-16s joins %3d  p50 %5.0f ms  p95 %5.0f ms  max %5.0f ms\n", class, len(v), pct(0.5), pct(0.95), v[len(v)-1])
	}
}

// lastLine runs p2pcast with args and returns the last line it printed: a key, a token.
func lastLine(t *testing.T, p2pcast string, args ...string) string {
	t.Helper()
	out, err := exec.Command(p2pcast, args...).Output()
	if err != nil {
		t.Fatalf("p2pcast %s: %v", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// secretFile writes secret to dir/name, readable by its owner only, and returns the path.
func secretFile(t *testing.T, dir, name, secret string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
