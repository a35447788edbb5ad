// bpfleet-sim: forks the workers (sim-worker.ts), shows a live progress line, and ends with a
// table of what every worker's devices did: connected, generated, acknowledged, and what each
// stage lost. Phases: every device enrolled and connected ({"type":"connected"} with --json),
// then every device's probe run (started by the controller) emits for --seconds and ends, then
// the spools drain (every record acknowledged) or --drain-seconds pass, then the sessions stop.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIM_USAGE, SimUsageError, deviceName, parseSimArgs, splitDevices, type SimArgs } from './sim-config.js';
import { workerLogFile, type WorkerMessage, type WorkerReport, type WorkerStart } from './sim-worker.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SIM_BIN = path.join(repoRoot, 'agent', 'bin', 'bpfleet-sim.js');

export interface SimResult {
  type: 'result';
  devices: number;
  rate: number;
  seconds: number;
  transport: string;
  /** The steady window (every run emitting): its length and Unix ms bounds; then the drain. */
  emitSeconds: number;
  steadyFromMs: number;
  steadyToMs: number;
  drainSeconds: number;
  drained: boolean;
  totals: Omit<WorkerReport, 'worker' | 'pid'>;
  workers: WorkerReport[];
}

const SUM_KEYS = ['devices', 'started', 'startFailures', 'connected', 'peakConnected', 'runsStarted', 'runsEnded', 'generated', 'ringbufFull', 'written',
  'spooled', 'acked', 'backlog', 'spoolEvicted', 'appendErrors', 'transportDowns', 'cpuSeconds', 'rssMiB', 'maxRssMiB'] as const;

/** Worst of any worker, not a sum. */
const MAX_KEYS = ['loopDelayP99Ms', 'loopDelayMaxMs'] as const;

export function sumReports(reports: WorkerReport[]): Omit<WorkerReport, 'worker' | 'pid'> {
  const t = Object.fromEntries([...SUM_KEYS, ...MAX_KEYS].map((k) => [k, 0])) as Omit<WorkerReport, 'worker' | 'pid'>;
  for (const r of reports) {
    for (const k of SUM_KEYS) t[k] += r[k];
    for (const k of MAX_KEYS) t[k] = Math.max(t[k], r[k] ?? 0);
  }
  return t;
}

function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(1)) : c)));
  const w = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n') + '\n';
}

export function resultTable(res: SimResult): string {
  const head = ['worker', 'pid', 'devices', 'connected', 'generated', 'ring lost', 'spooled', 'acked', 'unacked', 'evicted',
    'spool refused', 'transport errors', 'cpu s', 'max rss MiB', 'loop delay p99/max ms'];
  const row = (name: string, pid: string, r: Omit<WorkerReport, 'worker' | 'pid'>): (string | number)[] => [name, pid, r.devices,
    r.peakConnected, r.generated, r.ringbufFull, r.spooled, r.acked, r.backlog, r.spoolEvicted, r.appendErrors,
    r.transportDowns, r.cpuSeconds, r.maxRssMiB, `${Math.round(r.loopDelayP99Ms)}/${Math.round(r.loopDelayMaxMs)}`];
  return table([head, ...res.workers.map((w) => row(String(w.worker), String(w.pid), w)), row('total', '', res.totals)]);
}

function progressLine(t: Omit<WorkerReport, 'worker' | 'pid'>, rateGen: number, rateAck: number): string {
  return `sim: ${t.connected}/${t.devices} connected${t.startFailures ? ` (${t.startFailures} failed)` : ''}, runs ${t.runsStarted} started ` +
    `${t.runsEnded} ended, generated ${t.generated} (${Math.round(rateGen)}/s), acked ${t.acked} (${Math.round(rateAck)}/s), ` +
    `unacked ${t.backlog}, ring lost ${t.ringbufFull}, evicted ${t.spoolEvicted}, transport errors ${t.transportDowns}`;
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
  return true;
}

export async function runSim(args: SimArgs, io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream & { isTTY?: boolean } }): Promise<SimResult> {
  mkdirSync(args.dataDir, { recursive: true });
  const tokens = args.tokensFile !== undefined ? readFileSync(args.tokensFile, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean) : [];
  const manifest = args.manifest ?? path.join(repoRoot, 'bpf', 'out', 'x86_64', `${path.basename(args.recording).split('.')[0]}.manifest.json`);
  const split = splitDevices(args.devices, args.processes);
  const reports = new Map<number, WorkerReport>();
  const finals = new Map<number, WorkerReport>();
  const workers: ChildProcess[] = [];
  const err = (line: string): void => void io.stderr.write(`${line}\n`);

  split.forEach((indexes, w) => {
    // BPFLEET_SIM_CPU_PROF=DIR: V8 CPU profiles of the workers (the benchmark's --cpu-prof).
    const prof = process.env['BPFLEET_SIM_CPU_PROF'];
    const child = fork(SIM_BIN, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced',
      execArgv: [...process.execArgv, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])] });
    workers.push(child);
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'error') err(`sim worker ${w}: ${m.message}`);
      else (m.type === 'final' ? finals : reports).set(w, m.report);
      if (m.type === 'final') reports.set(w, m.report);
    });
    child.on('exit', (code) => {
      if (!finals.has(w)) err(`sim worker ${w} (pid ${child.pid}) exited with ${code} before its final report`);
    });
    const start: WorkerStart = {
      type: 'start', worker: w, rate: args.rate, durationMs: args.seconds * 1000, recording: args.recording, manifest,
      logFile: workerLogFile(args.dataDir, w),
      link: { controller: args.controller, transport: args.transport, ...(args.mqttUrl ? { mqttUrl: args.mqttUrl } : {}), spoolMaxBytes: args.spoolMaxBytes, spoolSync: args.spoolSync },
      devices: indexes.map((i) => ({ index: i, name: deviceName(args.namePrefix, i), dataDir: path.join(args.dataDir, `dev-${String(i).padStart(4, '0')}`),
        ...(tokens[i] !== undefined ? { token: tokens[i] } : {}) })),
    };
    child.send(start);
  });
  const alive = (): boolean => workers.some((c) => c.exitCode === null && c.signalCode === null);
  const totals = (): Omit<WorkerReport, 'worker' | 'pid'> => sumReports([...reports.values()]);

  // Live progress: one line per second on a terminal (rewritten), every 5 s otherwise.
  let last = { at: Date.now(), gen: 0, ack: 0 };
  let tick = 0;
  const progress = setInterval(() => {
    const t = totals();
    const dt = (Date.now() - last.at) / 1000;
    const line = progressLine(t, (t.generated - last.gen) / dt, (t.acked - last.ack) / dt);
    last = { at: Date.now(), gen: t.generated, ack: t.acked };
    if (io.stderr.isTTY) io.stderr.write(`\r\x1b[K${line}`);
    else if (tick++ % 5 === 0) err(line);
  }, 1000);

  try {
    // 1. Every device started (or failed) and connected.
    const startMs = args.startSeconds * 1000;
    await waitUntil(() => !alive() || (reports.size === workers.length && totals().started + totals().startFailures === args.devices
      && totals().connected === totals().started), startMs);
    const c = totals();
    if (args.json) io.stdout.write(`${JSON.stringify({ type: 'connected', devices: args.devices, connected: c.connected, startFailures: c.startFailures })}\n`);
    err(`sim: ${c.connected}/${args.devices} devices connected; waiting for the controller to start a probe on them`);

    // 2. Runs start (the controller deploys, maybe in waves) and wait; once all have started
    // they emit together for --seconds (the steady window) and end.
    await waitUntil(() => !alive() || totals().runsStarted >= c.started, startMs);
    const steadyFrom = Date.now();
    let steadyTo = steadyFrom;
    if (totals().runsStarted === 0) err('sim: no probe run started: deploy one to these devices (bpfleet deploy tcpstates --to ...)');
    else {
      for (const w of workers) if (w.connected) w.send({ type: 'go' });
      err(`sim: all ${totals().runsStarted} runs started; emitting together for ${args.seconds} s`);
      await waitUntil(() => !alive() || totals().runsEnded >= totals().runsStarted, args.seconds * 1000 + startMs);
      steadyTo = Date.now();
      err('sim: every run ended; draining');
    }
    const emitSeconds = (steadyTo - steadyFrom) / 1000;

    // 3. Drain and stop.
    const drainAt = Date.now();
    for (const w of workers) if (w.connected) w.send({ type: 'drain', timeoutMs: args.drainSeconds * 1000 });
    await waitUntil(() => finals.size === workers.length || !alive(), args.drainSeconds * 1000 + 60_000);
    const drainSeconds = (Date.now() - drainAt) / 1000;
    clearInterval(progress);
    if (io.stderr.isTTY) io.stderr.write('\n');
    const list = [...reports.values()].sort((a, b) => a.worker - b.worker);
    const t = sumReports(list);
    return { type: 'result', devices: args.devices, rate: args.rate, seconds: args.seconds, transport: args.transport,
      emitSeconds, steadyFromMs: steadyFrom, steadyToMs: steadyTo, drainSeconds, drained: finals.size === workers.length && t.backlog === 0, totals: t, workers: list };
  } finally {
    clearInterval(progress);
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
  }
}

/** The bpfleet-sim command line; resolves with the exit code. */
export async function simMain(argv: string[]): Promise<number> {
  let args: SimArgs;
  try {
    args = parseSimArgs(argv, repoRoot);
  } catch (e) {
    if (!(e instanceof SimUsageError)) throw e;
    process.stderr.write(`bpfleet-sim: ${e.message}\n${SIM_USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(SIM_USAGE);
    return 0;
  }
  const res = await runSim(args, { stdout: process.stdout, stderr: process.stderr });
  const t = res.totals;
  const lines = [
    `\nbpfleet-sim: ${res.devices} devices x ${res.rate} events/s over ${res.transport}, runs of ${res.seconds} s ` +
      `(emitting took ${res.emitSeconds.toFixed(1)} s, draining ${res.drainSeconds.toFixed(1)} s${res.drained ? '' : ', NOT fully acknowledged'})`,
    resultTable(res),
    `loss per stage: ring buffer ${t.ringbufFull}, spool refused ${t.appendErrors}, spool evicted ${t.spoolEvicted}, ` +
      `unacknowledged at the end ${t.backlog}; generated ${t.generated}, acked ${t.acked}`,
  ];
  (args.json ? process.stderr : process.stdout).write(`${lines.join('\n')}\n`);
  if (args.json) process.stdout.write(`${JSON.stringify(res)}\n`);
  return t.startFailures === 0 && res.drained ? 0 : 1;
}
