// Admin API of smoke tests:
//   POST /api/v1/smoke {selector?, probes?, probeTimeoutMs?}  runs them; JSON lines as they happen:
//     {"type":"targets","devices":[{id,name,probes}]}   probes: how many will be tested (null: unknown)
//     {"type":"progress","device":{id,name},"probe":"tcpwin","state":"stopped","done":3,"total":6}
//     {"type":"result","device":{id,name},"ok":true,"results":[SmokeResultRow...]}   one per device
//     {"type":"done","ok":false,"devices":[{id,name,ok,commandId,error}],"results":[...]}
//   GET /api/v1/smoke?device=&probe=&command=&history=1&limit=   stored results: the latest per
//     device x probe (the dashboard's matrix), or every row newest first with history=1.
import { HttpError, jsonLine, readJsonObject, sendJson, startJsonLines, writeChunk } from '../admin/http-io.js';
import { requireFleet, resolveDevice, type Handler } from '../admin/request.js';
import { formatSelector, matchesSelector, validateSelector } from '../admin/selector.js';
import { runSmoke, type SmokeFleet } from './smoke-run.js';

const PROBE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const MAX_PROBE_TIMEOUT_MS = 600_000;

export const postSmoke: Handler = async (ctx, { req, res, query }) => {
  query.allow([]);
  const body = await readJsonObject(req);
  for (const k of Object.keys(body)) {
    if (!['selector', 'probes', 'probeTimeoutMs'].includes(k)) throw new HttpError(400, `unknown field "${k}" (expected selector, probes, probeTimeoutMs)`);
  }
  let selector;
  try { selector = validateSelector(body['selector'] ?? 'all'); } catch (err) { throw new HttpError(400, (err as Error).message); }
  const probes = body['probes'] ?? [];
  if (!Array.isArray(probes) || probes.some((p) => typeof p !== 'string' || !PROBE.test(p))) {
    throw new HttpError(400, 'probes must be an array of probe names (letters, digits, . _ + -)');
  }
  const t = body['probeTimeoutMs'];
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > MAX_PROBE_TIMEOUT_MS)) {
    throw new HttpError(400, `probeTimeoutMs must be an integer from 100 to ${MAX_PROBE_TIMEOUT_MS}`);
  }
  const fleet = requireFleet(ctx);
  if (!fleet.smoke) throw new HttpError(501, 'this controller\'s fleet cannot run smoke tests');
  const matching = (await ctx.store.devices()).filter((d) => matchesSelector(selector, d));
  if (matching.length === 0) throw new HttpError(404, `no device matches selector "${formatSelector(selector)}"`);

  startJsonLines(res);
  const emit = (v: unknown) => writeChunk(res, jsonLine(v)).catch(() => undefined); // a gone client does not stop the test
  const summary = await runSmoke({ fleet: fleet as SmokeFleet, store: ctx.store, now: ctx.now },
    { selector, probes: probes as string[], ...(t !== undefined ? { probeTimeoutMs: t as number } : {}) }, emit);
  await emit({ type: 'done', ...summary });
  res.end();
};

export const getSmoke: Handler = async (ctx, { res, query }) => {
  query.allow(['device', 'probe', 'command', 'history', 'limit']);
  if (!ctx.store.smokeResults) throw new HttpError(501, 'this controller\'s store does not keep smoke test results');
  const device = query.str('device'), probe = query.str('probe'), command = query.str('command');
  const limit = query.int('limit', 1, 100_000);
  const deviceId = device === undefined ? undefined : await resolveDevice(ctx.store, device);
  const rows = await ctx.store.smokeResults({
    ...(deviceId !== undefined ? { deviceId } : {}), ...(probe !== undefined ? { probe } : {}),
    ...(command !== undefined ? { commandId: command } : {}), history: query.bool('history'), ...(limit !== undefined ? { limit } : {}),
  });
  const names = new Map((await ctx.store.devices()).map((d) => [d.id, d.name]));
  sendJson(res, 200, { results: rows.map((r) => ({ ...r, deviceName: names.get(r.deviceId) ?? r.deviceId })) });
};
