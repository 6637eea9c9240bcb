package wayland

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/sway"
)

func receive(t *testing.T, d *Desktop, what string) string {
	t.Helper()
	select {
	case text, ok := <-d.Clipboard():
		if !ok {
			t.Fatalf("%s: clipboard channel closed", what)
		}
		return text
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no clipboard text within 5 s", what)
		return ""
	}
}

func TestClipboard(t *testing.T) {
	s := sway.Start(t)
	a := openDesktop(t, s, "")
	b := openDesktop(t, s, "")

	// A's text reaches B (B reads it from A's source: both directions of a transfer).
	began := time.Now()
	if err := a.SetClipboard("héllo ✓ from A"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, b, "A to B"); got != "héllo ✓ from A" {
		t.Errorf("B got %q", got)
	}
	t.Logf("SetClipboard to another client's Clipboard(): %v", time.Since(began).Round(100*time.Microsecond))
	// A does not hear its own selection back: by the time B has read it, A has seen the
	// selection event (it answered B's read), and it starts no read for its own offers.
	if err := a.c.roundtrip(callTimeout); err != nil {
		t.Fatal(err)
	}
	a.clip.mu.Lock()
	transfers := len(a.clip.transfers)
	a.clip.mu.Unlock()
	select {
	case got := <-a.Clipboard():
		t.Errorf("A heard its own selection back: %q", got)
	default:
	}
	if transfers != 0 {
		t.Errorf("A is reading %d transfers of its own selection", transfers)
	}

	// Another client's selection arrives; larger than a pipe's buffer.
	big := strings.Repeat("0123456789abcdef", 300<<10/16) + "✓"
	if err := b.SetClipboard(big); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, a, "B to A"); got != big {
		t.Errorf("A got %d bytes, want %d", len(got), len(big))
	}

	// A new Desktop is told the current clipboard when it opens.
	c := openDesktop(t, s, "")
	if got := receive(t, c, "initial selection"); got != big {
		t.Errorf("new desktop got %d bytes, want %d", len(got), len(big))
	}

	if err := a.SetClipboard(strings.Repeat("x", MaxClipboard+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("SetClipboard over the limit: %v, want ErrTooLarge", err)
	}
}

// A selection event the reader dispatched just as Close built its teardown (seen once in
// make test: another client's Close cleared the selection at that moment) used to destroy the
// current offer a second time, after Close had: sway ended the connection ("invalid object").
// The event is played here in that order, between the teardown being built and sent.
func TestSelectionDuringCloseDestroysOnce(t *testing.T) {
	s := sway.Start(t)
	a := openDesktop(t, s, "")
	b := openDesktop(t, s, "")
	if err := b.SetClipboard("from B"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, a, "B to A"); got != "from B" {
		t.Fatalf("A got %q", got)
	}
	a.clip.mu.Lock()
	current := a.clip.current
	a.clip.mu.Unlock()
	if current == 0 {
		t.Fatal("A has no current offer")
	}
	teardown := a.clip.destroyMessages()
	a.clip.handleDevice(a.clip.device, dcDeviceSelection, []arg{{u: 0}}) // B's selection went away
	if err := a.c.send(teardown...); err != nil {
		t.Fatal(err)
	}
	if err := a.c.roundtrip(callTimeout); err != nil {
		t.Fatalf("after the teardown: %v", err)
	}
	// A's Close (at cleanup) tears down the rest, the clipboard's objects not again: it fails
	// the test on a protocol error.
}

func TestClipboardLatestWins(t *testing.T) {
	s := sway.Start(t)
	a := openDesktop(t, s, "")
	b := openDesktop(t, s, "")
	for _, text := range []string{"one", "two", "three"} {
		if err := a.SetClipboard(text); err != nil {
			t.Fatal(err)
		}
	}
	// Nobody reads B's channel meanwhile. Once B has seen every selection and finished its
	// transfers (polled: no event says so), only the latest text may be waiting: earlier
	// reads are dropped as stale or replaced in the channel.
	for _, d := range []*Desktop{a, b} {
		if err := d.c.roundtrip(callTimeout); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.clip.mu.Lock()
		n := len(b.clip.transfers)
		b.clip.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still has %d transfers", n)
		}
		time.Sleep(time.Millisecond)
	}
	if got := receive(t, b, "latest"); got != "three" {
		t.Errorf("B has %q waiting, want three", got)
	}
	select {
	case extra := <-b.Clipboard():
		t.Errorf("after the latest, B also has %q", extra)
	default:
	}
}
