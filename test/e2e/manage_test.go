//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/test/testbin"
)

// startHubProc runs `p2pcast hub` on loopback with an admin credential file, stopped (by
// its PID) when the test ends; it returns the hub's page URL.
func startHubProc(t *testing.T, data, adminFile string) string {
	t.Helper()
	url, _ := startHubProcess(t, data, adminFile)
	return url
}

// startHubProcess is startHubProc that also returns the process.
func startHubProcess(t *testing.T, data, adminFile string) (string, *device) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testbin.Dir(t), "p2pcast"), "hub", "--data", data, "--http", freePort(t),
		"--public-ip", "127.0.0.1", "--turn-port", "-1", "--admin-token-file", adminFile)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &device{cmd: cmd}
	t.Cleanup(h.stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the hub printed no URL: %v", err)
	}
	return strings.TrimSpace(line), h
}

// pageTab opens url in a tab that records CSP violations (recordViolations) from the start.
func pageTab(t *testing.T, b *browser.Browser, url string) *browser.Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tab, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tab.Close)
	addScript := func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(c, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(tab.Context(), addScript); err != nil {
		t.Fatal(err)
	}
	if err := tab.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	return tab
}

// eval runs expr in tab and returns its value.
func eval[T any](t *testing.T, tab *browser.Page, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := browser.Eval[T](ctx, tab, expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitPage polls expr in tab until it is true.
func waitPage(t *testing.T, tab *browser.Page, what, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !eval[bool](t, tab, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (error shown: %q)", what, within,
				eval[string](t, tab, `document.getElementById('error')?.textContent || ''`))
		}
		time.Sleep(100 * time.Millisecond) // polling the page's state: it has no event to await
	}
}

func noCSPViolations(t *testing.T, tab *browser.Page, what string) {
	t.Helper()
	for _, v := range eval[[]string](t, tab, "window.__csp") {
		t.Errorf("%s: CSP violation: %s", what, v)
	}
}

// settingsStatus is the part of /api/status the test reads.
type settingsStatus struct {
	Settings struct {
		Stream struct {
			Bitrate int64 `json:"bitrate"`
		} `json:"stream"`
	} `json:"settings"`
	Record struct {
		Mode      string `json:"mode"`
		Recording bool   `json:"recording"`
	} `json:"record"`
}

// TestManagePages: the hub's admin page enrolls a device (its key shown once) and mints a
// viewer token (with a QR code); the device, started with that key, LAN tokens and no tokenless
// management (--ops-allow none), is managed from /manage with a control token: a new bitrate
// and recording mode show in /api/status at once. The admin's token then plays the device
// through the hub. Both pages run under the servers' CSP.
func TestManagePages(t *testing.T) {
	dir := t.TempDir()
	hubData, devData, rec := filepath.Join(dir, "hub"), filepath.Join(dir, "dev"), filepath.Join(dir, "rec")
	adminFile := filepath.Join(dir, "admin-token")
	hubURL := startHubProc(t, hubData, adminFile)
	cred, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)

	// The admin page: the credential typed in, a device enrolled.
	admin := pageTab(t, b, hubURL+"admin")
	waitPage(t, admin, "credential form", `!document.getElementById('cred-form').hidden`, 10*time.Second)
	eval[bool](t, admin, fmt.Sprintf(`(() => { document.getElementById('cred').value = %q;
	  document.getElementById('cred-form').requestSubmit(); return true; })()`, strings.TrimSpace(string(cred))))
	waitPage(t, admin, "admin page loaded", `document.body.dataset.loaded === '1'`, 10*time.Second)
	eval[bool](t, admin, `(() => { document.getElementById('enroll-id').value = 'cam1';
	  document.getElementById('enroll-form').requestSubmit(); return true; })()`)
	waitPage(t, admin, "device enrolled", `/p2pk\w*_/.test(document.getElementById('enrolled').textContent)`, 10*time.Second)
	text := eval[string](t, admin, `document.getElementById('enrolled').textContent`)
	var key string
	for _, f := range strings.Fields(text) {
		if strings.HasPrefix(f, "p2pk") {
			key = f
		}
	}
	keyFile := filepath.Join(dir, "cam1.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The device, joined to the hub, LAN tokens signed by its own key.
	d := startDevice(t, freePort(t), "--hub", "ws"+strings.TrimPrefix(strings.TrimSuffix(hubURL, "/"), "http"), "--id", "cam1",
		"--key-file", keyFile, "--lan-auth", "--data", devData, "--ops-allow", "none", "--record-dir", rec, "--size", "640x360")
	out, err := exec.Command(filepath.Join(testbin.Dir(t), "p2pcast"), "token", "--data", devData, "--device", "cam1",
		"--grant", "view,control", "--ttl", "10m").Output()
	if err != nil {
		t.Fatal(err)
	}
	var control string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "eyJ") {
			control = f
		}
	}
	status := func() settingsStatus {
		t.Helper()
		req, _ := http.NewRequest("GET", d.url+"api/status", nil)
		req.Header.Set("Authorization", "Bearer "+control)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st settingsStatus
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.Settings.Stream.Bitrate != 2_000_000 || st.Record.Mode != "continuous" {
		t.Fatalf("before: %+v", st)
	}

	// /manage without a token asks for one (tokenless management is off: --ops-allow none).
	manage := pageTab(t, b, d.url+"manage")
	waitPage(t, manage, "token form", `!document.getElementById('token-form').hidden`, 10*time.Second)
	noCSPViolations(t, manage, "/manage")
	if err := manage.Navigate(context.Background(), d.url+"manage#token="+control); err != nil {
		t.Fatal(err)
	}
	waitPage(t, manage, "manage page loaded", `document.body.dataset.loaded === '1' && !document.getElementById('record-form').hidden`, 10*time.Second)
	if u := eval[string](t, manage, `location.href`); strings.Contains(u, "token") {
		t.Errorf("the token stayed in the address bar: %s", u)
	}
	eval[bool](t, manage, `(() => { document.getElementById('bitrate').value = '1M';
	  document.getElementById('stream-form').requestSubmit(); return true; })()`)
	waitPage(t, manage, "bitrate applied", `document.getElementById('result').textContent.includes('bitrate')`, 10*time.Second)
	eval[bool](t, manage, `(() => { document.getElementById('record-mode').value = 'manual';
	  document.getElementById('record-form').requestSubmit(); return true; })()`)
	waitPage(t, manage, "record mode applied", `document.getElementById('result').textContent.includes('record')`, 10*time.Second)
	if st := status(); st.Settings.Stream.Bitrate != 1_000_000 || st.Record.Mode != "manual" || st.Record.Recording {
		t.Fatalf("after the edits: %+v", st)
	}
	waitPage(t, manage, "the log shows the reload", `document.getElementById('logs').textContent.includes('configuration reloaded')`, 10*time.Second)
	noCSPViolations(t, manage, "/manage with a token")

	// A viewer token from the admin page plays the device through the hub.
	eval[bool](t, admin, `(() => { document.getElementById('mint-devices').value = 'cam1';
	  document.getElementById('mint-grants').value = 'view';
	  document.getElementById('mint-form').requestSubmit(); return true; })()`)
	waitPage(t, admin, "token minted", `!document.getElementById('minted').hidden && document.getElementById('minted-qr').complete &&
	  document.getElementById('minted-qr').naturalWidth > 0`, 10*time.Second)
	link := eval[string](t, admin, `document.getElementById('minted-link').href`)
	if !strings.Contains(link, "?device=cam1#token=eyJ") {
		t.Fatalf("minted link %s", link)
	}
	noCSPViolations(t, admin, "/admin")
	viewer := openTab(t, b, link)
	waitFor(t, viewer, "the minted token plays through the hub", 30*time.Second, func(s pageStats) bool { return s.FramesDecoded >= 30 })
	// The audit log shows what the admin did.
	waitPage(t, admin, "audit log", `(() => { document.getElementById('audit-form').requestSubmit();
	  const a = document.getElementById('audit').textContent;
	  return a.includes('admin_device_added') && a.includes('admin_token_minted'); })()`, 10*time.Second)
}

// TestManageReloadOnSIGHUP: a device started from a config file, a Chromium viewer playing; the
// file changes (bitrate, recording mode, motion detection on) and the device gets SIGHUP: the
// new settings show in /api/status, the producer restarts with motion detection, and the page
// keeps its session (frames keep coming). It logs how long the picture paused.
func TestManageReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "device.toml")
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	recDir := filepath.Join(dir, "rec")
	write("bitrate = \"2M\"\nrecord = \"continuous\"\nrecord-dir = \"" + recDir + "\"\n")
	d := startDevice(t, freePort(t), "--config", file, "--size", "640x360")
	b := newBrowser(t)
	tab := openTab(t, b, d.url)
	s0 := waitFor(t, tab, "page decodes", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 30 })

	write("bitrate = \"1M\"\nrecord = \"manual\"\nrecord-dir = \"" + recDir + "\"\nmotion = true\nmotion-sensitivity = 80\n")
	hup := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	type status struct {
		Settings struct {
			Stream struct {
				Bitrate int64 `json:"bitrate"`
			} `json:"stream"`
			Motion struct {
				Enabled     bool `json:"enabled"`
				Sensitivity int  `json:"sensitivity"`
			} `json:"motion"`
		} `json:"settings"`
		Record struct {
			Mode string `json:"mode"`
		} `json:"record"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(d.url + "api/status")
		if err != nil {
			t.Fatal(err)
		}
		var st status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if st.Settings.Stream.Bitrate == 1_000_000 && st.Record.Mode == "manual" && st.Settings.Motion.Enabled && st.Settings.Motion.Sensitivity == 80 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: %+v", st)
		}
		time.Sleep(100 * time.Millisecond) // polling the device's state: it has no event to await
	}
	after := waitFor(t, tab, "frames keep coming after the reload", 20*time.Second, func(s pageStats) bool {
		return s.FramesDecoded > s0.FramesDecoded+90
	})
	if after.Sessions != s0.Sessions {
		t.Errorf("the page started a new session (%v → %v): the reload should be invisible to it", s0.Sessions, after.Sessions)
	}
	t.Logf("reload: 90 more frames decoded %s after SIGHUP (3 s of 30 fps with no pause)", time.Since(hup).Round(10*time.Millisecond))
}

// TestManageHubReloadOnSIGHUP: the admin credential file is rewritten (a rotation) and the hub
// gets SIGHUP: the new credential opens the admin API, the old one no longer does.
func TestManageHubReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	url, h := startHubProcess(t, filepath.Join(dir, "hub"), adminFile)
	old, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(cred string) int {
		req, _ := http.NewRequest("GET", url+"api/admin/devices", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(cred))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(string(old)); c != http.StatusOK {
		t.Fatalf("the credential before: %d", c)
	}
	rotated := "p2pa1_rotated-credential-for-the-e2e-test-0123456789"
	if err := os.WriteFile(adminFile, []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get(rotated) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the rotated credential was not taken after SIGHUP")
		}
		time.Sleep(100 * time.Millisecond) // polling the hub's state: it has no event to await
	}
	if c := get(string(old)); c != http.StatusUnauthorized {
		t.Fatalf("the old credential after the rotation: %d", c)
	}
}
