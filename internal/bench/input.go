package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/sway"
)

// The input benchmark: a key pressed in the browser → the desktop's changed pixels presented in
// the same browser. It starts its own headless sway with a foot terminal filling the output,
// whose shell flips the terminal's background between dark and light at each key it reads
// (OSC 11: the whole window repaints), a device streaming that desktop, and Chromium driving it.
// The page stamps each keydown (event.timeStamp) and watches, frame by frame
// (requestVideoFrameCallback), the centre of the picture for the flip; the device's recent
// frames (GET /api/frames) split the time into stages.

// inputPressGap is the time between two presses (plus up to inputPressJitter, so presses do not
// lock to the frame clock): long enough for a flip to show before the next press.
const (
	inputPressGap    = 300 * time.Millisecond
	inputPressJitter = 100 * time.Millisecond
	// inputMissAfter: a press whose flip has not been presented by then is counted as missed.
	inputMissAfter = time.Second
)

// inputFlipScript is what foot runs: each byte read flips the background (and nothing else is
// drawn: no echo, no cursor blink).
const inputFlipScript = `stty raw -echo; i=0; printf '\033[?25l\033]11;#101010\007'
while IFS= read -r -s -n 1 c; do
  if [ $i = 0 ]; then printf '\033]11;#f0f0f0\007'; i=1; else printf '\033]11;#101010\007'; i=0; fi
done`

// inputChanging is a desktop that changes every frame: weston's presentation test client
// commits a new picture at each frame callback (a terminal printing as fast as it can does not:
// foot redraws 1080p at ~40 fps here, the rest of its time parsing).
var inputChanging = []string{"weston-presentation-shm"}

// inputReport is the one JSON line `bench input --json` prints.
type inputReport struct {
	Size          string                 `json:"size"`
	FPS           int                    `json:"fps"`
	Bitrate       string                 `json:"bitrate"`
	InputToPhoton Percentiles            `json:"input_to_photon_ms"`
	StagesMS      map[string]Percentiles `json:"stages_ms"`
	Missed        int                    `json:"missed"`
	// Presses the page saw and flips it presented: the same number when every key flipped the
	// screen once.
	Presses int `json:"presses"`
	Flips   int `json:"flips"`
	// What Chromium's getStats says of the frames of the press phase: time in its jitter
	// buffer and decoding, per frame (part of sent_to_present).
	BrowserJitterBufferMS float64    `json:"browser_jitter_buffer_ms"`
	BrowserDecodeMS       float64    `json:"browser_decode_ms"`
	StaticCPUPct          float64    `json:"static_cpu_pct"`
	StaticFrames          int        `json:"static_frames"`
	FPSChanging           float64    `json:"fps_changing"`
	ChangingCPUPct        float64    `json:"changing_cpu_pct"`
	Load                  [3]float64 `json:"load"`
}

// inputStages are the parts of input → photon, in the order they happen.
var inputStages = []string{"input_to_capture", "capture_to_encoded", "encoded_to_sent", "sent_to_present"}

// pageInput mirrors window.__p2pcastInputBench (inputPageScript).
type pageInput struct {
	Presses []float64 `json:"presses"` // performance.now() of each keydown
	Flips   []struct {
		At     float64 `json:"at"` // presentationTime of the first frame showing the new colour
		Bright bool    `json:"bright"`
	} `json:"flips"`
	Frames      int     `json:"frames"`
	TimeOrigin  float64 `json:"timeOrigin"`
	ClockOffset float64 `json:"clockOffset"` // Date.now() − (timeOrigin + performance.now()), ms
}

// inputPageScript installs the page side: keydown stamps and a per-frame look at the centre of
// the picture, done only while a press waits for its flip (reading pixels costs the decoder's
// time on a software-decoding browser).
const inputPageScript = `(() => {
  const player = document.querySelector('p2pcast-player');
  const v = player.video;
  const c = new OffscreenCanvas(8, 8);
  const g = c.getContext('2d', { willReadFrequently: true });
  const st = { presses: [], flips: [], frames: 0, timeOrigin: performance.timeOrigin,
               clockOffset: Date.now() - (performance.timeOrigin + performance.now()) };
  let last = null;
  player.addEventListener('keydown', (e) => { if (!e.repeat) st.presses.push(e.timeStamp); }, true);
  const look = () => {
    g.drawImage(v, v.videoWidth / 2 - 4, v.videoHeight / 2 - 4, 8, 8, 0, 0, 8, 8);
    const d = g.getImageData(0, 0, 8, 8).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
    return sum / (d.length / 4 * 3) > 128;
  };
  const onFrame = (now, md) => {
    st.frames++;
    if (last === null || st.presses.length > st.flips.length) {
      const bright = look();
      if (last !== null && bright !== last) st.flips.push({ at: md.presentationTime, bright });
      last = bright;
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  window.__p2pcastInputBench = st;
  return true;
})()`

func inputBenchmark(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("bench input", "bench input [flags]", stderr)
	size := device.Size{W: 1920, H: 1080}
	fs.Var(&size, "size", "the desktop's (headless output's) size WxH")
	fps := fs.Int("fps", 60, "the device's frame rate")
	var bitrate device.Bitrate
	fs.Var(&bitrate, "bitrate", "the device's bitrate, SI units (default: the device's)")
	samples := fs.Int("samples", 40, "key presses measured")
	staticFor := fs.Duration("static", 10*time.Second, "how long the desktop's static cost is measured")
	changingFor := fs.Duration("changing", 5*time.Second, "how long the frame rate of a desktop that changes every frame is measured")
	chromium := fs.String("chromium", "", "Chromium binary (default "+browser.DefaultExecPath+")")
	asJSON := fs.Bool("json", false, "print exactly one JSON line, last on stdout")
	verbose := fs.Bool("v", false, "debug logs, with the device's, sway's and the browser's output")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	case *fps < 1 || *fps > 240:
		return fmt.Errorf("%w: fps %d: want 1 to 240", cli.ErrUsage, *fps)
	case *samples < 1:
		return fmt.Errorf("%w: samples %d: want at least 1", cli.ErrUsage, *samples)
	case size.W < 64 || size.H < 64:
		return fmt.Errorf("%w: size %s: want at least 64x64", cli.ErrUsage, size)
	case *staticFor <= 0 || *changingFor <= 0:
		return fmt.Errorf("%w: static and changing: want more than 0", cli.ErrUsage)
	}
	if !inNetns() {
		return reexecInNetns(ctx, "input", args, stdout, stderr)
	}
	b := &inputBench{log: cli.NewLogger(stderr, *verbose), verbose: *verbose, stderr: stderr, chromium: *chromium,
		size: size, fps: *fps, bitrate: bitrate, samples: *samples, static: *staticFor, changing: *changingFor}
	rep, err := b.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	if *asJSON {
		line, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(line))
	} else {
		printInput(stdout, rep)
	}
	return nil
}

type inputBench struct {
	log              *slog.Logger
	verbose          bool
	stderr           io.Writer
	chromium         string
	size             device.Size
	fps              int
	bitrate          device.Bitrate
	samples          int
	static, changing time.Duration
}

func (b *inputBench) run(ctx context.Context) (*inputReport, error) {
	rep := &inputReport{Size: b.size.String(), FPS: b.fps, Bitrate: device.Defaults().Bitrate.String(), StagesMS: map[string]Percentiles{}}
	if b.bitrate > 0 {
		rep.Bitrate = b.bitrate.String()
	}
	var swayLog io.Writer
	if b.verbose {
		swayLog = b.stderr
	}
	desk, err := sway.Start(ctx, sway.Options{Width: b.size.W, Height: b.size.H, Log: swayLog,
		Config: []string{"default_border none", "hide_edge_borders both"}})
	if err != nil {
		return nil, fmt.Errorf("starting a headless sway: %w", err)
	}
	defer desk.Close()
	flip, err := desk.Run("foot", "-o", "cursor.blink=no", "bash", "-c", inputFlipScript)
	if err != nil {
		return nil, err
	}
	defer flip.Stop()

	o := deviceOptions{fps: b.fps, env: desk.Env(), extra: []string{"--source", "wayland"}, log: b.log, verbose: b.verbose, stderr: b.stderr}
	if b.bitrate > 0 {
		o.bitrate = b.bitrate.String()
	}
	dev, err := startDevice(ctx, o)
	if err != nil {
		return nil, err
	}
	defer dev.stop()
	b.log.Info("device up", "url", dev.url, "size", rep.Size, "fps", b.fps)

	br, err := launchBrowser(ctx, b.chromium, b.verbose, b.stderr)
	if err != nil {
		return nil, err
	}
	defer br.Close()
	tab, err := br.NewPage(ctx)
	if err != nil {
		return nil, err
	}
	defer tab.Close()
	if err := tab.Navigate(ctx, dev.url+"?overlay=0"); err != nil {
		return nil, err
	}
	if err := waitInControl(ctx, tab, b.size, 20*time.Second); err != nil {
		return nil, err
	}
	if _, err := browser.Eval[bool](ctx, tab, inputPageScript); err != nil {
		return nil, fmt.Errorf("installing the page's probe: %w", err)
	}
	// The page takes keys when focused: a click on the picture focuses it (and lands in the
	// terminal, which ignores it).
	if err := clickCentre(ctx, tab); err != nil {
		return nil, err
	}

	// Input → photon.
	rx0, err := readReceiver(ctx, tab)
	if err != nil {
		return nil, err
	}
	b.log.Info("pressing keys", "samples", b.samples)
	for i := range b.samples {
		if err := sleep(ctx, inputPressGap+time.Duration(rand.Int64N(int64(inputPressJitter)))); err != nil {
			return nil, err
		}
		if err := pressKey(ctx, tab, "KeyA", "a", 'A'); err != nil {
			return nil, fmt.Errorf("press %d: %w", i+1, err)
		}
	}
	if err := sleep(ctx, inputMissAfter); err != nil {
		return nil, err
	}
	rx1, err := readReceiver(ctx, tab)
	if err != nil {
		return nil, err
	}
	if n := rx1.JitterBufferEmittedCount - rx0.JitterBufferEmittedCount; n > 0 {
		rep.BrowserJitterBufferMS = round2(1000 * (rx1.JitterBufferDelay - rx0.JitterBufferDelay) / n)
	}
	if n := rx1.FramesDecoded - rx0.FramesDecoded; n > 0 {
		rep.BrowserDecodeMS = round2(1000 * (rx1.TotalDecodeTime - rx0.TotalDecodeTime) / n)
	}
	page, err := browser.Eval[pageInput](ctx, tab, `window.__p2pcastInputBench`)
	if err != nil {
		return nil, fmt.Errorf("reading the page's probe: %w", err)
	}
	frames, err := fetchFrames(ctx, dev.url+"api/frames")
	if err != nil {
		b.log.Info("no device frame times: stages left out", "err", err)
	}
	rep.Presses, rep.Flips = len(page.Presses), len(page.Flips)
	b.log.Debug("page", "presses", page.Presses, "flips", page.Flips)
	totals, stages, missed := pairPresses(page, frames)
	rep.InputToPhoton, rep.Missed = roundPercentiles(percentiles(totals)), missed
	for _, name := range inputStages {
		if len(stages[name]) > 0 {
			rep.StagesMS[name] = roundPercentiles(percentiles(stages[name]))
		}
	}

	// A static desktop: what the device and its producer cost while nothing changes.
	procs := func() float64 { return procTreeCPU(dev.pid()) }
	if err := sleep(ctx, time.Second); err != nil { // the last flip settles
		return nil, err
	}
	f0 := readFrames(ctx, tab)
	c0, t0 := procs(), time.Now()
	if err := sleep(ctx, b.static); err != nil {
		return nil, err
	}
	rep.StaticCPUPct = math.Round(1000*(procs()-c0)/time.Since(t0).Seconds()) / 10
	rep.StaticFrames = readFrames(ctx, tab) - f0

	// A desktop that changes every frame: frames presented per second.
	flip.Stop()
	busy, err := desk.Run(inputChanging[0], inputChanging[1:]...)
	if err != nil {
		return nil, err
	}
	defer busy.Stop()
	if err := sleep(ctx, 2*time.Second); err != nil { // the window maps and fills
		return nil, err
	}
	f0 = readFrames(ctx, tab)
	c0, t0 = procs(), time.Now()
	if err := sleep(ctx, b.changing); err != nil {
		return nil, err
	}
	rep.FPSChanging = math.Round(10*float64(readFrames(ctx, tab)-f0)/time.Since(t0).Seconds()) / 10
	rep.ChangingCPUPct = math.Round(1000*(procs()-c0)/time.Since(t0).Seconds()) / 10
	rep.Load = loadAvg()
	return rep, nil
}

// pairPresses matches each press with the first flip presented after it and before the next
// press, and splits the time by the device's frames: the first frame captured after the press
// is the one that shows it (the desktop changes only at presses).
func pairPresses(p pageInput, frames []frameTimes) (totals []float64, stages map[string][]float64, missed int) {
	stages = map[string][]float64{}
	sort.Slice(frames, func(i, j int) bool { return frames[i].CaptureUS < frames[j].CaptureUS })
	epochMS := func(pageMS float64) float64 { return p.TimeOrigin + pageMS + p.ClockOffset }
	f := 0
	for i, press := range p.Presses {
		next := math.Inf(1)
		if i+1 < len(p.Presses) {
			next = p.Presses[i+1]
		}
		for f < len(p.Flips) && p.Flips[f].At < press {
			f++
		}
		if f == len(p.Flips) || p.Flips[f].At >= next || p.Flips[f].At-press > float64(inputMissAfter.Milliseconds()) {
			missed++
			continue
		}
		at := p.Flips[f].At
		totals = append(totals, at-press)
		pressUS := epochMS(press) * 1000
		k := sort.Search(len(frames), func(k int) bool { return float64(frames[k].CaptureUS) > pressUS })
		if k < len(frames) && frames[k].EncodedUS > 0 && frames[k].SentUS > 0 {
			fr := frames[k]
			stages["input_to_capture"] = append(stages["input_to_capture"], (float64(fr.CaptureUS)-pressUS)/1000)
			stages["capture_to_encoded"] = append(stages["capture_to_encoded"], float64(fr.EncodedUS-fr.CaptureUS)/1000)
			stages["encoded_to_sent"] = append(stages["encoded_to_sent"], float64(fr.SentUS-fr.EncodedUS)/1000)
			stages["sent_to_present"] = append(stages["sent_to_present"], epochMS(at)-float64(fr.SentUS)/1000)
		}
		f++
	}
	return totals, stages, missed
}

// receiverStats are the counters of Chromium's inbound video the benchmark reads.
type receiverStats struct {
	JitterBufferDelay        float64 `json:"jitterBufferDelay"`
	JitterBufferEmittedCount float64 `json:"jitterBufferEmittedCount"`
	TotalDecodeTime          float64 `json:"totalDecodeTime"`
	FramesDecoded            float64 `json:"framesDecoded"`
}

func readReceiver(ctx context.Context, tab *browser.Page) (receiverStats, error) {
	rs, err := browser.Eval[[]receiverStats](ctx, tab, `window.p2pcast.inboundVideo()`)
	if err != nil || len(rs) == 0 {
		return receiverStats{}, fmt.Errorf("reading the page's receiver statistics: %v (%d reports)", err, len(rs))
	}
	return rs[0], nil
}

// waitInControl waits until the page plays the desktop at its size and holds control.
func waitInControl(ctx context.Context, tab *browser.Page, size device.Size, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := browser.Eval[bool](ctx, tab, fmt.Sprintf(`(async () => {
		  const s = await window.p2pcast.stats();
		  const c = window.p2pcast.control?.();
		  return s.framesDecoded > 0 && s.frameWidth === %d && s.frameHeight === %d && c?.controlling === true;
		})()`, size.W, size.H))
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the page did not play the desktop in control within %s (%v)", within, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func readFrames(ctx context.Context, tab *browser.Page) int {
	n, _ := browser.Eval[int](ctx, tab, `window.__p2pcastInputBench.frames`)
	return n
}

func clickCentre(ctx context.Context, tab *browser.Page) error {
	type point struct{ X, Y float64 }
	p, err := browser.Eval[point](ctx, tab, `(() => {
	  const r = document.querySelector('p2pcast-player').video.getBoundingClientRect();
	  return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
	})()`)
	if err != nil {
		return err
	}
	for _, typ := range []input.DispatchMouseEventType{input.DispatchMouseEventTypeMouseMoved, input.DispatchMouseEventTypeMousePressed, input.DispatchMouseEventTypeMouseReleased} {
		ev := input.DispatchMouseEventParams{Type: typ, X: p.X, Y: p.Y}
		if typ != input.DispatchMouseEventTypeMouseMoved {
			ev.Button, ev.Buttons, ev.ClickCount = input.MouseButtonLeft, 1, 1
		}
		if err := dispatchInput(ctx, tab, input.DispatchMouseEvent, ev); err != nil {
			return fmt.Errorf("clicking the picture: %w", err)
		}
	}
	return nil
}

// pressKey presses and releases one key as a keyboard would.
func pressKey(ctx context.Context, tab *browser.Page, code, key string, vk int64) error {
	down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Code: code, Key: key, Text: key, WindowsVirtualKeyCode: vk}
	up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Code: code, Key: key, WindowsVirtualKeyCode: vk}
	if err := dispatchInput(ctx, tab, input.DispatchKeyEvent, down); err != nil {
		return err
	}
	return dispatchInput(ctx, tab, input.DispatchKeyEvent, up)
}

func dispatchInput[P any](ctx context.Context, tab *browser.Page, cmd cdp.Command[P, cdp.Empty], params P) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return browser.Dispatch(cctx, tab, cmd, params)
}

// procTreeCPU is the CPU seconds of pid and its children (the device and its producer).
func procTreeCPU(pid int) float64 {
	total := procCPU(pid)
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				total += procCPU(c)
			}
		}
	}
	return total
}

func printInput(w io.Writer, rep *inputReport) {
	fmt.Fprintf(w, "desktop %s at up to %d fps, %s\n", rep.Size, rep.FPS, rep.Bitrate)
	p := rep.InputToPhoton
	fmt.Fprintf(w, "input → photon: p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d presses, %d missed)\n", p.P50, p.P95, p.Max, p.Samples, rep.Missed)
	for _, name := range inputStages {
		if s, ok := rep.StagesMS[name]; ok {
			fmt.Fprintf(w, "  %-20s p50 %6.1f ms  p95 %6.1f ms\n", name, s.P50, s.P95)
		}
	}
	fmt.Fprintf(w, "  in Chromium: jitter buffer %.1f ms, decode %.1f ms per frame\n", rep.BrowserJitterBufferMS, rep.BrowserDecodeMS)
	fmt.Fprintf(w, "static desktop: device + producer %.1f %% of a core, %d frames presented\n", rep.StaticCPUPct, rep.StaticFrames)
	fmt.Fprintf(w, "changing desktop: %.1f frames presented per second, device + producer %.1f %% of a core\n", rep.FPSChanging, rep.ChangingCPUPct)
	fmt.Fprintf(w, "load average %.2f %.2f %.2f\n", rep.Load[0], rep.Load[1], rep.Load[2])
}
