// Read-only endpoints: devices, probes, runs, streams, events (and following them), exports, stats.
import { eventToJson } from '../export/event-json.js';
import { ExportError, prepareExport } from '../export/exporter.js';
import { LOSS_COUNTERS } from '../metrics/fleet-metrics.js';
import { followEvents } from './follow-events.js';
import { HttpError, jsonLine, sendJson, startJsonLines, writeChunk } from './http-io.js';
import { listBuiltProbes } from './probe-catalog.js';
import { resolveDevice, type AdminContext, type Handler, type RouteRequest } from './request.js';

const MAX_EVENTS = 100_000;

function onlineSet(ctx: AdminContext): ReadonlySet<string> | undefined {
  return ctx.fleet?.devicesOnline();
}

export const getDevices: Handler = async (ctx, { res, query }) => {
  query.allow([]);
  const online = onlineSet(ctx);
  // Transport: the live session's here, else the one the device last used (enrollment is always gRPC).
  const live = new Map((ctx.fleet?.sessionsInfo?.() ?? []).map((x) => [x.deviceId, x.transport]));
  const devices = (await ctx.store.devices()).map((d) => ({ ...d, online: online ? online.has(d.id) : d.online,
    transport: live.get(d.id) ?? d.transport }));
  sendJson(res, 200, { devices });
};

export const getProbes: Handler = async (ctx, { res, query }) => {
  query.allow([]);
  sendJson(res, 200, { probes: listBuiltProbes(ctx.bpfOutDir) });
};

export const getRuns: Handler = async (ctx, { res, query }) => {
  query.allow(['device', 'probe', 'state']);
  const device = query.str('device'), probe = query.str('probe'), state = query.str('state');
  const deviceId = device === undefined ? undefined : await resolveDevice(ctx.store, device);
  const runs = (await ctx.store.runs(deviceId === undefined ? {} : { deviceId }))
    .filter((r) => (probe === undefined || r.probe === probe) && (state === undefined || r.state === state));
  sendJson(res, 200, { runs });
};

export const getStreams: Handler = async (ctx, { res, query }) => {
  query.allow(['device', 'probe']);
  const device = query.str('device'), probe = query.str('probe');
  const deviceId = device === undefined ? undefined : await resolveDevice(ctx.store, device);
  const streams = (await ctx.store.streams(deviceId === undefined ? {} : { deviceId })).filter((s) => probe === undefined || s.probe === probe);
  sendJson(res, 200, { streams });
};

async function eventFilter(ctx: AdminContext, r: RouteRequest) {
  const device = r.query.str('device'), probe = r.query.str('probe'), stream = r.query.str('stream');
  return {
    ...(device === undefined ? {} : { deviceId: await resolveDevice(ctx.store, device) }),
    ...(probe === undefined ? {} : { probe }),
    ...(stream === undefined ? {} : { streamId: stream }),
  };
}

export const getEvents: Handler = async (ctx, r) => {
  r.query.allow(['device', 'probe', 'stream', 'since', 'limit', 'follow']);
  const filter = await eventFilter(ctx, r);
  const since = r.query.since();
  const follow = r.query.bool('follow');
  const limit = r.query.int('limit', 1, MAX_EVENTS);
  if (!follow) {
    const n = limit ?? 1000;
    const got = await ctx.store.events({ ...filter, ...(since === undefined ? {} : { sinceUnixNs: since }), limit: n + 1 });
    sendJson(r.res, 200, { events: got.slice(0, n).map(eventToJson), more: got.length > n });
    return;
  }
  if (limit !== undefined) throw new HttpError(400, 'limit does not combine with follow=1: use since to choose where following starts');
  if (filter.streamId !== undefined) throw new HttpError(400, 'follow=1 takes device and probe, not stream');
  // JSON lines, one event each, as they are stored; an empty line now and then keeps proxies and
  // the client's idle timers from closing a quiet stream.
  startJsonLines(r.res);
  const fleet = ctx.fleet;
  const keepAlive = setInterval(() => { if (!r.res.writableNeedDrain) r.res.write('\n'); }, ctx.keepAliveMs);
  try {
    for await (const evs of followEvents(ctx.store, {
      ...filter, ...(since === undefined ? {} : { sinceUnixNs: since }), pollMs: ctx.followPollMs, signal: r.signal,
      ...(fleet?.onEvent ? { wake: (cb: () => void) => fleet.onEvent!((e) => { if (e.type === 'stored') cb(); }) } : {}),
    })) {
      let text = '';
      for (const ev of evs) text += jsonLine(eventToJson(ev));
      await writeChunk(r.res, text);
    }
  } finally {
    clearInterval(keepAlive);
  }
  r.res.end();
};

export const getExport: Handler = async (ctx, r) => {
  r.query.allow(['format', 'device', 'probe', 'stream', 'since', 'limit']);
  const format = r.query.str('format');
  if (format === undefined) throw new HttpError(400, 'format is required: jsonl, csv or influx');
  const filter = await eventFilter(ctx, r);
  const since = r.query.since();
  const max = r.query.int('limit', 1, Number.MAX_SAFE_INTEGER);
  let exp;
  try {
    exp = await prepareExport(ctx.store, format, { ...filter, ...(since === undefined ? {} : { sinceUnixNs: since }) },
      max === undefined ? {} : { max });
  } catch (err) {
    if (err instanceof ExportError) throw new HttpError(400, err.message);
    throw err;
  }
  const ext = { jsonl: 'jsonl', csv: 'csv', influx: 'lp' }[exp.format];
  r.res.writeHead(200, { 'content-type': exp.contentType, 'cache-control': 'no-store',
    'content-disposition': `attachment; filename="bpfleet-events.${ext}"` });
  for await (const chunk of exp.chunks(r.signal)) await writeChunk(r.res, chunk);
  r.res.end();
};

export const getStats: Handler = async (ctx, r) => {
  r.query.allow(['device', 'probe']);
  const device = r.query.str('device'), probe = r.query.str('probe');
  const deviceId = device === undefined ? undefined : await resolveDevice(ctx.store, device);
  const rows = (await ctx.store.pipelineStats(deviceId === undefined ? {} : { deviceId }))
    .map((s) => ({ ...s, probe: s.streamId.split('/')[1] ?? '' }))
    .filter((s) => probe === undefined || s.probe === probe);
  const streams = rows.map((s) => ({
    ...s,
    lost: Object.fromEntries(LOSS_COUNTERS.map((c) => [`${c.stage}.${c.reason}`, c.get(s).toString()])),
  }));
  sendJson(r.res, 200, { streams, rejections: await ctx.store.rejections() });
};
