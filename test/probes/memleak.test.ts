import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { probeBinary, requireKernelFeature, requireRoot, runProbe } from '../lib/index.js';
import { loadManifest } from './support.js';
import { buildFixture, finalStats, frames, sleep, startFixture } from './stacks-support.js';

let leaker = '';
let pipeholder = '';
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
    pipeholder = await buildFixture('pipeholder');
  });

  it('--manifest: bytes and allocations outstanding per stack; uprobes on libc, kmem tracepoints', () => {
    const m = JSON.parse(execFileSync(probeBinary('memleak'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('memleak'));
    const byName = Object.fromEntries(m.record.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.stack).toMatchObject({ type: 'str', size: 2048 });
    expect(byName.value).toMatchObject({ type: 'u64', unit: 'bytes' });
    expect(byName.count).toMatchObject({ type: 'u64', unit: 'allocations' });
    expect(new Set(m.hooks.map((h: { kind: string; target: string }) => `${h.kind}:${h.target}`))).toEqual(
      new Set([
        'uprobe:libc:malloc',
        'uprobe:libc:calloc',
        'uprobe:libc:realloc',
        'uprobe:libc:free',
        'tracepoint:kmem/kmalloc',
        'tracepoint:kmem/kmalloc_node',
        'tracepoint:kmem/kmem_cache_alloc',
        'tracepoint:kmem/kmem_cache_alloc_node',
        'tracepoint:kmem/kfree',
        'tracepoint:kmem/kmem_cache_free',
      ]),
    );
  });

  it('without --pid: the usage exit code and what to do', () => {
    const r = spawnSync(probeBinary('memleak'), ['--duration', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/--pid PID is required.*--kernel/);
    // The options of one mode are refused in the other.
    const k = spawnSync(probeBinary('memleak'), ['--kernel', '--libc', '/lib/libc.so.6', '--duration', '1']);
    expect(k.status).toBe(2);
    expect(k.stderr.toString()).toMatch(/--libc is for user mode/);
    const u = spawnSync(probeBinary('memleak'), ['--pid', String(process.pid), '--sample-rate', '4', '--duration', '1']);
    expect(u.status).toBe(2);
    expect(u.stderr.toString()).toMatch(/--sample-rate is for --kernel/);
    // A table too small to be useful, or larger than the loader allows.
    for (const n of ['100', '99999999', '-5', '4k']) {
      const r = spawnSync(probeBinary('memleak'), ['--kernel', '--max-allocs', n, '--duration', '1']);
      expect(r.status, `--max-allocs ${n}`).toBe(2);
    }
  });

  it(`a program leaking ${N} blocks of ${SIZE} bytes shows ${N} outstanding; freed ones do not`, async () => {
    // The fixture allocates when told to, once the probe has attached.
    const fx = startFixture(leaker, [String(N), String(SIZE), 'usr1', '3000']);
    const { pid } = await fx.firstLine();
    const run = runProbe('memleak', ['--json', '--pid', String(pid), '--min-age-ms', '200', '--interval', '500'], {
      waitReady: true,
    });
    await run.ready;
    fx.go();
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
    const fx = startFixture(leaker, [String(N), String(SIZE), 'usr1', '3000']);
    const { pid } = await fx.firstLine();
    const run = runProbe('memleak', ['--json', '--pid', String(pid), '--min-age-ms', '60000', '--interval', '300'], {
      waitReady: true,
    });
    await run.ready;
    fx.go();
    await sleep(2500);
    const res = await run.stop();
    fx.kill();
    expect(res.code).toBe(0);
    expect(res.events).toEqual([]);
    expect(finalStats('memleak', res.stderr).intervals).toBeGreaterThanOrEqual(3);
  });

  describe('--kernel (kmem tracepoints)', () => {
    const M = 200;
    // The allocations made by alloc_pipe_info() itself: only allocator frames under it
    // (kmalloc); deeper leaves (___slab_alloc;allocate_slab;alloc_slab_obj_exts: slab page
    // metadata made on the way) are other objects.
    const pipeAlloc = (stack: unknown): boolean => {
      const f = frames(stack);
      const at = f.lastIndexOf('alloc_pipe_info_[k]');
      return at >= 0 && at < f.length - 1 && f.slice(at + 1).every((x) => /^_*(kmalloc|kmem_cache_alloc)\w*_\[k\]$/.test(x));
    };
    const kmemEvents = ['kmalloc', 'kmem_cache_alloc', 'kfree', 'kmem_cache_free'];

    beforeAll(() => {
      requireKernelFeature('kmem tracepoints', () => {
        const missing = kmemEvents.filter((e) => !existsSync(`/sys/kernel/tracing/events/kmem/${e}`));
        return missing.length === 0 || `no kmem/${missing.join(', kmem/')} in /sys/kernel/tracing/events`;
      });
    });

    it(`a process holding ${M} pipes shows ${M} outstanding alloc_pipe_info allocations, gone after it closes them`, async () => {
      const fx = startFixture(pipeholder, [String(M), 'usr1', '2500', '3000']);
      const { pid } = await fx.firstLine();
      let closedAt = 0n;
      fx.child.stdout?.on('data', (d: Buffer) => {
        // Node's hrtime is CLOCK_MONOTONIC, the clock of the records' ts_ns.
        if (!closedAt && d.toString().includes('"closed"')) closedAt = process.hrtime.bigint();
      });
      // Every process: the pid and comm in the records are the probe's attribution, not a filter.
      // Every live allocation of the machine is held, so the table is sized for a busy one (a
      // test suite reading files filled the default 65536 in 5 s here); map_full must stay 0.
      const run = runProbe('memleak', ['--json', '--kernel', '--max-allocs', '524288', '--min-age-ms', '200', '--interval', '400'], {
        waitReady: true,
      });
      await run.ready;
      fx.go();
      const mine = (e: Record<string, unknown>): boolean => e.pid === pid && pipeAlloc(e.stack);
      await run.waitForEvent((e) => mine(e) && e.count === M, 15_000);
      // Closed, then two more checks after it.
      await run.waitForEvent((e) => closedAt > 0n && BigInt(Number(e.ts_ns)) > closedAt + 1_000_000n * 900n, 15_000);
      const res = await run.stop();
      fx.kill();
      expect(res.code).toBe(0);
      expect(res.stderr).toMatch(/hooks: tracepoint:kmem\/kmalloc, tracepoint:kmem\/kmem_cache_alloc, tracepoint:kmem\/kfree, tracepoint:kmem\/kmem_cache_free/);
      const held = res.events.filter((e) => mine(e) && BigInt(Number(e.ts_ns)) < closedAt);
      const after = res.events.filter((e) => BigInt(Number(e.ts_ns)) > closedAt);
      // The pipe_inode_info and its buffer array, one each per pipe, from pipe2() of the fixture.
      const full = held.filter((e) => e.count === M);
      expect(full.length).toBeGreaterThanOrEqual(2);
      for (const e of full) {
        expect(e.comm).toBe('pipeholder');
        expect(String(e.stack)).toMatch(/(^|;)__x64_sys_pipe2_\[k\];do_pipe2_\[k\];.*create_pipe_files_\[k\];alloc_pipe_info_\[k\];[^;]+_\[k\]$/);
        expect(Number(e.value)).toBeGreaterThanOrEqual(M * 64); // bytes_alloc of each object
      }
      // Never more than M from one stack, and no other process is charged with them.
      expect(held.every((e) => Number(e.count) <= M)).toBe(true);
      expect(res.events.filter((e) => pipeAlloc(e.stack) && e.pid !== pid && Number(e.count) >= M)).toEqual([]);
      // After the close (kfree in pipe_release), the checks that follow see none of them.
      const checks = new Set(after.map((e) => e.ts_ns));
      expect(checks.size).toBeGreaterThanOrEqual(2);
      expect(after.filter(mine)).toEqual([]);
      // Other allocations of the fixture are still seen after the close: the probe did not stop.
      expect(after.some((e) => e.pid !== pid)).toBe(true);
      const st = finalStats('memleak', res.stderr);
      expect(st.kernel.map_full).toBe(0);
      expect(st.kernel.sampled_out).toBe(0);
      expect(st.loader).toEqual({ lost: 0, truncated: 0 });
    });

    it('--sample-rate 4 records about a quarter, the rest counted as sampled_out', async () => {
      const fx = startFixture(pipeholder, [String(M), 'usr1', '3000', '500']);
      const { pid } = await fx.firstLine();
      const run = runProbe(
        'memleak',
        ['--json', '--kernel', '--pid', String(pid), '--sample-rate', '4', '--min-age-ms', '200', '--interval', '400'],
        { waitReady: true },
      );
      await run.ready;
      fx.go();
      await fx.done;
      const res = await run.stop();
      expect(res.code).toBe(0);
      const pipes = res.events.filter((e) => pipeAlloc(e.stack));
      expect(pipes.length).toBeGreaterThan(0);
      expect(pipes.every((e) => e.pid === pid)).toBe(true);
      // Binomial(M, 1/4) per stack: mean 50, sd ~6; 20..90 is far out in both tails.
      const most = Math.max(...pipes.map((e) => Number(e.count)));
      expect(most).toBeGreaterThanOrEqual(20);
      expect(most).toBeLessThanOrEqual(90);
      expect(finalStats('memleak', res.stderr).kernel.sampled_out).toBeGreaterThanOrEqual(2 * M);
    });
  });
});
