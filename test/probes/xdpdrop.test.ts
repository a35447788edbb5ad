import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createVethPair, parsePing, probeBinary, requireRoot, runProbe, type VethPair } from '../lib/index.js';
import { loadManifest, sumField } from './support.js';

function runIn(pair: VethPair, args: readonly string[]) {
  return runProbe('xdpdrop', [...pair.nsArgs(pair.targetNs), probeBinary('xdpdrop'), '--json', '--ifname', pair.targetIf, ...args], {
    bin: 'ip',
    waitReady: true,
  });
}

async function ping(pair: VethPair, from: string, to: string, count: number, v6 = false) {
  const out = await pair
    .exec(pair.peerNs, 'ping', [...(v6 ? ['-6'] : []), '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', '-I', from, to])
    .catch((e: Error) => e.message); // exit 1 when replies are missing: parse anyway
  return parsePing(out);
}

describe('xdpdrop', () => {
  let pair: VethPair;
  let tmp: string;
  // IPv6 on the same link: the target, one blocked and one allowed source (no DAD delay).
  const v6 = { target: 'fd42:b0f1:ee7::1', blocked: 'fd42:b0f1:ee7::bad', allowed: 'fd42:b0f1:ee7::900d' };

  beforeAll(() => {
    requireRoot();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'xdpdrop-'));
    pair = createVethPair('xdrop', 1);
    execFileSync('ip', ['-n', pair.targetNs, 'addr', 'add', `${v6.target}/64`, 'dev', pair.targetIf, 'nodad']);
    for (const a of [v6.blocked, v6.allowed]) execFileSync('ip', ['-n', pair.peerNs, 'addr', 'add', `${a}/64`, 'dev', pair.peerIf, 'nodad']);
  });

  afterAll(() => {
    pair?.remove();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('--manifest: per-prefix drop records and a passed record per interval', () => {
    const m = JSON.parse(execFileSync(probeBinary('xdpdrop'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('xdpdrop'));
    expect(m.kind).toBe('interval');
    expect(m.record).toMatchObject({ name: 'xdpdrop_event', size: 64 });
    expect(m.hooks).toEqual([{ group: 'rx', program: 'xdpdrop_xdp', kind: 'xdp', target: '--ifname' }]);
    expect(m.args.map((a: { name: string }) => a.name)).toEqual(['ifname', 'xdp-mode', 'block', 'block-file']);
  });

  it('rejects a bad prefix with exit 2, naming it and where it came from', () => {
    const file = path.join(tmp, 'bad.txt');
    writeFileSync(file, '# comment\n10.0.0.0/8\n\n10.1.2.300/32\n');
    for (const [args, msg] of [
      [['--block', '10.0.0.0/33'], /--block: '10.0.0.0\/33' is not an IPv4 or IPv6 prefix/],
      [['--block', 'example.com'], /'example.com' is not/],
      [['--block-file', file], /bad.txt line 4: '10.1.2.300\/32' is not/],
      [['--block-file', path.join(tmp, 'missing')], /cannot read --block-file/],
    ] as const) {
      const r = spawnSync(probeBinary('xdpdrop'), ['--ifname', 'lo', ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('drops the blocklisted IPv4 and IPv6 sources while the others pass, counted per prefix', async () => {
    const [allowed4, blocked4] = pair.peerAddrs as [string, string];
    const file = path.join(tmp, 'block.txt');
    // The IPv6 prefix with host bits set is cleared to fd42:b0f1:ee7::b00/120 (covers ::bad).
    writeFileSync(file, `# blocklist\n${v6.target.replace('::1', '::b01')}/120   # v6\n192.0.2.0/24\n`);
    const run = runIn(pair, ['--interval', '200', '--block', `${blocked4}/32`, '--block-file', file, '--block', `${blocked4}`]);
    await run.ready;
    expect(run.stderr()).toContain('xdpdrop: 3 prefixes (2 IPv4, 1 IPv6)');
    const N = 40;
    // Allowed sources first: they resolve the peer's neighbour entry for the target. (IPv6
    // neighbour solicitations from a blocked source are IPv6 packets from it: dropped too.)
    const a4 = await ping(pair, allowed4, pair.targetAddr, N);
    const b4 = await ping(pair, blocked4, pair.targetAddr, N);
    const a6 = await ping(pair, v6.allowed, v6.target, N, true);
    const b6 = await ping(pair, v6.blocked, v6.target, N, true);
    await new Promise((r) => setTimeout(r, 500));
    const res = await run.stop();
    expect(res.code).toBe(0);

    expect([b4.sent, a4.sent, b6.sent, a6.sent]).toEqual([N, N, N, N]);
    expect([b4.received, a4.received, b6.received, a6.received]).toEqual([0, N, 0, N]);
    const drops = res.events.filter((e) => e.type === 1);
    const of = (addr: string) => drops.filter((e) => e.addr === addr);
    // Every echo request from a blocked source is one drop of its prefix (its replies never exist).
    expect(sumField(of(blocked4), 'packets')).toBe(N);
    expect(of(blocked4).every((e) => e.prefixlen === 32 && e.family === 'IPv4' && e.rule === 0)).toBe(true);
    expect(sumField(of('fd42:b0f1:ee7::b00'), 'packets')).toBe(N);
    expect(of('fd42:b0f1:ee7::b00').every((e) => e.prefixlen === 120 && e.family === 'IPv6' && e.rule === 1)).toBe(true);
    expect(of('192.0.2.0')).toHaveLength(0); // no traffic from it: no record
    expect(drops.every((e) => (e.bytes as number) >= (e.packets as number) * 42)).toBe(true);
    // The allowed requests passed (plus ARP / neighbour discovery).
    const passed = sumField(res.events.filter((e) => e.type === 0), 'packets');
    expect(passed).toBeGreaterThanOrEqual(2 * N);
    const last = res.events.filter((e) => e.type === 0).at(-1)!;
    expect(last.packets_total).toBe(passed);
  });

  it('with an empty blocklist drops nothing and says so', async () => {
    const run = runIn(pair, ['--interval', '200']);
    await run.ready;
    expect(run.stderr()).toMatch(/0 prefixes .*nothing will be dropped/);
    const p = await ping(pair, pair.peerAddrs[1]!, pair.targetAddr, 10);
    await new Promise((r) => setTimeout(r, 400));
    const res = await run.stop();
    expect(p.received).toBe(10);
    expect(res.events.filter((e) => e.type === 1)).toHaveLength(0);
    expect(sumField(res.events, 'packets')).toBeGreaterThanOrEqual(10);
  });
});
