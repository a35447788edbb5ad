// The smoke endpoints of the admin API over a real SqliteStore: input checks, the streamed
// answer of POST (device answers scripted: the agents' side is tested in agent/src/smoke and
// test/fleet/smoke.test.ts), and GET of what was kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../admin/admin-server.js';
import { populatedStore, type Populated } from '../admin/admin-fixture.js';
import type { PendingCommand } from '../admin/fleet-commands.js';

const TOKEN = 'test-admin-token-0123456789abcdef';
let p: Populated;
let server: AdminServer;
let bare: AdminServer;
const sent: string[][] = [];

beforeAll(async () => {
  p = await populatedStore();
  // The fake fleet of the admin fixture, taught to answer RunSmokeTest: bench-1 reports skbclone unsupported.
  const fleet = Object.assign(p.fleet, {
    smoke: async (_sel: unknown, probes: string[]): Promise<PendingCommand[]> => {
      sent.push(probes);
      return [{ device: { id: p.bench1, name: 'bench-1' }, commandId: 'c-9', result: Promise.resolve({ ok: true, detail: {
        deviceId: p.bench1, durationMs: 5, probes: [{ probe: 'skbclone', version: '1.0.0', outcome: 'unsupported',
          reason: 'skbclone: unsupported on this kernel: needs kprobe skb_clone', runId: 'smoke-c-9-skbclone',
          streamId: `${p.bench1}/skbclone/smoke-c-9-skbclone`, schemaId: 'skbclone@1.0.0:0', vars: {}, attachMs: null,
          timeToFirstEventMs: null, verifiedInsns: null }] } }) }];
    },
  });
  server = await AdminServer.start({ store: p.store, fleet, token: TOKEN, port: 0, log: () => undefined });
  bare = await AdminServer.start({ store: p.store, token: TOKEN, port: 0, log: () => undefined });
});
afterAll(async () => {
  await server.close();
  await bare.close();
  await p.cleanup();
});

const api = (base: AdminServer, path: string, body?: unknown) => fetch(base.url + path, {
  method: body === undefined ? 'GET' : 'POST',
  headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
  ...(body === undefined ? {} : { body: JSON.stringify(body) }),
});

describe('POST /api/v1/smoke', () => {
  it('refuses bad input with what to send', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ probes: 'tcpstates' }, 400, /probes must be an array of probe names/],
      [{ probes: ['../x'] }, 400, /probes must be an array/],
      [{ probeTimeoutMs: 5 }, 400, /probeTimeoutMs must be an integer from 100/],
      [{ colour: 'red' }, 400, /unknown field "colour"/],
      [{ selector: 'board=nosuch' }, 404, /no device matches selector "board=nosuch"/],
    ];
    for (const [body, status, msg] of cases) {
      const r = await api(server, '/api/v1/smoke', body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(((await r.json()) as { error: string }).error).toMatch(msg);
    }
    const noFleet = await api(bare, '/api/v1/smoke', {});
    expect(noFleet.status).toBe(503);
  });

  it('streams targets, one result per device and done; unsupported is not a failure; the result is kept', async () => {
    const r = await api(server, '/api/v1/smoke', { selector: 'board=dayu200', probes: ['skbclone'], probeTimeoutMs: 2000 });
    expect(r.status).toBe(200);
    const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string; ok?: boolean; results?: unknown[] });
    expect(lines.map((l) => l.type)).toEqual(['targets', 'result', 'done']);
    expect(lines[2]).toMatchObject({ ok: true, results: [{ probe: 'skbclone', outcome: 'unsupported', commandId: 'c-9' }] });
    expect(sent).toEqual([['skbclone']]);

    const kept = await api(server, '/api/v1/smoke?device=bench-1');
    expect(kept.status).toBe(200);
    expect(await kept.json()).toMatchObject({ results: [{ deviceName: 'bench-1', probe: 'skbclone', outcome: 'unsupported',
      reason: 'skbclone: unsupported on this kernel: needs kprobe skb_clone' }] });
    const unknown = await api(server, '/api/v1/smoke?device=nosuch');
    expect(unknown.status).toBe(404);
    const typo = await api(server, '/api/v1/smoke?devcie=bench-1');
    expect(typo.status).toBe(400);
  });
});
