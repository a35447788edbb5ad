import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { probeBinary, requireKernelFeature, requireRoot, runProbe } from '../lib/index.js';
import { loadManifest } from './support.js';
import { buildFixture, finalStats, sleep, startFixture } from './stacks-support.js';

let leaker = '';
const N = 100;
const SIZE = 12345;

const userLeaf = (stack: unknown): string => String(stack).split(';').filter((f) => !f.endsWith('_[k]')).at(-1) ?? '';

describe('memleak on this kernel', () => {
  beforeAll(async () => {
    requireRoot();
    requireKernelFeature(
      'uprobes',
      () => existsSync('/sys/bus/event_source/devices/uprobe/type') || 'no uprobe PMU (CONFIG_UPROBE_EVENTS)',
    );
    leaker = await buildFixture('leaker');
  });

  it('--manifest: bytes and allocations outstanding per stack; uprobes on libc', () => {
    const m = JSON.parse(execFileSync(probeBinary('memleak'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('memleak'));
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'bytes' });
    expect(byName.count).toMatchObject({ type: 'u64', unit: 'allocations' });
    expect(new Set(m.hooks.map((h: { kind: string; target: string }) => `${h.kind}:${h.target}`))).toEqual(
      new Set(['uprobe:libc:malloc', 'uprobe:libc:calloc', 'uprobe:libc:realloc', 'uprobe:libc:free']),
    );
  });

  it('without --pid: the usage exit code and what to do', () => {
    const r = spawnSync(probeBinary('memleak'), ['--duration', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/--pid PID is required/);
  });

  it(`a program leaking ${N} blocks of ${SIZE} bytes shows ${N} outstanding; freed ones do not`, async () => {
    const fx = startFixture(leaker, [String(N), String(SIZE), '1500', '3000']);
    const { pid } = await fx.firstLine();
    const run = runProbe('memleak', ['--json', '--pid', String(pid), '--min-age-ms', '200', '--interval', '500'], {
      waitReady: true,
    });
    await run.ready;
    await run.waitForEvent((e) => userLeaf(e.stack) === 'bpfleet_leak', 15_000);
    await sleep(600);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    const leaks = res.events.filter((e) => e.pid === pid && userLeaf(e.stack) === 'bpfleet_leak');
    expect(leaks.length).toBeGreaterThan(0);
    // Once all are made, every check sees exactly N blocks of SIZE, from main.
    const last = leaks.at(-1)!;
    expect(last).toMatchObject({ comm: 'leaker', count: N, value: N * SIZE });
    expect(String(last.stack)).toMatch(/(^|;)main;bpfleet_leak$/);
    // The calloc/free pairs of bpfleet_churn are never outstanding.
    expect(res.events.some((e) => String(e.stack).includes('bpfleet_churn'))).toBe(false);
    expect(finalStats('memleak', res.stderr).loader).toEqual({ lost: 0, truncated: 0 });
  });

  it('--min-age-ms longer than the run reports nothing', async () => {
    const fx = startFixture(leaker, [String(N), String(SIZE), '1000', '3000']);
    const { pid } = await fx.firstLine();
    const run = runProbe('memleak', ['--json', '--pid', String(pid), '--min-age-ms', '60000', '--interval', '300'], {
      waitReady: true,
    });
    await run.ready;
    await sleep(2500);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    expect(res.events).toEqual([]);
    expect(finalStats('memleak', res.stderr).intervals).toBeGreaterThanOrEqual(3);
  });
});
