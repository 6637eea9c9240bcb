package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/device"
)

// latencyWarmup is skipped after the first frame: the join's keyframe and the decoder's start.
const latencyWarmup = time.Second

// latencyStages are the parts of capture → present, in the order they happen.
var latencyStages = []string{"capture_to_encoded", "encoded_to_sent", "sent_to_received", "jitter_buffer", "decode"}

// latencyReport is the one JSON line `bench latency --json` prints.
type latencyReport struct {
	Size           string                 `json:"size"`
	FPS            int                    `json:"fps"`
	Bitrate        string                 `json:"bitrate"`
	DurationS      float64                `json:"duration_s"`
	PresentMS      Percentiles            `json:"present_ms"`
	Display60MS    Percentiles            `json:"display60_ms"`
	TTFFMS         Percentiles            `json:"ttff_ms"`
	TTFFPostMS     Percentiles            `json:"ttff_post_ms"`
	StagesMS       map[string]Percentiles `json:"stages_ms"`
	Load           [3]float64             `json:"load"`
	DroppedSamples int                    `json:"dropped_samples"`
	StripErrors    int                    `json:"strip_errors"`
	FrameFormats   map[string]int         `json:"frame_formats"`
	JoinsFailed    int                    `json:"joins_failed"`
	DeviceCPUPct   float64                `json:"device_cpu_pct"`
}

// pageLatency mirrors window.p2pcast.latency() in web/diag.js.
type pageLatency struct {
	Samples      []pageSample   `json:"samples"`
	Total        int            `json:"total"`
	Dropped      int            `json:"dropped"`
	StripErrors  int            `json:"stripErrors"`
	CopyErrors   int            `json:"copyErrors"`
	Formats      map[string]int `json:"formats"`
	RequestAt    *float64       `json:"requestAt"`
	FirstFrameAt *float64       `json:"firstFrameAt"`
	NavStart     float64        `json:"navStart"`
	ClockOffset  float64        `json:"clockOffsetMs"`
}

type pageSample struct {
	CaptureUS          float64  `json:"capture_us"` // a JS number; exact below 2^53
	PresentMS          float64  `json:"present_ms"`
	Display60MS        float64  `json:"display60_ms"`
	ReceiveToPresentMS *float64 `json:"receive_to_present_ms"`
	DecodeMS           float64  `json:"decode_ms"`
	JitterMS           *float64 `json:"jitter_ms"`
	ReceiveEpochMS     *float64 `json:"receive_epoch_ms"`
	PresentEpochMS     float64  `json:"present_epoch_ms"`
	RTP                *uint32  `json:"rtp"`
}

// frameTimes is one entry of the device's GET /api/frames, µs since the epoch (0: unknown).
type frameTimes struct {
	CaptureUS  int64 `json:"capture_us"`
	EncodedUS  int64 `json:"encoded_us"`
	ReceivedUS int64 `json:"received_us"`
	SentUS     int64 `json:"sent_us"`
}

// errNoFramesAPI: the device predates GET /api/frames.
var errNoFramesAPI = errors.New("the device has no /api/frames")

func latency(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("bench latency", "bench latency [flags]", stderr)
	page := addPageFlags(fs)
	duration := fs.Duration("duration", 20*time.Second, "how long to collect per-frame samples")
	joins := fs.Int("joins", 20, "fresh page loads measured for time to first frame")
	asJSON := fs.Bool("json", false, "print exactly one JSON line, last on stdout")
	dump := fs.String("samples", "", "also write every presented frame's figures to this file, one JSON object a line")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := page.check(); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	case *duration <= 0:
		return fmt.Errorf("%w: duration %s: want more than 0", cli.ErrUsage, *duration)
	case *joins < 0:
		return fmt.Errorf("%w: joins %d: want 0 or more", cli.ErrUsage, *joins)
	}
	if !inNetns() {
		return reexecInNetns(ctx, "latency", args, stdout, stderr)
	}
	b := &latencyBench{pageBench: page.bench(stderr), duration: *duration, joins: *joins, dump: *dump}
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
		printLatency(stdout, rep)
	}
	return nil
}

type latencyBench struct {
	pageBench
	duration time.Duration
	joins    int
	dump     string
}

func (b *latencyBench) run(ctx context.Context) (*latencyReport, error) {
	rep := &latencyReport{Size: b.size.String(), FPS: b.fps, Bitrate: device.Defaults().Bitrate.String(), StagesMS: map[string]Percentiles{}}
	if b.bitrate > 0 {
		rep.Bitrate = b.bitrate.String()
	}
	o := deviceOptions{size: b.size.String(), fps: b.fps, extra: []string{"--max-viewers", fmt.Sprint(b.joins + 10)},
		log: b.log, verbose: b.verbose, stderr: b.stderr}
	if b.bitrate > 0 {
		o.bitrate = b.bitrate.String()
	}
	if b.playout != "" {
		o.extra = append(o.extra, "--playout-delay", b.playout)
	}
	dev, err := startDevice(ctx, o)
	if err != nil {
		return nil, err
	}
	defer dev.stop()
	b.log.Info("device up", "url", dev.url, "size", rep.Size, "fps", b.fps, "bitrate", rep.Bitrate)

	br, err := launchBrowser(ctx, b.chromium, b.verbose, b.stderr)
	if err != nil {
		return nil, err
	}
	defer br.Close()
	page := dev.url + "?diag=1"

	// Capture → present, split into stages.
	cpu0, t0 := procCPU(dev.pid()), time.Now()
	samples, frames, last, err := b.collect(ctx, br, page, dev.url+"api/frames")
	if err != nil {
		return nil, err
	}
	rep.DeviceCPUPct = math.Round(1000*(procCPU(dev.pid())-cpu0)/time.Since(t0).Seconds()) / 10
	rep.DurationS = b.duration.Seconds()
	rep.DroppedSamples, rep.StripErrors, rep.FrameFormats = last.Dropped, last.StripErrors, last.Formats
	b.stages(rep, samples, frames)
	if b.dump != "" {
		if err := dumpSamples(b.dump, samples, frames); err != nil {
			return nil, err
		}
	}
	if total := len(samples) + rep.DroppedSamples; total > 0 {
		b.log.Info("samples", "kept", len(samples), "dropped", rep.DroppedSamples,
			"dropped_pct", math.Round(1000*float64(rep.DroppedSamples)/float64(total))/10,
			"strip_errors", rep.StripErrors, "copy_errors", last.CopyErrors, "formats", rep.FrameFormats,
			"page_clock_offset_ms", math.Round(100*last.ClockOffset)/100)
	}

	// Time to first frame of fresh page loads.
	var ttff, post []float64
	for i := range b.joins {
		first, req, err := b.join(ctx, br, page)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			rep.JoinsFailed++
			b.log.Warn("join failed", "join", i+1, "err", err)
			continue
		}
		ttff = append(ttff, first)
		if req >= 0 {
			post = append(post, req)
		}
		b.log.Debug("join", "join", i+1, "first_frame_ms", first, "after_request_ms", req)
	}
	if b.joins > 0 {
		b.log.Info("joins", "ok", len(ttff), "failed", rep.JoinsFailed)
	}
	rep.TTFFMS = roundPercentiles(percentiles(ttff))
	rep.TTFFPostMS = roundPercentiles(percentiles(post))
	rep.Load = loadAvg()
	return rep, nil
}

// collect opens the diagnostics page, skips the warm-up, and gathers the page's samples and the
// device's frame times for the run's duration. It polls both every second, so that neither the
// page's ring nor the device's window of recent frames can overflow.
func (b *latencyBench) collect(ctx context.Context, br *browser.Browser, page, framesURL string) ([]pageSample, map[int64]frameTimes, pageLatency, error) {
	var last pageLatency
	tab, err := openPage(ctx, br, page, b.log, b.verbose)
	if err != nil {
		return nil, nil, last, err
	}
	defer tab.Close()
	if _, err := waitFirstFrame(ctx, tab, 15*time.Second); err != nil {
		return nil, nil, last, fmt.Errorf("the diagnostics page showed no frame: %w", err)
	}
	if err := sleep(ctx, latencyWarmup); err != nil {
		return nil, nil, last, err
	}
	start, err := pollLatency(ctx, tab, math.MaxInt32)
	if err != nil {
		return nil, nil, last, err
	}
	since := start.Total
	b.log.Info("collecting", "duration", b.duration)
	var samples []pageSample
	frames := map[int64]frameTimes{}
	framesOK := true
	end := time.Now().Add(b.duration)
	for done := false; !done; {
		wait := min(time.Second, time.Until(end))
		if err := sleep(ctx, wait); err != nil {
			return nil, nil, last, err
		}
		done = !time.Now().Before(end)
		l, err := pollLatency(ctx, tab, since)
		if err != nil {
			return nil, nil, last, err
		}
		if skipped := l.Total - since - len(l.Samples); skipped > 0 {
			b.log.Warn("page samples lost", "n", skipped)
		}
		samples = append(samples, l.Samples...)
		since, last = l.Total, l
		if framesOK {
			fr, err := fetchFrames(ctx, framesURL)
			switch {
			case errors.Is(err, errNoFramesAPI):
				framesOK = false
				b.log.Warn("the device does not serve /api/frames: stages capture_to_encoded, encoded_to_sent and sent_to_received are left out")
			case err != nil:
				b.log.Warn("reading /api/frames", "err", err)
			}
			for _, f := range fr {
				frames[f.CaptureUS] = f
			}
		}
		b.log.Debug("progress", "samples", len(samples), "frames", len(frames))
	}
	// Counts over the collection only.
	last.Dropped -= start.Dropped
	last.StripErrors -= start.StripErrors
	last.CopyErrors -= start.CopyErrors
	for k, n := range start.Formats {
		last.Formats[k] -= n
	}
	if len(samples) == 0 {
		return nil, nil, last, fmt.Errorf("no frame's capture time could be read in %s (strip errors %d, copy errors %d, dropped %d, formats %v)",
			b.duration, last.StripErrors, last.CopyErrors, last.Dropped, last.Formats)
	}
	return samples, frames, last, nil
}

// stages fills the report's latency figures from the page's samples joined on capture time with
// the device's frames.
func (b *latencyBench) stages(rep *latencyReport, samples []pageSample, frames map[int64]frameTimes) {
	var present, display []float64
	st := map[string][]float64{}
	matched := 0
	for _, s := range samples {
		present = append(present, s.PresentMS)
		display = append(display, s.Display60MS)
		st["decode"] = append(st["decode"], s.DecodeMS)
		if s.JitterMS != nil {
			st["jitter_buffer"] = append(st["jitter_buffer"], *s.JitterMS)
		}
		f, ok := lookupFrame(frames, int64(s.CaptureUS))
		if !ok {
			continue
		}
		matched++
		if f.EncodedUS > 0 {
			st["capture_to_encoded"] = append(st["capture_to_encoded"], float64(f.EncodedUS-f.CaptureUS)/1000)
		}
		if f.SentUS > 0 && f.EncodedUS > 0 {
			st["encoded_to_sent"] = append(st["encoded_to_sent"], float64(f.SentUS-f.EncodedUS)/1000)
		}
		if f.SentUS > 0 && s.ReceiveEpochMS != nil {
			st["sent_to_received"] = append(st["sent_to_received"], *s.ReceiveEpochMS-float64(f.SentUS)/1000)
		}
	}
	if len(frames) > 0 && matched == 0 {
		b.log.Warn("no presented frame matched a frame of /api/frames: device stages left out", "frames", len(frames))
	}
	rep.PresentMS = roundPercentiles(percentiles(present))
	rep.Display60MS = roundPercentiles(percentiles(display))
	for _, name := range latencyStages {
		if v := st[name]; len(v) > 0 {
			rep.StagesMS[name] = roundPercentiles(percentiles(v))
		}
	}
}

// dumpSamples writes each sample and its device frame (if any) as a line of JSON.
func dumpSamples(path string, samples []pageSample, frames map[int64]frameTimes) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, s := range samples {
		line := struct {
			pageSample
			Device *frameTimes `json:"device,omitempty"`
		}{pageSample: s}
		if fr, ok := lookupFrame(frames, int64(s.CaptureUS)); ok {
			line.Device = &fr
		}
		_ = enc.Encode(line)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lookupFrame finds the device's frame of a capture time; the device's µs and the strip's may
// round differently.
func lookupFrame(frames map[int64]frameTimes, captureUS int64) (frameTimes, bool) {
	for _, c := range []int64{captureUS, captureUS - 1, captureUS + 1} {
		if f, ok := frames[c]; ok {
			return f, true
		}
	}
	return frameTimes{}, false
}

// join loads the page in a new tab and returns, in ms, navigation start → first frame and the
// player's signaling request → first frame (-1 if the page did not say).
func (b *latencyBench) join(ctx context.Context, br *browser.Browser, page string) (first, afterRequest float64, err error) {
	tab, err := openPage(ctx, br, page, b.log, b.verbose)
	if err != nil {
		return 0, 0, err
	}
	// Closing the tab sends the device bye (pagehide), so the joins do not pile up.
	defer tab.Close()
	l, err := waitFirstFrame(ctx, tab, 15*time.Second)
	if err != nil {
		return 0, 0, err
	}
	first, afterRequest = *l.FirstFrameAt, -1
	if l.RequestAt != nil {
		afterRequest = *l.FirstFrameAt - *l.RequestAt
	}
	return first, afterRequest, nil
}

// pollLatency reads the page's samples after the since-th (none for a large since).
func pollLatency(ctx context.Context, tab *browser.Page, since int) (pageLatency, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := browser.Eval[*pageLatency](cctx, tab, fmt.Sprintf(`window.p2pcast?.latency?.(%d) ?? null`, since))
	switch {
	case err != nil:
		return pageLatency{}, fmt.Errorf("reading the page's latency samples: %w", err)
	case l == nil:
		return pageLatency{}, errors.New("the page has no window.p2pcast.latency (diag.js not loaded)")
	}
	return *l, nil
}

// waitFirstFrame polls the page until it has presented its first frame. The page records the
// times itself, so the polling interval costs no accuracy.
func waitFirstFrame(ctx context.Context, tab *browser.Page, within time.Duration) (pageLatency, error) {
	deadline := time.Now().Add(within)
	for {
		l, err := pollLatency(ctx, tab, math.MaxInt32)
		if err == nil && l.FirstFrameAt != nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no frame")
			}
			return l, fmt.Errorf("first frame not within %s: %w", within, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return l, err
		}
	}
}

func fetchFrames(ctx context.Context, url string) ([]frameTimes, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return nil, errNoFramesAPI
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var body struct {
		Frames []frameTimes `json:"frames"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return body.Frames, nil
}

func printLatency(w io.Writer, rep *latencyReport) {
	var formats []string
	for _, f := range slices.Sorted(maps.Keys(rep.FrameFormats)) {
		formats = append(formats, fmt.Sprintf("%s ×%d", f, rep.FrameFormats[f]))
	}
	fmt.Fprintf(w, "bench latency: %s @ %d fps, %s bit/s, %.0f s of samples, %d fresh page loads\n",
		rep.Size, rep.FPS, rep.Bitrate, rep.DurationS, rep.TTFFMS.Samples+rep.JoinsFailed)
	fmt.Fprintf(w, "frames: %s; %d samples dropped (newer frame than its metadata), %d strip errors\n\n",
		strings.Join(formats, ", "), rep.DroppedSamples, rep.StripErrors)
	fmt.Fprintf(w, "%-26s %8s %8s %8s %8s %8s\n", "ms", "p50", "p95", "p99", "max", "samples")
	row := func(name string, p Percentiles) {
		if p.Samples == 0 {
			fmt.Fprintf(w, "%-26s %8s %8s %8s %8s %8d\n", name, "–", "–", "–", "–", 0)
			return
		}
		fmt.Fprintf(w, "%-26s %8.2f %8.2f %8.2f %8.2f %8d\n", name, p.P50, p.P95, p.P99, p.Max, p.Samples)
	}
	row("capture → present", rep.PresentMS)
	row("capture → 60 Hz display", rep.Display60MS)
	labels := map[string]string{
		"capture_to_encoded": "  capture → encoded", "encoded_to_sent": "  encoded → sent",
		"sent_to_received": "  sent → received", "jitter_buffer": "  jitter buffer", "decode": "  decode",
	}
	for _, name := range latencyStages {
		if p, ok := rep.StagesMS[name]; ok {
			row(labels[name], p)
		}
	}
	row("page start → first frame", rep.TTFFMS)
	row("request → first frame", rep.TTFFPostMS)
	fmt.Fprintf(w, "\njoins failed %d; device CPU %.1f%%; load %.2f %.2f %.2f\n", rep.JoinsFailed, rep.DeviceCPUPct, rep.Load[0], rep.Load[1], rep.Load[2])
}
