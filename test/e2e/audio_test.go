//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/testbin"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/logtest"
)

// pageAudio mirrors window.p2pcast.audio() in web/player.js.
type pageAudio struct {
	Present          bool     `json:"present"`
	Direction        *string  `json:"direction"`
	Muted            bool     `json:"muted"`
	TalkAllowed      bool     `json:"talkAllowed"`
	Talking          bool     `json:"talking"`
	PacketsReceived  float64  `json:"packetsReceived"`
	TotalAudioEnergy float64  `json:"totalAudioEnergy"`
	SamplesDuration  float64  `json:"totalSamplesDuration"`
	AudioLevel       float64  `json:"audioLevel"`
	PacketsSent      float64  `json:"packetsSent"`
	MeterPeakDB      *float64 `json:"meterPeakDb"`
	TalkError        *string  `json:"talkError"`
}

func (a pageAudio) direction() string {
	if a.Direction == nil {
		return "none"
	}
	return *a.Direction
}

func audioStats(t *testing.T, tab *browser.Page) pageAudio {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := browser.Eval[pageAudio](ctx, tab, `window.p2pcast.audio()`)
	if err != nil {
		t.Fatalf("reading audio stats: %v", err)
	}
	return a
}

// waitAudio polls the page's audio stats until ok holds.
func waitAudio(t *testing.T, tab *browser.Page, what string, within time.Duration, ok func(pageAudio) bool) pageAudio {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a := audioStats(t, tab)
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last audio stats %+v (direction %s)", what, within, a, a.direction())
		}
		time.Sleep(100 * time.Millisecond) // polling interval of a condition, not synchronisation
	}
}

// audioUI is what the player shows of audio: which controls are visible.
type audioUI struct {
	Controls bool `json:"controls"`
	Mute     bool `json:"mute"`
	Meter    bool `json:"meter"`
	Talk     bool `json:"talk"`
}

func readAudioUI(t *testing.T, tab *browser.Page) audioUI {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ui, err := browser.Eval[audioUI](ctx, tab, `(() => {
	  const r = document.querySelector('p2pcast-player').shadowRoot;
	  const shown = (sel) => { const e = r.querySelector(sel); return !!e && !e.hidden && e.getClientRects().length > 0; };
	  return { controls: shown('.controls'), mute: shown('.mute'), meter: shown('.meter'), talk: shown('.talk') };
	})()`)
	if err != nil {
		t.Fatalf("reading the audio controls: %v", err)
	}
	return ui
}

// deviceStatus is the part of GET /api/status the audio tests read.
type deviceStatus struct {
	Stream *struct {
		Tracks []struct {
			Kind string `json:"kind"`
		} `json:"tracks"`
		Sinks []struct {
			Kind string `json:"kind"`
		} `json:"sinks"`
	} `json:"stream"`
	Sessions []struct {
		ID   string `json:"id"`
		Talk *struct {
			Packets uint64 `json:"packets"`
			Bytes   uint64 `json:"bytes"`
			Dropped uint64 `json:"dropped"`
			Bursts  uint64 `json:"bursts"`
		} `json:"talk"`
	} `json:"sessions"`
}

func getStatus(t *testing.T, base, token string) deviceStatus {
	t.Helper()
	req, err := http.NewRequest("GET", base+"api/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /api/status: %s %s", resp.Status, b)
	}
	var st deviceStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitProducerAudio waits until the device knows its producer's audio track (and its speaker when
// sink is set): a session made before the producer's first HELLO offers video only.
func waitProducerAudio(t *testing.T, base, token string, sink bool) {
	t.Helper()
	waitProducer(t, base, token, true, sink)
}

// waitProducer waits until the device knows its producer's tracks: an audio track when audio is
// set, a speaker when sink is.
func waitProducer(t *testing.T, base, token string, audio, sink bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := getStatus(t, base, token)
		hasAudio := false
		if st.Stream != nil {
			for _, tr := range st.Stream.Tracks {
				hasAudio = hasAudio || tr.Kind == "audio"
			}
		}
		if st.Stream != nil && (!audio || hasAudio) && (!sink || len(st.Stream.Sinks) > 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer announced no audio track (%v) or speaker (%v) in 10 s: %+v", audio, sink, st.Stream)
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a condition
	}
}

// alsaSpeaker writes an alsa-lib configuration whose PCM "spk" plays into a raw file (S16LE at
// the rate and channels the producer opens it with: 48 kHz mono) and returns the environment
// entry that points the device (and its producer) at it, and the file.
func alsaSpeaker(t *testing.T) (env, raw string) {
	t.Helper()
	dir := t.TempDir()
	raw = filepath.Join(dir, "spk.raw")
	conf := filepath.Join(dir, "asound.conf")
	// ALSA_CONFIG_PATH replaces the whole system configuration: the slave is written inline.
	text := fmt.Sprintf("pcm.spk { type file; slave.pcm { type null }; file %q; format \"raw\" }\n", raw)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return "ALSA_CONFIG_PATH=" + conf, raw
}

// pagePlaysAudio waits for the page to decode video and play audio while muted: packets keep
// coming (50 a second) and are played out, and the player's level meter hears the beeps. (Not
// totalAudioEnergy: Chromium measures it after the element's volume, so it stays 0 while muted.)
func pagePlaysAudio(t *testing.T, tab *browser.Page, what string) pageAudio {
	t.Helper()
	waitFor(t, tab, what+": video decodes", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded >= 15 })
	first := waitAudio(t, tab, what+": audio arrives", 10*time.Second, func(a pageAudio) bool {
		return a.Present && a.PacketsReceived > 0
	})
	a := waitAudio(t, tab, what+": audio keeps coming and plays out, and the meter hears it", 10*time.Second, func(a pageAudio) bool {
		return a.PacketsReceived >= first.PacketsReceived+50 && a.SamplesDuration > first.SamplesDuration+0.5 &&
			a.MeterPeakDB != nil && *a.MeterPeakDB > -40
	})
	if !a.Muted {
		t.Errorf("%s: the page plays unmuted before any gesture", what)
	}
	return a
}

// peakScript watches the received audio track through an AnalyserNode of its own for up to 3 s
// and returns the strongest spectral peak it saw: the device's test tone beeps at 1 kHz for
// 100 ms every whole second.
const peakScript = `(async () => {
  const track = window.p2pcast.audioTrack;
  if (!track) return { hz: 0, db: -1000, rate: 0 };
  const ctx = new AudioContext();
  await ctx.resume();
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const an = ctx.createAnalyser();
  an.fftSize = 4096;
  an.smoothingTimeConstant = 0;
  src.connect(an);
  const bins = new Float32Array(an.frequencyBinCount);
  let best = { hz: 0, db: -1000, rate: ctx.sampleRate };
  const until = performance.now() + 3000;
  while (performance.now() < until && best.db < -30) {
    await new Promise((r) => setTimeout(r, 20));
    an.getFloatFrequencyData(bins);
    let i = 1;
    for (let k = 2; k < bins.length; k++) if (bins[k] > bins[i]) i = k;
    if (bins[i] > best.db) best = { hz: i * ctx.sampleRate / an.fftSize, db: bins[i], rate: ctx.sampleRate };
  }
  src.disconnect();
  await ctx.close();
  return best;
})()`

// TestBrowserPlaysAudio: a device with the test tone: the page receives its audio on each
// signaling path (muted, with energy), shows the unmute button and the level meter but no talk
// button (no speaker on the device), hears 1 kHz in the beeps, and still decodes video.
func TestBrowserPlaysAudio(t *testing.T) {
	dev := startDevice(t, "127.0.0.1:0", "--size", "640x360", "--audio-in", "testtone")
	waitProducerAudio(t, dev.url, "", false)
	b := newBrowser(t)

	tab, console := openTabWithConsole(t, b, dev.url)
	a := pagePlaysAudio(t, tab, "device offers")
	if !a.Muted || a.TalkAllowed || a.direction() != "recvonly" {
		t.Errorf("audio: muted %v, talkAllowed %v, direction %s; want muted, no talk, recvonly", a.Muted, a.TalkAllowed, a.direction())
	}
	if ui := readAudioUI(t, tab); !ui.Controls || !ui.Mute || !ui.Meter || ui.Talk {
		t.Errorf("controls shown: %+v; want the mute button and the meter, no talk button", ui)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type peak struct{ Hz, DB, Rate float64 }
	p, err := browser.Eval[peak](ctx, tab, peakScript)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("received audio: strongest peak %.0f Hz at %.1f dB (context at %.0f Hz)", p.Hz, p.DB, p.Rate)
	if p.DB < -50 || math.Abs(p.Hz-1000) > 50 {
		t.Errorf("strongest peak %.0f Hz at %.1f dB; want the beep's 1 kHz", p.Hz, p.DB)
	}
	t.Logf("device offers, muted: %v audio packets, %.1f s played out, meter peak %.1f dBFS", a.PacketsReceived, a.SamplesDuration, *a.MeterPeakDB)

	// Unmuted (what the button does), the sound plays: now Chromium measures its energy.
	if _, err := browser.Eval[any](ctx, tab, `window.p2pcast.setMuted(false)`); err != nil {
		t.Fatal(err)
	}
	a = waitAudio(t, tab, "unmuted audio has energy", 5*time.Second, func(a pageAudio) bool { return !a.Muted && a.TotalAudioEnergy > 0 })
	t.Logf("device offers, unmuted: total audio energy %.3g", a.TotalAudioEnergy)
	// The audio controls run under the device's CSP, and nothing threw (the player's own log line
	// shows that the console is being read).
	logged := false
	for _, m := range console() {
		logged = logged || strings.Contains(m, "p2pcast: audio recvonly")
		if strings.Contains(m, "Content Security Policy") || strings.Contains(m, "Uncaught") {
			t.Errorf("page console: %s", m)
		}
	}
	if !logged {
		t.Errorf("the page's console never said `p2pcast: audio recvonly`: %q", console())
	}
	if ui := readAudioUI(t, tab); !ui.Mute {
		t.Errorf("the mute button went away after unmuting")
	}

	// When the page offers (over the socket, and WHEP), its audio section takes the device's audio.
	for _, query := range []string{"?offer=viewer", "?signal=whep"} {
		tab := openTab(t, b, dev.url+query)
		a := pagePlaysAudio(t, tab, query)
		// The device has no speaker: its answer must make the audio receive-only.
		if a.TalkAllowed || a.direction() != "recvonly" {
			t.Errorf("%s: talkAllowed %v, direction %s; want no talk, recvonly", query, a.TalkAllowed, a.direction())
		}
		if ui := readAudioUI(t, tab); !ui.Mute || ui.Talk {
			t.Errorf("%s: controls shown: %+v; want the mute button, no talk button", query, ui)
		}
		t.Logf("%s: %v audio packets, direction %s", query, a.PacketsReceived, a.direction())
		tab.Close()
	}
}

// TestBrowserVideoOnlyHasNoAudioUI: a device without audio plays as before on every signaling
// path (the page's offers carry an audio section the device rejects), with no audio controls.
func TestBrowserVideoOnlyHasNoAudioUI(t *testing.T) {
	dev := startDevice(t, "127.0.0.1:0", "--size", "640x360")
	b := newBrowser(t)
	for _, query := range []string{"", "?offer=viewer", "?signal=whep"} {
		tab := openTab(t, b, dev.url+query)
		waitFor(t, tab, query+" decodes", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded >= 15 })
		if a := audioStats(t, tab); a.Present || a.TalkAllowed || a.PacketsReceived != 0 {
			t.Errorf("%q: audio %+v on a device without audio", query, a)
		}
		if ui := readAudioUI(t, tab); ui.Controls || ui.Mute || ui.Meter || ui.Talk {
			t.Errorf("%q: audio controls shown without audio: %+v", query, ui)
		}
		tab.Close()
	}
}

// writeToneWAV writes a 16-bit 48 kHz mono WAV: a 440 Hz tone (−6 dBFS) for half a second, then
// half a second of silence, repeated for the file's 10 s (Chromium's fake microphone loops it).
func writeToneWAV(t *testing.T, path string) {
	t.Helper()
	const rate, seconds, hz = 48000, 10, 440.0
	const ramp = rate / 500 // 2 ms fades: a clean onset, no click
	samples := make([]int16, rate*seconds)
	for i := range samples {
		pos := i % rate
		if pos >= rate/2 {
			continue
		}
		gain := 0.5
		if pos < ramp {
			gain *= float64(pos) / ramp
		} else if rate/2-pos < ramp {
			gain *= float64(rate/2-pos) / ramp
		}
		samples[i] = int16(gain * 32767 * math.Sin(2*math.Pi*hz*float64(pos)/rate))
	}
	var b bytes.Buffer
	data := uint32(len(samples) * 2)
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, 36+data)
	b.WriteString("WAVEfmt ")
	// fmt: PCM, 1 channel, 48000 Hz, 96000 bytes/s, 2-byte frames, 16 bits.
	_ = binary.Write(&b, binary.LittleEndian, struct {
		Size                   uint32
		Format, Channels       uint16
		Rate, ByteRate         uint32
		BlockAlign, SampleBits uint16
	}{16, 1, 1, rate, rate * 2, 2, 16})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, data)
	_ = binary.Write(&b, binary.LittleEndian, samples)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// micOnsetScript watches the page's microphone track (the one talk-back sends) and records when
// each tone starts after at least 150 ms of quiet, in ms since the epoch (performance.timeOrigin +
// performance.now()). Every 5 ms it reads the analyser's latest samples and dates the first loud
// one by its distance from the newest (the context's sample clock), so the poll's own jitter
// does not count; what remains is the time the samples took from capture into WebAudio, which
// makes the mouth time late (the latency reads low) by that much.
const micOnsetScript = `(async () => {
  const track = window.p2pcast.micTrack;
  if (!track) return false;
  const ctx = new AudioContext();
  await ctx.resume();
  const an = ctx.createAnalyser();
  an.fftSize = 2048;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(an);
  const buf = new Float32Array(an.fftSize);
  const rate = ctx.sampleRate, gap = 0.15 * rate, loud = 0.05;
  const m = window.__mic = { onsets: [], peak: 0, polls: 0, ctx, rate, baseLatency: ctx.baseLatency };
  let lastEnd = -1, lastLoud = 0;
  m.timer = setInterval(() => {
    const now = performance.timeOrigin + performance.now();
    const end = Math.round(ctx.currentTime * rate); // the sample after the newest one
    if (end === lastEnd) return;
    an.getFloatTimeDomainData(buf);
    m.polls++;
    if (lastEnd < 0) lastLoud = end; // quiet must be seen before the first onset
    const from = lastEnd < 0 ? 0 : Math.max(0, buf.length - (end - lastEnd));
    for (let i = from; i < buf.length; i++) {
      const x = Math.abs(buf[i]);
      if (x > m.peak) m.peak = x;
      if (x < loud) continue;
      const n = end - buf.length + i;
      if (n - lastLoud > gap) m.onsets.push(now - ((end - n) / rate) * 1000);
      lastLoud = n;
    }
    lastEnd = end;
  }, 5);
  return true;
})()`

type micOnsets struct {
	Onsets      []float64 `json:"onsets"`
	Peak        float64   `json:"peak"`
	Polls       int       `json:"polls"`
	Rate        float64   `json:"rate"`
	BaseLatency float64   `json:"baseLatency"`
}

// speakerOnsets finds where tone bursts start in the speaker's output (S16LE mono at 48 kHz):
// the first sample above a quarter of the loudest after at least 150 ms below it. It also returns
// the samples of the bursts' steady middles, for the frequency checks.
func speakerOnsets(pcm []int16) (onsets []int, steady []int16) {
	const rate, gap = 48000, 48000 * 150 / 1000
	var peak int
	for _, s := range pcm {
		peak = max(peak, abs(int(s)))
	}
	if peak < 1000 { // under −30 dBFS: nothing was played
		return nil, nil
	}
	loud := peak / 4
	last := -gap - 1
	for i, s := range pcm {
		if abs(int(s)) < loud {
			continue
		}
		if i-last > gap {
			onsets = append(onsets, i)
			// 100 to 350 ms into the burst: past the onset's ramp and whatever the codec and the
			// echo canceller do at the start, before the half second ends.
			if a, b := i+rate/10, i+rate*35/100; b <= len(pcm) && sounds(pcm[a:b], loud/2) {
				steady = append(steady, pcm[a:b]...)
			}
		}
		last = i
	}
	return onsets, steady
}

// sounds reports whether every 10 ms of pcm reaches level: a tone throughout, not a short
// burst (a quick press of the talk button) followed by silence.
func sounds(pcm []int16, level int) bool {
	for a := 0; a < len(pcm); a += 480 {
		peak := 0
		for _, s := range pcm[a:min(a+480, len(pcm))] {
			peak = max(peak, abs(int(s)))
		}
		if peak < level {
			return false
		}
	}
	return true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// zeroCrossingHz estimates the frequency of a tone from its rising zero crossings.
func zeroCrossingHz(pcm []int16, rate float64) float64 {
	n := 0
	for i := 1; i < len(pcm); i++ {
		if pcm[i-1] < 0 && pcm[i] >= 0 {
			n++
		}
	}
	return float64(n) * rate / float64(len(pcm))
}

// soxRoughFrequency runs `sox … -n stat` on raw S16LE mono 48 kHz samples.
func soxRoughFrequency(t *testing.T, pcm []int16) float64 {
	t.Helper()
	f := filepath.Join(t.TempDir(), "steady.raw")
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, pcm)
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sox", "-t", "raw", "-r", "48000", "-e", "signed", "-b", "16", "-c", "1", f, "-n", "stat").CombinedOutput()
	if err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Rough\s+frequency:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("sox printed no rough frequency:\n%s", out)
	}
	hz, _ := strconv.ParseFloat(string(m[1]), 64)
	return hz
}

// TestBrowserTalkBack: Chromium's fake microphone plays a WAV of 440 Hz half-second bursts; the
// page, allowed to talk (loopback), holds push-to-talk through its hook; the device plays what
// it receives on an ALSA PCM that writes a file. The file holds the 440 Hz bursts, the device
// counted the talk-back packets, and each burst's onset in the file against its onset at the
// page's microphone gives the mouth-to-speaker latency.
func TestBrowserTalkBack(t *testing.T) {
	env, raw := alsaSpeaker(t)
	var log logtest.Buffer
	dev := startDeviceWith(t, deviceOpts{env: []string{env}, stderr: &log}, "127.0.0.1:0",
		"--size", "640x360", "--audio-in", "testtone", "--audio-out", "spk")
	waitProducerAudio(t, dev.url, "", true)

	wav := filepath.Join(t.TempDir(), "mic.wav")
	writeToneWAV(t, wav)
	b, err := browser.Launch(context.Background(), browser.Options{Width: 1280, Height: 720, Flags: map[string]any{
		"use-fake-device-for-media-stream": true,
		"use-fake-ui-for-media-stream":     true,
		"use-file-for-fake-audio-capture":  wav,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tab := openTab(t, b, dev.url)
	a := waitAudio(t, tab, "talk-back is allowed", 15*time.Second, func(a pageAudio) bool { return a.TalkAllowed && a.Present })
	if a.direction() != "sendrecv" || a.Talking {
		t.Errorf("audio direction %s, talking %v; want sendrecv, not talking yet", a.direction(), a.Talking)
	}
	if ui := readAudioUI(t, tab); !ui.Talk || !ui.Mute {
		t.Errorf("controls shown: %+v; want the talk button and the mute button", ui)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The page's clock against ours: both are the machine's wall clock, but the page's is its
	// start time plus a monotonic count.
	before := time.Now()
	pageNow, err := browser.Eval[float64](ctx, tab, `performance.timeOrigin + performance.now()`)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	offsetMS := pageNow - float64(before.UnixNano()+after.Sub(before).Nanoseconds()/2)/1e6
	t.Logf("page clock − test clock: %.2f ms (±%.2f)", offsetMS, float64(after.Sub(before).Microseconds())/2000)

	pressTalkButton(t, tab)

	st, err := browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(true)`)
	if err != nil || !st.Talking {
		t.Fatalf("talk(true): %+v %v", st, err)
	}
	if ok, err := browser.Eval[bool](ctx, tab, micOnsetScript); err != nil || !ok {
		t.Fatalf("watching the microphone: %v %v", ok, err)
	}
	// Hold until the microphone has started three bursts (about 3 s), plus the fourth's start, so
	// the third burst has reached the speaker whatever the latency below a second.
	var mic micOnsets
	deadline := time.Now().Add(10 * time.Second)
	for {
		mic, err = browser.Eval[micOnsets](ctx, tab, `window.__mic`)
		if err != nil {
			t.Fatal(err)
		}
		if len(mic.Onsets) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the microphone started %d bursts in 10 s (peak %.3f, %d polls)", len(mic.Onsets), mic.Peak, mic.Polls)
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a condition
	}
	if st, err = browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(false)`); err != nil || st.Talking {
		t.Fatalf("talk(false): %+v %v", st, err)
	}
	_, _ = browser.Eval[any](ctx, tab, `clearInterval(window.__mic.timer), window.__mic.ctx.close()`)
	a = audioStats(t, tab)
	t.Logf("page: sent %v talk-back packets; microphone peak %.3f, %d onsets (WebAudio at %.0f Hz, base latency %.1f ms, %d polls)",
		a.PacketsSent, mic.Peak, len(mic.Onsets), mic.Rate, mic.BaseLatency*1000, mic.Polls)
	if a.PacketsSent == 0 {
		t.Errorf("the page sent no audio packets while talking")
	}

	// The device counted what it received (the status API; loopback has every grant).
	var talkPackets uint64
	deadline = time.Now().Add(5 * time.Second)
	for talkPackets == 0 && time.Now().Before(deadline) {
		for _, s := range getStatus(t, dev.url, "").Sessions {
			if s.Talk != nil {
				talkPackets = s.Talk.Packets
				t.Logf("device session %s: talk %+v", s.ID, *s.Talk)
			}
		}
		if talkPackets == 0 {
			time.Sleep(100 * time.Millisecond) // polling interval of a condition
		}
	}
	if talkPackets == 0 {
		t.Errorf("the device counted no talk-back packets")
	}

	// The file is complete once the producer has exited.
	dev.stop()
	startedNS, restarts := speakerClock(t, log.String())
	data, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(data)/2)
	_ = binary.Read(bytes.NewReader(data[:len(pcm)*2]), binary.LittleEndian, pcm)
	onsets, steady := speakerOnsets(pcm)
	t.Logf("speaker: %.1f s of output, %d burst onsets, %d steady samples", float64(len(pcm))/48000, len(onsets), len(steady))
	if len(steady) < 48000/10 {
		t.Fatalf("the speaker file holds no tone bursts (%d onsets)", len(onsets))
	}
	soxHz := soxRoughFrequency(t, steady)
	zcHz := zeroCrossingHz(steady, 48000)
	t.Logf("speaker: sox rough frequency %.0f Hz, zero crossings %.1f Hz", soxHz, zcHz)
	if math.Abs(soxHz-440) > 20 || math.Abs(zcHz-440) > 10 {
		t.Errorf("the speaker played %.0f Hz (sox) / %.1f Hz (zero crossings); want 440 Hz", soxHz, zcHz)
	}

	// Mouth to speaker: each output onset against the microphone's last onset before it.
	if restarts > 0 {
		t.Logf("mouth-to-speaker: not measured: the producer restarted its output %d times (its sample count restarts)", restarts)
		return
	}
	var lat []float64
	for _, n := range onsets {
		out := float64(startedNS)/1e6 + float64(n)*1000/48000
		best := math.Inf(1)
		for _, m := range mic.Onsets {
			if d := out - (m - offsetMS); d > 0 && d < best {
				best = d
			}
		}
		if best < 1000 {
			lat = append(lat, best)
		}
	}
	if len(lat) == 0 {
		t.Fatalf("no output onset follows a microphone onset within 1 s (output %v, mic %v)", onsets, mic.Onsets)
	}
	slices.Sort(lat)
	t.Logf("mouth-to-speaker ms: p50=%.1f min=%.1f max=%.1f n=%d (all %s)", median(lat), lat[0], lat[len(lat)-1], len(lat), fmtMS(lat))
	if p50 := median(lat); p50 <= 0 || p50 >= 1000 {
		t.Errorf("mouth-to-speaker p50 %.1f ms; want between 0 and 1000", p50)
	}
}

// speakerClock reads the producer's `audio-out: started at <ns> on spk` line: output sample n
// played at <ns> + n/48000 s (CLOCK_REALTIME). It also counts restarts, after which the count
// starts again at a point the file does not mark.
func speakerClock(t *testing.T, log string) (startedNS int64, restarts int) {
	t.Helper()
	m := regexp.MustCompile(`audio-out: started at (\d+) on spk`).FindAllStringSubmatch(log, -1)
	if len(m) == 0 {
		t.Fatalf("no `audio-out: started at` line in the producer's log")
	}
	// A reopened PCM logs `started at` again; an underrun, a clock step or a stall `restarted at`.
	restarts = len(m) - 1 + strings.Count(log, "; restarted at ")
	ns, err := strconv.ParseInt(m[0][1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ns, restarts
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func fmtMS(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// mintToken makes a LAN token for the device whose data directory is dir (`p2pcast token`).
func mintToken(t *testing.T, dir, grants string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(testbin.Dir(t), "p2pcast"), "token", "--data", dir, "--device", "local",
		"--grant", grants, "--ttl", "10m").Output()
	if err != nil {
		t.Fatalf("p2pcast token --grant %s: %v", grants, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "eyJ") {
			return f
		}
	}
	t.Fatalf("p2pcast token printed no token: %q", out)
	return ""
}

// TestBrowserTalkNeedsGrant: a device with LAN auth and a speaker. A viewer whose token grants
// only view gets the device's audio send-only: talkAllowed false, no talk button, pressing talk
// is refused, and the device's session has no talk-back. A token with talk gets sendrecv.
func TestBrowserTalkNeedsGrant(t *testing.T) {
	env, _ := alsaSpeaker(t)
	data := t.TempDir()
	view, viewTalk, control := mintToken(t, data, "view"), mintToken(t, data, "view,talk"), mintToken(t, data, "view,control")
	dev := startDeviceWith(t, deviceOpts{env: []string{env}}, "127.0.0.1:0", "--lan-auth", "--data", data,
		"--size", "640x360", "--audio-in", "testtone", "--audio-out", "spk")
	waitProducerAudio(t, dev.url, control, true)
	b := newBrowser(t)

	tab := openTab(t, b, dev.url+"#token="+view)
	a := pagePlaysAudio(t, tab, "view only")
	if a.TalkAllowed || a.direction() != "recvonly" {
		t.Errorf("view only: talkAllowed %v, direction %s; want no talk, recvonly", a.TalkAllowed, a.direction())
	}
	if ui := readAudioUI(t, tab); !ui.Mute || ui.Talk {
		t.Errorf("view only: controls shown: %+v; want the mute button, no talk button", ui)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(true)`); err != nil || st.Talking || st.Error == nil {
		t.Errorf("view only: talk(true) = %+v, %v; want a refusal", st, err)
	} else {
		t.Logf("view only: talk(true) refused: %s", *st.Error)
	}
	st := getStatus(t, dev.url, control)
	if len(st.Sessions) != 1 || st.Sessions[0].Talk != nil {
		t.Fatalf("device sessions %+v; want one, without talk-back", st.Sessions)
	}
	if a := audioStats(t, tab); a.PacketsSent != 0 {
		t.Errorf("view only: the page sent %v audio packets", a.PacketsSent)
	}

	// The page offering: it offers sendrecv audio, and the device must answer send-only.
	offers := openTab(t, b, dev.url+"?offer=viewer#token="+view)
	a = pagePlaysAudio(t, offers, "view only, page offers")
	if a.TalkAllowed || a.direction() != "recvonly" {
		t.Errorf("view only, page offers: talkAllowed %v, direction %s; want no talk, recvonly", a.TalkAllowed, a.direction())
	}
	offers.Close()

	// With the talk grant the same device takes the viewer's voice.
	talker := openTab(t, b, dev.url+"#token="+viewTalk)
	a = waitAudio(t, talker, "view,talk: talk-back allowed", 15*time.Second, func(a pageAudio) bool { return a.TalkAllowed })
	if a.direction() != "sendrecv" {
		t.Errorf("view,talk: direction %s, want sendrecv", a.direction())
	}
	if ui := readAudioUI(t, talker); !ui.Talk {
		t.Errorf("view,talk: no talk button: %+v", ui)
	}
	withTalk := 0
	for _, s := range getStatus(t, dev.url, control).Sessions {
		if s.Talk != nil {
			withTalk++
		}
	}
	if withTalk != 1 {
		t.Errorf("%d device sessions with talk-back, want 1 (the view,talk viewer's)", withTalk)
	}
}

// talkState mirrors what window.p2pcast.talk(on) resolves to.
type talkState struct {
	Talking bool    `json:"talking"`
	Error   *string `json:"error"`
}

// waitTalking polls window.p2pcast.talking until it is want.
func waitTalking(t *testing.T, tab *browser.Page, what string, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := browser.Eval[bool](ctx, tab, `window.p2pcast.talking`)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: talking is %v after 5 s", what, got)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a condition
	}
}

// pressTalkButton holds the talk button as a person would: the mouse (pointer events), then
// Space with the button focused; talking follows each press and release.
func pressTalkButton(t *testing.T, tab *browser.Page) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type point struct{ X, Y float64 }
	p, err := browser.Eval[point](ctx, tab, `(() => {
	  const r = document.querySelector('p2pcast-player').shadowRoot.querySelector('.talk').getBoundingClientRect();
	  return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
	})()`)
	if err != nil || p.X == 0 {
		t.Fatalf("finding the talk button: %+v %v", p, err)
	}
	mouse := func(typ input.DispatchMouseEventType) {
		t.Helper()
		dispatch(t, tab, input.DispatchMouseEvent, input.DispatchMouseEventParams{
			Type: typ, X: p.X, Y: p.Y, Button: input.MouseButtonLeft, Buttons: 1, ClickCount: 1})
	}
	mouse(input.DispatchMouseEventTypeMousePressed)
	waitTalking(t, tab, "mouse down on the talk button", true)
	mouse(input.DispatchMouseEventTypeMouseReleased)
	waitTalking(t, tab, "mouse up", false)

	if _, err := browser.Eval[any](ctx, tab, `document.querySelector('p2pcast-player').shadowRoot.querySelector('.talk').focus()`); err != nil {
		t.Fatal(err)
	}
	key := func(typ input.DispatchKeyEventType) {
		t.Helper()
		ev := input.DispatchKeyEventParams{Type: typ, Key: " ", Code: "Space", WindowsVirtualKeyCode: 32}
		if typ == input.DispatchKeyEventTypeKeyDown {
			ev.Text = " "
		}
		dispatch(t, tab, input.DispatchKeyEvent, ev)
	}
	key(input.DispatchKeyEventTypeKeyDown)
	waitTalking(t, tab, "Space down on the focused talk button", true)
	key(input.DispatchKeyEventTypeKeyUp)
	waitTalking(t, tab, "Space up", false)
}

// dispatch sends one input event to the tab, as if from the keyboard or the mouse.
func dispatch[P any](t *testing.T, tab *browser.Page, cmd cdp.Command[P, cdp.Empty], params P) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := browser.Dispatch(ctx, tab, cmd, params); err != nil {
		t.Fatal(err)
	}
}

// openTabWithConsole opens url in a new tab and collects its console messages from the start.
func openTabWithConsole(t *testing.T, b *browser.Browser, url string) (*browser.Page, func() []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tab, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tab.Close)
	var mu sync.Mutex
	var msgs []string
	tab.Console(func(m string) {
		mu.Lock()
		defer mu.Unlock()
		msgs = append(msgs, m)
	})
	if err := tab.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	return tab, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(msgs)
	}
}

// TestBrowserTalkNeedsSecureContext: the same loopback device reached by a host name (not
// localhost) over plain http is not a secure context: the page still plays audio and shows the
// talk button, but pressing it says that talking needs https or localhost.
func TestBrowserTalkNeedsSecureContext(t *testing.T) {
	env, _ := alsaSpeaker(t)
	dev := startDeviceWith(t, deviceOpts{env: []string{env}}, "127.0.0.1:0", "--allow-host", "camera.test",
		"--size", "640x360", "--audio-in", "testtone", "--audio-out", "spk")
	waitProducerAudio(t, dev.url, "", true)
	b, err := browser.Launch(context.Background(), browser.Options{Width: 1280, Height: 720, Flags: map[string]any{
		"host-resolver-rules": "MAP camera.test 127.0.0.1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tab := openTab(t, b, strings.Replace(dev.url, "127.0.0.1", "camera.test", 1))
	a := waitAudio(t, tab, "talk-back allowed", 15*time.Second, func(a pageAudio) bool { return a.Present && a.TalkAllowed })
	if ui := readAudioUI(t, tab); !ui.Talk {
		t.Errorf("no talk button: %+v", ui)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if secure, err := browser.Eval[bool](ctx, tab, `window.isSecureContext`); err != nil || secure {
		t.Fatalf("isSecureContext %v %v: the test needs an insecure page", secure, err)
	}
	st, err := browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(true)`)
	if err != nil || st.Talking || st.Error == nil || !strings.Contains(*st.Error, "https or localhost") {
		t.Fatalf("talk(true) on an insecure page: %+v %v; want the https-or-localhost message", st, err)
	}
	toast, err := browser.Eval[string](ctx, tab, `document.querySelector('p2pcast-player').shadowRoot.querySelector('.toast:not([hidden])')?.textContent ?? ''`)
	if err != nil || !strings.Contains(toast, "https or localhost") {
		t.Errorf("the page shows %q, want the https-or-localhost message", toast)
	}
	t.Logf("insecure page (%s, direction %s): %s", strings.Replace(dev.url, "127.0.0.1", "camera.test", 1), a.direction(), *st.Error)
}

// TestBrowserTalkPermissionDenied: a viewer allowed to talk whose browser refuses the microphone
// is told so, and nothing is sent.
func TestBrowserTalkPermissionDenied(t *testing.T) {
	env, _ := alsaSpeaker(t)
	dev := startDeviceWith(t, deviceOpts{env: []string{env}}, "127.0.0.1:0",
		"--size", "640x360", "--audio-in", "testtone", "--audio-out", "spk")
	waitProducerAudio(t, dev.url, "", true)
	b, err := browser.Launch(context.Background(), browser.Options{Width: 1280, Height: 720, Flags: map[string]any{
		"use-fake-device-for-media-stream": true,
		"deny-permission-prompts":          true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tab := openTab(t, b, dev.url)
	waitAudio(t, tab, "talk-back allowed", 15*time.Second, func(a pageAudio) bool { return a.Present && a.TalkAllowed })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(true)`)
	if err != nil || st.Talking || st.Error == nil || !strings.Contains(*st.Error, "permission denied") {
		t.Fatalf("talk(true) with the microphone refused: %+v %v; want the permission message", st, err)
	}
	t.Logf("refused microphone: %s", *st.Error)
	if a := audioStats(t, tab); a.Talking || a.PacketsSent != 0 {
		t.Errorf("talking %v, %v packets sent with the microphone refused", a.Talking, a.PacketsSent)
	}
}

// TestBrowserTalkWithoutDeviceAudio: a device with a speaker but no audio of its own offers audio
// receive-only; the page answers send-only and shows the talk button alone (nothing to unmute),
// and its voice reaches the device.
func TestBrowserTalkWithoutDeviceAudio(t *testing.T) {
	env, _ := alsaSpeaker(t)
	dev := startDeviceWith(t, deviceOpts{env: []string{env}}, "127.0.0.1:0", "--size", "640x360", "--audio-out", "spk")
	waitProducer(t, dev.url, "", false, true)
	b, err := browser.Launch(context.Background(), browser.Options{Width: 1280, Height: 720, Flags: map[string]any{
		"use-fake-device-for-media-stream": true,
		"use-fake-ui-for-media-stream":     true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tab := openTab(t, b, dev.url)
	waitFor(t, tab, "video decodes", 15*time.Second, func(s pageStats) bool { return s.FramesDecoded >= 15 })
	a := waitAudio(t, tab, "talk-back allowed", 10*time.Second, func(a pageAudio) bool { return a.TalkAllowed })
	if a.Present || a.direction() != "sendonly" {
		t.Errorf("present %v, direction %s; want no received audio, sendonly", a.Present, a.direction())
	}
	if ui := readAudioUI(t, tab); !ui.Controls || !ui.Talk || ui.Mute || ui.Meter {
		t.Errorf("controls shown: %+v; want the talk button alone", ui)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(true)`); err != nil || !st.Talking {
		t.Fatalf("talk(true): %+v %v", st, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var packets uint64
		for _, s := range getStatus(t, dev.url, "").Sessions {
			if s.Talk != nil {
				packets += s.Talk.Packets
			}
		}
		if packets >= 10 {
			t.Logf("the device received %d talk-back packets", packets)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device received %d talk-back packets in 5 s", packets)
		}
		time.Sleep(100 * time.Millisecond) // polling interval of a condition
	}
	if st, err := browser.Eval[talkState](ctx, tab, `window.p2pcast.talk(false)`); err != nil || st.Talking {
		t.Fatalf("talk(false): %+v %v", st, err)
	}
}
