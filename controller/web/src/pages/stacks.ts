// Stacks: the flame graph of a stack probe (profile, offcputime, wakeuptime, memleak, pgfault),
// drawn on a canvas from GET /api/v1/flamegraph?format=json (see flame.ts for why), with zoom,
// search, and a differential mode against the window before.
import { ApiError, getJson, openLive, type Device, type ProbeInfo } from '../api.js';
import { h, setLiveState, showError, type Page } from '../dom.js';
import { FlameGraph, type FlameNode } from '../flame.js';

interface FlameAnswer { probe: string; unit: string; total: number; records: number; devices: string; tree: FlameNode;
  baseline?: { total: number; records: number; vanishedValue: number } }

const WINDOWS = ['1m', '5m', '15m', '1h', '6h', '24h'];
const ms = (w: string) => Number(w.slice(0, -1)) * (w.endsWith('h') ? 3_600_000 : 60_000);

export const stacksPage: Page = (root, _args, query) => {
  const probeSel = h('select', { id: 'stacks-probe' });
  const deviceSel = h('select', { id: 'stacks-device' }, h('option', { value: '' }, 'all devices'));
  const windowSel = h('select', { id: 'stacks-window' }, ...WINDOWS.map((w) => h('option', { value: w }, `last ${w}`)));
  windowSel.value = query.get('since') ?? '5m';
  const perProcess = h('input', { type: 'checkbox', id: 'stacks-perprocess' });
  const diff = h('input', { type: 'checkbox', id: 'stacks-diff' });
  const search = h('input', { type: 'search', id: 'stacks-search', placeholder: 'search frames' });
  const reset = h('button', { id: 'stacks-reset' }, 'Reset zoom');
  const refresh = h('button', { id: 'stacks-refresh' }, 'Refresh');
  const status = h('p', { class: 'muted', id: 'stacks-status' });
  const holder = h('div', { id: 'flame-holder' });
  root.append(h('h1', {}, 'Stacks'),
    h('div', { class: 'toolbar' }, 'Probe', probeSel, 'Device', deviceSel, windowSel, h('label', {}, perProcess, ' per process'),
      h('label', { title: 'compare with the window of the same length before: red grew, blue shrank' }, diff, ' differential'), refresh),
    h('div', { class: 'toolbar' }, search, reset, h('span', { id: 'stacks-match', class: 'muted' })), status, holder);
  let graph: FlameGraph | undefined;
  let closed = false;
  let loading = false;

  async function load(): Promise<void> {
    if (!probeSel.value || loading) return;
    loading = true;
    const w = windowSel.value;
    const q = new URLSearchParams({ probe: probeSel.value, format: 'json', since: w });
    if (deviceSel.value) q.set('device', deviceSel.value);
    if (perProcess.checked) q.set('perProcess', '1');
    if (diff.checked) { q.set('diffSince', `${ms(w) * 2 / 60_000}m`); }
    status.textContent = 'loading…';
    try {
      const a = await getJson<FlameAnswer>(`/api/v1/flamegraph?${q.toString()}`);
      if (closed) return;
      holder.replaceChildren();
      if (a.records === 0) { status.textContent = `No ${a.probe} records in the last ${w} on ${a.devices}: deploy the probe (Deploy page) and give it a moment.`; graph = undefined; return; }
      status.textContent = `${a.probe} on ${a.devices}, last ${w}: ${a.total.toLocaleString()} ${a.unit} in ${a.records} records` +
        (a.baseline ? `; against the ${w} before: ${a.baseline.total.toLocaleString()} ${a.unit}` : '') + '. Click a frame to zoom, the bottom frame to zoom out.';
      graph = new FlameGraph(a.tree, { unit: a.unit, ...(a.baseline ? { baselineTotal: a.baseline.total } : {}) });
      holder.append(graph.info, graph.canvas);
      graph.draw();
      if (search.value) doSearch();
    } catch (e) {
      status.textContent = '';
      holder.replaceChildren();
      showError(holder, e instanceof ApiError ? e.message : e);
    } finally {
      loading = false;
    }
  }

  const doSearch = () => {
    if (!graph) return;
    const r = graph.setSearch(search.value.trim());
    root.querySelector('#stacks-match')!.textContent = search.value.trim() ? `${r.matches} frames match, ${(r.share * 100).toFixed(1)}% of the total` : '';
  };
  search.addEventListener('input', doSearch);
  reset.addEventListener('click', () => graph?.zoomTo(undefined));
  document.addEventListener('keydown', onKey);
  function onKey(e: KeyboardEvent) { if (e.key === 'Escape') graph?.zoomTo(undefined); }
  for (const el of [probeSel, deviceSel, windowSel, perProcess, diff]) el.addEventListener('change', () => void load());
  refresh.addEventListener('click', () => void load());
  const onResize = () => graph?.draw();
  window.addEventListener('resize', onResize);

  // New records of the shown probe redraw the graph, at most every 10 s (a layout costs more than an update).
  let lastLoad = 0;
  const stop = openLive({}, { state: setLiveState, update: (u) => {
    if (Object.keys(u.stored).some((s) => s.split('/')[1] === probeSel.value) && Date.now() - lastLoad > 10_000 && !search.value && !graph?.zoomed) {
      lastLoad = Date.now();
      void load();
    }
  } });

  Promise.all([getJson<{ probes: ProbeInfo[] }>('/api/v1/probes'), getJson<{ devices: Device[] }>('/api/v1/devices')]).then(([{ probes }, { devices }]) => {
    const stackProbes = probes.filter((p) => p.fields.some((f) => f.name === 'stack'));
    probeSel.replaceChildren(...stackProbes.map((p) => h('option', { value: p.probe }, p.probe)));
    probeSel.value = query.get('probe') ?? (stackProbes.some((p) => p.probe === 'profile') ? 'profile' : stackProbes[0]?.probe ?? '');
    for (const d of devices) deviceSel.append(h('option', { value: d.name }, d.name));
    if (query.get('device')) deviceSel.value = query.get('device')!;
    lastLoad = Date.now();
    return load();
  }).catch((e: unknown) => showError(root, e));
  return () => { closed = true; stop(); document.removeEventListener('keydown', onKey); window.removeEventListener('resize', onResize); };
};
