//go:build nat

package nat

// The browser half of the NAT test: real headless Chromium inside viewer sites, watching devices
// behind NATs through the hub's web app (web/hub.html, web/player.js in hub mode).
//
// Chromium's DevTools port listens on 127.0.0.1 of the namespace it runs in, which the test
// process (in the machine's own namespace) cannot reach. So the test runs a small browser agent
// inside the viewer's namespace: this very test binary, re-executed there with agentEnv set
// (TestMain sees it and never runs the tests). The agent launches Chromium with
// internal/browser, opens one tab and speaks JSON lines: a request on its stdin
// ({"id":N,"op":"open","url":…} or {"id":N,"op":"eval","expr":…}, a promise is awaited), its
// reply on stdout ({"id":N,"value":…} or {"id":N,"error":…}); the end of stdin closes Chromium and
// the agent. The page's console goes to the agent's stderr, which the test shows when it fails.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/testbin"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/test/natlab"
)

// agentEnv makes the test binary a browser agent; its value is the hub's IP address (the one
// host Chromium may resolve).
const agentEnv = "P2PCAST_BROWSER_AGENT"

// agentOpTimeout bounds one request in the agent.
const agentOpTimeout = 15 * time.Second

// agentPrefix marks the agent's protocol lines on stdout, so stray output cannot be mistaken
// for a reply.
const agentPrefix = "agent: "

func TestMain(m *testing.M) {
	if hubIP := os.Getenv(agentEnv); hubIP != "" {
		os.Exit(runAgent(hubIP, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// agentRequest is one line on the agent's stdin; the reply with the same ID answers it (0 is
// the agent's "ready").
type agentRequest struct {
	ID   int    `json:"id"`
	Op   string `json:"op"` // open, eval
	URL  string `json:"url,omitempty"`
	Expr string `json:"expr,omitempty"`
}

type agentReply struct {
	ID    int             `json:"id"`
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
}

// runAgent is the agent's main: one Chromium with one tab, until stdin ends.
func runAgent(hubIP string, in io.Reader, out, errOut io.Writer) int {
	reply := func(r agentReply) {
		b, _ := json.Marshal(r)
		fmt.Fprintf(out, "%s%s\n", agentPrefix, b)
	}
	ctx := context.Background()
	b, err := browser.Launch(ctx, browser.Options{
		Width: 640, Height: 360,
		// Chromium's start-up lookups of outside hosts fail at once; the hub's IP (in every
		// page URL) is left alone, or the page itself would not load.
		Flags: map[string]any{"host-resolver-rules": "MAP * ~NOTFOUND, EXCLUDE " + hubIP},
	})
	if err != nil {
		reply(agentReply{Error: err.Error()})
		return 1
	}
	defer b.Close()
	page, err := b.NewPage(ctx)
	if err != nil {
		reply(agentReply{Error: err.Error()})
		return 1
	}
	defer page.Close()
	var mu sync.Mutex // console lines come from another goroutine
	page.Console(func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(errOut, "%s console: %s\n", time.Now().Format("15:04:05.000"), msg)
	})
	reply(agentReply{Value: json.RawMessage(`"ready"`)})

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req agentRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			reply(agentReply{ID: -1, Error: "bad request: " + err.Error()})
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, agentOpTimeout)
		r := agentReply{ID: req.ID}
		switch req.Op {
		case "open":
			if err := page.Navigate(rctx, req.URL); err != nil {
				r.Error = err.Error()
			} else {
				r.Value = json.RawMessage(`true`)
			}
		case "eval":
			v, err := browser.Eval[json.RawMessage](rctx, page, req.Expr)
			switch {
			case err != nil:
				r.Error = err.Error()
			case len(v) == 0:
				r.Value = json.RawMessage(`null`)
			default:
				r.Value = v
			}
		default:
			r.Error = "unknown op " + req.Op
		}
		cancel()
		reply(r)
	}
	return 0
}

// agent is the test's handle on a browser agent running in a viewer site. One request at a
// time (the test's goroutine).
type agent struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // protocol lines from stdout
	done   chan struct{} // closed when the process has exited
	stderr *logtest.Buffer
	cancel context.CancelFunc // kills the agent's process group, Chromium with it
	seq    int
}

// startAgent starts an agent in host; ready waits for its browser.
func startAgent(t *testing.T, host *natlab.Host, hubIP net.IP) *agent {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{name: host.Name, lines: make(chan string), done: make(chan struct{}), stderr: &logtest.Buffer{}, cancel: cancel}
	a.cmd = host.Command(ctx, "env", agentEnv+"="+hubIP.String(), exe)
	a.cmd.Stderr = a.stderr
	if a.stdin, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting the browser agent in %s: %v", host.NS, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), agentPrefix); ok {
				select {
				case a.lines <- line:
				case <-ctx.Done():
				}
			}
		}
		_ = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser agent %s (stderr, page console):\n%s", a.name, tail(a.stderr.String(), 8000))
		}
		a.stop()
	})
	return a
}

// stop ends the agent: the end of its stdin closes Chromium and the agent; a kill if that
// takes long.
func (a *agent) stop() {
	_ = a.stdin.Close()
	kill := time.AfterFunc(5*time.Second, a.cancel)
	defer kill.Stop()
	for {
		select {
		case <-a.lines: // replies nobody waits for any more
		case <-a.done:
			a.cancel()
			return
		}
	}
}

// reply waits for the agent's reply to request id; replies to requests given up on are skipped.
func (a *agent) reply(id int, within time.Duration) (json.RawMessage, error) {
	timeout := time.After(within)
	for {
		select {
		case line := <-a.lines:
			var r agentReply
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return nil, fmt.Errorf("agent %s: unreadable reply %q", a.name, line)
			}
			if r.ID != id {
				continue
			}
			if r.Error != "" {
				return nil, errors.New(r.Error)
			}
			return r.Value, nil
		case <-a.done:
			return nil, fmt.Errorf("agent %s exited: %v", a.name, a.cmd.ProcessState)
		case <-timeout:
			return nil, fmt.Errorf("agent %s: no reply in %s", a.name, within)
		}
	}
}

func (a *agent) ready(t *testing.T) {
	t.Helper()
	if _, err := a.reply(0, 30*time.Second); err != nil {
		t.Fatalf("browser in %s: %v", a.name, err)
	}
}

func (a *agent) call(req agentRequest) (json.RawMessage, error) {
	a.seq++
	req.ID = a.seq
	b, _ := json.Marshal(req)
	if _, err := a.stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("agent %s: %w", a.name, err)
	}
	return a.reply(req.ID, agentOpTimeout+5*time.Second)
}

func (a *agent) open(t *testing.T, url string) {
	t.Helper()
	if _, err := a.call(agentRequest{Op: "open", URL: url}); err != nil {
		t.Fatalf("%s: %v", a.name, err)
	}
}

// eval evaluates expr in the page (a promise is awaited) into v.
func (a *agent) eval(expr string, v any) error {
	raw, err := a.call(agentRequest{Op: "eval", Expr: expr})
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// candidate and pageStats mirror window.p2pcast.stats() in web/player.js.
type candidate struct {
	Type          string `json:"type"`
	Address       string `json:"address"`
	Port          int    `json:"port"`
	RelayProtocol string `json:"relayProtocol"`
}

type pageStats struct {
	FramesDecoded    float64  `json:"framesDecoded"`
	FrameWidth       float64  `json:"frameWidth"`
	FrameHeight      float64  `json:"frameHeight"`
	ConnectionState  string   `json:"connectionState"`
	ICEState         string   `json:"iceConnectionState"`
	Sessions         float64  `json:"sessions"`
	ICERestarts      float64  `json:"iceRestarts"`
	LastICERestartMS *float64 `json:"lastIceRestartMs"`
	FirstFrameMS     *float64 `json:"firstFrameMs"`
	Pair             *struct {
		Local    *candidate `json:"local"`
		Remote   *candidate `json:"remote"`
		Protocol string     `json:"protocol"`
	} `json:"pair"`
}

func (s pageStats) types() (local, remote, proto string) {
	local, remote, proto = "?", "?", "?"
	if p := s.Pair; p != nil {
		if p.Local != nil {
			local = p.Local.Type
		}
		if p.Remote != nil {
			remote = p.Remote.Type
		}
		proto = p.Protocol
	}
	return local, remote, proto
}

func (s pageStats) relayed() bool {
	l, r, _ := s.types()
	return l == "relay" || r == "relay"
}

func (s pageStats) pairString() string {
	l, r, proto := s.types()
	addr := func(c *candidate) string {
		if c == nil {
			return "?"
		}
		return net.JoinHostPort(c.Address, fmt.Sprint(c.Port))
	}
	if s.Pair == nil {
		return "no pair"
	}
	return fmt.Sprintf("%s %s → %s %s %s", l, addr(s.Pair.Local), r, addr(s.Pair.Remote), proto)
}

func (s pageStats) ttff() float64 {
	if s.FirstFrameMS == nil {
		return -1
	}
	return *s.FirstFrameMS
}

// waitStats polls the page's stats until ok holds. It waits on the page's own progress; the
// pause between readings is the polling interval, not a synchronisation. Errors of single
// readings (the page navigating) are retried until the deadline.
func (a *agent) waitStats(t *testing.T, what string, within time.Duration, ok func(pageStats) bool) pageStats {
	t.Helper()
	deadline := time.Now().Add(within)
	var last pageStats
	var lastErr error
	for {
		var s pageStats
		if err := a.eval(`window.p2pcast ? window.p2pcast.stats() : null`, &s); err != nil {
			lastErr = err
		} else {
			last, lastErr = s, nil
			if ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within %s; last stats %+v (%s), last error %v", a.name, what, within, last, last.pairString(), lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// browserLab is the lab of the browser tests: a hub with its embedded TURN on the public
// segment, one device and one browser behind a symmetric and behind a port-restricted cone NAT.
type browserLab struct {
	base     string // the hub's web app, http://IP:PORT/
	fragment string // #token=… for every device
	devices  map[natlab.Kind]string
	viewers  map[natlab.Kind]*natlab.Host
	agents   map[natlab.Kind]*agent
	data     string // the hub's data directory (audit.jsonl)
	// restartHub stops the hub and starts it again on the same address and data.
	restartHub func(t *testing.T)
}

var browserKinds = []natlab.Kind{natlab.Symmetric, natlab.PortRestricted}

func newBrowserLab(t *testing.T) *browserLab {
	t.Helper()
	bin := testbin.Dir(t)
	p2pcast := filepath.Join(bin, "p2pcast")
	start := time.Now()
	lab := natlab.New(t)
	hubHost := lab.PublicHost("hub")
	data := t.TempDir()
	token := lastLine(t, p2pcast, "token", "--data", data, "--device", "*", "--grant", "view", "--ttl", "1h")
	hubAddr := net.JoinHostPort(hubHost.IP.String(), "8443")
	bl := &browserLab{
		base:     "http://" + hubAddr + "/",
		fragment: "#token=" + url.QueryEscape(token),
		devices:  map[natlab.Kind]string{},
		viewers:  map[natlab.Kind]*natlab.Host{},
		agents:   map[natlab.Kind]*agent{},
		data:     data,
	}
	hubProc := hubHost.Start(t, p2pcast, "hub", "--data", data, "--http", hubAddr, "--public-ip", hubHost.IP.String(), "--turn-allow-peers", labPeers)
	bl.restartHub = func(t *testing.T) {
		t.Helper()
		hubProc.Stop()
		hubProc = hubHost.Start(t, p2pcast, "hub", "--data", data, "--http", hubAddr, "--public-ip", hubHost.IP.String(), "--turn-allow-peers", labPeers)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := hubProc.WaitOutput(ctx, "hub listening"); err != nil {
			t.Fatalf("hub did not restart: %v", err)
		}
	}

	// Devices and browsers start together; each is waited for afterwards.
	procs := map[string]*natlab.Proc{}
	for _, k := range browserKinds {
		id := "cam-" + k.String()
		keyFile := secretFile(t, data, id+".key", lastLine(t, p2pcast, "device-key", "add", id, "--data", data))
		bl.devices[k] = id
		procs[id] = lab.Site("bd-"+k.String(), k).Start(t, p2pcast, "device", "--hub", "ws://"+hubAddr, "--id", id,
			"--key-file", keyFile, "--no-lan", "--size", "640x360", "--fps", "30", "--bitrate", "600k")
	}
	for _, k := range browserKinds {
		bl.viewers[k] = lab.Site("bv-"+k.String(), k)
		bl.agents[k] = startAgent(t, bl.viewers[k], hubHost.IP)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for id, p := range procs {
				t.Logf("device %s:\n%s", id, tail(p.Output(), 4000))
			}
			t.Logf("hub:\n%s", tail(hubProc.Output(), 4000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := hubProc.WaitOutput(ctx, "hub listening"); err != nil {
		t.Fatalf("hub did not start: %v", err)
	}
	for id, p := range procs {
		if _, err := p.WaitOutput(ctx, "connected to the hub"); err != nil {
			t.Fatalf("device %s did not reach the hub: %v", id, err)
		}
	}
	for _, a := range bl.agents {
		a.ready(t)
	}
	t.Logf("lab, hub, 2 devices and 2 browsers up in %s", time.Since(start).Round(time.Millisecond))
	return bl
}

// TestBrowserNAT: Chromium behind a symmetric NAT plays a device behind a symmetric NAT through
// the hub's TURN; Chromium behind a port-restricted cone NAT, arriving through the device list,
// plays a device behind a cone NAT directly; and when that viewer's address changes, the page
// restarts ICE and plays on, on the same session, without reloading.
func TestBrowserNAT(t *testing.T) {
	start := time.Now()
	bl := newBrowserLab(t)
	base, fragment, devices, agents := bl.base, bl.fragment, bl.devices, bl.agents
	line := func(device, viewer natlab.Kind, s pageStats) {
		l, r, proto := s.types()
		fmt.Printf("browser device %-9s viewer %-9s turn embedded pair %-5s → %-5s %-3s first frame %5.0f ms\n",
			device, viewer, l, r, proto, s.ttff())
	}

	// 1. Symmetric ↔ symmetric: only TURN connects them. The page comes with the token in its
	// fragment, which it must move to sessionStorage and remove from the address bar.
	t.Run("symmetric-relayed", func(t *testing.T) {
		a := agents[natlab.Symmetric]
		a.open(t, base+"?device="+devices[natlab.Symmetric]+fragment)
		s := a.waitStats(t, "frames decode", 20*time.Second, func(s pageStats) bool {
			return s.FramesDecoded >= 30 && s.ConnectionState == "connected"
		})
		line(natlab.Symmetric, natlab.Symmetric, s)
		if !s.relayed() {
			t.Errorf("pair %s is direct; symmetric NATs on both sides leave only TURN", s.pairString())
		}
		if s.FrameWidth != 640 || s.FrameHeight != 360 {
			t.Errorf("plays %vx%v, want 640x360", s.FrameWidth, s.FrameHeight)
		}
		var where struct {
			Hash   string `json:"hash"`
			Stored bool   `json:"stored"`
		}
		if err := a.eval(`({hash: location.hash, stored: sessionStorage.getItem('p2pcast.token') !== null})`, &where); err != nil {
			t.Fatal(err)
		}
		if where.Hash != "" || !where.Stored {
			t.Errorf("token handling: location.hash %q (want empty), in sessionStorage %v (want true)", where.Hash, where.Stored)
		}
	})

	// 2. Cone ↔ cone: direct. This viewer starts at the device list and clicks its device.
	coneOK := t.Run("cone-direct", func(t *testing.T) {
		a := agents[natlab.PortRestricted]
		id := devices[natlab.PortRestricted]
		a.open(t, base+fragment)
		sel := fmt.Sprintf(`document.querySelector('li.online a[data-device=%q]')`, id)
		deadline := time.Now().Add(10 * time.Second)
		for {
			var meta string
			err := a.eval(`(`+sel+` || {textContent: ''}).textContent`, &meta)
			if err == nil && strings.Contains(meta, "640×360") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the device list shows no online %s at 640×360 (last: %q, %v)", id, meta, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		var clicked bool
		if err := a.eval(sel+`.click(), true`, &clicked); err != nil {
			t.Fatal(err)
		}
		s := a.waitStats(t, "frames decode", 20*time.Second, func(s pageStats) bool {
			return s.FramesDecoded >= 30 && s.ConnectionState == "connected"
		})
		line(natlab.PortRestricted, natlab.PortRestricted, s)
		if s.relayed() {
			t.Errorf("pair %s is relayed; two port-restricted cone NATs connect directly", s.pairString())
		}
	})
	if !coneOK {
		return
	}

	// 3. The network starts dropping the cone viewer's media flows (as a firewall, or a NAT that
	// lost its mappings, would), while TCP, and so the signaling socket, keeps working: the page
	// notices the silence, restarts ICE through the hub and plays on, on the same session.
	t.Run("ice-restart", func(t *testing.T) {
		a := agents[natlab.PortRestricted]
		h := bl.viewers[natlab.PortRestricted]
		before := a.mark(t)
		changed := time.Now()
		what := dropUDPFlows(t, h)
		restarted := a.waitStats(t, "ICE restart asked", 10*time.Second, func(s pageStats) bool { return s.ICERestarts > before.ICERestarts })
		after := a.waitStats(t, "frames decode again", 15*time.Second, func(s pageStats) bool {
			return s.ConnectionState == "connected" && s.FramesDecoded >= restarted.FramesDecoded+30 && s.LastICERestartMS != nil
		})
		again := time.Since(changed)
		reconnected := -1.0
		if after.LastICERestartMS != nil {
			reconnected = *after.LastICERestartMS
		}
		l, r, proto := after.types()
		fmt.Printf("browser ICE restart, viewer cone (%s): pair %s → %s %s, sessions %.0f → %.0f, ICE restarts %.0f, reconnected %.0f ms after the restart, frames again %.0f ms after the change\n",
			what, l, r, proto, before.Sessions, after.Sessions, after.ICERestarts, reconnected, float64(again.Milliseconds()))
		t.Logf("pair before %s; after %s", before.pairString(), after.pairString())
		a.checkMark(t)
		if after.Sessions != before.Sessions {
			t.Errorf("sessions %.0f → %.0f: the page started a new session instead of restarting ICE", before.Sessions, after.Sessions)
		}
		if after.relayed() {
			t.Errorf("pair %s is relayed after the restart; a direct path remains", after.pairString())
		}
	})

	// 4. The symmetric viewer moves to another address on its LAN. Its signaling socket dies with
	// the old address (it is bound to it, and nothing tells the browser for minutes): the page
	// notices the stall, gets no reply to its ICE restart, opens a new socket that resumes the
	// session at the hub, and restarts ICE there. Same session, no page load.
	t.Run("address-change", func(t *testing.T) {
		a := agents[natlab.Symmetric]
		h := bl.viewers[natlab.Symmetric]
		before := a.mark(t)
		changed := time.Now()
		what := moveHost(t, h)
		after := a.waitStats(t, "frames again on the same session", 25*time.Second, func(s pageStats) bool {
			return s.ICERestarts > before.ICERestarts && s.ConnectionState == "connected" && s.FramesDecoded >= before.FramesDecoded+30
		})
		again := time.Since(changed)
		l, r, proto := after.types()
		fmt.Printf("browser address change, viewer symmetric (%s): pair %s → %s %s, sessions %.0f → %.0f, ICE restarts %.0f, frames again %.0f ms after the change\n",
			what, l, r, proto, before.Sessions, after.Sessions, after.ICERestarts, float64(again.Milliseconds()))
		a.checkMark(t)
		if after.Sessions != before.Sessions {
			t.Errorf("sessions %.0f → %.0f: the page started a new session instead of resuming and restarting ICE", before.Sessions, after.Sessions)
		}
		if countAudit(t, bl.data, "session_resumed") == 0 {
			t.Error("the hub's audit log has no session_resumed")
		}
	})

	// 5. The hub restarts. The cone viewer's media is direct and keeps playing meanwhile; the
	// page reconnects its signaling by itself (a new session_started in the hub's audit log)
	// and stays on the same session.
	t.Run("hub-restart", func(t *testing.T) {
		a := agents[natlab.PortRestricted]
		before := a.mark(t)
		startedBefore := countAudit(t, bl.data, "session_started")
		bl.restartHub(t)
		during := a.waitStats(t, "frames while the hub restarts", 10*time.Second, func(s pageStats) bool {
			return s.FramesDecoded >= before.FramesDecoded+30
		})
		deadline := time.Now().Add(20 * time.Second)
		for countAudit(t, bl.data, "session_started") <= startedBefore {
			if time.Now().After(deadline) {
				t.Fatal("the page did not come back to the restarted hub")
			}
			time.Sleep(200 * time.Millisecond)
		}
		after := a.waitStats(t, "plays on", 10*time.Second, func(s pageStats) bool {
			return s.ConnectionState == "connected" && s.FramesDecoded >= during.FramesDecoded+30
		})
		fmt.Printf("browser hub restart, viewer cone: frames went on (%.0f → %.0f), page re-authenticated, sessions %.0f → %.0f\n",
			before.FramesDecoded, after.FramesDecoded, before.Sessions, after.Sessions)
		a.checkMark(t)
		if after.Sessions != before.Sessions {
			t.Errorf("sessions %.0f → %.0f: the hub restart cost the page its session", before.Sessions, after.Sessions)
		}
	})
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// countAudit counts the hub's audit log entries of one event.
func countAudit(t *testing.T, data, event string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"event":"`+event+`"`)
}

// mark leaves a mark in the page that a page load would wipe, and returns the stats of the
// playing page.
func (a *agent) mark(t *testing.T) pageStats {
	t.Helper()
	var ok bool
	if err := a.eval(`window.p2pcastTestMark = 1, true`, &ok); err != nil {
		t.Fatal(err)
	}
	return a.waitStats(t, "playing", 5*time.Second, func(s pageStats) bool { return s.ConnectionState == "connected" })
}

func (a *agent) checkMark(t *testing.T) {
	t.Helper()
	var mark float64
	if err := a.eval(`window.p2pcastTestMark ?? 0`, &mark); err != nil {
		t.Fatal(err)
	}
	if mark != 1 {
		t.Errorf("the page was loaded again")
	}
}

// sbinTool finds a tool on PATH or in the sbin directories a non-login root shell may lack.
func sbinTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	t.Fatalf("%s not found", name)
	return ""
}

// dropUDPFlows makes a site's router drop, both ways, the UDP of every socket the host has open
// now: Chromium's ICE sockets (it is alone in the host). TCP is untouched, and so are the sockets
// an ICE restart opens. It returns what it did.
func dropUDPFlows(t *testing.T, h *natlab.Host) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, sbinTool(t, "ss"), "-H", "-u", "-a", "-n")
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			ports = append(ports, f[3][strings.LastIndex(f[3], ":")+1:])
		}
	}
	if len(ports) == 0 || len(ports) > 15 {
		t.Fatalf("%d UDP sockets in %s:\n%s", len(ports), h.Name, out)
	}
	list := strings.Join(ports, ",")
	ipt := sbinTool(t, "iptables")
	for _, rule := range [][]string{
		{"-I", "FORWARD", "-i", "lan", "-p", "udp", "-s", h.IP.String(), "-m", "multiport", "--sports", list, "-j", "DROP"},
		{"-I", "FORWARD", "-i", "wan", "-p", "udp", "-d", h.IP.String(), "-m", "multiport", "--dports", list, "-j", "DROP"},
	} {
		if _, err := h.Router.Run(ctx, ipt, rule...); err != nil {
			t.Fatal(err)
		}
	}
	return "router drops UDP ports " + list
}

// moveHost moves a site host to another address on its LAN (the old one gone, the default route
// back), as a laptop given a new DHCP lease would. It returns what it did.
func moveHost(t *testing.T, h *natlab.Host) string {
	t.Helper()
	old := h.IP.To4()
	moved := net.IPv4(old[0], old[1], old[2], old[3]+1).To4()
	gw := net.IPv4(old[0], old[1], old[2], 1).String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ip := sbinTool(t, "ip")
	for _, args := range [][]string{
		{"addr", "del", old.String() + "/24", "dev", "eth0"},
		{"addr", "add", moved.String() + "/24", "dev", "eth0"},
		{"route", "replace", "default", "via", gw},
	} {
		if _, err := h.Run(ctx, ip, args...); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("%s → %s", old, moved)
}
