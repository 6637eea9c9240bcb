package wayland

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/sway"
)

// evdev codes used by the tests (linux/input-event-codes.h).
const (
	keyA         = 30
	keyC         = 46
	keyH         = 35
	keyI         = 23
	keyJ         = 36
	keyK         = 37
	keyLeftShift = 42
	keyLeftCtrl  = 29
	keyCapsLock  = 58
	btnLeft      = 0x110
	btnRight     = 0x111
)

func openDesktop(t *testing.T, s *sway.Session, output string) *Desktop {
	t.Helper()
	d, err := Open(s.Display(), output)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (scripts/install-deps.sh installs it)", b)
		}
	}
}

// eventdemo runs weston-eventdemo, which prints every pointer and key event it gets, line
// buffered (stdbuf) so that lines arrive as the events do.
func eventdemo(t *testing.T, s *sway.Session) *sway.Client {
	t.Helper()
	need(t, "weston-eventdemo", "stdbuf")
	return s.Run("stdbuf", "-oL", "weston-eventdemo", "-b", "--log-motion", "--log-button",
		"--log-axis", "--log-key", "--log-focus")
}

var reMotion = regexp.MustCompile(`motion time: \d+, x: ([\d.]+), y: ([\d.]+)`)

// pointerReady moves the pointer until the client reports motion: the window has mapped
// and the pointer is over it. No event tells the test when the window is up, so this polls.
func pointerReady(t *testing.T, d *Desktop, c *sway.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if err := d.MoveAbs(0.1+0.01*float64(i%2), 0.1); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.WaitOutput(20*time.Millisecond, func(out string) bool { return reMotion.MatchString(out) }); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no motion reached the client:\n%s", c.Output())
		}
	}
}

// after returns what the client printed after mark (a length of its earlier output).
func after(out string, mark int) string { return out[min(mark, len(out)):] }

func TestPointer(t *testing.T) {
	s := sway.Start(t)
	d := openDesktop(t, s, "HEADLESS-1")
	c := eventdemo(t, s)
	pointerReady(t, d, c)

	move := func(x, y float64, wantX, wantY float64) {
		t.Helper()
		mark := len(c.Output())
		if err := d.MoveAbs(x, y); err != nil {
			t.Fatal(err)
		}
		out, ok := c.WaitOutput(5*time.Second, func(out string) bool {
			return reMotion.MatchString(after(out, mark))
		})
		if !ok {
			t.Fatalf("MoveAbs(%v, %v): no motion logged:\n%s", x, y, after(out, mark))
		}
		m := reMotion.FindStringSubmatch(after(out, mark))
		gx, _ := strconv.ParseFloat(m[1], 64)
		gy, _ := strconv.ParseFloat(m[2], 64)
		if abs(gx-wantX) > 1 || abs(gy-wantY) > 1 {
			t.Errorf("MoveAbs(%v, %v) reached (%v, %v), want (%v, %v) ± 1", x, y, gx, gy, wantX, wantY)
		}
	}
	move(0.25, 0.75, 320, 540)
	move(0.9, 0.1, 1152, 72)

	// The same fractions on another mode land on the same relative place.
	if _, err := s.Msg("output", "HEADLESS-1", "resolution", "800x600"); err != nil {
		t.Fatal(err)
	}
	move(0.5, 0.5, 400, 300)
	move(0.25, 0.75, 200, 450)

	mark := len(c.Output())
	for _, b := range []struct {
		code uint32
		down bool
	}{{btnLeft, true}, {btnLeft, false}, {btnRight, true}, {btnRight, false}} {
		if err := d.Button(b.code, b.down); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"button: 272, state: pressed", "button: 272, state: released",
		"button: 273, state: pressed", "button: 273, state: released"}
	if out, ok := c.WaitOutput(5*time.Second, func(out string) bool {
		return strings.Contains(after(out, mark), want[len(want)-1])
	}); !ok || !inOrder(after(out, mark), want) {
		t.Errorf("buttons logged:\n%s\nwant in order %q", after(out, mark), want)
	}

	// One notch, then two half notches: the second half completes a step.
	mark = len(c.Output())
	for _, sc := range []struct {
		dy   float64
		v120 int32
	}{{15, 120}, {7.5, 60}, {7.5, 60}} {
		if err := d.Scroll(0, sc.dy, 0, sc.v120); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := c.WaitOutput(5*time.Second, func(out string) bool {
		return strings.Count(after(out, mark), "axis time:") >= 3
	})
	got := after(out, mark)
	if n := strings.Count(got, "axis discrete axis: 0 value: 1"); n != 2 {
		t.Errorf("%d discrete steps, want 2:\n%s", n, got)
	}
	if !inOrder(got, []string{"value: 15.000000", "value: 7.500000", "value: 7.500000"}) ||
		!strings.Contains(got, "axis source: wheel") {
		t.Errorf("scroll logged:\n%s", got)
	}

	// Horizontal, and a continuous scroll without notches (a touchpad's, say).
	mark = len(c.Output())
	if err := d.Scroll(-15, 0, -120, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Scroll(0, 5, 0, 0); err != nil {
		t.Fatal(err)
	}
	out, _ = c.WaitOutput(5*time.Second, func(out string) bool {
		return strings.Count(after(out, mark), "axis time:") >= 2
	})
	got = after(out, mark)
	if !inOrder(got, []string{"axis source: wheel", "axis discrete axis: 1 value: -1",
		"axis: horizontal, value: -15.000000", "axis source: continuous", "axis: vertical, value: 5.000000"}) {
		t.Errorf("scroll logged:\n%s", got)
	}

	if err := d.Button(0x200, true); !errors.Is(err, ErrBadCode) {
		t.Errorf("Button(0x200) = %v, want ErrBadCode", err)
	}
}

func TestPointerMappedToOutput(t *testing.T) {
	// Two outputs side by side: the pointer must stay on the one it was opened for.
	s := sway.Start(t, sway.WithConfig("output HEADLESS-1 position 640 0"))
	if _, err := s.Msg("create_output"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Msg("output", "HEADLESS-2", "resolution", "640x480", "position", "0", "0"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Msg("focus", "output", "HEADLESS-1"); err != nil {
		t.Fatal(err)
	}
	d := openDesktop(t, s, "HEADLESS-1")
	c := eventdemo(t, s)
	pointerReady(t, d, c)
	mark := len(c.Output())
	if err := d.MoveAbs(0.5, 0.5); err != nil {
		t.Fatal(err)
	}
	out, ok := c.WaitOutput(5*time.Second, func(out string) bool { return reMotion.MatchString(after(out, mark)) })
	m := reMotion.FindStringSubmatch(after(out, mark))
	if !ok || m[1] != "640.000000" || m[2] != "360.000000" {
		t.Errorf("motion on HEADLESS-1 (1280x720 right of a 640x480 output): %q, want 640, 360 in the window", m)
	}
}

func TestKeysAndTypeInFoot(t *testing.T) {
	need(t, "foot")
	s := sway.Start(t)
	d := openDesktop(t, s, "")
	if d.KeymapSource() != "default" {
		t.Errorf("headless sway has no keyboard, yet the keymap came from %q", d.KeymapSource())
	}

	type step struct {
		name string
		do   func() error
		want string
	}
	key := func(codes ...uint32) func() error {
		return func() error {
			for _, c := range codes {
				if err := d.Key(c, true); err != nil {
					return err
				}
				if err := d.Key(c, false); err != nil {
					return err
				}
			}
			return nil
		}
	}
	steps := []step{
		{"keys", key(keyH), "h"},
		{"shift", func() error {
			if err := d.Key(keyLeftShift, true); err != nil {
				return err
			}
			if err := key(keyI)(); err != nil {
				return err
			}
			return d.Key(keyLeftShift, false)
		}, "I"},
		{"type", func() error { return d.Type("héllo ✓\n") }, "héllo ✓\r"}, // Return is CR on a tty
		{"keys after type", key(keyK), "k"},
		{"release all", func() error {
			if err := d.Key(keyLeftShift, true); err != nil {
				return err
			}
			if err := d.ReleaseAll(); err != nil {
				return err
			}
			return key(keyJ)()
		}, "j"},
		{"caps lock", key(keyCapsLock, keyA, keyCapsLock, keyA), "Aa"},
		{"control", func() error {
			if err := d.Key(keyLeftCtrl, true); err != nil {
				return err
			}
			if err := key(keyC)(); err != nil {
				return err
			}
			return d.Key(keyLeftCtrl, false)
		}, "\x03"},
	}
	var all string
	for _, st := range steps {
		all += st.want
	}

	// The shell makes its tty raw (no echo, no line editing, no signals), says it is ready,
	// and copies what it reads byte by byte (head would buffer it until the end).
	out := filepath.Join(s.Dir(), "typed")
	ready := filepath.Join(s.Dir(), "ready")
	c := s.Run("foot", "sh", "-c", fmt.Sprintf("stty raw -echo && touch %s && exec dd bs=1 count=%d of=%s status=none", ready, len(all), out))
	waitFor(t, 10*time.Second, "foot focused and its shell ready", func() bool {
		_, err := os.Stat(ready)
		app, _ := focusedApp(s)
		return err == nil && app == "foot"
	}, c)

	want := ""
	for _, st := range steps {
		began := time.Now()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want += st.want
		var got []byte
		waitFor(t, 5*time.Second, st.name, func() bool {
			got, _ = os.ReadFile(out)
			return len(got) >= len(want)
		}, c)
		if string(got) != want {
			t.Fatalf("%s: foot read %q, want %q", st.name, got, want)
		}
		t.Logf("%s: in foot's tty after %v", st.name, time.Since(began).Round(100*time.Microsecond))
	}
}

func TestKeyLatency(t *testing.T) {
	s := sway.Start(t)
	d := openDesktop(t, s, "")
	c := eventdemo(t, s)
	waitFor(t, 10*time.Second, "keyboard focus", func() bool { return strings.Contains(c.Output(), "focus") }, c)

	var lat []time.Duration
	for i := 0; i < 40; i++ {
		down := i%2 == 0
		state := "released"
		if down {
			state = "pressed"
		}
		n := strings.Count(c.Output(), "state: "+state)
		began := time.Now()
		if err := d.Key(keyA, down); err != nil {
			t.Fatal(err)
		}
		// Tight polling: the latency is what is being measured.
		for strings.Count(c.Output(), "state: "+state) == n {
			if time.Since(began) > 5*time.Second {
				t.Fatalf("key %d not logged:\n%s", i, c.Output())
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(began))
	}
	slices.Sort(lat)
	t.Logf("Key() to weston-eventdemo's log line (through stdbuf and a pipe): p50 %v, p90 %v, max %v",
		lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*9/10].Round(10*time.Microsecond),
		lat[len(lat)-1].Round(10*time.Microsecond))
	if !strings.Contains(c.Output(), "unicode: 97") {
		t.Errorf("KEY_A did not give 'a' (keysym 97):\n%s", c.Output())
	}
}

func TestProtocolError(t *testing.T) {
	s := sway.Start(t)
	d := openDesktop(t, s, "")
	// A key on a virtual keyboard that has no keymap is a protocol error (no_keymap).
	id, err := d.c.newObject(ifVirtualKeyboard, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.c.send(newMessage(d.vkMgr, vkManagerCreate).uint(d.seat).uint(id),
		newMessage(id, vkKey).uint(now()).uint(keyA).uint(keyStatePressed)); err != nil {
		t.Fatal(err)
	}
	err = d.c.roundtrip(callTimeout)
	var pe *ProtocolError
	if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("roundtrip after a bad request: %v, want a *ProtocolError", err)
	}
	if pe.Interface != "zwp_virtual_keyboard_v1" || pe.ObjectID != id || pe.Code != 0 || pe.Message == "" {
		t.Errorf("error %+v, want zwp_virtual_keyboard_v1@%d code 0 (no_keymap) with a message", pe, id)
	}
	t.Log(err)
	// The desktop is dead from then on, and says why.
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Error("Done not closed after a protocol error")
	}
	if err := d.Key(keyA, true); !errors.As(err, &pe) {
		t.Errorf("Key after the error: %v, want the protocol error", err)
	}
	select {
	case _, open := <-d.Clipboard():
		if open {
			t.Error("clipboard delivered text")
		}
	default:
	}
}

func TestOpenErrors(t *testing.T) {
	s := sway.Start(t)
	if _, err := Open(s.Display(), "DP-9"); !errors.Is(err, ErrNoOutput) || !strings.Contains(err.Error(), "HEADLESS-1") {
		t.Errorf("Open on a missing output: %v, want ErrNoOutput naming HEADLESS-1", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nothing"), ""); !errors.Is(err, ErrNoDisplay) {
		t.Errorf("Open on no socket: %v, want ErrNoDisplay", err)
	}
	// By name in XDG_RUNTIME_DIR, as WAYLAND_DISPLAY gives it.
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	d, err := Open("", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.OutputName() != "HEADLESS-1" {
		t.Errorf("first output %q", d.OutputName())
	}
	// A second desktop finds the first one's keyboard on the seat, with a whole layout.
	d2 := openDesktop(t, s, "")
	if d2.KeymapSource() != "seat" {
		t.Errorf("second desktop's keymap from %q, want the seat's", d2.KeymapSource())
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.Key(keyA, true); !errors.Is(err, ErrClosed) {
		t.Errorf("Key after Close: %v, want ErrClosed", err)
	}
	if _, open := <-d.Clipboard(); open {
		t.Error("clipboard channel open after Close")
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// inOrder says whether every string of want occurs in s, in that order.
func inOrder(s string, want []string) bool {
	for _, w := range want {
		i := strings.Index(s, w)
		if i < 0 {
			return false
		}
		s = s[i+len(w):]
	}
	return true
}

// waitFor polls cond until it holds or timeout passes (for states no event announces).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, c *sway.Client) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; client output:\n%s", what, c.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// focusedApp is the app_id of the focused window ("" if none), and whether a window (not a
// workspace or output) has the focus.
func focusedApp(s *sway.Session) (appID string, window bool) {
	out, err := s.Msg("-t", "get_tree")
	if err != nil {
		return "", false
	}
	type node struct {
		AppID         string `json:"app_id"`
		Type          string
		Focused       bool
		Nodes         []node
		FloatingNodes []node `json:"floating_nodes"`
	}
	var root node
	if json.Unmarshal([]byte(out), &root) != nil {
		return "", false
	}
	var find func(n node) *node
	find = func(n node) *node {
		if n.Focused {
			return &n
		}
		for _, k := range append(n.Nodes, n.FloatingNodes...) {
			if f := find(k); f != nil {
				return f
			}
		}
		return nil
	}
	if f := find(root); f != nil {
		return f.AppID, f.Type == "con" || f.Type == "floating_con"
	}
	return "", false
}

// injector is internal/input's Injector, repeated here: *Desktop must keep satisfying it.
type injector interface {
	MoveAbs(x, y float64) error
	Button(code uint32, down bool) error
	Scroll(dx, dy float64, v120x, v120y int32) error
	Key(code uint32, down bool) error
	Type(text string) error
	SetClipboard(text string) error
	Clipboard() <-chan string
	Close() error
}

var _ injector = (*Desktop)(nil)

func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := sway.Start(t)
	before := runtime.NumGoroutine()
	a, err := Open(s.Display(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(s.Display(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetClipboard("leak check"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, b, "clipboard"); got != "leak check" {
		t.Fatalf("got %q", got)
	}
	if err := a.Type("x"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Desktop{a, b} {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before { // goroutines end a little after Close returns
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeysFollowSeatLayout(t *testing.T) {
	de, err := os.ReadFile("testdata/keymap_de.xkb")
	if err != nil {
		t.Fatal(err)
	}
	s := sway.Start(t)
	// Someone's German keyboard, used last on the seat.
	other := openDesktop(t, s, "")
	german, err := other.newVirtualKeyboard(string(de))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.c.send(
		newMessage(german, vkKey).uint(now()).uint(keyLeftShift).uint(keyStatePressed),
		newMessage(german, vkKey).uint(now()).uint(keyLeftShift).uint(keyStateReleased)); err != nil {
		t.Fatal(err)
	}
	if err := other.c.roundtrip(callTimeout); err != nil {
		t.Fatal(err)
	}

	d := openDesktop(t, s, "")
	if d.KeymapSource() != "seat" {
		t.Fatalf("keymap from %q, want the seat's", d.KeymapSource())
	}
	c := eventdemo(t, s)
	waitFor(t, 10*time.Second, "keyboard focus", func() bool { return strings.Contains(c.Output(), "focus") }, c)
	const (
		keyQ        = 16
		keyY        = 21
		keyRightAlt = 100
	)
	steps := []struct {
		codes []uint32 // pressed in order, released in reverse
		sym   int      // keysym logged for the last key
		what  string
	}{
		{[]uint32{keyY}, 'z', "KEY_Y is z on a German layout"},
		{[]uint32{keyRightAlt, keyQ}, '@', "AltGr+Q is @"},
		{[]uint32{keyLeftShift, keyY}, 'Z', "Shift+KEY_Y is Z"},
	}
	for _, st := range steps {
		mark := len(c.Output())
		for _, k := range st.codes {
			if err := d.Key(k, true); err != nil {
				t.Fatal(err)
			}
		}
		for i := len(st.codes) - 1; i >= 0; i-- {
			if err := d.Key(st.codes[i], false); err != nil {
				t.Fatal(err)
			}
		}
		last := st.codes[len(st.codes)-1]
		want := fmt.Sprintf("key key: %d, unicode: %d, state: pressed", last, st.sym)
		if out, ok := c.WaitOutput(5*time.Second, func(out string) bool {
			return strings.Contains(after(out, mark), fmt.Sprintf("key key: %d, unicode:", last))
		}); !ok || !strings.Contains(after(out, mark), want) {
			t.Errorf("%s: logged\n%s\nwant %q", st.what, after(out, mark), want)
		}
	}
}

// TestGlobals: sway's globals include what the wlroots backend needs.
func TestGlobals(t *testing.T) {
	s := sway.Start(t)
	g, err := Globals(s.Display())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zwlr_screencopy_manager_v1", "zwlr_virtual_pointer_manager_v1", "zwp_virtual_keyboard_manager_v1", "wl_seat"} {
		if g[name] == 0 {
			t.Errorf("no %s in %v", name, g)
		}
	}
	if _, err := Globals("/nonexistent/wayland-9"); err == nil {
		t.Error("Globals of no display: no error")
	}
}
