//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/test/sway"
	"github.com/p2pcast/p2pcast/test/testbin"
	"github.com/p2pcast/p2pcast/web"
)

// pageSources mirrors window.p2pcast.sources in web/player.js.
type pageSources []struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	Default     bool   `json:"default"`
}

// TestSourcesBrowserCLIAndRecordings: a device with two test patterns of different sizes
// (--add-source) serves each: Chromium with ?source=second plays 640x360 and the default page
// 1280x720; the page lists both and switches on a choice; `p2pcast view --source` gets the
// second's size; each source records into DIR/<id>/, and `p2pcast fetch` lists both sources'
// recordings under their ids and fetches one of each.
func TestSourcesBrowserCLIAndRecordings(t *testing.T) {
	dir := t.TempDir()
	dev := startDevice(t, "127.0.0.1:0", "--size", "1280x720", "--fps", "30",
		"--add-source", "second=testpattern;size=640x360;fps=15;bitrate=500k",
		"--record-dir", dir, "--record-segment", "1s")
	b := newBrowser(t)

	second := openTab(t, b, dev.url+"?source=second")
	s := waitFor(t, second, "?source=second plays 640x360", 15*time.Second, func(s pageStats) bool {
		return s.FramesDecoded > 10 && s.FrameWidth == 640 && s.FrameHeight == 360
	})
	t.Logf("?source=second: %vx%v, %v frames", s.FrameWidth, s.FrameHeight, s.FramesDecoded)
	main := openTab(t, b, dev.url)
	waitFor(t, main, "the default page plays 1280x720", 15*time.Second, func(s pageStats) bool {
		return s.FramesDecoded > 10 && s.FrameWidth == 1280 && s.FrameHeight == 720
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := browser.Eval[pageSources](ctx, second, `window.p2pcast.sources`)
	if err != nil || len(list) != 2 || list[0].ID != "main" || !list[0].Default || list[1].ID != "second" {
		t.Fatalf("the page's sources: %+v (%v)", list, err)
	}
	// The chooser's choice: the default source, on the same page.
	if _, err := browser.Eval[any](ctx, second, `window.p2pcast.selectSource(null), null`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, second, "after choosing main, 1280x720", 15*time.Second, func(s pageStats) bool {
		return s.FrameWidth == 1280 && s.FrameHeight == 720
	})

	out, err := exec.Command(filepath.Join(testbin.Dir(t), "p2pcast"), "view", dev.url, "--source", "second",
		"--frames", "10", "--timeout", "15s", "--stats", "json").Output()
	if err != nil {
		t.Fatalf("p2pcast view --source second: %v", err)
	}
	var res struct{ Width, Height, Frames int }
	if err := json.Unmarshal(out, &res); err != nil || res.Width != 640 || res.Height != 360 || res.Frames < 10 {
		t.Fatalf("p2pcast view --source second: %s (%v)", out, err)
	}
	out, err = exec.Command(filepath.Join(testbin.Dir(t), "p2pcast"), "view", dev.url, "--source", "nope",
		"--frames", "1", "--timeout", "10s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown_source") {
		t.Fatalf("p2pcast view --source nope: %v\n%s", err, out)
	}

	// Each source's segments, in its own directory.
	deadline := time.Now().Add(20 * time.Second)
	for {
		counts := map[string]int{}
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".mp4") {
				rel, _ := filepath.Rel(dir, path)
				counts[strings.SplitN(rel, string(filepath.Separator), 2)[0]]++
			}
			return nil
		})
		if counts["main"] >= 2 && counts["second"] >= 2 && len(counts) == 2 {
			t.Logf("segments: %v", counts)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments by source after 20 s: %v (want main/ and second/, two each)", counts)
		}
		time.Sleep(200 * time.Millisecond) // polling the directory: the recorder has no event for a test
	}

	// The files channel lists every source's recordings, each under its id as on disk, and
	// fetches either by that path.
	bin := filepath.Join(testbin.Dir(t), "p2pcast")
	out, err = exec.Command(bin, "fetch", dev.url, "--list", "--json").Output()
	if err != nil {
		t.Fatalf("p2pcast fetch --list: %v", err)
	}
	var listing struct {
		Recordings []struct {
			Path    string `json:"path"`
			Source  string `json:"source"`
			Writing bool   `json:"writing"`
		} `json:"recordings"`
	}
	if err := json.Unmarshal(out, &listing); err != nil || len(listing.Recordings) == 0 {
		t.Fatalf("p2pcast fetch --list --json: %s (%v)", out, err)
	}
	first := map[string]string{} // source → its first closed recording
	for _, r := range listing.Recordings {
		if !strings.HasPrefix(r.Path, r.Source+"/") {
			t.Fatalf("recording %s of source %q: not under its id", r.Path, r.Source)
		}
		if _, ok := first[r.Source]; !ok && !r.Writing {
			first[r.Source] = r.Path
		}
	}
	if first["main"] == "" || first["second"] == "" || len(first) != 2 {
		t.Fatalf("p2pcast fetch --list: closed recordings by source %v, want main and second", first)
	}
	for src, p := range first {
		got := filepath.Join(t.TempDir(), src+".mp4")
		if b, err := exec.Command(bin, "fetch", dev.url, p, "--out", got).CombinedOutput(); err != nil {
			t.Fatalf("p2pcast fetch %s: %v\n%s", p, err, b)
		}
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("fetched %s: %d bytes, the device's file %d (%v)", p, len(b), len(want), err)
		}
	}
}

// TestSourcesDesktopBesideTestPattern: a test pattern by default and the sway desktop as
// another source (--add-source desk=wayland): ?source=desk plays the desktop at its own size
// and its page takes control and types into it; the default's page plays the test pattern and
// is told of no control channel.
func TestSourcesDesktopBesideTestPattern(t *testing.T) {
	const w, h = 800, 600
	s := sway.Start(t, sway.WithResolution(w, h), sway.WithConfig("default_border none", "hide_edge_borders both"))
	typed := filepath.Join(s.Dir(), "typed")
	s.Run("foot", "-o", "colors.background="+desktopBackground, "-o", "cursor.blink=no",
		"sh", "-c", "stty raw -echo; exec cat > "+typed)
	waitFile(t, typed, 10*time.Second)
	dev := startDeviceWith(t, deviceOpts{env: s.Env()}, "127.0.0.1:0", "--size", "640x360", "--add-source", "desk=wayland;fps=30")
	b := newBrowser(t)

	desk := watchDesktop(t, b, dev.url+"?source=desk", w, h)
	waitControl(t, desk, "the desktop's viewer in control", 10*time.Second, func(c *controlState) bool { return c.Controlling })
	clickAt(t, desk, w/2, h/2, w, h)
	typeKeys(t, desk, keyP, digit2, keyC)
	waitTyped(t, typed, "p2c", 10*time.Second)

	pattern := openTab(t, b, dev.url)
	waitFor(t, pattern, "the default page plays the test pattern", 15*time.Second, func(s pageStats) bool {
		return s.FramesDecoded > 5 && s.FrameWidth == 640 && s.FrameHeight == 360
	})
	if c := control(t, pattern); c != nil && c.Open {
		t.Errorf("the test pattern's page opened the desktop's control channel: %+v", c)
	}
}

// TestSourcesThroughTheHub: a two-source device joined to a hub (run in this process) is
// listed on the hub page with an entry per source; the second's link plays its size.
func TestSourcesThroughTheHub(t *testing.T) {
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key.Secret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	hubURL := "ws://" + ts.Listener.Addr().String()
	srv, err := hub.New(hub.Config{Store: store, URLs: []string{hubURL}, Web: web.Files, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(func() { srv.Close(); ts.Close() })
	startDevice(t, "127.0.0.1:0", "--size", "1280x720", "--add-source", "second=testpattern;size=640x360",
		"--hub", hubURL, "--id", "cam1", "--key-file", keyFile, "--insecure-no-auth")
	tok, err := store.MintToken(auth.Claims{Devices: []string{"cam1"}, Grants: []auth.Grant{auth.GrantView},
		IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	tab := openTab(t, b, ts.URL+"/#token="+tok)
	deadline := time.Now().Add(15 * time.Second)
	var links [][]string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		links, err = browser.Eval[[][]string](ctx, tab,
			`[...document.querySelectorAll('#list a')].map((a) => [a.dataset.device, a.dataset.source ?? '', a.getAttribute('href')])`)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(links) == 2 {
			break
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			body, _ := browser.Eval[string](ctx, tab, `location.href + ' ' + document.body.innerText`)
			cancel()
			t.Fatalf("the hub page lists %v, want an entry per source; the page: %s", links, body)
		}
		time.Sleep(200 * time.Millisecond) // the list refreshes on its own clock
	}
	if links[0][2] != "?device=cam1" || links[1][1] != "second" || links[1][2] != "?device=cam1&source=second" {
		t.Fatalf("the hub page's entries: %v", links)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tab.Navigate(ctx, ts.URL+"/"+links[1][2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the hub's ?device=cam1&source=second plays 640x360", 20*time.Second, func(s pageStats) bool {
		return s.FramesDecoded > 5 && s.FrameWidth == 640 && s.FrameHeight == 360
	})
}
