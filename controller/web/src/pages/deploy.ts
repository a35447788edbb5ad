// Deploy and smoke: choose a probe and a selector, deploy (and start) it with per-device progress
// as the devices answer; and the smoke matrix (device x probe: pass / fail / unsupported).
import { ApiError, getJson, postJsonLines, type Device, type ProbeInfo } from '../api.js';
import { errorText, fmtAgo, h, type Page } from '../dom.js';

interface SmokeRow { deviceId: string; deviceName: string; probe: string; outcome: 'pass' | 'fail' | 'unsupported'; reason: string;
  timeToFirstEventMs: number | null; createdAtMs: number }

export const deployPage: Page = (root) => {
  const probeSel = h('select', { id: 'deploy-probe' });
  const selector = h('input', { id: 'deploy-selector', placeholder: 'selector: lab=3,board=dayu200 / device name / all', size: '40' });
  const argsIn = h('input', { id: 'deploy-args', placeholder: 'loader args, e.g. --rport 443', size: '30' });
  const go = h('button', { id: 'deploy-go' }, 'Deploy and start');
  const progress = h('div', { id: 'deploy-progress' });
  const smoke = h('div', { id: 'smoke-matrix' });
  const smokeGo = h('button', { id: 'smoke-go' }, 'Run smoke test on the selector');
  const labels = h('datalist', { id: 'deploy-labels' });
  selector.setAttribute('list', 'deploy-labels');
  root.append(h('h1', {}, 'Deploy'), h('div', { class: 'toolbar' }, 'Probe', probeSel, 'to', selector, labels, argsIn, go), progress,
    h('h1', {}, 'Smoke tests'), h('div', { class: 'toolbar' }, smokeGo), smoke);
  let closed = false;

  go.addEventListener('click', () => {
    const sel = selector.value.trim();
    if (!sel) { progress.replaceChildren(h('p', { class: 'error' }, 'Give a selector (a label such as lab=3, a device name, or all).')); return; }
    const args = argsIn.value.trim() ? argsIn.value.trim().split(/\s+/) : [];
    const rows = new Map<string, { deploy: HTMLElement; start: HTMLElement; note: HTMLElement }>();
    const tbody = h('tbody');
    const done = h('p', { id: 'deploy-done' });
    progress.replaceChildren(h('table', { id: 'deploy-table' }, h('thead', {}, h('tr', {}, ...['Device', 'Deploy', 'Start', ''].map((c) => h('th', {}, c)))), tbody), done);
    go.disabled = true;
    const mark = (el: HTMLElement, ok: boolean, text: string) => { el.replaceChildren(h('span', { class: `state ${ok ? 'pass' : 'fail'}` }, text)); };
    postJsonLines('/api/v1/deploy', { probe: probeSel.value, selector: sel, args }, (m) => {
      const type = m['type'];
      if (type === 'targets') {
        for (const d of m['devices'] as { id: string; name: string }[]) {
          if (rows.has(d.id)) { rows.get(d.id)![(m['phase'] as 'deploy' | 'start')].textContent = '…'; continue; }
          const r = { deploy: h('td', {}, m['phase'] === 'deploy' ? '…' : ''), start: h('td', {}, m['phase'] === 'start' ? '…' : ''), note: h('td', { class: 'error' }) };
          rows.set(d.id, r);
          tbody.append(h('tr', { 'data-device': d.name }, h('td', {}, d.name), r.deploy, r.start, r.note));
        }
      } else if (type === 'result') {
        const d = m['device'] as { id: string };
        const r = rows.get(d.id);
        if (!r) return;
        const ok = m['ok'] === true;
        mark(m['phase'] === 'deploy' ? r.deploy : r.start, ok, ok ? (m['phase'] === 'start' ? `running ${String(m['runId'] ?? '')}` : 'installed') : 'failed');
        if (!ok) r.note.textContent = String(m['error'] ?? '');
      } else if (type === 'done') {
        done.replaceChildren(h('span', { class: `state ${m['ok'] ? 'pass' : 'fail'}` }, m['ok'] ? `${probeSel.value} deployed and started on ${rows.size} device(s).` : 'Some devices failed: see the table.'));
        done.dataset['ok'] = String(m['ok']);
      }
    }).catch((e: unknown) => { done.replaceChildren(h('span', { class: 'error' }, errorText(e))); done.dataset['ok'] = 'false'; })
      .finally(() => { go.disabled = false; });
  });

  async function loadSmoke(): Promise<void> {
    let results: SmokeRow[];
    try {
      results = (await getJson<{ results: SmokeRow[] }>('/api/v1/smoke')).results;
    } catch (e) {
      smoke.replaceChildren(h('p', { class: 'muted', id: 'smoke-unavailable' }, e instanceof ApiError && (e.status === 404 || e.status === 501)
        ? `Smoke results are not available on this controller (${e.message}).` : errorText(e)));
      smokeGo.disabled = true;
      return;
    }
    if (closed) return;
    if (results.length === 0) { smoke.replaceChildren(h('p', { class: 'muted' }, 'No smoke test has run yet.')); return; }
    const devs = [...new Map(results.map((r) => [r.deviceId, r.deviceName])).entries()].sort((a, b) => a[1].localeCompare(b[1]));
    const probes = [...new Set(results.map((r) => r.probe))].sort();
    const at = new Map(results.map((r) => [`${r.deviceId}/${r.probe}`, r]));
    smoke.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'device'), ...probes.map((p) => h('th', {}, p)))),
      h('tbody', {}, ...devs.map(([id, name]) => h('tr', {}, h('td', {}, name), ...probes.map((p) => {
        const r = at.get(`${id}/${p}`);
        if (!r) return h('td', { class: 'muted' }, '-');
        return h('td', { title: `${r.reason || 'ok'}${r.timeToFirstEventMs !== null ? `; first event after ${r.timeToFirstEventMs} ms` : ''}; ${fmtAgo(r.createdAtMs)}` },
          h('span', { class: `state ${r.outcome}` }, r.outcome));
      }))))));
  }

  smokeGo.addEventListener('click', () => {
    const sel = selector.value.trim() || 'all';
    smokeGo.disabled = true;
    smoke.prepend(h('p', { class: 'muted' }, `smoke test on ${sel} running…`));
    postJsonLines('/api/v1/smoke', { selector: sel }, () => undefined).then(loadSmoke)
      .catch((e: unknown) => smoke.prepend(h('p', { class: 'error' }, errorText(e)))).finally(() => { smokeGo.disabled = false; });
  });

  Promise.all([getJson<{ probes: ProbeInfo[] }>('/api/v1/probes'), getJson<{ devices: Device[] }>('/api/v1/devices')]).then(([{ probes }, { devices }]) => {
    probeSel.replaceChildren(...probes.map((p) => h('option', { value: p.probe }, p.probe)));
    const sugg = new Set<string>(['all']);
    for (const d of devices) { sugg.add(d.name); for (const [k, v] of Object.entries(d.labels)) sugg.add(`${k}=${v}`); }
    labels.replaceChildren(...[...sugg].map((s) => h('option', { value: s })));
  }).catch((e: unknown) => progress.append(h('p', { class: 'error' }, errorText(e))));
  void loadSmoke();
  return () => { closed = true; };
};
