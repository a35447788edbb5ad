// Probe view: the probe's events as they are stored (pushed over SSE, no reload), in the
// manifest's columns, with a device filter and a text filter; and a chart of any numeric field
// over time, one line per connection / process (e.g. tcpwin snd_cwnd and srtt_us per socket,
// tcpbytes sent_bytes per comm).
import { getJson, openLive, type Device, type EventRow, type ProbeInfo } from '../api.js';
import { TimeChart } from '../charts.js';
import { h, setLiveState, showError, type Page } from '../dom.js';

const NUMERIC = /^(u|s|i)(8|16|32|64)$/;
const NOT_A_MEASURE = new Set(['hex', 'ktime_ns', 'family', 'tcp_state', 'errno', 'ip_proto']);
const KEEP = 5000;
const SHOW = 300;
const MAX_SERIES = 6;

/** Fields that make sense as the key of a line: the socket, then the process. */
function groupKeys(fields: ProbeInfo['fields']): string[] {
  const names = fields.map((f) => f.name);
  const keys: string[] = [];
  if (names.includes('skaddr')) keys.push('connection');
  for (const k of ['comm', 'pid', 'daddr', 'rport', 'lport']) if (names.includes(k)) keys.push(k);
  return [...keys, '(none)'];
}

function keyOf(ev: EventRow, key: string): string {
  const f = ev.fields;
  if (key === '(none)') return 'all';
  if (key === 'connection') {
    const a = f['saddr'], b = f['daddr'];
    return a !== undefined ? `${String(a)}:${String(f['lport'])} → ${String(b)}:${String(f['rport'])}` : String(f['skaddr']);
  }
  return String(f[key]);
}

export const probePage: Page = (root, args, query) => {
  const name = args[0];
  if (!name) {
    getJson<{ probes: ProbeInfo[] }>('/api/v1/probes').then(({ probes }) => {
      root.append(h('h1', {}, 'Probes'), h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Probe'), h('th', {}, 'Kind'), h('th', {}, 'Version'), h('th', {}, 'Built for'), h('th', {}, 'What'))),
        h('tbody', {}, ...probes.map((p) => h('tr', {}, h('td', {}, h('a', { href: `#/probe/${encodeURIComponent(p.probe)}` }, p.probe)), h('td', {}, p.kind),
          h('td', {}, p.version), h('td', {}, p.builds.map((b) => b.arch).join(', ')), h('td', { style: 'white-space: normal' }, p.summary))))));
    }).catch((e: unknown) => showError(root, e));
    return;
  }
  const device = query.get('device') ?? '';
  let events: EventRow[] = [];
  const seen = new Set<string>();
  let info: ProbeInfo | undefined;
  let chart: TimeChart | undefined;
  let stop: (() => void) | undefined;
  let closed = false;
  let received = 0;
  let skipped = 0;

  const deviceSel = h('select', { id: 'probe-device' }, h('option', { value: '' }, 'all devices'));
  const text = h('input', { type: 'search', id: 'probe-filter', placeholder: 'filter rows (field=value or text)' });
  const fieldSel = h('select', { id: 'chart-field' });
  const groupSel = h('select', { id: 'chart-group' });
  const count = h('span', { class: 'muted', id: 'probe-count' });
  const thead = h('thead');
  const tbody = h('tbody');
  const chartBox = h('div', { class: 'charts' });
  root.append(h('h1', {}, name), h('p', { class: 'muted', id: 'probe-summary' }),
    h('div', { class: 'toolbar' }, 'Device', deviceSel, text, count),
    h('div', { class: 'toolbar' }, 'Chart', fieldSel, 'per', groupSel), chartBox,
    h('h2', {}, 'Events (newest first)'), h('div', { class: 'scroll' }, h('table', { id: 'probe-table' }, thead, tbody)));

  let columns: string[] = [];
  const matches = (ev: EventRow): boolean => {
    const q = text.value.trim();
    if (!q) return true;
    const eq = /^([\w.]+)\s*=\s*(.*)$/.exec(q);
    if (eq) return String(ev.fields[eq[1]!] ?? (ev as unknown as Record<string, unknown>)[eq[1]!]) === eq[2];
    return Object.values(ev.fields).some((v) => String(v).toLowerCase().includes(q.toLowerCase()));
  };
  const rowOf = (ev: EventRow, fresh: boolean) => h('tr', { class: fresh ? 'new' : '' }, h('td', {}, ev.time.slice(11, 23)),
    h('td', {}, ev.deviceId.slice(0, 8)), ...columns.map((c) => h('td', {}, String(ev.fields[c] ?? ''))));

  const renderTable = () => {
    const shown = events.filter(matches).slice(-SHOW).reverse();
    tbody.replaceChildren(...shown.map((ev) => rowOf(ev, false)));
    count.textContent = `${received} received, ${events.length} kept, ${shown.length} shown`;
  };

  let chartShape = '';
  const renderChart = () => {
    const field = fieldSel.value, key = groupSel.value;
    if (!field) { chart?.destroy(); chart = undefined; chartBox.replaceChildren(); return; }
    const rows = events.filter(matches).filter((e) => e.fields[field] !== undefined);
    const byKey = new Map<string, EventRow[]>();
    for (const e of rows) { const k = keyOf(e, key); (byKey.get(k) ?? byKey.set(k, []).get(k)!).push(e); }
    const top = [...byKey.entries()].sort((a, b) => b[1].length - a[1].length).slice(0, MAX_SERIES);
    const xs = [...new Set(top.flatMap(([, es]) => es.map((e) => Number(BigInt(e.timeUnixNs) / 1000n) / 1e6)))].sort((a, b) => a - b);
    const idx = new Map(xs.map((x, i) => [x, i]));
    const ys = top.map(([, es]) => { const col: (number | null)[] = xs.map(() => null); for (const e of es) col[idx.get(Number(BigInt(e.timeUnixNs) / 1000n) / 1e6)!] = Number(e.fields[field]); return col; });
    const title = `${field}${top.length < byKey.size ? ` (top ${MAX_SERIES} of ${byKey.size})` : ''}`;
    const shape = JSON.stringify([title, top.map(([k]) => k)]);
    if (!chart || shape !== chartShape) {
      // New series: a new plot. Otherwise only new data (a redraw, no layout).
      chart?.destroy();
      chart = new TimeChart(title, top.map(([k]) => k), { width: Math.min(1100, root.clientWidth - 20), height: 240 });
      chartBox.replaceChildren(chart.el);
      chart.mount();
      chartShape = shape;
    }
    chart.set(xs, ys);
    chartBox.dataset['points'] = String(xs.length);
  };
  let chartPending = false;
  const scheduleChart = () => {
    if (chartPending) return;
    chartPending = true;
    setTimeout(() => { chartPending = false; if (!closed) renderChart(); }, 1000); // at most one re-layout a second
  };

  const addRows = (rows: EventRow[]) => {
    const fresh: EventRow[] = [];
    for (const ev of rows) {
      const k = `${ev.streamId}#${ev.seq}`;
      if (seen.has(k)) continue;
      seen.add(k);
      fresh.push(ev);
    }
    received += fresh.length;
    events.push(...fresh);
    if (events.length > KEEP) {
      for (const ev of events.splice(0, events.length - KEEP)) seen.delete(`${ev.streamId}#${ev.seq}`);
    }
    const shown = fresh.filter(matches).slice(-SHOW).reverse();
    tbody.prepend(...shown.map((ev) => rowOf(ev, true)));
    while (tbody.rows.length > SHOW) tbody.lastElementChild!.remove();
    count.textContent = `${received} received${skipped ? ` (${skipped} more skipped: too many to show)` : ''}, ${events.length} kept, ${tbody.rows.length} shown`;
    if (fresh.length) scheduleChart();
  };

  const connect = () => {
    stop?.();
    events = [];
    seen.clear();
    received = 0;
    skipped = 0;
    tbody.replaceChildren();
    // The last 10 minutes first, then what is stored from now on (one stream, no gap between).
    const since = String((BigInt(Date.now()) - 600_000n) * 1_000_000n);
    stop = openLive({ probe: name, since, ...(deviceSel.value ? { device: deviceSel.value } : {}) },
      { state: setLiveState, rows: (r) => { skipped += r.skipped; addRows(r.rows); }, resync: connect });
  };

  async function init(): Promise<void> {
    const [{ probes }, { devices }] = await Promise.all([getJson<{ probes: ProbeInfo[] }>('/api/v1/probes'), getJson<{ devices: Device[] }>('/api/v1/devices')]);
    if (closed) return;
    info = probes.find((p) => p.probe === name);
    if (!info) { showError(root, `no probe ${name} built (see #/probe)`); return; }
    root.querySelector('#probe-summary')!.textContent = `${info.kind} probe ${info.version}: ${info.summary}`;
    columns = info.fields.map((f) => f.name).filter((n) => n !== 'ts_ns' && n !== 'stack');
    thead.replaceChildren(h('tr', {}, h('th', {}, 'time'), h('th', {}, 'device'), ...columns.map((c) => {
      const f = info!.fields.find((x) => x.name === c)!;
      return h('th', { title: f.description ?? '' }, f.unit ? `${c} (${f.unit})` : c);
    })));
    for (const d of devices) deviceSel.append(h('option', { value: d.id }, d.name));
    const dev = devices.find((d) => d.id === device || d.name === device);
    if (dev) deviceSel.value = dev.id;
    const numeric = info.fields.filter((f) => NUMERIC.test(f.type) && !NOT_A_MEASURE.has(f.format ?? '') && !['pid', 'lport', 'rport', 'family'].includes(f.name));
    fieldSel.replaceChildren(...numeric.map((f) => h('option', { value: f.name }, f.name)));
    const preferred = ['snd_cwnd', 'srtt_us', 'sent_bytes', 'delta_us', 'value'].find((n) => numeric.some((f) => f.name === n));
    if (preferred) fieldSel.value = preferred;
    groupSel.replaceChildren(...groupKeys(info.fields).map((k) => h('option', { value: k }, k)));
    connect();
  }

  deviceSel.addEventListener('change', connect);
  text.addEventListener('input', () => { renderTable(); renderChart(); });
  fieldSel.addEventListener('change', renderChart);
  groupSel.addEventListener('change', renderChart);
  init().catch((e: unknown) => showError(root, e));
  return () => { closed = true; stop?.(); chart?.destroy(); };
};
