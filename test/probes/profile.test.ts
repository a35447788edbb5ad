import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { FrameKind, probeBinary, requireRoot, runProbe } from '../lib/index.js';
import { decodeRecord, loadManifest, sumField } from './support.js';
import { buildFixture, calls, finalStats, sleep, startFixture } from './stacks-support.js';

let busyloop = '';

describe('profile on this kernel', () => {
  beforeAll(async () => {
    requireRoot();
    busyloop = await buildFixture('busyloop');
  });

  it('--manifest: an interval record with pid, comm, a sample count and a 2 KiB folded stack', () => {
    const m = JSON.parse(execFileSync(probeBinary('profile'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('profile'));
    expect(m.kind).toBe('interval');
    expect(m.record.name).toBe('profile_event');
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'samples' });
    expect(byName.pid).toMatchObject({ type: 'u32' });
    expect(byName.comm).toMatchObject({ type: 'comm', size: 16 });
    expect(m.hooks).toEqual([{ group: 'sample', program: 'profile_sample', kind: 'perf_event', target: 'cpu-clock' }]);
    expect(m.args.map((a: { name: string }) => a.name)).toEqual(['freq', 'include-idle', 'kernel-only', 'user-only']);
  });

  it('--describe: the cpu-clock perf event is available and selected', () => {
    const d = JSON.parse(execFileSync(probeBinary('profile'), ['--describe']).toString());
    expect(d.hooks).toEqual([
      { group: 'sample', kind: 'perf_event', target: 'cpu-clock', available: true, selected: true, reason: '' },
    ]);
  });

  it('rejects a bad --freq and exclusive stack options with the usage exit code', () => {
    const r = spawnSync(probeBinary('profile'), ['--freq', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/invalid --freq '0'/);
    const r2 = spawnSync(probeBinary('profile'), ['--kernel-only', '--user-only', '--duration', '1']);
    expect(r2.status).toBe(2);
    expect(r2.stderr.toString()).toMatch(/exclusive/);
  });

  it('a busy loop shows up under its own function, called from main, symbolized on the device', async () => {
    const fx = startFixture(busyloop, ['8']);
    const run = runProbe('profile', ['--json', '--pid', String(fx.pid), '--freq', '99', '--interval', '500'], {
      waitReady: true,
    });
    await run.ready;
    await sleep(3000);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    expect(res.events.length).toBeGreaterThan(0);
    expect(res.events.every((e) => e.pid === fx.pid && e.comm === 'busyloop')).toBe(true);
    const total = sumField(res.events, 'value');
    const inSpin = sumField(
      res.events.filter((e) => calls(e.stack, 'main', 'bpfleet_busyloop_spin')),
      'value',
    );
    // The loop spends nearly all its time in bpfleet_busyloop_spin; the 2 cores are shared, so
    // only a floor on the count: 3 s at 99 Hz is ~300 samples with a whole CPU.
    expect(total).toBeGreaterThanOrEqual(30);
    expect(inSpin / total).toBeGreaterThan(0.8);
    // One record per (pid, comm, stack) and interval: the same text never appears twice in one.
    const seen = new Set(res.events.map((e) => `${e.ts_ns}|${e.pid}|${e.comm}|${e.stack}`));
    expect(seen.size).toBe(res.events.length);
    // Kernel frames, where a sample caught the kernel (timer interrupt), come after the user
    // frames and carry _[k].
    for (const e of res.events) {
      const f = String(e.stack).split(';');
      const firstK = f.findIndex((x) => x.endsWith('_[k]'));
      if (firstK >= 0) expect(f.slice(firstK).every((x) => x.endsWith('_[k]'))).toBe(true);
    }
    const stats = finalStats('profile', res.stderr);
    expect(stats.loader).toEqual({ lost: 0, truncated: 0 });
    expect(stats.kernel.map_full).toBe(0);
    expect(res.stderr).toMatch(/profile: symbolized \d+ stacks/);
  });

  it('--kernel-only: only kernel frames; samples in user mode have an empty stack', async () => {
    const fx = startFixture(busyloop, ['6']);
    const run = runProbe('profile', ['--json', '--pid', String(fx.pid), '--freq', '199', '--kernel-only'], {
      waitReady: true,
    });
    await run.ready;
    await sleep(2500);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    // The loop runs in user mode: most samples there, with no kernel stack and no user one asked for.
    expect(res.events.some((e) => e.stack === '')).toBe(true);
    for (const e of res.events) {
      if (e.stack === '') continue;
      expect(String(e.stack).split(';').every((x) => x.endsWith('_[k]'))).toBe(true);
    }
  });

  it('a stack deeper than the field is cut at a frame boundary, ends in ;… and is counted', async () => {
    const fx = startFixture(busyloop, ['6', '120']);
    const run = runProbe('profile', ['--json', '--pid', String(fx.pid), '--freq', '99', '--user-only'], {
      waitReady: true,
    });
    await run.ready;
    await sleep(2500);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    const cut = res.events.filter((e) => String(e.stack).endsWith(';…'));
    expect(cut.length).toBeGreaterThan(0);
    for (const e of cut) {
      const s = String(e.stack);
      expect(Buffer.byteLength(s, 'utf8')).toBeLessThanOrEqual(2047);
      // Root first: main, then the recursion; whole frames only before the marker.
      expect(s.split(';').slice(0, -1).every((x) => /^(0x[0-9a-f]+|main|bpfleet_busyloop_recurse)$/.test(x))).toBe(true);
      expect(calls(s, 'main', 'bpfleet_busyloop_recurse')).toBe(true);
    }
    expect(finalStats('profile', res.stderr).loader.truncated).toBeGreaterThanOrEqual(cut.length);
  });

  it('machine mode: records decode with the manifest, the stack as UTF-8 text', async () => {
    const manifest = loadManifest('profile');
    const fx = startFixture(busyloop, ['6']);
    const run = runProbe('profile', ['--machine', '--pid', String(fx.pid), '--interval', '500', '--freq', '99'], {
      waitReady: true,
      stdout: 'frames',
    });
    await run.ready;
    await sleep(2000);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    const recs = res.frames.filter((f) => f.kind === FrameKind.Event).map((f) => decodeRecord(manifest, f.payload));
    expect(recs.length).toBeGreaterThan(0);
    expect(recs.some((r) => calls(r.stack, 'main', 'bpfleet_busyloop_spin'))).toBe(true);
    expect(res.frames.filter((f) => f.kind === FrameKind.Interval).length).toBeGreaterThanOrEqual(3);
  });
});
