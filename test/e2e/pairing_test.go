//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/testbin"

	"github.com/p2pcast/p2pcast/internal/browser"
)

// TestBrowserPairingLink: a device listening on every address refuses to start without
// authentication; with --pair it prints a pairing link that plays in Chromium (the token moves
// from the URL to the tab's storage), while the same page without the token is refused; the
// pages carry a CSP that the player works under.
func TestBrowserPairingLink(t *testing.T) {
	_, port, _ := net.SplitHostPort(freePort(t))
	addr := "0.0.0.0:" + port
	bin := filepath.Join(testbin.Dir(t), "p2pcast")

	// No authentication on a non-loopback address: usage error, and it says what to do.
	out, err := exec.Command(bin, "device", "--http", addr).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "--pair") {
		t.Fatalf("device on %s without auth: %v\n%s", addr, err, out)
	}

	_, stdout := runDevice(t, addr, "--pair", "--data", t.TempDir(), "--size", "640x360")
	sc := bufio.NewScanner(stdout)
	var link string
	var qrLines int
	for sc.Scan() {
		line := sc.Text()
		if strings.ContainsAny(line, "█▀▄") {
			qrLines++
		}
		if strings.Contains(line, "#token=eyJ") {
			link = strings.TrimSpace(line)
			break
		}
	}
	if link == "" || qrLines < 10 {
		t.Fatalf("no pairing link with a QR code in the output (link %q, %d QR lines)", link, qrLines)
	}
	page, _, _ := strings.Cut(link, "#")
	t.Logf("pairing link %s#token=…", page)

	b := newBrowser(t)
	paired := openTab(t, b, link)
	waitFor(t, paired, "the paired tab decodes", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded >= 30 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if hash, err := browser.Eval[string](ctx, paired, `location.hash`); err != nil || hash != "" {
		t.Errorf("the token stayed in the address bar: %q %v", hash, err)
	}

	// The page without a token (another browser, so nothing is stored) gets no picture, and says why.
	b2 := newBrowser(t)
	stranger := openTab(t, b2, page)
	deadline := time.Now().Add(10 * time.Second)
	for {
		notice, err := browser.Eval[string](ctx, stranger, `document.querySelector('p2pcast-player')?.shadowRoot?.querySelector('.notice')?.textContent ?? ''`)
		if err == nil && strings.Contains(notice, "token") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page without a token shows no refusal (notice %q, %v)", notice, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval of a condition, not synchronisation
	}
	if s := stats(t, stranger); s.FramesDecoded != 0 {
		t.Errorf("the page without a token decoded %v frames", s.FramesDecoded)
	}
}
