// Endpoints that change something: enrollment tokens, deploy (+ start), stop.
import { HttpError, jsonLine, readJsonObject, sendJson, startJsonLines, writeChunk } from './http-io.js';
import type { CommandOutcome, DeviceRef, PendingCommand, StartOutcome } from './fleet-commands.js';
import { listBuiltProbes } from './probe-catalog.js';
import { requireFleet, type Handler } from './request.js';
import { formatSelector, validateSelector } from './selector.js';
import { parseDuration } from './time-spec.js';

const LABEL_WORD = /^[A-Za-z0-9_.:/-]{1,63}$/;
const MAX_TTL_MS = 30 * 86_400_000;
const DEFAULT_TTL_MS = 3_600_000;

function only(body: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(body)) if (!keys.includes(k)) throw new HttpError(400, `unknown field "${k}" (expected ${keys.join(', ')})`);
}

export const postToken: Handler = async (ctx, { req, res, query }) => {
  query.allow([]);
  const body = await readJsonObject(req);
  only(body, ['labels', 'ttl', 'name']);
  const labels = body['labels'] ?? {};
  if (!labels || typeof labels !== 'object' || Array.isArray(labels)) throw new HttpError(400, 'labels must be an object of strings');
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_WORD.test(k) || typeof v !== 'string' || !LABEL_WORD.test(v)) {
      throw new HttpError(400, `label ${k}=${String(v)}: keys and values are 1-63 characters of [A-Za-z0-9_.:/-]`);
    }
  }
  let ttlMs = DEFAULT_TTL_MS;
  if (body['ttl'] !== undefined) {
    if (typeof body['ttl'] !== 'string') throw new HttpError(400, 'ttl must be a duration string such as "1h" or "30m"');
    try { ttlMs = parseDuration(body['ttl']); } catch (err) { throw new HttpError(400, `ttl: ${(err as Error).message}`); }
    if (ttlMs < 1000 || ttlMs > MAX_TTL_MS) throw new HttpError(400, `ttl must be between 1s and 30d, got ${body['ttl']}`);
  }
  const name = body['name'];
  if (name !== undefined && (typeof name !== 'string' || !LABEL_WORD.test(name))) {
    throw new HttpError(400, 'name must be a device name of 1-63 characters of [A-Za-z0-9_.:/-]');
  }
  const t = await ctx.store.createEnrollmentToken({ labels: labels as Record<string, string>, ttlMs, ...(name ? { deviceName: name } : {}) });
  sendJson(res, 201, { token: t.token, expiresAtMs: t.expiresAtMs, expiresAt: new Date(t.expiresAtMs).toISOString(),
    labels, ...(name ? { name } : {}) });
};

/** The device's answer, or a failure once `ms` passed without one. */
function answerWithin<T extends CommandOutcome>(p: Promise<T>, ms: number): Promise<T | CommandOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CommandOutcome>((resolve) => {
    const within = ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
    timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${within}` }), ms);
  });
  return Promise.race([p.then((r) => r, (err: unknown) => ({ ok: false, error: err instanceof Error ? err.message : String(err) })), timeout])
    .finally(() => clearTimeout(timer));
}

interface DeviceSummary extends DeviceRef {
  deployed: boolean;
  started?: boolean;
  runId?: string;
  error?: string;
}

/**
 * Deploys and (unless start is false) starts a probe. The answer is JSON lines, written as
 * devices answer, so a client can show progress (the fleet sends at most its deploy concurrency
 * of bundles at once; the rest are queued and answer later, each within its timeout from its send):
 *   {"type":"targets","phase":"deploy","devices":[{id,name}]}
 *   {"type":"result","phase":"deploy","device":{id,name},"ok":true}           (one per device)
 *   {"type":"targets","phase":"start",...}, {"type":"result","phase":"start",...,"runId":"..."}
 *   {"type":"done","ok":false,"devices":[{id,name,deployed,started,runId,error}]}
 */
export const postDeploy: Handler = async (ctx, { req, res, query }) => {
  query.allow([]);
  const body = await readJsonObject(req);
  only(body, ['probe', 'selector', 'args', 'start']);
  const probe = body['probe'];
  if (typeof probe !== 'string' || probe === '') throw new HttpError(400, 'probe is required (a probe name, see GET /api/v1/probes)');
  let selector;
  try { selector = validateSelector(body['selector']); } catch (err) { throw new HttpError(400, (err as Error).message); }
  const args = body['args'] ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new HttpError(400, 'args must be an array of strings');
  if (body['start'] !== undefined && typeof body['start'] !== 'boolean') throw new HttpError(400, 'start must be a boolean');
  const start = body['start'] !== false;
  const built = listBuiltProbes(ctx.bpfOutDir).map((p) => p.probe);
  if (!built.includes(probe)) throw new HttpError(404, `no built probe "${probe}" (built: ${built.join(', ') || 'none; run make -C bpf'})`);
  const fleet = requireFleet(ctx);

  const deploys = await fleet.deploy(selector, probe);
  if (deploys.length === 0) throw new HttpError(404, `no device matches selector "${formatSelector(selector)}"`);
  startJsonLines(res);
  const summary = new Map<string, DeviceSummary>();
  const emit = (v: unknown) => writeChunk(res, jsonLine(v)).catch(() => undefined); // a gone client does not stop the deploy

  const run = async <T extends CommandOutcome>(phase: string, cmds: PendingCommand<T>[], record: (s: DeviceSummary, r: T | CommandOutcome) => void) => {
    await emit({ type: 'targets', phase, devices: cmds.map((c) => c.device) });
    await Promise.all(cmds.map(async (c) => {
      // A queued deploy waits for its turn first: the answer is due commandTimeoutMs after the send.
      await c.sent?.catch(() => undefined);
      const r = await answerWithin(c.result, ctx.commandTimeoutMs);
      const s = summary.get(c.device.id) ?? { ...c.device, deployed: false };
      summary.set(c.device.id, s);
      record(s, r);
      await emit({ type: 'result', phase, device: c.device, ...r });
    }));
  };
  await run('deploy', deploys, (s, r) => { s.deployed = r.ok; if (!r.ok) s.error = r.error ?? 'deploy failed'; });
  const ready = [...summary.values()].filter((s) => s.deployed).map((s) => s.id);
  if (start && ready.length) {
    let starts: PendingCommand<StartOutcome>[];
    try {
      starts = await fleet.start({ devices: ready }, probe, args as string[]);
    } catch (err) {
      starts = [];
      for (const id of ready) { const s = summary.get(id)!; s.started = false; s.error = `start: ${(err as Error).message}`; }
    }
    await run('start', starts, (s, r) => {
      s.started = r.ok;
      const runId = (r as StartOutcome).runId;
      if (runId) s.runId = runId;
      if (!r.ok) s.error = r.error ?? 'start failed';
    });
  }
  const devices = [...summary.values()];
  const ok = devices.every((d) => d.deployed && (!start || d.started));
  await emit({ type: 'done', ok, devices });
  res.end();
};

export const postStop: Handler = async (ctx, { req, res, query }) => {
  query.allow([]);
  const body = await readJsonObject(req);
  only(body, ['runId']);
  const runId = body['runId'];
  if (typeof runId !== 'string' || runId === '') throw new HttpError(400, 'runId is required');
  const run = (await ctx.store.runs()).find((r) => r.runId === runId);
  if (!run) throw new HttpError(404, `no run "${runId}" (see GET /api/v1/runs)`);
  const fleet = requireFleet(ctx);
  const r = await answerWithin(fleet.stop(runId), ctx.commandTimeoutMs);
  sendJson(res, 200, { runId, deviceId: run.deviceId, probe: run.probe, ...r });
};
