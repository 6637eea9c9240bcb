// events.js: the device's detection events (motion, a detector's classes) under the video.
//
// The device sends each event on the session's "events" channel when it starts and again when
// it ends, under one id, and a newly opened channel first gets the device's recent ones
// (docs/motion.md). player.js hands each to its element as a 'p2pcast-event' DOM event; this
// module keeps them by id (an end replaces its start) and shows:
//   - a timeline strip along the bottom of the window: the last ten minutes, a marker per event
//     from its start to its end (to now while it is open);
//   - a list of the latest events above it: time, kind, duration, "live" while open.
// Nothing shows until the first event comes. Styles are set through the CSSOM (el.style), which
// the page's Content-Security-Policy (style-src 'self') allows, unlike inline style attributes.
//
// Test hook: window.p2pcast.events() returns what the page received, in order of arrival, each
// as last received ({ id, kind, detector, start, end, score, regions }; end is undefined while
// open).

const MAX_EVENTS = 100;
const LIST_ROWS = 5;
const WINDOW_MS = 10 * 60 * 1000;
const STRIP_PX = 10;

/** @type {Map<string, object>} id → the event as last received (insertion order: arrival). */
const received = new Map();

function css(el, styles) {
  Object.assign(el.style, styles);
  return el;
}

function div(styles, text) {
  const el = css(document.createElement('div'), styles);
  if (text !== undefined) el.textContent = text;
  return el;
}

const panel = div({
  position: 'fixed', left: '0', right: '0', bottom: '0', zIndex: '10', display: 'none',
  font: '12px/1.4 system-ui, sans-serif', color: '#eee', pointerEvents: 'none',
});
const list = div({ background: 'rgba(0,0,0,0.55)', padding: '4px 8px', maxWidth: '26em' });
const strip = div({ position: 'relative', height: `${STRIP_PX}px`, background: 'rgba(255,255,255,0.15)' });
panel.append(list, strip);

function startMs(e) { return Date.parse(e.start); }
function endMs(e) { return e.end ? Date.parse(e.end) : NaN; }
function isOpen(e) { return !e.end; }

function durationText(ms) {
  const s = Math.max(0, ms) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function render() {
  if (received.size === 0) return;
  panel.style.display = 'block';
  const now = Date.now();
  const all = [...received.values()];

  list.replaceChildren();
  for (const e of all.slice(-LIST_ROWS).reverse()) {
    const open = isOpen(e);
    const dur = (open ? now : endMs(e)) - startMs(e);
    const when = new Date(startMs(e)).toLocaleTimeString();
    list.append(div({ color: open ? '#ffb347' : '#eee' },
      `${when}  ${e.kind}  ${durationText(dur)}${open ? '  ● live' : ''}`));
  }

  strip.replaceChildren();
  const from = now - WINDOW_MS;
  for (const e of all) {
    const s = startMs(e);
    const end = isOpen(e) ? now : endMs(e);
    if (end < from) continue;
    const left = Math.max(0, (s - from) / WINDOW_MS);
    const width = Math.max(0, (end - Math.max(s, from)) / WINDOW_MS);
    strip.append(div({
      position: 'absolute', top: '0', bottom: '0', left: `${(left * 100).toFixed(3)}%`,
      width: `max(3px, ${(width * 100).toFixed(3)}%)`,
      background: isOpen(e) ? '#ffb347' : '#e0533d',
    }));
  }
}

function onEvent(e) {
  const ev = e.detail;
  if (!ev || typeof ev.id !== 'string' || typeof ev.start !== 'string') return;
  received.set(ev.id, ev); // an end replaces its start, keeping the start's place
  while (received.size > MAX_EVENTS) received.delete(received.keys().next().value);
  render();
}

function attach() {
  const player = document.querySelector('p2pcast-player');
  if (!player) return;
  player.addEventListener('p2pcast-event', onEvent);
  document.body.append(panel);
  // Open events' durations and the strip's window move with the clock.
  setInterval(() => { if (received.size) render(); }, 1000);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', attach);
else attach();

if (window.p2pcast) {
  window.p2pcast.events = () => [...received.values()].map((e) => ({ ...e }));
}
