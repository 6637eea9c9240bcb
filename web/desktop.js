// The viewer's side of a desktop device's `control` data channel (docs/input.md, protocol v1):
// the page's mouse, wheel and keyboard go to the remote desktop while this viewer is in
// control, the clipboard follows both ways, and a bar shows who is in control with the buttons
// to ask for it, hand it over or give it up.
//
// Coordinates are fractions of the picture as it is shown: the <video> letterboxes the desktop
// (object-fit: contain), so a point is measured against the displayed content rectangle, not
// the element, and the device maps the fraction onto its output, whatever the sizes.
// Keys are sent as KeyboardEvent.code (the physical key): the desktop's own layout decides the
// character, so a viewer's French keyboard does not turn the desktop's `a` into `q`.

export const CONTROL_CHANNEL = 'control';
// One notch of a mouse wheel is 120 in the protocol (as in Wayland's high-resolution axis).
// Chromium reports a notch as 120 px on Linux and 100 on some platforms; lines count 40 each
// (a notch scrolls 3 lines); a page is 8 notches.
const V120_PER_PIXEL = 1;
const V120_PER_LINE = 40;
const V120_PER_PAGE = 960;
// Pointer motion is sent at most this often (one message a frame at 250 Hz): fine enough for
// drawing, bounded for the channel.
const MOVE_INTERVAL_MS = 4;
// Ctrl+V: the key waits this long for the browser's paste event, so the desktop gets our
// clipboard before the keystroke that pastes it.
const PASTE_WAIT_MS = 150;
const MAX_CLIPBOARD_BYTES = 60000;
const MAX_WHEEL = 100 * 120;
const clampWheel = (v) => Math.max(-MAX_WHEEL, Math.min(MAX_WHEEL, v));

const STYLE = `
  .desk { position: absolute; left: 50%; top: 8px; transform: translateX(-50%);
          display: flex; align-items: center; gap: 8px; padding: 4px 8px; border-radius: 6px;
          background: rgba(0, 0, 0, .6); color: #eee; font: 13px/1.2 system-ui, sans-serif;
          max-width: calc(100% - 32px); }
  .desk .who::before { content: "\\25CF"; margin-right: .4em; color: var(--dot, #999); }
  .desk[data-mode=mine] .who { --dot: #4caf50; }
  .desk[data-mode=other] .who { --dot: #fdd835; }
  .desk button { min-height: 28px; padding: 2px 10px; border: 1px solid #777; border-radius: 4px;
                 background: #222; color: inherit; font: inherit; cursor: pointer; }
  .desk button:hover { background: #333; }
  .desk button:focus-visible { outline: 2px solid #8ab4f8; outline-offset: 1px; }
  :host(.controlling) video { cursor: none; }
`;

// mouse button (MouseEvent.button) → what the protocol calls it: the same numbers.
const BUTTONS = new Set([0, 1, 2, 3, 4]);

export class DesktopControl {
  #host; #video; #bar; #who; #askBtn; #giveBtn; #handBtn;
  #dc = null;
  #state = null; // the device's last `state`
  #request = null; // the id of the viewer asking us for control
  #held = new Set(); // codes of keys we sent down and not yet up
  #buttons = new Set();
  #lastMove = 0; #moveTimer = 0; #pendingMove = null;
  #wheel = { x: 0, y: 0 };
  #pasteWait = null; // { code, timer } while Ctrl+V waits for the paste event
  #clipboard = null; // the desktop's clipboard as last sent to us
  #refused = 0; #errors = [];
  #listeners = [];

  /**
   * host: the <p2pcast-player> element (it takes focus and keys); root: its shadow root (the bar
   * goes there); video: the <video> that shows the desktop.
   */
  constructor(host, root, video) {
    this.#host = host;
    this.#video = video;
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
    this.#bar = document.createElement('div');
    this.#bar.className = 'desk';
    this.#bar.hidden = true;
    this.#bar.innerHTML = `<span class="who" role="status"></span>
      <button type="button" class="ask">Take control</button>
      <button type="button" class="hand" hidden>Hand over</button>
      <button type="button" class="give" hidden>Give up control</button>`;
    root.append(this.#bar);
    this.#who = this.#bar.querySelector('.who');
    this.#askBtn = this.#bar.querySelector('.ask');
    this.#handBtn = this.#bar.querySelector('.hand');
    this.#giveBtn = this.#bar.querySelector('.give');
    // The bar's clicks and keys are the page's, not the desktop's.
    for (const type of ['click', 'pointerdown', 'pointerup', 'keydown', 'keyup', 'wheel']) {
      this.#bar.addEventListener(type, (e) => e.stopPropagation());
    }
    this.#askBtn.addEventListener('click', () => this.send({ type: 'request' }));
    this.#giveBtn.addEventListener('click', () => this.send({ type: 'yield' }));
    this.#handBtn.addEventListener('click', () => {
      if (this.#request) this.send({ type: 'handover', to: this.#request });
    });
    if (!host.hasAttribute('tabindex')) host.tabIndex = 0;
    this.#on(video, 'pointermove', (e) => this.#onMove(e));
    this.#on(video, 'pointerdown', (e) => this.#onButton(e, true));
    this.#on(video, 'pointerup', (e) => this.#onButton(e, false));
    this.#on(video, 'pointercancel', () => this.#releaseAll());
    this.#on(video, 'contextmenu', (e) => { if (this.controlling) e.preventDefault(); });
    this.#on(video, 'wheel', (e) => this.#onWheel(e), { passive: false });
    this.#on(host, 'keydown', (e) => this.#onKey(e, true));
    this.#on(host, 'keyup', (e) => this.#onKey(e, false));
    this.#on(host, 'paste', (e) => this.#onPaste(e));
    this.#on(host, 'compositionend', (e) => { if (e.data) this.send({ type: 'text', text: e.data }); });
    this.#on(host, 'blur', () => this.#releaseAll());
    this.#on(document, 'visibilitychange', () => { if (document.hidden) this.#releaseAll(); });
  }

  /** Takes a freshly made (or reopened) `control` channel of a session. */
  attach(dc) {
    this.detach();
    this.#dc = dc;
    dc.onmessage = (e) => { if (this.#dc === dc) this.#onMessage(e.data); };
    dc.onclose = () => {
      if (this.#dc !== dc) return;
      this.#dc = null;
      this.#state = null;
      this.#render();
    };
    this.#render();
  }

  /** Drops the channel (the session ended); the bar hides until the next one. */
  detach() {
    const dc = this.#dc;
    this.#dc = null;
    this.#state = null;
    this.#request = null;
    this.#held.clear();
    this.#buttons.clear();
    if (dc) {
      dc.onmessage = dc.onclose = null;
      try { dc.close(); } catch { /* closed */ }
    }
    this.#render();
  }

  destroy() {
    this.detach();
    for (const [el, type, fn, opts] of this.#listeners) el.removeEventListener(type, fn, opts);
    this.#listeners = [];
    this.#bar.remove();
  }

  /** Whether this viewer holds control now. */
  get controlling() { return this.#state != null && this.#state.you === this.#state.controller && this.#state.you != null; }

  /** What window.p2pcast.control() returns: the tests' view of the channel. */
  snapshot() {
    return {
      open: this.#dc?.readyState === 'open',
      state: this.#state, controlling: this.controlling, request: this.#request,
      clipboard: this.#clipboard, refused: this.#refused, errors: [...this.#errors],
      held: [...this.#held],
    };
  }

  /** Sends one message as it is (the tests' hook; the page's own go through here too). */
  send(msg) {
    const dc = this.#dc;
    if (dc?.readyState !== 'open') return false;
    try {
      dc.send(JSON.stringify(msg));
      return true;
    } catch {
      return false; // closing: the next session starts clean
    }
  }

  // ---- from the device ----

  #onMessage(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    switch (msg?.type) {
      case 'state': {
        const wasMine = this.controlling;
        this.#state = msg;
        if (this.#request && !(msg.requests ?? []).includes(this.#request)) this.#request = null;
        if (wasMine && !this.controlling) {
          // Control went elsewhere: the device released what we held; forget it here too.
          this.#held.clear();
          this.#buttons.clear();
        }
        break;
      }
      case 'request': this.#request = typeof msg.from === 'string' ? msg.from : null; break;
      case 'refused': this.#refused++; break;
      case 'clipboard':
        if (typeof msg.text === 'string') {
          this.#clipboard = msg.text;
          // Writing the system clipboard needs the page focused (and a secure context).
          if (document.hasFocus() && navigator.clipboard?.writeText) navigator.clipboard.writeText(msg.text).catch(() => {});
        }
        break;
      case 'error':
        this.#errors.push(String(msg.error ?? ''));
        if (this.#errors.length > 16) this.#errors.shift();
        console.info(`p2pcast: control: ${msg.error}`);
        break;
    }
    this.#render();
  }

  #render() {
    const st = this.#state;
    this.#bar.hidden = st == null;
    this.#host.classList.toggle('controlling', this.controlling);
    if (st == null) return;
    const name = (id) => (st.viewers ?? []).find((v) => v.id === id)?.name ?? id;
    let mode, text;
    if (this.controlling) {
      mode = 'mine';
      text = 'You are in control';
    } else if (st.controller) {
      mode = 'other';
      text = `${name(st.controller)} is in control`;
    } else {
      mode = 'none';
      text = 'Nobody is in control';
    }
    if (this.#request && this.controlling) text += ` · ${name(this.#request)} asks for control`;
    this.#bar.dataset.mode = mode;
    this.#who.textContent = text;
    const asked = (st.requests ?? []).includes(st.you);
    this.#askBtn.hidden = this.controlling;
    this.#askBtn.disabled = asked;
    this.#askBtn.textContent = st.controller ? (asked ? 'Asked…' : 'Ask for control') : 'Take control';
    this.#giveBtn.hidden = !this.controlling;
    this.#handBtn.hidden = !(this.controlling && this.#request);
  }

  // ---- to the device ----

  #on(el, type, fn, opts) {
    el.addEventListener(type, fn, opts);
    this.#listeners.push([el, type, fn, opts]);
  }

  // The point under the pointer as fractions of the displayed picture, clamped to it.
  #point(e) {
    const v = this.#video;
    const r = v.getBoundingClientRect();
    const vw = v.videoWidth, vh = v.videoHeight;
    if (!vw || !vh || !r.width || !r.height) return null;
    const scale = Math.min(r.width / vw, r.height / vh);
    const w = vw * scale, h = vh * scale;
    const left = r.left + (r.width - w) / 2, top = r.top + (r.height - h) / 2;
    const clamp = (x) => Math.min(1, Math.max(0, x));
    return { x: clamp((e.clientX - left) / w), y: clamp((e.clientY - top) / h) };
  }

  #onMove(e) {
    if (!this.controlling) return;
    const p = this.#point(e);
    if (!p) return;
    const now = performance.now();
    if (now - this.#lastMove >= MOVE_INTERVAL_MS) {
      this.#lastMove = now;
      this.send({ type: 'move', x: p.x, y: p.y });
      return;
    }
    this.#pendingMove = p; // the last one in a burst is sent, a moment later
    if (!this.#moveTimer) {
      this.#moveTimer = setTimeout(() => {
        this.#moveTimer = 0;
        const q = this.#pendingMove;
        this.#pendingMove = null;
        if (q && this.controlling) {
          this.#lastMove = performance.now();
          this.send({ type: 'move', x: q.x, y: q.y });
        }
      }, MOVE_INTERVAL_MS);
    }
  }

  #flushMove() {
    clearTimeout(this.#moveTimer);
    this.#moveTimer = 0;
    const q = this.#pendingMove;
    this.#pendingMove = null;
    if (q) this.send({ type: 'move', x: q.x, y: q.y });
  }

  #onButton(e, down) {
    if (!this.controlling || !BUTTONS.has(e.button)) return;
    e.preventDefault();
    e.stopPropagation(); // not the player's click (which toggles its overlay)
    if (down) {
      this.#host.focus({ preventScroll: true });
      this.#video.setPointerCapture?.(e.pointerId); // a drag ends where it ends, even outside
    }
    // The button lands where the pointer is: its position goes first.
    this.#flushMove();
    const p = this.#point(e);
    if (p) this.send({ type: 'move', x: p.x, y: p.y });
    if (down === this.#buttons.has(e.button)) return;
    if (down) this.#buttons.add(e.button); else this.#buttons.delete(e.button);
    this.send({ type: 'button', button: e.button, down });
  }

  #onWheel(e) {
    if (!this.controlling) return;
    e.preventDefault();
    const per = e.deltaMode === 1 ? V120_PER_LINE : e.deltaMode === 2 ? V120_PER_PAGE : V120_PER_PIXEL;
    // Whole units of 1/120 notch go now; the remainder waits for the next event.
    this.#wheel.x += e.deltaX * per;
    this.#wheel.y += e.deltaY * per;
    // At most 100 notches an axis a message (docs/input.md): the rest waits for the next event.
    const x = clampWheel(Math.trunc(this.#wheel.x)), y = clampWheel(Math.trunc(this.#wheel.y));
    this.#wheel.x -= x;
    this.#wheel.y -= y;
    if (x || y) this.send({ type: 'wheel', v120x: x, v120y: y });
  }

  #onKey(e, down) {
    if (!this.controlling || e.isComposing) return;
    const code = e.code;
    if (!code || code === 'Unidentified') {
      // A virtual keyboard without physical codes: send what it typed.
      if (down && e.key && e.key.length === 1) {
        e.preventDefault();
        this.send({ type: 'text', text: e.key });
      }
      return;
    }
    if (down && e.repeat) { e.preventDefault(); return; } // the desktop repeats by itself
    if (down && code === 'KeyV' && (e.ctrlKey || e.metaKey) && !this.#pasteWait) {
      // Let the browser fire its paste event (no preventDefault), and send the key after it.
      this.#pasteWait = { timer: setTimeout(() => this.#endPasteWait(), PASTE_WAIT_MS) };
      return;
    }
    e.preventDefault();
    if (this.#pasteWait && !down && code === 'KeyV') {
      // The key went up before the paste event: both wait for it.
      this.#pasteWait.up = true;
      return;
    }
    this.#key(code, down);
  }

  #key(code, down) {
    if (down === this.#held.has(code)) return;
    if (down) this.#held.add(code); else this.#held.delete(code);
    this.send({ type: 'key', code, down });
  }

  #onPaste(e) {
    if (!this.controlling) return;
    e.preventDefault();
    const text = e.clipboardData?.getData('text/plain') ?? '';
    if (text && new TextEncoder().encode(text).length <= MAX_CLIPBOARD_BYTES) this.send({ type: 'clipboard', text });
    this.#endPasteWait();
  }

  #endPasteWait() {
    const w = this.#pasteWait;
    if (!w) return;
    clearTimeout(w.timer);
    this.#pasteWait = null;
    this.#key('KeyV', true);
    if (w.up) this.#key('KeyV', false);
  }

  // Focus lost, tab hidden, pointer cancelled: nothing stays pressed on the desktop.
  #releaseAll() {
    if (this.#pasteWait) {
      clearTimeout(this.#pasteWait.timer);
      this.#pasteWait = null;
    }
    if (!this.controlling || (this.#held.size === 0 && this.#buttons.size === 0)) return;
    this.#held.clear();
    this.#buttons.clear();
    this.send({ type: 'release' });
  }
}
