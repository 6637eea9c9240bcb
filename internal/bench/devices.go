package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// devicesReport is the one JSON line `bench devices --json` prints.
type devicesReport struct {
	Devices int    `json:"devices"`
	Hub     string `json:"hub"`
	// InitialS is how long it took every device to link at the start (they start spread over
	// ramp_s).
	InitialS float64 `json:"initial_s"`
	RampS    float64 `json:"ramp_s"`
	// HubRSSIdleMiB is the hub's resident memory before any device linked, HubRSSMiB with all
	// of them linked; RSSPerLinkKiB is the difference per device.
	HubRSSIdleMiB float64 `json:"hub_rss_idle_mib,omitempty"`
	// HubOnline is the devices the hub itself counts online (its /metrics) with all linked.
	HubOnline     float64 `json:"hub_devices_online,omitempty"`
	HubRSSMiB     float64 `json:"hub_rss_mib,omitempty"`
	RSSPerLinkKiB float64 `json:"rss_per_link_kib,omitempty"`
	// Restarts are the hub restarts timed, each from the moment the old hub was told to stop.
	Restarts []restartReport `json:"restarts,omitempty"`
	Load     [3]float64      `json:"load"`
	Errors   []string        `json:"errors,omitempty"`
}

type restartReport struct {
	// HubDownS: the stop signal → the new hub listening.
	HubDownS float64 `json:"hub_down_s"`
	// RelinkS: the stop signal → each device linked again (p50, p95, max in seconds).
	RelinkS Percentiles `json:"relink_s"`
	// Linked is how many devices were linked again within the timeout.
	Linked int `json:"linked"`
	// Told is how many links the hub closed saying it was restarting; Refused are the attempts
	// it refused (429, or rate_limited after the handshake); Failed the others that failed
	// (nothing listening while the hub was down, a socket closed at accept…).
	Told    int64 `json:"told_restarting"`
	Refused int64 `json:"refused"`
	Failed  int64 `json:"failed"`
	// HubRSSMiB is the new hub's resident memory with every device linked again.
	HubRSSMiB     float64 `json:"hub_rss_mib,omitempty"`
	RSSPerLinkKiB float64 `json:"rss_per_link_kib,omitempty"`
	HubOnline     float64 `json:"hub_devices_online,omitempty"`
}

const devicesUsage = `Usage: p2pcast bench devices [flags]

Keeps N device links to a hub from this one process (the device link protocol: challenge,
signed answer, welcome; no video), all from one address, as if behind one carrier-grade NAT.
By default it starts the hub itself (p2pcast hub, this binary, on 127.0.0.1 with a fresh data
directory where it enrols the N devices), measures the hub's memory per linked device, then
restarts the hub and times how long until every device is linked again. Progress goes to
stderr; --json prints one line last on stdout.

With --url it uses a running hub instead: --data must then name that hub's data directory, where
the devices bench-00000… are enrolled (new keys for those ids), and no restart is done unless
the hub is restarted by hand (the tool then reports the relink as it sees it, with --restarts).
`

func devicesBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("bench devices", "bench devices [flags]", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, devicesUsage+"\nFlags:\n"); fs.PrintDefaults() }
	n := fs.Int("devices", 1000, "device links to keep")
	url := fs.String("url", "", "device URL of a running hub, ws://HOST:PORT (default: start one)")
	dataDir := fs.String("data", "", "the hub's data directory, where the devices are enrolled (default: a fresh temporary one)")
	restarts := fs.Int("restarts", 1, "hub restarts to time (a hub the tool started: it restarts it; with --url: restarts done by hand)")
	ramp := fs.Duration("ramp", 0, "spread the devices' first connections over this long (default: 1 ms per device)")
	timeout := fs.Duration("timeout", 60*time.Second, "how long every device has to link again after a restart")
	settle := fs.Duration("settle", 2*time.Second, "wait this long with every device linked before reading the hub's memory")
	hubBin := fs.String("hub-bin", "", "run the hub from this p2pcast binary (default: this one), e.g. an older build to compare")
	hubArgs := fs.String("hub-args", "", "more flags of p2pcast hub, space-separated (e.g. \"--conn-rate 10 --conn-burst 20\" for the old limits)")
	asJSON := fs.Bool("json", false, "print exactly one JSON line, last on stdout")
	verbose := fs.Bool("v", false, "the hub's logs on stderr")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("%w: --devices %d: want 1 or more", cli.ErrUsage, *n)
	}
	if *url != "" && *dataDir == "" {
		return fmt.Errorf("%w: --url needs --data, the hub's data directory (to enrol the devices)", cli.ErrUsage)
	}
	if *ramp == 0 {
		*ramp = time.Duration(*n) * time.Millisecond
	}
	// A socket each here and at the hub (which inherits the limit), and some.
	if err := raiseFileLimit(uint64(*n)*2 + 4096); err != nil {
		fmt.Fprintf(stderr, "bench devices: raising the open files limit: %v (1 socket per device)\n", err)
	}
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "p2pcast-bench-devices-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dataDir = d
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	ids := make([]string, *n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%05d", i)
	}
	keys, err := store.EnrollDevices(ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench devices: %d devices enrolled in %s\n", *n, *dataDir)

	rep := devicesReport{Devices: *n, RampS: ramp.Seconds()}
	var h *benchHub
	if *url == "" {
		if h, err = startHub(ctx, *hubBin, *dataDir, strings.Fields(*hubArgs), *verbose, stderr); err != nil {
			return err
		}
		defer h.stop()
		*url = h.wsURL
		time.Sleep(500 * time.Millisecond) // its memory at rest
		rep.HubRSSIdleMiB = procRSSMiB(h.pid())
	}
	rep.Hub = *url

	// The devices, each a hub.Link as `p2pcast device` runs it, with a backend that has nothing
	// to show: the link protocol is all there is to it.
	counts := &linkCounts{}
	logger := slog.New(counts)
	links := make([]*hub.Link, *n)
	for i := range links {
		l, err := hub.NewLink(hub.LinkConfig{URL: *url, ID: ids[i], Key: keys[i], Backend: nullBackend{}, Logger: logger})
		if err != nil {
			return err
		}
		links[i] = l
	}
	lctx, stopLinks := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopLinks(); wg.Wait() }()
	t0 := time.Now()
	go func() {
		for i, l := range links {
			if lctx.Err() != nil {
				return
			}
			if wait := time.Until(t0.Add(*ramp * time.Duration(i) / time.Duration(*n))); wait > 0 {
				time.Sleep(wait)
			}
			wg.Go(func() { _ = l.Run(lctx) })
		}
	}()
	fmt.Fprintf(stderr, "bench devices: linking %d devices to %s over %s\n", *n, *url, ramp.Round(time.Millisecond))
	up := waitLinked(ctx, links, t0, *timeout+*ramp, stderr)
	if len(up) < *n {
		for _, k := range counts.top(5) {
			fmt.Fprintf(stderr, "bench devices:   %s\n", k)
		}
		return fmt.Errorf("only %d of %d devices linked within %s (refused %d, failed %d)", len(up), *n, *timeout+*ramp, counts.refused.Load(), counts.failed.Load())
	}
	rep.InitialS = round3(time.Since(t0).Seconds())
	for _, k := range counts.top(5) {
		fmt.Fprintf(stderr, "bench devices:   %s\n", k)
	}
	fmt.Fprintf(stderr, "bench devices: all %d linked after %.2f s (refused %d, failed %d)\n", *n, rep.InitialS, counts.refused.Load(), counts.failed.Load())
	if h != nil {
		time.Sleep(*settle)
		rep.HubRSSMiB = procRSSMiB(h.pid())
		rep.HubOnline = h.metric(ctx, "p2pcast_hub_devices_online")
		rep.RSSPerLinkKiB = round3((rep.HubRSSMiB - rep.HubRSSIdleMiB) * 1024 / float64(*n))
		fmt.Fprintf(stderr, "bench devices: hub RSS %.1f MiB idle, %.1f MiB with %d links: %.1f KiB per link\n",
			rep.HubRSSIdleMiB, rep.HubRSSMiB, *n, rep.RSSPerLinkKiB)
	}

	for r := range *restarts {
		counts.told.Store(0)
		counts.refused.Store(0)
		counts.failed.Store(0)
		var rr restartReport
		var t0 time.Time
		if h != nil {
			fmt.Fprintf(stderr, "bench devices: restart %d/%d: stopping the hub\n", r+1, *restarts)
			t0 = time.Now()
			if err := h.restart(ctx); err != nil {
				return err
			}
			rr.HubDownS = round3(time.Since(t0).Seconds())
		} else {
			fmt.Fprintf(stderr, "bench devices: restart %d/%d: waiting for the hub to go away (restart it now)\n", r+1, *restarts)
			if t0, err = waitAnyDown(ctx, links); err != nil {
				return err
			}
		}
		relinked := waitRelinked(ctx, links, t0, *timeout, stderr)
		rr.Linked = len(relinked)
		rr.RelinkS = percentiles(relinked)
		rr.RelinkS.P50, rr.RelinkS.P95, rr.RelinkS.P99, rr.RelinkS.Max = round3(rr.RelinkS.P50), round3(rr.RelinkS.P95), round3(rr.RelinkS.P99), round3(rr.RelinkS.Max)
		rr.Told, rr.Refused, rr.Failed = counts.told.Load(), counts.refused.Load(), counts.failed.Load()
		if h != nil {
			time.Sleep(*settle)
			rr.HubRSSMiB = procRSSMiB(h.pid())
			rr.HubOnline = h.metric(ctx, "p2pcast_hub_devices_online")
			rr.RSSPerLinkKiB = round3((rr.HubRSSMiB - rep.HubRSSIdleMiB) * 1024 / float64(*n))
		}
		fmt.Fprintf(stderr, "bench devices: restart %d: hub back after %.2f s; %d/%d relinked: p50 %.2f p95 %.2f max %.2f s after the stop; told restarting %d, refused %d, failed %d; hub RSS %.1f MiB (%.1f KiB per link)\n",
			r+1, rr.HubDownS, rr.Linked, *n, rr.RelinkS.P50, rr.RelinkS.P95, rr.RelinkS.Max, rr.Told, rr.Refused, rr.Failed, rr.HubRSSMiB, rr.RSSPerLinkKiB)
		for _, k := range counts.top(5) {
			fmt.Fprintf(stderr, "bench devices:   %s\n", k)
		}
		rep.Restarts = append(rep.Restarts, rr)
		if rr.Linked < *n {
			rep.Errors = append(rep.Errors, fmt.Sprintf("restart %d: only %d of %d devices linked again within %s", r+1, rr.Linked, *n, *timeout))
			break
		}
	}
	rep.Load = loadAvg()
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%s", strings.Join(rep.Errors, "; "))
	}
	return nil
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// waitLinked waits until every link is up, or timeout; it returns the seconds since t0 at
// which each came up (as polled, every 10 ms).
func waitLinked(ctx context.Context, links []*hub.Link, t0 time.Time, timeout time.Duration, stderr io.Writer) []float64 {
	return pollLinks(ctx, links, t0, timeout, false, stderr)
}

// waitRelinked waits until every link went down and came up again since t0.
func waitRelinked(ctx context.Context, links []*hub.Link, t0 time.Time, timeout time.Duration, stderr io.Writer) []float64 {
	return pollLinks(ctx, links, t0, timeout, true, stderr)
}

// pollLinks polls the links every 10 ms until each is up (after having been seen down, with
// mustGoDown), ctx ends or timeout passes.
func pollLinks(ctx context.Context, links []*hub.Link, t0 time.Time, timeout time.Duration, mustGoDown bool, stderr io.Writer) []float64 {
	down := make([]bool, len(links))
	for i := range down {
		down[i] = !mustGoDown
	}
	at := make([]float64, len(links))
	done := 0
	last := time.Now()
	for done < len(links) && time.Since(t0) < timeout && ctx.Err() == nil {
		now := time.Now()
		for i, l := range links {
			if at[i] > 0 {
				continue
			}
			c := l.Connected()
			if !c {
				down[i] = true
			} else if down[i] {
				at[i] = max(now.Sub(t0).Seconds(), 1e-6)
				done++
			}
		}
		if time.Since(last) > time.Second {
			fmt.Fprintf(stderr, "bench devices: %d/%d linked after %.1f s\n", done, len(links), time.Since(t0).Seconds())
			last = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := make([]float64, 0, done)
	for _, v := range at {
		if v > 0 {
			out = append(out, v)
		}
	}
	return out
}

// waitAnyDown waits until one of the links goes down (a hub restarted by hand).
func waitAnyDown(ctx context.Context, links []*hub.Link) (time.Time, error) {
	for ctx.Err() == nil {
		for _, l := range links {
			if !l.Connected() {
				return time.Now(), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, ctx.Err()
}

// linkCounts is the links' logger: it counts their failed attempts by kind and drops the rest.
type linkCounts struct {
	told, refused, failed atomic.Int64

	mu    sync.Mutex
	kinds map[string]int // errors by kind (digits blanked), a few dozen kinds at most
}

// top returns the most frequent error kinds, "count× kind" each, and forgets them.
func (c *linkCounts) top(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	type kc struct {
		k string
		n int
	}
	var all []kc
	for k, v := range c.kinds {
		all = append(all, kc{k, v})
	}
	slices.SortFunc(all, func(a, b kc) int { return b.n - a.n })
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%d× %s", all[i].n, all[i].k))
	}
	c.kinds = nil
	return out
}

func (c *linkCounts) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (c *linkCounts) WithAttrs([]slog.Attr) slog.Handler           { return c }
func (c *linkCounts) WithGroup(string) slog.Handler                { return c }
func (c *linkCounts) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "hub link down, reconnecting" {
		return nil
	}
	refused, told := false, false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			e := a.Value.String()
			refused = strings.Contains(e, "rate-limits") || strings.Contains(e, "rate_limited")
			told = strings.Contains(e, "hub: restarting")
			kind := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return '#'
				}
				return r
			}, e)
			c.mu.Lock()
			if c.kinds == nil {
				c.kinds = map[string]int{}
			}
			if _, ok := c.kinds[kind]; ok || len(c.kinds) < 50 {
				c.kinds[kind]++
			}
			c.mu.Unlock()
		}
		return true
	})
	switch {
	case told:
		c.told.Add(1)
	case refused:
		c.refused.Add(1)
	default:
		c.failed.Add(1)
	}
	return nil
}

// nullBackend is a device with nothing to show: sessions are refused (none are asked for).
type nullBackend struct{}

func (nullBackend) StreamInfo() *stream.Info       { return nil }
func (nullBackend) ICEServers() []webrtc.ICEServer { return nil }
func (nullBackend) NewSession(signal.Request) (signal.Session, error) {
	return nil, errors.New("bench device: no sessions")
}

// benchHub is a `p2pcast hub` (this binary) the benchmark started on 127.0.0.1.
type benchHub struct {
	exe     string // "": this binary
	args    []string
	cmd     *exec.Cmd
	tail    *tailWriter
	verbose bool
	stderr  io.Writer
	wsURL   string
	ops     string // http://127.0.0.1:PORT/
}

// startHub starts a hub on a free port of 127.0.0.1 with the embedded TURN server on any port.
func startHub(ctx context.Context, exe, data string, extra []string, verbose bool, stderr io.Writer) (*benchHub, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	h := &benchHub{
		exe:     exe,
		args:    append([]string{"hub", "--data", data, "--http", addr, "--public-ip", "127.0.0.1", "--turn-port", "-1"}, extra...),
		verbose: verbose, stderr: stderr, wsURL: "ws://" + addr, ops: "http://" + addr + "/",
	}
	return h, h.start(ctx)
}

func (h *benchHub) start(ctx context.Context) error {
	exe := h.exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	cmd := exec.Command(exe, h.args...)
	h.tail = &tailWriter{max: 8 << 10}
	cmd.Stderr = h.tail
	if h.verbose {
		cmd.Stderr = io.MultiWriter(h.stderr, h.tail)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	h.cmd = cmd
	// It prints its URL once it listens.
	line := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(out).ReadString('\n')
		line <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err = <-line:
	case <-time.After(20 * time.Second):
		err = fmt.Errorf("not listening after 20 s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		h.stop()
		return fmt.Errorf("the hub (%s %s) did not start: %v\n%s", filepath.Base(exe), strings.Join(h.args, " "), err, h.tail)
	}
	return nil
}

func (h *benchHub) pid() int { return h.cmd.Process.Pid }

// restart stops the hub as systemd would (SIGTERM) and starts it again on the same address;
// it returns once the new one listens.
func (h *benchHub) restart(ctx context.Context) error {
	h.stop()
	return h.start(ctx)
}

// stop ends the hub: SIGTERM, and SIGKILL after 10 s.
func (h *benchHub) stop() {
	if h.cmd != nil {
		stopProcess(h.cmd, 10*time.Second)
	}
}

// metric reads one unlabelled value from the hub's /metrics (0 if absent).
func (h *benchHub) metric(ctx context.Context, name string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.ops+"metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// raiseFileLimit raises this process's open files limit (soft and hard: root may) to at least
// n; children inherit it.
func raiseFileLimit(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= n {
		return nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(l.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Not root: as far as the hard limit goes.
		want = syscall.Rlimit{Cur: l.Max, Max: l.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err2 != nil || l.Max < n {
			return fmt.Errorf("%d wanted, %d allowed: %v", n, l.Max, err)
		}
	}
	return nil
}
