//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/browser"
)

// playerJS is the page's recordings panel (web/files.js) as a test reaches it.
const playerJS = `document.querySelector('p2pcast-player').recordings`

// TestFilesListDownloadPlaySeek: a recording device's page lists its segments over the files
// channel, downloads one byte for byte (SHA-256 checked in the page and against the file on
// disk), plays it with MediaSource and seeks: within what is buffered, and through the device
// (a play request from the new time, the first while the previous play still streams: what
// the device has in flight drains first). The seek latencies are logged; each must show a
// frame at the new position within 500 ms.
func TestFilesListDownloadPlaySeek(t *testing.T) {
	dir := t.TempDir()
	// A busy picture at 4 Mbit/s: segments of ~3 MB, so a play is still streaming when the
	// first seek comes.
	dev := startDevice(t, "127.0.0.1:0", "--size", "640x360", "--fps", "30", "--gop", "1s", "--pattern", "busy", "--bitrate", "4M",
		"--record-dir", dir, "--record-segment", "6s", "--record-min-free", "1MB")
	b := newBrowser(t)
	tab := openTab(t, b, dev.url)
	waitFor(t, tab, "the live stream plays", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 0 })

	eval := func(what, expr string, within time.Duration, out any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		var err error
		switch o := out.(type) {
		case *string:
			*o, err = browser.Eval[string](ctx, tab, expr)
		case *float64:
			*o, err = browser.Eval[float64](ctx, tab, expr)
		case *[]string:
			*o, err = browser.Eval[[]string](ctx, tab, expr)
		case *map[string]any:
			*o, err = browser.Eval[map[string]any](ctx, tab, expr)
		default:
			t.Fatalf("eval into %T", out)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	var mime string
	eval("MediaSource support", `String(MediaSource.isTypeSupported('video/mp4; codecs="avc1.42c01f"'))`, 5*time.Second, &mime)
	if mime != "true" {
		t.Fatal("this Chromium's MediaSource does not play H.264: no proprietary codecs")
	}

	// The list: wait for two closed segments (the first may begin late in the stream).
	var paths []string
	deadline := time.Now().Add(30 * time.Second)
	for len(paths) < 2 {
		eval("list", `(async () => { const r = `+playerJS+`; if (!r || !r.hello) return []; `+
			`return (await r.list()).filter((x) => !x.writing).map((x) => x.path); })()`, 10*time.Second, &paths)
		if time.Now().After(deadline) {
			t.Fatalf("the page lists no two closed recordings: %v", paths)
		}
		if len(paths) < 2 {
			time.Sleep(500 * time.Millisecond) // no event says a segment closed
		}
	}
	path := paths[0]
	want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)

	// Download into a Blob: the page checks the SHA-256; the bytes come back for comparison.
	var dl map[string]any
	eval("download", `(async () => { const t0 = performance.now(); const d = await `+playerJS+`.download(`+jsString(path)+`);
		const ms = performance.now() - t0;
		const b = new Uint8Array(await d.blob.arrayBuffer()); let s = '';
		for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
		return { sha256: d.sha256, verified: d.verified, size: b.length, ms, b64: btoa(s) }; })()`, 30*time.Second, &dl)
	got, err := base64.StdEncoding.DecodeString(dl["b64"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || dl["sha256"] != hex.EncodeToString(sum[:]) || dl["verified"] != true {
		t.Fatalf("download: %d bytes (file %d), sha256 %v verified %v; file's %x", len(got), len(want), dl["sha256"], dl["verified"], sum)
	}
	pageMS := dl["ms"].(float64)
	t.Logf("downloaded %s: %d bytes in %.0f ms in the page (%.1f MB/s, SHA-256 verified there)", path, len(got), pageMS, float64(len(got))/1e3/pageMS)

	// Play from the start, then seek: inside the buffer, then through the device.
	var ms float64
	eval("play", playerJS+`.play(`+jsString(path)+`, 0)`, 15*time.Second, &ms)
	t.Logf("play from 0: first frame after %.0f ms", ms)
	var dur float64
	eval("duration", playerJS+`.video.duration`, 5*time.Second, &dur)
	if dur < 3 {
		t.Fatalf("the recording plays %.1f s", dur)
	}
	check := func(what string, target float64, fetch bool) float64 {
		t.Helper()
		var ms float64
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := browser.Eval[float64](ctx, tab, fmt.Sprintf(`%s.seek(%.3f, { fetch: %t })`, playerJS, target, fetch))
		cancel()
		if err != nil {
			var state string
			eval("the player's state", `(() => { const r = `+playerJS+`, v = r.video, b = [];
				for (let i = 0; i < v.buffered.length; i++) b.push(v.buffered.start(i).toFixed(2) + '-' + v.buffered.end(i).toFixed(2));
				return JSON.stringify({ status: r.statusText, currentTime: v.currentTime, paused: v.paused, readyState: v.readyState,
					seeking: v.seeking, buffered: b, error: v.error && v.error.message, ...r.playState }); })()`, 5*time.Second, &state)
			t.Fatalf("%s to %.2f s: %v; the player: %s", what, target, err, state)
		}
		ms = v
		var frames0, frames1, at float64
		eval("frames", playerJS+`.video.getVideoPlaybackQuality().totalVideoFrames`, 5*time.Second, &frames0)
		eval("currentTime", playerJS+`.video.currentTime`, 5*time.Second, &at)
		deadline := time.Now().Add(5 * time.Second)
		for frames1 <= frames0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // polling the page for presented frames
			eval("frames", playerJS+`.video.getVideoPlaybackQuality().totalVideoFrames`, 5*time.Second, &frames1)
		}
		t.Logf("%s to %.2f s: a frame at the new position after %.0f ms (currentTime %.2f, frames %v → %v)", what, target, ms, at, frames0, frames1)
		if math.Abs(at-target) > 0.6 || frames1 <= frames0 {
			t.Errorf("%s to %.2f s: currentTime %.2f, frames %v → %v", what, target, at, frames0, frames1)
		}
		if ms > 500 {
			t.Errorf("%s to %.2f s took %.0f ms (target ≤ 500)", what, target, ms)
		}
		return ms
	}
	check("seek through the device while the play streams", dur-1.5, true)
	check("seek in the buffer", dur/2, false)
	check("seek back through the device", 0.5, true)

	// Another recording from the middle: a new MediaSource, fetched from there.
	eval("play another", playerJS+`.play(`+jsString(paths[1])+`, 2.5)`, 15*time.Second, &ms)
	t.Logf("play %s from 2.5 s: a frame after %.0f ms", paths[1], ms)

	// The record switch on the record channel (this device gives every grant): stop, start.
	for _, tc := range []struct {
		action, manual string
		recording      bool
	}{{"stop", "off", false}, {"start", "on", true}} {
		var st map[string]any
		eval("record "+tc.action, `(async () => { const r = `+playerJS+`; r.record('`+tc.action+`');
			for (let i = 0; i < 200 && r.recordStatus?.manual !== '`+tc.manual+`'; i++) await new Promise((s) => setTimeout(s, 25));
			return r.recordStatus ?? {}; })()`, 10*time.Second, &st)
		if st["manual"] != tc.manual || st["recording"] != tc.recording {
			t.Errorf("record %s from the page: status %v", tc.action, st)
		}
	}
}

// jsString quotes s for a JavaScript expression (a recording path: no quotes or backslashes).
func jsString(s string) string {
	if strings.ContainsAny(s, `'\`) {
		panic("unexpected quote in " + s)
	}
	return "'" + s + "'"
}
