// The device's management page (/manage, docs/manage.md): shows the settings in force, edits
// the reloadable ones (POST /api/manage/settings: applied through the device's Reload), starts
// and stops recording, lists the viewers, tails the log and reloads the config file. The token
// (control grant) comes as on the viewer page: the URL fragment #token=… or the form, kept in
// this tab's sessionStorage and sent only in the Authorization header. On the device's own
// machine no token is needed (--ops-allow).
// Self-contained (no import of player.js and its modules): a device whose viewer endpoints are
// off serves only this page's own files.

// The token helpers, as player.js has them (same sessionStorage key: one token per tab).
const TOKEN_KEY = 'p2pcast.token';
let memoryToken = null;
function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has('token')) {
    const t = hash.get('token').trim();
    hash.delete('token');
    const rest = hash.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
    if (t) storeToken(t);
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
  } catch {
    return memoryToken;
  }
}
function storeToken(t) {
  memoryToken = t;
  try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* memory only */ }
}
function forgetToken() {
  memoryToken = null;
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
}

const $ = (id) => document.getElementById(id);
let token = takeToken();

class Refused extends Error {}

async function api(path, body) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  const init = { headers, cache: 'no-store' };
  if (body !== undefined) {
    init.method = 'POST';
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401 || res.status === 403) throw new Refused(await res.text());
  const type = res.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await res.json() : { error: await res.text() };
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function fill(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v] of pairs) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = Array.isArray(v) ? (v.length ? v.join(', ') : 'none') : String(v);
    dl.append(dt, dd);
  }
}

function showError(e) {
  if (e instanceof Refused) {
    forgetToken();
    token = null;
    $('panels').hidden = true;
    $('token-form').hidden = false;
  }
  $('error').textContent = e.message;
  $('error').hidden = false;
}

function showResult(r) {
  const parts = [];
  if (r.applied) parts.push('applied: ' + (r.applied.length ? r.applied.join(', ') : 'nothing changed'));
  if (r.needs_restart && r.needs_restart.length) parts.push('needs a restart: ' + r.needs_restart.join(', '));
  $('result').textContent = parts.join(' · ');
}

let edited = false; // a form being edited is not overwritten by the refresh

async function loadSettings() {
  const s = await api('/api/manage/settings');
  fill($('stream-info'), [['source', s.stream.source], ['size', s.stream.size], ['fps', s.stream.fps],
    ['bitrate', s.stream.bitrate + ' bit/s'], ['keyframe every', s.stream.gop],
    ['renditions', s.stream.sub ? 'main, sub ' + s.stream.sub : 'main'], ['adaptation', s.stream.adapt ? 'on' : 'off']]);
  $('motion-form').hidden = !s.motion.editable;
  if (s.motion.editable) {
    $('motion-info').replaceChildren();
    if (!edited) {
      $('motion').checked = s.motion.enabled;
      $('motion-sensitivity').value = s.motion.sensitivity || '';
      $('motion-mask').value = s.motion.mask;
      $('motion-min-duration').value = s.motion.min_duration === '0s' ? '' : s.motion.min_duration;
      $('motion-hold').value = s.motion.hold === '0s' ? '' : s.motion.hold;
      $('motion-fps').value = s.motion.fps || '';
    }
  } else {
    fill($('motion-info'), [['motion', 'detected by the producer of this source, if at all (not set here)']]);
  }
  fill($('access-info'), [['LAN tokens', s.access.lan_auth ? 'required' : 'not required'], ['allowed origins', s.access.allow_origins],
    ['allowed hosts', s.access.allow_hosts], ['operator addresses', s.access.ops_allow],
    ['max viewers', s.access.max_viewers], ['max per source', s.access.max_per_source]]);
  $('reload').disabled = !s.can_reload_file;
  if (!edited) {
    $('bitrate').value = s.stream.bitrate;
    $('fps').value = s.stream.fps;
  }
  const rec = s.record;
  $('record-none').hidden = !!rec;
  $('record-form').hidden = !rec;
  if (rec && !edited) {
    $('record-mode').value = rec.mode;
    $('record-pre-roll').value = rec.pre_roll;
    $('record-post-roll').value = rec.post_roll;
    $('record-segment').value = rec.segment;
    $('record-max-age').value = rec.max_age;
    $('record-max-size').value = rec.max_size;
    $('record-min-free').value = rec.min_free;
  }
}

async function loadViewers() {
  const vs = await api('/api/manage/viewers');
  const rows = vs.map((v) => {
    const tr = document.createElement('tr');
    for (const c of [v.id, v.token_id || '—', v.state, v.rendition, v.pair || '—', v.rtt_ms ? v.rtt_ms.toFixed(1) + ' ms' : '—',
      v.estimate_bps ? (v.estimate_bps / 1e6).toFixed(2) + ' Mbit/s' : '—', v.in_control ? 'yes' : '']) {
      const td = document.createElement('td');
      td.textContent = String(c);
      tr.append(td);
    }
    return tr;
  });
  $('viewers').tBodies[0].replaceChildren(...rows);
}

async function loadLogs() {
  const l = await api('/api/manage/logs?n=200');
  const pre = $('logs');
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = l.Lines.join('\n');
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

async function refresh() {
  try {
    await loadSettings();
    await loadViewers();
    await loadLogs();
    $('panels').hidden = false;
    $('token-form').hidden = true;
    $('error').hidden = true;
    document.body.dataset.loaded = '1';
  } catch (e) {
    showError(e);
  }
}

async function post(path, body) {
  try {
    const r = await api(path, body);
    showResult(r);
    $('error').hidden = true;
    edited = false;
    await refresh();
    return r;
  } catch (e) {
    showError(e);
    return null;
  }
}

for (const f of ['stream-form', 'record-form', 'motion-form']) {
  $(f).addEventListener('input', () => { edited = true; });
}

$('stream-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  post('/api/manage/settings', { bitrate: $('bitrate').value.trim(), fps: Number($('fps').value) });
});

$('record-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const body = { record_mode: $('record-mode').value };
  for (const k of ['pre-roll', 'post-roll', 'segment', 'max-age', 'max-size', 'min-free']) {
    const v = $('record-' + k).value.trim();
    if (v) body['record_' + k.replace('-', '_')] = v;
  }
  post('/api/manage/settings', body);
});

$('motion-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const on = $('motion').checked;
  // Tuning without detection is refused: send it only with detection on.
  const body = { motion: on, motion_sensitivity: 0, motion_mask: '', motion_min_duration: '0s', motion_hold: '0s', motion_fps: 0 };
  if (on) {
    body.motion_sensitivity = Number($('motion-sensitivity').value) || 0;
    body.motion_mask = $('motion-mask').value.trim();
    body.motion_min_duration = $('motion-min-duration').value.trim() || '0s';
    body.motion_hold = $('motion-hold').value.trim() || '0s';
    body.motion_fps = Number($('motion-fps').value) || 0;
  }
  post('/api/manage/settings', body);
});

$('record-start').addEventListener('click', async () => {
  const st = await post('/api/manage/record', { action: 'start' });
  if (st) $('record-state').textContent = st.recording ? 'recording' : 'not recording';
});
$('record-stop').addEventListener('click', async () => {
  const st = await post('/api/manage/record', { action: 'stop' });
  if (st) $('record-state').textContent = st.recording ? 'recording' : 'not recording';
});
$('reload').addEventListener('click', () => post('/api/manage/reload', {}));

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  storeToken(t);
  token = t;
  $('token').value = '';
  refresh();
});

// A new #token=… on the open page (only the fragment changed: no load).
window.addEventListener('hashchange', () => {
  const t = takeToken();
  if (t && t !== token) {
    token = t;
    refresh();
  }
});

refresh();
setInterval(() => { if (!document.hidden && !$('panels').hidden) refresh(); }, 3000);
