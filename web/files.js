// The viewer's side of a recording device's `files` data channel (docs/files.md, protocol v1):
// a "Recordings" panel that lists the device's segments (and its events), downloads one over
// the channel into a Blob (checked against the device's SHA-256) and plays one in a <video> of
// its own through MediaSource, with seeking by time, on the same peer connection as the live
// stream: no server in between.
//
// Playing: `play` at a time T makes the device send the segment's init segment, then its
// fragments from the last one starting with a keyframe at or before T. They are appended to a
// SourceBuffer in 'segments' mode (the fragments carry their own times), so a seek outside what
// is buffered cancels the running play and asks again at the new time; a seek inside it is the
// <video>'s own.

export const FILES_CHANNEL = 'files';
/** The device's recording switch (docs/recording.md, "Starting and stopping"): the control grant. */
export const RECORD_CHANNEL = 'record';
const VERSION = 1;
const CHUNK_HEADER = 12; // transfer id (4 bytes), file offset (8), big-endian

const STYLE = `
  .rec-toggle { position: absolute; left: 8px; top: 8px; min-height: 28px; padding: 2px 10px;
                border: 1px solid #777; border-radius: 4px; background: rgba(0, 0, 0, .6); color: #eee;
                font: 13px/1.2 system-ui, sans-serif; cursor: pointer; }
  .rec { position: absolute; left: 8px; top: 44px; bottom: 8px; width: min(560px, calc(100% - 16px));
         display: flex; flex-direction: column; gap: 6px; padding: 8px; border-radius: 6px;
         background: rgba(0, 0, 0, .85); color: #eee; font: 13px/1.3 system-ui, sans-serif; overflow: hidden; }
  .rec video { width: 100%; max-height: 45%; background: #000; object-fit: contain; }
  .rec .bar { display: flex; align-items: center; gap: 6px; }
  .rec .bar input[type=range] { flex: 1; }
  .rec .list { flex: 1; overflow: auto; margin: 0; padding: 0; list-style: none; }
  .rec .list li { display: flex; align-items: center; gap: 6px; padding: 2px 0; border-bottom: 1px solid #333; }
  .rec .list li .name { flex: 1; font-family: ui-monospace, monospace; font-size: 12px; overflow-wrap: anywhere; }
  .rec button { min-height: 24px; padding: 1px 8px; border: 1px solid #777; border-radius: 4px;
                background: #222; color: inherit; font: inherit; cursor: pointer; }
  .rec button:hover, .rec-toggle:hover { background: #333; }
  .rec .status { min-height: 1.3em; color: #bbb; }
`;

function fmtTime(s) {
  if (!Number.isFinite(s)) return '–';
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}

async function sha256Hex(blob) {
  if (!globalThis.crypto?.subtle) return null; // not a secure context (plain http on a LAN address)
  const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class RecordingsPanel {
  #dc = null;
  #hello = null;
  #nextId = 0;
  #calls = new Map(); // id → { onText(msg), onChunk(offset, bytes) }
  #opened = null; // resolves with hello
  #root; #toggle; #panel; #list; #status; #video; #range; #timeLabel;
  #recDc = null; #recCtl; #recBtn; #recState;
  recordStatus = null; // the device recorder's last status (record channel), for the page and tests
  #recordings = [];
  #events = [];
  // Playback: the MediaSource of the recording played, and the running play transfer.
  #play = null; // { path, ms, sb, mime, duration, queue: [], id, start }
  #seekT0 = 0; #seekTarget = null;
  #dragging = false;
  lastSeekMs = null; // the last seek's time to a frame presented at the new position (tests)

  constructor(root) {
    this.#root = root;
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
    this.#toggle = document.createElement('button');
    this.#toggle.type = 'button';
    this.#toggle.className = 'rec-toggle';
    this.#toggle.textContent = 'Recordings';
    this.#toggle.hidden = true;
    this.#panel = document.createElement('div');
    this.#panel.className = 'rec';
    this.#panel.hidden = true;
    this.#panel.innerHTML = `<video playsinline muted controls></video>
      <div class="bar"><button type="button" class="pp">Play</button><input type="range" min="0" max="0" step="0.1" value="0" aria-label="position">
      <span class="t">–</span></div>
      <div class="recctl" hidden><button type="button" class="recbtn">Record</button> <span class="recstate"></span></div>
      <div class="status" role="status"></div>
      <ul class="list"></ul>`;
    root.append(this.#toggle, this.#panel);
    this.#video = this.#panel.querySelector('video');
    this.#range = this.#panel.querySelector('input');
    this.#timeLabel = this.#panel.querySelector('.t');
    this.#status = this.#panel.querySelector('.status');
    this.#list = this.#panel.querySelector('.list');
    this.#recCtl = this.#panel.querySelector('.recctl');
    this.#recBtn = this.#panel.querySelector('.recbtn');
    this.#recState = this.#panel.querySelector('.recstate');
    this.#recBtn.addEventListener('click', () => {
      const start = !this.recordStatus?.recording || this.recordStatus?.manual === 'off';
      this.record(start ? 'start' : 'stop');
    });
    // Clicks and keys here are the panel's, not the player's (overlay toggle, desktop input).
    for (const el of [this.#toggle, this.#panel]) {
      for (const t of ['click', 'keydown', 'keyup', 'pointerdown', 'wheel']) el.addEventListener(t, (e) => e.stopPropagation());
    }
    this.#toggle.addEventListener('click', () => this.toggle());
    this.#panel.querySelector('.pp').addEventListener('click', () => {
      if (this.#video.paused) void this.#video.play().catch(() => {}); else this.#video.pause();
    });
    this.#range.addEventListener('input', () => { this.#dragging = true; this.#timeLabel.textContent = fmtTime(+this.#range.value); });
    this.#range.addEventListener('change', () => { this.#dragging = false; void this.seek(+this.#range.value); });
    this.#video.addEventListener('timeupdate', () => {
      if (!this.#dragging) this.#range.value = String(this.#video.currentTime);
      this.#timeLabel.textContent = `${fmtTime(this.#video.currentTime)} / ${fmtTime(this.#play?.duration)}`;
    });
    this.#video.addEventListener('seeking', () => {
      // A seek from the video's own controls beyond what is buffered: fetch from there.
      if (this.#seekTarget == null && this.#play && !this.#buffered(this.#video.currentTime)) void this.seek(this.#video.currentTime);
    });
  }

  /** Shows or hides the panel (listing when shown). */
  toggle(show = this.#panel.hidden) {
    this.#panel.hidden = !show;
    if (show) void this.list().catch((e) => this.#say(e.message));
  }

  get recordings() { return this.#recordings; }
  /** What the panel last said, and the playback's state (tests, diagnostics). */
  get statusText() { return this.#status.textContent; }
  get playState() {
    const p = this.#play;
    return p && { path: p.path, id: p.id, queued: p.queue.length, received: p.received, initBytes: p.initBytes, startAt: p.startAt,
      updating: p.sb?.updating, msState: p.ms.readyState, seekTarget: this.#seekTarget };
  }
  get events() { return this.#events; }
  get video() { return this.#video; }
  get hello() { return this.#hello; }

  /** Takes a new session's files channel (the old one, if any, is dropped). */
  attach(dc) {
    this.detach();
    this.#dc = dc;
    dc.binaryType = 'arraybuffer';
    let opened;
    this.#opened = new Promise((resolve, reject) => { opened = { resolve, reject }; });
    this.#opened.catch(() => {});
    dc.onmessage = (e) => this.#onMessage(e.data, opened);
    dc.onclose = () => {
      if (this.#dc !== dc) return;
      opened.reject(new Error('the device closed the files channel (no files grant?)'));
      this.#toggle.hidden = this.#hello == null;
      this.#failAll(new Error('the files channel closed'));
      this.#say('files channel closed');
    };
  }

  /** Takes a new session's record channel: the Record / Stop button, for a viewer allowed to
   * control (the device closes the channel otherwise, and the button stays hidden). */
  attachRecord(dc) {
    this.#recDc = dc;
    dc.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m?.type !== 'status' || this.#recDc !== dc) return;
      this.recordStatus = m.status;
      const st = m.status ?? {};
      this.#recCtl.hidden = false;
      this.#recBtn.textContent = st.recording ? 'Stop recording' : 'Record';
      this.#recState.textContent = (st.recording ? 'recording' : 'not recording') + ` (${st.mode ?? '?'})` +
        (m.error ? ` — ${m.error}` : '');
    };
    dc.onclose = () => { if (this.#recDc === dc) { this.#recDc = null; this.#recCtl.hidden = true; } };
  }

  /** Asks the device to start or stop recording (its answer updates recordStatus). */
  record(action) {
    if (this.#recDc?.readyState === 'open') this.#recDc.send(JSON.stringify({ type: action }));
  }

  detach() {
    if (this.#recDc) { this.#recDc.onmessage = this.#recDc.onclose = null; this.#recDc = null; }
    if (!this.#dc) return;
    this.#dc.onmessage = this.#dc.onclose = null;
    this.#dc = null;
    this.#hello = null;
    this.#failAll(new Error('the session ended'));
  }

  #failAll(err) {
    for (const c of this.#calls.values()) c.fail(err);
    this.#calls.clear();
  }

  #say(text) { this.#status.textContent = text; }

  #onMessage(data, opened) {
    if (typeof data === 'string') {
      let m;
      try { m = JSON.parse(data); } catch { return; }
      if (m?.type === 'hello') {
        if (m.v !== VERSION) { opened.reject(new Error(`files protocol v${m.v}, the page speaks v${VERSION}`)); return; }
        this.#hello = m;
        this.#toggle.hidden = false;
        opened.resolve(m);
        return;
      }
      const c = this.#calls.get(m?.id);
      if (!c) return;
      if (m.type === 'error') { this.#calls.delete(m.id); c.fail(Object.assign(new Error(m.message), { code: m.code })); return; }
      c.onText(m);
      return;
    }
    if (!(data instanceof ArrayBuffer) || data.byteLength < CHUNK_HEADER) return;
    const dv = new DataView(data);
    const c = this.#calls.get(dv.getUint32(0));
    if (c) c.onChunk(Number(dv.getBigUint64(4)), new Uint8Array(data, CHUNK_HEADER));
  }

  // Sends a request; handlers get its replies until it ends (end, error, or the last list page).
  async #request(req, handlers) {
    await this.#opened;
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, {
        onText: (m) => handlers.onText(m, (v) => { this.#calls.delete(id); resolve(v); }),
        onChunk: handlers.onChunk ?? (() => {}),
        fail: reject,
      });
      handlers.started?.(id);
      try { this.#dc.send(JSON.stringify({ ...req, id })); } catch (e) { this.#calls.delete(id); reject(e); }
    });
  }

  #cancel(id) {
    if (!this.#calls.has(id)) return;
    this.#calls.get(id).fail(Object.assign(new Error('canceled'), { code: 'canceled' }));
    this.#calls.delete(id);
    try { this.#dc?.send(JSON.stringify({ type: 'cancel', id })); } catch { /* the channel is gone */ }
  }

  /** Lists the device's recordings and events (and shows them). */
  async list() {
    const recs = [], evs = [];
    await this.#request({ type: 'list' }, {
      onText: (m, done) => {
        recs.push(...(m.recordings ?? []));
        evs.push(...(m.events ?? []));
        if (!m.more) done();
      },
    });
    this.#recordings = recs;
    this.#events = evs;
    this.#render();
    return recs;
  }

  #render() {
    this.#list.replaceChildren();
    for (const r of [...this.#recordings].reverse()) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'name';
      const dur = r.writing ? 'recording' : fmtTime(r.duration_ms / 1000);
      name.textContent = `${r.path} · ${dur} · ${(r.bytes / 1e6).toFixed(1)} MB`;
      const play = document.createElement('button');
      play.type = 'button';
      play.textContent = 'Play';
      play.addEventListener('click', () => void this.play(r.path, 0).catch((e) => this.#say(e.message)));
      const dl = document.createElement('button');
      dl.type = 'button';
      dl.textContent = 'Download';
      dl.addEventListener('click', () => void this.download(r.path, { save: true }).catch((e) => this.#say(e.message)));
      li.append(name, play, dl);
      this.#list.append(li);
    }
    for (const e of [...this.#events].reverse()) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'name';
      const start = new Date(e.start);
      name.textContent = `${e.kind} · ${start.toISOString().replace('T', ' ').slice(0, 23)}${e.end ? '' : ' (ongoing)'}`;
      li.append(name);
      const r = this.#recordings.find((x) => new Date(x.start) <= start && (x.writing || new Date(x.end) >= start));
      if (r) {
        const go = document.createElement('button');
        go.type = 'button';
        go.textContent = 'Play';
        go.addEventListener('click', () => void this.play(r.path, (start - new Date(r.start)) / 1000).catch((er) => this.#say(er.message)));
        li.append(go);
      }
      this.#list.append(li);
    }
    if (!this.#recordings.length) this.#say('no recordings yet');
  }

  /**
   * Downloads a recording over the channel into a Blob; with save, the browser saves it (a link
   * click). Returns { blob, sha256 (the device's), verified (true, or null without WebCrypto) }.
   */
  async download(path, { save = false } = {}) {
    const parts = [];
    let got = 0, total = 0;
    const end = await this.#request({ type: 'get', path }, {
      onText: (m, done) => {
        if (m.type === 'get') total = m.length;
        else if (m.type === 'end') done(m);
      },
      onChunk: (_off, bytes) => {
        parts.push(bytes.slice());
        got += bytes.length;
        if (total) this.#say(`downloading ${path}: ${Math.round((100 * got) / total)} %`);
      },
    });
    const blob = new Blob(parts, { type: 'video/mp4' });
    const sum = await sha256Hex(blob);
    if (sum != null && sum !== end.sha256) throw new Error(`${path}: checksum mismatch (device ${end.sha256}, here ${sum})`);
    this.#say(`${path}: ${blob.size} bytes${sum ? ', SHA-256 verified' : ' (not verified: no WebCrypto on this origin)'}`);
    if (save) {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = path.replaceAll('/', '_');
      this.#root.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    }
    return { blob, sha256: end.sha256, verified: sum == null ? null : true };
  }

  #buffered(t) {
    const b = this.#video.buffered;
    for (let i = 0; i < b.length; i++) if (t >= b.start(i) && t <= b.end(i) - 0.1) return true;
    return false;
  }

  /** Plays a recording from t seconds (a new MediaSource for a new path). */
  async play(path, t = 0) {
    this.toggle(true);
    if (this.#play?.path !== path) await this.#openSource(path);
    return this.seek(t);
  }

  // A fresh MediaSource for path; its SourceBuffer is made when the first play reply tells the type.
  async #openSource(path) {
    this.#stopPlay();
    const ms = new MediaSource();
    const opened = new Promise((resolve) => ms.addEventListener('sourceopen', resolve, { once: true }));
    if (this.#video.src) URL.revokeObjectURL(this.#video.src);
    this.#video.src = URL.createObjectURL(ms);
    await opened;
    this.#play = { path, ms, sb: null, mime: null, duration: NaN, queue: [], id: 0, seekTo: null };
  }

  #stopPlay() {
    if (this.#play?.id) this.#cancel(this.#play.id);
    if (this.#play) this.#play.queue.length = 0;
  }

  /**
   * Shows the recording being played at t seconds: within what is buffered the <video> seeks by
   * itself; beyond it (or with fetch) the device is asked to play from t. Resolves, with the time it took, when
   * a frame at the new position has been presented (lastSeekMs).
   */
  async seek(t, { fetch = false } = {}) {
    const p = this.#play;
    if (!p) throw new Error('nothing is being played');
    const t0 = performance.now();
    this.#seekT0 = t0;
    this.#seekTarget = t;
    p.seekTo = null; // a fetch's position not yet shown gives way to this seek
    const presented = this.#whenPresentedAt(t, t0);
    if (p.sb && this.#buffered(t) && !fetch) {
      this.#video.currentTime = t;
    } else {
      this.#stopPlay();
      await this.#fetchFrom(p, t);
    }
    void this.#video.play().catch(() => {});
    const ms = await presented;
    this.#seekTarget = null;
    return ms;
  }

  // Resolves with the ms from t0 to the first frame presented at the new position: within half a
  // second after t, or, under load (a frame callback can be skipped), the first one after the
  // seek completed that is not before t. A seek that did not take (Chromium can drop a
  // currentTime set while a SourceBuffer replaces the data around it: frames keep coming from
  // the old position) is made again, at most twice.
  #whenPresentedAt(t, t0) {
    return new Promise((resolve) => {
      const v = this.#video;
      let seeked = false, again = 0, farSince = 0;
      const onSeeked = () => { seeked = true; };
      v.addEventListener('seeked', onSeeked);
      const finish = (ms) => { v.removeEventListener('seeked', onSeeked); resolve(ms); };
      const check = (now, meta) => {
        if (this.#seekT0 !== t0) { finish(null); return; } // a newer seek took over
        const at = meta.mediaTime;
        if ((at >= t - 0.05 && at <= t + 0.5) || (seeked && at >= t - 0.05 && at <= t + 1.5)) {
          this.lastSeekMs = Math.round(performance.now() - t0);
          this.#say(`at ${fmtTime(at)} after ${this.lastSeekMs} ms`);
          finish(this.lastSeekMs);
          return;
        }
        // Frames far from t while no seek is under way: the seek was lost.
        if (!v.seeking && this.#seekTarget === t && (at < t - 0.5 || at > t + 1.5) && this.#play?.sb && this.#buffered(t)) {
          farSince ||= now;
          if (now - farSince > 300 && again < 2) {
            again++;
            farSince = 0;
            seeked = false;
            v.currentTime = t;
          }
        } else {
          farSince = 0;
        }
        v.requestVideoFrameCallback(check);
      };
      v.requestVideoFrameCallback(check);
    });
  }

  // Asks the device to play p.path from t and feeds what comes to the SourceBuffer.
  async #fetchFrom(p, t) {
    let firstMedia = true;
    const req = this.#request({ type: 'play', path: p.path, time_ms: Math.round(t * 1000) }, {
      started: (id) => { p.id = id; },
      onText: (m, done) => {
        if (m.type === 'play') {
          p.initBytes = m.init_bytes;
          p.received = 0;
          p.duration = m.duration_ms / 1000;
          this.#range.max = String(p.duration);
          if (!p.sb) {
            if (!MediaSource.isTypeSupported(m.mime)) {
              this.#say(`this browser cannot play ${m.mime}`);
              this.#cancel(p.id);
              return;
            }
            p.sb = p.ms.addSourceBuffer(m.mime);
            p.sb.mode = 'segments';
            p.sb.addEventListener('updateend', () => { this.#seekWhenBuffered(p); this.#pump(p); });
            p.ms.duration = p.duration;
          } else if (p.ms.readyState === 'open') {
            p.sb.abort(); // a new init segment follows: reset the parser (and drop an append under way)
          }
          p.startAt = m.start_ms / 1000;
        } else if (m.type === 'end') {
          p.id = 0;
          done(m);
        }
      },
      onChunk: (_off, bytes) => {
        p.received += bytes.length;
        p.queue.push(bytes.slice());
        this.#pump(p);
        // The first fragment is in: show the position asked for once it is buffered.
        if (firstMedia && p.received > p.initBytes) {
          firstMedia = false;
          p.seekTo = Math.max(t, p.startAt);
          this.#seekWhenBuffered(p);
        }
      },
    });
    req.catch((e) => { if (e.code !== 'canceled') this.#say(e.message); });
    // Resolve once the reply has told the type (the rest streams in the background).
    await Promise.race([req.then(() => {}), new Promise((r) => { const w = () => (p.sb ? r() : setTimeout(w, 5)); w(); })]);
  }

  // Sets the position a play was asked from once the SourceBuffer is idle and holds it:
  // Chromium could drop a currentTime set while an append was replacing the data around it
  // (frames kept coming from the old position until #whenPresentedAt made the seek again,
  // 300 ms later).
  #seekWhenBuffered(p) {
    if (p.seekTo == null || !p.sb || p.sb.updating || this.#play !== p) return;
    const b = this.#video.buffered;
    for (let i = 0; i < b.length; i++) {
      if (p.seekTo >= b.start(i) && p.seekTo < b.end(i)) {
        this.#video.currentTime = p.seekTo;
        p.seekTo = null;
        return;
      }
    }
  }

  #pump(p) {
    if (!p.sb || p.sb.updating || !p.queue.length || this.#play !== p) return;
    // Several chunks in one append: fewer updateend round trips.
    const n = p.queue.reduce((a, b) => a + b.length, 0);
    const buf = new Uint8Array(n);
    let o = 0;
    for (const c of p.queue) { buf.set(c, o); o += c.length; }
    p.queue.length = 0;
    try {
      p.sb.appendBuffer(buf);
    } catch (e) {
      this.#say(`playing: ${e.message}`);
      this.#stopPlay();
    }
  }
}
