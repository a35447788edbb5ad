import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { kernelFeatures, probeBinary, requireKernelFeature, requireRoot, runProbe } from '../lib/index.js';
import { loadManifest, sumField } from './support.js';
import { buildFixture, calls, finalStats, sleep, startFixture } from './stacks-support.js';

let pipesleep = '';
const PERIOD_MS = 100;

/** The kernel's pipe read: pipe_read, anon_pipe_read (6.x renamed it), as a kernel frame. */
const pipeReadFrame = (stack: unknown): boolean => /(^|;)(anon_)?pipe_read_\[k\](;|$)/.test(String(stack));

async function offcpu(args: string[], ms: number) {
  const fx = startFixture(pipesleep, [String((ms + 3000) / 1000), String(PERIOD_MS)]);
  const { reader, writer } = await fx.firstLine();
  const run = runProbe('offcputime', ['--json', '--pid', String(reader), '--interval', '500', ...args], {
    waitReady: true,
  });
  await run.ready;
  const t0 = Date.now();
  await sleep(ms);
  const res = await run.stop();
  const wall = Date.now() - t0;
  fx.kill();
  return { res, reader: reader!, writer: writer!, wallNs: wall * 1e6 };
}

describe('offcputime on this kernel', () => {
  beforeAll(async () => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint sched/sched_switch', kernelFeatures.tracepoint('sched', 'sched_switch'));
    pipesleep = await buildFixture('pipesleep');
  });

  it('--manifest: interval records of ns off the CPU with a folded stack; tp_btf then raw_tp', () => {
    const m = JSON.parse(execFileSync(probeBinary('offcputime'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('offcputime'));
    expect(m.kind).toBe('interval');
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'ns' });
    expect(m.hooks.map((h: { kind: string; target: string }) => `${h.kind}:${h.target}`)).toEqual([
      'tp_btf:sched_switch',
      'raw_tp:sched_switch',
    ]);
  });

  it('rejects --min-block-us above --max-block-us with the usage exit code', () => {
    const r = spawnSync(probeBinary('offcputime'), ['--min-block-us', '10', '--max-block-us', '5']);
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/--min-block-us is above --max-block-us/);
  });

  for (const prefer of [[], ['--prefer', 'raw_tp']]) {
    const hook = prefer.length ? 'raw_tp' : kernelFeatures.btf() === true ? 'tp_btf' : 'raw_tp';
    it(`a reader sleeping on a pipe: its time is under the pipe-read path, from main (${hook})`, async () => {
      const { res, reader, wallNs } = await offcpu(prefer, 2500);
      expect(res.code).toBe(0);
      expect(res.stderr).toContain(`hooks: ${hook}:sched_switch`);
      expect(res.events.length).toBeGreaterThan(0);
      expect(res.events.every((e) => e.pid === reader && e.comm === 'pipereader')).toBe(true);
      const onPipe = res.events.filter(
        (e) => pipeReadFrame(e.stack) && calls(e.stack, 'main', 'bpfleet_pipe_wait'),
      );
      expect(onPipe.length).toBeGreaterThan(0);
      // User frames come first, then the kernel's, leaf last; no BPF frames at the leaf.
      for (const e of onPipe) {
        const f = String(e.stack).split(';');
        expect(f.indexOf('bpfleet_pipe_wait')).toBeLessThan(f.findIndex((x) => x.endsWith('_[k]')));
        expect(f.some((x) => x.startsWith('bpf_prog_') || x.startsWith('bpf_trace_run'))).toBe(false);
      }
      // It sleeps nearly all the time: at least a few periods' worth, never more than the run.
      const slept = sumField(onPipe, 'value');
      expect(slept).toBeGreaterThan(3 * PERIOD_MS * 1e6);
      expect(sumField(res.events, 'value')).toBeLessThanOrEqual(wallNs + 1e9);
      const stats = finalStats('offcputime', res.stderr);
      expect(stats.loader).toEqual({ lost: 0, truncated: 0 });
      expect(stats.kernel.map_full).toBe(0);
    });
  }

  it('--min-block-us keeps the 100 ms pipe sleeps; --max-block-us 20000 leaves them out', async () => {
    const min = await offcpu(['--min-block-us', '50000'], 2000);
    expect(min.res.code).toBe(0);
    expect(min.res.events.some((e) => pipeReadFrame(e.stack))).toBe(true);
    // Every stretch counted is at least 50 ms: a record's sum cannot be smaller.
    for (const e of min.res.events) expect(e.value as number).toBeGreaterThanOrEqual(50_000_000);

    const max = await offcpu(['--max-block-us', '20000'], 2000);
    expect(max.res.code).toBe(0);
    // Short stretches in pipe_read may remain; the ~100 ms sleeps filling the run do not.
    expect(sumField(max.res.events.filter((e) => pipeReadFrame(e.stack)), 'value')).toBeLessThan(0.2 * max.wallNs);
  });
});
