// hub.js: the hub's web app (hub.html, served by the hub at "/"). One page, two modes:
//
//   /?device=ID   the player: a full-window <p2pcast-player>, which sees `device` in the query and
//                 signals through the hub (player.js, "hub mode").
//   /             the device list: the viewer token (pasted once, or given as #token=… and then
//                 removed from the address bar) is kept in this tab's sessionStorage; the list comes
//                 from GET /api/devices with `Authorization: Bearer <token>` and refreshes every 5 s.
//                 Each entry links to /?device=ID in the same tab, which keeps the token; a device
//                 with several sources has an entry for each, /?device=ID&source=SID.

import { takeToken, storeToken, forgetToken } from './player.js';

const REFRESH_MS = 5000;

const device = new URLSearchParams(location.search).get('device');
if (device) showPlayer(device);
else showList();

function showPlayer(id) {
  document.title = `${id} · p2pcast`;
  document.body.classList.add('playing');
  document.body.append(document.createElement('p2pcast-player'));
}

function showList() {
  const $ = (id) => document.getElementById(id);
  const form = $('token-form');
  const input = $('token');
  const section = $('devices');
  const list = $('list');
  const status = $('status');
  const error = $('error');
  let token = takeToken();
  let timer = 0;
  let seq = 0; // a refresh answered after a newer one started is dropped

  const showError = (text) => {
    error.textContent = text ?? '';
    error.hidden = !text;
  };
  const askToken = (why) => {
    clearTimeout(timer);
    token = null;
    section.hidden = true;
    form.hidden = false;
    showError(why);
    input.focus();
  };

  async function refresh() {
    clearTimeout(timer);
    const mine = ++seq;
    const again = () => { if (mine === seq) timer = setTimeout(refresh, REFRESH_MS); };
    if (document.hidden && list.childElementCount) return again(); // a hidden tab keeps what it shows
    let res;
    let body;
    try {
      res = await fetch('api/devices', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
      body = res.ok ? await res.json() : (await res.text()).trim();
    } catch (err) {
      if (mine !== seq) return;
      status.textContent = `The hub does not answer (${err.message}); trying again.`;
      return again();
    }
    if (mine !== seq) return;
    if (res.status === 401) {
      forgetToken();
      askToken(`The hub refused this token: ${body.split('\n')[0]}`);
      return;
    }
    if (!res.ok) {
      status.textContent = `The hub answered ${res.status}${body ? `: ${body.split('\n')[0]}` : ''}; trying again.`;
      return again();
    }
    render(body.devices ?? []);
    status.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    again();
  }

  function render(devices) {
    const entry = (d, label, href, text, source) => {
      const a = document.createElement('a');
      a.href = href;
      a.dataset.device = d.id;
      if (source) a.dataset.source = source;
      const dot = document.createElement('span');
      dot.className = 'dot';
      const id = document.createElement('span');
      id.className = 'id';
      id.textContent = label;
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = text;
      a.append(dot, id, meta);
      const li = document.createElement('li');
      li.className = d.online ? 'online' : 'offline';
      li.append(a);
      return li;
    };
    const items = devices.flatMap((d) => {
      const base = `?device=${encodeURIComponent(d.id)}`;
      const sources = d.online && Array.isArray(d.sources) ? d.sources : [];
      // A device with several sources: one entry for each (the default's is the device's own
      // link), watched with ?device=ID&source=SID.
      if (sources.length < 2) return [entry(d, d.id, base, describe(d))];
      return sources.map((src) => entry(d, `${d.id} · ${src.id}`,
        src.default ? base : `${base}&source=${encodeURIComponent(src.id)}`,
        describe({ online: true, stream: src.stream }) + (src.description ? ` · ${src.description}` : ''),
        src.id));
    });
    if (!items.length) {
      const li = document.createElement('li');
      li.className = 'status';
      li.textContent = 'This token sees no enrolled device.';
      items.push(li);
    }
    list.replaceChildren(...items);
    form.hidden = true;
    section.hidden = false;
    showError(null);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    input.value = '';
    storeToken(t);
    token = t;
    list.replaceChildren();
    void refresh();
  });
  $('forget').addEventListener('click', () => {
    forgetToken();
    list.replaceChildren();
    askToken(null);
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && token) void refresh(); });
  // A new #token=… on this page (a fragment change loads nothing).
  window.addEventListener('hashchange', () => {
    if (!new URLSearchParams(location.hash.slice(1)).has('token')) return;
    token = takeToken();
    list.replaceChildren();
    if (token) void refresh();
  });

  document.querySelector('main').hidden = false;
  if (token) void refresh();
  else askToken(null);
}

// "online · H264 640×360 @ 30 fps", or "offline".
function describe(d) {
  if (!d.online) return 'offline';
  const s = d.stream;
  if (!s) return 'online';
  return `online · ${s.codec ?? '?'} ${s.width ?? '?'}×${s.height ?? '?'}${s.fps ? ` @ ${s.fps} fps` : ''}`;
}
