import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventToJson } from '../export/event-json.js';
import { prepareExport } from '../export/exporter.js';
import { AdminServer } from './admin-server.js';
import { populatedStore, type Populated } from './admin-fixture.js';
import { readClientConfig } from './client-config.js';
import { startAdminApi } from './start-admin.js';

const TOKEN = 'test-admin-token-0123456789abcdef';
let p: Populated;
let server: AdminServer;

beforeAll(async () => {
  p = await populatedStore();
  server = await AdminServer.start({ store: p.store, fleet: p.fleet, token: TOKEN, port: 0, followPollMs: 50, log: () => undefined });
});
afterAll(async () => {
  await server.close();
  await p.cleanup();
});
afterEach(() => { p.fleet.script = {}; });

const api = (path: string, init: RequestInit = {}, token: string | null = TOKEN) => fetch(server.url + path, {
  ...init, headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(init.body ? { 'content-type': 'application/json' } : {}) },
});
const getJson = async (path: string) => { const r = await api(path); expect(r.status, await r.clone().text()).toBe(200); return r.json() as Promise<any>; };
const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });
const lines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as any);

describe('authentication', () => {
  it('answers 401 with a JSON error without a token or with a wrong one', async () => {
    const none = await api('/api/v1/devices', {}, null);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.json()).toEqual({ error: expect.stringMatching(/^missing admin token/) });
    const wrong = await api('/api/v1/devices', {}, 'nope');
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ error: 'wrong admin token' });
  });

  it('answers 404 and 405 as JSON', async () => {
    const r = await api('/api/v1/nothing');
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: 'no endpoint /api/v1/nothing' });
    const m = await api('/api/v1/devices', { method: 'DELETE' });
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET');
  });
});

describe('listings', () => {
  it('lists devices with online state from the fleet', async () => {
    const { devices } = await getJson('/api/v1/devices');
    expect(devices.map((d: any) => [d.name, d.online, d.labels])).toEqual([
      ['bench-1', true, { board: 'dayu200', lab: '3' }], ['bench-2', false, { board: 'hi3516dv300' }]]);
  });

  it('lists the probes built in bpf/out per arch', async () => {
    const { probes } = await getJson('/api/v1/probes');
    const t = probes.find((x: any) => x.probe === 'tcpstates');
    expect(t).toMatchObject({ version: '1.0.0', kind: 'stream' });
    expect(t.builds.map((b: any) => b.arch)).toContain('x86_64');
    expect(t.fields.map((f: any) => f.name)).toContain('newstate');
  });

  it('lists streams and pipeline stats with the loss per stage', async () => {
    const { streams } = await getJson('/api/v1/streams?probe=tcpstates');
    expect(streams).toMatchObject([{ streamId: p.stream, storedRecords: 14, nextSeq: '15' }]);
    const stats = await getJson('/api/v1/stats?device=bench-1');
    expect(stats.streams[0]).toMatchObject({ streamId: p.stream, probe: 'tcpstates', kernelRingbufFull: '3', storedRecords: 14,
      lost: { 'kernel.ringbuf_full': '3', 'loader.lost': '1', 'spool.evicted': '2' } });
  });
});

describe('events', () => {
  it('returns exactly the stored records', async () => {
    const stored = await p.store.events({ probe: 'tcpstates', limit: 1000 });
    const body = await getJson('/api/v1/events?probe=tcpstates');
    expect(body.more).toBe(false);
    expect(body.events).toEqual(JSON.parse(JSON.stringify(stored.map(eventToJson))));
    expect(body.events.map((e: any) => e.fields.comm).slice(10)).toEqual(['my app', 'a,b', 'k=v', 'say "hi"']);
  });

  it('filters by device name, since and limit', async () => {
    const all = (await getJson('/api/v1/events?device=bench-1')).events;
    const since = encodeURIComponent(all[5].time);
    const some = await getJson(`/api/v1/events?device=bench-1&since=${since}&limit=3`);
    expect(some.events.map((e: any) => e.seq)).toEqual([6, 7, 8]);
    expect(some.more).toBe(true);
    expect((await getJson('/api/v1/events?device=bench-2')).events).toEqual([]);
  });

  it('says what is wrong with bad parameters', async () => {
    const cases: [string, number, RegExp][] = [
      ['/api/v1/events?since=yesterday', 400, /neither a duration/],
      ['/api/v1/events?limit=0', 400, /limit must be an integer from 1 to 100000/],
      ['/api/v1/events?devce=x', 400, /unknown parameter "devce"/],
      ['/api/v1/events?device=nope', 404, /no device "nope" \(enrolled: bench-1, bench-2\)/],
      ['/api/v1/events?follow=1&limit=5', 400, /limit does not combine with follow/],
      ['/api/v1/export', 400, /format is required/],
      ['/api/v1/export?format=xml', 400, /unknown export format "xml"/],
    ];
    for (const [path, status, msg] of cases) {
      const r = await api(path);
      expect(r.status, path).toBe(status);
      expect((await r.json() as any).error, path).toMatch(msg);
    }
  });

  it('follows: stored records first from since, then new ones as they are stored, as JSON lines', async () => {
    const ac = new AbortController();
    const r = await fetch(`${server.url}/api/v1/events?probe=tcpstates&follow=1&since=0000000000000`, {
      headers: { authorization: `Bearer ${TOKEN}` }, signal: ac.signal });
    expect(r.headers.get('content-type')).toMatch(/ndjson/);
    const reader = r.body!.getReader();
    const got: any[] = [];
    let buf = '';
    const readUntil = async (n: number) => {
      while (got.length < n) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += new TextDecoder().decode(value);
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) { const l = buf.slice(0, nl).trim(); buf = buf.slice(nl + 1); if (l) got.push(JSON.parse(l)); }
      }
    };
    await readUntil(14);
    // Records 15..17 carry earlier device times than the awkward 11..14: still sent, once.
    await p.ingest(15, 3);
    await readUntil(17);
    expect(got.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));
    ac.abort();
  });

  it('follows without since: only records stored after the start', async () => {
    const ac = new AbortController();
    const r = await fetch(`${server.url}/api/v1/events?device=bench-1&follow=1`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: ac.signal });
    const reader = r.body!.getReader();
    await new Promise((res) => setTimeout(res, 120));
    await p.ingest(18, 2);
    let text = '';
    while (text.split('\n').filter((l) => l.trim()).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    expect(lines(text).map((e) => e.seq)).toEqual([18, 19]);
    ac.abort();
  });
});

describe('export', () => {
  it('streams each format as prepareExport writes it', async () => {
    for (const [format, type] of [['jsonl', /ndjson/], ['csv', /text\/csv/], ['influx', /text\/plain/]] as const) {
      const r = await api(`/api/v1/export?format=${format}&probe=tcpstates`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(type);
      let want = '';
      for await (const c of (await prepareExport(p.store, format, { probe: 'tcpstates' })).chunks()) want += c;
      expect(await r.text()).toBe(want);
    }
  });
});

describe('commands', () => {
  it('creates enrollment tokens a device can enroll with', async () => {
    const r = await post('/api/v1/tokens', { labels: { board: 'dayu200' }, ttl: '10m', name: 'bench-9' });
    expect(r.status).toBe(201);
    const t = await r.json() as any;
    expect(t).toMatchObject({ labels: { board: 'dayu200' }, name: 'bench-9' });
    const e = await p.store.enroll({ token: t.token, deviceName: 'bench-9' });
    expect(e.labels).toEqual({ board: 'dayu200' });
    const bad = await post('/api/v1/tokens', { ttl: 'forever' });
    expect(bad.status).toBe(400);
    expect((await bad.json() as any).error).toMatch(/ttl: "forever" is not a duration/);
    expect((await post('/api/v1/tokens', { labels: { 'bad key': 'x' } })).status).toBe(400);
    expect((await api('/api/v1/tokens', { method: 'POST', body: 'not json' })).status).toBe(400);
  });

  it('deploys and starts, streaming per-device results as JSON lines', async () => {
    p.fleet.script = { 'bench-2': { start: 'unsupported on this kernel: needs kprobes' } };
    const r = await post('/api/v1/deploy', { probe: 'tcpstates', selector: 'bench-1,bench-2', args: ['--rport', '443'] });
    expect(r.status).toBe(200);
    const out = lines(await r.text());
    expect(out.map((l) => `${l.type}${l.phase ? ' ' + l.phase : ''}`)).toEqual(
      ['targets deploy', 'result deploy', 'result deploy', 'targets start', 'result start', 'result start', 'done']);
    const done = out.at(-1);
    expect(done.ok).toBe(false);
    const byName = Object.fromEntries(done.devices.map((d: any) => [d.name, d]));
    expect(byName['bench-1']).toMatchObject({ deployed: true, started: true, runId: expect.stringMatching(/^run-/) });
    expect(byName['bench-2']).toMatchObject({ deployed: true, started: false, error: 'unsupported on this kernel: needs kprobes' });
    expect(p.fleet.calls.at(-1)).toMatch(/^start tcpstates .*\["--rport","443"\]$/);
  });

  it('refuses a deploy it cannot do, saying why', async () => {
    const none = await post('/api/v1/deploy', { probe: 'tcpstates', selector: 'board=nothing' });
    expect(none.status).toBe(404);
    expect((await none.json() as any).error).toBe('no device matches selector "board=nothing"');
    const unbuilt = await post('/api/v1/deploy', { probe: 'nosuch', selector: 'all' });
    expect(unbuilt.status).toBe(404);
    expect((await unbuilt.json() as any).error).toMatch(/no built probe "nosuch" \(built: .*tcpstates/);
    const bad = await post('/api/v1/deploy', { probe: 'tcpstates', selector: 'a,,b' });
    expect(bad.status).toBe(400);
    const args = await post('/api/v1/deploy', { probe: 'tcpstates', selector: 'all', args: '--rport 443' });
    expect((await args.json() as any).error).toBe('args must be an array of strings');
  });

  it('reports a device that never answers as failed once the command timeout passes', async () => {
    const s = await AdminServer.start({ store: p.store, fleet: p.fleet, token: TOKEN, port: 0, commandTimeoutMs: 100 });
    try {
      p.fleet.script = { 'bench-2': { hang: true } };
      const r = await fetch(`${s.url}/api/v1/deploy`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`,
        'content-type': 'application/json' }, body: JSON.stringify({ probe: 'tcpstates', selector: 'bench-2', start: false }) });
      const done = lines(await r.text()).at(-1);
      expect(done).toEqual({ type: 'done', ok: false, devices: [{ id: p.bench2, name: 'bench-2', deployed: false, error: 'no answer within 100 ms' }] });
    } finally {
      await s.close();
    }
  });

  it('counts the command timeout of a queued deploy from its send, not from the request', async () => {
    const s = await AdminServer.start({ store: p.store, fleet: p.fleet, token: TOKEN, port: 0, commandTimeoutMs: 100 });
    try {
      p.fleet.script = { 'bench-1': { queuedMs: 250 }, 'bench-2': { queuedMs: 150, hang: true } };
      const r = await fetch(`${s.url}/api/v1/deploy`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`,
        'content-type': 'application/json' }, body: JSON.stringify({ probe: 'tcpstates', selector: 'bench-1,bench-2', start: false }) });
      const out = lines(await r.text());
      expect(out[0]).toMatchObject({ type: 'targets', phase: 'deploy' });
      const byName = Object.fromEntries(out.at(-1).devices.map((d: any) => [d.name, d]));
      expect(byName['bench-1']).toMatchObject({ deployed: true });
      expect(byName['bench-2']).toMatchObject({ deployed: false, error: 'no answer within 100 ms' });
    } finally {
      await s.close();
    }
  });

  it('stops a run; 404 for an unknown one', async () => {
    await p.store.startRun({ runId: 'r-stop', deviceId: p.bench1, probe: 'tcpstates', args: [] });
    const r = await post('/api/v1/stop', { runId: 'r-stop' });
    expect(await r.json()).toMatchObject({ runId: 'r-stop', deviceId: p.bench1, ok: true });
    const missing = await post('/api/v1/stop', { runId: 'nope' });
    expect(missing.status).toBe(404);
  });
});

describe('/metrics', () => {
  it('is open by default and exposes fleet and pipeline metrics', async () => {
    const r = await api('/metrics', {}, null);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await r.text();
    expect(text).toContain('bpfleet_devices_online 1\n');
    expect(text).toContain(`bpfleet_records_lost_total{device="${p.bench1}",probe="tcpstates",stream="${p.stream}",stage="kernel",reason="ringbuf_full"} 3\n`);
  });

  it('needs its own token when one is set', async () => {
    const s = await AdminServer.start({ store: p.store, token: TOKEN, metricsToken: 'scrape-token', port: 0 });
    try {
      expect((await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
      expect((await fetch(`${s.url}/metrics`, { headers: { authorization: 'Bearer scrape-token' } })).status).toBe(200);
      // Without a fleet, commands answer 503.
      const d = await fetch(`${s.url}/api/v1/stop`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ runId: 'r-stop' }) });
      expect(d.status).toBe(503);
    } finally {
      await s.close();
    }
  });
});

describe('client config', () => {
  it('is written 0600 on first start and its token reused on the next', async () => {
    const configPath = join(p.dir, 'cfg', 'bpfleet', 'controller.json');
    const first = await startAdminApi({ store: p.store, port: 0, configPath, grpcAddress: '127.0.0.1:7474' });
    await first.server.close();
    expect(first.tokenCreated).toBe(true);
    expect(statSync(configPath).mode & 0o777).toBe(0o600);
    const cfg = readClientConfig(configPath)!;
    expect(cfg).toMatchObject({ adminUrl: first.server.url, grpcAddress: '127.0.0.1:7474' });
    expect(cfg.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const second = await startAdminApi({ store: p.store, port: 0, configPath });
    await second.server.close();
    expect(second.tokenCreated).toBe(false);
    expect(JSON.parse(readFileSync(configPath, 'utf8')).adminToken).toBe(cfg.adminToken);
  });
});
