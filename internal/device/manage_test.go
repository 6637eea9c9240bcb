package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/record"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// rateProducer feeds the test stream from a producer that takes BITRATE and FPS messages,
// and reports each it gets.
func rateProducer(t *testing.T, sock string) <-chan ipc.Control {
	t.Helper()
	aus := testStream(t)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); c.Close() })
	w := ipc.NewWriter(c, ipc.Version1)
	if err := w.WriteHello(ipc.Hello{Kind: ipc.KindVideo, Codec: ipc.CodecH264, Width: 1280, Height: 720, FPSNum: 30, FPSDen: 1,
		Bitrate: 2_000_000, Capabilities: ipc.CapKeyframe | ipc.CapBitrate | ipc.CapFPS, Name: "go-test"}); err != nil {
		t.Fatal(err)
	}
	controls := make(chan ipc.Control, 64)
	keyframe := make(chan struct{}, 1)
	go func() {
		rd := ipc.NewReader(c)
		for {
			m, err := rd.Next()
			if err != nil {
				return
			}
			ctl, err := ipc.ParseControl(m)
			if err != nil {
				continue
			}
			switch ctl.Type {
			case ipc.TypeKeyframe:
				select {
				case keyframe <- struct{}{}:
				default:
				}
			case ipc.TypeBitrate, ipc.TypeFPS:
				select {
				case controls <- ctl:
				default:
				}
			}
		}
	}()
	go func() {
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-keyframe:
				i = 0
			case <-tick.C:
			}
			now := time.Now().UnixNano()
			if w.WriteFrame(ipc.Frame{Seq: uint32(i), Capture: now, Encoded: now, Data: aus[i%len(aus)]}) != nil {
				return
			}
		}
	}()
	return controls
}

// A reload with a new bitrate and recording mode applies both while a viewer watches: the
// producer is told the new bitrate, the recorder switches mode, and the viewer's session is
// the same one, its frames still coming.
func TestReloadKeepsViewers(t *testing.T) {
	dir := t.TempDir()
	var cfg Config
	r, d := startDevice(t, func(c *Config) {
		c.Record = record.Options{Dir: dir, Mode: record.ModeContinuous}
		cfg = *c
	})
	cfg.HTTPAddr, cfg.SocketPath = d.cfg.HTTPAddr, d.cfg.SocketPath
	controls := rateProducer(t, r.SocketPath)
	watched := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: r.URL + "whep", Frames: 150})
		if err == nil && res.Frames < 150 {
			err = errors.New("too few frames")
		}
		watched <- err
	}()
	before := d.onlySession(t).ID()
	waitRecording(t, d, true)

	cfg.Bitrate = 800_000
	cfg.Record.Mode = record.ModeManual
	cfg.GOP = 3 * time.Second // a producer flag: needs a restart
	applied, restart, err := d.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "bitrate") || !slices.Contains(applied, "record") || !slices.Equal(restart, []string{"GOP"}) {
		t.Fatalf("applied %v, needs restart %v", applied, restart)
	}
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case c := <-controls:
			got = c.Type == ipc.TypeBitrate && c.Bitrate == 800_000
		case <-deadline:
			t.Fatal("the producer was not told the new bitrate")
		}
	}
	if st := d.recordStatus(); st.Mode != record.ModeManual || st.Recording {
		t.Fatalf("record status after reload: %+v", st)
	}
	if s := d.onlySession(t); s.ID() != before {
		t.Fatalf("session %s after the reload, %s before", s.ID(), before)
	}
	if err := <-watched; err != nil {
		t.Fatalf("viewer across the reload: %v", err)
	}
	// What the page and /api/status show.
	st := d.manageSettings()
	if st.Stream.Bitrate != 800_000 || st.Record == nil || st.Record.Mode != "manual" {
		t.Fatalf("settings: %+v %+v", st.Stream, st.Record)
	}
	// An invalid configuration changes nothing.
	bad := cfg
	bad.FPS = 0
	if _, _, err := d.Reload(bad); !errors.Is(err, ErrReload) {
		t.Fatalf("bad reload: %v", err)
	}
	if d.settings().FPS != 30 {
		t.Fatal("a refused reload changed the fps")
	}
}

func waitRecording(t *testing.T, d *Device, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := d.recordStatus()
		if st != nil && st.Recording == want && (!want || st.Current != "") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording %v: %+v", want, st)
		}
		time.Sleep(20 * time.Millisecond) // the recorder has no event for a segment opened
	}
}

// Reloaded access lists apply to the next request: a new allowed host, a new --ops-allow.
func TestReloadAccessLists(t *testing.T) {
	var cfg Config
	r, d := startDevice(t, func(c *Config) { cfg = *c })
	cfg.HTTPAddr, cfg.SocketPath = d.cfg.HTTPAddr, d.cfg.SocketPath
	get := func(path, host string) int {
		req, _ := http.NewRequest("GET", r.URL+path, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("healthz", "cam.example"); c != http.StatusForbidden && c != http.StatusMisdirectedRequest && c < 400 {
		t.Fatalf("foreign host before the reload: %d", c)
	}
	cfg.AllowHosts = []string{"cam.example"}
	cfg.OpsAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if _, restart, err := d.Reload(cfg); err != nil || len(restart) != 0 {
		t.Fatalf("reload: %v %v", restart, err)
	}
	if c := get("", "cam.example"); c != http.StatusOK {
		t.Fatalf("allowed host after the reload: %d", c)
	}
	if c := get("healthz", ""); c != http.StatusForbidden {
		t.Fatalf("/healthz from loopback, ops-allow 10/8: %d", c)
	}
	// Tokenless management follows --ops-allow too.
	if c := get("api/manage/settings", ""); c != http.StatusUnauthorized {
		t.Fatalf("/api/manage/settings from loopback, ops-allow 10/8: %d", c)
	}
}

// The management API: tokens with the control grant (or the operator's addresses), JSON
// POSTs only, small bodies, unknown fields refused; an edit goes through Reload.
func TestManageAPI(t *testing.T) {
	r, d, store := lanDevice(t)
	base := strings.TrimSuffix(r.URL, "/")
	control, _ := mint(t, store, "cam1", time.Hour, auth.GrantView, auth.GrantControl)
	view, _ := mint(t, store, "cam1", time.Hour, auth.GrantView)
	do := func(method, path, tok, ctype, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, method, path, tok, ctype, body string
		want                                 int
	}{
		{"view grant", "GET", "/api/manage/settings", view, "", "", http.StatusForbidden},
		{"bad token", "GET", "/api/manage/settings", "p2pt1.nope", "", "", http.StatusUnauthorized},
		{"loopback, no token", "GET", "/api/manage/settings", "", "", "", http.StatusOK},
		{"control", "GET", "/api/manage/viewers", control, "", "", http.StatusOK},
		{"logs", "GET", "/api/manage/logs?n=5", control, "", "", http.StatusOK},
		{"form post", "POST", "/api/manage/settings", control, "application/x-www-form-urlencoded", "fps=5", http.StatusUnsupportedMediaType},
		{"text post", "POST", "/api/manage/settings", control, "text/plain", `{"fps":5}`, http.StatusUnsupportedMediaType},
		{"unknown field", "POST", "/api/manage/settings", control, "application/json", `{"source":"x"}`, http.StatusBadRequest},
		{"too big", "POST", "/api/manage/settings", control, "application/json", `{"bitrate":"` + strings.Repeat("1", 20000) + `"}`, http.StatusRequestEntityTooLarge},
		{"bad value", "POST", "/api/manage/settings", control, "application/json", `{"fps":0}`, http.StatusBadRequest},
		{"no recorder", "POST", "/api/manage/record", control, "application/json", `{"action":"start"}`, http.StatusConflict},
		{"view grant post", "POST", "/api/manage/settings", view, "application/json", `{"fps":5}`, http.StatusForbidden},
		{"edit", "POST", "/api/manage/settings", control, "application/json", `{"fps":25,"bitrate":"1.5M"}`, http.StatusOK},
	} {
		if code, body := do(c.method, c.path, c.tok, c.ctype, c.body); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	// A request a local reverse proxy forwarded is not "this machine".
	fwd, _ := http.NewRequest("GET", base+"/api/manage/settings", nil)
	fwd.Header.Set("X-Forwarded-For", "203.0.113.9")
	if resp, err := http.DefaultClient.Do(fwd); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forwarded, no token: %v %v", resp, err)
	}
	if l := d.settings(); l.FPS != 25 || l.Bitrate != 1_500_000 {
		t.Fatalf("after the edit: fps %d bitrate %d", l.FPS, l.Bitrate)
	}
	// Another site's page cannot post, even from this machine.
	req, _ := http.NewRequest("POST", base+"/api/manage/settings", bytes.NewReader([]byte(`{"fps":20}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", resp, err)
	}
	// The log tail holds the reload's line, and never a secret.
	_, body := do("GET", "/api/manage/logs", control, "", "")
	var logs struct{ Lines []string }
	if err := json.Unmarshal([]byte(body), &logs); err != nil || !strings.Contains(strings.Join(logs.Lines, "\n"), "configuration reloaded") {
		t.Fatalf("logs: %s %v", body, err)
	}
	code, page := do("GET", "/manage", "", "", "")
	if code != http.StatusOK || !strings.Contains(page, "manage.js") {
		t.Fatalf("/manage: %d", code)
	}
}

// The log ring keeps the newest lines, redacts secrets and passes every record on.
func TestLogRing(t *testing.T) {
	ring := newLogRing(3)
	var out bytes.Buffer
	log := slog.New(ring.handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for i := range 5 {
		log.Info("line", "i", i, "key", "p2pk1_secret")
	}
	log.Debug("debug only in the journal")
	got := ring.tail(10)
	if len(got) != 3 || !strings.Contains(got[0], "i=2") || !strings.Contains(got[2], "i=4") {
		t.Fatalf("tail: %q", got)
	}
	if strings.Contains(strings.Join(got, ""), "p2pk1_") {
		t.Fatalf("a secret in the ring: %q", got)
	}
	if !strings.Contains(out.String(), "debug only") || strings.Count(out.String(), "\n") != 6 {
		t.Fatalf("passed on: %s", out.String())
	}
}

// A restarted producer starts with the settings in force: reloaded rates and motion settings
// replace the ones it was started with, the rest stays.
func TestLiveCaptureArgs(t *testing.T) {
	cfg := Defaults()
	cfg.PatternObject = "on=2s,off=3s"
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before := strings.Join(d.liveCaptureArgs("/s"), " ")
	if before != strings.Join(d.captureArgs("/s"), " ") {
		t.Fatalf("no reload yet: %s", before)
	}
	next := cfg
	next.Bitrate, next.FPS = 1_000_000, 15
	next.Motion = Motion{Enabled: true, Sensitivity: 80}
	if _, restart, err := d.Reload(next); err != nil || len(restart) != 0 {
		t.Fatal(restart, err)
	}
	after := strings.Join(d.liveCaptureArgs("/s"), " ")
	for _, want := range []string{"--fps 15", "--bitrate 1000000", "--gop 30", "--pattern-object on=2s,off=3s --motion --motion-sensitivity 80", "--pattern bars"} {
		if !strings.Contains(after, want) {
			t.Errorf("%q lacks %q", after, want)
		}
	}
	select {
	case <-d.manage.restartProducer:
	default:
		t.Error("the producer was not asked to restart")
	}
}

// A device only a hub reaches still serves its management page (its own files) and API on
// --http to this machine, and nothing for viewers.
func TestManageWithoutLAN(t *testing.T) {
	_, url, key, _ := hubFor(t, "cam1")
	r, _ := startDevice(t, func(c *Config) { c.Hub = HubConfig{URL: url, ID: "cam1", Key: key}; c.NoLAN = true })
	if r.URL != "" || r.OpsURL == "" {
		t.Fatalf("ready %+v", r)
	}
	for path, want := range map[string]int{"manage": 200, "manage.js": 200, "manage.css": 200, "api/manage/settings": 200, "api/manage/viewers": 200, "whep": 404, "index.html": 404} {
		resp, err := http.Get(r.OpsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want && !(want == 404 && resp.StatusCode == http.StatusMethodNotAllowed) {
			t.Errorf("GET /%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
