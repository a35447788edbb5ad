import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fixturesBinDir, fixturesDir, probeBinary, repoRoot, sourceMtimeMs, type Arch } from '../lib/index.js';

const execFileP = promisify(execFile);

// The stack probes (profile, offcputime, wakeuptime, loadmon) for arm64 and armv7 on the real
// Debian kernels of the board classes under QEMU (toolchains/qemu-run.sh, TCG, 2 vCPUs).
// test/boards/stack-matrix.sh runs in the guest against workloads with known stacks; this file
// checks what it printed. perf events (software cpu-clock) work under TCG; the armmp kernel
// has no BTF, so the loaders use their embedded minimized BTF and the raw_tp hooks.

const STACK_PROBES = ['profile', 'loadmon', 'offcputime', 'wakeuptime', 'pgfault', 'memleak'];
const uprobes = ['malloc', 'malloc', 'calloc', 'calloc', 'realloc', 'realloc', 'free'].map((f) => `uprobe:libc:${f}`).join(', ');
const PAGES = 2000;

interface Board {
  kernel: string;
  arch: Exclude<Arch, 'x86_64'>;
  btf: 'kernel' | 'embedded';
  hooks: Record<string, string>;
  /** The user frame-pointer walk reaches the fixture functions (not on armv7 Thumb code). */
  userFrames: boolean;
  /** Uprobes can go into the C library (not on armv7: its uprobes take ARM-mode code only). */
  uprobes: boolean;
  /** memleak --kernel's hooks: the *_node kmem events are separate before 6.1. */
  kmemHooks: string;
}
const kmem = (node: boolean): string =>
  (node
    ? ['kmalloc', 'kmalloc_node', 'kmem_cache_alloc', 'kmem_cache_alloc_node', 'kfree', 'kmem_cache_free']
    : ['kmalloc', 'kmem_cache_alloc', 'kfree', 'kmem_cache_free']
  ).map((e) => `tracepoint:kmem/${e}`).join(', ');

const perf = 'perf_event:cpu-clock';
// No exceptions/page_fault_* tracepoints on ARM: pgfault falls back to its kprobe.
const withBtf = {
  profile: perf, loadmon: perf, offcputime: 'tp_btf:sched_switch', wakeuptime: 'tp_btf:sched_switch, tp_btf:sched_waking',
  pgfault: 'kprobe:handle_mm_fault', memleak: uprobes,
};
const BOARDS: Board[] = [
  { kernel: 'bullseye-arm64', arch: 'arm64', btf: 'kernel', hooks: withBtf, userFrames: true, uprobes: true, kmemHooks: kmem(true) },
  { kernel: 'bookworm-arm64', arch: 'arm64', btf: 'kernel', hooks: withBtf, userFrames: true, uprobes: true, kmemHooks: kmem(false) },
  {
    kernel: 'bullseye-armmp', arch: 'arm', btf: 'embedded', userFrames: false, uprobes: false, kmemHooks: kmem(true),
    hooks: {
      profile: perf, loadmon: perf, offcputime: 'raw_tp:sched_switch', wakeuptime: 'raw_tp:sched_switch, raw_tp:sched_waking',
      pgfault: 'kprobe:handle_mm_fault', memleak: uprobes,
    },
  },
];

const CROSS: Record<Exclude<Arch, 'x86_64'>, string> = { arm64: 'aarch64-linux-gnu-gcc', arm: 'arm-linux-gnueabihf-gcc' };

/** A fixture built statically for the board (the guest has no libc). */
async function crossFixture(name: string, arch: Exclude<Arch, 'x86_64'>): Promise<string> {
  const src = path.join(fixturesDir, `${name}.c`);
  const out = path.join(fixturesBinDir, `${name}-${arch}`);
  if (existsSync(out) && statSync(out).mtimeMs >= (sourceMtimeMs(src) ?? Infinity)) return out;
  mkdirSync(fixturesBinDir, { recursive: true });
  await execFileP(CROSS[arch], ['-static', '-O2', '-o', out, src]);
  return out;
}

interface Section {
  rc: number;
  stdout: Record<string, unknown>[];
  stderr: string;
  work: Record<string, number>;
}

function parseSections(text: string): Map<string, Section> {
  const out = new Map<string, Section>();
  for (const m of text.matchAll(/^== BEGIN (\S+)\n([\s\S]*?)^== END \1$/gm)) {
    const body = m[2]!;
    const part = (name: string): string => {
      const at = body.indexOf(`-- ${name}\n`);
      if (at < 0) return '';
      const rest = body.slice(at + name.length + 4);
      const next = rest.search(/^-- /m);
      return next < 0 ? rest : rest.slice(0, next);
    };
    const lines = (s: string): Record<string, unknown>[] =>
      s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    out.set(m[1]!, {
      rc: Number(/^rc=(\d+)/m.exec(body)?.[1] ?? -1),
      stdout: lines(part('stdout')),
      stderr: part('stderr'),
      // The workload's lines merged, the first line's keys first.
      work: Object.assign({}, ...lines(part('workload')).reverse()) as Record<string, number>,
    });
  }
  return out;
}

const leaf = (stack: unknown): string => String(stack).split(';').filter((f) => !f.endsWith('_[k]')).at(-1) ?? '';
const hasFrame = (stack: unknown, re: RegExp): boolean => String(stack).split(';').some((f) => re.test(f));

describe('stack probes on emulated boards (real Debian kernels under QEMU)', () => {
  for (const board of BOARDS) {
    it(`${board.kernel} (${board.arch}): profile, loadmon, offcputime, wakeuptime, pgfault, memleak (user, kernel) load and see the known stacks`, async () => {
      if (os.arch() !== 'x64') throw new Error('these runs boot arm kernels with the x86_64 host tools');
      const cached = path.join(process.env.BPFLEET_CACHE ?? path.join(os.homedir(), '.cache', 'bpfleet'), 'kernels', board.kernel);
      if (!existsSync(cached)) {
        throw new Error(`kernel ${board.kernel} is not cached in ${cached}: run bash toolchains/kernels.sh (setup.sh does)`);
      }
      const args = [path.join(repoRoot, 'toolchains', 'qemu-run.sh'), board.arch, board.kernel, '--timeout', '400', '--smp', '2'];
      for (const p of STACK_PROBES) args.push('--add', probeBinary(p, board.arch));
      for (const f of ['busyloop', 'pipesleep', 'pagetouch', 'leaker', 'pipeholder']) args.push('--add', `${await crossFixture(f, board.arch)}=/bin/${f}`);
      args.push('--add', `${path.join(repoRoot, 'test', 'boards', 'stack-matrix.sh')}=/bin/stack-matrix`, '--', 'sh', '/bin/stack-matrix');
      let stdout: string;
      try {
        ({ stdout } = await execFileP('bash', args, { maxBuffer: 64 << 20, timeout: 440_000 }));
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; message: string };
        throw new Error(`qemu-run failed: ${e.message}\n${e.stderr ?? ''}\n${(e.stdout ?? '').slice(-4000)}`, { cause: err });
      }
      const sections = parseSections(stdout);
      const dump = (label: string): string =>
        `${label} on ${board.kernel}:\n${sections.get(label)?.stderr}\n${JSON.stringify(sections.get(label)?.stdout.slice(0, 4))}`;

      for (const label of STACK_PROBES) {
        const s = sections.get(label);
        if (label === 'memleak' && !board.uprobes) {
          // Exit 3, saying why: armhf libc is Thumb-2 and 32-bit ARM uprobes decode ARM code only.
          expect(s?.rc, dump(label)).toBe(3);
          expect(s!.stderr, dump(label)).toMatch(/memleak: unsupported on this kernel .*needs uprobes on Thumb-2 code/);
          continue;
        }
        expect(s, `no section ${label} in:\n${stdout.slice(0, 3000)}`).toBeDefined();
        expect(s!.rc, dump(label)).toBe(0);
        expect(s!.stderr, dump(label)).toContain(`ready (hooks: ${board.hooks[label]}; btf: ${board.btf})`);
        const stats = JSON.parse(/stats (\{.*\})/.exec(s!.stderr)![1]!);
        expect(stats.kernel.ringbuf_full + stats.loader.lost, dump(label)).toBe(0);
        // A stack-map bucket collision (two stacks, one of 4096 buckets) is counted as map_full:
        // rare for one workload's few stacks, possible for loadmon's whole-system ones.
        if (label === 'loadmon') expect(stats.kernel.map_full, dump(label)).toBeLessThanOrEqual(Math.max(2, stats.records / 10));
        else expect(stats.kernel.map_full, dump(label)).toBe(0);
        expect(s!.stderr, dump(label)).toMatch(/symbolized \d+ stacks/);
      }

      // profile: the busy loop's samples, symbolized in the guest, innermost user frame its function.
      const prof = sections.get('profile')!;
      const bl = prof.work.busyloop;
      expect(prof.stdout.length, dump('profile')).toBeGreaterThan(0);
      expect(prof.stdout.every((e) => e.pid === bl && e.comm === 'busyloop'), dump('profile')).toBe(true);
      const spin = prof.stdout.filter((e) => leaf(e.stack) === 'bpfleet_busyloop_spin');
      const total = prof.stdout.reduce((n, e) => n + (e.value as number), 0);
      expect(spin.reduce((n, e) => n + (e.value as number), 0) / total, dump('profile')).toBeGreaterThan(0.8);

      // loadmon with threshold 0: armed (the guest has load), then kernel stacks only, among them
      // dd's, in read() of /dev/zero.
      const lm = sections.get('loadmon')!;
      expect(lm.stdout.some((e) => e.kind === 1), dump('loadmon')).toBe(true);
      const lsamples = lm.stdout.filter((e) => e.kind === 0);
      expect(lsamples.length, dump('loadmon')).toBeGreaterThan(0);
      expect(lsamples.every((e) => String(e.stack).split(';').every((f) => f.endsWith('_[k]'))), dump('loadmon')).toBe(true);
      const ddSamples = lsamples.filter((e) => e.pid === lm.work.dd && e.comm === 'dd');
      expect(ddSamples.some((e) => hasFrame(e.stack, /^vfs_read_\[k\]$/)), dump('loadmon')).toBe(true);

      // offcputime: the pipe reader's sleep, under the kernel's pipe read.
      const off = sections.get('offcputime')!;
      const reader = off.work.reader;
      const onPipe = off.stdout.filter((e) => e.pid === reader && hasFrame(e.stack, /^(anon_)?pipe_read_\[k\]$/));
      expect(onPipe.length, dump('offcputime')).toBeGreaterThan(0);
      if (board.userFrames) expect(onPipe.some((e) => leaf(e.stack) === 'bpfleet_pipe_wait'), dump('offcputime')).toBe(true);
      expect(onPipe.reduce((n, e) => n + (e.value as number), 0), dump('offcputime')).toBeGreaterThan(1e9);

      // wakeuptime: the writer woke the reader from its pipe write.
      const wk = sections.get('wakeuptime')!;
      const byWriter = wk.stdout.filter((e) => e.pid === reader && e.waker_pid === wk.work.writer && e.waker_comm === 'pipewriter');
      expect(byWriter.length, dump('wakeuptime')).toBeGreaterThan(0);
      expect(byWriter.every((e) => hasFrame(e.stack, /^(anon_)?pipe_write_\[k\]$/)), dump('wakeuptime')).toBe(true);
      if (board.userFrames) expect(byWriter.some((e) => leaf(e.stack) === 'bpfleet_pipe_poke'), dump('wakeuptime')).toBe(true);

      // pgfault through the handle_mm_fault kprobe: one fault per fresh page, in the touching function.
      const pf = sections.get('pgfault')!;
      const touched = pf.stdout.filter((e) => e.pid === pf.work.pid && leaf(e.stack) === 'bpfleet_touch_pages');
      const faults = touched.reduce((n, e) => n + (e.value as number), 0);
      expect(faults, dump('pgfault')).toBeGreaterThanOrEqual(PAGES);
      expect(faults, dump('pgfault')).toBeLessThanOrEqual(PAGES + 4);
      expect(touched.every((e) => hasFrame(e.stack, /^handle_mm_fault_\[k\]$/)), dump('pgfault')).toBe(true);

      // memleak --kernel through the kmem tracepoints (kmalloc_node and kmem_cache_alloc_node too
      // before 6.1): 50 pipes held, each allocated in alloc_pipe_info(), gone after the close.
      const mk = sections.get('memleak-kernel');
      expect(mk, `no section memleak-kernel in:\n${stdout.slice(0, 3000)}`).toBeDefined();
      expect(mk!.rc, dump('memleak-kernel')).toBe(0);
      expect(mk!.stderr, dump('memleak-kernel')).toContain(`ready (hooks: ${board.kmemHooks}; btf: ${board.btf})`);
      const mkStats = JSON.parse(/stats (\{.*\})/.exec(mk!.stderr)![1]!);
      expect(mkStats.kernel.map_full + mkStats.kernel.ringbuf_full + mkStats.loader.lost, dump('memleak-kernel')).toBe(0);
      // Only allocator frames under alloc_pipe_info (6.1 arm64 repeats the leaf: __kmalloc;__kmalloc);
      // not slab metadata allocated on the way (___slab_alloc;allocate_slab;...).
      const pipeAlloc = (e: Record<string, unknown>): boolean => {
        const f = String(e.stack).split(';');
        const at = f.lastIndexOf('alloc_pipe_info_[k]');
        return e.pid === mk!.work.pid && at >= 0 && at < f.length - 1 && f.slice(at + 1).every((x) => /^_*(kmalloc|kmem_cache_alloc)\w*_\[k\]$/.test(x));
      };
      const closedNs = mk!.work.closed_ns!;
      expect(closedNs, dump('memleak-kernel')).toBeGreaterThan(0);
      const held = mk!.stdout.filter((e) => pipeAlloc(e) && (e.ts_ns as number) < closedNs);
      expect(held.some((e) => e.count === 50 && e.comm === 'pipeholder'), dump('memleak-kernel')).toBe(true);
      expect(held.every((e) => (e.count as number) <= 50), dump('memleak-kernel')).toBe(true);
      const after = mk!.stdout.filter((e) => (e.ts_ns as number) > closedNs);
      expect(new Set(after.map((e) => e.ts_ns)).size, dump('memleak-kernel')).toBeGreaterThanOrEqual(2);
      expect(after.filter(pipeAlloc), dump('memleak-kernel')).toEqual([]);

      // memleak through uprobes on the static fixture's own malloc: 50 blocks of 1000 bytes.
      if (!board.uprobes) return;
      const ml = sections.get('memleak')!;
      const leaks = ml.stdout.filter((e) => e.pid === ml.work.pid && leaf(e.stack) === 'bpfleet_leak');
      expect(leaks.at(-1), dump('memleak')).toMatchObject({ count: 50, value: 50_000 });
      expect(ml.stdout.some((e) => String(e.stack).includes('bpfleet_churn')), dump('memleak')).toBe(false);
    }, 480_000);
  }
});
