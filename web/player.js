// <p2pcast-player>: plays a p2pcast device's live H.264 stream over WebRTC.
//
// Signaling follows docs/signaling.md: by default a WebSocket to <base>/ws on which the device
// makes the offer after our `watch`, with trickle ICE both ways; `offer=viewer` makes the page
// offer instead, and `signal=whep` uses WHEP (POST <base>/whep) without a socket. Options are read
// from the element's attributes, falling back to the page's query string: signal, offer, url,
// overlay, device. The element reconnects by itself, forever, and never reloads the page.
//
// Hub mode (docs/hub.md): with `device=ID` the page was served by a hub. It opens the same
// origin's /ws, authenticates first ({"type":"auth","token","device"}) with the token kept in
// sessionStorage (it arrives in the URL fragment, #token=…, which never reaches a server, and is
// removed from the address bar at once), then speaks the device's protocol through the hub.
// On a device's own page the same token (from its pairing link, #token=…) is sent first as
// {"type":"auth","token"} on /ws and as "Authorization: Bearer" on WHEP; a device without LAN
// auth ignores it (docs/security.md).
//
// When the path breaks (ICE disconnected for 1.5 s, or failed) and the socket is up, the page asks
// the device for an ICE restart on the same session ({"type":"restart"}: a fresh offer, new ICE
// credentials) and answers it on the same RTCPeerConnection; only if that does not bring the
// connection back does it fall back to a new session.
//
// Audio: when the device sends audio (its offer has an audio section, or its answer takes ours)
// it plays in the same muted <video> element (browsers need a gesture to unmute), with an unmute
// button and a level meter (WebAudio AnalyserNode). When the device also takes this viewer's
// voice (audio negotiated sendrecv: a `talk` grant and a speaker on the device), a push-to-talk
// button puts the microphone on the audio sender with replaceTrack, without renegotiation.
//
// Sources (docs/sources.md): a device with several (cameras, a desktop) lists them in its hello.
// `source=ID` (attribute or query) watches that one: the watch or offer names it, WHEP posts to
// <base>/whep/ID; without it the device's default source plays. With two or more sources the
// element shows a small chooser; a choice starts a new session on the same socket and puts
// ?source=ID in the address bar (no reload). An unknown id is final: the page says so.
//
// Desktop devices (p2pcast device --source wayland) list a `control` channel in their hello's
// stream: the page opens it in each session, and desktop.js sends the mouse, wheel, keyboard and
// clipboard while this viewer is in control (docs/input.md). A token without the `control` grant
// has the channel closed at once by the device: the page then stays a viewer.
//
// window.p2pcast is the test hook the end-to-end tests read; it describes the first player.

import { CONTROL_CHANNEL, DesktopControl } from './desktop.js';
import { FILES_CHANNEL, RECORD_CHANNEL, RecordingsPanel } from './files.js';

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;
// 'disconnected' often heals by itself (a short path loss); only a longer one is a failure.
const DISCONNECTED_GRACE_MS = 3000;
// With a live socket and a device that offered, a shorter loss already earns an ICE restart: it
// keeps the session (no new watch, no new keyframe wait beyond the device's own), so it is cheap.
const ICE_RESTART_GRACE_MS = 1500;
// An ICE restart that has not reconnected by then gives way to a new session.
const ICE_RESTART_TIMEOUT_MS = 8000;
// No packet at all on the selected pair for this long (the device sends RTCP every second even
// when its picture stands still) means the path is dead, whatever the ICE state says: Chromium
// keeps reporting 'connected' for half a minute after the host's address changed under it.
const STALL_MS = 2500;
// On the device-offers path the device controls ICE and nominates the best pair that works once
// its relay wait (500 ms) has passed. A pair to our TURN relay works at once, while Chromium's
// paced checks reach the direct pair later: our relay candidates wait this long after our SDP,
// so a direct path wins wherever there is one (the device's own relay candidates remain).
const RELAY_HOLD_MS = 1000;
// During an ICE restart the selected pair is read this often, to see packets flow again.
const RESTART_POLL_MS = 250;
// The device answers `watch`/`offer` at once; silence means the socket is dead even if the
// browser still thinks it is open (a cut network does not close TCP for minutes).
const SIGNAL_TIMEOUT_MS = 4000;
// An attempt that has not connected by then is torn down and tried again.
const WATCHDOG_MS = 10000;
const STATS_INTERVAL_MS = 1000;
const TOAST_MS = 5000;
// The data channel the device reports our path on, and how many of its decisions we keep.
const EVENTS_CHANNEL = 'events';
const MAX_DECISIONS = 64;
// The level meter's refresh: smooth enough for the eye, and cheap (one analyser read per tick).
const METER_MS = 100;
// The meter's scale: -60 dBFS (empty) to 0 dBFS (full).
const METER_FLOOR_DB = -60;
// What talk-back asks of the microphone: a viewer near its own speakers must not send the device's
// sound back to it, and a room's hum is not worth sending.
const MIC_CONSTRAINTS = { audio: { echoCancellation: true, noiseSuppression: true } };

const EMPTY_STATS = Object.freeze({
  framesDecoded: 0, framesReceived: 0, framesDropped: 0, frameWidth: 0, frameHeight: 0,
  freezeCount: 0, totalFreezesDuration: 0, packetsReceived: 0, packetsLost: 0, bytesReceived: 0,
  framesPerSecond: 0, rttMs: null, connectionState: null, iceConnectionState: null,
  localCandidateType: null, remoteCandidateType: null, protocol: null, pair: null, sessions: 0,
  iceRestarts: 0, lastIceRestartMs: null, firstFrameMs: null,
});

// window.p2pcast.audio() when there is no audio (or no session).
const EMPTY_AUDIO = Object.freeze({
  present: false, direction: null, muted: true, talkAllowed: false, talking: false,
  packetsReceived: 0, packetsLost: 0, bytesReceived: 0, totalAudioEnergy: 0,
  totalSamplesDuration: 0, audioLevel: 0, packetsSent: 0, meterDb: null, meterPeakDb: null,
  talkError: null,
});

// Hub errors before hello that a retry cannot fix: the token must be replaced.
const HUB_FATAL = new Set(['unauthorized', 'forbidden', 'expired']);
// A source id as the device takes it (?source=ID, /whep/ID).
const SOURCE_ID = /^[a-z0-9-]{1,32}$/;
const HUB_REASONS = {
  unauthorized: 'The token was refused (missing, malformed, forged, expired or revoked). Open the pairing link again, or ask for a new token.',
  forbidden: 'This token does not allow watching this device.',
  expired: 'The token has expired.',
  offline: 'The device is not connected to the hub. Waiting for it…',
  busy: 'The device has too many viewers. Trying again…',
  rate_limited: 'Too many attempts from this address. Trying again…',
};

// ---- the viewer token (hub mode) ----

export const TOKEN_KEY = 'p2pcast.token';
let memoryToken = null; // where sessionStorage is unavailable (storage disabled)

/**
 * Moves a token given in the URL fragment (#token=…) into sessionStorage, removes it from the
 * address bar (history.replaceState, so it is not in the history either), and returns the token
 * to use, or null. A fragment never reaches a server, so the token is never in a log.
 */
export function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has('token')) {
    const token = hash.get('token').trim();
    hash.delete('token');
    const rest = hash.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    if (token) storeToken(token);
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
  } catch {
    return memoryToken;
  }
}

/** Keeps the token for this tab (sessionStorage: it ends with the tab, other tabs do not see it). */
export function storeToken(token) {
  memoryToken = token;
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* memory only */ }
}

/** Forgets the token (the hub refused it). */
export function forgetToken() {
  memoryToken = null;
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
}

const STYLE = `
  :host { display: block; position: relative; overflow: hidden; background: #000; }
  video { display: block; width: 100%; height: 100%; object-fit: contain; background: #000; }
  .hud { position: absolute; top: 8px; right: 8px; max-width: calc(100% - 16px);
         display: flex; flex-direction: column; align-items: flex-end; gap: 4px;
         pointer-events: none; }
  .panel, .toast { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
                   color: #eee; background: rgba(0, 0, 0, .6); padding: 6px 9px;
                   border-radius: 4px; white-space: pre; overflow: hidden; }
  [hidden] { display: none !important; }
  .state { font-weight: bold; }
  .state::before { content: "\\25CF"; margin-right: .5em; color: var(--dot, #999); }
  .state[data-state=connected] { --dot: #4caf50; }
  .state[data-state=connecting] { --dot: #fdd835; }
  .state[data-state=reconnecting] { --dot: #ff9800; }
  .state[data-state=failed] { --dot: #f44336; }
  .body { margin: 0; font: inherit; }
  .toast { color: #ffab91; white-space: pre-wrap; max-width: 40em; }
  .notice { position: absolute; left: 50%; top: 50%; transform: translate(-50%, -50%);
            box-sizing: border-box; max-width: min(34em, calc(100% - 32px));
            font: 15px/1.5 system-ui, sans-serif; color: #eee; background: rgba(0, 0, 0, .75);
            border: 1px solid #555; border-radius: 6px; padding: 14px 18px; text-align: center; }
  .notice a { color: #8ab4f8; }
  .controls { position: absolute; left: 8px; bottom: 8px; display: flex; align-items: center;
              gap: 8px; padding: 6px; border-radius: 6px; background: rgba(0, 0, 0, .6);
              font: 13px/1.2 system-ui, sans-serif; color: #eee; }
  .controls button { display: inline-flex; align-items: center; gap: 6px; min-height: 36px;
                     padding: 4px 10px; border: 1px solid #777; border-radius: 4px;
                     background: #222; color: inherit; font: inherit; cursor: pointer;
                     touch-action: none; user-select: none; -webkit-user-select: none; }
  .controls button:hover { background: #333; }
  .controls button:focus-visible { outline: 2px solid #8ab4f8; outline-offset: 1px; }
  .controls svg { width: 20px; height: 20px; fill: currentColor; flex: none; }
  .mute[data-muted=false] .off, .mute[data-muted=true] .on { display: none; }
  .talk[aria-pressed=true] { background: #b71c1c; border-color: #f44336; }
  .meter { width: 64px; height: 8px; border-radius: 4px; background: #444; overflow: hidden; }
  .meter .fill { width: 100%; height: 100%; background: #4caf50; transform-origin: left;
                 transform: scaleX(0); }
  .sources { position: absolute; left: 8px; top: 8px; padding: 4px 8px; border-radius: 6px;
             background: rgba(0, 0, 0, .6); font: 13px/1.2 system-ui, sans-serif; color: #eee; }
  .sources select { margin-left: 4px; font: inherit; background: #222; color: inherit;
                    border: 1px solid #777; border-radius: 4px; }
`;

class P2PCastPlayer extends HTMLElement {
  #cfg = null;
  #video; #panel; #stateEl; #body; #toastEl; #toastTimer = 0; #noticeEl;
  #root;
  #desktop = null; // DesktopControl, made with the first session of a desktop device
  #files = null; // RecordingsPanel (files.js), made with the first session of a recording device

  #running = false;
  #state = 'connecting';
  #everConnected = false;
  #sessions = 0;
  #iceRestarts = 0; // ICE restarts asked for, over the page's life
  #lastIceRestartMs = null; // how long the last successful one took to reconnect
  #firstFrameMs = null;

  #ws = null;
  #hello = null; // the device's hello on the current socket; null until it arrives
  #hubSession = null; // the hub's id of our session, to resume it from a new socket
  #sources = []; // the device's sources from its hello ({ id, description, default, stream })
  #sourcesEl; #sourceSelect;
  #signal = 'idle'; // signaling state, in words, for the overlay

  // The current session: one RTCPeerConnection and its negotiation; see #newSession.
  #s = null;

  #retries = 0; #retryTimer = 0; #retryAt = 0; #reason = '';
  #watchdog = 0;

  #statsTimer = 0; #ticking = false; #prev = null; #view = null;

  // Audio from the device and talk-back to it (see "audio and talk-back" below).
  #controls; #muteBtn; #muteLabel; #meterEl; #meterFill; #talkBtn;
  #actx = null; // the AudioContext of the level meter, made with the first audio track
  #meterSrc = null; #meterNode = null; #meterBuf = null; #meterTrack = null; #meterTimer = 0;
  #meterDb = null; #meterPeakDb = null; #meterShown = -1;
  #mic = null; #micPending = null; // the microphone track: asked for once, kept for every press
  #talkWanted = false; // talk is pressed (pointer, Space or the hook)
  #talkChain = Promise.resolve(); // replaceTrack calls, one after another
  #talkError = null; // the last reason talking failed, for the hook

  // Diagnostics hooks (read by diag.js): performance.now() when this page first sent a signaling
  // request (WebSocket watch/offer or WHEP POST), and when it last did.
  firstRequestedAt = null;
  requestedAt = null;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    this.#root = root;
    // A constructed stylesheet, not a <style> element: the pages' CSP (style-src 'self') forbids
    // inline style elements, and this keeps the element self-contained all the same.
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    root.adoptedStyleSheets = [sheet];
    root.innerHTML = `
      <video muted autoplay playsinline disablepictureinpicture></video>
      <div class="hud"><div class="panel"><div class="state"></div><pre class="body"></pre></div>
      <div class="toast" hidden></div></div><div class="notice" role="status" hidden></div>
      <label class="sources" hidden>Source <select aria-label="source"></select></label>
      <div class="controls" hidden>
        <button type="button" class="mute" data-muted="true" title="Unmute (the stream plays muted until you click)">
          <svg class="off" viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9v6h4l5 5V4L7 9H3zm13.6 3 2.7-2.7-1.4-1.4-2.7 2.7-2.7-2.7-1.4 1.4 2.7 2.7-2.7 2.7 1.4 1.4 2.7-2.7 2.7 2.7 1.4-1.4-2.7-2.7z"/></svg>
          <svg class="on" viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4zM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z"/></svg>
          <span class="label">Unmute</span>
        </button>
        <div class="meter" role="meter" aria-label="sound level" aria-valuemin="-60" aria-valuemax="0" aria-valuenow="-60"><div class="fill"></div></div>
        <button type="button" class="talk" aria-pressed="false" hidden title="Hold to talk (mouse, touch, or Space while focused)">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 6-6.9h-2z"/></svg>
          <span>Hold to talk</span>
        </button>
      </div>`;
    this.#video = root.querySelector('video');
    this.#video.muted = true; // autoplay without a user gesture needs it as a property too
    this.#panel = root.querySelector('.panel');
    this.#stateEl = root.querySelector('.state');
    this.#body = root.querySelector('.body');
    this.#toastEl = root.querySelector('.toast');
    this.#noticeEl = root.querySelector('.notice');
    this.#controls = root.querySelector('.controls');
    this.#muteBtn = root.querySelector('.mute');
    this.#muteLabel = root.querySelector('.mute .label');
    this.#meterEl = root.querySelector('.meter');
    this.#meterFill = root.querySelector('.meter .fill');
    this.#talkBtn = root.querySelector('.talk');
    this.#sourcesEl = root.querySelector('.sources');
    this.#sourceSelect = root.querySelector('.sources select');
    this.#sourceSelect.addEventListener('change', () => this.selectSource(this.#sourceSelect.value));
    // The chooser is not the video: a click on it must not toggle the overlay.
    this.#sourcesEl.addEventListener('click', (e) => e.stopPropagation());
    this.#wireControls();
    this.#watchFirstFrame();
  }

  /** The source watched: its id, or null for the device's default. */
  get source() { return this.#cfg?.source ?? null; }

  /** The device's sources from its hello (empty for a device with one). */
  get sources() { return this.#sources.map((s) => ({ ...s })); }

  /**
   * Watches another of the device's sources (null: the default): a new session, on the same
   * socket for WebSocket signaling; the address bar's ?source= follows.
   */
  selectSource(id) {
    const next = id || null;
    if (next != null && !SOURCE_ID.test(next)) throw new Error(`bad source id ${id}`);
    if (!this.#cfg || next === this.#cfg.source) return;
    this.#cfg.source = next;
    this.#cfg.whepUrl = whepUrlFor(this.#cfg.base, next);
    if (!this.hasAttribute('source')) {
      const url = new URL(location.href);
      if (next == null) url.searchParams.delete('source');
      else url.searchParams.set('source', next);
      history.replaceState(history.state, '', url.href);
    } else {
      this.setAttribute('source', next ?? '');
    }
    const chosen = this.#sources.find((x) => x.id === next) ?? this.#sources.find((x) => x.default);
    if (this.#hello && chosen) this.#hello.stream = chosen.stream ?? null;
    this.#renderSources();
    this.#retries = 0;
    this.#retryLater(`source ${next ?? 'default'} chosen`, { keepSocket: this.#cfg.signal === 'ws' });
  }

  /** 'connecting' | 'connected' | 'reconnecting' | 'failed' */
  get state() { return this.#state; }

  /** The <video> element (for diagnostics). */
  get video() { return this.#video; }

  /** The desktop's control (desktop.js) once a desktop device's session opened it, else null. */
  get desktop() { return this.#desktop; }

  /** The recordings panel (files.js) once a recording device's session opened its channel, else null. */
  get recordings() { return this.#files; }

  /** performance.now() when the page's first frame was presented, or null. */
  get firstFrameAt() { return this.#firstFrameMs; }

  /** Shows or hides the statistics overlay (also bound to the `i` key and to clicks). */
  toggleOverlay(show = this.#panel.hidden) {
    this.#panel.hidden = !show;
    this.#render();
  }

  /** Whether this session lets the viewer talk (the device takes its audio). */
  get talkAllowed() { return this.#s?.audio?.send === true; }

  /** Whether the microphone is on the wire right now. */
  get talking() {
    const sender = this.#s?.audio?.send ? this.#s.audio.tx.sender : null;
    return this.#mic != null && sender?.track === this.#mic;
  }

  /** The received audio track of the current session, or null (for diagnostics and tests). */
  get audioTrack() { return this.#s?.audio?.recv ? this.#s.audio.tx.receiver.track : null; }

  /** The microphone track once talk-back has asked for it, or null. */
  get micTrack() { return this.#mic; }

  /** Mutes or unmutes the sound (the page starts muted: browsers play sound only after a gesture). */
  setMuted(muted) {
    this.#video.muted = Boolean(muted);
    if (!muted) {
      void this.#actx?.resume().catch(() => {});
      this.#video.play().catch(() => {});
    }
    this.#renderAudio();
  }

  /**
   * Presses (true) or releases (false) push-to-talk. Resolves once the microphone is on the wire
   * (or off it), with { talking, error }: error says why talking is not possible.
   */
  async talk(on) {
    if (!on) {
      this.#talkWanted = false;
      this.#renderAudio();
      await this.#applyTalk();
      return this.#talkState();
    }
    const why = this.#talkBlocked();
    if (why) {
      this.#talkFailed(why);
      return this.#talkState();
    }
    this.#talkWanted = true;
    this.#talkError = null;
    this.#renderAudio();
    if (!this.#mic) {
      try {
        await this.#getMic();
      } catch (err) {
        this.#talkWanted = false;
        this.#talkFailed(micError(err));
        this.#renderAudio();
        return this.#talkState();
      }
    }
    await this.#applyTalk();
    return this.#talkState();
  }

  /** A fresh reading of the audio receiver's (and talk-back sender's) statistics: window.p2pcast.audio(). */
  async audio() {
    const s = this.#s;
    const out = {
      ...EMPTY_AUDIO, muted: this.#video.muted, talkAllowed: this.talkAllowed, talking: this.talking,
      meterDb: this.#meterDb, meterPeakDb: this.#meterPeakDb, talkError: this.#talkError,
    };
    if (!s?.audio) return out;
    out.present = s.audio.recv;
    out.direction = s.audio.direction;
    let snap;
    try { snap = await readStats(s.pc); } catch { return out; }
    if (snap.audioIn) Object.assign(out, snap.audioIn);
    if (snap.audioOut) out.packetsSent = snap.audioOut.packetsSent;
    return out;
  }

  /** A fresh reading of the video receiver's statistics, in the shape window.p2pcast.stats gives. */
  async stats() {
    const out = {
      ...EMPTY_STATS, sessions: this.#sessions, iceRestarts: this.#iceRestarts,
      lastIceRestartMs: this.#lastIceRestartMs, firstFrameMs: this.#firstFrameMs,
    };
    const s = this.#s;
    if (!s) return out;
    let snap;
    try { snap = await readStats(s.pc); } catch { return out; }
    for (const k of Object.keys(out)) if (k in snap) out[k] = snap[k];
    out.framesPerSecond = snap.framesPerSecond ?? this.#view?.fps ?? 0;
    return out;
  }

  /**
   * Every video inbound-rtp report of the current session as the browser gives it (copies; [] with
   * no session): window.p2pcast.inboundVideo(). The network tests read what stats() leaves out
   * (nackCount, fecPacketsReceived, jitterBufferDelay, …), and every report, not just the busiest,
   * in case a session receives on more than one SSRC.
   */
  async inboundVideo() {
    const s = this.#s;
    if (!s) return [];
    let report;
    try { report = await s.pc.getStats(); } catch { return []; }
    return [...report.values()]
      .filter((r) => r.type === 'inbound-rtp' && (r.kind ?? r.mediaType) === 'video')
      .map((r) => ({ ...r }));
  }

  connectedCallback() {
    if (this.#running) return;
    this.#running = true;
    window.addEventListener('keydown', this.#onKey);
    window.addEventListener('pagehide', this.#onPageHide);
    window.addEventListener('pageshow', this.#onPageShow);
    window.addEventListener('hashchange', this.#onHashChange);
    document.addEventListener('visibilitychange', this.#onVisibility);
    this.addEventListener('click', this.#onClick);
    this.addEventListener('pointerdown', this.#onGesture);
    try {
      this.#cfg = readConfig(this);
    } catch (err) {
      return this.#fail(`bad configuration: ${err.message}`);
    }
    this.#panel.hidden = !this.#cfg.overlay;
    if (!('RTCPeerConnection' in window)) return this.#fail('this browser has no WebRTC');
    this.#statsTimer = setInterval(() => this.#tick(), STATS_INTERVAL_MS);
    this.#connect();
  }

  disconnectedCallback() {
    this.#running = false;
    window.removeEventListener('keydown', this.#onKey);
    window.removeEventListener('pagehide', this.#onPageHide);
    window.removeEventListener('pageshow', this.#onPageShow);
    window.removeEventListener('hashchange', this.#onHashChange);
    document.removeEventListener('visibilitychange', this.#onVisibility);
    this.removeEventListener('click', this.#onClick);
    this.removeEventListener('pointerdown', this.#onGesture);
    clearInterval(this.#statsTimer);
    this.#stop();
    this.#video.srcObject = null;
    // Nothing of ours keeps running or holds the microphone once the element is gone.
    this.#talkWanted = false;
    this.#stopMeter();
    this.#mic?.stop();
    this.#mic = null;
    void this.#actx?.close().catch(() => {});
    this.#actx = this.#meterNode = this.#meterBuf = null;
  }

  // While this viewer drives a desktop, clicks and keys are the desktop's.
  #onClick = () => { if (!this.#desktop?.controlling) this.toggleOverlay(); };

  #onKey = (e) => {
    if (e.key?.toLowerCase() !== 'i' || e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (this.#desktop?.controlling) return;
    const t = e.target;
    if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    this.toggleOverlay();
  };

  // Leaving the page: tell the device now rather than let it time the session out.
  #onPageHide = () => this.#stop();

  // Back from the back/forward cache: the old session is gone, start a new one.
  #onPageShow = (e) => {
    if (!e.persisted || !this.#running || this.#state === 'failed') return;
    this.#retries = 0;
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    this.#connect();
  };

  // A new #token=… on the same page (only the fragment changed, so no page load): take it, and
  // start again if the old token had been refused.
  #onHashChange = () => {
    if (this.#cfg?.device == null || !new URLSearchParams(location.hash.slice(1)).has('token')) return;
    takeToken();
    if (!this.#running || this.#state !== 'failed') return;
    this.#notice(null);
    this.#retries = 0;
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    this.#connect();
  };

  // ---- attempts, teardown and backoff ----

  #connect() {
    if (!this.#running) return;
    if (!this.#keepsPlaying(this.#s)) this.#armWatchdog();
    if (this.#cfg.signal === 'whep') void this.#startWhep();
    else this.#openSocket();
  }

  #armWatchdog() {
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => {
      this.#watchdog = 0;
      this.#retryLater(`not connected after ${WATCHDOG_MS / 1000} s`);
    }, WATCHDOG_MS);
  }

  // Tears the session down (and the socket unless keepSocket) and schedules the next attempt.
  // keepSocket restarts over the live socket with a new watch/offer, which the device takes as
  // replacing the session.
  // keepSession (hub mode) keeps a playing session whose signaling socket went away and only
  // reconnects the socket: see #keepsPlaying.
  #retryLater(reason, { keepSocket = false, keepSession = false } = {}) {
    if (!this.#running) return;
    clearTimeout(this.#watchdog);
    this.#watchdog = 0;
    if (!keepSession) this.#closeSession();
    // A kept session must not be ended by the bye a closing socket says.
    if (!keepSocket) this.#closeSocket({ bye: !keepSession });
    this.#reason = reason;
    // A pending retry reopens the socket itself if it has gone meanwhile.
    if (this.#retryTimer) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(this.#retries, 10));
    this.#retries++;
    // Jitter (down to 75 %) so that the viewers of a restarted device do not all come back at once.
    const delay = Math.round(ceiling * (0.75 + 0.25 * Math.random()));
    this.#retryAt = performance.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      this.#resume();
    }, delay);
    console.info(`p2pcast: ${reason}; retrying in ${delay} ms`);
    if (!keepSession) this.#setState('reconnecting');
  }

  #resume() {
    if (!this.#running) return;
    if (this.#ws?.readyState === WebSocket.OPEN && this.#hello) {
      this.#startWsSession();
    } else {
      this.#closeSocket();
      this.#connect();
    }
  }

  #stop() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
    clearTimeout(this.#watchdog);
    this.#watchdog = 0;
    this.#closeSession();
    this.#closeSocket();
  }

  // Gives up: nothing will work until the page or its token changes. notice is shown mid-screen.
  #fail(reason, notice = reason) {
    this.#stop();
    this.#signal = reason;
    console.info(`p2pcast: ${reason}`);
    this.#notice(notice, this.#cfg?.device != null);
    this.#setState('failed');
  }

  // ---- sessions ----

  #newSession(iceServers, kind) {
    this.#closeSession();
    // A new session is the retry: one still pending would only replace it.
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
    this.#armWatchdog();
    let pc;
    try {
      pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    } catch (err) {
      this.#toast(`unusable iceServers from the device (${err.message}); using none`);
      pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    }
    const s = {
      id: ++this.#sessions, pc, kind, // kind: 'watch' (the device offers) or 'offer' (we do)
      offerTaken: false, answerTaken: false,
      remoteSet: false, remoteQueue: [], // remote candidates wait for the remote description
      localSent: false, localQueue: [], endSent: false, // ours wait until our SDP is out
      peer: 'new', disconnectTimer: 0, signalTimer: 0, dtls: null,
      whep: null,
      connected: false, // has been connected at least once
      restart: null, // an ICE restart under way: { at, applied, timer, poll }
      rx: null, // { bytes, at }: bytes received on the selected pair, and since when
      held: [], holdUntil: 0, holdTimer: 0, // our relay candidates, held back (RELAY_HOLD_MS)
      audio: null, // once negotiated: { tx, direction, recv, send } (see #audioNegotiated)
      stream: null, // the MediaStream the <video> plays for this session
      audioTracks: [], // the audio tracks ontrack gave
      network: null, // the device's last report of our path (a 'network' message)
      deviceNotice: null, // what the device cannot send us (a 'notice' message's text)
      decisions: [], // the adaptation decisions it reported, oldest first (MAX_DECISIONS)
    };
    this.#s = s;
    this.#prev = null;
    pc.ontrack = (e) => { if (this.#s === s) this.#onTrack(s, e); };
    // The device's reports of our path: on its channel when it offers, on ours when we do.
    pc.ondatachannel = (e) => { if (e.channel.label === EVENTS_CHANNEL) this.#listenEvents(s, e.channel); };
    if (kind !== 'watch') this.#listenEvents(s, pc.createDataChannel(EVENTS_CHANNEL));
    // A desktop device: we open its control channel in either direction of offer (on the
    // device-offers path the device's offer carries the data section it opens `events` in).
    if ((this.#hello?.stream?.channels ?? []).includes(CONTROL_CHANNEL)) {
      this.#desktop ??= new DesktopControl(this, this.#root, this.#video);
      this.#desktop.attach(pc.createDataChannel(CONTROL_CHANNEL));
    }
    // A recording device (--record-dir): its recordings, on the same connection.
    if ((this.#hello?.stream?.channels ?? []).includes(FILES_CHANNEL)) {
      this.#files ??= new RecordingsPanel(this.#root);
      this.#files.attach(pc.createDataChannel(FILES_CHANNEL));
    }
    if ((this.#hello?.stream?.channels ?? []).includes(RECORD_CHANNEL)) {
      this.#files ??= new RecordingsPanel(this.#root);
      this.#files.attachRecord(pc.createDataChannel(RECORD_CHANNEL));
    }
    pc.onicecandidate = (e) => { if (this.#s === s) this.#onLocalCandidate(s, e.candidate); };
    pc.onconnectionstatechange = pc.oniceconnectionstatechange = () => {
      if (this.#s === s) this.#onPeerState(s);
    };
    console.info(`p2pcast: session ${s.id} (${this.#cfg.signal}, ${kind === 'watch' ? 'device offers' : 'viewer offers'})`);
    // 'connecting' is the first attempt only; after a failure we stay 'reconnecting' until connected.
    if (this.#state !== 'reconnecting') this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    return s;
  }

  #closeSession() {
    const s = this.#s;
    if (!s) return;
    this.#s = null;
    this.#view = null;
    clearTimeout(s.disconnectTimer);
    clearTimeout(s.signalTimer);
    clearTimeout(s.restart?.timer);
    clearInterval(s.restart?.poll);
    clearTimeout(s.holdTimer);
    s.pc.ontrack = s.pc.onicecandidate = s.pc.ondatachannel = null;
    s.pc.onconnectionstatechange = s.pc.oniceconnectionstatechange = null;
    if (s.dtls) s.dtls.onstatechange = null;
    this.#desktop?.detach();
    this.#files?.detach();
    s.pc.close();
    this.#stopMeter();
    this.#renderAudio();
    if (s.whep) {
      s.whep.abort.abort();
      if (s.whep.location) deleteResource(s.whep.location);
    }
  }

  async #makeOffer(s) {
    const t = s.pc.addTransceiver('video', { direction: 'recvonly' });
    tuneReceiver(t.receiver);
    // Audio both ways, with nothing to send yet: the device's answer says what it allows (sendonly
    // unless this viewer may talk and the device has a speaker), and talk-back then needs no
    // renegotiation. A device without audio rejects the section.
    s.pc.addTransceiver('audio', { direction: 'sendrecv' });
    await s.pc.setLocalDescription(await s.pc.createOffer());
    return s.pc.localDescription.sdp;
  }

  #remoteSet(s) {
    s.remoteSet = true;
    clearTimeout(s.signalTimer);
    for (const r of s.pc.getReceivers()) tuneReceiver(r);
    for (const c of s.remoteQueue.splice(0)) addRemoteCandidate(s.pc, c);
  }

  #localSent(s) {
    s.localSent = true;
    if (s.kind === 'watch' && !s.whep) s.holdUntil = performance.now() + RELAY_HOLD_MS;
    for (const c of s.localQueue.splice(0)) this.#sendCandidate(s, c);
  }

  #onLocalCandidate(s, c) {
    // Some browsers end with an empty candidate as well as null: both mean end of candidates.
    const json = c?.candidate ? c.toJSON() : null;
    if (!json) {
      if (s.endSent) return;
      s.endSent = true;
    }
    if (s.localSent) this.#sendCandidate(s, json);
    else s.localQueue.push(json);
  }

  #sendCandidate(s, json) {
    if (s.whep) {
      this.#whepTrickle(s, json);
      return;
    }
    // Relay candidates wait (RELAY_HOLD_MS), and the end of candidates waits behind them.
    const hold = performance.now() < s.holdUntil && (json ? / typ relay /.test(json.candidate) : s.held.length > 0);
    if (!hold) {
      this.#send({ type: 'candidate', candidate: json });
      return;
    }
    s.held.push(json);
    s.holdTimer ||= setTimeout(() => {
      s.holdTimer = 0;
      if (this.#s === s) for (const c of s.held.splice(0)) this.#send({ type: 'candidate', candidate: c });
    }, s.holdUntil - performance.now());
  }

  #onTrack(s, e) {
    if (e.track.kind === 'audio') {
      // The device puts its audio in the video's stream (one stream id: lip sync), so the <video>
      // plays it; audio that comes on its own joins the stream the <video> plays.
      s.audioTracks.push(e.track);
      if (s.stream && !s.stream.getTracks().includes(e.track)) s.stream.addTrack(e.track);
      return;
    }
    if (e.track.kind !== 'video') return;
    tuneReceiver(e.receiver);
    const stream = e.streams[0] ?? new MediaStream([e.track]);
    s.stream = stream;
    for (const t of s.audioTracks) if (!stream.getTracks().includes(t)) stream.addTrack(t);
    // The old picture stays up until the new stream replaces it, so a reconnect does not flash black.
    if (this.#video.srcObject !== stream) this.#video.srcObject = stream;
    // Muted autoplay is always allowed; a rejection only means a newer stream superseded this one.
    this.#video.play().catch(() => {});
  }

  #onPeerState(s) {
    const st = peerState(s.pc);
    this.#render();
    if (st === s.peer) return;
    s.peer = st;
    clearTimeout(s.disconnectTimer);
    s.disconnectTimer = 0;
    if (st === 'connected') {
      this.#watchDtls(s);
      clearTimeout(this.#watchdog);
      this.#watchdog = 0;
      this.#retries = 0;
      this.#reason = '';
      this.#everConnected = true;
      s.connected = true;
      if (s.restart?.applied) this.#restartDone(s);
      this.#notice(s.deviceNotice ?? null);
      this.#setState('connected');
    } else if ((st === 'disconnected' || st === 'failed') && s.needsRestart) {
      // A new socket is on its way to resume this session, and restarts ICE there (a restart
      // brings a failed connection back too). Ending the session now would make the page start a
      // new one instead (seen: Chromium failed the old path ~7 s after an address change, while
      // the resume was 200 ms away).
      this.#setState('reconnecting');
    } else if (st === 'disconnected') {
      this.#setState('reconnecting');
      if (s.restart) return; // its own deadline decides
      const restart = this.#canRestart(s);
      const grace = restart ? ICE_RESTART_GRACE_MS : DISCONNECTED_GRACE_MS;
      s.disconnectTimer = setTimeout(() => {
        if (this.#s !== s) return;
        const why = `peer disconnected for ${grace / 1000} s`;
        if (this.#canRestart(s)) this.#restartIce(s, why);
        else this.#retryLater(why, { keepSocket: true });
      }, grace);
    } else if (st === 'failed') {
      this.#setState('reconnecting');
      if (s.restart?.applied) {
        // The restart's own checks failed: no path left on this session.
        this.#retryLater('peer connection failed after an ICE restart', { keepSocket: true });
      } else if (!s.restart) { // (with a restart asked for, the device's new offer is on its way)
        if (this.#canRestart(s)) this.#restartIce(s, 'peer connection failed');
        else this.#retryLater('peer connection failed', { keepSocket: true });
      }
    }
  }

  // ---- ICE restart ----

  // An ICE restart keeps the session: it needs the socket (the device's new offer comes over it)
  // and a session the device offered that was up once. When the page offered, a new `offer` would
  // make a new session on the device anyway, so that path simply starts a new session.
  #canRestart(s) {
    return this.#cfg.signal === 'ws' && s.kind === 'watch' && !s.orphan && s.connected && s.remoteSet
      && s.localSent && !s.restart && this.#ws?.readyState === WebSocket.OPEN && this.#hello != null;
  }

  #restartIce(s, why) {
    this.#iceRestarts++;
    console.info(`p2pcast: ${why}; ICE restart ${this.#iceRestarts} on session ${s.id}`);
    s.restart = {
      at: performance.now(), applied: false,
      timer: setTimeout(() => {
        if (this.#s === s && s.restart) this.#retryLater(`ICE restart did not reconnect in ${ICE_RESTART_TIMEOUT_MS / 1000} s`, { keepSocket: true });
      }, ICE_RESTART_TIMEOUT_MS),
      poll: setInterval(() => {
        readStats(s.pc).then((snap) => {
          if (this.#s === s && s.restart) this.#checkStall(s, snap.pairId, snap.pairBytesReceived);
        }, () => {});
      }, RESTART_POLL_MS),
    };
    // The device's new candidates may overtake its offer: they wait for it, like at the start.
    s.remoteSet = false;
    // The device answers at once; silence means the socket is dead although the browser thinks
    // it is open (a changed network does not close TCP for minutes): then a new socket.
    clearTimeout(s.signalTimer);
    s.signalTimer = setTimeout(() => {
      if (this.#s !== s) return;
      const why = `no reply to the ICE restart in ${SIGNAL_TIMEOUT_MS / 1000} s`;
      if (this.#cfg.device != null && this.#hubSession) {
        // Through a hub: a new socket resumes this session, and the restart is asked again there.
        clearTimeout(s.restart.timer);
        clearInterval(s.restart.poll);
        s.restart = null;
        s.needsRestart = true;
        s.orphan = true;
        this.#retryLater(`${why}; resuming the session on a new socket`, { keepSession: true });
        return;
      }
      this.#retryLater(why);
    }, SIGNAL_TIMEOUT_MS);
    this.#send({ type: 'restart' });
    this.#render();
  }

  // Called once a second (every RESTART_POLL_MS during a restart) with the selected pair and the
  // bytes received on it: a stall starts an ICE restart, and bytes flowing again end one.
  #checkStall(s, pairId, bytes) {
    const now = performance.now();
    const same = s.rx != null && pairId != null && s.rx.pair === pairId;
    // Bytes on a pair seen before, or on a newly selected one.
    const grew = bytes > 0 && (same ? bytes > s.rx.bytes : s.rx != null);
    if (!same || grew) s.rx = { pair: pairId, bytes, at: now };
    if (s.restart) {
      // Chromium may never have left 'connected' (a stall): packets on a pair say it is over.
      if (s.restart.applied && grew && peerState(s.pc) === 'connected') this.#restartDone(s);
      return;
    }
    if (!same || grew || bytes == null || !s.connected || s.peer !== 'connected' || now - s.rx.at < STALL_MS) return;
    const why = `no packets for ${STALL_MS / 1000} s`;
    this.#setState('reconnecting');
    if (this.#canRestart(s)) this.#restartIce(s, why);
    else this.#retryLater(why, { keepSocket: true });
  }

  #restartDone(s) {
    const ms = performance.now() - s.restart.at;
    clearTimeout(s.restart.timer);
    clearInterval(s.restart.poll);
    s.restart = null;
    this.#lastIceRestartMs = ms;
    console.info(`p2pcast: ICE restart reconnected session ${s.id} in ${Math.round(ms)} ms`);
    if (peerState(s.pc) !== 'connected') return;
    this.#retries = 0;
    this.#reason = '';
    this.#notice(s.deviceNotice ?? null);
    this.#setState('connected');
  }

  // A device that ends the session (WHEP DELETE elsewhere, shutdown, replacing it) closes DTLS
  // with close_notify; ICE would take seconds more to notice the silence.
  #watchDtls(s) {
    const dtls = s.pc.getReceivers().find((r) => r.track?.kind === 'video')?.transport;
    if (!dtls || s.dtls === dtls) return;
    s.dtls = dtls;
    dtls.onstatechange = () => {
      if (this.#s === s && (dtls.state === 'closed' || dtls.state === 'failed')) {
        this.#retryLater(`DTLS ${dtls.state} by the device`, { keepSocket: true });
      }
    };
  }

  // ---- WebSocket signaling ----

  #openSocket() {
    let ws;
    try {
      ws = new WebSocket(this.#cfg.wsUrl);
    } catch (err) {
      return this.#fail(`cannot open ${this.#cfg.wsUrl}: ${err.message}`);
    }
    this.#ws = ws;
    this.#hello = null;
    this.#setSignal('ws connecting');
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      if (this.#cfg.device == null) {
        // A device with LAN auth wants a token first (from its pairing link); one without
        // ignores this and has sent hello already.
        const token = takeToken();
        this.#send(token ? { type: 'auth', token } : { type: 'auth' });
        this.#setSignal('ws open, waiting for hello');
        return;
      }
      // The hub wants the token first. It is read now, so a reconnect uses the current one.
      const token = takeToken();
      if (!token) {
        this.#fail('no token', 'No viewer token in this tab.');
        return;
      }
      // A session still alive from an earlier socket (our network changed) is resumed: the
      // hub carries it over to this socket, and an ICE restart then moves its media.
      const resume = this.#s && peerState(this.#s.pc) !== 'closed' && this.#hubSession ? this.#hubSession : undefined;
      if (this.#s) console.info(`p2pcast: new socket; ${resume ? `resuming hub session ${resume}` : `not resuming (peer ${peerState(this.#s.pc)}, hub session ${this.#hubSession})`}`);
      this.#send({ type: 'auth', token, device: this.#cfg.device, resume });
      this.#setSignal(`ws open, authenticating for ${this.#cfg.device}`);
    };
    ws.onmessage = (e) => { if (this.#ws === ws) this.#onMessage(e.data); };
    ws.onclose = (e) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#hello = null;
      const why = `socket closed (${e.code}${e.reason ? ` ${e.reason}` : ''})`;
      if (this.#keepsPlaying(this.#s)) {
        this.#s.orphan = true;
        this.#setSignal(`ws closed (${e.code}); the session plays on`);
        this.#retryLater(`${why}; the session plays on`, { keepSession: true });
        return;
      }
      this.#setSignal(`ws closed (${e.code})`);
      this.#retryLater(why);
    };
  }

  #closeSocket({ bye = true } = {}) {
    const ws = this.#ws;
    if (!ws) return;
    this.#ws = null;
    this.#hello = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    // bye frees the device's session at once instead of at its ping timeout.
    if (bye && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'bye' }));
    ws.close(1000);
  }

  #send(msg) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }

  #onMessage(data) {
    let msg = null;
    try { msg = JSON.parse(data); } catch { /* reported below */ }
    if (typeof msg?.type !== 'string') {
      this.#toast('unreadable message from the device');
      return;
    }
    switch (msg.type) {
      case 'hello': this.#onHello(msg); break;
      case 'offer': void this.#onRemoteOffer(msg.sdp); break;
      case 'answer': void this.#onRemoteAnswer(msg.sdp); break;
      case 'candidate': this.#onRemoteCandidate(msg.candidate); break;
      case 'error':
        // Before hello (hub or a device with LAN auth), or a token that ran out: about access.
        if ((this.#cfg.device != null && !this.#hello) || HUB_FATAL.has(msg.code)) this.#onHubError(msg);
        else this.#onDeviceError(msg);
        break;
      case 'bye': this.#retryLater(`device said bye${msg.reason ? `: ${msg.reason}` : ''}`); break;
      default: break; // a newer device may say more; nothing we need
    }
  }

  #onHello(msg) {
    this.#sources = Array.isArray(msg.sources) ? msg.sources.filter((x) => SOURCE_ID.test(x?.id ?? '')) : [];
    // The stream that matters (its channels: control, files) is the chosen source's.
    const chosen = this.#sources.find((x) => x.id === this.#cfg.source);
    this.#hello = {
      iceServers: Array.isArray(msg.iceServers) ? msg.iceServers : [],
      stream: (chosen ? chosen.stream : msg.stream) ?? null,
    };
    this.#renderSources();
    if (this.#cfg.source != null && this.#sources.length > 0 && !chosen) {
      this.#fail(`no source ${this.#cfg.source}`, `This device has no source "${this.#cfg.source}" (it has ${this.#sources.map((x) => x.id).join(', ')}).`);
      return;
    }
    const s = this.#s;
    if (s && this.#cfg.device != null) console.info(`p2pcast: hello: hub session ${msg.session}, resumed ${msg.resumed === true}, peer ${peerState(s.pc)}`);
    if (msg.resumed === true && s && peerState(s.pc) !== 'closed') {
      // The hub carried our session over to this socket. If its media stalled meanwhile (the
      // network changed under it), restart ICE on it now; else it simply plays on.
      s.orphan = false;
      this.#retries = 0;
      this.#setSignal('ws open; session resumed');
      if (s.needsRestart || peerState(s.pc) !== 'connected') {
        s.needsRestart = false;
        this.#restartIce(s, 'resumed on a new socket');
      }
      return;
    }
    this.#hubSession = typeof msg.session === 'string' ? msg.session : null;
    if (this.#s?.orphan && this.#keepsPlaying(this.#s)) {
      // Back at the hub with a session still playing: it stays until it fails, and then a new
      // one starts on this socket.
      this.#retries = 0;
      this.#setSignal('ws open; the session from before plays on');
      return;
    }
    this.#setSignal('ws open');
    this.#startWsSession();
  }

  // Through a hub, a closed socket usually means the hub went away (a restart), not the device:
  // the device keeps its sessions when its own link drops, and media flows peer to peer. So a
  // session that is playing stays while the socket reconnects (re-authenticating, so a token that
  // expired meanwhile still ends it). If the device did end it, DTLS close tells us at once. On
  // a device's own socket the session ends with the socket, and so it does here.
  #keepsPlaying(s) {
    return this.#cfg.device != null && s != null && s.connected && !s.restart && !s.whep
      && peerState(s.pc) === 'connected';
  }

  #startWsSession() {
    const viewerOffers = this.#cfg.offer === 'viewer';
    const s = this.#newSession(this.#hello.iceServers, viewerOffers ? 'offer' : 'watch');
    s.signalTimer = setTimeout(() => {
      if (this.#s === s) this.#retryLater(`no reply from the device in ${SIGNAL_TIMEOUT_MS / 1000} s`);
    }, SIGNAL_TIMEOUT_MS);
    if (viewerOffers) {
      void this.#offerOverSocket(s);
    } else {
      this.#markRequest();
      this.#send(this.#withSource({ type: 'watch' }));
    }
  }

  // A watch or offer names the chosen source; none is the device's default.
  #withSource(msg) {
    return this.#cfg.source == null ? msg : { ...msg, source: this.#cfg.source };
  }

  // The chooser: shown with two sources or more, the one watched selected.
  #renderSources() {
    const list = this.#sources;
    this.#sourcesEl.hidden = list.length < 2;
    if (list.length < 2) return;
    const want = list.map((x) => x.id).join(',');
    if (this.#sourceSelect.dataset.ids !== want) {
      this.#sourceSelect.replaceChildren(...list.map((x) => {
        const o = document.createElement('option');
        o.value = x.default ? '' : x.id;
        const size = x.stream?.width ? ` ${x.stream.width}×${x.stream.height}` : '';
        o.textContent = `${x.id} (${x.description ?? ''}${size})`;
        return o;
      }));
      this.#sourceSelect.dataset.ids = want;
    }
    const current = list.find((x) => x.id === this.#cfg.source);
    this.#sourceSelect.value = current && !current.default ? current.id : '';
  }

  async #offerOverSocket(s) {
    try {
      const sdp = await this.#makeOffer(s);
      if (this.#s !== s) return;
      this.#markRequest();
      this.#send(this.#withSource({ type: 'offer', sdp }));
      this.#localSent(s);
    } catch (err) {
      if (this.#s === s) this.#retryLater(`could not make an offer: ${err.message}`, { keepSocket: true });
    }
  }

  async #onRemoteOffer(sdp) {
    let s = this.#s;
    // The offer that answers our watch goes to the session waiting for it, and the one that
    // answers our restart to the session that asked; any other offer (the device restarting the
    // session on a live socket) replaces the session.
    const restart = s?.restart != null && !s.restart.applied;
    if (!restart && (!s || s.kind !== 'watch' || s.offerTaken)) s = this.#newSession(this.#hello?.iceServers ?? [], 'watch');
    s.offerTaken = true;
    if (restart) {
      s.restart.applied = true;
      // Our candidates of the new generation go out after the new answer.
      s.localSent = false;
      s.endSent = false;
    }
    try {
      await s.pc.setRemoteDescription({ type: 'offer', sdp });
      if (this.#s !== s) return;
      this.#remoteSet(s);
      acceptAudio(s.pc, sdp);
      await s.pc.setLocalDescription(await s.pc.createAnswer());
      if (this.#s !== s) return;
      this.#send({ type: 'answer', sdp: s.pc.localDescription.sdp });
      this.#localSent(s);
      this.#audioNegotiated(s);
    } catch (err) {
      if (this.#s === s) this.#retryLater(`could not answer the device's offer: ${err.message}`, { keepSocket: true });
    }
  }

  async #onRemoteAnswer(sdp) {
    const s = this.#s;
    if (!s || s.kind !== 'offer' || s.answerTaken || !s.localSent) {
      this.#toast('unexpected answer from the device');
      return;
    }
    s.answerTaken = true;
    try {
      await s.pc.setRemoteDescription({ type: 'answer', sdp });
      if (this.#s !== s) return;
      this.#remoteSet(s);
      this.#audioNegotiated(s);
    } catch (err) {
      if (this.#s === s) this.#retryLater(`could not apply the device's answer: ${err.message}`, { keepSocket: true });
    }
  }

  #onRemoteCandidate(c) {
    const s = this.#s;
    if (!s) return;
    if (s.remoteSet) addRemoteCandidate(s.pc, c);
    else s.remoteQueue.push(c);
  }

  // An error from the hub itself: before hello (the hub then closes the socket), or `expired`
  // when the token runs out during a session.
  #onHubError(msg) {
    const code = String(msg.code ?? 'error');
    const text = msg.message ? `: ${msg.message}` : '';
    console.info(`p2pcast: hub error ${code}${text}`);
    if (HUB_FATAL.has(code)) {
      // A token the hub refuses is of no use to any device; a forbidden one may still show others.
      if (code !== 'forbidden') forgetToken();
      this.#fail(`hub: ${code}${text}`, `${HUB_REASONS[code]}${text ? `\n(${msg.message})` : ''}`);
      return;
    }
    // offline, busy, rate_limited (and anything newer): the device may come back. A session still
    // playing from before the socket closed stays (the device may just not be back at the hub).
    const keep = this.#s?.orphan === true && this.#keepsPlaying(this.#s);
    if (!keep) this.#notice(HUB_REASONS[code] ?? `The hub said ${code}${text}. Trying again…`, false);
    this.#retryLater(`hub: ${code}`, { keepSession: keep });
  }

  #onDeviceError(msg) {
    const code = String(msg.code ?? 'error');
    const text = msg.message ? `: ${msg.message}` : '';
    console.info(`p2pcast: device error ${code}${text}`);
    this.#toast(`device error ${code}${text}`);
    // A device that cannot restart ICE (an older one, or its session is gone) gets a new session.
    const s = this.#s;
    if (s?.restart && !s.restart.applied) {
      this.#retryLater(`ICE restart refused (${code})`, { keepSocket: true });
      return;
    }
    // These mean the session will not come up; fatal is followed by the device closing the
    // socket, which retries by itself. Others (no_session from a candidate racing a replaced
    // session, bad_message) leave the session usable.
    if (code === 'busy' || code === 'bad_sdp') this.#retryLater(`device error ${code}`, { keepSocket: true });
    // No such source: nothing will change that but another choice.
    if (code === 'unknown_source') this.#fail(`device error ${code}`, `This device has no source "${this.#cfg.source}".`);
  }

  // ---- WHEP ----

  // We POST right after setLocalDescription, without waiting for ICE gathering, and send our
  // candidates afterwards by PATCH (trickle-ice-sdpfrag): the device's answer already holds its
  // candidates, so connectivity checks start at once.
  async #startWhep() {
    const s = this.#newSession([], 'offer');
    s.whep = { location: null, etag: null, lines: [], busy: false, off: false, abort: new AbortController() };
    this.#setSignal('whep offering');
    try {
      const offer = await this.#makeOffer(s);
      if (this.#s !== s) return;
      Object.assign(s.whep, iceParams(offer));
      this.#setSignal('whep POST');
      this.#markRequest();
      const headers = { 'Content-Type': 'application/sdp' };
      const token = takeToken();
      if (token) headers.Authorization = `Bearer ${token}`;
      const res = await fetch(this.#cfg.whepUrl, { method: 'POST', headers, body: offer });
      const location = res.headers.get('Location');
      const resource = location ? new URL(location, res.url || this.#cfg.whepUrl).href : null;
      if (this.#s !== s) {
        if (res.ok && resource) deleteResource(resource); // the session was given up meanwhile
        return;
      }
      if (!res.ok) {
        // The device says why in a line of plain text; anything else (a proxy's HTML page) is noise.
        const text = (await res.text().catch(() => '')).trim();
        const why = /html/i.test(res.headers.get('Content-Type') ?? '') ? '' : text.split('\n')[0].slice(0, 160);
        if (res.status === 404 && this.#cfg.source != null) {
          this.#fail(`WHEP ${res.status}`, `This device has no source "${this.#cfg.source}".`);
          return;
        }
        this.#setSignal(`whep ${res.status}`);
        this.#toast(`WHEP ${res.status}${why ? `: ${why}` : ''}`);
        this.#retryLater(`WHEP POST answered ${res.status}`);
        return;
      }
      s.whep.location = resource; // from here on closing the session DELETEs it
      s.whep.etag = res.headers.get('ETag');
      const answer = await res.text();
      if (this.#s !== s) return;
      s.answerTaken = true;
      await s.pc.setRemoteDescription({ type: 'answer', sdp: answer });
      if (this.#s !== s) return;
      this.#remoteSet(s);
      this.#audioNegotiated(s);
      this.#setSignal(`whep ${res.status}`);
      this.#localSent(s);
    } catch (err) {
      if (this.#s !== s) return;
      this.#setSignal('whep failed');
      this.#retryLater(`WHEP: ${err.message}`);
    }
  }

  #whepTrickle(s, json) {
    const w = s.whep;
    if (w.off) return;
    w.lines.push(json ? `a=${json.candidate}` : 'a=end-of-candidates');
    void this.#flushWhep(s);
  }

  // One PATCH at a time, carrying every candidate gathered meanwhile.
  async #flushWhep(s) {
    const w = s.whep;
    if (!w.location || w.busy || w.off || !w.lines.length) return;
    w.busy = true;
    const body = [w.mline, `a=mid:${w.mid}`, `a=ice-ufrag:${w.ufrag}`, `a=ice-pwd:${w.pwd}`,
      ...w.lines.splice(0), ''].join('\r\n');
    const headers = { 'Content-Type': 'application/trickle-ice-sdpfrag' };
    if (w.etag) headers['If-Match'] = w.etag;
    try {
      const res = await fetch(w.location, { method: 'PATCH', headers, body, signal: w.abort.signal });
      if (!res.ok) {
        // Trickle is an optimisation: the device learns our addresses from its checks anyway.
        w.off = true;
        if (this.#s === s) console.info(`p2pcast: WHEP PATCH answered ${res.status}; not trickling`);
      }
    } catch {
      w.off = true;
    }
    w.busy = false;
    if (this.#s === s) void this.#flushWhep(s);
  }

  // ---- audio and talk-back ----
  //
  // The device's audio plays in the <video> element, which starts muted (browsers allow sound only
  // after a user gesture): the speaker button unmutes it. The level meter reads the received track
  // through a WebAudio AnalyserNode every METER_MS while the page is visible. Push-to-talk puts the
  // microphone on the audio sender with replaceTrack (no renegotiation): the audio section is
  // already sendrecv when the device takes this viewer's voice, and then only.

  #wireControls() {
    // A click on a control is not a click on the picture (which toggles the overlay).
    this.#controls.addEventListener('click', (e) => e.stopPropagation());
    this.#muteBtn.addEventListener('click', () => this.setMuted(!this.#video.muted));
    this.#video.addEventListener('volumechange', () => this.#renderAudio());
    const b = this.#talkBtn;
    b.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      // Capture: the release counts wherever the pointer ends up.
      b.setPointerCapture(e.pointerId);
      void this.talk(true);
    });
    for (const type of ['pointerup', 'pointercancel', 'lostpointercapture', 'blur']) {
      b.addEventListener(type, () => { if (this.#talkWanted) void this.talk(false); });
    }
    const isSpace = (e) => e.key === ' ';
    b.addEventListener('keydown', (e) => {
      if (!isSpace(e)) return;
      e.preventDefault(); // no click, no scrolling
      if (!e.repeat) void this.talk(true);
    });
    b.addEventListener('keyup', (e) => {
      if (!isSpace(e)) return;
      e.preventDefault();
      void this.talk(false);
    });
    // A long press on a touch screen is talking, not a context menu.
    b.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  // Hidden: no meter work, and nobody is holding the talk button.
  #onVisibility = () => {
    if (document.hidden && this.#talkWanted) void this.talk(false);
    this.#runMeter();
  };

  // An AudioContext made before any gesture starts suspended; any press on the player resumes it.
  #onGesture = () => {
    if (this.#actx?.state === 'suspended') void this.#actx.resume().catch(() => {});
  };

  // Once both descriptions are applied: the audio this session has, from the negotiated direction.
  #audioNegotiated(s) {
    const tx = audioTransceiver(s.pc);
    const dir = tx?.currentDirection ?? null;
    const recv = dir === 'sendrecv' || dir === 'recvonly';
    const send = dir === 'sendrecv' || dir === 'sendonly';
    s.audio = recv || send ? { tx, direction: dir, recv, send } : null;
    if (recv) this.#startMeter(tx.receiver.track);
    else this.#stopMeter();
    console.info(`p2pcast: audio ${s.audio ? dir : 'none'}${send ? ' (talk-back allowed)' : ''}`);
    this.#renderAudio();
    void this.#applyTalk();
  }

  #renderAudio() {
    const a = this.#s?.audio;
    this.#controls.hidden = !a;
    this.#muteBtn.hidden = !a?.recv;
    this.#meterEl.hidden = !a?.recv;
    this.#talkBtn.hidden = !a?.send;
    const muted = this.#video.muted;
    this.#muteBtn.dataset.muted = String(muted);
    this.#muteLabel.textContent = muted ? 'Unmute' : 'Mute';
    this.#muteBtn.title = muted ? 'Unmute (the stream plays muted until you click)' : 'Mute';
    this.#talkBtn.setAttribute('aria-pressed', String(this.#talkWanted));
  }

  #startMeter(track) {
    if (this.#meterTrack === track && this.#meterSrc) return;
    this.#stopMeter();
    try {
      this.#actx ??= new AudioContext();
      if (!this.#meterNode) {
        this.#meterNode = this.#actx.createAnalyser();
        this.#meterNode.fftSize = 1024; // ~21 ms at 48 kHz: one reading per tick, no history
        this.#meterBuf = new Float32Array(this.#meterNode.fftSize);
      }
      // Not connected to the destination: the <video> plays the sound, the analyser only listens.
      this.#meterSrc = this.#actx.createMediaStreamSource(new MediaStream([track]));
      this.#meterSrc.connect(this.#meterNode);
    } catch (err) {
      console.info(`p2pcast: no level meter (${err.message})`);
      this.#meterSrc = null;
      return;
    }
    this.#meterTrack = track;
    // Runs at once where autoplay is allowed; elsewhere it waits for a gesture (#onGesture).
    if (this.#actx.state === 'suspended') void this.#actx.resume().catch(() => {});
    this.#runMeter();
  }

  #stopMeter() {
    this.#meterSrc?.disconnect();
    this.#meterSrc = null;
    this.#meterTrack = null;
    this.#runMeter();
    this.#showLevel(METER_FLOOR_DB);
  }

  // The meter's timer runs only while there is something to measure and someone to see it.
  #runMeter() {
    const want = this.#meterSrc != null && this.#running && !document.hidden;
    if (want && !this.#meterTimer) {
      this.#meterTimer = setInterval(() => this.#meterTick(), METER_MS);
    } else if (!want && this.#meterTimer) {
      clearInterval(this.#meterTimer);
      this.#meterTimer = 0;
    }
  }

  #meterTick() {
    const buf = this.#meterBuf;
    this.#meterNode.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    const rms = Math.sqrt(sum / buf.length);
    const db = rms > 0 ? Math.max(METER_FLOOR_DB, 20 * Math.log10(rms)) : METER_FLOOR_DB;
    this.#meterDb = db;
    if (this.#meterPeakDb == null || db > this.#meterPeakDb) this.#meterPeakDb = db;
    this.#showLevel(db);
  }

  #showLevel(db) {
    // In 2 % steps, and only when it changes: a still meter costs no style work.
    const x = Math.round(((db - METER_FLOOR_DB) / -METER_FLOOR_DB) * 50) / 50;
    if (x === this.#meterShown) return;
    this.#meterShown = x;
    this.#meterFill.style.transform = `scaleX(${x})`;
    this.#meterEl.setAttribute('aria-valuenow', String(Math.round(db)));
  }

  // Why pressing talk cannot work now, or null.
  #talkBlocked() {
    if (!this.#s?.audio?.send) return 'This device does not take talk-back from this viewer.';
    // getUserMedia exists only in secure contexts: https, or http on localhost.
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      return `Talking needs https or localhost: browsers give the microphone only to secure pages (this one is ${location.origin}).`;
    }
    return null;
  }

  #talkFailed(why) {
    this.#talkError = why;
    console.info(`p2pcast: talk: ${why}`);
    this.#toast(why);
  }

  #talkState() {
    return { talking: this.talking, error: this.#talkError };
  }

  // Asks for the microphone once; the track is kept for every later press.
  #getMic() {
    this.#micPending ??= navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS).then((stream) => {
      const track = stream.getAudioTracks()[0];
      if (!track) throw new Error('the browser gave no audio track');
      track.addEventListener('ended', () => {
        // Unplugged or revoked: the next press asks again.
        if (this.#mic !== track) return;
        this.#mic = null;
        this.#talkWanted = false;
        this.#renderAudio();
        void this.#applyTalk();
      });
      this.#mic = track;
      return track;
    }).finally(() => { this.#micPending = null; });
    return this.#micPending;
  }

  // Puts the microphone on the session's audio sender while talk is pressed, and takes it off
  // otherwise. The calls run one after another, so a quick press and release ends released.
  #applyTalk() {
    this.#talkChain = this.#talkChain.then(async () => {
      const a = this.#s?.audio;
      if (!a) return; // no session yet: the next one applies it once negotiated
      if (!a.send) {
        this.#talkWanted = false;
        this.#renderAudio();
        return;
      }
      const want = this.#talkWanted && this.#running ? this.#mic : null;
      if (a.tx.sender.track === want) return;
      try {
        await a.tx.sender.replaceTrack(want);
        if (want) console.info('p2pcast: talking');
      } catch (err) {
        if (!want) return; // the session closed meanwhile: nothing is sent anyway
        this.#talkWanted = false;
        this.#talkFailed(`Could not send the microphone: ${err.message}`);
      }
      this.#renderAudio();
    });
    return this.#talkChain;
  }

  // ---- the device's reports (events channel) ----

  #listenEvents(s, dc) {
    dc.onmessage = (e) => {
      if (this.#s !== s || typeof e.data !== 'string') return;
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m?.type === 'notice' && typeof m.message === 'string') {
        // The device cannot send us something (e.g. its camera's H.265 video): say so mid-screen,
        // in place of a black picture, for as long as this session lasts.
        s.deviceNotice = m.message;
        console.info(`p2pcast: device notice (${m.code}): ${m.message}`);
        this.#notice(m.message);
        return;
      }
      // A detection event: events.js shows it (and keeps window.p2pcast.events()).
      if (m?.type === 'event') { this.dispatchEvent(new CustomEvent('p2pcast-event', { detail: m.event })); return; }
      if (m?.type !== 'network') return; // a newer device may say more
      s.decisions.push(...(m.decisions ?? []));
      if (s.decisions.length > MAX_DECISIONS) s.decisions.splice(0, s.decisions.length - MAX_DECISIONS);
      s.network = m;
      this.#render();
    };
  }

  /** What the device said it cannot send this session (null: nothing): window.p2pcast.deviceNotice(). */
  deviceNotice() {
    return this.#s?.deviceNotice ?? null;
  }

  /** The device's last report of our path and its decisions: window.p2pcast.network(). */
  network() {
    const s = this.#s;
    return { report: s?.network ?? null, decisions: s ? s.decisions.slice() : [] };
  }

  // ---- overlay ----

  async #tick() {
    const s = this.#s;
    if (!s || this.#ticking) {
      this.#render();
      return;
    }
    this.#ticking = true;
    try {
      const snap = await readStats(s.pc);
      if (this.#s !== s) return;
      const prev = this.#prev?.id === s.id ? this.#prev : null;
      let bitrate = null;
      let fps = snap.framesPerSecond;
      if (prev && snap.timestamp > prev.timestamp) {
        const dt = (snap.timestamp - prev.timestamp) / 1000;
        bitrate = ((snap.bytesReceived - prev.bytesReceived) * 8) / dt;
        fps ??= (snap.framesDecoded - prev.framesDecoded) / dt;
      }
      this.#prev = { ...snap, id: s.id };
      this.#view = { ...snap, bitrate, fps };
      this.#checkStall(s, snap.pairId, snap.pairBytesReceived);
    } catch {
      // The connection closed under us; the next tick reads the next session.
    } finally {
      this.#ticking = false;
      this.#render();
    }
  }

  #render() {
    this.#stateEl.dataset.state = this.#state;
    this.#stateEl.textContent = `p2pcast ${this.#state}`;
    if (this.#panel.hidden) return;
    const pc = this.#s?.pc;
    const v = this.#view;
    const lines = [`signal  ${this.#signal}`];
    if (this.#cfg?.device != null) lines.push(`device  ${this.#cfg.device} via the hub`);
    if (pc) lines.push(`peer    ${peerState(pc)}, ice ${pc.iceConnectionState}${this.#s.restart ? ', ICE restart under way' : ''}`);
    if (this.#retryTimer) {
      const left = Math.max(0, (this.#retryAt - performance.now()) / 1000);
      lines.push(`retry   in ${left.toFixed(1)} s: ${this.#reason}`);
    }
    const src = this.#hello?.stream;
    if (src) lines.push(`source  ${src.codec ?? '?'} ${src.width ?? '?'}×${src.height ?? '?'} @ ${src.fps ?? '?'} fps`);
    if (v) {
      const seen = v.packetsReceived + Math.max(0, v.packetsLost);
      const loss = seen ? (Math.max(0, v.packetsLost) / seen) * 100 : 0;
      const relay = v.relayProtocol ? ` via ${v.relayProtocol} relay` : '';
      lines.push(
        `video   ${v.frameWidth}×${v.frameHeight}, ${v.fps == null ? '–' : v.fps.toFixed(1)} fps`,
        `rate    ${formatRate(v.bitrate)}`,
        `rtt     ${v.rttMs == null ? '–' : `${v.rttMs.toFixed(1)} ms`}, loss ${loss.toFixed(2)} %`,
        `freezes ${v.freezeCount} (${v.totalFreezesDuration.toFixed(1)} s)`,
        `path    ${v.localCandidateType ?? '?'} → ${v.remoteCandidateType ?? '?'}, ${v.protocol ?? '?'}${relay}`,
      );
    }
    const n = this.#s?.network;
    if (n) {
      const r = n.rendition ?? {};
      const fps = r.fps ? ` @ ${Math.round(r.fps * 10) / 10} fps` : '';
      const enc = r.bitrate_bps ? `, encoder ${formatRate(r.bitrate_bps)}` : '';
      lines.push(
        `sent    ${r.width ?? '?'}×${r.height ?? '?'}${fps}${enc}`,
        `device  estimate ${n.estimate_bps ? formatRate(n.estimate_bps) : '– (no feedback)'}, queue ${Math.round(n.queue_ms ?? 0)} ms, ` +
          `resent ${n.retransmitted ?? 0}, fec ${n.fec_packets ?? 0}`,
      );
      const d = this.#s.decisions[this.#s.decisions.length - 1];
      if (d) lines.push(`adapt   ${describeDecision(d)}`);
    }
    const a = this.#s?.audio;
    if (a) {
      const parts = [];
      if (a.recv) {
        parts.push(`${v?.audioIn?.packetsReceived ?? 0} packets`, this.#video.muted ? 'muted' : 'unmuted');
        if (this.#meterDb != null) parts.push(`level ${Math.round(this.#meterDb)} dB`);
      }
      parts.push(a.send ? `talk-back ${this.talking ? 'on' : 'allowed'}` : 'no talk-back');
      lines.push(`audio   ${a.direction}: ${parts.join(', ')}`);
    }
    const first = this.#firstFrameMs == null ? '' : `, first frame at ${Math.round(this.#firstFrameMs)} ms`;
    lines.push(`sessions ${this.#sessions}, ICE restarts ${this.#iceRestarts}${first}`);
    this.#body.textContent = lines.join('\n');
  }

  #toast(text) {
    this.#toastEl.textContent = text;
    this.#toastEl.hidden = false;
    clearTimeout(this.#toastTimer);
    this.#toastTimer = setTimeout(() => { this.#toastEl.hidden = true; }, TOAST_MS);
  }

  // A message mid-screen (null hides it); withList adds a link to the hub's device list.
  #notice(text, withList = false) {
    const el = this.#noticeEl;
    el.hidden = text == null;
    if (text == null) return;
    el.replaceChildren(...text.split('\n').flatMap((line, i) => (i ? [document.createElement('br'), line] : [line])));
    if (withList) {
      const a = document.createElement('a');
      a.href = new URL('./', location.href).pathname;
      a.textContent = 'Back to the device list';
      el.append(document.createElement('br'), a);
    }
  }

  #setSignal(text) {
    this.#signal = text;
    this.#render();
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    console.info(`p2pcast: ${state}`);
    this.#render();
    this.dispatchEvent(new CustomEvent('statechange', { detail: state }));
  }

  #markRequest() {
    this.requestedAt = performance.now();
    this.firstRequestedAt ??= this.requestedAt;
  }

  // firstFrameMs is the moment the first frame of the page's life was presented.
  #watchFirstFrame() {
    const mark = () => {
      if (this.#firstFrameMs != null) return;
      this.#firstFrameMs = performance.now();
      console.info(`p2pcast: first frame at ${Math.round(this.#firstFrameMs)} ms`);
      this.#render();
    };
    const v = this.#video;
    if ('requestVideoFrameCallback' in v) v.requestVideoFrameCallback(mark);
    else v.addEventListener('loadeddata', mark, { once: true });
  }
}

// ---- helpers ----

// The session's audio transceiver (one at most: the device sends one audio track).
function audioTransceiver(pc) {
  return pc.getTransceivers().find((t) => !t.stopped && t.receiver.track?.kind === 'audio') ?? null;
}

// Called with the device's offer applied, before createAnswer: take its audio, and send ours back
// where it will take it (sendrecv: a viewer allowed to talk to a device with a speaker; recvonly:
// the same without a microphone of its own). No track yet: talk-back adds it with replaceTrack.
function acceptAudio(pc, offer) {
  const tx = audioTransceiver(pc);
  if (!tx?.mid) return;
  const theirs = mediaDirection(offer, tx.mid);
  const ours = { sendrecv: 'sendrecv', recvonly: 'sendonly', sendonly: 'recvonly' }[theirs] ?? 'inactive';
  if (tx.direction !== ours) tx.direction = ours;
}

// The direction attribute of the media section with this mid (sendrecv when it has none).
function mediaDirection(sdp, mid) {
  for (const section of sdp.split(/\r?\n(?=m=)/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (!lines.includes(`a=mid:${mid}`)) continue;
    return lines.find((l) => /^a=(sendrecv|sendonly|recvonly|inactive)$/.test(l))?.slice(2) ?? 'sendrecv';
  }
  return 'inactive';
}

// What to tell the viewer when the microphone cannot be had.
function micError(err) {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone permission denied: allow the microphone for this site in the browser to talk.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone found.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The microphone could not be opened (is another program using it?).';
    default:
      return `No microphone: ${err?.message ?? err}`;
  }
}

function readConfig(el) {
  const query = new URLSearchParams(location.search);
  const get = (name) => el.getAttribute(name) ?? query.get(name);
  // device=ID: the page came from a hub, which has no WHEP; the socket authenticates first.
  const device = get('device') || null;
  const signal = device == null && get('signal') === 'whep' ? 'whep' : 'ws';
  const offer = signal === 'whep' || get('offer') === 'viewer' ? 'viewer' : 'device';
  const base = new URL(get('url') || location.href, location.href);
  if (base.protocol === 'ws:') base.protocol = 'http:';
  if (base.protocol === 'wss:') base.protocol = 'https:';
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error(`url must be http(s): ${base.href}`);
  // Relative, so a device behind a path prefix works too; for a page served at / it is /ws, /whep.
  const wsUrl = new URL('ws', base);
  wsUrl.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  const source = get('source') || null;
  if (source != null && !SOURCE_ID.test(source)) throw new Error(`source must be 1 to 32 of a-z, 0-9 and -: ${source}`);
  return { signal, offer, device, source, base: base.href, wsUrl: wsUrl.href, whepUrl: whepUrlFor(base.href, source), overlay: get('overlay') !== '0' };
}

// The WHEP endpoint of a source: <base>/whep for the default, <base>/whep/ID for another.
function whepUrlFor(base, source) {
  return new URL(source == null ? 'whep' : `whep/${source}`, base).href;
}

// Ask for the smallest receive buffer: this is a live view, not a broadcast. Where the
// properties do not exist we set nothing.
function tuneReceiver(receiver) {
  if (!receiver || receiver.track?.kind === 'audio') return;
  try { if ('jitterBufferTarget' in receiver) receiver.jitterBufferTarget = 0; } catch { /* unsupported value */ }
  try { if ('playoutDelayHint' in receiver) receiver.playoutDelayHint = 0; } catch { /* unsupported value */ }
}

function addRemoteCandidate(pc, c) {
  // A candidate we cannot use (another session's, end-of-candidates where unsupported) is not
  // worth a teardown: ICE fails by itself if nothing works.
  (c ? pc.addIceCandidate(c) : pc.addIceCandidate()).catch(() => {});
}

// connectionState where the browser has it; older ones only have the ICE state.
function peerState(pc) {
  if (pc.connectionState) return pc.connectionState;
  const ice = pc.iceConnectionState;
  return ice === 'completed' ? 'connected' : ice === 'checking' ? 'connecting' : ice;
}

function iceParams(sdp) {
  const lines = sdp.split(/\r?\n/);
  const find = (prefix) => (lines.find((l) => l.startsWith(prefix)) ?? prefix).slice(prefix.length);
  return {
    mline: `m=${find('m=')}`, mid: find('a=mid:') || '0',
    ufrag: find('a=ice-ufrag:'), pwd: find('a=ice-pwd:'),
  };
}

function deleteResource(url) {
  // keepalive lets the request outlive the page when this runs on pagehide.
  fetch(url, { method: 'DELETE', keepalive: true }).catch(() => {});
}

async function readStats(pc) {
  const report = await pc.getStats();
  let inbound = null;
  let audioIn = null;
  let audioOut = null;
  let pairId = null;
  const pairs = [];
  for (const r of report.values()) {
    const kind = r.kind ?? r.mediaType;
    if (r.type === 'inbound-rtp' && kind === 'video') {
      if (!inbound || (r.bytesReceived ?? 0) > (inbound.bytesReceived ?? 0)) inbound = r;
    } else if (r.type === 'inbound-rtp' && kind === 'audio') {
      audioIn = r;
    } else if (r.type === 'outbound-rtp' && kind === 'audio') {
      audioOut = r;
    } else if (r.type === 'transport' && r.selectedCandidatePairId) {
      pairId = r.selectedCandidatePairId;
    } else if (r.type === 'candidate-pair') {
      pairs.push(r);
    }
  }
  const pair = (pairId && report.get(pairId))
    ?? pairs.find((p) => p.selected) // Firefox
    ?? pairs.find((p) => p.nominated && p.state === 'succeeded') ?? null;
  const local = pair ? report.get(pair.localCandidateId) : null;
  const remote = pair ? report.get(pair.remoteCandidateId) : null;
  const num = (k) => (typeof inbound?.[k] === 'number' ? inbound[k] : 0);
  return {
    framesDecoded: num('framesDecoded'), framesReceived: num('framesReceived'),
    framesDropped: num('framesDropped'), frameWidth: num('frameWidth'), frameHeight: num('frameHeight'),
    freezeCount: num('freezeCount'), totalFreezesDuration: num('totalFreezesDuration'),
    packetsReceived: num('packetsReceived'), packetsLost: num('packetsLost'),
    bytesReceived: num('bytesReceived'),
    framesPerSecond: typeof inbound?.framesPerSecond === 'number' ? inbound.framesPerSecond : null,
    rttMs: typeof pair?.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null,
    connectionState: pc.connectionState ?? peerState(pc), iceConnectionState: pc.iceConnectionState,
    localCandidateType: local?.candidateType ?? null, remoteCandidateType: remote?.candidateType ?? null,
    protocol: local?.protocol ?? remote?.protocol ?? null,
    relayProtocol: local?.candidateType === 'relay' ? (local.relayProtocol ?? null) : null,
    pair: pair ? { local: candidateInfo(local), remote: candidateInfo(remote), protocol: local?.protocol ?? remote?.protocol ?? null } : null,
    pairId: pair?.id ?? null,
    pairBytesReceived: typeof pair?.bytesReceived === 'number' ? pair.bytesReceived : null,
    timestamp: inbound?.timestamp ?? null,
    audioIn: audioIn && {
      packetsReceived: audioIn.packetsReceived ?? 0, packetsLost: audioIn.packetsLost ?? 0,
      bytesReceived: audioIn.bytesReceived ?? 0, totalAudioEnergy: audioIn.totalAudioEnergy ?? 0,
      totalSamplesDuration: audioIn.totalSamplesDuration ?? 0, audioLevel: audioIn.audioLevel ?? 0,
    },
    audioOut: audioOut && { packetsSent: audioOut.packetsSent ?? 0 },
  };
}

// One end of the selected pair: { type, address, port, protocol, relayProtocol }.
function candidateInfo(c) {
  if (!c) return null;
  return {
    type: c.candidateType ?? null, address: c.address ?? c.ip ?? null, port: c.port ?? null,
    protocol: c.protocol ?? null, relayProtocol: c.relayProtocol ?? null,
  };
}

// describeDecision says an adaptation decision in a few words: what changed, and why.
function describeDecision(d) {
  const ago = Math.max(0, (Date.now() - Date.parse(d.at)) / 1000);
  let what;
  if (d.what === 'bitrate') what = `encoder ${formatRate(d.from)} → ${formatRate(d.to)}`;
  else if (d.what === 'fps') what = `encoder ${d.from} → ${d.to} fps`;
  else what = `${d.what} track ${d.from} → ${d.to}`;
  return `${what} (${d.why}), ${ago.toFixed(0)} s ago`;
}

function formatRate(bps) {
  if (bps == null) return '–';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

if (!customElements.get('p2pcast-player')) customElements.define('p2pcast-player', P2PCastPlayer);

// The end-to-end tests' hook (read with Runtime.evaluate): keep the names. It follows whichever
// <p2pcast-player> comes first in the document.
function firstPlayer() {
  for (const el of document.querySelectorAll('p2pcast-player')) if (el instanceof P2PCastPlayer) return el;
  return null;
}

window.p2pcast = {
  get state() { return firstPlayer()?.state ?? 'connecting'; },
  stats: async () => (firstPlayer() ? firstPlayer().stats() : { ...EMPTY_STATS }),
  audio: async () => (firstPlayer() ? firstPlayer().audio() : { ...EMPTY_AUDIO }),
  inboundVideo: async () => (firstPlayer() ? firstPlayer().inboundVideo() : []),
  network: () => (firstPlayer() ? firstPlayer().network() : { report: null, decisions: [] }),
  deviceNotice: () => (firstPlayer() ? firstPlayer().deviceNotice() : null),
  get talkAllowed() { return firstPlayer()?.talkAllowed ?? false; },
  get talking() { return firstPlayer()?.talking ?? false; },
  talk: async (on) => (firstPlayer() ? firstPlayer().talk(on) : { talking: false, error: 'no player' }),
  setMuted: (muted) => firstPlayer()?.setMuted(muted),
  get audioTrack() { return firstPlayer()?.audioTrack ?? null; },
  get micTrack() { return firstPlayer()?.micTrack ?? null; },
  control: () => firstPlayer()?.desktop?.snapshot() ?? null,
  get source() { return firstPlayer()?.source ?? null; },
  get sources() { return firstPlayer()?.sources ?? []; },
  selectSource: (id) => firstPlayer()?.selectSource(id),
  controlSend: (msg) => firstPlayer()?.desktop?.send(msg) ?? false,
};
