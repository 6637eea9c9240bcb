//go:build network

package network

// The harness: a LAN with a device and viewers, a recorder per viewer that samples once a second
// (page stats, capture → present samples, link counters) and prints a table row per sample, and
// the window metrics the tests assert on.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/wire"
	"github.com/p2pcast/p2pcast/test/natlab"
	"github.com/p2pcast/p2pcast/test/testbin"
)

const (
	// devicePort is where the device serves its page, /ws and /api/status on its LAN address.
	devicePort = "8080"
	// sampleEvery is the recorder's period: one table row per viewer per period.
	sampleEvery = time.Second
	// evalTimeout bounds one reading of a page; a page that does not answer gets a row of "?".
	evalTimeout = 3 * time.Second
	// joinTimeout bounds a viewer's wait for its first frame.
	joinTimeout = 20 * time.Second
)

// netLab is one test's network: a LAN whose first host is the device.
type netLab struct {
	t     *testing.T
	lab   *natlab.Lab
	lan   *natlab.LAN
	bin   string    // the p2pcast binary
	start time.Time // t = 0 of the table
	dev   *device

	mu        sync.Mutex
	recorders []*recorder
}

func newLab(t *testing.T) *netLab {
	t.Helper()
	// Registered first, so it runs last: the reasons a test failed, after the logs that the
	// other cleanups print on failure (CI shows the end of a failed test's output).
	t.Cleanup(func() { restateFailures(t) })
	bin := filepath.Join(testbin.Dir(t), "p2pcast")
	lab := natlab.New(t)
	n := &netLab{t: t, lab: lab, lan: lab.LAN("lan"), bin: bin, start: time.Now()}
	// Recorders stop before the lab closes (cleanups run last-in first-out): none may log after
	// the test has ended.
	t.Cleanup(n.stopRecorders)
	return n
}

// since is the table's time: seconds since the lab was made.
func (n *netLab) since(at time.Time) float64 { return at.Sub(n.start).Seconds() }

// event writes a line into the table: what the test changed, and when.
func (n *netLab) event(format string, args ...any) {
	n.t.Helper()
	n.t.Logf("%6.1f ---- %s", n.since(time.Now()), fmt.Sprintf(format, args...))
}

// shape changes a link's rate (0: unlimited), says so in the table and returns when the change
// took effect.
func (n *netLab) shape(k *natlab.Link, rate int64) time.Time {
	n.t.Helper()
	if err := k.Shape(rate); err != nil {
		n.t.Fatal(err)
	}
	at := time.Now()
	if rate == 0 {
		n.event("%s: downlink unshaped", k.Host.Name)
	} else {
		n.event("%s: downlink shaped to %s (tbf burst %d B, latency %s)", k.Host.Name, kbit(float64(rate)), natlab.Burst(rate), natlab.TBFLatency)
	}
	return at
}

// loss changes a link's random UDP loss and says so in the table.
func (n *netLab) loss(k *natlab.Link, p float64) {
	n.t.Helper()
	if err := k.Loss(p); err != nil {
		n.t.Fatal(err)
	}
	n.event("%s: random UDP loss %.1f %% toward it", k.Host.Name, 100*p)
}

// ---- the device ----

// device is a `p2pcast device` on the LAN, with LAN auth: viewers need a token, as off loopback
// they always do. The test mints its tokens with `p2pcast token --data DIR`, from the device's
// own key (the device's --data), the honest way a LAN viewer gets one without a pairing link.
type device struct {
	link  *natlab.Link
	proc  *natlab.Proc
	url   string // http://IP:PORT/
	view  string // a viewer token (view)
	admin string // a token for /api/status (view,control)
	http  *http.Client
}

// deviceFlags lists the flags of `p2pcast device`, from its --help.
func (n *netLab) deviceFlags() map[string]bool {
	out, _ := exec.Command(n.bin, "device", "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		fatalf(n.t, "p2pcast device --help lists no flags:\n%s", out)
	}
	return flags
}

// requireDeviceFlags fails the test at once, naming them, when the device lacks flags it needs
// (flags other engineers are adding: see the constants in network_test.go).
func (n *netLab) requireDeviceFlags(args []string) {
	n.t.Helper()
	have := n.deviceFlags()
	var missing []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !have[name] {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		fatalf(n.t, "p2pcast device has no %s yet (this test needs it: see the constants at the top of network_test.go)", strings.Join(missing, ", "))
	}
}

// startDevice starts the device in the LAN's first host with the picture the tests use plus
// args, and waits until it serves.
func (n *netLab) startDevice(args ...string) *device {
	t := n.t
	t.Helper()
	all := append(slices.Clone(baseDeviceFlags), args...)
	n.requireDeviceFlags(all)
	link := n.lan.Add("device")
	data := t.TempDir()
	mint := func(grants string) string {
		out, err := exec.Command(n.bin, "token", "--data", data, "--device", "local", "--grant", grants, "--ttl", "1h").Output()
		if err != nil {
			fatalf(t, "p2pcast token: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	d := &device{link: link, view: mint("view"), admin: mint("view,control")}
	addr := net.JoinHostPort(link.Host.IP.String(), devicePort)
	argv := append([]string{"device", "--http", addr, "--lan-auth", "--data", data}, all...)
	d.proc = link.Host.Start(t, n.bin, argv...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("device log (last 6000 bytes):\n%s", tail(d.proc.Output(), 6000))
			return
		}
		// The policy's decisions explain the table's switches, failed or not.
		t.Logf("device's adaptation decisions:\n%s", tail(grepLines(d.proc.Output(), "msg=adaptation"), 4000))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := d.proc.WaitOutput(ctx, `(?m)^(http://\S+/)\s*$`)
	if err != nil {
		fatalf(t, "device did not start: %v", err)
	}
	d.url = m[1]
	d.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// /api/status is read from inside the device's own host, so it never crosses a
		// viewer's shaped link.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return link.Host.Dial(ctx, network, addr)
		},
	}}
	n.dev = d
	n.event("device %s at %s: p2pcast %s", link.Host.IP, d.url, strings.Join(argv, " "))
	return d
}

// deviceStatus is GET /api/status, loosely: the tests print what the device reports per session
// and look for counters by name, so that fields the sender adds show up without a change here.
type deviceStatus struct {
	Stats    map[string]any   `json:"stats"`
	Sessions []map[string]any `json:"sessions"`
}

func (d *device) status() (deviceStatus, error) {
	var st deviceStatus
	req, err := http.NewRequest("GET", d.url+"api/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+d.admin)
	resp, err := d.http.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /api/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// logStatus prints the device's view of its sessions: what the sender reports per viewer (its
// estimate, once it has one).
func (n *netLab) logStatus(what string) (deviceStatus, error) {
	n.t.Helper()
	st, err := n.dev.status()
	if err != nil {
		n.t.Logf("device status %s: %v", what, err)
		return st, err
	}
	for i, s := range st.Sessions {
		b, _ := json.Marshal(s)
		n.t.Logf("device status %s, session %d: %s", what, i, b)
	}
	return st, nil
}

// counterFields finds the numeric fields of v (nested objects and arrays too) whose names
// match re, by their paths. Field names of what the sender will report are not known yet.
func counterFields(v any, path string, re *regexp.Regexp, out map[string]float64) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if f, ok := e.(float64); ok && re.MatchString(k) {
				out[p] = f
			}
			counterFields(e, p, re, out)
		}
	case []any:
		for i, e := range x {
			counterFields(e, fmt.Sprintf("%s[%d]", path, i), re, out)
		}
	}
}

// ---- viewers ----

// viewer is one watcher on its own link: a Chromium page or a `p2pcast view`.
type viewer struct {
	name string
	link *natlab.Link
	page *browser.Page // nil for the CLI
	rec  *recorder
}

// pageFlags are Chromium's: internal/browser's (headless, no sandbox, no GPU, QUIC off, autoplay,
// local addresses not hidden behind mDNS), plus a resolver that resolves nothing but the device's
// address, so that Chromium's start-up lookups of outside hosts fail at once. The EXCLUDE is
// needed or a URL with an IP address fails too (platform notes).
func pageFlags(deviceIP string) map[string]any {
	return map[string]any{"host-resolver-rules": "MAP * ~NOTFOUND, EXCLUDE " + deviceIP}
}

// browserViewer starts Chromium on a new link of the LAN and opens the device's page (openPage).
func (n *netLab) browserViewer(name string) *viewer {
	n.t.Helper()
	return n.openPage(n.lan.Add(name))
}

// openPage starts Chromium in the link's host, opens the device's page with the latency
// diagnostics (?diag=1) and a viewer token, and starts recording. A link may be shaped or lossy
// before: the viewer then joins through it.
func (n *netLab) openPage(link *natlab.Link) *viewer {
	t := n.t
	t.Helper()
	name := link.Host.Name
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := browser.Launch(context.Background(), browser.Options{
		Width: 1280, Height: 720, Netns: link.Host.NS, Flags: pageFlags(n.dev.link.Host.IP.String()),
	})
	if err != nil {
		fatalf(t, "%s: %v", name, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	page, err := b.NewPage(ctx)
	if err != nil {
		fatalf(t, "%s: %v", name, err)
	}
	console := &lockedLog{}
	page.Console(func(msg string) { console.add(fmt.Sprintf("%.1f %s", n.since(time.Now()), msg)) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s page console:\n%s", name, tail(console.String(), 4000))
		}
	})
	if err := page.Navigate(ctx, n.dev.url+"?diag=1#token="+n.dev.view); err != nil {
		fatalf(t, "%s: %v", name, err)
	}
	v := &viewer{name: name, link: link, page: page}
	v.rec = n.record(name, link, v.pollPage)
	n.event("%s (%s): Chromium opened the device's page", name, link.Host.IP)
	return v
}

// cliViewer is a link for `p2pcast view` runs, recorded from the link's counters only (the CLI
// prints its stats when it ends).
func (n *netLab) cliViewer(name string) *viewer {
	link := n.lan.Add(name)
	v := &viewer{name: name, link: link}
	v.rec = n.record(name, link, nil)
	return v
}

// viewResult is `p2pcast view --stats json`, the fields this test reads; the whole line is
// printed too (the estimate's fields will come from the sender).
type viewResult struct {
	Frames     int     `json:"frames"`
	Keyframes  int     `json:"keyframes"`
	BitrateBPS float64 `json:"bitrate_bps"`
	FPS        float64 `json:"fps"`
	Lost       float64 `json:"lost"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	TTFFMS     float64 `json:"ttff_ms"`
	DurationS  float64 `json:"duration_s"`
	// Network and Decisions: what the device reported on the events channel.
	Network   *wire.Network   `json:"network"`
	Decisions []wire.Decision `json:"decisions"`
}

// runCLI runs `p2pcast view` in the viewer's host for d after its first frame and returns its
// stats, the raw JSON line, and when it ended.
func (n *netLab) runCLI(v *viewer, d time.Duration) (viewResult, string, time.Time) {
	t := n.t
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(n.dev.view+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.event("%s: p2pcast view --duration %s", v.name, d)
	p := v.link.Host.Start(t, n.bin, "view", n.dev.url, "--token-file", tokenFile, "--duration", d.String(), "--stats", "json", "--timeout", "20s")
	// While it runs, the device's view of the session is read once a second (the session is
	// gone once the CLI ends), and the last one is printed: what the sender reports per viewer.
	var last deviceStatus
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	deadline := time.After(d + 40*time.Second)
	for running := true; running; {
		select {
		case <-p.Done():
			running = false
		case <-tick.C:
			if st, err := n.dev.status(); err == nil && len(st.Sessions) > 0 {
				last = st
			}
		case <-deadline:
			fatalf(t, "%s: p2pcast view did not end; output:\n%s", v.name, tail(p.Output(), 4000))
		}
	}
	end := time.Now()
	for i, s := range last.Sessions {
		b, _ := json.Marshal(s)
		t.Logf("device status of %s's session %d, last read while it ran: %s", v.name, i, b)
	}
	var line string
	for _, l := range strings.Split(p.Output(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "{") {
			line = strings.TrimSpace(l)
		}
	}
	var r viewResult
	if line == "" {
		fatalf(t, "%s: p2pcast view printed no stats (%v); output:\n%s", v.name, p.Err(), tail(p.Output(), 4000))
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		fatalf(t, "%s: p2pcast view stats %q: %v", v.name, line, err)
	}
	n.event("%s: p2pcast view ended (%v): %s", v.name, p.Err(), line)
	return r, line, end
}

// inboundRTP is a video inbound-rtp report (Chromium's names), the fields the table uses.
type inboundRTP struct {
	SSRC                 float64 `json:"ssrc"`
	FramesDecoded        float64 `json:"framesDecoded"`
	FramesDropped        float64 `json:"framesDropped"`
	KeyFramesDecoded     float64 `json:"keyFramesDecoded"`
	FrameWidth           float64 `json:"frameWidth"`
	FrameHeight          float64 `json:"frameHeight"`
	FreezeCount          float64 `json:"freezeCount"`
	TotalFreezesDuration float64 `json:"totalFreezesDuration"` // s
	PacketsReceived      float64 `json:"packetsReceived"`
	PacketsLost          float64 `json:"packetsLost"`
	NackCount            float64 `json:"nackCount"`
	// RetransmittedPacketsReceived counts packets that came on the retransmission stream (RTX).
	RetransmittedPacketsReceived float64 `json:"retransmittedPacketsReceived"`
	PliCount                     float64 `json:"pliCount"`
	FecPacketsReceived           float64 `json:"fecPacketsReceived"`
	FecPacketsDiscarded          float64 `json:"fecPacketsDiscarded"`
	BytesReceived                float64 `json:"bytesReceived"`
	JitterBufferDelay            float64 `json:"jitterBufferDelay"` // s, summed over emitted frames
	JitterBufferEmittedCount     float64 `json:"jitterBufferEmittedCount"`
}

// pageReading is one poll of a page (see pollExpr).
type pageReading struct {
	State    string       `json:"state"`
	Sessions float64      `json:"sessions"`
	Inbound  []inboundRTP `json:"inbound"`
	Lat      *struct {
		Total       int       `json:"total"`
		Dropped     int       `json:"dropped"`
		StripErrors int       `json:"stripErrors"`
		Present     []float64 `json:"present"`
	} `json:"lat"`
}

// pollExpr reads a page in one round trip: its state, every video inbound-rtp report
// (window.p2pcast.inboundVideo, web/player.js) and the capture → present samples web/diag.js
// recorded after the since-th (%d).
const pollExpr = `(async () => {
  const p = window.p2pcast;
  if (!p || !p.inboundVideo) return null;
  const [s, inbound] = await Promise.all([p.stats(), p.inboundVideo()]);
  const l = p.latency ? p.latency(%d) : null;
  return { state: p.state, sessions: s.sessions, inbound,
    lat: l && { total: l.total, dropped: l.dropped, stripErrors: l.stripErrors, present: l.samples.map((x) => x.present_ms) } };
})()`

// pollPage is the page half of a sample.
func (v *viewer) pollPage(since int) (pageReading, error) {
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	r, err := browser.Eval[*pageReading](ctx, v.page, fmt.Sprintf(pollExpr, since))
	if err != nil {
		return pageReading{}, err
	}
	if r == nil {
		return pageReading{}, errors.New("the page has no window.p2pcast.inboundVideo")
	}
	return *r, nil
}

// ---- the recorder ----

// totals are a page's counters summed over its video inbound-rtp reports and over its
// sessions (a new session starts its counters at zero; the recorder carries the old ones).
type totals struct {
	frames, dropped, keyframes, freezes, freezeS, packets, lost, nacks, plis, fec, fecDiscarded, bytes, jbDelayS, jbEmitted, rtx float64
}

func (a totals) plus(b totals) totals {
	return totals{a.frames + b.frames, a.dropped + b.dropped, a.keyframes + b.keyframes, a.freezes + b.freezes, a.freezeS + b.freezeS,
		a.packets + b.packets, a.lost + b.lost, a.nacks + b.nacks, a.plis + b.plis, a.fec + b.fec, a.fecDiscarded + b.fecDiscarded,
		a.bytes + b.bytes, a.jbDelayS + b.jbDelayS, a.jbEmitted + b.jbEmitted, a.rtx + b.rtx}
}

func (a totals) minus(b totals) totals {
	return totals{a.frames - b.frames, a.dropped - b.dropped, a.keyframes - b.keyframes, a.freezes - b.freezes, a.freezeS - b.freezeS,
		a.packets - b.packets, a.lost - b.lost, a.nacks - b.nacks, a.plis - b.plis, a.fec - b.fec, a.fecDiscarded - b.fecDiscarded,
		a.bytes - b.bytes, a.jbDelayS - b.jbDelayS, a.jbEmitted - b.jbEmitted, a.rtx - b.rtx}
}

func sumInbound(in []inboundRTP) totals {
	var s totals
	for _, r := range in {
		s = s.plus(totals{r.FramesDecoded, r.FramesDropped, r.KeyFramesDecoded, r.FreezeCount, r.TotalFreezesDuration,
			r.PacketsReceived, r.PacketsLost, r.NackCount, r.PliCount, r.FecPacketsReceived, r.FecPacketsDiscarded,
			r.BytesReceived, r.JitterBufferDelay, r.JitterBufferEmittedCount, r.RetransmittedPacketsReceived})
	}
	return s
}

// sample is one second of a viewer: cumulative counters, and what happened since the previous
// sample (the capture → present samples of the frames presented in between, the picture size).
type sample struct {
	at       time.Time
	pageOK   bool // the page answered (always false for the CLI)
	state    string
	sessions float64
	sum      totals  // cumulative over sessions
	width    float64 // of the report that decoded most since the previous sample
	height   float64
	present  []float64 // capture → present, ms, of frames presented since the previous sample
	link     natlab.LinkCounters
	linkOK   bool
	dev      devReading
	err      string
}

// devReading is the device's view of the viewer's session at a sample: its bandwidth
// estimate, and what it sent besides the media (probe packets, retransmissions), cumulative.
type devReading struct {
	ok                    bool
	estimate, probes, rtx float64
}

// reading finds the session whose viewer is at ip in the device's status.
func (d *device) reading(ip string) devReading {
	st, err := d.status()
	if err != nil {
		return devReading{}
	}
	for _, sess := range st.Sessions {
		pair, _ := sess["pair"].(map[string]any)
		addr, _ := pair["remote_address"].(string)
		if host, _, err := net.SplitHostPort(addr); err != nil || host != ip {
			continue
		}
		nw, _ := sess["network"].(map[string]any)
		num := func(k string) float64 { f, _ := nw[k].(float64); return f }
		return devReading{ok: nw != nil, estimate: num("estimate_bps"), probes: num("probe_packets"), rtx: num("retransmitted")}
	}
	return devReading{}
}

// recorder samples one viewer every second until stopped, and prints each sample as a row.
type recorder struct {
	n    *netLab
	name string
	link *natlab.Link
	poll func(since int) (pageReading, error) // nil: link counters only

	mu      sync.Mutex
	samples []sample
	grew    chan struct{} // closed and replaced at each new sample

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// the poller's own state
	latSince   int
	carry      totals // counters of finished sessions
	lastRaw    totals // the current session's counters at the previous sample
	lastSess   float64
	lastFrames map[float64]float64 // per SSRC, to find the report that is decoding
}

func (n *netLab) record(name string, link *natlab.Link, poll func(int) (pageReading, error)) *recorder {
	r := &recorder{n: n, name: name, link: link, poll: poll, grew: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}), lastFrames: map[float64]float64{}}
	n.mu.Lock()
	n.recorders = append(n.recorders, r)
	n.mu.Unlock()
	// Registered after the viewer's browser or process, so it runs before they stop: the table
	// ends with the test, not with a row about a browser going away.
	n.t.Cleanup(r.halt)
	n.t.Logf("%6s %-8s %8s %6s %6s %6s %5s %4s %5s %5s %4s %4s %8s %9s %6s %6s %5s %5s %4s %s",
		"t s", "viewer", "rx kb/s", "offer", "link", "est", "fps", "frz", "lost", "nack", "prb", "rtx", "fec/disc", "res", "jb ms", "p95 ms", "qdrop", "ldrop", "sess", "state")
	go r.run()
	return r
}

func (n *netLab) stopRecorders() {
	n.mu.Lock()
	rs := n.recorders
	n.recorders = nil
	n.mu.Unlock()
	for _, r := range rs {
		r.halt()
	}
}

// halt stops the recorder and waits until it has; it may be called more than once.
func (r *recorder) halt() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

func (r *recorder) run() {
	defer close(r.done)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		s := r.take()
		r.mu.Lock()
		var prev *sample
		if len(r.samples) > 0 {
			prev = &r.samples[len(r.samples)-1]
		}
		r.n.t.Log(r.row(prev, s))
		r.samples = append(r.samples, s)
		close(r.grew)
		r.grew = make(chan struct{})
		r.mu.Unlock()
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

// take reads the link's counters and the page once.
func (r *recorder) take() sample {
	s := sample{at: time.Now()}
	if c, err := r.link.Counters(); err == nil {
		s.link, s.linkOK = c, true
	} else {
		s.err = err.Error()
	}
	if d := r.n.dev; d != nil {
		s.dev = d.reading(r.link.Host.IP.String())
	}
	if r.poll == nil {
		return s
	}
	p, err := r.poll(r.latSince)
	if err != nil {
		s.err = err.Error()
		r.mu.Lock()
		if n := len(r.samples); n > 0 { // keep the counters where they were
			last := r.samples[n-1]
			s.sum, s.sessions, s.width, s.height = last.sum, last.sessions, last.width, last.height
		}
		r.mu.Unlock()
		return s
	}
	s.pageOK, s.state, s.sessions = true, p.State, p.Sessions
	raw := sumInbound(p.Inbound)
	if p.Sessions != r.lastSess {
		// A new session: its counters start again from zero.
		r.carry = r.carry.plus(r.lastRaw)
		r.lastFrames = map[float64]float64{}
	}
	r.lastRaw, r.lastSess = raw, p.Sessions
	s.sum = r.carry.plus(raw)
	best := -1.0
	for _, in := range p.Inbound {
		if d := in.FramesDecoded - r.lastFrames[in.SSRC]; d > best {
			best, s.width, s.height = d, in.FrameWidth, in.FrameHeight
		}
		r.lastFrames[in.SSRC] = in.FramesDecoded
	}
	if l := p.Lat; l != nil {
		s.present = l.Present
		r.latSince = l.Total
	}
	return s
}

// row formats a sample as a table row: rates and counts since the previous sample.
func (r *recorder) row(prev *sample, s sample) string {
	dash := func(ok bool, f string, v float64) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf(f, v)
	}
	var dt float64
	var d totals
	var dl natlab.LinkCounters
	if prev != nil {
		dt = s.at.Sub(prev.at).Seconds()
		d = s.sum.minus(prev.sum)
		dl = linkDelta(s.link, prev.link)
	}
	ok := prev != nil && dt > 0 && s.pageOK
	linkOK := prev != nil && dt > 0 && s.linkOK && prev.linkOK
	jb := math.NaN()
	if d.jbEmitted > 0 {
		jb = 1000 * d.jbDelayS / d.jbEmitted
	}
	p95 := percentile(s.present, 95)
	state := s.state
	if s.err != "" {
		state = "error: " + s.err
	}
	res := "-"
	if s.pageOK {
		res = fmt.Sprintf("%.0fx%.0f", s.width, s.height)
	}
	var dd devReading // what the device sent besides the media since the previous sample
	devOK := prev != nil && s.dev.ok && prev.dev.ok
	if devOK {
		dd = devReading{probes: s.dev.probes - prev.dev.probes, rtx: s.dev.rtx - prev.dev.rtx}
	}
	return fmt.Sprintf("%6.1f %-8s %8s %6s %6s %6s %5s %4s %5s %5s %4s %4s %8s %9s %6s %6s %5s %5s %4s %s",
		r.n.since(s.at), r.name,
		dash(ok, "%.0f", d.bytes*8/1000/dt), dash(linkOK, "%.0f", float64(dl.UDP.Bytes)*8/1000/dt), dash(linkOK, "%.0f", float64(dl.Tx.Bytes)*8/1000/dt),
		dash(s.dev.ok, "%.0f", s.dev.estimate/1000),
		dash(ok, "%.1f", d.frames/dt), dash(ok, "%.0f", d.freezes), dash(ok, "%.0f", d.lost), dash(ok, "%.0f", d.nacks),
		dash(devOK, "%.0f", dd.probes), dash(devOK, "%.0f", dd.rtx),
		dashPair(ok, d.fec, d.fecDiscarded), res,
		dash(ok && !math.IsNaN(jb), "%.0f", jb), dash(s.pageOK && len(s.present) > 0, "%.0f", p95),
		dash(linkOK, "%.0f", float64(dl.Qdisc.Drops)), dash(linkOK, "%.0f", float64(dl.Lost.Packets)),
		dash(s.pageOK, "%.0f", s.sessions), state)
}

func dashPair(ok bool, a, b float64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f", a, b)
}

func linkDelta(a, b natlab.LinkCounters) natlab.LinkCounters {
	sub := func(x, y natlab.Count) natlab.Count {
		return natlab.Count{Packets: x.Packets - y.Packets, Bytes: x.Bytes - y.Bytes}
	}
	return natlab.LinkCounters{
		Tx: sub(a.Tx, b.Tx), UDP: sub(a.UDP, b.UDP), TCP: sub(a.TCP, b.TCP), Lost: sub(a.Lost, b.Lost),
		Qdisc: natlab.Qdisc{Kind: a.Qdisc.Kind, Bytes: a.Qdisc.Bytes - b.Qdisc.Bytes, Packets: a.Qdisc.Packets - b.Qdisc.Packets,
			Drops: a.Qdisc.Drops - b.Qdisc.Drops, Overlimits: a.Qdisc.Overlimits - b.Qdisc.Overlimits, Backlog: a.Qdisc.Backlog, Qlen: a.Qdisc.Qlen},
	}
}

// waitSample waits until the recorder has a sample taken at or after t (the recorder's own
// progress: no clock of the test's), and returns the samples so far.
func (r *recorder) waitSample(t time.Time) []sample {
	r.n.t.Helper()
	deadline := time.After(time.Until(t) + 2*evalTimeout + 2*sampleEvery)
	for {
		r.mu.Lock()
		ss, grew := r.samples, r.grew
		r.mu.Unlock()
		if len(ss) > 0 && !ss[len(ss)-1].at.Before(t) {
			return ss
		}
		select {
		case <-grew:
		case <-r.done:
			fatalf(r.n.t, "%s: the recorder stopped", r.name)
		case <-deadline:
			fatalf(r.n.t, "%s: no sample after %.1f s", r.name, r.n.since(t))
		}
	}
}

// waitFor waits, sample by sample, until ok holds for a sample, and returns it; false (and the
// last sample) when none did within.
func (r *recorder) waitFor(within time.Duration, ok func(s sample) bool) (sample, bool) {
	r.n.t.Helper()
	end := time.Now().Add(within)
	for from := 0; ; {
		ss := r.waitSample(time.Now())
		for _, s := range ss[from:] {
			if ok(s) {
				return s, true
			}
		}
		from = len(ss)
		if time.Now().After(end) {
			return ss[len(ss)-1], false
		}
	}
}

// playing waits for the viewer's first decoded frame.
func (v *viewer) playing(t *testing.T) sample {
	t.Helper()
	s, ok := v.rec.waitFor(joinTimeout, func(s sample) bool { return s.sum.frames > 0 })
	if !ok {
		fatalf(t, "%s: no frame within %s (state %q, %s)", v.name, joinTimeout, s.state, s.err)
	}
	return s
}

// ---- window metrics ----

// metrics is what a viewer saw between two samples.
type metrics struct {
	from, to      time.Time
	seconds       float64
	d             totals
	link          natlab.LinkCounters
	fps           float64
	minFPS        float64 // the worst one-second fps
	rxBPS         float64 // video payload received (bytesReceived)
	linkBPS       float64 // what the link delivered, Ethernet frames, as tbf counts them
	offerBPS      float64 // the UDP the device sent toward the viewer (IP packets, before loss and queue)
	present       []float64
	p95           float64 // capture → present, ms; NaN without samples
	widths        []float64
	minW, maxW    float64
	lastW, lastH  float64
	pageErrors    int
	sessionsAdded float64
}

// measure waits until the recorder has sampled past from+d and sums up the samples in between:
// counters from the first sample at or after from to the first at or after from+d. The window
// never reaches back before from (the time a test leaves a sender to adapt stays out of it).
func (v *viewer) measure(t *testing.T, from time.Time, d time.Duration) metrics {
	t.Helper()
	ss := v.rec.waitSample(from.Add(d))
	i := slices.IndexFunc(ss, func(s sample) bool { return !s.at.Before(from) })
	j := i + slices.IndexFunc(ss[i:], func(s sample) bool { return !s.at.Before(from.Add(d)) })
	if j == i {
		fatalf(t, "%s: no samples between %.1f s and %.1f s", v.name, v.rec.n.since(from), v.rec.n.since(from.Add(d)))
	}
	return window(ss[i : j+1])
}

// between sums up the samples already taken from the first at or after a to the last at or
// before b: a window that ended before now (a CLI run that is over).
func (v *viewer) between(t *testing.T, a, b time.Time) metrics {
	t.Helper()
	ss := v.rec.waitSample(b)
	i := slices.IndexFunc(ss, func(s sample) bool { return !s.at.Before(a) })
	j := slices.IndexFunc(ss, func(s sample) bool { return s.at.After(b) }) - 1
	if i < 0 || j <= i {
		fatalf(t, "%s: no two samples between %.1f s and %.1f s", v.name, v.rec.n.since(a), v.rec.n.since(b))
	}
	return window(ss[i : j+1])
}

// window computes the metrics of consecutive samples (the first is the baseline).
func window(ss []sample) metrics {
	a, b := ss[0], ss[len(ss)-1]
	m := metrics{from: a.at, to: b.at, seconds: b.at.Sub(a.at).Seconds(), d: b.sum.minus(a.sum),
		link: linkDelta(b.link, a.link), minFPS: math.Inf(1), minW: math.Inf(1), sessionsAdded: b.sessions - a.sessions}
	if m.seconds > 0 {
		m.fps = m.d.frames / m.seconds
		m.rxBPS = m.d.bytes * 8 / m.seconds
		m.linkBPS = float64(m.link.Tx.Bytes) * 8 / m.seconds
		m.offerBPS = float64(m.link.UDP.Bytes) * 8 / m.seconds
	}
	for k := 1; k < len(ss); k++ {
		s, p := ss[k], ss[k-1]
		m.present = append(m.present, s.present...)
		if !s.pageOK {
			m.pageErrors++
			continue
		}
		if dt := s.at.Sub(p.at).Seconds(); dt > 0 {
			m.minFPS = min(m.minFPS, (s.sum.frames-p.sum.frames)/dt)
		}
		if s.width > 0 {
			m.widths = append(m.widths, s.width)
			m.minW, m.maxW = min(m.minW, s.width), max(m.maxW, s.width)
			m.lastW, m.lastH = s.width, s.height
		}
	}
	if math.IsInf(m.minFPS, 1) {
		m.minFPS = 0
	}
	if math.IsInf(m.minW, 1) {
		m.minW = 0
	}
	m.p95 = percentile(m.present, 95)
	return m
}

func (m metrics) String() string {
	return fmt.Sprintf("%.1f s: %.1f fps (worst second %.1f), freezes %.0f (%.2f s), capture→present p95 %s ms over %d frames, "+
		"lost %.0f, nacks %.0f, rtx %.0f, plis %.0f, fec %.0f/%.0f discarded, rx %s, offered %s, link %s (queue drops %d, loss drops %d), width %.0f..%.0f, last %.0fx%.0f, new sessions %.0f, unanswered polls %d",
		m.seconds, m.fps, m.minFPS, m.d.freezes, m.d.freezeS, fmtMS(m.p95), len(m.present),
		m.d.lost, m.d.nacks, m.d.rtx, m.d.plis, m.d.fec, m.d.fecDiscarded, kbit(m.rxBPS), kbit(m.offerBPS), kbit(m.linkBPS), m.link.Qdisc.Drops, m.link.Lost.Packets,
		m.minW, m.maxW, m.lastW, m.lastH, m.sessionsAdded, m.pageErrors)
}

// watchable asserts the "Done when" for a viewer: no freeze, at least minFPS frames a
// second, capture → present p95 within maxP95; and no reconnect, which breaks playback without
// Chromium counting a freeze (the new session's counters start afresh).
func (m metrics) watchable(t *testing.T, who string) {
	t.Helper()
	if m.d.freezes > 0 {
		errorf(t, "%s: %.0f freezes (%.2f s frozen), want none", who, m.d.freezes, m.d.freezeS)
	}
	if m.sessionsAdded > 0 {
		errorf(t, "%s: the page started %.0f new sessions (reconnected), want none", who, m.sessionsAdded)
	}
	if m.fps < minFPS {
		errorf(t, "%s: %.1f fps, want at least %d", who, m.fps, minFPS)
	}
	switch {
	case len(m.present) == 0:
		errorf(t, "%s: no capture → present sample (no frame presented, or the picture carries no time strip)", who)
	case m.p95 > maxP95MS:
		errorf(t, "%s: capture → present p95 %.0f ms, want at most %d", who, m.p95, maxP95MS)
	}
}

// percentile is the p-th percentile (nearest rank) of xs, NaN when empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func kbit(bps float64) string { return fmt.Sprintf("%.0f kbit/s", bps/1000) }

// ---- small helpers ----

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(line)
	l.b.WriteByte('\n')
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// networkView is what the page heard from the device on its events channel
// (window.p2pcast.network(), web/player.js).
type networkView struct {
	Report    *wire.Network   `json:"report"`
	Decisions []wire.Decision `json:"decisions"`
}

// network reads the device's reports as the page received them.
func (v *viewer) network(t *testing.T) networkView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	r, err := browser.Eval[networkView](ctx, v.page, `window.p2pcast.network()`)
	if err != nil {
		fatalf(t, "%s: reading window.p2pcast.network(): %v", v.name, err)
	}
	return r
}

// heardOf checks that the page was told of its path (an estimate from its feedback, the
// rendition width it gets) and returns the decisions it was told of.
func (v *viewer) heardOf(t *testing.T, width int) []wire.Decision {
	t.Helper()
	nv := v.network(t)
	if nv.Report == nil {
		errorf(t, "%s: the page got no network report from the device", v.name)
		return nil
	}
	t.Logf("%s: the device reported estimate %s, rtt %.1f ms, loss %.3f, %dx%d; %d decisions", v.name,
		kbit(float64(nv.Report.EstimateBPS)), nv.Report.RTTMS, nv.Report.Loss, nv.Report.Rendition.Width, nv.Report.Rendition.Height, len(nv.Decisions))
	if nv.Report.EstimateBPS <= 0 {
		errorf(t, "%s: the device reported no bandwidth estimate", v.name)
	}
	if width > 0 && nv.Report.Rendition.Width != width {
		errorf(t, "%s: the device reported a %d-wide rendition, want %d", v.name, nv.Report.Rendition.Width, width)
	}
	return nv.Decisions
}

// failures holds what each test failed for, to say again at its end (restateFailures).
var failures = struct {
	sync.Mutex
	of map[*testing.T][]string
}{of: map[*testing.T][]string{}}

func noteFailure(t *testing.T, msg string) {
	failures.Lock()
	failures.of[t] = append(failures.of[t], msg)
	failures.Unlock()
}

// errorf is t.Errorf, remembered for restateFailures.
func errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	noteFailure(t, msg)
	t.Error(msg)
}

// fatalf is t.Fatalf, remembered for restateFailures.
func fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	noteFailure(t, msg)
	t.Fatal(msg)
}

// restateFailures logs again, at the very end of a failed test, why it failed: the device
// log, page consoles and rule counters printed on failure push the first report far up.
func restateFailures(t *testing.T) {
	failures.Lock()
	msgs := failures.of[t]
	delete(failures.of, t)
	failures.Unlock()
	if len(msgs) > 0 {
		t.Logf("%s failed: %s", t.Name(), strings.Join(msgs, "; "))
	}
}

// grepLines is the lines of out that contain sub.
func grepLines(out, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}
