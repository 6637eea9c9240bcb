package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"time"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/cli"
)

// bench avsync: audio/video sync as headless Chromium presents it. The device sends its test
// tone (a beep from every whole second k of the capture clock) and its test pattern (a flash on
// the first picture captured at or after k); the page (web/diag.js, window.p2pcast.avsync())
// reports when each beep's onset is presented and when the first picture of each second is
// presented, with that picture's capture time and whether it really is the flash. For each
// second k that has both:
//
//	av_offset = (beep onset reaches the page's audio graph − k) − (flash presented − flash capture)
//
// positive when the audio is late. Both sides are timed where the media leaves the browser's
// WebRTC pipeline for its output, and both output devices are left out alike: for the video,
// metadata.presentationTime of requestVideoFrameCallback (the compositor took the frame; the
// display's vsync and panel not counted); for the audio, the moment the page's AudioWorklet got
// the onset sample (the track delivered it to WebAudio; the audio device's delay not counted).
// Chromium's lip sync lines the element's audio output up with the video it renders, with the
// audio device's reported delay on the audio side, so this is the offset a viewer sees and hears
// when the audio device is as fast as the display.
//
// output_av_offset_ms also counts the audio device: the onset leaving the AudioContext's output
// (getOutputTimestamp(), the device's reported delay included). It is WebAudio's output path,
// not the element's, and runs 30–40 ms later than Chromium's estimate for the element in
// headless Chromium (a fake output device with 32 ms output and 10 ms base latency), so it
// overstates what a viewer hears; the report carries Chromium's own view (chromium_*) too.
// Both presentations are on the page's performance clock and both captures on the device's, so
// the offset needs no clock sync between them.
//
// The beep carries no capture time: an onset belongs to the whole second nearest to its
// presentation minus the video's median latency, so offsets beyond ±500 ms cannot be told from
// a neighbouring second (the report warns from ±250 ms).

// avsyncWarmup lets Chromium's lip sync settle after the first sender reports: its filtered
// steps took 10–20 s here to bring the video's delay up to the audio's (the offset in those
// first seconds reaches ~45 ms; a run with --warmup 1s shows it).
const avsyncWarmup = 20 * time.Second

// avsyncMaxDuration keeps every second of a run inside the page's memory (AVSYNC_KEEP in diag.js).
const avsyncMaxDuration = 30 * time.Minute

// ntpUnixMS is 1970 − 1900 in ms: captureTimestamp is on the NTP epoch.
const ntpUnixMS = 2208988800000

// flashLuma mirrors FLASH_LUMA of web/diag.js, for the log only.
const flashLuma = 135

// avsyncReport is the one JSON line `bench avsync --json` prints.
type avsyncReport struct {
	Size      string  `json:"size"`
	FPS       int     `json:"fps"`
	DurationS float64 `json:"duration_s"`
	// AVOffsetMS is audio − video per second (positive: audio late), both where they leave the
	// WebRTC pipeline for their output; AbsOffsetMS its magnitude. OutputAVOffsetMS counts the
	// audio device's delay too (WebAudio's output; see the package comment).
	AVOffsetMS       Spread      `json:"av_offset_ms"`
	AbsOffsetMS      Percentiles `json:"abs_av_offset_ms"`
	OutputAVOffsetMS Spread      `json:"output_av_offset_ms"`
	// Capture → presentation of the beep's onset and of the flash, over the matched seconds.
	AudioLatencyMS Percentiles `json:"audio_latency_ms"`
	VideoLatencyMS Percentiles `json:"video_latency_ms"`
	// Where the audio's time goes: capture → delivered to the track (getSynchronizationSources:
	// timestamp − abs-capture-time, to 10 ms: the last packet of a 10 ms chunk) and capture → the
	// page's worklet saw the onset (after WebAudio's FIFO; to 3 ms, a render quantum); the
	// rest of AudioLatencyMS is the AudioContext's output delay. VideoDeliveredMS likewise.
	AudioDeliveredMS Percentiles `json:"audio_delivered_ms"`
	WebAudioInMS     Percentiles `json:"webaudio_in_ms"`
	VideoDeliveredMS Percentiles `json:"video_delivered_ms"`
	// ChromiumOffsetMS is what Chromium's lip sync itself reports, once a second: the capture
	// time of the video playing out minus that of the audio (inbound-rtp
	// estimatedPlayoutTimestamp); positive: audio late.
	ChromiumOffsetMS Spread `json:"chromium_offset_ms"`
	// Chromium's capture → playout of each track by the same estimates: the snapshot's time
	// minus the capture time of what plays out.
	ChromiumAudioMS Percentiles `json:"chromium_audio_latency_ms"`
	ChromiumVideoMS Percentiles `json:"chromium_video_latency_ms"`
	// Jitter buffer delays of each receiver (per sample or frame, one reading a second).
	AudioJitterBufferMS Percentiles `json:"audio_jitter_buffer_ms"`
	VideoJitterBufferMS Percentiles `json:"video_jitter_buffer_ms"`
	avsyncCounts
	Audio        pageAudio  `json:"audio_context"`
	Load         [3]float64 `json:"load"`
	DeviceCPUPct float64    `json:"device_cpu_pct"`
}

// avsyncCounts says what was paired and what was left out, over the run's seconds.
type avsyncCounts struct {
	Seconds          int `json:"seconds"`           // whole seconds of the run
	Beeps            int `json:"beeps"`             // onsets detected
	Flashes          int `json:"flashes"`           // first presented pictures of a second that are the flash
	Matched          int `json:"matched"`           // seconds with both
	BeepsUnmatched   int `json:"beeps_unmatched"`   // onsets without a flash of their second
	FlashesUnmatched int `json:"flashes_unmatched"` // flashes without an onset
	// NotFlash counts first presented pictures of a second without the flash (the flash picture
	// itself was not presented), RTPMismatch flashes whose callback metadata described another
	// picture: both are left out.
	NotFlash    int `json:"not_flash"`
	RTPMismatch int `json:"rtp_mismatch"`
	// ExtraBeeps are further onsets that fell on a second already taken.
	ExtraBeeps int `json:"extra_beeps"`
}

// Spread summarises signed samples: both tails matter.
type Spread struct {
	Min     float64 `json:"min"`
	P5      float64 `json:"p5"`
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Samples int     `json:"samples"`
}

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s, at := sorted(v)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	r := func(x float64) float64 { return math.Round(x*100) / 100 }
	return Spread{Min: r(s[0]), P5: r(at(0.05)), P50: r(at(0.5)), P95: r(at(0.95)), Max: r(s[len(s)-1]),
		Mean: r(sum / float64(len(s))), Samples: len(s)}
}

// pageAvSync mirrors window.p2pcast.avsync() in web/diag.js.
type pageAvSync struct {
	Onsets       []pageOnset    `json:"onsets"`
	Flashes      []pageFlash    `json:"flashes"`
	Snapshots    []syncSnapshot `json:"snapshots"`
	OnsetsTotal  int            `json:"onsetsTotal"`
	FlashesTotal int            `json:"flashesTotal"`
	NoClock      int            `json:"noClock"`
	Audio        pageAudio      `json:"audio"`
}

type pageAudio struct {
	State           *string  `json:"state"`
	SampleRate      *float64 `json:"sampleRate"`
	BaseLatencyMS   *float64 `json:"baseLatencyMs"`
	OutputLatencyMS *float64 `json:"outputLatencyMs"`
	Track           bool     `json:"track"`
	Worklet         bool     `json:"worklet"`
	Error           *string  `json:"error"`
}

// pageOnset is a beep's onset; times in ms on the page's performance clock and since the epoch.
type pageOnset struct {
	ContextTime     float64  `json:"context_time"`
	PresentMS       float64  `json:"present_ms"`
	PresentEpochMS  float64  `json:"present_epoch_ms"`
	RenderedEpochMS float64  `json:"rendered_epoch_ms"`
	AheadMS         float64  `json:"ahead_ms"`
	QuietPeak       float64  `json:"quiet_peak"`
	RiseMS          *float64 `json:"rise_ms"`
	OutputLatencyMS float64  `json:"output_latency_ms"`
	BaseLatencyMS   float64  `json:"base_latency_ms"`
}

// pageFlash is the first presented picture of a capture second.
type pageFlash struct {
	Second         int64    `json:"second"`
	CaptureUS      float64  `json:"capture_us"`
	PresentMS      float64  `json:"present_ms"`
	PresentEpochMS float64  `json:"present_epoch_ms"`
	Luma           *float64 `json:"luma"`
	Flash          bool     `json:"flash"`
	RTPOK          *bool    `json:"rtp_ok"`
	AfterGap       bool     `json:"after_gap"`
}

// syncSnapshot is what Chromium's receivers said at one moment.
type syncSnapshot struct {
	AtEpochMS float64               `json:"at_epoch_ms"`
	Audio     *receiverSync         `json:"audio"`
	Video     *receiverSync         `json:"video"`
	Sources   map[string]syncSource `json:"sources"`
}

type receiverSync struct {
	PlayoutCaptureMS *float64 `json:"playout_capture_ms"`
	JitterBufferMS   *float64 `json:"jitter_buffer_ms"`
	JitterTargetMS   *float64 `json:"jitter_target_ms"`
	JitterMinimumMS  *float64 `json:"jitter_minimum_ms"`
}

type syncSource struct {
	Timestamp               float64  `json:"timestamp"`
	RTPTimestamp            uint32   `json:"rtp_timestamp"`
	CaptureTimestamp        *float64 `json:"capture_timestamp"`
	SenderCaptureTimeOffset *float64 `json:"sender_capture_time_offset"`
}

// avPair is one second with both a beep and a flash.
type avPair struct {
	Second   int64
	AudioMS  float64 // capture → presentation of the onset
	InMS     float64 // capture → the page's worklet saw the onset
	VideoMS  float64 // capture → presentation of the flash
	OffsetMS float64 // AudioMS − VideoMS: at the outputs, the audio device included
	// PipelineOffsetMS is InMS − VideoMS: where each leaves the WebRTC pipeline (the headline).
	PipelineOffsetMS float64
}

// pairAvSync pairs onsets and flashes of the capture seconds [from, to) by their second and
// counts what it leaves out. A flash's second is its capture time's; an onset's is the whole
// second nearest to its presentation minus the valid flashes' median latency.
func pairAvSync(onsets []pageOnset, flashes []pageFlash, from, to int64) ([]avPair, avsyncCounts) {
	c := avsyncCounts{Seconds: int(max(0, to-from))}
	video := map[int64]pageFlash{}
	var lat []float64
	for _, f := range flashes {
		if f.Second < from || f.Second >= to {
			continue
		}
		switch {
		case !f.Flash:
			c.NotFlash++
		case f.RTPOK != nil && !*f.RTPOK:
			c.RTPMismatch++
		default:
			if _, dup := video[f.Second]; dup {
				continue // the page reports one per second; a new session may repeat one
			}
			video[f.Second] = f
			lat = append(lat, f.PresentEpochMS-f.CaptureUS/1000)
		}
	}
	c.Flashes = len(video)
	if len(lat) == 0 {
		// Nothing to place the onsets by: they are all unmatched, if any are in the run.
		return nil, c
	}
	ref := median(lat)
	audio := map[int64]pageOnset{}
	for _, o := range onsets {
		k := int64(math.Round((o.PresentEpochMS - ref) / 1000))
		if k < from || k >= to {
			continue
		}
		if _, dup := audio[k]; dup {
			c.ExtraBeeps++
			continue
		}
		audio[k] = o
	}
	c.Beeps = len(audio)
	var pairs []avPair
	for _, k := range slices.Sorted(maps.Keys(video)) {
		f := video[k]
		o, ok := audio[k]
		if !ok {
			c.FlashesUnmatched++
			continue
		}
		p := avPair{Second: k, AudioMS: o.PresentEpochMS - float64(k)*1000, InMS: o.RenderedEpochMS - float64(k)*1000,
			VideoMS: f.PresentEpochMS - f.CaptureUS/1000}
		p.OffsetMS = p.AudioMS - p.VideoMS
		p.PipelineOffsetMS = p.InMS - p.VideoMS
		pairs = append(pairs, p)
	}
	c.Matched = len(pairs)
	c.BeepsUnmatched = c.Beeps - c.Matched
	return pairs, c
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func avsync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("bench avsync", "bench avsync [flags]", stderr)
	page := addPageFlags(fs)
	duration := fs.Duration("duration", 20*time.Second, "how long to pair beeps and flashes (whole seconds, at most "+avsyncMaxDuration.String()+")")
	warmup := fs.Duration("warmup", avsyncWarmup, "how long to let the page's lip sync settle before collecting")
	asJSON := fs.Bool("json", false, "after the table, print the figures as one JSON line, last on stdout")
	dump := fs.String("samples", "", "also write what the page reported (onsets, flashes, snapshots) to this file, as JSON")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := page.check(); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	case *duration < time.Second || *duration > avsyncMaxDuration:
		return fmt.Errorf("%w: duration %s: want 1s to %s", cli.ErrUsage, *duration, avsyncMaxDuration)
	case *warmup < 0:
		return fmt.Errorf("%w: warmup %s: want 0 or more", cli.ErrUsage, *warmup)
	}
	if !inNetns() {
		return reexecInNetns(ctx, "avsync", args, stdout, stderr)
	}
	b := &avsyncBench{pageBench: page.bench(stderr),
		seconds: int64(duration.Round(time.Second) / time.Second), warmup: *warmup, dump: *dump}
	rep, err := b.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	printAvSync(stdout, rep)
	if *asJSON {
		line, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(line))
	}
	return nil
}

type avsyncBench struct {
	pageBench
	seconds int64
	warmup  time.Duration
	dump    string
}

func (b *avsyncBench) run(ctx context.Context) (*avsyncReport, error) {
	rep := &avsyncReport{Size: b.size.String(), FPS: b.fps, DurationS: float64(b.seconds)}
	o := deviceOptions{size: b.size.String(), fps: b.fps, extra: []string{"--audio-in", "testtone"},
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
	b.log.Info("device up", "url", dev.url, "size", rep.Size, "fps", b.fps, "audio", "testtone")

	br, err := launchBrowser(ctx, b.chromium, b.verbose, b.stderr)
	if err != nil {
		return nil, err
	}
	defer br.Close()
	tab, err := openPage(ctx, br, dev.url+"?diag=1", b.log, b.verbose)
	if err != nil {
		return nil, err
	}
	defer tab.Close()
	if _, err := waitFirstFrame(ctx, tab, 15*time.Second); err != nil {
		return nil, fmt.Errorf("the diagnostics page showed no frame: %w", err)
	}
	// The first call starts the page's audio side.
	if _, err := pollAvSync(ctx, tab); err != nil {
		return nil, err
	}
	if err := b.waitForBeep(ctx, tab); err != nil {
		return nil, err
	}
	if err := sleep(ctx, b.warmup); err != nil {
		return nil, err
	}

	// The run is the whole capture seconds [from, to); the page needs up to a second or so more
	// to present the last of them.
	from := time.Now().Unix() + 1
	to := from + b.seconds
	b.log.Info("collecting", "seconds", b.seconds)
	cpu0, t0 := procCPU(dev.pid()), time.Now()
	var last pageAvSync
	for done := false; !done; {
		if err := sleep(ctx, min(5*time.Second, time.Until(time.Unix(to+2, 0)))); err != nil {
			return nil, err
		}
		done = !time.Now().Before(time.Unix(to+2, 0))
		if last, err = pollAvSync(ctx, tab); err != nil {
			return nil, err
		}
		b.log.Debug("progress", "onsets", last.OnsetsTotal, "flashes", last.FlashesTotal, "snapshots", len(last.Snapshots))
	}
	rep.DeviceCPUPct = math.Round(1000*(procCPU(dev.pid())-cpu0)/time.Since(t0).Seconds()) / 10
	rep.Load = loadAvg()
	rep.Audio = last.Audio
	if b.dump != "" {
		if err := dumpAvSync(b.dump, last); err != nil {
			return nil, err
		}
	}

	pairs, counts := pairAvSync(last.Onsets, last.Flashes, from, to)
	rep.avsyncCounts = counts
	var offsets, outOffsets, abs, audio, in, video []float64
	for _, p := range pairs {
		offsets = append(offsets, p.PipelineOffsetMS)
		outOffsets = append(outOffsets, p.OffsetMS)
		abs = append(abs, math.Abs(p.PipelineOffsetMS))
		audio = append(audio, p.AudioMS)
		in = append(in, p.InMS)
		video = append(video, p.VideoMS)
		b.log.Debug("second", "k", p.Second, "audio_in_ms", round2(p.InMS), "audio_out_ms", round2(p.AudioMS),
			"video_ms", round2(p.VideoMS), "offset_ms", round2(p.PipelineOffsetMS))
	}
	rep.AVOffsetMS = spread(offsets)
	rep.OutputAVOffsetMS = spread(outOffsets)
	rep.AbsOffsetMS = roundPercentiles(percentiles(abs))
	rep.AudioLatencyMS = roundPercentiles(percentiles(audio))
	rep.VideoLatencyMS = roundPercentiles(percentiles(video))
	rep.WebAudioInMS = roundPercentiles(percentiles(in))
	sf := snapshotFigures(last.Snapshots, from, to)
	rep.ChromiumOffsetMS = spread(sf.offset)
	rep.ChromiumAudioMS = roundPercentiles(percentiles(sf.audio))
	rep.ChromiumVideoMS = roundPercentiles(percentiles(sf.video))
	rep.AudioJitterBufferMS = roundPercentiles(percentiles(sf.audioJB))
	rep.VideoJitterBufferMS = roundPercentiles(percentiles(sf.videoJB))
	rep.AudioDeliveredMS = roundPercentiles(percentiles(sf.audioDelivered))
	rep.VideoDeliveredMS = roundPercentiles(percentiles(sf.videoDelivered))
	b.logOddities(rep, last, from, to)
	if len(pairs) == 0 {
		return nil, fmt.Errorf("no second had both a beep and a flash (beeps %d, flashes %d, not flash %d, rtp mismatch %d; audio context %s)",
			counts.Beeps, counts.Flashes, counts.NotFlash, counts.RTPMismatch, describeAudio(last.Audio))
	}
	return rep, nil
}

// waitForBeep waits until the page has heard a beep, so a page without audio fails at once.
func (b *avsyncBench) waitForBeep(ctx context.Context, tab *browser.Page) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := pollAvSync(ctx, tab)
		if err != nil {
			return err
		}
		switch {
		case a.Audio.Error != nil:
			return fmt.Errorf("the page's audio side failed: %s", *a.Audio.Error)
		case a.OnsetsTotal > 0:
			b.log.Info("audio", "context", describeAudio(a.Audio))
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the page heard no beep in 10 s (audio context %s; onsets without an output clock %d)", describeAudio(a.Audio), a.NoClock)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func describeAudio(a pageAudio) string {
	s := func(p *string) string {
		if p == nil {
			return "–"
		}
		return *p
	}
	f := func(p *float64) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprint(round2(*p))
	}
	return fmt.Sprintf("state %s, %s Hz, base latency %s ms, output latency %s ms, audio track %t, worklet %t",
		s(a.State), f(a.SampleRate), f(a.BaseLatencyMS), f(a.OutputLatencyMS), a.Track, a.Worklet)
}

// chromiumView is what Chromium's receivers said during a run.
type chromiumView struct {
	offset, audio, video []float64 // ms; see avsyncReport
	audioJB, videoJB     []float64
	// capture → delivered to the track, by getSynchronizationSources
	audioDelivered, videoDelivered []float64
}

// snapshotFigures reads Chromium's own view out of the snapshots taken during [from, to): the
// offset its lip sync reports, each track's capture → playout and the jitter buffers' delays.
func snapshotFigures(snaps []syncSnapshot, from, to int64) chromiumView {
	var c chromiumView
	for _, s := range snaps {
		if s.AtEpochMS < float64(from)*1000 || s.AtEpochMS >= float64(to)*1000 {
			continue
		}
		a, v := s.Audio, s.Video
		if a != nil && a.PlayoutCaptureMS != nil {
			c.audio = append(c.audio, s.AtEpochMS-*a.PlayoutCaptureMS)
		}
		if v != nil && v.PlayoutCaptureMS != nil {
			c.video = append(c.video, s.AtEpochMS-*v.PlayoutCaptureMS)
		}
		if a != nil && v != nil && a.PlayoutCaptureMS != nil && v.PlayoutCaptureMS != nil {
			// The audio playing now was captured earlier than the video: the audio is late.
			c.offset = append(c.offset, *v.PlayoutCaptureMS-*a.PlayoutCaptureMS)
		}
		if src, ok := s.Sources["audio"]; ok && src.CaptureTimestamp != nil {
			c.audioDelivered = append(c.audioDelivered, src.Timestamp-(*src.CaptureTimestamp-ntpUnixMS))
		}
		if src, ok := s.Sources["video"]; ok && src.CaptureTimestamp != nil {
			c.videoDelivered = append(c.videoDelivered, src.Timestamp-(*src.CaptureTimestamp-ntpUnixMS))
		}
		if a != nil && a.JitterBufferMS != nil {
			c.audioJB = append(c.audioJB, *a.JitterBufferMS)
		}
		if v != nil && v.JitterBufferMS != nil {
			c.videoJB = append(c.videoJB, *v.JitterBufferMS)
		}
	}
	return c
}

// logOddities warns about what makes the figures doubtful.
func (b *avsyncBench) logOddities(rep *avsyncReport, a pageAvSync, from, to int64) {
	if math.Abs(rep.AVOffsetMS.P50) > 250 {
		b.log.Warn("the offset is near ±500 ms: onsets may be paired with a neighbouring second", "p50_ms", rep.AVOffsetMS.P50)
	}
	// A picture captured more than a frame interval past its second is not the first of it:
	// the flash picture was never presented.
	var lumas, past []float64
	for _, f := range a.Flashes {
		if f.Second >= from && f.Second < to && !f.Flash {
			if f.Luma != nil {
				lumas = append(lumas, round2(*f.Luma))
			}
			past = append(past, round2(f.CaptureUS/1000-float64(f.Second)*1000))
		}
	}
	if len(past) > 0 {
		b.log.Info("first presented pictures of a second without the flash", "n", len(past), "luma", lumas,
			"flash_from", flashLuma, "captured_ms_past_the_second", past)
	}
	var rise []float64
	for _, o := range a.Onsets {
		if o.RiseMS != nil {
			rise = append(rise, *o.RiseMS)
		}
	}
	if len(rise) > 0 {
		b.log.Debug("onsets", "rise_ms_p50", round2(median(rise)), "rise_ms_max", round2(slices.Max(rise)))
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// pollAvSync reads window.p2pcast.avsync() (the first call starts it).
func pollAvSync(ctx context.Context, tab *browser.Page) (pageAvSync, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a, err := browser.Eval[*pageAvSync](cctx, tab, `window.p2pcast?.avsync?.() ?? null`)
	switch {
	case err != nil:
		return pageAvSync{}, fmt.Errorf("reading the page's audio/video sync: %w", err)
	case a == nil:
		return pageAvSync{}, errors.New("the page has no window.p2pcast.avsync (diag.js not loaded, or an older one)")
	}
	return *a, nil
}

func dumpAvSync(path string, a pageAvSync) error {
	b, err := json.MarshalIndent(a, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func printAvSync(w io.Writer, rep *avsyncReport) {
	fmt.Fprintf(w, "bench avsync: %s @ %d fps with the test tone, %d s\n", rep.Size, rep.FPS, rep.Seconds)
	fmt.Fprintf(w, "seconds matched %d; beeps %d (%d unmatched, %d extra); flashes %d (%d unmatched); first pictures without the flash %d; rtp mismatches %d\n\n",
		rep.Matched, rep.Beeps, rep.BeepsUnmatched, rep.ExtraBeeps, rep.Flashes, rep.FlashesUnmatched, rep.NotFlash, rep.RTPMismatch)
	fmt.Fprintf(w, "%-30s %8s %8s %8s %8s %8s %8s %8s\n", "ms", "min", "p5", "p50", "p95", "max", "mean", "samples")
	srow := func(name string, s Spread) {
		fmt.Fprintf(w, "%-30s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8d\n", name, s.Min, s.P5, s.P50, s.P95, s.Max, s.Mean, s.Samples)
	}
	srow("a/v offset (+: audio late)", rep.AVOffsetMS)
	srow("  with the audio device", rep.OutputAVOffsetMS)
	srow("Chromium's own estimate", rep.ChromiumOffsetMS)
	fmt.Fprintf(w, "\n%-30s %8s %8s %8s %8s %8s\n", "ms", "p50", "p95", "p99", "max", "samples")
	prow := func(name string, p Percentiles) {
		fmt.Fprintf(w, "%-30s %8.2f %8.2f %8.2f %8.2f %8d\n", name, p.P50, p.P95, p.P99, p.Max, p.Samples)
	}
	prow("|a/v offset|", rep.AbsOffsetMS)
	prow("capture → beep presented", rep.AudioLatencyMS)
	prow("  capture → delivered", rep.AudioDeliveredMS)
	prow("  capture → WebAudio worklet", rep.WebAudioInMS)
	prow("capture → flash presented", rep.VideoLatencyMS)
	prow("  capture → delivered", rep.VideoDeliveredMS)
	prow("Chromium: capture → audio out", rep.ChromiumAudioMS)
	prow("Chromium: capture → video out", rep.ChromiumVideoMS)
	prow("audio jitter buffer", rep.AudioJitterBufferMS)
	prow("video jitter buffer", rep.VideoJitterBufferMS)
	fmt.Fprintf(w, "\naudio context: %s\ndevice CPU %.1f%%; load %.2f %.2f %.2f\n", describeAudio(rep.Audio), rep.DeviceCPUPct, rep.Load[0], rep.Load[1], rep.Load[2])
}
