import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../admin/admin-server.js';
import { populatedStore, type Populated } from '../admin/admin-fixture.js';
import type { FleetEvent } from '../fleet/fleet-events.js';
import { WebServer } from './web-server.js';

const TOKEN = 'test-admin-token-0123456789abcdef';
let p: Populated;
let admin: AdminServer;
let web: WebServer;
let dist: string;

beforeAll(async () => {
  p = await populatedStore();
  admin = await AdminServer.start({ store: p.store, fleet: p.fleet, token: TOKEN, port: 0, followPollMs: 50, log: () => undefined });
  dist = mkdtempSync(join(tmpdir(), 'bpfleet-web-dist-'));
  mkdirSync(join(dist, 'assets'));
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>bpfleet</title>');
  writeFileSync(join(dist, 'assets', 'app-1234.js'), 'console.log(1)');
  web = await WebServer.start({
    store: p.store, adminUrl: admin.url, adminToken: TOKEN, port: 0, distDir: dist, tickMs: 50, log: () => undefined,
    fleet: { onEvent: (l) => p.fleet.onEvent(l as never), devicesOnline: () => p.fleet.online, sessionsInfo: () => [] },
  });
});
afterAll(async () => {
  await web.close();
  await admin.close();
  await p.cleanup();
  rmSync(dist, { recursive: true, force: true });
});

const origin = () => web.url;
async function login(): Promise<string> {
  const r = await fetch(`${web.url}/web/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: origin() }, body: JSON.stringify({ token: TOKEN }) });
  expect(r.status).toBe(200);
  return r.headers.get('set-cookie')!.split(';')[0]!;
}

/** Reads SSE messages until `until` says stop; returns them parsed. */
async function readSse(res: Response, until: (msgs: { event: string; data: any }[]) => boolean): Promise<{ event: string; data: any }[]> {
  const reader = res.body!.getReader();
  const msgs: { event: string; data: any }[] = [];
  let buf = '';
  while (!until(msgs)) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += new TextDecoder().decode(value);
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join('\n');
      if (event) msgs.push({ event, data: JSON.parse(data) });
    }
  }
  await reader.cancel();
  return msgs;
}

describe('dashboard server', () => {
  it('refuses to start without the built page and says how to build it', async () => {
    await expect(WebServer.start({ store: p.store, adminUrl: admin.url, adminToken: TOKEN, port: 0, distDir: join(dist, 'nope'),
      fleet: { onEvent: () => () => undefined, devicesOnline: () => new Set(), sessionsInfo: () => [] } }))
      .rejects.toThrow(/dashboard is not built.*npx nx run controller:build-web/);
  });

  it('serves the page with a strict CSP, hashed assets cacheable, and nothing outside dist', async () => {
    const r = await fetch(`${web.url}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    expect(await r.text()).toContain('<title>bpfleet</title>');
    const a = await fetch(`${web.url}/assets/app-1234.js`);
    expect(a.headers.get('content-type')).toMatch(/javascript/);
    expect(a.headers.get('cache-control')).toMatch(/immutable/);
    expect((await fetch(`${web.url}/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${web.url}/..%2f..%2fetc%2fpasswd`)).status).toBe(404);
    expect((await fetch(`${web.url}/assets/../../package.json`)).status).not.toBe(200);
  });

  it('needs a session for /api and /web; login checks the token and the Origin', async () => {
    expect((await fetch(`${web.url}/api/v1/devices`)).status).toBe(401);
    expect((await fetch(`${web.url}/web/live`)).status).toBe(401);
    const wrong = await fetch(`${web.url}/web/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: origin() }, body: JSON.stringify({ token: 'x'.repeat(40) }) });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const noOrigin = await fetch(`${web.url}/web/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) });
    expect(noOrigin.status).toBe(403);
    const cookie = await login();
    expect(cookie).toMatch(/^bpfleet_session=[A-Za-z0-9_-]{43}$/);
    const devs = await fetch(`${web.url}/api/v1/devices`, { headers: { cookie } });
    expect(devs.status).toBe(200);
    expect(((await devs.json()) as { devices: { name: string }[] }).devices.map((d) => d.name).sort()).toEqual(['bench-1', 'bench-2']);
  });

  it('forwards POSTs from the page to the admin API and refuses them from another origin (CSRF)', async () => {
    const cookie = await login();
    const body = JSON.stringify({ runId: 'no-such-run' });
    const evil = await fetch(`${web.url}/api/v1/stop`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin: 'http://evil.example' }, body });
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as { error: string }).error).toMatch(/cross-origin/);
    const ok = await fetch(`${web.url}/api/v1/stop`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin: origin() }, body });
    expect(ok.status).toBe(404); // the admin API's own answer
    expect(((await ok.json()) as { error: string }).error).toMatch(/no run "no-such-run"/);
  });

  it('streams fleet updates and a probe\'s stored rows over SSE, batched per tick', async () => {
    const cookie = await login();
    const res = await fetch(`${web.url}/web/live?probe=tcpstates&since=0`, { headers: { cookie } });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    setTimeout(() => {
      // Three heartbeats of one device within a tick arrive as one update holding the latest.
      for (const cpu of [0.1, 0.2, 0.3]) {
        p.fleet.emit({ type: 'heartbeat', deviceId: p.bench1, heartbeat: { timeUnixNs: 1n, spoolBytes: 4096n,
          metrics: { cpuBusy: cpu, load1: 0, load5: 0, load15: 0, memAvailableBytes: 0n, memTotalBytes: 0n, agentCpuNs: 0n, agentRssBytes: 0n, netRxBytes: 0n, netTxBytes: 0n } } } as FleetEvent as never);
      }
      void p.ingest(15, 5);
    }, 300);
    const msgs = await readSse(res, (m) => m.some((x) => x.event === 'update') && m.filter((x) => x.event === 'rows').reduce((a, x) => a + x.data.rows.length, 0) >= 19);
    expect(msgs[0]).toEqual({ event: 'hello', data: { tickMs: 50, online: [p.bench1] } });
    const rows = msgs.filter((x) => x.event === 'rows').flatMap((x) => x.data.rows as { seq: number; probe: string }[]);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1)); // 14 stored before, 5 after, each once
    expect(new Set(rows.map((r) => r.probe))).toEqual(new Set(['tcpstates']));
    const updates = msgs.filter((x) => x.event === 'update');
    expect(updates).toHaveLength(1);
    expect(updates[0]!.data.heartbeats[p.bench1]).toMatchObject({ cpuBusy: 0.3, spoolBytes: 4096 });
  });

  it('logout ends the session', async () => {
    const cookie = await login();
    const out = await fetch(`${web.url}/web/logout`, { method: 'POST', headers: { cookie, origin: origin() } });
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toMatch(/Max-Age=0/);
    expect((await fetch(`${web.url}/web/session`, { headers: { cookie } })).status).toBe(401);
  });
});
