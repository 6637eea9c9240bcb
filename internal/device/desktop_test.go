package device

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/portal/portaltest"
)

// TestDesktopPortalBackend: on a desktop with the portal (a test double of GNOME's on a private
// bus), the wayland source asks it once, runs the producer on the PipeWire node it gave with
// the remote as fd 3, serves the control channel through RemoteDesktop, and keeps the restore
// token so the next start does not ask again.
func TestDesktopPortalBackend(t *testing.T) {
	bus := portaltest.StartBus(t)
	p := portaltest.New(t, bus.Address, portaltest.Desktop())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", bus.Address)
	cfg := Config{Source: "wayland", DesktopBackend: DesktopPortal, DataDir: t.TempDir()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	d, err := openDesktop(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--source", "pipewire", "--pipewire-fd", "3", "--pipewire-node", "42"}; !slices.Equal(d.args, want) {
		t.Errorf("producer args %q; want %q", d.args, want)
	}
	if d.control == nil {
		t.Fatal("no control channel, though the portal granted keyboard and pointer")
	}
	files, err := d.files()
	if err != nil || len(files) != 1 {
		t.Fatalf("files: %v, %v", files, err)
	}
	// The remote the producer would get is the portal's: bytes written reach its end.
	if _, err := files[0].Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(p.PipeWirePeer(0), buf); err != nil || string(buf) != "hi" {
		t.Fatalf("PipeWire remote: read %q, %v", buf, err)
	}
	files[0].Close()
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, portalTokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restore token file: %v %v", fi, err)
	}
	if err := d.control.Close(); err != nil {
		t.Fatal(err)
	}
	d.close()

	// A restart: the same token goes back to the portal.
	p.Reset()
	d, err = openDesktop(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	defer d.control.Close()
	calls := p.Calls("org.freedesktop.portal.RemoteDesktop.SelectDevices")
	if len(calls) != 1 {
		t.Fatalf("SelectDevices calls: %d", len(calls))
	}
	if tok, _ := calls[0].Option("restore_token"); tok == nil || tok == "" {
		t.Errorf("the second start sent no restore token (%v)", tok)
	}
}
