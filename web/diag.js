// diag.js: latency diagnostics of the viewer page, loaded by index.html only with ?diag=1.
//
// p2pcast's test pattern draws its capture time into every picture as a time strip (the truth is
// capture/sources/testpattern.c, pc_timestrip_*): 64 blocks of B×B pixels in a row at the top left,
// B = min(32, max(8, (width / 64) & ~7)), most significant bit first, luma 235 for 1 and 16 for 0.
// Bits 63..16 are the low 48 bits of the capture time in µs since the Unix epoch (CLOCK_REALTIME),
// bits 15..0 their CRC-16/CCITT-FALSE (as 6 bytes, big-endian).
//
// For every frame the video presents (requestVideoFrameCallback) we copy only the strip out of the
// frame (VideoFrame.copyTo with a rect: a drawImage + getImageData of a whole 1080p frame costs
// 4–17 ms of main thread), decode the capture time and record:
//   present_ms            capture → presentation (metadata.presentationTime, when the frame became
//                         the compositor's current frame; expectedDisplayTime is stale on
//                         Chromium's low-latency path and is not used)
//   display60_ms          capture → the next vsync of a 60 Hz display after presentation
//   receive_to_present_ms last packet received → presentation; decode_ms (processingDuration)
//                         and jitter_ms (what remains of it, ≥ 0)
//   receive_epoch_ms      when the last packet arrived, ms since the epoch (the benchmark joins it
//                         with the device's send time)
// A callback sometimes sees a newer frame than its metadata describes (a few % at 60 fps): RTP
// timestamps derive from the capture time (90 kHz), so rtpTimestamp − capture time is constant
// within a session; samples off that offset by more than 1 ms are dropped and counted.
//
// window.p2pcast.latency(since = 0) returns { samples, total, dropped, stripErrors, copyErrors,
// formats, requestAt, firstRequestAt, firstFrameAt, navStart, clockOffsetMs }: the samples recorded
// after the `since`-th (the last 20000 at most; `total` counts them all), performance.now() when the
// player sent the signaling request that led to the first frame and when it presented that frame
// (both relative to navigation start), and navStart = performance.timeOrigin (ms since the epoch).
//
// Audio/video sync (`p2pcast bench avsync`, with `p2pcast device --audio-in testtone`): the first
// call of window.p2pcast.avsync() (or ?avsync=1) starts the AvSync below, which adds an
// AudioContext and, once a second, a getStats(); until then the page does exactly what it does
// for latency(). avsync() returns { onsets, flashes, snapshots, onsetsTotal, flashesTotal,
// noClock, audio }: the last 3600 beep onsets, first pictures of a capture second and receiver
// snapshots, each described at AvSync; `audio` the AudioContext's state, sampleRate,
// baseLatencyMs, outputLatencyMs, whether a track and the worklet are connected, and an error.

const STRIP_BITS = 64;
const RING_SIZE = 20000;
const VSYNC_60_MS = 1000 / 60;
// Capture times in RTP ticks (90 kHz) may differ from the µs of the strip by rounding only.
const RTP_TOLERANCE_TICKS = 90; // 1 ms
const OFFSET_HISTORY = 15;
const OVERLAY_WINDOW = 600; // samples behind the overlay's running percentiles
const OVERLAY_INTERVAL_MS = 500;
const LOW48 = 2 ** 48;

/** The strip's block size for a picture `width` pixels wide (pc_timestrip_block_size). */
export function blockSize(width) {
  return Math.min(32, Math.max(8, Math.floor(width / 64) & ~7));
}

/** CRC-16/CCITT-FALSE: poly 0x1021, init 0xffff, no reflection, no final xor. */
export function crc16(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/**
 * Decodes 64 bits (MSB first) into the low 48 bits of a capture time in µs, or null when the CRC
 * does not match.
 */
export function decodeBits(bits) {
  let low48 = 0;
  const bytes = new Uint8Array(6);
  for (let i = 0; i < 48; i++) {
    low48 = low48 * 2 + bits[i];
    bytes[i >> 3] = (bytes[i >> 3] << 1) | bits[i];
  }
  let crc = 0;
  for (let i = 48; i < STRIP_BITS; i++) crc = (crc << 1) | bits[i];
  return crc === crc16(bytes) ? low48 : null;
}

/** The full capture time (µs since the epoch) whose low 48 bits are low48, nearest to nowUs. */
export function widen48(low48, nowUs) {
  let t = Math.floor(nowUs / LOW48) * LOW48 + low48;
  if (t - nowUs > LOW48 / 2) t -= LOW48;
  else if (nowUs - t > LOW48 / 2) t += LOW48;
  return t;
}

// How to read luma from the first plane of a VideoFrame format: bytes per pixel, and the luma of
// the pixel at a byte index; null: unsupported (high bit depth, or no CPU-readable pixels).
function lumaReader(format) {
  switch (format) {
    case 'I420': case 'I420A': case 'I422': case 'I422A': case 'I444': case 'I444A': case 'NV12':
      return { bpp: 1, luma: (d, i) => d[i] };
    case 'RGBA': case 'RGBX':
      return { bpp: 4, luma: (d, i) => (77 * d[i] + 150 * d[i + 1] + 29 * d[i + 2]) >> 8 };
    case 'BGRA': case 'BGRX':
      return { bpp: 4, luma: (d, i) => (29 * d[i] + 150 * d[i + 1] + 77 * d[i + 2]) >> 8 };
    default:
      return null;
  }
}

/**
 * Reads the strip's 64 bits out of the first plane of a copied rect: the mean of a small square
 * around each block's centre (compression blurs the edges), thresholded half-way between the two
 * levels (16/235 in YUV, about 0/255 once converted to RGB).
 */
export function readBits(data, offset, stride, format, block, bits = new Uint8Array(STRIP_BITS)) {
  const { bpp, luma } = lumaReader(format);
  const half = Math.max(1, block >> 3); // a (2·half)² square: 4×4 pixels for 16-pixel blocks
  const cy = block >> 1;
  for (let i = 0; i < STRIP_BITS; i++) {
    const cx = i * block + (block >> 1);
    let sum = 0;
    let n = 0;
    for (let y = cy - half; y < cy + half; y++) {
      for (let x = cx - half; x < cx + half; x++) {
        sum += luma(data, offset + y * stride + x * bpp);
        n++;
      }
    }
    bits[i] = sum / n >= 125 ? 1 : 0;
  }
  return bits;
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
}

// The RTP offset of a sample: rtpTimestamp − capture time in 90 kHz ticks, mod 2^32.
function rtpOffset(rtp, captureUs) {
  return Number(BigInt.asUintN(32, BigInt(rtp) - (BigInt(captureUs) * 9n) / 100n));
}

function rtpDistance(a, b) {
  const d = (a - b) >>> 0;
  return Math.min(d, 2 ** 32 - d);
}

class Diagnostics {
  #player; #video;
  #ring = new Array(RING_SIZE); #total = 0;
  #dropped = 0; #stripErrors = 0; #copyErrors = 0; #formats = {};
  #offsets = []; #ref = null; #pending = [];
  #pool = [];
  #firstFrameAt = null; #requestAt = null; #firstRequestAt = null;
  #clockOffsetMs = 0; #clockReadings = 0;
  #overlay;
  #avsync = null; // started by the first avsync() call, or by ?avsync=1

  constructor(player) {
    this.#player = player;
    this.#video = player.video ?? player.shadowRoot.querySelector('video');
    this.#overlay = document.createElement('pre');
    this.#overlay.id = 'p2pcast-diag';
    this.#overlay.style.cssText = 'position:fixed;left:8px;bottom:8px;margin:0;z-index:10;' +
      'font:12px/1.4 ui-monospace,monospace;color:#eee;background:rgba(0,0,0,.6);padding:6px 9px;' +
      'border-radius:4px;pointer-events:none;white-space:pre';
    this.#overlay.textContent = 'diag: waiting for frames';
    document.body.append(this.#overlay);
    setInterval(() => this.#render(), OVERLAY_INTERVAL_MS);
    this.#calibrateClock();
    setInterval(() => this.#calibrateClock(), 1000);
    this.#video.requestVideoFrameCallback(this.#onFrame);
    if (new URLSearchParams(location.search).get('avsync') === '1') this.avsync();
  }

  // Date.now() is the system clock; timeOrigin + performance.now() is a monotonic clock anchored
  // to it at navigation, which may drift from it by a little. We measure the difference (Date.now
  // has 1 ms steps: the mean over many readings is finer) and add it to the page's times.
  #calibrateClock() {
    let sum = 0;
    const n = 20;
    for (let i = 0; i < n; i++) sum += Date.now() - (performance.timeOrigin + performance.now());
    // Date.now() truncates to the ms: on average it is 0.5 ms behind the true time.
    const reading = sum / n + 0.5;
    this.#clockReadings++;
    const w = 1 / Math.min(this.#clockReadings, 10);
    this.#clockOffsetMs += w * (reading - this.#clockOffsetMs);
  }

  #onFrame = (now, md) => {
    this.#video.requestVideoFrameCallback(this.#onFrame);
    if (this.#firstFrameAt == null) {
      this.#firstFrameAt = this.#player.firstFrameAt ?? performance.now();
      this.#requestAt = this.#player.requestedAt ?? null;
      this.#firstRequestAt = this.#player.firstRequestedAt ?? null;
    }
    let frame;
    try {
      frame = new VideoFrame(this.#video);
    } catch {
      this.#copyErrors++;
      return;
    }
    void this.#read(frame, md);
  };

  async #read(frame, md) {
    let captureUs = null;
    try {
      captureUs = await this.#readStrip(frame);
      // The flash check needs the picture: the frame stays open until it is done.
      if (captureUs != null && this.#avsync) await this.#avsync.frame(frame, md, captureUs, this.#rtpAgrees(md, captureUs));
    } finally {
      frame.close();
    }
    if (captureUs != null) this.#record(md, captureUs);
  }

  // Whether md describes the frame of captureUs by the session's RTP offset (null: cannot tell yet).
  #rtpAgrees(md, captureUs) {
    if (md.rtpTimestamp == null || this.#ref == null) return null;
    return rtpDistance(rtpOffset(md.rtpTimestamp, captureUs), this.#ref) <= RTP_TOLERANCE_TICKS;
  }

  // The frame's capture time (µs since the epoch) from its strip, or null (counted).
  async #readStrip(frame) {
    const format = frame.format;
    this.#formats[format ?? 'null'] = (this.#formats[format ?? 'null'] ?? 0) + 1;
    const vr = frame.visibleRect;
    const block = blockSize(vr.width);
    // Even bounds: chroma-subsampled formats need them. A picture narrower than the strip has none.
    const rect = { x: vr.x & ~1, y: vr.y & ~1, width: STRIP_BITS * block, height: block };
    let buf = null;
    let layout;
    try {
      if (!lumaReader(format) || vr.width < rect.width || vr.height < block) throw new Error('no strip');
      const size = frame.allocationSize({ rect });
      buf = this.#pool.pop();
      if (!buf || buf.byteLength < size) buf = new Uint8Array(size);
      layout = await frame.copyTo(buf, { rect });
    } catch {
      this.#copyErrors++;
      if (buf) this.#pool.push(buf);
      return null;
    }
    const bits = readBits(buf, layout[0].offset, layout[0].stride, format, block);
    this.#pool.push(buf);
    const low48 = decodeBits(bits);
    if (low48 == null) {
      this.#stripErrors++;
      return null;
    }
    return widen48(low48, Date.now() * 1000);
  }

  #record(md, captureUs) {
    const t0 = performance.timeOrigin + this.#clockOffsetMs;
    const captureMs = captureUs / 1000;
    const presentEpoch = t0 + md.presentationTime;
    const decodeMs = (md.processingDuration ?? 0) * 1000;
    const receiveEpoch = md.receiveTime == null ? null : t0 + md.receiveTime;
    const receiveToPresent = md.receiveTime == null ? null : md.presentationTime - md.receiveTime;
    const sample = {
      capture_us: captureUs,
      present_ms: presentEpoch - captureMs,
      display60_ms: Math.ceil(presentEpoch / VSYNC_60_MS) * VSYNC_60_MS - captureMs,
      receive_to_present_ms: receiveToPresent,
      decode_ms: decodeMs,
      jitter_ms: receiveToPresent == null ? null : Math.max(0, receiveToPresent - decodeMs),
      receive_epoch_ms: receiveEpoch,
      present_epoch_ms: presentEpoch,
      rtp: md.rtpTimestamp ?? null,
    };
    if (sample.rtp == null) {
      this.#push(sample); // nothing to check against
      return;
    }
    // The offset most of the recent samples agree on is the session's; a new session (a new
    // offset) takes over once it has the majority.
    const off = rtpOffset(sample.rtp, captureUs);
    this.#offsets.push(off);
    if (this.#offsets.length > OFFSET_HISTORY) this.#offsets.shift();
    let best = null;
    let bestVotes = 0;
    for (const o of this.#offsets) {
      let votes = 0;
      for (const p of this.#offsets) if (rtpDistance(o, p) <= RTP_TOLERANCE_TICKS) votes++;
      if (votes > bestVotes) { best = o; bestVotes = votes; }
    }
    if (bestVotes >= 2 && bestVotes * 2 > this.#offsets.length) this.#ref = best;
    this.#pending.push([sample, off]);
    if (this.#ref == null) {
      // The first samples wait for an offset to agree on (not for ever).
      if (this.#pending.length > OFFSET_HISTORY) {
        this.#pending.shift();
        this.#dropped++;
      }
      return;
    }
    for (const [s, o] of this.#pending.splice(0)) {
      if (rtpDistance(o, this.#ref) <= RTP_TOLERANCE_TICKS) this.#push(s);
      else this.#dropped++;
    }
  }

  #push(sample) {
    this.#ring[this.#total % RING_SIZE] = sample;
    this.#total++;
  }

  latency(since = 0) {
    const from = Math.max(since, this.#total - RING_SIZE, 0);
    const samples = [];
    for (let i = from; i < this.#total; i++) samples.push(this.#ring[i % RING_SIZE]);
    return {
      samples, total: this.#total, dropped: this.#dropped, stripErrors: this.#stripErrors,
      copyErrors: this.#copyErrors, formats: { ...this.#formats },
      requestAt: this.#requestAt, firstRequestAt: this.#firstRequestAt,
      firstFrameAt: this.#firstFrameAt, navStart: performance.timeOrigin,
      clockOffsetMs: this.#clockOffsetMs,
    };
  }

  avsync() {
    this.#avsync ??= new AvSync(this.#video, () => performance.timeOrigin + this.#clockOffsetMs);
    return this.#avsync.report();
  }

  #render() {
    const n = Math.min(this.#total, OVERLAY_WINDOW);
    const recent = [];
    for (let i = this.#total - n; i < this.#total; i++) recent.push(this.#ring[i % RING_SIZE]);
    const fmt = (k) => {
      const v = recent.map((s) => s[k]).filter((x) => x != null).sort((a, b) => a - b);
      return v.length ? `p50 ${percentile(v, 0.5).toFixed(1)}  p95 ${percentile(v, 0.95).toFixed(1)} ms` : '–';
    };
    const first = this.#firstFrameAt == null ? '–' : `${Math.round(this.#firstFrameAt)} ms`;
    const req = this.#firstFrameAt == null || this.#requestAt == null ? '–'
      : `${Math.round(this.#firstFrameAt - this.#requestAt)} ms`;
    this.#overlay.textContent = [
      `capture→present  ${fmt('present_ms')}`,
      `60 Hz display    ${fmt('display60_ms')}`,
      `decode           ${fmt('decode_ms')}`,
      `jitter buffer    ${fmt('jitter_ms')}`,
      `first frame      ${first} (after request ${req})`,
      `samples ${this.#total}, dropped ${this.#dropped}, strip errors ${this.#stripErrors}, ` +
        `formats ${Object.keys(this.#formats).join(',') || '–'}`,
      ...(this.#avsync ? [this.#avsync.summary()] : []),
    ].join('\n');
  }
}

// ---- Audio/video sync: window.p2pcast.avsync() ----

const AVSYNC_KEEP = 3600; // onsets, flashes and snapshots kept: an hour of one a second
// The flash patch: PATCH×PATCH pixels in the blue bar (the last seventh of the width, luma 35)
// at 0.675 of the height, between the ramp band (0.5–0.6) and the bouncing box (from 0.75),
// where only the flash (luma 235) is ever bright.
const PATCH = 8;
const FLASH_LUMA = 135; // half-way between the two
const SNAPSHOT_MS = 1000;
const NTP_UNIX_MS = 2208988800000; // 1900 → 1970

/** The flash patch's rect in a picture whose visible rect is vr (even bounds, for YUV formats). */
export function flashPatch(vr) {
  return {
    x: (vr.x + Math.floor((vr.width * 13) / 14) - PATCH / 2) & ~1,
    y: (vr.y + Math.floor(vr.height * 0.675) - PATCH / 2) & ~1,
    width: PATCH, height: PATCH,
  };
}

/** The mean luma of a width×height rect copied out of the first plane of a format. */
export function meanLuma(data, offset, stride, format, width, height) {
  const { bpp, luma } = lumaReader(format);
  let sum = 0;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) sum += luma(data, offset + y * stride + x * bpp);
  return sum / (width * height);
}

// diag.js cannot reach the player's RTCPeerConnection (a private field of the element), so it
// wraps two methods the player calls on it (getStats every second, getReceivers on each session)
// and keeps the connection that called last. Diagnostics only, started by the first avsync().
function watchPeerConnections(onPc) {
  const proto = RTCPeerConnection.prototype;
  for (const name of ['getStats', 'getReceivers']) {
    const orig = proto[name];
    proto[name] = function (...args) {
      if (this.connectionState !== 'closed') onPc(this);
      return orig.apply(this, args);
    };
  }
}

function keep(list, item) {
  list.push(item);
  if (list.length > AVSYNC_KEEP) list.shift();
}

/**
 * Measures audio/video sync as the page presents it, with p2pcast's test tone and test pattern:
 * a beep from every whole second k of the capture clock, and a flash on the first picture
 * captured at or after k (docs/capture.md).
 *
 * Audio: the video element's audio track goes into an AudioContext (MediaStreamAudioSourceNode)
 * and an AudioWorklet (avsync-worklet.js) that reports each beep's onset as a sample frame of the
 * context. Its presentation is when that sample leaves the context's output device:
 * getOutputTimestamp() pairs a context time with the performance time at which the device plays
 * it (Chromium derives it from the device's own reported delay, so outputLatency is in it and is
 * not added again). Not counted: anything after the device's reported delay (DAC, speaker), and
 * the difference between this path and the element's own audio renderer (the element is muted;
 * WebAudio takes the same decoded, lip-synced audio but through its own FIFO and output stream).
 *
 * Video: the first presented frame of each capture second (its time strip decoded by
 * Diagnostics), checked for the flash by the mean luma of a small patch, and presented at
 * metadata.presentationTime (when the compositor took the frame; as for latency(), not
 * expectedDisplayTime). Not counted: the wait for the display's next vsync and the display.
 *
 * It also snapshots, every second, what Chromium's own lip sync sees: both inbound-rtp
 * estimatedPlayoutTimestamp (the capture time, on the sender's clock, of what plays out now) and
 * jitter buffer delays, and each receiver's getSynchronizationSources().
 */
class AvSync {
  #video; #t0;
  #ctx = null; #node = null; #source = null; #track = null; #error = null;
  #onsets = []; #flashes = []; #snapshots = [];
  #onsetsTotal = 0; #flashesTotal = 0; #noClock = 0;
  #prevSecond = null;
  #pc = null; #prevStats = null;

  /** t0() is the page's epoch time origin (ms), corrected as Diagnostics does. */
  constructor(video, t0) {
    this.#video = video;
    this.#t0 = t0;
    watchPeerConnections((pc) => { this.#pc = pc; });
    void this.#startAudio();
    setInterval(() => {
      this.#attach();
      void this.#snapshot().catch(() => {});
    }, SNAPSHOT_MS);
  }

  async #startAudio() {
    try {
      const ctx = new AudioContext({ latencyHint: 'interactive' });
      this.#ctx = ctx;
      await ctx.audioWorklet.addModule(new URL('avsync-worklet.js', import.meta.url));
      // No outputs: the node is pulled all the same, and nothing is heard.
      this.#node = new AudioWorkletNode(ctx, 'p2pcast-onset', { numberOfInputs: 1, numberOfOutputs: 0 });
      this.#node.port.onmessage = (e) => this.#onOnset(e.data);
      if (ctx.state !== 'running') {
        // Where autoplay needs a gesture, the first one starts the context.
        const resume = () => ctx.resume().catch(() => {});
        void resume();
        addEventListener('pointerdown', resume, { once: true });
        addEventListener('keydown', resume, { once: true });
      }
      this.#attach();
    } catch (e) {
      this.#error = String(e);
    }
  }

  // Follows the video's audio track (each new session brings a new stream), or else the audio
  // receiver's, should the player ever play audio elsewhere.
  #attach() {
    if (!this.#node) return;
    const track = this.#video.srcObject?.getAudioTracks?.()[0]
      ?? this.#pc?.getReceivers().find((r) => r.track?.kind === 'audio' && r.track.readyState === 'live')?.track
      ?? null;
    if (track === this.#track) return;
    this.#source?.disconnect();
    this.#source = null;
    this.#track = track;
    if (!track) return;
    this.#source = this.#ctx.createMediaStreamSource(new MediaStream([track]));
    this.#source.connect(this.#node);
  }

  #onOnset({ frame, peak, rise }) {
    const ctx = this.#ctx;
    const ts = ctx.getOutputTimestamp();
    if (!ts.performanceTime) {
      this.#noClock++; // the output has not started: no mapping to the performance clock
      return;
    }
    const contextTime = frame / ctx.sampleRate;
    const present = ts.performanceTime + (contextTime - ts.contextTime) * 1000;
    const now = performance.now();
    keep(this.#onsets, {
      context_time: contextTime,
      present_ms: present,
      present_epoch_ms: this.#t0() + present,
      // When the worklet saw the onset: the context has rendered currentTime − contextTime since
      // (to a render quantum, 128 frames).
      rendered_epoch_ms: this.#t0() + now - (ctx.currentTime - contextTime) * 1000,
      // How long before its presentation the onset reached the page (negative: after).
      ahead_ms: present - now,
      quiet_peak: peak,
      rise_ms: rise == null ? null : (rise / ctx.sampleRate) * 1000,
      output_latency_ms: (ctx.outputLatency ?? 0) * 1000,
      base_latency_ms: (ctx.baseLatency ?? 0) * 1000,
    });
    this.#onsetsTotal++;
  }

  /**
   * Called by Diagnostics for each presented frame whose strip it decoded (in order), before the
   * frame is closed. rtpOk: whether the callback's metadata is this frame's (null: unknown).
   */
  async frame(frame, md, captureUs, rtpOk) {
    const second = Math.floor(captureUs / 1e6);
    const prev = this.#prevSecond;
    if (prev != null && second < prev) return; // an older frame completing late
    this.#prevSecond = second;
    if (prev == null || second === prev) return;
    let luma = null;
    try {
      const format = frame.format;
      if (lumaReader(format)) {
        const rect = flashPatch(frame.visibleRect);
        const buf = new Uint8Array(frame.allocationSize({ rect }));
        const layout = await frame.copyTo(buf, { rect });
        luma = meanLuma(buf, layout[0].offset, layout[0].stride, format, PATCH, PATCH);
      }
    } catch { /* luma stays null: not counted as a flash */ }
    keep(this.#flashes, {
      second,
      capture_us: captureUs,
      present_ms: md.presentationTime,
      present_epoch_ms: this.#t0() + md.presentationTime,
      luma,
      flash: luma != null && luma >= FLASH_LUMA,
      rtp_ok: rtpOk,
      after_gap: second - prev > 1, // no frame of the previous second was read
    });
    this.#flashesTotal++;
  }

  async #snapshot() {
    const pc = this.#pc;
    if (!pc || pc.connectionState === 'closed' || !this.#track) return;
    const report = await pc.getStats();
    const inbound = {};
    for (const r of report.values()) {
      const kind = r.kind ?? r.mediaType;
      if (r.type !== 'inbound-rtp' || (kind !== 'audio' && kind !== 'video')) continue;
      if (!inbound[kind] || (r.bytesReceived ?? 0) > (inbound[kind].bytesReceived ?? 0)) inbound[kind] = r;
    }
    const prev = this.#prevStats;
    this.#prevStats = inbound;
    const side = (kind) => {
      const r = inbound[kind];
      if (!r) return null;
      const p = prev?.[kind]?.id === r.id ? prev[kind] : null;
      const delta = (k) => (r[k] ?? 0) - (p?.[k] ?? 0);
      const emitted = delta('jitterBufferEmittedCount');
      return {
        playout_capture_ms: r.estimatedPlayoutTimestamp == null ? null : r.estimatedPlayoutTimestamp - NTP_UNIX_MS,
        // Over the last interval, per emitted sample or frame.
        jitter_buffer_ms: emitted > 0 ? (delta('jitterBufferDelay') / emitted) * 1000 : null,
        jitter_target_ms: emitted > 0 ? (delta('jitterBufferTargetDelay') / emitted) * 1000 : null,
        jitter_minimum_ms: emitted > 0 ? (delta('jitterBufferMinimumDelay') / emitted) * 1000 : null,
      };
    };
    const sources = {};
    for (const rcv of pc.getReceivers()) {
      const kind = rcv.track?.kind;
      const s = rcv.getSynchronizationSources?.()[0];
      if (!s || (kind !== 'audio' && kind !== 'video')) continue;
      sources[kind] = {
        timestamp: s.timestamp, rtp_timestamp: s.rtpTimestamp,
        capture_timestamp: s.captureTimestamp ?? null,
        sender_capture_time_offset: s.senderCaptureTimeOffset ?? null,
      };
    }
    const at = [...report.values()][0]?.timestamp ?? this.#t0() + performance.now();
    keep(this.#snapshots, { at_epoch_ms: at, audio: side('audio'), video: side('video'), sources });
  }

  /** One overlay line: the last second's offset, paired as bench avsync pairs them. */
  summary() {
    const f = this.#flashes.findLast((x) => x.flash && x.rtp_ok !== false);
    let last = '–';
    if (f) {
      const videoMs = f.present_epoch_ms - f.capture_us / 1000;
      const o = this.#onsets.find((x) => Math.abs(x.present_epoch_ms - videoMs - f.second * 1000) < 500);
      if (o) last = `${(o.present_epoch_ms - f.second * 1000 - videoMs).toFixed(1)} ms`;
    }
    return `a/v offset       ${last} (+: audio late; beeps ${this.#onsetsTotal}, flashes ${this.#flashesTotal})`;
  }

  report() {
    const ctx = this.#ctx;
    return {
      onsets: [...this.#onsets], flashes: [...this.#flashes], snapshots: [...this.#snapshots],
      onsetsTotal: this.#onsetsTotal, flashesTotal: this.#flashesTotal, noClock: this.#noClock,
      audio: {
        state: ctx?.state ?? null,
        sampleRate: ctx?.sampleRate ?? null,
        baseLatencyMs: ctx ? (ctx.baseLatency ?? 0) * 1000 : null,
        outputLatencyMs: ctx ? (ctx.outputLatency ?? 0) * 1000 : null,
        track: this.#track != null,
        worklet: this.#node != null,
        error: this.#error,
      },
    };
  }
}

async function start() {
  await customElements.whenDefined('p2pcast-player');
  const player = document.querySelector('p2pcast-player');
  if (!player) return;
  if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype) || !('VideoFrame' in window)) {
    console.info('p2pcast diag: this browser lacks requestVideoFrameCallback or VideoFrame');
    return;
  }
  const diag = new Diagnostics(player);
  window.p2pcast ??= {};
  window.p2pcast.latency = (since = 0) => diag.latency(since);
  window.p2pcast.avsync = () => diag.avsync();
}

void start();
