package wayland

import (
	"testing"

	"github.com/p2pcast/p2pcast/test/sway"
)

func TestOpen(t *testing.T) {
	s := sway.Start(t)
	d, err := Open(s.Display(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t.Logf("output %s, keymap %s", d.OutputName(), d.KeymapSource())
	d2, err := Open(s.Display(), "HEADLESS-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second: output %s, keymap %s", d2.OutputName(), d2.KeymapSource())
	if err := d2.Close(); err != nil {
		t.Error(err)
	}
	if _, err := Open(s.Display(), "DP-9"); err == nil {
		t.Error("no error for a missing output")
	} else {
		t.Log(err)
	}
}
