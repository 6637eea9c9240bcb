// The hub's admin page (/admin, docs/manage.md): devices online and enrolled, enrolling and
// removing devices, minting viewer tokens (with a QR code of the link that carries one),
// revoking tokens and the audit log. The admin credential is kept in this tab's
// sessionStorage and sent only in the Authorization header.
const KEY = 'p2pcast.admin';
const $ = (id) => document.getElementById(id);
let cred = null;
try { cred = sessionStorage.getItem(KEY); } catch { /* none kept */ }

class Refused extends Error {}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: 'Bearer ' + (cred || '') }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401 || res.status === 403 || res.status === 429) throw new Refused(await res.text());
  const type = res.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await res.json() : { error: await res.text() };
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function fail(e) {
  if (e instanceof Refused) {
    try { sessionStorage.removeItem(KEY); } catch { /* none kept */ }
    cred = null;
    $('panels').hidden = true;
    $('cred-form').hidden = false;
  }
  $('error').textContent = e.message;
  $('error').hidden = false;
}

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  tr.append(td);
  return td;
}

async function loadDevices() {
  const { devices } = await api('GET', '/api/admin/devices');
  const rows = devices.map((d) => {
    const tr = document.createElement('tr');
    cell(tr, d.id);
    cell(tr, d.online ? 'online' : 'offline');
    cell(tr, String(d.sessions));
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Remove';
    b.addEventListener('click', async () => {
      if (!confirm('Remove ' + d.id + '? Its key stops working.')) return;
      try { await api('DELETE', '/api/admin/devices/' + encodeURIComponent(d.id)); await refresh(); } catch (e) { fail(e); }
    });
    cell(tr, '').append(b);
    return tr;
  });
  $('devices').tBodies[0].replaceChildren(...rows);
}

async function loadAudit() {
  const p = new URLSearchParams({ n: '200' });
  for (const k of ['event', 'device', 'q']) {
    const v = $('audit-' + k).value.trim();
    if (v) p.set(k, v);
  }
  const { entries } = await api('GET', '/api/admin/audit?' + p);
  $('audit').textContent = entries.map((e) => JSON.stringify(e)).join('\n');
}

async function refresh() {
  try {
    await loadDevices();
    await loadAudit();
    $('panels').hidden = false;
    $('cred-form').hidden = true;
    $('error').hidden = true;
    document.body.dataset.loaded = '1';
  } catch (e) {
    fail(e);
  }
}

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

$('enroll-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const r = await api('POST', '/api/admin/devices', { id: $('enroll-id').value.trim() });
    $('enrolled').textContent = 'Device ' + r.id + ' enrolled. Its key (shown once; give it to the device as --key-file): ' + r.key;
    $('enroll-id').value = '';
    await refresh();
  } catch (e) { fail(e); }
});

$('mint-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const r = await api('POST', '/api/admin/tokens', {
      devices: list($('mint-devices').value), grants: list($('mint-grants').value),
      ttl: $('mint-ttl').value.trim(), subject: $('mint-subject').value.trim(),
      // A phone cannot reach this machine's loopback: then the hub's own URL (--url).
      link: /^(localhost|127\.|\[::1\])/.test(location.hostname) ? '' : location.origin + '/',
    });
    $('minted-id').textContent = r.id;
    $('minted-expires').textContent = new Date(r.expires).toLocaleString();
    $('minted-token').value = r.token;
    $('minted-link').href = r.link;
    $('minted-qr').src = r.qr;
    $('minted').hidden = false;
    await refresh();
  } catch (e) { fail(e); }
});

$('revoke-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const r = await api('POST', '/api/admin/tokens/revoke', { id: $('revoke-id').value.trim() });
    $('revoked').textContent = 'Revoked ' + r.revoked + '.';
    $('revoke-id').value = '';
    await refresh();
  } catch (e) { fail(e); }
});

$('audit-form').addEventListener('submit', (ev) => { ev.preventDefault(); refresh(); });

$('cred-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const c = $('cred').value.trim();
  if (!c) return;
  cred = c;
  try { sessionStorage.setItem(KEY, c); } catch { /* memory only */ }
  $('cred').value = '';
  refresh();
});

if (cred) refresh(); else $('cred-form').hidden = false;
setInterval(() => { if (cred && !document.hidden && !$('panels').hidden) loadDevices().catch(fail); }, 5000);
