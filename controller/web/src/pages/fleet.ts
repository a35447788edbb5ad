// Fleet: every device with its board, arch, kernel, transport, online state, last seen,
// capability badges, agent version, spool depth and loss counters, kept current by the live feed.
import { getJson, openLive, type Device, type Heartbeat, type LiveUpdate } from '../api.js';
import { badge, fmtAgo, fmtBytes, h, setLiveState, showError, type Page } from '../dom.js';

interface SessionRow { deviceId: string; agentVersion: string; transport: string; connectedAtMs: number; installed: { name: string }[] }
interface StatsRow { deviceId: string; streamId: string; probe: string; storedRecords: number; lost: Record<string, string> }

interface Row {
  dev: Device;
  tr: HTMLTableRowElement;
  cells: Record<string, HTMLTableCellElement>;
  online: boolean;
  lastSeenMs: number;
  stored: number;
}

export const fleetPage: Page = (root) => {
  const summary = h('div', { class: 'summary' });
  const filter = h('input', { type: 'search', placeholder: 'filter: name, board, label…', id: 'fleet-filter' });
  const tbody = h('tbody');
  const cols = ['Device', 'Board', 'Arch', 'Kernel', 'Transport', 'State', 'Last seen', 'Capabilities', 'Agent', 'Spool', 'Stored', 'Lost', 'Labels'];
  const table = h('table', { id: 'fleet-table' }, h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', {}, c)))), tbody);
  root.append(h('h1', {}, 'Fleet'), summary, h('div', { class: 'toolbar' }, filter), h('div', { class: 'scroll', style: 'max-height: 75vh' }, table));
  const rows = new Map<string, Row>();
  let closed = false;

  const renderSummary = () => {
    let online = 0;
    for (const r of rows.values()) if (r.online) online++;
    summary.replaceChildren(
      h('div', {}, h('b', { id: 'devices-total' }, rows.size), 'devices'),
      h('div', {}, h('b', { id: 'devices-online' }, online), 'online'),
      h('div', {}, h('b', {}, rows.size - online), 'offline'));
  };

  const setOnline = (r: Row, online: boolean) => {
    r.online = online;
    r.tr.classList.toggle('offline', !online);
    r.cells['state']!.replaceChildren(h('span', { class: `state ${online ? 'online' : 'offline'}` }, online ? 'online' : 'offline'));
  };

  const applyFilter = () => {
    const q = filter.value.trim().toLowerCase();
    for (const r of rows.values()) {
      const text = `${r.dev.name} ${r.dev.facts.board ?? ''} ${r.dev.facts.arch ?? ''} ${Object.entries(r.dev.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`.toLowerCase();
      r.tr.hidden = q !== '' && !text.includes(q);
    }
  };
  filter.addEventListener('input', applyFilter);

  async function load(): Promise<void> {
    const [{ devices }, { sessions }, { latest }, { streams }] = await Promise.all([
      getJson<{ devices: Device[] }>('/api/v1/devices'),
      getJson<{ sessions: SessionRow[] }>('/web/sessions'),
      getJson<{ latest: Record<string, Heartbeat> }>('/web/heartbeats'),
      getJson<{ streams: StatsRow[] }>('/api/v1/stats'),
    ]);
    if (closed) return;
    const sess = new Map(sessions.map((s) => [s.deviceId, s]));
    const lost = new Map<string, { total: number; parts: string[] }>();
    const stored = new Map<string, number>();
    for (const s of streams) {
      stored.set(s.deviceId, (stored.get(s.deviceId) ?? 0) + s.storedRecords);
      const l = lost.get(s.deviceId) ?? { total: 0, parts: [] };
      for (const [k, v] of Object.entries(s.lost)) {
        const n = Number(v);
        if (n > 0) { l.total += n; l.parts.push(`${s.probe} ${k}: ${n}`); }
      }
      lost.set(s.deviceId, l);
    }
    rows.clear();
    const frag = document.createDocumentFragment();
    for (const d of devices.sort((a, b) => a.name.localeCompare(b.name))) {
      const caps = d.facts.caps;
      const cells: Record<string, HTMLTableCellElement> = {};
      const cell = (k: string, ...c: (Node | string)[]) => (cells[k] = h('td', { class: ['spool', 'stored', 'lost'].includes(k) ? 'num' : '' }, ...c));
      const s = sess.get(d.id);
      const hb = latest[d.id];
      const l = lost.get(d.id);
      const tr = h('tr', { 'data-device': d.name },
        cell('name', h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, d.name)),
        cell('board', d.facts.board ?? '-'), cell('arch', d.facts.arch ?? '-'), cell('kernel', d.facts.kernelRelease ?? '-'),
        cell('transport', s?.transport ?? d.transport ?? '-'), cell('state'), cell('seen', fmtAgo(d.lastSeenMs)),
        cell('caps', badge('BTF', caps?.btf), badge('kprobes', caps?.kprobes), badge('JIT', caps?.jit)),
        cell('agent', s?.agentVersion ?? '-'),
        cell('spool', hb ? fmtBytes(Number(hb.spoolBytes)) : '-'),
        cell('stored', String(stored.get(d.id) ?? 0)),
        cell('lost', String(l?.total ?? 0)),
        cell('labels', Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(' ')));
      if (l && l.total > 0) { cells['lost']!.title = l.parts.join('\n'); cells['lost']!.classList.add('error'); }
      const r: Row = { dev: d, tr, cells, online: d.online, lastSeenMs: hb?.receivedAtMs ?? d.lastSeenMs, stored: stored.get(d.id) ?? 0 };
      setOnline(r, d.online);
      rows.set(d.id, r);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
    applyFilter();
    renderSummary();
    root.dataset['loaded'] = '1';
    performance.mark('fleet-rendered');
  }

  // New devices while many enroll: one reload every 2 s at most, not one per update.
  let reloadTimer: ReturnType<typeof setTimeout> | undefined;
  const reloadSoon = () => { reloadTimer ??= setTimeout(() => { reloadTimer = undefined; if (!closed) load().catch((e: unknown) => showError(root, e)); }, 2000); };

  const onUpdate = (u: LiveUpdate) => {
    let unknown = false;
    for (const o of u.online) {
      const r = rows.get(o.deviceId);
      if (!r) { unknown = true; continue; }
      setOnline(r, true);
      r.cells['agent']!.textContent = o.agentVersion;
      r.cells['transport']!.textContent = o.transport;
    }
    for (const o of u.offline) { const r = rows.get(o.deviceId); if (r) { setOnline(r, false); r.cells['state']!.title = o.reason; } }
    for (const [id, hb] of Object.entries(u.heartbeats)) {
      const r = rows.get(id);
      if (!r) continue;
      r.lastSeenMs = u.t;
      r.cells['spool']!.textContent = fmtBytes(hb.spoolBytes);
    }
    for (const [stream, n] of Object.entries(u.stored)) {
      const r = rows.get(stream.split('/')[0]!);
      if (r) { r.stored += n; r.cells['stored']!.textContent = String(r.stored); }
    }
    if (u.online.length || u.offline.length) renderSummary();
    if (unknown) reloadSoon(); // a device enrolled after the page loaded
  };

  // "Last seen" ticks without any traffic: one pass every 5 s over the visible rows.
  const ticker = setInterval(() => { const now = Date.now(); for (const r of rows.values()) if (!r.tr.hidden) r.cells['seen']!.textContent = fmtAgo(r.lastSeenMs, now); }, 5000);
  const stop = openLive({}, { update: onUpdate, resync: reloadSoon, state: setLiveState });
  load().catch((e: unknown) => showError(root, e));
  return () => { closed = true; clearInterval(ticker); if (reloadTimer) clearTimeout(reloadTimer); stop(); };
};
