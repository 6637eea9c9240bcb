//go:build nat

package nat

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/testbin"

	"github.com/p2pcast/p2pcast/test/natlab"
)

// TestHubRestart: the hub goes away and comes back. A viewer that was watching keeps its media
// (it flows peer to peer, not through the hub); the device reconnects by itself, and new viewers
// reach it again.
func TestHubRestart(t *testing.T) {
	bin := testbin.Dir(t)
	p2pcast := filepath.Join(bin, "p2pcast")
	lab := natlab.New(t)
	hubHost := lab.PublicHost("hub")
	devSite := lab.Site("dev", natlab.PortRestricted)
	viewSite := lab.Site("view", natlab.PortRestricted)

	data := t.TempDir()
	secret := func(name string, args ...string) string {
		t.Helper()
		return secretFile(t, data, name, lastLine(t, p2pcast, args...))
	}
	keyFile := secret("cam.key", "device-key", "add", "cam", "--data", data)
	tokenFile := secret("token", "token", "--data", data, "--device", "cam", "--ttl", "1h")
	hubURL := "ws://" + hubHost.IP.String() + ":8443"
	waitFor := func(p *natlab.Proc, pattern string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := p.WaitOutput(ctx, pattern); err != nil {
			t.Fatal(err)
		}
	}
	startHub := func() *natlab.Proc {
		p := hubHost.Start(t, p2pcast, "hub", "--data", data, "--http", hubHost.IP.String()+":8443", "--public-ip", hubHost.IP.String(), "--turn-allow-peers", labPeers)
		waitFor(p, "hub listening")
		return p
	}
	hub := startHub()
	dev := devSite.Start(t, p2pcast, "device", "--hub", hubURL, "--id", "cam", "--key-file", keyFile, "--no-lan",
		"--size", "320x240", "--fps", "15", "--bitrate", "300k")
	waitFor(dev, "connected to the hub")

	// view runs `p2pcast view` in the viewer's site; it returns errors rather than failing the
	// test, so that it can run in a goroutine.
	view := func(args ...string) (viewResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cmd := viewSite.Command(ctx, p2pcast, append([]string{"view", "--hub", hubURL, "--device", "cam",
			"--token-file", tokenFile, "--timeout", "15s", "--stats", "json"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return viewResult{}, fmt.Errorf("view: %v\n%s", err, stderr.String())
		}
		var r viewResult
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return r, fmt.Errorf("stats %q: %v", lines[len(lines)-1], err)
		}
		return r, nil
	}

	// A viewer watches for 6 s; the hub restarts in the middle of it.
	type result struct {
		r   viewResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := view("--duration", "6s")
		done <- result{r, err}
	}()
	// The hub is restarted once that viewer's session is up (the device logs it).
	waitFor(dev, "viewer connected")
	hub.Stop()
	waitFor(dev, "hub link down, reconnecting")
	startHub() // the lab stops it at the end
	waitFor(dev, "(?s)connected to the hub.*connected to the hub")
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	r := res.r
	// 6 s at 15 fps: the media never stopped while the hub was away.
	if r.Frames < 80 {
		t.Fatalf("the viewer watching across the hub restart got %d frames, want ≥ 80 (6 s at 15 fps)", r.Frames)
	}
	// A new viewer reaches the device through the restarted hub.
	if r2, err := view("--frames", "10"); err != nil || r2.Frames < 10 {
		t.Fatalf("after the restart a new viewer got %d frames: %v", r2.Frames, err)
	}
	t.Logf("hub restart: the viewer across it got %d frames in 6 s; the device reconnected; a new viewer got frames", r.Frames)
}
