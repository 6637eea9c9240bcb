// Package portaltest is a test double of xdg-desktop-portal for tests of the portal client and
// of what is wired to it: a private dbus-daemon (StartBus) and a Go service owning
// org.freedesktop.portal.Desktop (New) with ScreenCast, RemoteDesktop and Clipboard, answering
// through Request objects as the real portal does and recording every call made to it. The
// real portal cannot run on machines without DMA-BUF (xdg-desktop-portal-wlr needs it).
package portaltest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bus is a private session bus: a dbus-daemon of its own, no activatable services.
type Bus struct {
	// Address is the bus's D-Bus address (unix:path=...).
	Address string
}

// busConfig lets everyone talk to everyone and own any name, and activates nothing: a name
// nobody owns is really absent (ErrNoPortal), whatever is installed on the machine.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// StartBus starts a dbus-daemon for the test and stops it (by PID) and removes its socket
// directory when the test ends. It skips the test when dbus-daemon is not installed.
func StartBus(t testing.TB) *Bus {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon is not installed (Debian: apt-get install dbus-daemon); the portal tests need a private bus")
	}
	// A short directory: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "portaltest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, filepath.Join(dir, "bus"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--print-address")
	var stderr bytes.Buffer // shown when the test fails: the daemon warns about fd limits as root
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // this daemon, by its PID
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon (pid %d): %s", pid, stderr.String())
		}
	})
	// The daemon prints its address once it listens.
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatalf("dbus-daemon (pid %d) printed no address", pid)
		}
		return &Bus{Address: addr}
	case <-time.After(10 * time.Second):
		t.Fatalf("dbus-daemon (pid %d) did not start within 10 s", pid)
	}
	return nil
}
