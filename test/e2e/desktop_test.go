//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/wayland"
	"github.com/p2pcast/p2pcast/test/sway"
)

// The desktop tests run a real headless sway (test/sway), `p2pcast device --source wayland` on
// it, and Chromium pages that watch and drive it: pixels, keys, clicks and the clipboard go
// through the whole product (p2pcast-capture's screencopy, the control channel, the Wayland
// virtual keyboard and pointer).

// desktopBackground is the colour of the foot window that fills the output: what the page
// must see.
const desktopBackground = "2060a0"

// controlState mirrors window.p2pcast.control() in web/player.js (desktop.js snapshot()).
type controlState struct {
	Open        bool     `json:"open"`
	Controlling bool     `json:"controlling"`
	Request     *string  `json:"request"`
	Clipboard   *string  `json:"clipboard"`
	Refused     int      `json:"refused"`
	Errors      []string `json:"errors"`
	State       *struct {
		You        string   `json:"you"`
		Controller string   `json:"controller"`
		Requests   []string `json:"requests"`
	} `json:"state"`
}

func control(t *testing.T, tab *browser.Page) *controlState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := browser.Eval[*controlState](ctx, tab, `window.p2pcast.control()`)
	if err != nil {
		t.Fatalf("reading the control state: %v", err)
	}
	return c
}

// waitControl polls the page's control state until ok holds.
func waitControl(t *testing.T, tab *browser.Page, what string, within time.Duration, ok func(*controlState) bool) *controlState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := control(t, tab)
		if c != nil && ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last control state %+v", what, within, c)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition the page has no event for
	}
}

func controlSend(t *testing.T, tab *browser.Page, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sent, err := browser.Eval[bool](ctx, tab, `window.p2pcast.controlSend(`+msg+`)`)
	if err != nil || !sent {
		t.Fatalf("sending %s on the control channel: %v, sent %v", msg, err, sent)
	}
}

// startDesktop starts sway at width x height with a foot terminal filling it, whose shell
// writes what it is typed (raw, unechoed) to the returned file, and a device streaming it.
func startDesktop(t *testing.T, width, height int, args ...string) (*sway.Session, *device, string) {
	t.Helper()
	s := sway.Start(t, sway.WithResolution(width, height), sway.WithConfig("default_border none", "hide_edge_borders both"))
	typed := filepath.Join(s.Dir(), "typed")
	s.Run("foot", "-o", "colors.background="+desktopBackground, "-o", "cursor.blink=no",
		"sh", "-c", "stty raw -echo; exec cat > "+typed)
	waitFile(t, typed, 10*time.Second)
	dev := startDeviceWith(t, deviceOpts{env: s.Env()}, "127.0.0.1:0", append([]string{"--source", "wayland"}, args...)...)
	return s, dev, typed
}

func waitFile(t *testing.T, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, within)
		}
		time.Sleep(20 * time.Millisecond) // a file another process makes: no event to wait on
	}
}

// waitTyped waits until the file holds exactly want.
func waitTyped(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) || (len(b) >= len(want) && string(b) != want) {
			t.Fatalf("the desktop application got %q; want %q", b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchDesktop opens the page and waits until it plays the desktop at width x height.
func watchDesktop(t *testing.T, b *browser.Browser, url string, width, height int) *browser.Page {
	t.Helper()
	tab := openTab(t, b, url)
	waitFor(t, tab, "the desktop playing", 20*time.Second, func(s pageStats) bool {
		return s.FramesDecoded > 0 && int(s.FrameWidth) == width && int(s.FrameHeight) == height
	})
	return tab
}

type rgb struct{ R, G, B float64 }

// pixel reads the colour the page shows at (x, y) of the desktop's picture.
func pixel(t *testing.T, tab *browser.Page, x, y int) rgb {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := browser.Eval[rgb](ctx, tab, fmt.Sprintf(`(() => {
	  const v = document.querySelector('p2pcast-player').video;
	  const c = document.createElement('canvas');
	  c.width = v.videoWidth; c.height = v.videoHeight;
	  const g = c.getContext('2d');
	  g.drawImage(v, 0, 0);
	  const d = g.getImageData(%d, %d, 1, 1).data;
	  return { r: d[0], g: d[1], b: d[2] };
	})()`, x, y))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// clickAt clicks the page where it shows the desktop's point (x, y) of a width x height output.
func clickAt(t *testing.T, tab *browser.Page, x, y, width, height int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type point struct{ X, Y float64 }
	// The picture is letterboxed in the element: map through its shown rectangle, as a user's
	// eye would.
	p, err := browser.Eval[point](ctx, tab, fmt.Sprintf(`(() => {
	  const v = document.querySelector('p2pcast-player').video;
	  const r = v.getBoundingClientRect();
	  const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
	  const w = v.videoWidth * s, h = v.videoHeight * s;
	  return { x: r.left + (r.width - w) / 2 + (%d + 0.5) / %d * w, y: r.top + (r.height - h) / 2 + (%d + 0.5) / %d * h };
	})()`, x, width, y, height))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []input.DispatchMouseEventType{input.DispatchMouseEventTypeMouseMoved, input.DispatchMouseEventTypeMousePressed, input.DispatchMouseEventTypeMouseReleased} {
		ev := input.DispatchMouseEventParams{Type: typ, X: p.X, Y: p.Y}
		if typ != input.DispatchMouseEventTypeMouseMoved {
			ev.Button, ev.Buttons, ev.ClickCount = input.MouseButtonLeft, 1, 1
		}
		dispatch(t, tab, input.DispatchMouseEvent, ev)
	}
}

// key is one physical key as Chromium gets it from a keyboard.
type key struct {
	code, key string
	vk        int64
}

func keyEvent(t *testing.T, tab *browser.Page, k key, down bool, modifiers int64) {
	t.Helper()
	ev := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Code: k.code, Key: k.key,
		WindowsVirtualKeyCode: k.vk, Modifiers: modifiers}
	if down {
		ev.Type = input.DispatchKeyEventTypeRawKeyDown
		if len(k.key) == 1 {
			ev.Type, ev.Text = input.DispatchKeyEventTypeKeyDown, k.key
		}
	}
	dispatch(t, tab, input.DispatchKeyEvent, ev)
}

func typeKeys(t *testing.T, tab *browser.Page, keys ...key) {
	t.Helper()
	for _, k := range keys {
		keyEvent(t, tab, k, true, 0)
		keyEvent(t, tab, k, false, 0)
	}
}

var (
	keyP     = key{"KeyP", "p", 'P'}
	keyC     = key{"KeyC", "c", 'C'}
	keyK     = key{"KeyK", "k", 'K'}
	keyA     = key{"KeyA", "a", 'A'}
	digit2   = key{"Digit2", "2", '2'}
	shiftKey = key{"ShiftLeft", "Shift", 16}
)

// modShift is DevTools' bit for Shift held (Alt 1, Ctrl 2, Meta 4, Shift 8).
const modShift = 8

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestDesktopShownAndDriven: the page shows the desktop (the foot window's colour), keys typed
// in the page reach the application with the desktop's layout (Shift included) and text entry
// reaches it whole, and the clipboard goes both ways.
func TestDesktopShownAndDriven(t *testing.T) {
	const w, h = 1280, 720
	s, dev, typed := startDesktop(t, w, h)
	b := newBrowser(t)
	tab := watchDesktop(t, b, dev.url, w, h)

	// The only viewer of a desktop nobody drives is given control.
	waitControl(t, tab, "the first viewer in control", 10*time.Second, func(c *controlState) bool { return c.Controlling })

	want, err := strconv.ParseUint(desktopBackground, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	bg := rgb{float64(want >> 16), float64(want >> 8 & 0xff), float64(want & 0xff)}
	for _, pt := range [][2]int{{w / 2, h / 2}, {w - 40, h - 40}, {w / 4, h * 3 / 4}} {
		if got := pixel(t, tab, pt[0], pt[1]); !near(got.R, bg.R, 12) || !near(got.G, bg.G, 12) || !near(got.B, bg.B, 12) {
			t.Errorf("pixel (%d,%d) shows %+v; want the window's %+v", pt[0], pt[1], got, bg)
		}
	}

	// Focus the page on the desktop (a click into the terminal), then type.
	clickAt(t, tab, w/2, h/2, w, h)
	typeKeys(t, tab, keyP, digit2, keyC)
	keyEvent(t, tab, shiftKey, true, 0)
	keyEvent(t, tab, keyA, true, modShift)
	keyEvent(t, tab, keyA, false, modShift)
	keyEvent(t, tab, shiftKey, false, 0)
	waitTyped(t, typed, "p2cA", 10*time.Second)
	controlSend(t, tab, `{type: 'text', text: 'é ✓'}`)
	waitTyped(t, typed, "p2cAé ✓", 10*time.Second)

	// Clipboard: the page's goes to the desktop, the desktop's comes to the page.
	probe, err := wayland.Open(s.Display(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	controlSend(t, tab, `{type: 'clipboard', text: 'from the page ✓'}`)
	waitClipboard(t, probe.Clipboard(), "from the page ✓")
	if err := probe.SetClipboard("from the desktop ✓"); err != nil {
		t.Fatal(err)
	}
	waitControl(t, tab, "the desktop's clipboard in the page", 10*time.Second, func(c *controlState) bool {
		return c.Clipboard != nil && *c.Clipboard == "from the desktop ✓"
	})
}

func waitClipboard(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
			t.Logf("desktop clipboard %q; waiting for %q", got, want)
		case <-timeout:
			t.Fatalf("the desktop's clipboard never became %q", want)
		}
	}
}

// eventdemoPointer matches weston-eventdemo's button log: the pointer position at a press.
var eventdemoButton = regexp.MustCompile(`button time: \d+, button: (\d+), state: pressed`)
var eventdemoMotion = regexp.MustCompile(`motion time: \d+, x: ([0-9.]+), y: ([0-9.]+)`)

// lastMotion is the pointer position weston-eventdemo logged last before its last press.
func lastMotion(out string) (x, y float64, ok bool) {
	press := eventdemoButton.FindAllStringIndex(out, -1)
	if len(press) == 0 {
		return 0, 0, false
	}
	ms := eventdemoMotion.FindAllStringSubmatch(out[:press[len(press)-1][0]], -1)
	if len(ms) == 0 {
		return 0, 0, false
	}
	m := ms[len(ms)-1]
	x, _ = strconv.ParseFloat(m[1], 64)
	y, _ = strconv.ParseFloat(m[2], 64)
	return x, y, true
}

// TestDesktopClicksLand: clicks in the page land on the desktop's point under them, at two
// output resolutions (the stream follows the output's change without a restart).
func TestDesktopClicksLand(t *testing.T) {
	s := sway.Start(t, sway.WithResolution(1280, 720), sway.WithConfig("default_border none", "hide_edge_borders both"))
	// Through a pipe its output is block-buffered: stdbuf makes it line-buffered.
	// The device first: its virtual keyboard gives the seat the keyboard focus is logged with.
	dev := startDeviceWith(t, deviceOpts{env: s.Env()}, "127.0.0.1:0", "--source", "wayland")
	demo := s.Run("stdbuf", "-oL", "weston-eventdemo", "-b", "--log-button", "--log-motion", "--log-focus")
	// It logs the keyboard focus sway gives it once its window is mapped.
	if _, ok := demo.WaitOutput(10*time.Second, func(out string) bool { return strings.Contains(out, "focus") }); !ok {
		t.Fatalf("weston-eventdemo did not map a window: %s", demo.Output())
	}
	if _, err := s.Msg("fullscreen", "enable"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	for i, size := range [][2]int{{1280, 720}, {1920, 1080}} {
		w, h := size[0], size[1]
		if i > 0 {
			if _, err := s.Msg("output", "HEADLESS-1", "resolution", fmt.Sprintf("%dx%d", w, h)); err != nil {
				t.Fatal(err)
			}
		}
		tab := watchDesktop(t, b, dev.url, w, h)
		waitControl(t, tab, "in control", 10*time.Second, func(c *controlState) bool { return c.Controlling })
		for _, pt := range [][2]int{{w / 3, h / 4}, {w * 4 / 5, h * 2 / 3}} {
			n := len(eventdemoButton.FindAllString(demo.Output(), -1))
			clickAt(t, tab, pt[0], pt[1], w, h)
			out, ok := demo.WaitOutput(5*time.Second, func(out string) bool { return len(eventdemoButton.FindAllString(out, -1)) > n })
			if !ok {
				t.Fatalf("%dx%d: the click at (%d,%d) never reached the application: %s", w, h, pt[0], pt[1], tail(out, 600))
			}
			x, y, ok := lastMotion(out)
			if !ok || !near(x, float64(pt[0]), 2) || !near(y, float64(pt[1]), 2) {
				t.Errorf("%dx%d: clicked the page at the desktop's (%d,%d); the application saw (%.1f,%.1f)", w, h, pt[0], pt[1], x, y)
			}
		}
		tab.Close()
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// TestDesktopControlIsShared: one controller at a time. A view-only token cannot open the
// control channel; a second controller's input is refused until the first hands over; a
// controller that leaves with a key held leaves no key stuck on the desktop.
func TestDesktopControlIsShared(t *testing.T) {
	const w, h = 640, 360
	data := t.TempDir()
	ctlA, ctlB, view := mintToken(t, data, "view,control"), mintToken(t, data, "view,control"), mintToken(t, data, "view")
	_, dev, typed := startDesktop(t, w, h, "--lan-auth", "--data", data)

	ba, bb, bv := newBrowser(t), newBrowser(t), newBrowser(t)
	a := watchDesktop(t, ba, dev.url+"#token="+ctlA, w, h)
	waitControl(t, a, "A in control", 10*time.Second, func(c *controlState) bool { return c.Controlling })

	// View only: the device refuses the channel; the page stays a viewer.
	v := watchDesktop(t, bv, dev.url+"#token="+view, w, h)
	// The page did open the channel (it is a desktop device); the device closed it.
	if c := control(t, v); c == nil || c.Open || c.State != nil {
		t.Errorf("view-only page: control %+v; want a channel the device refused (closed, no state)", c)
	}

	// B joins: A keeps control, B's input is refused and reaches nothing.
	bt := watchDesktop(t, bb, dev.url+"#token="+ctlB, w, h)
	cb := waitControl(t, bt, "B sees A in control", 10*time.Second, func(c *controlState) bool {
		return c.State != nil && c.State.Controller != "" && !c.Controlling
	})
	controlSend(t, bt, `{type: 'key', code: 'KeyZ', down: true}`)
	controlSend(t, bt, `{type: 'key', code: 'KeyZ', down: false}`)
	waitControl(t, bt, "B's input refused", 5*time.Second, func(c *controlState) bool { return c.Refused > 0 })

	// B asks; A hands over.
	controlSend(t, bt, `{type: 'request'}`)
	waitControl(t, a, "A hears B's request", 5*time.Second, func(c *controlState) bool { return c.Request != nil && *c.Request == cb.State.You })
	controlSend(t, a, fmt.Sprintf(`{type: 'handover', to: %q}`, cb.State.You))
	waitControl(t, bt, "B in control", 5*time.Second, func(c *controlState) bool { return c.Controlling })

	// B types, holds Shift and leaves: the desktop must not keep Shift down.
	clickAt(t, bt, w/2, h/2, w, h)
	typeKeys(t, bt, keyK)
	waitTyped(t, typed, "k", 10*time.Second)
	keyEvent(t, bt, shiftKey, true, 0)
	if err := bb.Close(); err != nil {
		t.Logf("closing B's browser: %v", err)
	}
	// Nobody asked, so nobody holds control now; A takes it back and types a lower-case k.
	waitControl(t, a, "control free after B left", 10*time.Second, func(c *controlState) bool {
		return c.State != nil && c.State.Controller == ""
	})
	controlSend(t, a, `{type: 'request'}`)
	waitControl(t, a, "A in control again", 5*time.Second, func(c *controlState) bool { return c.Controlling })
	clickAt(t, a, w/2, h/2, w, h)
	typeKeys(t, a, keyK)
	waitTyped(t, typed, "kk", 10*time.Second)
}

// TestDesktopGoneEndsDevice: a device whose compositor exits ends with an error that says so
// (a user service starts it again with the next session), rather than restarting a producer
// that can only fail.
func TestDesktopGoneEndsDevice(t *testing.T) {
	s := sway.Start(t, sway.WithResolution(640, 360))
	var log logtest.Buffer
	dev := startDeviceWith(t, deviceOpts{env: s.Env(), stderr: &log}, "127.0.0.1:0", "--source", "wayland")
	s.Close()
	done := make(chan error, 1)
	go func() { done <- dev.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the device exited 0 after its desktop went away")
		}
		if !strings.Contains(log.String(), "the desktop went away") {
			t.Errorf("the device's log does not say the desktop went away:\n%s", tail(log.String(), 2000))
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the device still runs 15 s after its desktop went away:\n%s", tail(log.String(), 2000))
	}
}
