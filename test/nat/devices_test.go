//go:build nat

package nat

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/natlab"
	"github.com/p2pcast/p2pcast/test/testbin"
)

// TestDevicesBehindOneNATAfterHubRestart: 1,000 devices behind one NAT address (a port-restricted
// cone NAT standing in for a carrier-grade one) link to a hub on the "internet", which restarts;
// every device is linked again within 10 s. The devices are `p2pcast bench devices`: one
// process speaking the device link protocol (challenge, signed answer, welcome) 1,000 times,
// with the device's own reconnection code (hub.Link).
func TestDevicesBehindOneNATAfterHubRestart(t *testing.T) {
	const n = 1000
	bin := testbin.Dir(t)
	p2pcast := filepath.Join(bin, "p2pcast")
	lab := natlab.New(t)
	hubHost := lab.PublicHost("hub")
	nat := lab.Site("cgnat", natlab.PortRestricted)
	data := t.TempDir()
	hubURL := "ws://" + hubHost.IP.String() + ":8443"
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
	startHub := func() *natlab.Proc {
		p := hubHost.Start(t, p2pcast, "hub", "--data", data, "--http", hubHost.IP.String()+":8443",
			"--public-ip", hubHost.IP.String(), "--turn-allow-peers", labPeers)
		waitFor(p, "hub listening", 15*time.Second)
		return p
	}
	hub := startHub()
	// The bench enrols its devices in the hub's data directory (the hub rereads the registry).
	bench := nat.Start(t, p2pcast, "bench", "devices", "--devices", "1000", "--url", hubURL, "--data", data,
		"--restarts", "1", "--timeout", "20s", "--json")
	waitFor(bench, "all 1000 linked", 60*time.Second)

	hub.Stop() // SIGTERM: the hub tells every device it is restarting
	startHub()
	m := waitFor(bench, `(?m)^(\{"devices".*\})$`, 40*time.Second)
	if err := bench.Err(); err != nil {
		t.Fatalf("bench devices: %v\n%s", err, bench.Output())
	}
	var rep struct {
		Restarts []struct {
			Linked  int `json:"linked"`
			Refused int `json:"refused"`
			RelinkS struct {
				P50, P95, Max float64
			} `json:"relink_s"`
		} `json:"restarts"`
	}
	if err := json.Unmarshal([]byte(m[1]), &rep); err != nil || len(rep.Restarts) != 1 {
		t.Fatalf("report %q: %v", m[1], err)
	}
	r := rep.Restarts[0]
	t.Logf("%d devices behind one NAT address: linked again p50 %.2f p95 %.2f max %.2f s after the hub stopped; %d attempts refused",
		r.Linked, r.RelinkS.P50, r.RelinkS.P95, r.RelinkS.Max, r.Refused)
	if r.Linked != n || r.RelinkS.Max > 10 {
		t.Fatalf("%d of %d linked again, the last after %.2f s: want all within 10 s", r.Linked, n, r.RelinkS.Max)
	}
	// The hub saw them all from one address: the NAT's.
	audit, err := os.ReadFile(filepath.Join(data, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	remotes := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(audit)), "\n") {
		var e struct {
			Event, Remote string
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Event == "device_connected" {
			remotes[e.Remote] = true
		}
	}
	if len(remotes) != 1 {
		t.Fatalf("devices came from %d addresses, want 1 (the NAT's): %v", len(remotes), remotes)
	}
}
