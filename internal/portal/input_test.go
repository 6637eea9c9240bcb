package portal

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/p2pcast/p2pcast/internal/portal/portaltest"
)

// inputCalls renders the input calls the double received, one line each, without the
// session and options (checked separately).
func inputCalls(t *testing.T, p *portaltest.Portal, session dbus.ObjectPath) []string {
	t.Helper()
	var out []string
	for _, c := range p.Calls() {
		name := strings.TrimPrefix(c.Method, ifaceRemoteDesktop+".")
		if !strings.HasPrefix(name, "Notify") {
			continue
		}
		if c.Args[0] != session {
			t.Errorf("%s on %v, want %s", name, c.Args[0], session)
		}
		line := name
		for _, a := range c.Args[2:] {
			line += fmt.Sprintf(" %v", a)
		}
		if opts := c.Args[1].(map[string]dbus.Variant); len(opts) > 0 {
			line += fmt.Sprintf(" %v", opts)
		}
		out = append(out, line)
	}
	return out
}

func TestInput(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	s := dial(t, bus, Options{})
	p.Reset()

	steps := []struct {
		do   func() error
		want []string
	}{
		{func() error { return s.MoveAbs(0.5, 0.25) }, []string{"NotifyPointerMotionAbsolute 42 960 270"}},
		{func() error { return s.MoveAbs(-1, 2) }, []string{"NotifyPointerMotionAbsolute 42 0 1080"}}, // clamped
		{func() error { return s.Button(0x110, true) }, []string{"NotifyPointerButton 272 1"}},
		{func() error { return s.Key(30, true) }, []string{"NotifyKeyboardKeycode 30 1"}},
		{func() error { return s.Key(42, true) }, []string{"NotifyKeyboardKeycode 42 1"}},
		{func() error { return s.Key(42, false) }, []string{"NotifyKeyboardKeycode 42 0"}},
		// A wheel notch scrolls one discrete step (not a smooth scroll as well).
		{func() error { return s.Scroll(0, 15, 0, 120) }, []string{"NotifyPointerAxisDiscrete 0 1"}},
		{func() error { return s.Scroll(-30, 0, -240, 0) }, []string{"NotifyPointerAxisDiscrete 1 -2"}},
		// High-resolution wheels: thirds of a notch add up to one.
		{func() error { return s.Scroll(0, 5, 0, 40) }, nil},
		{func() error { return s.Scroll(0, 5, 0, 40) }, nil},
		{func() error { return s.Scroll(0, 5, 0, 40) }, []string{"NotifyPointerAxisDiscrete 0 1"}},
		// A change of direction drops the remainder of the other way.
		{func() error { return s.Scroll(0, 5, 0, 60) }, nil},
		{func() error { return s.Scroll(0, -15, 0, -120) }, []string{"NotifyPointerAxisDiscrete 0 -1"}},
		// No wheel: smooth, finished.
		{func() error { return s.Scroll(3.5, -2, 0, 0) }, []string{"NotifyPointerAxis 3.5 -2 map[finish:true]"}},
		{func() error { return s.Type("a\u00e9\u20ac\n\tж\r😀") }, []string{
			"NotifyKeyboardKeysym 97 1", "NotifyKeyboardKeysym 97 0", // Latin-1 as itself
			"NotifyKeyboardKeysym 233 1", "NotifyKeyboardKeysym 233 0",
			"NotifyKeyboardKeysym 16785580 1", "NotifyKeyboardKeysym 16785580 0", // 0x010020ac
			"NotifyKeyboardKeysym 65293 1", "NotifyKeyboardKeysym 65293 0", // Return
			"NotifyKeyboardKeysym 65289 1", "NotifyKeyboardKeysym 65289 0", // Tab
			"NotifyKeyboardKeysym 16778294 1", "NotifyKeyboardKeysym 16778294 0", // 0x01000436
			"NotifyKeyboardKeysym 16905728 1", "NotifyKeyboardKeysym 16905728 0", // 0x0101f600; \r skipped
		}},
		// Released in order: keys, then buttons.
		{s.ReleaseAll, []string{"NotifyKeyboardKeycode 30 0", "NotifyPointerButton 272 0"}},
		{s.ReleaseAll, nil},
	}
	for i, st := range steps {
		p.Reset()
		if err := st.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := inputCalls(t, p, s.handle); !reflect.DeepEqual(got, st.want) {
			t.Errorf("step %d:\n got %q\nwant %q", i, got, st.want)
		}
	}

	p.Reset()
	if err := s.Type(strings.Repeat("x", MaxText+1)); err == nil {
		t.Error("Type accepted more than MaxText runes")
	}
	if err := s.Type("\xff"); err == nil {
		t.Error("Type accepted invalid UTF-8")
	}
	if c := p.Calls(); len(c) != 0 {
		t.Errorf("refused Type sent %d calls", len(c))
	}

	// A long text arrives whole and in order.
	p.Reset()
	text := strings.Repeat("abc\u0436", MaxText/4)
	begin := time.Now()
	if err := s.Type(text); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	got := inputCalls(t, p, s.handle)
	if len(got) != 2*MaxText {
		t.Fatalf("%d keysym calls, want %d", len(got), 2*MaxText)
	}
	for i, r := range []rune(text) {
		sym, _ := keysym(r)
		if want := fmt.Sprintf("NotifyKeyboardKeysym %d 1", sym); got[2*i] != want {
			t.Fatalf("call %d: %q, want %q", 2*i, got[2*i], want)
		}
	}
	t.Logf("Type of %d runes (%d calls): %v", MaxText, 2*MaxText, took)
}

func TestCloseReleasesHeld(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	s := dial(t, bus, Options{})
	if err := s.Key(29, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Button(0x111, true); err != nil {
		t.Fatal(err)
	}
	handle := s.handle
	p.Reset()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		ifaceRemoteDesktop + ".NotifyKeyboardKeycode",
		ifaceRemoteDesktop + ".NotifyPointerButton",
		ifaceSession + ".Close",
	}
	calls := p.Calls()
	if got := methods(calls); !reflect.DeepEqual(got, want) {
		t.Fatalf("Close called %v, want %v", got, want)
	}
	if calls[2].Path != handle {
		t.Errorf("closed %s, want %s", calls[2].Path, handle)
	}
}

func TestKeysym(t *testing.T) {
	for _, c := range []struct {
		r    rune
		sym  uint32
		kept bool
	}{
		{'a', 0x61, true}, {' ', 0x20, true}, {'~', 0x7e, true},
		{0xa0, 0xa0, true}, {'ÿ', 0xff, true}, // Latin-1 keysyms are the code points
		{'\n', 0xff0d, true}, {'\t', 0xff09, true},
		{'\r', 0, false}, {0x7f, 0, false}, {0x85, 0, false}, {0x1b, 0, false},
		{'Ā', 0x01000100, true}, {'€', 0x010020ac, true}, {'😀', 0x0101f600, true},
	} {
		sym, kept := keysym(c.r)
		if sym != c.sym || kept != c.kept {
			t.Errorf("keysym(%U) = %#x %v, want %#x %v", c.r, sym, kept, c.sym, c.kept)
		}
	}
}

func TestNotches(t *testing.T) {
	var acc int32
	for _, c := range []struct{ v120, steps, acc int32 }{
		{120, 1, 0}, {100, 0, 100}, {100, 1, 80}, {-30, 0, -30}, {-100, -1, -10}, {360, 3, 0},
	} {
		if got := notches(&acc, c.v120); got != c.steps || acc != c.acc {
			t.Errorf("notches(+%d) = %d, remainder %d; want %d, %d", c.v120, got, acc, c.steps, c.acc)
		}
	}
}

func TestClipboard(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	s := dial(t, bus, Options{})

	if err := s.SetClipboard("from the viewer ✓"); err != nil {
		t.Fatal(err)
	}
	sel := p.Calls("SetSelection")
	if len(sel) != 1 {
		t.Fatalf("%d SetSelection calls", len(sel))
	}
	if got := option(t, sel[0], "mime_types"); !reflect.DeepEqual(got, []string{mimeUTF8, mimePlain}) {
		t.Errorf("mime_types %v", got)
	}
	text, err := p.Paste(ctxFor(t), mimeUTF8)
	if err != nil || text != "from the viewer ✓" {
		t.Fatalf("pasted %q, %v", text, err)
	}

	p.SetDesktopClipboard("copied on the desktop")
	select {
	case got := <-s.Clipboard():
		if got != "copied on the desktop" {
			t.Errorf("Clipboard() = %q", got)
		}
	case <-time.After(testTimeout):
		t.Fatal("Clipboard() did not deliver the desktop's text")
	}
	if rd := p.Calls("SelectionRead"); len(rd) != 1 || rd[0].Args[1] != mimeUTF8 {
		t.Errorf("SelectionRead calls %v, want one for %s", rd, mimeUTF8)
	}
	// Someone else owns the clipboard now: a paste is answered with failure.
	if _, err := p.Paste(ctxFor(t), mimeUTF8); err == nil {
		t.Error("the session still offered its old text")
	}
}

func TestClipboardUnsupported(t *testing.T) {
	for name, mod := range map[string]func(*portaltest.Config){
		"no interface":    func(c *portaltest.Config) { c.ClipboardVersion = 0 },
		"user refused it": func(c *portaltest.Config) { c.ClipboardEnabled = false },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := portaltest.Desktop()
			mod(&cfg)
			bus, p := start(t, cfg)
			s := dial(t, bus, Options{})
			err := s.SetClipboard("x")
			if !errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, ErrNoClipboard) {
				t.Fatalf("SetClipboard: %v, want ErrNoClipboard wrapping ErrUnsupported", err)
			}
			if cfg.ClipboardVersion == 0 && len(p.Calls("RequestClipboard")) != 0 {
				t.Error("RequestClipboard called without the interface")
			}
			p.SetDesktopClipboard("ignored")
			select {
			case got := <-s.Clipboard():
				t.Errorf("Clipboard() sent %q when unsupported", got)
			default:
			}
		})
	}
}
