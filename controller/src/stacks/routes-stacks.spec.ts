// The flame graph and anomaly endpoints end to end: a real AdminServer over the admin fixture's
// SqliteStore (enrolled devices, tcpstates records) plus synthetic stack-probe records; and the
// CLI commands against it, in process.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { populatedStore, type Populated } from '../admin/admin-fixture.js';
import { AdminServer } from '../admin/admin-server.js';
import { runCli } from '../cli/main.js';
import { CLOCK_OFFSET_NS, stackBatch, stackManifest, type StackSample } from './stack-fixture.js';
import { findAll, parseXml } from './xml-check.js';

const TOKEN = 'test-admin-token-0123456789abcdef';
const profile = stackManifest('profile', 'samples');
const S = 1_000_000_000n;
const T0 = 40; // second of the synthetic run at a minute boundary (CLOCK_OFFSET_NS + 40 s)
const NOW_MS = Number((CLOCK_OFFSET_NS + BigInt(T0 + 12 * 60) * S) / 1_000_000n); // the end of minute 12
const A = 'main;run;compress;deflate';

let p: Populated;
let server: AdminServer;

/** 12 minutes of profile on bench-1 (compress jumps from 2% to 40% at minute 8), 12 stable ones on bench-2. */
function minutes(jumpAt: number | null, awkward = false): StackSample[] {
  const out: StackSample[] = [];
  for (let w = 0; w < 12; w++) {
    const s = BigInt(T0 + w * 60 + 5) * S;
    const a = jumpAt !== null && w >= jumpAt ? 40 : 2;
    out.push({ tsNs: s, stack: 'main;run;work', value: 90 - a, comm: 'app' }, { tsNs: s + 1n, stack: A, value: a, comm: 'app' },
      { tsNs: s + 2n, stack: 'ret_from_fork_[k];kthread_[k];worker_[k]', value: 10, comm: 'kworker/0:1' });
    if (awkward) out.push({ tsNs: s + 3n, stack: 'main;operator<<&"x"', value: 1, comm: 'app' });
  }
  return out;
}

beforeAll(async () => {
  p = await populatedStore();
  await p.store.putManifest(profile.schemaId, profile.manifest);
  await p.store.ingestBatch(p.bench1, stackBatch(profile.schemaId, profile.manifest, `${p.bench1}/profile/r1`, 1, minutes(8, true)));
  await p.store.ingestBatch(p.bench2, stackBatch(profile.schemaId, profile.manifest, `${p.bench2}/profile/r1`, 1, minutes(null)));
  server = await AdminServer.start({ store: p.store, fleet: p.fleet, token: TOKEN, port: 0, now: () => NOW_MS, log: () => undefined });
});
afterAll(async () => {
  await server?.close();
  await p?.cleanup();
});

const get = (path: string) => fetch(server.url + path, { headers: { authorization: `Bearer ${TOKEN}` } });

const folded = (lines: string[]) => lines.map((l) => `${l}\n`).join('');

describe('GET /api/v1/flamegraph', () => {
  it('draws the SVG of a device and window', async () => {
    const r = await get('/api/v1/flamegraph?device=bench-1&probe=profile&since=12m');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('image/svg+xml; charset=utf-8');
    expect([r.headers.get('x-bpfleet-records'), r.headers.get('x-bpfleet-total')]).toEqual(['48', '1212']);
    const svg = parseXml(await r.text());
    const titles = findAll(svg, (e) => e.name === 'title').map((t) => t.text);
    expect(titles).toContain('deflate\n176 samples, 14.52%');
    expect(titles).toContain('operator<<&"x"\n12 samples, 0.99%');
    expect(findAll(svg, (e) => e.attrs['class'] === 'title')[0]!.text).toBe('profile on bench-1');
    expect(findAll(svg, (e) => e.attrs['class'] === 'sub')[0]!.text).toBe('2023-11-14 22:14:00 to now UTC: 1,212 samples in 48 records');
  });

  it('answers folded text and a JSON tree, per process on request', async () => {
    const f = await get('/api/v1/flamegraph?device=bench-1&probe=profile&since=12m&format=folded');
    expect(f.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await f.text()).toBe(folded(['main;operator<<&"x" 12', `${A} 176`, 'main;run;work 904', 'ret_from_fork_[k];kthread_[k];worker_[k] 120']));
    const j = await (await get('/api/v1/flamegraph?device=bench-1&probe=profile&format=json&perProcess=1')).json() as any;
    expect(j).toMatchObject({ probe: 'profile', unit: 'samples', perProcess: true, devices: 'bench-1', since: null, total: 1212, records: 48 });
    expect(j.tree.children.map((c: any) => [c.name, c.value])).toEqual([['app', 1092], ['kworker/0:1', 120]]);
    const sel = await (await get('/api/v1/flamegraph?device=board%3Dhi3516dv300&probe=profile&format=json')).json() as any;
    expect([sel.devices, sel.total]).toEqual(['bench-2', 1200]);
    const all = await (await get('/api/v1/flamegraph?probe=profile&format=json')).json() as any;
    expect([all.devices, all.total]).toEqual(['all devices', 2412]);
  });

  it('draws a differential graph against the window before, shares normalized', async () => {
    const f = await get('/api/v1/flamegraph?device=bench-1&probe=profile&since=4m&diffSince=12m&format=folded');
    expect(await f.text()).toBe(folded(['main;operator<<&"x" 8 4', `${A} 16 160`, 'main;run;work 704 200', 'ret_from_fork_[k];kthread_[k];worker_[k] 80 40']));
    const r = await get('/api/v1/flamegraph?device=bench-1&probe=profile&since=4m&diffSince=12m');
    expect(r.headers.get('x-bpfleet-baseline-total')).toBe('808');
    const svg = parseXml(await r.text());
    const g = findAll(svg, (e) => e.name === 'g' && e.children.some((c) => c.name === 'title' && c.text.startsWith('deflate\n')))[0]!;
    expect(g.children.find((c) => c.name === 'title')!.text).toBe(
      'deflate\nnow: 160 samples (39.60%)\nbaseline: 16 samples (1.98%)\nchange: +37.62 percentage points');
    expect(g.children.find((c) => c.name === 'rect')!.attrs['fill']).toMatch(/^rgb\(250,/);
    const d = await (await get('/api/v1/flamegraph?device=bench-1&probe=profile&diffDevice=bench-2&format=json')).json() as any;
    expect(d.baseline).toMatchObject({ devices: 'bench-2', total: 1200, vanishedStacks: 0 });
    expect(d.tree.children.find((c: any) => c.name === 'main').baseline).toBe(1080);
  });

  it('answers errors a user can act on', async () => {
    const err = async (path: string) => { const r = await get(path); return [r.status, ((await r.json()) as { error: string }).error]; };
    expect(await err('/api/v1/flamegraph?device=bench-1&probe=tcpstates')).toEqual([400, expect.stringMatching(
      /^probe tcpstates has no "stack" field \(its fields: ts_ns, .*\): flame graphs and stack anomalies need a stack probe \(profile, offcputime/)]);
    expect(await err('/api/v1/flamegraph?device=nope&probe=profile')).toEqual([404, 'device "nope" matches no device (enrolled: bench-1, bench-2)']);
    expect(await err('/api/v1/flamegraph?device=bench-1')).toEqual([400, expect.stringMatching(/^probe is required/)]);
    expect(await err('/api/v1/flamegraph?probe=profile&format=png')).toEqual([400, 'format must be svg, folded or json, got "png"']);
    expect(await err('/api/v1/flamegraph?probe=profile&since=1m&until=5m')).toEqual([400, expect.stringMatching(/^the window ends .* before it starts/)]);
    expect(await err('/api/v1/flamegraph?probe=profile&diffSince=5m')).toEqual([400, 'diffSince needs diffUntil, or since (which then ends the baseline window)']);
    expect(await err('/api/v1/flamegraph?probe=memleak&device=bench-2')).toEqual([404, 'no stored memleak records on this device: stack probes with stored records: profile']);
  });
});

describe('GET /api/v1/anomalies', () => {
  it('flags the jump on bench-1 at minute 8 and nothing on bench-2', async () => {
    const r = await get('/api/v1/anomalies?since=12m');
    expect(r.status).toBe(200);
    const body = await r.json() as any;
    expect(body).toMatchObject({ windowMs: 60_000, windows: 12, perProcess: true, firstWindow: '2023-11-14T22:14:00.000000000Z' });
    expect(body.series.map((s: any) => [s.device, s.probe, s.windowsWithData])).toEqual([['bench-1', 'profile', 12], ['bench-2', 'profile', 12]]);
    expect(body.anomalies).toEqual([expect.objectContaining({
      windowStart: '2023-11-14T22:22:00.000000000Z', windowEnd: '2023-11-14T22:23:00.000000000Z', device: 'bench-1', probe: 'profile',
      kind: 'jump', stack: `app;${A}`, share: 40 / 101, value: 40, unit: 'samples', samples: 40, windowTotal: 101 })]);
    expect(body.anomalies[0].z).toBeGreaterThan(4);
    const strict = await (await get('/api/v1/anomalies?since=12m&minShare=0.5')).json() as any;
    expect(strict.anomalies).toEqual([]);
    const bad = await get('/api/v1/anomalies?probe=tcpstates&since=12m');
    expect(bad.status).toBe(400);
  });
});

class Sink extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _enc: string, cb: () => void) { this.text += chunk.toString(); cb(); }
}

async function cli(args: string[], tty = false) {
  const stdout = new Sink(), stderr = new Sink();
  stdout.isTTY = tty;
  const env = { HOME: p.dir, BPFLEET_ADMIN_URL: server.url, BPFLEET_ADMIN_TOKEN: TOKEN };
  const code = await runCli(args, { stdout, stderr, env, now: () => NOW_MS });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('bpfleet flamegraph and anomalies', () => {
  it('flamegraph writes folded text, an SVG file, and refuses an SVG on a terminal', async () => {
    const f = await cli(['flamegraph', '--device', 'bench-1', '--probe', 'profile', '--since', '12m', '--folded']);
    expect(f).toMatchObject({ code: 0, stderr: '' });
    expect(f.stdout).toBe(folded(['main;operator<<&"x" 12', `${A} 176`, 'main;run;work 904', 'ret_from_fork_[k];kthread_[k];worker_[k] 120']));
    const file = `${p.dir}/cpu.svg`;
    const s = await cli(['flamegraph', '--device', 'bench-1', '--probe', 'profile', '-o', file]);
    expect(s.code).toBe(0);
    const { readFileSync } = await import('node:fs');
    expect(parseXml(readFileSync(file, 'utf8')).name).toBe('svg');
    const tty = await cli(['flamegraph', '--probe', 'profile'], true);
    expect([tty.code, tty.stderr]).toEqual([2, expect.stringMatching(/an SVG is no use on a terminal: redirect it/)]);
    const empty = await cli(['flamegraph', '--probe', 'profile', '--since', '2023-01-01T00:00:00Z', '--until', '2023-01-02T00:00:00Z', '--folded']);
    expect([empty.code, empty.stdout, empty.stderr]).toEqual([0, '', expect.stringMatching(/no profile records in this window/)]);
    const wrong = await cli(['flamegraph', '--probe', 'tcpstates', '--folded']);
    expect([wrong.code, wrong.stderr]).toEqual([1, expect.stringMatching(/^bpfleet: probe tcpstates has no "stack" field/)]);
  });

  it('flamegraph --input draws a loader\'s --json output without the controller', async () => {
    const { writeFileSync, readFileSync } = await import('node:fs');
    const file = `${p.dir}/profile.jsonl`;
    writeFileSync(file, [
      { ts_ns: 1, pid: 7, comm: 'busy', value: 5, stack: 'main;spin' },
      { ts_ns: 2, pid: 7, comm: 'busy', value: 3, stack: 'main;spin' },
      { ts_ns: 3, pid: 8, comm: 'sh', value: 2, stack: 'main;read;vfs_read_[k]' },
      { ts_ns: 4, pid: 9, comm: 'loadmon', value: 0, stack: '' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const f = await cli(['flamegraph', '--input', file, '--per-process', '--folded']);
    expect(f).toEqual({ code: 0, stdout: 'busy;main;spin 8\nsh;main;read;vfs_read_[k] 2\n', stderr: '' });
    const out = `${p.dir}/input.svg`;
    expect((await cli(['flamegraph', '--input', file, '--unit', 'ns', '-o', out])).code).toBe(0);
    const titles = findAll(parseXml(readFileSync(out, 'utf8')), (e) => e.name === 'title').map((t) => t.text);
    expect(titles).toContain('spin\n8 ns, 80.00%');
    writeFileSync(`${p.dir}/tcp.jsonl`, '{"ts_ns":1,"lport":80}\n');
    const bad = await cli(['flamegraph', '--input', `${p.dir}/tcp.jsonl`, '--folded']);
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringMatching(/tcp\.jsonl:1: no "stack" text field: is this the --json output of a stack probe/)]);
    const mixed = await cli(['flamegraph', '--input', file, '--since', '5m']);
    expect([mixed.code, mixed.stderr]).toEqual([2, expect.stringMatching(/--since reads the controller's store; --input draws only the file/)]);
  });

  it('anomalies prints a table for people and JSON for scripts', async () => {
    const t = await cli(['anomalies', '--since', '12m']);
    expect(t.code).toBe(0);
    const [head, row, end] = t.stdout.split('\n');
    expect(head).toMatch(/^WINDOW +DEVICE +PROBE +KIND +SHARE +BEFORE +Z +STACK$/);
    expect(row).toMatch(/^2023-11-14 22:22:00 +bench-1 +profile +jump +39\.6% +2\.\d% +\d+\.\d +app: …;run;compress;deflate$/);
    expect(end).toBe('');
    expect(t.stderr).toBe('(12 windows of 60s; series: bench-1/profile (12 with data), bench-2/profile (12 with data))\n');
    const j = await cli(['anomalies', '--device', 'bench-1', '--since', '12m', '--json']);
    expect((JSON.parse(j.stdout) as any[]).map((a) => [a.device, a.kind, a.stack])).toEqual([['bench-1', 'jump', `app;${A}`]]);
    const none = await cli(['anomalies', '--device', 'bench-2', '--since', '12m']);
    expect(none.stdout).toBe('no anomalies (12 windows of 60s; series: bench-2/profile (12 with data))\n');
  });
});
