import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { kernelFeatures, probeBinary, requireKernelFeature, requireRoot, runProbe } from '../lib/index.js';
import { loadManifest, sumField } from './support.js';
import { buildFixture, calls, finalStats, sleep, startFixture } from './stacks-support.js';

let pipesleep = '';
const PERIOD_MS = 100;

/** The kernel's pipe write: pipe_write or anon_pipe_write (6.x renamed it), as a kernel frame. */
const pipeWriteFrame = (stack: unknown): boolean => /(^|;)(anon_)?pipe_write_\[k\](;|$)/.test(String(stack));

async function wakeups(args: string[], ms: number) {
  const fx = startFixture(pipesleep, [String((ms + 3000) / 1000), String(PERIOD_MS)]);
  const { reader, writer } = await fx.firstLine();
  const run = runProbe('wakeuptime', ['--json', '--pid', String(reader), '--interval', '500', ...args], {
    waitReady: true,
  });
  await run.ready;
  const t0 = Date.now();
  await sleep(ms);
  const res = await run.stop();
  const wallNs = (Date.now() - t0) * 1e6;
  fx.kill();
  return { res, reader: reader!, writer: writer!, wallNs };
}

describe('wakeuptime on this kernel', () => {
  beforeAll(async () => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint sched/sched_switch', kernelFeatures.tracepoint('sched', 'sched_switch'));
    requireKernelFeature('tracepoint sched/sched_waking', kernelFeatures.tracepoint('sched', 'sched_waking'));
    pipesleep = await buildFixture('pipesleep');
  });

  it('--manifest: target and waker, ns blocked, the waker stack; tp_btf then raw_tp for both hooks', () => {
    const m = JSON.parse(execFileSync(probeBinary('wakeuptime'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('wakeuptime'));
    expect(m.kind).toBe('interval');
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'ns' });
    expect(byName.waker_pid).toMatchObject({ type: 'u32' });
    expect(byName.waker_comm).toMatchObject({ type: 'comm' });
    expect(m.hooks.map((h: { group: string; kind: string; target: string }) => `${h.group}=${h.kind}:${h.target}`)).toEqual([
      'block=tp_btf:sched_switch',
      'block=raw_tp:sched_switch',
      'wake=tp_btf:sched_waking',
      'wake=raw_tp:sched_waking',
    ]);
  });

  for (const prefer of [[], ['--prefer', 'raw_tp']]) {
    const kind = prefer.length ? 'raw_tp' : kernelFeatures.btf() === true ? 'tp_btf' : 'raw_tp';
    it(`a reader blocked on a pipe is woken by the writer, through the pipe-write path (${kind})`, async () => {
      const { res, reader, writer, wallNs } = await wakeups(prefer, 2500);
      expect(res.code).toBe(0);
      expect(res.stderr).toContain(`hooks: ${kind}:sched_switch, ${kind}:sched_waking`);
      expect(res.events.length).toBeGreaterThan(0);
      expect(res.events.every((e) => e.pid === reader && e.comm === 'pipereader')).toBe(true);
      const byWriter = res.events.filter((e) => e.waker_pid === writer && e.waker_comm === 'pipewriter');
      expect(byWriter.length).toBeGreaterThan(0);
      // The waker's stack: its own user frames, then the kernel's write path that woke the reader.
      for (const e of byWriter) {
        expect(calls(e.stack, 'main', 'bpfleet_pipe_poke')).toBe(true);
        expect(pipeWriteFrame(e.stack)).toBe(true);
      }
      // The reader is woken by the writer every period: nearly all its blocked time is the writer's.
      expect(sumField(byWriter, 'value')).toBeGreaterThan(3 * PERIOD_MS * 1e6);
      expect(sumField(res.events, 'value')).toBeLessThanOrEqual(wallNs + 1e9);
      const stats = finalStats('wakeuptime', res.stderr);
      expect(stats.loader).toEqual({ lost: 0, truncated: 0 });
      expect(stats.kernel.map_full).toBe(0);
    });
  }

  it('--max-block-us 20000 leaves out the 100 ms sleeps on the pipe', async () => {
    const { res, writer, wallNs } = await wakeups(['--max-block-us', '20000'], 2000);
    expect(res.code).toBe(0);
    // Short sleeps may remain (the reader can block again within one pipe_write and be woken
    // by its second wakeup), but not the ~100 ms ones that fill nearly all of the run.
    expect(sumField(res.events.filter((e) => e.waker_pid === writer), 'value')).toBeLessThan(0.2 * wallNs);
  });
});
