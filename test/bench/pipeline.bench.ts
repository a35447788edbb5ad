// The pipeline benchmark (issue 3; issue 8's benchmarks 1 and 3): a loopback TCP connection storm
// that counts its own transitions (test/bench/storm.c, 5 tcpstates transitions per connection),
// driven through
//   storm      the storm alone, no tracer: its rate and CPU without tracing
//   libbpf     Debian's libbpf-tools tcpstates -D <ports>, output to a tmpfs file (lines counted)
//   loader     bpfleet's bare tcpstates loader --machine --rport <ports>, output to a tmpfs file
//   bpfleet    the whole pipeline: tcpstates loader -> bpfleet-agent (spool, transport) ->
//              bpfleet controller -> SQLite, started with the Fleet harness, per --transport
// Each configuration runs --runs times, the configurations taking turns; the tables show medians.
// Loss per stage comes from `bpfleet stats --json`, the counters users see; "unexplained" is what
// the storm made minus what was stored minus every counted loss, and must be 0.
//
//   npx tsx test/bench/pipeline.bench.ts [--seconds 10] [--workers 1] [--rate 0] [--conns N]
//        [--runs 3] [--transport grpc] [--only storm,libbpf,loader,bpfleet] [--json] [--cpu-prof DIR]
//        [--bpf-out DIR]
//
// --cpu-prof DIR writes V8 CPU profiles of the agent and controller there; --bpf-out DIR runs the
// loaders of another probe build (DIR/x86_64/tcpstates, deployed by the controller from DIR).
// The loaders inherit this process's environment.
//
// Needs root (real eBPF), bpf/out/x86_64/tcpstates (make -C bpf) and libbpf-tools. See
// docs/BENCHMARKS.md.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, openSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Fleet, FrameDecoder, FrameKind, X86_PROBES, buildCProgram, fixturesBinDir, frameJson, portBase, repoRoot, requireRoot, waitFor } from '../lib/index.js';
import { TRANSPORTS, parseTransports } from './bench-transports.js';
import { childPids, comm, cpuSeconds, peakRssMiB, syscalls, threadCpu, threadCpuDelta, type CpuSplit } from './proc-stats.js';

const LIBBPF_TCPSTATES = '/usr/sbin/tcpstates'; // dpkg -L libbpf-tools | grep tcpstates
const STORM_SRC = path.join(repoRoot, 'test', 'bench', 'storm.c');
const STORM_BIN = path.join(fixturesBinDir, 'storm');
/** tcpstates transitions of one storm connection seen with --rport = the listener's port (storm.c). */
const CLIENT_TRANSITIONS = 5;

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    conns: { type: 'string' },
    workers: { type: 'string', default: '1' },
    rate: { type: 'string', default: '0' },
    runs: { type: 'string', default: '3' },
    transport: { type: 'string', default: 'grpc' },
    only: { type: 'string', default: 'storm,libbpf,loader,bpfleet' },
    json: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'bpf-out': { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}
const num = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} ${v}: expected a number >= ${min}`);
  return n;
};
const SECONDS = num('seconds', opt.seconds, 1);
const WORKERS = num('workers', opt.workers, 1);
const RATE = num('rate', opt.rate, 0);
const RUNS = num('runs', opt.runs, 1);
const CONNS = opt.conns === undefined ? undefined : num('conns', opt.conns, 1);
if (WORKERS > 8) throw new Error('--workers: at most 8 (one listener port each; --rport takes up to 8)');
const ONLY = new Set(opt.only.split(','));
// --bpf-out DIR: another build of the probes (DIR/x86_64/tcpstates), to compare loader changes
const LOADER_DIR = opt['bpf-out'] ? path.resolve(opt['bpf-out'], 'x86_64') : X86_PROBES;
const LOADER = path.join(LOADER_DIR, 'tcpstates');
const transports = parseTransports(opt.transport);

// ---- one storm -----------------------------------------------------------------------------------

interface StormResult { conns: number; seconds: number; cpu_s: number; workers: number; ports: number[] }

function storm(port: number): Promise<StormResult> {
  const args = [String(port), '-w', String(WORKERS), '-s', String(SECONDS), '-r', String(RATE), ...(CONNS ? ['-n', String(CONNS)] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn(STORM_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as StormResult) : reject(new Error(`storm ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

// ---- results ----------------------------------------------------------------------------------------

/** Losses per stage, in records; undefined where the configuration has no such stage. */
interface Loss {
  kernel?: number; // ring buffer full (bpfleet) / perf buffer lost (libbpf-tools)
  mapFull?: number;
  loader?: number;
  agentQueue?: number;
  spoolEvicted?: number;
  spoolCorrupt?: number;
  gaps?: number; // sequence gaps at the store: lost between spool and store (transport)
  rejected?: number; // batches the store refused
  /** Kernel: runs of the probe's BPF programs skipped because one was already running on that CPU. */
  recursion?: number;
}

/** recursion_misses of the BPF programs `pid` holds (bpftool prog show): events the kernel never ran the program for. */
function recursionMisses(pid: number): number | undefined {
  try {
    const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as
      { recursion_misses?: number; pids?: { pid: number }[] }[];
    return sum(progs.filter((p) => p.pids?.some((x) => x.pid === pid)).map((p) => p.recursion_misses ?? 0));
  } catch {
    return undefined; // no bpftool: the column shows "-"
  }
}

interface Result {
  config: string;
  run: number;
  conns: number;
  stormSeconds: number;
  stormCpu: number;
  made: number;
  /** Lines, frames or stored events. */
  got?: number;
  /** Records the loader says it wrote (its last stats frame). */
  wrote?: number;
  /** write(2) calls of the tracer / loader over the window. */
  writes?: number;
  /** Events/s: bpfleet from first to last commit; the others over the storm's duration. */
  rate?: number;
  loss: Loss;
  /** CPU seconds per part over the measured window (storm start to everything drained). */
  cpu: Record<string, number>;
  rss: Record<string, number>;
  /** Event to commit, ms: p50 and p99 over stored records (oldest record of each batch). */
  p50ms?: number;
  p99ms?: number;
  duplicates?: number;
  /** bpfleet: user/system CPU seconds per part and thread group over the window. */
  threads?: Record<string, Record<string, CpuSplit>>;
}

/** Thread names (comm) to the groups the table shows. */
function threadGroup(name: string): string {
  return name === 'main' ? 'main' : 'others (libuv pool, V8 GC/JIT)';
}

function groupThreads(m: Map<string, CpuSplit>): Record<string, CpuSplit> {
  const out: Record<string, CpuSplit> = {};
  for (const [name, v] of m) {
    const g = (out[threadGroup(name)] ??= { user: 0, sys: 0 });
    g.user += v.user;
    g.sys += v.sys;
  }
  return out;
}

const sum = (xs: (number | undefined)[]) => xs.reduce<number>((a, b) => a + (b ?? 0), 0);
const lossTotal = (l: Loss) => sum(Object.values(l));

/** Sizes a file's growth: resolves once it grew less than `bytes` over `ms`. */
async function waitQuiet(file: string, ms: number, bytes: number, maxMs = 60_000): Promise<void> {
  const end = Date.now() + maxMs;
  let last = statSync(file).size;
  for (;;) {
    await sleep(ms);
    const now = statSync(file).size;
    if (now - last < bytes || Date.now() > end) return;
    last = now;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function stopChild(child: ChildProcess): Promise<void> {
  child.kill('SIGINT');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited(child);
  clearTimeout(t);
}

/** Runs a tracer writing to `out` until it says it is attached, then the storm; returns what the window cost. */
async function tracedStorm(cmd: string, args: string[], out: string, attached: (stderr: string, pid: number) => boolean, port: number) {
  const fd = openSync(out, 'w');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, 'pipe'] });
  closeSync(fd);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitFor(`${path.basename(cmd)} attached`, () => attached(stderr, child.pid!) || (child.exitCode !== null ? Promise.reject(new Error(`${cmd} exited: ${stderr}`)) : false), 30_000);
    const cpu0 = cpuSeconds(child.pid!)!;
    const w0 = syscalls(child.pid!)?.writes ?? NaN;
    const s = await storm(port);
    await waitQuiet(out, 1000, 4096);
    const cpu = cpuSeconds(child.pid!)! - cpu0;
    const writes = (syscalls(child.pid!)?.writes ?? NaN) - w0;
    const recursion = recursionMisses(child.pid!);
    const rss = peakRssMiB(child.pid!) ?? NaN;
    await stopChild(child);
    return { s, cpu, rss, stderr, writes, recursion };
  } finally {
    if (child.exitCode === null && child.signalCode === null) await stopChild(child);
  }
}

async function runStormOnly(run: number, port: number): Promise<Result> {
  const s = await storm(port);
  return { config: 'storm only', run, conns: s.conns, stormSeconds: s.seconds, stormCpu: s.cpu_s, made: s.conns * CLIENT_TRANSITIONS, loss: {}, cpu: {}, rss: {} };
}

async function runLibbpf(run: number, port: number, dir: string): Promise<Result> {
  const out = path.join(dir, 'libbpf.txt');
  const ports = stormPorts(port).join(',');
  // Its header sits in a full stdio buffer: attached once the bpf_link and the perf buffer's
  // epoll (opened after attaching) are there.
  const r = await tracedStorm(LIBBPF_TCPSTATES, ['-D', ports], out, (_, pid) => {
    const fds = fdTargets(pid);
    return fds.includes('anon_inode:bpf_link') && fds.includes('anon_inode:[eventpoll]');
  }, port);
  const lines = await countLines(out);
  rmSync(out);
  // "lost N events on CPU #c" per perf-buffer overrun
  const lost = sum([...r.stderr.matchAll(/lost (\d+) events/g)].map((m) => Number(m[1])));
  const got = lines - 1; // header
  return { config: 'libbpf-tools', run, conns: r.s.conns, stormSeconds: r.s.seconds, stormCpu: r.s.cpu_s, made: r.s.conns * CLIENT_TRANSITIONS,
    got, rate: got / r.s.seconds, writes: r.writes, loss: { kernel: lost, recursion: r.recursion }, cpu: { tracer: r.cpu }, rss: { tracer: r.rss } };
}

async function runLoader(run: number, port: number, dir: string): Promise<Result> {
  const out = path.join(dir, 'loader.bin');
  const r = await tracedStorm(LOADER, ['--machine', '--rport', stormPorts(port).join(',')], out, (e) => /\bready\b/.test(e), port);
  let events = 0;
  let stats: { records: number; kernel: { ringbuf_full: number; map_full: number }; loader: { lost: number } } | undefined;
  const dec = new FrameDecoder();
  for await (const chunk of createReadStream(out, { highWaterMark: 4 << 20 })) {
    for (const f of dec.push(chunk as Buffer)) {
      if (f.kind === FrameKind.Event) events++;
      else if (f.kind === FrameKind.Stats) stats = frameJson(f);
    }
  }
  rmSync(out);
  return { config: 'bpfleet loader alone', run, conns: r.s.conns, stormSeconds: r.s.seconds, stormCpu: r.s.cpu_s, made: r.s.conns * CLIENT_TRANSITIONS,
    got: events, wrote: stats?.records, rate: events / r.s.seconds, writes: r.writes,
    loss: { recursion: r.recursion, kernel: stats?.kernel.ringbuf_full, mapFull: stats?.kernel.map_full, loader: stats?.loader.lost },
    cpu: { loader: r.cpu }, rss: { loader: r.rss } };
}

/** `bpfleet stats --json` rows carry flat counters; a `lost` map ("stage.reason") is read too. */
function flatStats(row: StatsJson & { lost?: Record<string, string> }): StatsJson {
  const l = row.lost;
  if (!l) return row;
  const pick = (flat: string | null | undefined, key: string) => flat ?? l[key] ?? null;
  return { ...row, kernelRingbufFull: pick(row.kernelRingbufFull, 'kernel.ringbuf_full'), kernelMapFull: pick(row.kernelMapFull, 'kernel.map_full'),
    loaderLost: pick(row.loaderLost, 'loader.lost'), agentQueueDropped: pick(row.agentQueueDropped, 'agent.queue_dropped'),
    spoolEvicted: pick(row.spoolEvicted, 'spool.evicted'), spoolCorrupt: pick(row.spoolCorrupt, 'spool.corrupt') };
}

interface StatsJson {
  records: string | null; storedRecords: number; kernelRingbufFull: string | null; kernelMapFull: string | null; loaderLost: string | null;
  agentQueueDropped: string | null; spoolEvicted: string | null; spoolCorrupt: string | null; gapRecords: number; rejectedRecords: number;
}

async function runBpfleet(run: number, transport: string, ports: number[], dir: string): Promise<Result> {
  const [grpcPort, adminPort, stormPort, ...transportPorts] = ports as [number, number, number, ...number[]];
  const nodeArgs = opt['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opt['cpu-prof'])}`] : [];
  const t = await TRANSPORTS[transport]!(transportPorts);
  const f = new Fleet({ name: 'bench', grpcPort, adminPort, nodeArgs });
  let ok = false;
  try {
    await f.startController([...t.controllerArgs, ...(opt['bpf-out'] ? ['--bpf-out', path.resolve(opt['bpf-out'])] : [])]);
    const token = await f.token(['bench=pipeline']);
    const agent = await f.startAgent('a', { token, extra: [...t.agentArgs, ...(opt['bpf-out'] ? ['--dev-probes', LOADER_DIR] : [])] });
    const dep = await f.cli(['deploy', 'tcpstates', '--to', 'bench=pipeline', '--args', `--rport ${stormPorts(stormPort).join(',')}`, '--json']);
    if (dep.code !== 0) throw new Error(`deploy failed: ${dep.stderr}${dep.stdout}\n${f.logs()}`);
    await waitFor('tcpstates running', () => agent.log().includes('ready'), 30_000, () => f.logs());
    const loaderPid = await waitFor('loader process', () => childPids(agent.child.pid!).find((p) => comm(p) === 'tcpstates'), 10_000);
    const parts: Record<string, number> = { loader: loaderPid, agent: agent.child.pid!, controller: f.controller!.child.pid! };
    for (const p of t.pids) parts[p.name] = p.pid;
    const cpu0 = Object.fromEntries(Object.entries(parts).map(([k, pid]) => [k, cpuSeconds(pid)!]));
    const threads0 = Object.fromEntries(Object.entries(parts).map(([k, pid]) => [k, threadCpu(pid)]));
    const w0 = syscalls(loaderPid)?.writes ?? NaN;

    const s = await storm(stormPort);
    const made = s.conns * CLIENT_TRANSITIONS;
    // Drained: everything stored, or nothing new for 3 s (then the loss counters must say why).
    let last = -1, since = Date.now();
    await waitFor(`${made} events stored`, () => {
      const n = f.storedEvents();
      if (n >= made) return true;
      if (n !== last) { last = n; since = Date.now(); }
      return Date.now() - since > 3000;
    }, 10 * 60_000);
    const cpu = Object.fromEntries(Object.entries(parts).map(([k, pid]) => [k, (cpuSeconds(pid) ?? NaN) - cpu0[k]!]));
    const rss = Object.fromEntries(Object.entries(parts).map(([k, pid]) => [k, peakRssMiB(pid) ?? NaN]));
    const writes = (syscalls(loaderPid)?.writes ?? NaN) - w0;
    const recursion = recursionMisses(loaderPid);
    const threads = Object.fromEntries(Object.entries(parts).map(([k, pid]) => [k, groupThreads(threadCpuDelta(threads0[k]!, threadCpu(pid)))]));

    // The agent sends the loader's counters with each stats frame (every second): wait for the
    // sample that covers everything the storm made.
    let st: StatsJson | undefined;
    await waitFor('final loss counters', async () => {
      const r = await f.cli(['stats', '--json']);
      if (r.code !== 0) return false;
      const streams = JSON.parse(r.stdout) as StatsJson[];
      st = streams[0] && flatStats(streams[0]);
      return st !== undefined && Number(st.records ?? 0) + Number(st.kernelRingbufFull ?? 0) >= made;
    }, 8000).catch(() => console.error(`run ${run}: no stats sample covering all ${made} transitions within 8 s; the last one counts`));
    const stored = f.storedEvents();
    const distinct = f.distinctEvents(); // throws on a duplicate
    const batches = f.query((d) => d.prepare('SELECT count, min_wall_ns, received_at_ms FROM batches').all() as { count: number; min_wall_ns: number; received_at_ms: number }[]);
    const first = Math.min(...batches.map((b) => b.received_at_ms)), lastCommit = Math.max(...batches.map((b) => b.received_at_ms));
    const lat = batches.map((b) => ({ ms: b.received_at_ms - b.min_wall_ns / 1e6, n: b.count })).sort((a, b) => a.ms - b.ms);
    const pct = (p: number) => {
      let acc = 0;
      for (const l of lat) if ((acc += l.n) >= p * stored) return l.ms;
      return NaN;
    };
    const n = (v: string | null | undefined) => (v === null || v === undefined ? undefined : Number(v));
    ok = true;
    return {
      config: `bpfleet ${transport}`, run, conns: s.conns, stormSeconds: s.seconds, stormCpu: s.cpu_s, made, got: stored, wrote: n(st?.records),
      rate: lastCommit > first ? stored / ((lastCommit - first) / 1000) : undefined,
      loss: {
        recursion, kernel: n(st?.kernelRingbufFull), mapFull: n(st?.kernelMapFull), loader: n(st?.loaderLost), agentQueue: n(st?.agentQueueDropped),
        spoolEvicted: n(st?.spoolEvicted), spoolCorrupt: n(st?.spoolCorrupt), gaps: st?.gapRecords, rejected: st?.rejectedRecords,
      },
      cpu, rss, p50ms: pct(0.5), p99ms: pct(0.99), duplicates: stored - distinct, threads, writes,
    };
  } finally {
    await f.stop(opt.keep || !ok);
    await t.stop();
    if (opt.keep || !ok) console.error(`fleet directory kept: ${f.dir}`);
    void dir;
  }
}

function fdTargets(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; }
    });
  } catch {
    return [];
  }
}

const stormPorts = (port: number) => Array.from({ length: WORKERS }, (_, i) => port + i);

async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) {
    const b = chunk as Buffer;
    for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  }
  return n;
}

// ---- tables ---------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

function table(head: string[], rows: string[][], textCols = 1): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i < textCols ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(head), `|${w.map((x, i) => (i < textCols ? '-'.repeat(x + 2) : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

const f0 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US'));
const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(1));
const f2 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(2));
const pctf = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : `${(n * 100).toFixed(2)}%`);

function report(results: Result[]): string {
  const configs = [...new Set(results.map((r) => r.config))];
  const by = (c: string) => results.filter((r) => r.config === c);
  const med = (c: string, fn: (r: Result) => number | undefined) => median(by(c).map((r) => fn(r) ?? NaN));
  const cpuOf = (r: Result) => sum(Object.values(r.cpu));
  const perEvent = (r: Result) => (r.got ? (cpuOf(r) / r.got) * 1e6 : NaN);
  const complete = (r: Result) => (r.got === undefined ? NaN : r.got / r.made);
  const baseCpu = med('libbpf-tools', perEvent);
  const baseComplete = med('libbpf-tools', complete);
  const stormBase = med('storm only', (r) => (r.stormCpu / r.made) * 1e6);

  const summary = table(
    ['pipeline', 'conns/s', 'transitions made', 'events captured/stored', 'completeness', 'x libbpf-tools', 'events/s', 'CPU s', 'µs CPU/event', 'x libbpf-tools', 'peak RSS MiB'],
    configs.map((c) => [c, f0(med(c, (r) => r.conns / r.stormSeconds)), f0(med(c, (r) => r.made)), f0(med(c, (r) => r.got)), pctf(med(c, complete)),
      f2(med(c, complete) / baseComplete), f0(med(c, (r) => r.rate)), f2(med(c, cpuOf)), f2(med(c, perEvent)), f2(med(c, perEvent) / baseCpu),
      f1(med(c, (r) => (Object.keys(r.rss).length ? sum(Object.values(r.rss)) : NaN)))]));

  const lossCols: [string, keyof Loss][] = [['kernel recursion', 'recursion'], ['kernel ringbuf/perf', 'kernel'], ['map full', 'mapFull'], ['loader', 'loader'], ['agent queue', 'agentQueue'],
    ['spool evicted', 'spoolEvicted'], ['spool corrupt', 'spoolCorrupt'], ['transport (gaps)', 'gaps'], ['store rejected', 'rejected']];
  const traced = configs.filter((c) => c !== 'storm only');
  const loss = table(['pipeline', 'loader wrote', ...lossCols.map(([h]) => h), 'made - got', 'unexplained'],
    traced.map((c) => [c, by(c).every((r) => r.wrote === undefined) ? 'n/a' : f0(med(c, (r) => r.wrote)), ...lossCols.map(([, k]) => (by(c).every((r) => r.loss[k] === undefined) ? 'n/a' : f0(med(c, (r) => r.loss[k])))),
      f0(med(c, (r) => r.made - (r.got ?? 0))), f0(med(c, (r) => r.made - (r.got ?? 0) - lossTotal(r.loss)))]));

  const parts = ['tracer', 'loader', 'agent', 'controller', ...new Set(results.flatMap((r) => Object.keys(r.cpu)))].filter((p, i, a) => a.indexOf(p) === i);
  const where = table(['pipeline', 'storm+kernel µs/transition', 'x storm only', ...parts.map((p) => `${p} µs/event`), ...parts.map((p) => `${p} RSS MiB`), 'events/write', 'p50 ms', 'p99 ms'],
    configs.map((c) => {
      const storm = med(c, (r) => (r.stormCpu / r.made) * 1e6);
      return [c, f2(storm), f2(storm / stormBase),
        ...parts.map((p) => (by(c).some((r) => p in r.cpu) ? f2(med(c, (r) => (r.got ? ((r.cpu[p] ?? NaN) / r.got) * 1e6 : NaN))) : '')),
        ...parts.map((p) => (by(c).some((r) => p in r.rss) ? f1(med(c, (r) => r.rss[p])) : '')),
        f1(med(c, (r) => (r.writes ? (r.wrote ?? r.got ?? NaN) / r.writes : NaN))), f0(med(c, (r) => r.p50ms)), f0(med(c, (r) => r.p99ms))];
    }));
  const threadRows: string[][] = [];
  for (const c of configs) {
    const rs = by(c).filter((r) => r.threads);
    if (!rs.length) continue;
    const keys = new Set(rs.flatMap((r) => Object.entries(r.threads!).flatMap(([p, g]) => Object.keys(g).map((k) => `${p}\t${k}`))));
    for (const key of [...keys].sort()) {
      const [p, g] = key.split('\t') as [string, string];
      const us = (r: Result, k: 'user' | 'sys') => ((r.threads![p]?.[g]?.[k] ?? 0) / (r.got || NaN)) * 1e6;
      threadRows.push([c, p, g, f2(median(rs.map((r) => us(r, 'user')))), f2(median(rs.map((r) => us(r, 'sys')))),
        f2(median(rs.map((r) => us(r, 'user') + us(r, 'sys'))))]);
    }
  }
  const threadTable = table(['pipeline', 'process', 'threads', 'user µs/event', 'sys µs/event', 'total µs/event'], threadRows, 3);
  return `## Summary (median of ${RUNS} runs)\n\n${summary}\n\n## Loss per stage (records; median)\n\n${loss}\n\n## Where the CPU goes (median)\n\n${where}\n\n## bpfleet by process and thread (median)\n\n${threadTable}\n`;
}

// ---- main -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  requireRoot();
  if (ONLY.has('libbpf') && !existsSync(LIBBPF_TCPSTATES)) throw new Error(`${LIBBPF_TCPSTATES} missing: apt-get install libbpf-tools (toolchains/setup.sh does)`);
  if (!existsSync(LOADER)) throw new Error(`${LOADER} missing: make -C bpf`);
  await buildCProgram(STORM_SRC, STORM_BIN);
  if (opt['cpu-prof']) mkdirSync(opt['cpu-prof'], { recursive: true });
  const base = portBase(16);
  const ports = Array.from({ length: 16 }, (_, i) => base + i);
  // gRPC, admin, then the storm's listeners (up to 8), then 4 for a transport's broker
  const fleetPorts = [ports[0]!, ports[1]!, ports[2]!, ...ports.slice(12)];
  const stormPort = ports[2]!;
  const dir = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'bpfleet-pipeline-bench-'));
  const results: Result[] = [];
  const say = (s: string) => { if (!opt.json) console.error(s); };
  say(`${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}, kernel ${os.release()}, node ${process.version}; storm ${WORKERS} worker(s), ` +
    `${SECONDS} s${RATE ? `, ${RATE} conns/s` : ', unthrottled'}${CONNS ? `, at most ${CONNS} conns` : ''}; ${RUNS} runs`);
  try {
    for (let run = 1; run <= RUNS; run++) {
      const cases: [string, () => Promise<Result>][] = [];
      if (ONLY.has('storm')) cases.push(['storm only', () => runStormOnly(run, stormPort)]);
      if (ONLY.has('libbpf')) cases.push(['libbpf-tools', () => runLibbpf(run, stormPort, dir)]);
      if (ONLY.has('loader')) cases.push(['loader', () => runLoader(run, stormPort, dir)]);
      if (ONLY.has('bpfleet')) for (const t of transports) cases.push([`bpfleet ${t}`, () => runBpfleet(run, t, fleetPorts, dir)]);
      for (const [name, fn] of cases) {
        const r = await fn();
        results.push(r);
        say(`run ${run} ${name}: ${f0(r.made)} made, ${f0(r.got)} got, cpu ${Object.entries(r.cpu).map(([k, v]) => `${k} ${v.toFixed(2)}s`).join(' ')}` +
          `, storm ${r.stormCpu.toFixed(2)}s${r.rate ? `, ${f0(r.rate)} events/s` : ''}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (opt.json) console.log(JSON.stringify({ seconds: SECONDS, workers: WORKERS, rate: RATE, runs: RUNS, cores: os.cpus().length, kernel: os.release(), results }, null, 2));
  else console.log(report(results));
}

await main();
