import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { probeBinary, requireRoot, runProbe } from '../lib/index.js';
import { loadManifest } from './support.js';
import { finalStats, sleep } from './stacks-support.js';

const load1 = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/** Kernel work with a known stack: dd reading /dev/zero spends its time in read(). */
let dd: ChildProcess | undefined;
function startDd(): ChildProcess {
  dd = spawn('dd', ['if=/dev/zero', 'of=/dev/null', 'bs=64k'], { stdio: 'ignore' });
  return dd;
}

describe('loadmon on this kernel', () => {
  beforeAll(() => {
    requireRoot();
  });
  afterEach(() => {
    dd?.kill('SIGKILL');
    dd = undefined;
  });

  it('--manifest: kind (samples, armed, disarmed), load and threshold, folded kernel stack', () => {
    const m = JSON.parse(execFileSync(probeBinary('loadmon'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('loadmon'));
    expect(m.kind).toBe('interval');
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'samples' });
    expect(byName.kind).toMatchObject({ type: 'u8' });
    expect(m.hooks).toEqual([{ group: 'sample', program: 'loadmon_sample', kind: 'perf_event', target: 'cpu-clock' }]);
  });

  it('arms with a threshold below the load average: kernel stacks of the busy process', async () => {
    const proc = startDd();
    // Half the current load: the 1-minute average cannot halve within seconds. At load 0 (an
    // idle machine) the threshold is 0 and dd's load arms it at the kernel's next update (5 s).
    const threshold = Math.floor((load1() / 2) * 100) / 100;
    const run = runProbe('loadmon', ['--json', '--threshold', threshold.toFixed(2), '--interval', '500', '--freq', '99'], {
      waitReady: true,
    });
    await run.ready;
    const armed = await run.waitForEvent((e) => e.kind === 1, 15_000);
    expect(armed.threshold_milli).toBe(Math.round(threshold * 1000));
    expect(armed.load1_milli as number).toBeGreaterThan(threshold * 1000);
    await run.waitForEvent((e) => e.kind === 0 && e.pid === proc.pid, 15_000);
    await sleep(1000);
    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(res.stderr).toMatch(/loadmon: armed \(load1 [\d.]+ > threshold [\d.]+\)/);
    const samples = res.events.filter((e) => e.kind === 0);
    // Kernel stacks only, each frame marked _[k]; dd is in read() of /dev/zero.
    for (const e of samples) expect(String(e.stack).split(';').every((f) => f.endsWith('_[k]'))).toBe(true);
    const mine = samples.filter((e) => e.pid === proc.pid && e.comm === 'dd');
    expect(mine.some((e) => String(e.stack).includes('vfs_read_[k]'))).toBe(true);
    // The state record precedes the samples taken under it.
    expect(res.events.findIndex((e) => e.kind === 1)).toBeLessThan(res.events.findIndex((e) => e.kind === 0));
    expect(finalStats('loadmon', res.stderr).loader).toEqual({ lost: 0, truncated: 0 });
  });

  it('stays disarmed with a threshold far above the load: one disarmed record, no samples', async () => {
    startDd();
    const threshold = load1() + 1000;
    const run = runProbe('loadmon', ['--json', '--threshold', threshold.toFixed(2), '--interval', '300'], {
      waitReady: true,
    });
    await run.ready;
    await sleep(2000);
    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(res.events).toHaveLength(1);
    expect(res.events[0]).toMatchObject({ kind: 2, pid: 0, value: 0, stack: '' });
    expect(res.stderr).toMatch(/loadmon: disarmed \(load1 [\d.]+ <= threshold [\d.]+\)/);
    expect(res.stderr).not.toMatch(/loadmon: armed/);
    // Intervals ran (the flag was checked repeatedly), and nothing was counted.
    const stats = finalStats('loadmon', res.stderr);
    expect(stats.records).toBe(1);
    expect(stats.intervals).toBeGreaterThanOrEqual(3);
  });
});
