// Device: facts, running probes (stop button), system metrics from heartbeats (CPU, memory, load,
// network) appended live, and the probe errors and refused batches of this device.
import { getJson, openLive, postJson, type Device, type Heartbeat, type Run } from '../api.js';
import { TimeChart } from '../charts.js';
import { badge, errorText, fmtAgo, fmtBytes, h, setLiveState, showError, type Page } from '../dom.js';

interface Rejection { deviceId: string; streamId: string; code: string; batches: number; records: number; lastError: string; lastAtMs: number }

export const devicePage: Page = (root, args) => {
  const id = args[0] ?? '';
  const head = h('div');
  const runsBox = h('div', { id: 'device-runs' });
  const charts = h('div', { class: 'charts', id: 'device-charts' });
  const errors = h('div', { id: 'device-errors' });
  root.append(head, h('h2', {}, 'Probes'), runsBox, h('h2', {}, 'System metrics'), charts, h('h2', {}, 'Recent probe errors'), errors);
  const pct = (v: number) => `${v.toFixed(0)}%`;
  const cpu = new TimeChart('CPU busy', ['cpu'], { fmt: pct, yRange: [0, 100] });
  const mem = new TimeChart('Memory used', ['used'], { fmt: fmtBytes });
  const load = new TimeChart('Load average', ['1m', '5m', '15m']);
  const net = new TimeChart('Network (non-loopback)', ['rx/s', 'tx/s'], { fmt: (v) => `${fmtBytes(v)}/s` });
  const all = [cpu, mem, load, net];
  charts.append(...all.map((c) => c.el));
  all.forEach((c) => c.mount());
  let prevNet: { t: number; rx: number; tx: number } | undefined;
  let closed = false;
  let devId = id;

  const addPoint = (tMs: number, hb: { cpuBusy: number; load1: number; load5: number; load15: number; memAvailableBytes: number; memTotalBytes: number; netRxBytes: number; netTxBytes: number }) => {
    const t = tMs / 1000;
    cpu.push(t, [hb.cpuBusy * 100]);
    mem.push(t, [hb.memTotalBytes - hb.memAvailableBytes]);
    load.push(t, [hb.load1, hb.load5, hb.load15]);
    if (prevNet && t > prevNet.t) net.push(t, [Math.max(0, (hb.netRxBytes - prevNet.rx) / (t - prevNet.t)), Math.max(0, (hb.netTxBytes - prevNet.tx) / (t - prevNet.t))]);
    prevNet = { t, rx: hb.netRxBytes, tx: hb.netTxBytes };
  };

  async function loadRuns(): Promise<void> {
    const { runs } = await getJson<{ runs: Run[] }>(`/api/v1/runs?device=${encodeURIComponent(devId)}`);
    const live = runs.filter((r) => r.state === 'running' || r.state === 'starting');
    const failed = runs.filter((r) => r.state === 'failed' || r.state === 'crashed').sort((a, b) => b.updatedAtMs - a.updatedAtMs).slice(0, 20);
    runsBox.replaceChildren(live.length === 0 ? h('p', { class: 'muted' }, 'No probe running.') : h('table', {},
      h('thead', {}, h('tr', {}, ...['Probe', 'Run', 'State', 'Args', 'Since', 'Restarts', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...live.map((r) => {
        const stop = h('button', {}, 'Stop');
        stop.addEventListener('click', () => {
          stop.disabled = true;
          postJson<{ ok: boolean; error?: string }>('/api/v1/stop', { runId: r.runId })
            .then((x) => { if (!x.ok) alert(x.error); void loadRuns(); }).catch((e: unknown) => alert(errorText(e)));
        });
        return h('tr', { 'data-probe': r.probe },
          h('td', {}, h('a', { href: `#/probe/${encodeURIComponent(r.probe)}?device=${encodeURIComponent(devId)}` }, r.probe)),
          h('td', {}, r.runId), h('td', {}, h('span', { class: `state ${r.state}` }, r.state)), h('td', {}, r.args.join(' ')),
          h('td', {}, fmtAgo(r.createdAtMs)), h('td', { class: 'num' }, String(r.restarts)), h('td', {}, stop));
      }))));
    const { rejections } = await getJson<{ rejections: Rejection[] }>(`/api/v1/stats?device=${encodeURIComponent(devId)}`);
    const rej = rejections.filter((x) => x.deviceId === devId);
    errors.replaceChildren(failed.length + rej.length === 0 ? h('p', { class: 'muted' }, 'None.') : h('table', {},
      h('thead', {}, h('tr', {}, ...['When', 'Probe / stream', 'What', 'Reason'].map((c) => h('th', {}, c)))),
      h('tbody', {},
        ...failed.map((r) => h('tr', {}, h('td', {}, fmtAgo(r.updatedAtMs)), h('td', {}, r.probe), h('td', {}, h('span', { class: `state ${r.state}` }, r.state)),
          h('td', { class: 'error' }, r.reason || `exit ${r.exitCode ?? '?'}`))),
        ...rej.map((x) => h('tr', {}, h('td', {}, fmtAgo(x.lastAtMs)), h('td', {}, x.streamId), h('td', {}, `${x.batches} batches refused (${x.code})`),
          h('td', { class: 'error' }, x.lastError))))));
  }

  async function loadAll(): Promise<void> {
    const { devices } = await getJson<{ devices: Device[] }>('/api/v1/devices');
    const d = devices.find((x) => x.id === id || x.name === id);
    if (!d) { head.replaceChildren(h('p', { class: 'error' }, `No device ${id}.`)); return; }
    devId = d.id;
    const caps = d.facts.caps;
    head.replaceChildren(h('h1', {}, d.name, ' ', h('span', { class: `state ${d.online ? 'online' : 'offline'}` }, d.online ? 'online' : 'offline')),
      h('p', {}, `${d.facts.board ?? '?'} · ${d.facts.arch ?? '?'} · Linux ${d.facts.kernelRelease ?? '?'} · ${d.facts.cpus ?? '?'} CPUs · `,
        `${fmtBytes(Number(d.facts.memoryBytes ?? 0))} · `, badge('BTF', caps?.btf), badge('kprobes', caps?.kprobes), badge('JIT', caps?.jit),
        badge('tracepoints', caps?.tracepoints), ` · ${Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(' ')} · id ${d.id}`));
    const { heartbeats } = await getJson<{ heartbeats: Heartbeat[] }>(`/web/heartbeats?device=${encodeURIComponent(d.id)}&limit=720`);
    if (closed) return;
    prevNet = undefined;
    for (const hb of heartbeats) {
      addPoint(Number(BigInt(hb.timeUnixNs) / 1_000_000n), { cpuBusy: hb.cpuBusy, load1: hb.load1, load5: hb.load5, load15: hb.load15,
        memAvailableBytes: Number(hb.memAvailableBytes), memTotalBytes: Number(hb.memTotalBytes), netRxBytes: Number(hb.netRxBytes), netTxBytes: Number(hb.netTxBytes) });
    }
    await loadRuns();
  }

  const stop = openLive({}, {
    state: setLiveState,
    update: (u) => {
      const hb = u.heartbeats[devId];
      if (hb) addPoint(hb.t, hb);
      if (u.status.some((s) => s.deviceId === devId)) void loadRuns();
    },
  });
  loadAll().catch((e: unknown) => showError(root, e));
  return () => { closed = true; stop(); all.forEach((c) => c.destroy()); };
};
