// Fleet benchmark (issue 8, benchmark 2): N simulated devices x R events/s against one real
// controller (SQLite), through `bpfleet sim` (real AgentSession, Spool and Transport per device,
// loaders replaced by a replay of recorded tcpstates output). Baseline in the same run: the same
// per-device rate with --baseline-devices devices (default 100) against a fresh controller.
//
//   npx tsx test/bench/fleet.bench.ts [--devices 1000] [--rate 100] [--seconds 60] [--baseline-devices 100]
//        [--baseline-rate R] [--processes 2] [--transport grpc,mqtt,mosquitto] [--spool-sync interval|always|none] [--cpu-prof DIR] [--json]
//
// --transport: grpc; mqtt (the controller's embedded broker); mosquitto (a real Mosquitto
// between the devices and the controller, the scale-out setup; default grpc,mqtt).
// Per run it prints: events/s stored, loss per stage (ring buffer and spool from the sim's
// counters and the controller's stats API; transport; store gaps, duplicates and rejections),
// p50/p99 event-to-commit latency, CPU and peak RSS of the controller, of an external broker
// and of the sim workers.
// Rates and latency are over the steady window only (every device's run started, all emitting,
// as the sim reports it), not the enrollment and deploy ramp.
// Event-to-commit latency comes from the controller's database: each stored batch row has the
// wall time of its oldest and newest event (min_wall_ns, max_wall_ns) and received_at_ms, the
// time its ingest ran inside the group-commit transaction; the batch's records are taken as
// spread evenly between its oldest and newest event. It leaves out the commit's own duration
// (the fsync after the ingest), a few ms per group commit.
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, Fleet, portBase } from '../lib/index.js';
import { TRANSPORTS, parseTransports } from './bench-transports.js';
import { cpuSeconds, peakRssMiB } from './proc-stats.js';

const { values: opt } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' }, rate: { type: 'string', default: '100' }, seconds: { type: 'string', default: '60' },
    'baseline-devices': { type: 'string', default: '100' }, 'baseline-rate': { type: 'string' }, help: { type: 'boolean', short: 'h' }, processes: { type: 'string', default: '2' },
    transport: { type: 'string', default: 'grpc,mqtt' }, 'cpu-prof': { type: 'string' }, json: { type: 'boolean', default: false },
    'drain-seconds': { type: 'string', default: '120' }, 'spool-sync': { type: 'string', default: 'interval' },
  },
});

interface SimTotals { devices: number; peakConnected: number; startFailures: number; generated: number; ringbufFull: number; spooled: number;
  acked: number; backlog: number; spoolEvicted: number; appendErrors: number; transportDowns: number; cpuSeconds: number; maxRssMiB: number;
  loopDelayP99Ms?: number; loopDelayMaxMs?: number }
interface SimResult { emitSeconds: number; steadyFromMs: number; steadyToMs: number; drainSeconds: number; drained: boolean; totals: SimTotals; workers: { pid: number; cpuSeconds: number; maxRssMiB: number }[] }
interface StreamStats { storedRecords: number; duplicateRecords: number; gapRecords: number; rejectedRecords: number; lost: Record<string, string> }

/** p99 and max of a duration, ms; undefined when not measured. */
type Quant = { p99: number; max: number } | undefined;

interface Row {
  name: string; transport: string; devices: number; rate: number; seconds: number;
  offered: number; generated: number; stored: number; storedPerS: number;
  loss: { ring: number; spoolRefused: number; spoolEvicted: number; unacked: number; transportErrors: number; storeGaps: number; storeRejected: number; storeDuplicates: number };
  p50: number; p99: number; max: number;
  ctlCpuPct: number; ctlUsPerEvent: number; ctlRssMiB: number; simCpuPct: number; simRssMiB: number;
  /** An external broker's CPU over the emitting and peak RSS; undefined when the transport has none. */
  brokerCpuPct?: number; brokerRssMiB?: number;
  /** Event-loop delay, ms: the controller's over its last 60 to 90 s at the end of the emitting, the worst sim worker's over the emitting. */
  ctlLoop: Quant; simLoop: Quant;
  /** The controller's store transactions and GC pauses, ms, over its last 60 to 90 s at the end of the emitting. */
  ctlCommit: Quant; ctlGc: Quant;
  drained: boolean; enrollDeploySeconds: number; profile?: string; simProfile?: string | undefined;
}

/** Weighted percentiles of event-to-commit latency (ms) from the stored batch rows. */
function latency(f: Fleet, fromMs: number, toMs: number): { p50: number; p99: number; max: number } {
  const rows = f.query((d) => d.prepare('SELECT count, min_wall_ns, max_wall_ns, received_at_ms FROM batches WHERE received_at_ms BETWEEN ? AND ?')
    .raw().all(fromMs, toMs) as [number, bigint | number, bigint | number, number][]);
  // 1 ms buckets up to 10 min.
  const buckets = new Float64Array(600_001);
  let total = 0;
  for (const [count, minW, maxW, recv] of rows) {
    const newest = recv - Number(maxW) / 1e6, oldest = recv - Number(minW) / 1e6;
    const pts = Math.min(count, 8);
    for (let i = 0; i < pts; i++) {
      const ms = pts === 1 ? oldest : newest + ((oldest - newest) * i) / (pts - 1);
      const at = Math.max(0, Math.min(600_000, Math.round(ms)));
      buckets[at] = buckets[at]! + count / pts;
    }
    total += count;
  }
  const pct = (p: number): number => {
    let acc = 0;
    for (let i = 0; i < buckets.length; i++) if ((acc += buckets[i]!) >= p * total) return i / 1000;
    return NaN;
  };
  let max = 0;
  for (let i = buckets.length - 1; i >= 0; i--) if (buckets[i]! > 0) { max = i / 1000; break; }
  return { p50: pct(0.5), p99: pct(0.99), max };
}

/** Self time per function of a V8 .cpuprofile, top n, as "share% function (file:line)". */
function topOfProfile(file: string, n = 15): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const cf = byId.get(id)!.callFrame;
    const key = `${cf.functionName || '(anonymous)'} (${cf.url.replace(/^.*\/(node_modules|controller|proto|agent)\//, '$1/') || 'native'}:${cf.lineNumber + 1})`;
    const dt = p.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
}

/** From the controller's /metrics (its last 60 to 90 s), ms: event-loop delay, commit times, GC pauses; undefined if unreadable. */
async function controllerTimes(url: string): Promise<{ loop: Quant; commit: Quant; gc: Quant }> {
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
    const q = (family: string): Quant => {
      const v = (quantile: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(`${family}{quantile="${quantile}"} `));
        return line ? Number(line.split(' ')[1]) * 1000 : NaN;
      };
      return { p99: v('0.99'), max: v('1') };
    };
    return { loop: q('bpfleet_event_loop_delay_seconds'), commit: q('bpfleet_ingest_commit_seconds'), gc: q('bpfleet_gc_pause_seconds') };
  } catch (err) {
    process.stderr.write(`fleet.bench: cannot read the controller's metrics at ${url}: ${(err as Error).message}\n`);
    return { loop: undefined, commit: undefined, gc: undefined };
  }
}

async function oneRun(name: string, transport: string, devices: number, rate: number, seconds: number, portSlot: number, profDir?: string): Promise<Row> {
  const base = portBase(16) + portSlot * 4;
  const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const f = new Fleet({ name: `fleetbench-${name}`, grpcPort: base, adminPort: base + 1, nodeArgs,
    ...(profDir ? { env: { BPFLEET_SIM_CPU_PROF: path.join(profDir, 'sim') } } : {}) });
  const tr = await TRANSPORTS[transport]!([base + 2, base + 3]);
  try {
    const ctl = await f.startController(tr.controllerArgs);
    const pid = ctl.child.pid!;
    const broker = tr.pids[0]?.pid;
    const brokerCpu = (): number => (broker === undefined ? 0 : cpuSeconds(broker) ?? 0);
    const cpu0 = cpuSeconds(pid) ?? 0;
    const t0 = Date.now();
    const sim = f.spawn(CLI, ['sim', '--devices', String(devices), '--rate', String(rate), '--seconds', String(seconds),
      '--processes', opt.processes, '--controller', f.grpc, ...tr.agentArgs,
      '--data-dir', path.join(f.dir, 'sim'), '--drain-seconds', opt['drain-seconds'], '--spool-sync', opt['spool-sync'], '--json']);
    // Controller (and broker) CPU while the devices emit: from the deploy to the last run end.
    type Mark = { at: number; cpu: number; brokerCpu: number };
    let emitStart: Mark | undefined, emitEnd: Mark | undefined;
    const mark = (): Mark => ({ at: Date.now(), cpu: cpuSeconds(pid) ?? 0, brokerCpu: brokerCpu() });
    let rss = 0, brokerRss = 0;
    let ctlTimes: ReturnType<typeof controllerTimes> = Promise.resolve({ loop: undefined, commit: undefined, gc: undefined });
    const timer = setInterval(() => {
      rss = Math.max(rss, peakRssMiB(pid) ?? 0);
      if (broker !== undefined) brokerRss = Math.max(brokerRss, peakRssMiB(broker) ?? 0);
      const log = sim.log();
      if (!emitStart && /all \d+ runs started/.test(log)) emitStart = mark();
      if (emitStart && !emitEnd && /every run ended/.test(log)) {
        emitEnd = mark();
        ctlTimes = controllerTimes(`http://127.0.0.1:${base + 1}/metrics`);
      }
    }, 250);
    const code = await sim.exited;
    clearInterval(timer);
    // A short run can end between two looks at the log: read the controller's times now, then.
    if (!emitEnd) ctlTimes = controllerTimes(`http://127.0.0.1:${base + 1}/metrics`);
    const log = sim.log();
    const jsonStart = log.lastIndexOf('\n{\n');
    if (code !== 0 && jsonStart < 0) throw new Error(`bpfleet sim exited ${code}:\n${log.slice(-4000)}`);
    const res = JSON.parse(log.slice(jsonStart + 1, log.lastIndexOf('\n}') + 2)) as SimResult;
    const stored = f.storedEvents();
    const streams = (await f.streamStats()) as unknown as StreamStats[];
    // The steady window: every device emitting; stored rate and latency over the batches committed in it.
    const inWindow = f.query((d) => (d.prepare('SELECT COALESCE(SUM(count), 0) n FROM batches WHERE received_at_ms BETWEEN ? AND ?')
      .get(res.steadyFromMs, res.steadyToMs) as { n: number }).n);
    const lat = latency(f, res.steadyFromMs, res.steadyToMs);
    const ctlCpu = (cpuSeconds(pid) ?? 0) - cpu0;
    const times = await ctlTimes;
    const window = Math.max(0.001, (res.steadyToMs - res.steadyFromMs) / 1000);
    const sum = (k: keyof StreamStats): number => streams.reduce((n, s) => n + Number(s[k]), 0);
    const t = res.totals;
    const simWall = (Date.now() - t0) / 1000;
    const emitCpu = emitStart && emitEnd ? emitEnd.cpu - emitStart.cpu : ctlCpu;
    const row: Row = {
      name, transport, devices, rate, seconds, offered: devices * rate, generated: t.generated, stored, storedPerS: inWindow / window,
      loss: { ring: t.ringbufFull, spoolRefused: t.appendErrors, spoolEvicted: t.spoolEvicted, unacked: t.backlog, transportErrors: t.transportDowns,
        storeGaps: sum('gapRecords'), storeRejected: sum('rejectedRecords'), storeDuplicates: sum('duplicateRecords') },
      ...lat,
      ctlCpuPct: emitStart && emitEnd ? (100 * emitCpu) / ((emitEnd.at - emitStart.at) / 1000) : (100 * ctlCpu) / simWall,
      ctlUsPerEvent: (ctlCpu * 1e6) / Math.max(1, stored), ctlRssMiB: Math.max(rss, peakRssMiB(pid) ?? 0),
      simCpuPct: (100 * t.cpuSeconds) / simWall, simRssMiB: t.maxRssMiB, drained: res.drained,
      ...(broker === undefined ? {} : {
        brokerCpuPct: emitStart && emitEnd ? (100 * (emitEnd.brokerCpu - emitStart.brokerCpu)) / ((emitEnd.at - emitStart.at) / 1000) : NaN,
        brokerRssMiB: Math.max(brokerRss, peakRssMiB(broker) ?? 0),
      }),
      ctlLoop: times.loop, ctlCommit: times.commit, ctlGc: times.gc, simLoop: t.loopDelayMaxMs === undefined ? undefined : { p99: t.loopDelayP99Ms ?? NaN, max: t.loopDelayMaxMs },
      enrollDeploySeconds: emitStart ? (emitStart.at - t0) / 1000 : NaN,
    };
    if (code !== 0) process.stderr.write(`fleet.bench: ${name}: bpfleet sim exited ${code} (not everything acknowledged or devices failed)\n`);
    await f.stop();
    await tr.stop();
    if (profDir) {
      const prof = readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile')).map((x) => path.join(profDir, x))
        .sort().find((x) => readFileSync(x, 'utf8').includes('group-commit'));
      if (prof) row.profile = prof;
      const simDir = path.join(profDir, 'sim');
      const simProfs = readdirSync(simDir).filter((x) => x.endsWith('.cpuprofile')).map((x) => path.join(simDir, x));
      row.simProfile = simProfs.sort((a, b) => statSync(b).size - statSync(a).size)[0];
    }
    return row;
  } catch (err) {
    await f.stop(true);
    await tr.stop();
    throw err;
  }
}

const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');

const loopCell = (l: Quant): string => (l ? `${fmt(l.p99)}/${fmt(l.max)}` : 'n/a');

function printTable(rows: Row[]): void {
  const head = ['run', 'transport', 'devices', 'offered ev/s', 'stored ev/s', 'x baseline', 'generated', 'stored', 'lost: ring', 'spool refused',
    'evicted', 'unacked', 'transport errs', 'store gaps/dup/rej', 'p50 s', 'p99 s', 'max s', 'ctl CPU %', 'ctl µs/ev', 'x baseline',
    'ctl RSS MiB', 'ctl loop p99/max ms', 'ctl commit p99/max ms', 'ctl GC p99/max ms', 'broker CPU %', 'broker RSS MiB',
    'sim CPU %', 'sim RSS MiB', 'sim loop p99/max ms', 'setup s'];
  const lines = [head];
  for (const r of rows) {
    const b = rows.find((x) => x.transport === r.transport && x.name === 'baseline');
    lines.push([r.name, r.transport, fmt(r.devices), fmt(r.offered), fmt(r.storedPerS), b ? fmt(r.storedPerS / b.storedPerS, 2) : '',
      fmt(r.generated), fmt(r.stored), fmt(r.loss.ring), fmt(r.loss.spoolRefused), fmt(r.loss.spoolEvicted), fmt(r.loss.unacked),
      fmt(r.loss.transportErrors), `${r.loss.storeGaps}/${r.loss.storeDuplicates}/${r.loss.storeRejected}`, fmt(r.p50, 3), fmt(r.p99, 3), fmt(r.max, 2),
      fmt(r.ctlCpuPct), fmt(r.ctlUsPerEvent, 1), b ? fmt(r.ctlUsPerEvent / b.ctlUsPerEvent, 2) : '', fmt(r.ctlRssMiB), loopCell(r.ctlLoop), loopCell(r.ctlCommit), loopCell(r.ctlGc),
      r.brokerCpuPct === undefined ? '-' : fmt(r.brokerCpuPct), r.brokerRssMiB === undefined ? '-' : fmt(r.brokerRssMiB),
      fmt(r.simCpuPct), fmt(r.simRssMiB), loopCell(r.simLoop),
      fmt(r.enrollDeploySeconds, 1)]);
  }
  process.stdout.write(`| ${lines[0]!.join(' | ')} |\n| ${lines[0]!.map(() => '---').join(' | ')} |\n`);
  for (const l of lines.slice(1)) process.stdout.write(`| ${l.join(' | ')} |\n`);
}

async function main(): Promise<void> {
  if (opt.help) {
    process.stdout.write(`${readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n')}\n`);
    return;
  }
  const devices = Number(opt.devices), rate = Number(opt.rate), seconds = Number(opt.seconds), baseDevices = Number(opt['baseline-devices']);
  const baseRate = opt['baseline-rate'] === undefined ? rate : Number(opt['baseline-rate']);
  if (![devices, rate, seconds, baseDevices, baseRate].every((n) => Number.isFinite(n) && n > 0)) throw new Error('fleet.bench: --devices, --rate, --seconds, --baseline-devices and --baseline-rate take positive numbers');
  const transports = parseTransports(opt.transport);
  const profRoot = opt['cpu-prof'] ? path.resolve(opt['cpu-prof']) : undefined;
  const rows: Row[] = [];
  let slot = 0;
  for (const tr of transports) {
    for (const [name, n, r] of [['baseline', baseDevices, baseRate], ['fleet', devices, rate]] as const) {
      process.stderr.write(`fleet.bench: ${name}: ${n} devices x ${r} events/s over ${tr} for ${seconds} s\n`);
      const prof = profRoot && name === 'fleet' ? path.join(profRoot, tr) : undefined;
      if (prof) mkdirSync(path.join(prof, 'sim'), { recursive: true });
      rows.push(await oneRun(name, tr, n, r, seconds, slot++, prof));
    }
  }
  if (opt.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  process.stdout.write(`\nFleet benchmark: ${rate} events/s per device, runs of ${seconds} s, ${opt.processes} sim processes, agent spools fsync ${opt['spool-sync']}; baseline ${baseDevices} devices x ${baseRate} events/s\n\n`);
  printTable(rows);
  for (const r of rows) {
    if (!r.profile) continue;
    process.stdout.write(`\nController CPU profile, ${r.name} over ${r.transport} (self time, top 15): ${r.profile}\n`);
    for (const l of topOfProfile(r.profile)) process.stdout.write(`  ${l}\n`);
    if (!r.simProfile) continue;
    process.stdout.write(`\nSim worker CPU profile, ${r.name} over ${r.transport} (self time, top 15): ${r.simProfile}\n`);
    for (const l of topOfProfile(r.simProfile)) process.stdout.write(`  ${l}\n`);
  }
}

await main();
