package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// fakeInjector records what the desktop was asked to do, one line per call.
type fakeInjector struct {
	mu     sync.Mutex
	calls  []string
	fail   map[string]bool // methods that fail
	clip   chan string
	called chan struct{} // poked on each call
}

func newFakeInjector() *fakeInjector {
	return &fakeInjector{fail: map[string]bool{}, clip: make(chan string), called: make(chan struct{}, 1)}
}

func (f *fakeInjector) rec(method, format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := method
	if format != "" {
		line += " " + fmt.Sprintf(format, args...)
	}
	f.calls = append(f.calls, line)
	select {
	case f.called <- struct{}{}:
	default:
	}
	if f.fail[method] {
		return errors.New("fake: " + method + " failed")
	}
	return nil
}

func (f *fakeInjector) MoveAbs(x, y float64) error { return f.rec("move", "%g %g", x, y) }
func (f *fakeInjector) Button(code uint32, down bool) error {
	return f.rec("button", "%#x %v", code, down)
}
func (f *fakeInjector) Scroll(dx, dy float64, v120x, v120y int32) error {
	return f.rec("scroll", "%g %g %d %d", dx, dy, v120x, v120y)
}
func (f *fakeInjector) Key(code uint32, down bool) error { return f.rec("key", "%d %v", code, down) }
func (f *fakeInjector) Type(text string) error           { return f.rec("type", "%s", text) }
func (f *fakeInjector) SetClipboard(text string) error   { return f.rec("setclip", "%s", text) }
func (f *fakeInjector) Clipboard() <-chan string         { return f.clip }
func (f *fakeInjector) ReleaseAll() error                { return f.rec("release", "") }
func (f *fakeInjector) Close() error                     { return f.rec("close", "") }

// take returns the calls since the last take.
func (f *fakeInjector) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeInjector) failing(method string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = fail
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// out is any message the device sends, decoded.
type out struct {
	Type       string       `json:"type"`
	V          int          `json:"v"`
	You        string       `json:"you"`
	Controller string       `json:"controller"`
	Viewers    []viewerInfo `json:"viewers"`
	Requests   []string     `json:"requests"`
	IdleMs     int64        `json:"idle_ms"`
	From       string       `json:"from"`
	Reason     string       `json:"reason"`
	Error      string       `json:"error"`
	Text       string       `json:"text"`
}

// testViewer is one viewer's channel, without WebRTC.
type testViewer struct {
	t   *testing.T
	m   *member
	mu  sync.Mutex
	got []out
	raw [][]byte
	new chan struct{} // poked on each message
}

func (v *testViewer) send(b []byte) error {
	var o out
	if err := json.Unmarshal(b, &o); err != nil {
		v.t.Errorf("the device sent %q: %v", b, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.got = append(v.got, o)
	v.raw = append(v.raw, bytes.Clone(b))
	select {
	case v.new <- struct{}{}:
	default:
	}
	return nil
}

// do sends one message, which must not close the channel.
func (v *testViewer) do(msg string) {
	v.t.Helper()
	if err := v.m.handle([]byte(msg)); err != nil {
		v.t.Fatalf("%s: %v", msg, err)
	}
}

// take returns the messages received since the last take.
func (v *testViewer) take() []out {
	v.mu.Lock()
	defer v.mu.Unlock()
	g := v.got
	v.got, v.raw = nil, nil
	return g
}

// types lists the types of the messages received since the last take.
func (v *testViewer) types() []string {
	var ts []string
	for _, o := range v.take() {
		ts = append(ts, o.Type)
	}
	return ts
}

// lastState is the last state received since the last take (which it is).
func (v *testViewer) lastState() out {
	v.t.Helper()
	var st out
	for _, o := range v.take() {
		if o.Type == TypeState {
			st = o
		}
	}
	if st.Type == "" {
		v.t.Fatal("no state received")
	}
	return st
}

// waitFor waits for a message of type typ, for what arrives from another goroutine.
func (v *testViewer) waitFor(typ string) out {
	v.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		v.mu.Lock()
		for i, o := range v.got {
			if o.Type == typ {
				v.got = slices.Delete(v.got, 0, i+1)
				v.mu.Unlock()
				return o
			}
		}
		v.mu.Unlock()
		select {
		case <-v.new:
		case <-deadline:
			v.t.Fatalf("no %s message", typ)
		}
	}
}

type harness struct {
	t   *testing.T
	c   *Control
	inj *fakeInjector
	clk *clock
	log *bytes.Buffer
}

var t0 = time.Unix(1_700_000_000, 0)

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, inj: newFakeInjector(), clk: &clock{t: t0}, log: &bytes.Buffer{}}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: h.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.c = newControl(h.inj, cfg, log, h.clk.Now)
	t.Cleanup(func() { _ = h.c.Close() })
	return h
}

func (h *harness) join(token string) *testViewer {
	h.t.Helper()
	v := &testViewer{t: h.t, new: make(chan struct{}, 1)}
	m, err := h.c.join(auth.Access{TokenID: token}, v.send, slog.New(h.c.log.Handler()))
	if err != nil {
		h.t.Fatal(err)
	}
	v.m = m
	return v
}

func (h *harness) logged(substr string) int {
	h.c.mu.Lock() // the log is written under Control's lock or by a finished goroutine
	defer h.c.mu.Unlock()
	return strings.Count(h.log.String(), substr)
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// Someone alone with the page can click at once: the first viewer takes control, and its
// state says so; who comes next watches.
func TestFirstViewerTakesControl(t *testing.T) {
	h := newHarness(t, Config{})
	v1 := h.join("")
	if got := string(v1.raw[0]); got != `{"type":"state","v":1,"you":"v1","controller":"v1","viewers":[{"id":"v1","name":"local (v1)","since":1700000000000}],"requests":[],"idle_ms":0,"idle_takeover_ms":30000}` {
		t.Fatalf("first state: %s", got)
	}
	v1.take()
	eq(t, "desktop", h.inj.take(), []string{"release"}) // every change of controller releases first
	h.clk.Add(time.Second)
	v2 := h.join("tokB")
	for _, v := range []*testViewer{v1, v2} {
		st := v.lastState()
		if st.Controller != "v1" || len(st.Viewers) != 2 || st.Viewers[1].Name != "tokB (v2)" || st.Viewers[1].Since != t0.Add(time.Second).UnixMilli() {
			t.Fatalf("state %+v", st)
		}
		if st.IdleMs != 1000 {
			t.Fatalf("idle %d ms, want 1000", st.IdleMs)
		}
	}
	v1.do(`{"type":"move","x":0.5,"y":0.25}`)
	v1.do(`{"type":"button","button":0,"down":true}`)
	v1.do(`{"type":"button","button":0,"down":false}`)
	v1.do(`{"type":"wheel","v120x":0,"v120y":120}`)
	v1.do(`{"type":"wheel","v120x":-40}`)
	v1.do(`{"type":"wheel","v120x":0,"v120y":0}`)
	v1.do(`{"type":"key","code":"KeyA","down":true}`)
	v1.do(`{"type":"key","code":"KeyA","down":false}`)
	v1.do(`{"type":"text","text":"héllo"}`)
	v1.do(`{"type":"text","text":""}`)
	v1.do(`{"type":"clipboard","text":"pasted"}`)
	v1.do(`{"type":"release"}`)
	eq(t, "desktop", h.inj.take(), []string{
		"move 0.5 0.25", "button 0x110 true", "button 0x110 false",
		"scroll 0 15 0 120", "scroll -5 0 -40 0",
		"key 30 true", "key 30 false", "type héllo", "setclip pasted", "release",
	})
	if got := v1.types(); len(got) != 0 {
		t.Fatalf("the controller's input was answered: %q", got)
	}
	v2.do(`{"type":"move","x":0.1,"y":0.1}`)
	eq(t, "desktop after the watcher moved", h.inj.take(), nil)
}

func TestRequestHandoverYield(t *testing.T) {
	h := newHarness(t, Config{})
	v1, v2, v3 := h.join("a"), h.join("b"), h.join("c")
	h.inj.take()
	for _, v := range []*testViewer{v1, v2, v3} {
		v.take()
	}

	v2.do(`{"type":"request"}`)
	if got := v1.take(); len(got) != 2 || got[0].Type != TypeRequest || got[0].From != "v2" || got[1].Type != TypeState || !slices.Equal(got[1].Requests, []string{"v2"}) {
		t.Fatalf("controller got %+v", got)
	}
	for _, v := range []*testViewer{v2, v3} {
		if st := v.lastState(); !slices.Equal(st.Requests, []string{"v2"}) {
			t.Fatalf("state %+v", st)
		}
	}
	v2.do(`{"type":"request"}`) // again: nobody told twice, nothing changed
	for _, v := range []*testViewer{v1, v2, v3} {
		if got := v.types(); len(got) != 0 {
			t.Fatalf("a repeated request sent %q", got)
		}
	}

	v1.do(`{"type":"key","code":"ShiftLeft","down":true}`)
	v1.do(`{"type":"handover","to":"v3"}`)
	eq(t, "desktop", h.inj.take(), []string{"key 42 true", "release"})
	for _, v := range []*testViewer{v1, v2, v3} {
		if st := v.lastState(); st.Controller != "v3" || !slices.Equal(st.Requests, []string{"v2"}) {
			t.Fatalf("after the handover: %+v", st)
		}
	}
	if h.logged(`msg="control handed over" from="a (v1)" to="c (v3)" why="handed over"`) != 1 {
		t.Fatalf("log:\n%s", h.log)
	}
	v1.do(`{"type":"key","code":"ShiftLeft","down":false}`) // v1's page lets go: refused, nothing injected
	eq(t, "desktop", h.inj.take(), nil)
	v3.do(`{"type":"key","code":"ShiftLeft","down":false}`) // never pressed by v3: not sent
	eq(t, "desktop", h.inj.take(), nil)

	v3.do(`{"type":"yield"}`)
	eq(t, "desktop", h.inj.take(), []string{"release"})
	if st := v2.lastState(); st.Controller != "v2" || len(st.Requests) != 0 {
		t.Fatalf("after the yield: %+v", st)
	}
	v2.do(`{"type":"yield"}`)
	if st := v1.lastState(); st.Controller != "" {
		t.Fatalf("after the last yield: %+v", st)
	}
	v3.do(`{"type":"request"}`)
	if st := v3.lastState(); st.Controller != "v3" {
		t.Fatalf("a request with nobody in control: %+v", st)
	}

	h.clk.Add(quiet) // v1's last refusal was a moment ago
	v1.take()
	v1.do(`{"type":"handover","to":"v1"}`) // not in control
	if got := v1.take(); len(got) != 1 || got[0].Type != TypeRefused {
		t.Fatalf("handover by a watcher: %+v", got)
	}
	v3.do(`{"type":"handover","to":"v9"}`)
	if got := v3.take(); len(got) != 1 || got[0].Type != TypeError || !strings.Contains(got[0].Error, `"v9"`) {
		t.Fatalf("handover to nobody: %+v", got)
	}
}

func TestIdleTakeover(t *testing.T) {
	h := newHarness(t, Config{IdleTakeover: 10 * time.Second})
	v1, v2 := h.join(""), h.join("")
	v1.take()
	h.clk.Add(5 * time.Second)
	v1.do(`{"type":"move","x":0,"y":0}`)
	h.clk.Add(9 * time.Second)
	v2.do(`{"type":"request"}`)
	if got := v1.take(); got[0].Type != TypeRequest || got[1].IdleMs != 9000 {
		t.Fatalf("after 9 s idle: %+v", got)
	}
	h.clk.Add(time.Second)
	v2.do(`{"type":"request"}`)
	if st := v1.lastState(); st.Controller != "v2" || st.IdleMs != 0 {
		t.Fatalf("after 10 s idle: %+v", st)
	}
	if h.logged(`why="requested from an idle controller"`) != 1 {
		t.Fatalf("log:\n%s", h.log)
	}
}

// A controller's channel closing releases what it held and passes control on.
func TestControllerLeavingPassesControl(t *testing.T) {
	h := newHarness(t, Config{})
	v1, v2, v3 := h.join(""), h.join(""), h.join("")
	v1.do(`{"type":"key","code":"ControlLeft","down":true}`)
	v1.do(`{"type":"button","button":2,"down":true}`)
	v3.do(`{"type":"request"}`)
	h.inj.take()
	v1.take()
	v1.m.leave()
	eq(t, "desktop", h.inj.take(), []string{"release"})
	if st := v2.lastState(); st.Controller != "v3" || len(st.Viewers) != 2 {
		t.Fatalf("state %+v", st)
	}
	if got := v1.types(); len(got) != 0 {
		t.Fatalf("the viewer that left was sent %q", got)
	}
	v1.m.leave() // twice: nothing
	v3.m.leave()
	if st := v2.lastState(); st.Controller != "" {
		t.Fatalf("the controller left, nobody waiting: %+v", st)
	}
	if err := v1.m.handle([]byte(`{"type":"request"}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("a message after leaving: %v", err)
	}
}

// The controller's keys and buttons are tracked: repeats are dropped, and a failed
// ReleaseAll still lets go of each one.
func TestHeldKeys(t *testing.T) {
	h := newHarness(t, Config{})
	v1, _ := h.join(""), h.join("")
	h.inj.take()
	v1.do(`{"type":"key","code":"KeyB","down":true}`)
	v1.do(`{"type":"key","code":"KeyB","down":true}`) // auto-repeat
	v1.do(`{"type":"key","code":"KeyB","down":false}`)
	v1.do(`{"type":"key","code":"KeyB","down":false}`)
	v1.do(`{"type":"button","button":1,"down":true}`)
	v1.do(`{"type":"button","button":1,"down":true}`)
	eq(t, "desktop", h.inj.take(), []string{"key 48 true", "key 48 false", "button 0x112 true"})

	v1.do(`{"type":"key","code":"ShiftRight","down":true}`)
	v1.do(`{"type":"key","code":"KeyA","down":true}`)
	h.inj.failing("release", true)
	h.inj.failing("key", true) // a failed press still counts as held: the desktop may have it
	v1.do(`{"type":"key","code":"KeyC","down":true}`)
	h.inj.failing("key", false)
	h.inj.take()
	v1.do(`{"type":"release"}`)
	eq(t, "desktop", h.inj.take(), []string{"release", "key 30 false", "key 46 false", "key 54 false", "button 0x112 false"})
	h.inj.failing("release", false)
	v1.do(`{"type":"key","code":"KeyA","down":true}`) // released, so it goes down again
	v1.do(`{"type":"handover","to":"v2"}`)
	eq(t, "desktop", h.inj.take(), []string{"key 30 true", "release"})
	if st := h.c.Status(); st.InjectErrors != 2 {
		t.Fatalf("inject errors %d, want 2", st.InjectErrors)
	}
}

// Input from a viewer not in control is refused: told once a second, logged as often.
func TestRefusalsAreRateLimited(t *testing.T) {
	h := newHarness(t, Config{})
	_, v2 := h.join("ctl"), h.join("tokW")
	h.inj.take()
	v2.take()
	for range 5 {
		v2.do(`{"type":"move","x":0.1,"y":0.1}`)
		h.clk.Add(100 * time.Millisecond)
	}
	v2.do(`{"type":"release"}`) // pages send it on blur: not refused
	if got := v2.take(); len(got) != 1 || got[0].Type != TypeRefused || got[0].Reason != "not in control" {
		t.Fatalf("replies %+v", got)
	}
	h.clk.Add(500 * time.Millisecond)
	v2.do(`{"type":"key","code":"KeyA","down":true}`)
	v2.do(`{"type":"clipboard","text":"x"}`)
	eq(t, "replies a second later", v2.types(), []string{TypeRefused})
	eq(t, "desktop", h.inj.take(), nil)
	if n := h.logged(`msg="control: input refused: not in control" viewer=v2 token=tokW`); n != 2 {
		t.Fatalf("%d refusals logged, want 2:\n%s", n, h.log)
	}
	if st := h.c.Status(); st.Viewers[1].Refused != 7 {
		t.Fatalf("status %+v", st.Viewers[1])
	}
}

func TestLimits(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		h := newHarness(t, Config{})
		v := h.join("")
		v.take()
		v.do(`{"type":"text","text":"` + strings.Repeat("a", MaxMessage) + `"}`)
		if got := v.take(); len(got) != 1 || got[0].Type != TypeError || !strings.Contains(got[0].Error, "too large") {
			t.Fatalf("replies %+v", got)
		}
		v.do(`{"type":"key","code":"Hyper","down":true}`)
		if got := v.take(); len(got) != 1 || !strings.Contains(got[0].Error, `unknown key code "Hyper"`) {
			t.Fatalf("replies %+v", got)
		}
		if err := v.m.handleBinary([]byte{1, 2}); err != nil {
			t.Fatal(err)
		}
		if got := v.take(); len(got) != 1 || !strings.Contains(got[0].Error, "binary") {
			t.Fatalf("replies %+v", got)
		}
		eq(t, "desktop", h.inj.take(), []string{"release"})
	})
	t.Run("rate", func(t *testing.T) {
		h := newHarness(t, Config{Rate: 40}) // a bucket of 10, 40 a second
		v := h.join("")
		h.inj.take()
		for range 15 {
			v.do(`{"type":"move","x":1,"y":1}`)
		}
		h.clk.Add(100 * time.Millisecond) // 4 more
		for range 5 {
			v.do(`{"type":"move","x":1,"y":1}`)
		}
		if n := len(h.inj.take()); n != 14 {
			t.Fatalf("%d moves injected, want 14", n)
		}
		if st := h.c.Status(); st.Viewers[0].Dropped != 6 {
			t.Fatalf("dropped %d, want 6", st.Viewers[0].Dropped)
		}
		if n := h.logged("over the rate limit"); n != 1 {
			t.Fatalf("%d warnings in 100 ms, want 1", n)
		}
	})
	t.Run("errors", func(t *testing.T) {
		h := newHarness(t, Config{})
		v := h.join("")
		for range maxErrors {
			v.do(`{"type":"nonsense"}`)
		}
		h.clk.Add(errorWindow) // the first 20 are out of the window
		for range maxErrors {
			v.do(`{`)
		}
		if got := slices.DeleteFunc(v.types(), func(s string) bool { return s == TypeState }); len(got) != 2*maxErrors || got[0] != TypeError {
			t.Fatalf("replies %q", got)
		}
		if err := v.m.handle([]byte(`{"type":"move"}`)); !errors.Is(err, ErrTooManyErrors) {
			t.Fatalf("error %d in 10 s: %v", maxErrors+1, err)
		}
	})
	t.Run("viewers", func(t *testing.T) {
		h := newHarness(t, Config{MaxViewers: 2})
		v1, _ := h.join(""), h.join("")
		if _, err := h.c.join(auth.Access{}, func([]byte) error { return nil }, slog.New(h.c.log.Handler())); !errors.Is(err, ErrTooManyViewers) {
			t.Fatalf("third viewer: %v", err)
		}
		v1.m.leave()
		h.join("") // room again
	})
}

func TestClipboardGoesToTheControllerOnly(t *testing.T) {
	h := newHarness(t, Config{})
	v1, v2 := h.join(""), h.join("")
	h.inj.clip <- "from the desktop"
	if o := v1.waitFor(TypeClipboard); o.Text != "from the desktop" {
		t.Fatalf("controller got %+v", o)
	}
	// Sent under the same lock as the controller's: v2 had it by now if it ever would.
	for _, o := range v2.take() {
		if o.Type == TypeClipboard {
			t.Fatal("a watcher got the clipboard")
		}
	}
	v1.do(`{"type":"clipboard","text":"mine"}`)
	h.inj.clip <- "mine" // the desktop reports the controller's own text: not sent back
	h.inj.clip <- "next"
	if o := v1.waitFor(TypeClipboard); o.Text != "next" {
		t.Fatalf("controller got %+v after its own text", o)
	}
	v1.do(`{"type":"handover","to":"v2"}`)
	if o := v2.waitFor(TypeClipboard); o.Text != "next" {
		t.Fatalf("the new controller got %+v", o)
	}
	h.inj.clip <- strings.Repeat("x", MaxClipboard+1) // too large: not forwarded, and forgotten
	h.inj.clip <- "small"
	if o := v2.waitFor(TypeClipboard); o.Text != "small" {
		t.Fatalf("after a large clipboard: %+v", o)
	}
	for _, o := range v1.take() {
		if o.Type == TypeClipboard {
			t.Fatalf("the former controller got %+v", o)
		}
	}
}

func TestClose(t *testing.T) {
	h := newHarness(t, Config{})
	v := h.join("")
	v.do(`{"type":"key","code":"KeyA","down":true}`)
	h.inj.take()
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	eq(t, "desktop", h.inj.take(), []string{"release", "close"})
	if err := v.m.handle([]byte(`{"type":"key","code":"KeyA","down":false}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("input after Close: %v", err)
	}
	if _, err := h.c.join(auth.Access{}, v.send, slog.New(h.c.log.Handler())); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after Close: %v", err)
	}
	v.m.leave()
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	eq(t, "desktop after leaving and closing again", h.inj.take(), nil)
	select {
	case h.inj.clip <- "after close": // the forwarding goroutine is gone: nobody reads
		t.Fatal("the clipboard is still read after Close")
	case <-time.After(20 * time.Millisecond): // not synchronization: a bounded check that nothing happens
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t, Config{})
	v1, v2 := h.join("tok1"), h.join("")
	v2.do(`{"type":"request"}`)
	v2.do(`{"type":"move","x":0,"y":0}`)
	v1.do(`{"type":"what"}`)
	v1.do(`{"type":"handover","to":"v2"}`)
	v1.do(`{"type":"request"}`)
	st := h.c.Status()
	want := Status{
		Controller: "v2", Requests: []string{"v1"}, Handovers: 2,
		Viewers: []ViewerStatus{
			{ID: "v1", Name: "tok1 (v1)", TokenID: "tok1", Since: t0, Errors: 1},
			{ID: "v2", Name: "local (v2)", Since: t0, Refused: 1},
		},
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("status\n got %+v\nwant %+v", st, want)
	}
}

// The cost of one message from the controller, injection excluded (the fake's).
func BenchmarkHandleMove(b *testing.B) {
	c := newControl(nopInjector{}, Config{Rate: 1e9}, slog.New(slog.DiscardHandler), time.Now)
	defer c.Close()
	m, err := c.join(auth.Access{}, func([]byte) error { return nil }, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(`{"type":"move","x":0.5123,"y":0.25}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.handle(msg); err != nil {
			b.Fatal(err)
		}
	}
}

type nopInjector struct{}

func (nopInjector) MoveAbs(x, y float64) error                      { return nil }
func (nopInjector) Button(code uint32, down bool) error             { return nil }
func (nopInjector) Scroll(dx, dy float64, v120x, v120y int32) error { return nil }
func (nopInjector) Key(code uint32, down bool) error                { return nil }
func (nopInjector) Type(text string) error                          { return nil }
func (nopInjector) SetClipboard(text string) error                  { return nil }
func (nopInjector) Clipboard() <-chan string                        { return nil }
func (nopInjector) ReleaseAll() error                               { return nil }
func (nopInjector) Close() error                                    { return nil }
