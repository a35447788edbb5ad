// Admin API endpoints of stack probes:
//   GET /api/v1/flamegraph?probe=P[&device=SEL][&since=T][&until=T][&perProcess=1]
//        [&diffSince=T][&diffUntil=T][&diffDevice=SEL][&format=svg|folded|json][&title=..][&width=N][&minWidth=PX]
//   GET /api/v1/anomalies[?device=SEL][&probe=P][&since=T (default 1h)][&until=T][&window=1m][&perProcess=0]
//        [&z=4][&minShare=0.05]
// device takes a device name or id or a selector (board=dayu200,lab=3; all); without it, every
// device. Times are what `since` takes everywhere (10m, RFC 3339, Unix ns).
import { HttpError, sendJson } from '../admin/http-io.js';
import type { AdminContext, Handler, RouteRequest } from '../admin/request.js';
import { parseDuration, parseSince } from '../admin/time-spec.js';
import { formatRfc3339Nano } from '../export/event-json.js';
import { matchesSelector, parseSelector } from '../fleet/selector.js';
import type { DeviceRow } from '../store/store.js';
import { aggregateStacks, StackError, STACK_PROBE_EXAMPLES, type StackAggregate, type StackScope } from './aggregate.js';
import { findAnomalies } from './find-anomalies.js';
import { formatFolded, formatFoldedDiff } from './folded.js';
import { renderFlameGraph } from './svg.js';
import { buildDiffTree, buildTree, type FlameNode } from './tree.js';
import { formatValue } from './units.js';

export const FLAMEGRAPH_FORMATS = ['svg', 'folded', 'json'] as const;

interface Selected { ids: string[] | undefined; names: string[]; label: string }

/** The devices a `device` parameter names (a name, an id or a selector); undefined = all. */
export async function selectDevices(ctx: AdminContext, text: string | undefined, param = 'device'): Promise<Selected> {
  const devices = await ctx.store.devices();
  if (text === undefined) return { ids: undefined, names: devices.map((d) => d.name), label: 'all devices' };
  let picked: DeviceRow[];
  try {
    const sel = parseSelector(text);
    picked = devices.filter((d) => matchesSelector(sel, d));
  } catch (err) {
    throw new HttpError(400, `${param}: ${(err as Error).message}`);
  }
  if (!picked.length) throw new HttpError(404, `${param} "${text}" matches no device (enrolled: ${devices.map((x) => x.name).join(', ') || 'none'})`);
  const names = picked.map((d) => d.name);
  return { ids: picked.map((d) => d.id), names, label: names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` };
}

function timeParam(r: RouteRequest, ctx: AdminContext, name: string): bigint | undefined {
  const s = r.query.str(name);
  if (s === undefined) return undefined;
  try {
    return parseSince(s, ctx.now());
  } catch (err) {
    throw new HttpError(400, `${name}: ${(err as Error).message}`);
  }
}

function numberParam(r: RouteRequest, name: string, min: number, max: number): number | undefined {
  const s = r.query.str(name);
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || v < min || v > max) throw new HttpError(400, `${name} must be a number from ${min} to ${max}, got "${s}"`);
  return v;
}

async function aggregate(ctx: AdminContext, r: RouteRequest, scope: StackScope & { perProcess: boolean }): Promise<StackAggregate> {
  if (scope.sinceUnixNs !== undefined && scope.untilUnixNs !== undefined && scope.untilUnixNs <= scope.sinceUnixNs) {
    throw new HttpError(400, `the window ends (${formatRfc3339Nano(scope.untilUnixNs)}) before it starts (${formatRfc3339Nano(scope.sinceUnixNs)})`);
  }
  try {
    return await aggregateStacks(ctx.store, scope, { signal: r.signal });
  } catch (err) {
    if (err instanceof StackError) throw new HttpError(err.status, err.message);
    throw err;
  }
}

const shortTime = (ns: bigint) => formatRfc3339Nano(ns).replace('T', ' ').replace(/\.\d+Z$/, '');
function windowText(since: bigint | undefined, until: bigint | undefined): string {
  if (since === undefined && until === undefined) return 'all stored records';
  return `${since === undefined ? 'the first record' : shortTime(since)} to ${until === undefined ? 'now' : shortTime(until)} UTC`;
}

/** The tree as the dashboard reads it: name, value, self, children (and baseline in a diff). */
function treeJson(n: FlameNode): unknown {
  return { name: n.name, value: n.value, self: n.self, ...(n.baseline === undefined ? {} : { baseline: n.baseline }), children: n.children.map(treeJson) };
}

export const getFlamegraph: Handler = async (ctx, r) => {
  r.query.allow(['device', 'probe', 'since', 'until', 'perProcess', 'diffSince', 'diffUntil', 'diffDevice', 'format', 'title', 'width', 'minWidth']);
  const probe = r.query.str('probe');
  if (probe === undefined) throw new HttpError(400, `probe is required: a stack probe (${STACK_PROBE_EXAMPLES})`);
  const format = r.query.str('format') ?? 'svg';
  if (!(FLAMEGRAPH_FORMATS as readonly string[]).includes(format)) throw new HttpError(400, `format must be svg, folded or json, got "${format}"`);
  const width = numberParam(r, 'width', 200, 20_000);
  const minWidth = numberParam(r, 'minWidth', 0, 100);
  const perProcess = r.query.bool('perProcess');
  const devices = await selectDevices(ctx, r.query.str('device'));
  const since = timeParam(r, ctx, 'since'), until = timeParam(r, ctx, 'until');
  const diffSince = timeParam(r, ctx, 'diffSince'), diffUntilParam = timeParam(r, ctx, 'diffUntil');
  const diffDeviceText = r.query.str('diffDevice');
  const isDiff = diffSince !== undefined || diffUntilParam !== undefined || diffDeviceText !== undefined;

  const scope = (ids: string[] | undefined, s: bigint | undefined, u: bigint | undefined) => ({
    probe, perProcess, ...(ids ? { deviceIds: ids } : {}), ...(s === undefined ? {} : { sinceUnixNs: s }), ...(u === undefined ? {} : { untilUnixNs: u }),
  });
  const shown = await aggregate(ctx, r, scope(devices.ids, since, until));
  const head = { probe, unit: shown.unit, perProcess };
  const meta = (a: StackAggregate, sel: Selected, s: bigint | undefined, u: bigint | undefined) => ({
    devices: sel.label, since: s === undefined ? null : formatRfc3339Nano(s), until: u === undefined ? null : formatRfc3339Nano(u),
    total: a.total, records: a.records,
  });
  const title = r.query.str('title');
  const headers = { 'cache-control': 'no-store', 'x-bpfleet-records': String(shown.records), 'x-bpfleet-total': String(shown.total) };

  if (!isDiff) {
    if (format === 'folded') return sendText(r, 'text/plain; charset=utf-8', formatFolded(shown.folded), headers);
    const tree = buildTree(shown.folded);
    if (format === 'json') return sendJson(r.res, 200, { ...head, ...meta(shown, devices, since, until), tree: treeJson(tree) }, headers);
    const svg = renderFlameGraph(tree, {
      unit: shown.unit, perProcess, ...(width ? { width } : {}), ...(minWidth !== undefined ? { minWidthPx: minWidth } : {}),
      title: title ?? `${probe} on ${devices.label}`,
      subtitle: `${windowText(since, until)}: ${formatValue(shown.total, shown.unit)} in ${shown.records} records${perProcess ? ', per process' : ''}`,
    });
    return sendText(r, 'image/svg+xml; charset=utf-8', svg, headers);
  }

  // The baseline: another window (diffSince..diffUntil; diffUntil defaults to since) and/or another device.
  const baseDevices = diffDeviceText === undefined ? devices : await selectDevices(ctx, diffDeviceText, 'diffDevice');
  let bSince = since, bUntil = until;
  if (diffSince !== undefined || diffUntilParam !== undefined) {
    bSince = diffSince;
    bUntil = diffUntilParam ?? since;
    if (bUntil === undefined) throw new HttpError(400, 'diffSince needs diffUntil, or since (which then ends the baseline window)');
  }
  const baseline = await aggregate(ctx, r, scope(baseDevices.ids, bSince, bUntil));
  const baseHeaders = { ...headers, 'x-bpfleet-baseline-records': String(baseline.records), 'x-bpfleet-baseline-total': String(baseline.total) };
  if (baseline.unit !== shown.unit) throw new HttpError(400, `the baseline's values are in ${baseline.unit}, the shown window's in ${shown.unit}: they do not compare`);
  if (format === 'folded') return sendText(r, 'text/plain; charset=utf-8', formatFoldedDiff(baseline.folded, shown.folded), baseHeaders);
  const { tree, summary } = buildDiffTree(baseline.folded, shown.folded);
  if (format === 'json') {
    return sendJson(r.res, 200, { ...head, ...meta(shown, devices, since, until), baseline: { ...meta(baseline, baseDevices, bSince, bUntil),
      vanishedValue: summary.vanishedValue, vanishedStacks: summary.vanishedStacks }, tree: treeJson(tree) }, baseHeaders);
  }
  const sameDevices = baseDevices.label === devices.label;
  const svg = renderFlameGraph(tree, {
    unit: shown.unit, perProcess, diff: summary, ...(width ? { width } : {}), ...(minWidth !== undefined ? { minWidthPx: minWidth } : {}),
    title: title ?? `${probe} on ${devices.label}: differential`,
    subtitle: `${windowText(since, until)}${sameDevices ? '' : ` on ${devices.label}`} against ` +
      `${windowText(bSince, bUntil)}${sameDevices ? '' : ` on ${baseDevices.label}`}`,
  });
  return sendText(r, 'image/svg+xml; charset=utf-8', svg, baseHeaders);
};

function sendText(r: RouteRequest, type: string, text: string, headers: Record<string, string>): void {
  r.res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'x-content-type-options': 'nosniff', ...headers });
  r.res.end(text);
}

export const getAnomalies: Handler = async (ctx, r) => {
  r.query.allow(['device', 'probe', 'since', 'until', 'window', 'perProcess', 'z', 'minShare']);
  const devices = await selectDevices(ctx, r.query.str('device'));
  const probe = r.query.str('probe');
  const now = BigInt(ctx.now()) * 1_000_000n;
  const since = timeParam(r, ctx, 'since') ?? now - 3_600_000_000_000n;
  const until = timeParam(r, ctx, 'until') ?? now;
  const windowText = r.query.str('window') ?? '1m';
  let windowMs: number;
  try { windowMs = parseDuration(windowText); } catch (err) { throw new HttpError(400, `window: ${(err as Error).message}`); }
  if (windowMs < 1000) throw new HttpError(400, `window must be at least 1s, got "${windowText}"`);
  const z = numberParam(r, 'z', 0.5, 100), minShare = numberParam(r, 'minShare', 0, 1);
  const perProcessParam = r.query.str('perProcess');
  const perProcess = perProcessParam === undefined ? true : r.query.bool('perProcess');
  let report;
  try {
    report = await findAnomalies(ctx.store, {
      ...(probe === undefined ? {} : { probe }), ...(devices.ids ? { deviceIds: devices.ids } : {}), sinceUnixNs: since, untilUnixNs: until,
      windowNs: BigInt(windowMs) * 1_000_000n, perProcess,
      params: { ...(z === undefined ? {} : { zThreshold: z }), ...(minShare === undefined ? {} : { minShare, newShare: minShare }) },
    });
  } catch (err) {
    if (err instanceof StackError) throw new HttpError(err.status, err.message);
    throw err;
  }
  const names = new Map((await ctx.store.devices()).map((d) => [d.id, d.name]));
  sendJson(r.res, 200, {
    windowMs, perProcess, firstWindow: formatRfc3339Nano(report.firstWindowUnixNs), windows: report.windows, params: report.params,
    series: report.series.map((s) => ({ ...s, device: names.get(s.deviceId) ?? s.deviceId }))
      .sort((x, y) => x.device.localeCompare(y.device) || x.probe.localeCompare(y.probe)),
    anomalies: report.anomalies.map((a) => ({
      windowStart: formatRfc3339Nano(a.windowStartUnixNs), windowEnd: formatRfc3339Nano(a.windowEndUnixNs),
      device: names.get(a.deviceId) ?? a.deviceId, deviceId: a.deviceId, probe: a.probe, kind: a.kind, stack: a.stack,
      share: a.share, baselineShare: a.baselineShare, baselineStd: a.baselineStd, z: a.z, value: a.value, unit: a.unit,
      samples: a.samples, windowTotal: a.windowTotal,
    })),
  });
};
