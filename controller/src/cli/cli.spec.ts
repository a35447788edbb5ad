// The CLI as a user runs it: a child process (bin/bpfleet.js through tsx) against a real admin
// server over a real SqliteStore, its config found in $HOME/.config/bpfleet/controller.json.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { populatedStore, type Populated } from '../admin/admin-fixture.js';
import type { AdminServer } from '../admin/admin-server.js';
import { readClientConfig } from '../admin/client-config.js';
import { startAdminApi } from '../admin/start-admin.js';
import { eventToJson } from '../export/event-json.js';
import { prepareExport } from '../export/exporter.js';

const BIN = fileURLToPath(new URL('../../bin/bpfleet.js', import.meta.url));

let p: Populated;
let server: AdminServer;
let home: string;
let token: string;

beforeAll(async () => {
  p = await populatedStore();
  home = join(p.dir, 'home');
  const started = await startAdminApi({ store: p.store, fleet: p.fleet, port: 0, followPollMs: 50,
    configPath: join(home, '.config', 'bpfleet', 'controller.json'), grpcAddress: '127.0.0.1:7474' });
  server = started.server;
  token = readClientConfig(started.configPath)!.adminToken;
});
afterAll(async () => {
  await server?.close();
  await p?.cleanup();
});

interface Run { code: number; stdout: string; stderr: string }

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: home, ...extra };
  return e;
}

/** Runs bpfleet asynchronously: the server answering it lives in this process. */
function bpfleet(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: env(extraEnv), timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('bpfleet against a running admin API', () => {
  it('devices --json lists the enrolled devices (config from the file the controller wrote)', async () => {
    const r = await bpfleet(['devices', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const devices = JSON.parse(r.stdout) as { id: string; name: string; online: boolean }[];
    expect(devices.map((d) => [d.id, d.name, d.online])).toEqual([[p.bench1, 'bench-1', true], [p.bench2, 'bench-2', false]]);
  });

  it('devices prints an aligned table for people', async () => {
    const r = await bpfleet(['devices']);
    expect(r.code).toBe(0);
    const [header, first, second] = r.stdout.split('\n');
    expect(header).toMatch(/^NAME +ID +STATE +TRANSPORT +BOARD +ARCH +KERNEL +LAST SEEN +LABELS$/);
    expect(first).toMatch(/^bench-1 +d-\S+ +online +\S+ +dayu200 +arm64 +6\.1\.0-test +.* board=dayu200,lab=3$/);
    expect(second).toMatch(/^bench-2 +d-\S+ +offline +\S+ +hi3516dv300 +arm /);
    expect(first!.indexOf(p.bench1)).toBe(header!.indexOf('ID'));
  });

  it('events --probe tcpstates --json returns exactly the stored records', async () => {
    const stored = await p.store.events({ probe: 'tcpstates', limit: 100_000 });
    const r = await bpfleet(['events', '--probe', 'tcpstates', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(JSON.stringify(stored.map(eventToJson))));
  });

  it('events prints one column per field of a single probe', async () => {
    const r = await bpfleet(['events', '--device', 'bench-1', '--limit', '3']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME +DEVICE +SKADDR +PID +COMM +FAMILY +SADDR +LPORT +DADDR +RPORT +OLDSTATE +NEWSTATE +DELTA_US$/);
    expect(lines[1]).toMatch(/^2023-11-14 22:13:25\.000001 +bench-1 +0x\S+ +1001 +curl +IPv4 +127\.0\.0\.1 +40001 /);
    expect(lines).toHaveLength(4);
    expect(r.stderr).toMatch(/more records/);
  });

  it('export --format csv matches the store, to stdout and to a file', async () => {
    let want = '';
    for await (const c of (await prepareExport(p.store, 'csv', { probe: 'tcpstates' })).chunks()) want += c;
    expect(want).toContain('"say ""hi"""');
    const r = await bpfleet(['export', '--format', 'csv', '--probe', 'tcpstates']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(want);
    const file = join(p.dir, 'out.csv');
    const f = await bpfleet(['export', '--format', 'csv', '--probe', 'tcpstates', '-o', file]);
    expect(f.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(want);
    expect(existsSync(`${file}.partial`)).toBe(false);
  });

  it('export --format influx writes line protocol', async () => {
    const r = await bpfleet(['export', '--format', 'influx', '--device', 'bench-1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`tcpstates,comm=say\\ "hi",device=${p.bench1},family=IPv6,newstate=FIN_WAIT1,oldstate=ESTABLISHED `);
  });

  it('fails on a wrong token with the reason, whether it came from a flag or the environment', async () => {
    const flag = await bpfleet(['devices', '--token', 'wrong']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toBe(`bpfleet: the controller at ${server.url} refused the admin token (wrong admin token); the token came from --token\n`);
    const envTok = await bpfleet(['devices'], { BPFLEET_ADMIN_TOKEN: 'wrong' });
    expect(envTok.code).toBe(1);
    expect(envTok.stderr).toMatch(/refused the admin token \(wrong admin token\); the token came from BPFLEET_ADMIN_TOKEN/);
    // Flags win over the environment.
    expect((await bpfleet(['devices', '--json', '--token', token], { BPFLEET_ADMIN_TOKEN: 'wrong' })).code).toBe(0);
  });

  it('says when the controller cannot be reached', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => { const a = s.address() as AddressInfo; s.close(() => resolve(a.port)); });
    });
    const r = await bpfleet(['devices'], { BPFLEET_ADMIN_URL: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bpfleet: cannot reach the controller at http://127.0.0.1:${port}: connection refused; is \`bpfleet controller\` running?\n`);
  });

  it('deploy prints each device result and exits 1 when one failed', async () => {
    p.fleet.script = { 'bench-2': { deploy: 'no loader built for arm' } };
    const r = await bpfleet(['deploy', 'tcpstates', '--to', 'bench-1,bench-2', '--args', "--rport 443 --comm 'my app'"]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^DEVICE +DEPLOY +START +RUN +ERROR$/);
    expect(lines[1]).toMatch(/^bench-1 +ok +ok +run-\d+$/);
    expect(lines[2]).toMatch(/^bench-2 +FAILED +- +- +no loader built for arm$/);
    expect(r.stderr).toBe('1 of 2 devices failed\n');
    expect(p.fleet.calls.at(-1)).toMatch(/^start tcpstates \{"devices":\[".*"\]\} \["--rport","443","--comm","my app"\]$/);

    p.fleet.script = {};
    const ok = await bpfleet(['deploy', 'tcpstates', '--to', 'board=dayu200', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, devices: [{ name: 'bench-1', deployed: true, started: true }] });
  });

  it('deploy and stop report errors from the API', async () => {
    const none = await bpfleet(['deploy', 'tcpstates', '--to', 'board=none']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('bpfleet: no device matches selector "board=none"\n');
    const missing = await bpfleet(['deploy', 'tcpstates']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--to is required/);
    await p.store.startRun({ runId: 'cli-run', deviceId: p.bench1, probe: 'tcpstates', args: [] });
    const stop = await bpfleet(['stop', 'cli-run']);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toBe(`stopped tcpstates run cli-run on ${p.bench1}\n`);
    const unknown = await bpfleet(['stop', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^bpfleet: no run "nope"/);
  });

  it('token create prints a token a device can enroll with', async () => {
    const r = await bpfleet(['token', 'create', '--label', 'board=dayu200', '--label', 'lab=4', '--ttl', '10m']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/valid for 10m .*labels board=dayu200,lab=4/);
    const e = await p.store.enroll({ token: r.stdout.trim(), deviceName: 'bench-new' });
    expect(e.labels).toEqual({ board: 'dayu200', lab: '4' });
  });

  it('stats shows the loss per stage as a table and as JSON', async () => {
    const r = await bpfleet(['stats']);
    expect(r.code).toBe(0);
    const [header, row] = r.stdout.split('\n');
    expect(header).toMatch(/^DEVICE +PROBE +RUN +WROTE +STORED +RINGBUF FULL +MAP FULL +LOADER +QUEUE +EVICTED +CORRUPT +GAPS OPEN +GAPS LOST +REJECTED +DUP +SAMPLED$/);
    expect(row).toMatch(/^bench-1 +tcpstates +r1 +20 +1\d +3 +0 +1 +0 +2 +0 +0 +0 +0 +0 +0$/);
    const j = await bpfleet(['stats', '--json']);
    expect(JSON.parse(j.stdout)[0]).toMatchObject({ streamId: p.stream, kernelRingbufFull: '3', spoolEvicted: '2' });
  });

  it('probes, runs --json and --help work', async () => {
    const probes = JSON.parse((await bpfleet(['probes', '--json'])).stdout) as { probe: string }[];
    expect(probes.map((x) => x.probe)).toContain('tcpstates');
    const runs = JSON.parse((await bpfleet(['runs', '--json'])).stdout) as { runId: string }[];
    expect(runs.map((x) => x.runId)).toContain('cli-run');
    const help = await bpfleet(['events', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^bpfleet events: show stored events/);
    const ctl = await bpfleet(['controller', '--admin', 'nonsense']);
    expect(ctl.code).toBe(2);
    expect(ctl.stderr).toBe("bpfleet: --admin takes HOST:PORT, not 'nonsense'\n");
  });

  it('events --follow --json prints records as they are stored', async () => {
    const child = spawn(process.execPath, [BIN, 'events', '--follow', '--json', '--probe', 'tcpstates'], { env: env() });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // What is stored when the follow starts is not news; keep storing until the child shows some.
      const first = Number((await p.store.streams())[0]!.nextSeq);
      let next = first;
      const seen = () => out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq);
      for (let i = 0; i < 100 && seen().length < 2; i++) {
        if (i % 4 === 0) { await p.ingest(next, 1); next++; }
        await new Promise((r) => setTimeout(r, 100));
      }
      const seqs = seen();
      expect(seqs.length).toBeGreaterThanOrEqual(2);
      expect(seqs.every((s) => s >= first && s < next)).toBe(true);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y).filter((s, i, a) => a.indexOf(s) === i)); // in order, once each
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });
});

describe('bpfleet controller --metrics-token-file', () => {
  const freePort = () => new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const a = s.address() as AddressInfo; s.close(() => resolve(a.port)); });
  });

  it('refuses a short token; with one, scrapes need it and see the process families', async () => {
    const dir = join(p.dir, 'metrics-token');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'short'), 'abc\n');
    const bad = await bpfleet(['controller', '--data-dir', dir, '--metrics-token-file', join(dir, 'short')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/the metrics token is 3 characters; use at least 16/);
    const tok = 'scrape-'.padEnd(40, 'x');
    writeFileSync(join(dir, 'token'), `${tok}\n`);
    const [grpcPort, adminPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [BIN, 'controller', '--data-dir', dir, '--grpc', `127.0.0.1:${grpcPort}`,
      '--admin', `127.0.0.1:${adminPort}`, '--metrics-token-file', join(dir, 'token')], { env: env({ XDG_CONFIG_HOME: join(dir, 'config') }) });
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    try {
      const deadline = Date.now() + 20_000;
      while (!err.includes('admin API on') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      expect(err).toContain(`admin API on http://127.0.0.1:${adminPort}`);
      const url = `http://127.0.0.1:${adminPort}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: 'Bearer wrong-token-of-some-length' } })).status).toBe(401);
      const ok = await fetch(url, { headers: { authorization: `Bearer ${tok}` } });
      expect(ok.status).toBe(200);
      const text = await ok.text();
      expect(text).toMatch(/^bpfleet_event_loop_delay_seconds\{quantile="0\.99"\} [\d.e-]+$/m);
      expect(text).toMatch(/^bpfleet_process_resident_memory_bytes [1-9]\d+$/m);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  });
});
