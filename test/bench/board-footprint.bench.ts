// Agent footprint on an emulated board (issue 8: idle RSS under 60 MB, idle CPU under 1% on the
// emulated arm64 board). Boots the board (`bpfleet board up`, QEMU TCG) against a fresh real
// controller and, once the agent is welcomed and has settled, measures two phases:
//   idle    connected, no probe
//   probe   one probe deployed and running with nothing to report (tcpstates, no traffic)
// Figures come from the agent's own telemetry, as stored by the controller: every heartbeat (5 s)
// carries the agent's RSS (process.memoryUsage.rss(), i.e. VmRSS), its CPU time since start
// (process.cpuUsage(), i.e. utime+stime) and the guest's busy fraction since the last heartbeat
// (/proc/stat). Agent CPU % = delta CPU time / delta wall time over the window; guest CPU % is the
// time-weighted busy fraction over the same heartbeats. Under TCG the guest's clock runs in real
// time while its instructions run many times slower than on a real Cortex-A53, so both are % of
// emulated time: compare them with each other, not with a real board. VmHWM comes from the
// board's console (init.sh prints VmRSS and VmHWM of the agent every 15 s).
//
//   npx tsx test/bench/board-footprint.bench.ts [--profile qemu-dayu200] [--settle-seconds 60]
//        [--seconds 60] [--probe tcpstates] [--node-options="--a --b" ...] [--json]
//
// --node-options may be given several times: one board per flag set, one after the other (so they
// do not share the 2 host cores), each against its own controller. "none" = node without flags;
// without --node-options the runtime's defaults (boards/src/runtime.ts AGENT_NODE_FLAGS).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Fleet, portBase } from '../lib/index.js';

const { values: opt } = parseArgs({
  options: {
    profile: { type: 'string', default: 'qemu-dayu200' },
    'settle-seconds': { type: 'string', default: '60' },
    seconds: { type: 'string', default: '60' },
    probe: { type: 'string', default: 'tcpstates' },
    'node-options': { type: 'string', multiple: true },
    'enroll-timeout': { type: 'string', default: '1200' },
    json: { type: 'boolean', default: false },
  },
});

const TARGET_RSS_BYTES = 60e6; // "60 MB"
const TARGET_CPU_PCT = 1;
const settleS = Number(opt['settle-seconds']);
const windowS = Number(opt.seconds);
const flagSets = opt['node-options'] ?? [undefined];

interface Phase {
  flags: string; phase: string; heartbeats: number; seconds: number;
  rssMiB: number; rssMaxMiB: number; hwmMiB: number; agentCpuPct: number; guestCpuPct: number; hostLoad1: number; series: number[];
}

const MiB = 1048576;
const sleep = (s: number): Promise<void> => new Promise((r) => setTimeout(r, s * 1000));
const log = (line: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

async function cli(f: Fleet, args: string[]): Promise<string> {
  const r = await f.cli(args);
  if (r.code !== 0) throw new Error(`bpfleet ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** Heartbeats of the device received in [fromMs, toMs] -> the phase's figures. */
function measure(f: Fleet, deviceId: string, fromMs: number, toMs: number): Omit<Phase, 'flags' | 'phase' | 'hwmMiB' | 'hostLoad1'> {
  const rows = f.query((d) => d.prepare(`SELECT time_unix_ns AS t, cpu_busy AS busy, agent_cpu_ns AS cpu, agent_rss_bytes AS rss
    FROM heartbeats WHERE device_id = ? AND received_at_ms BETWEEN ? AND ? ORDER BY time_unix_ns`).safeIntegers(true)
    .all(deviceId, fromMs, toMs) as { t: bigint; busy: number; cpu: bigint; rss: bigint }[]);
  if (rows.length < 3) throw new Error(`only ${rows.length} heartbeats from ${deviceId} in ${((toMs - fromMs) / 1000).toFixed(0)} s`);
  const first = rows[0]!, last = rows[rows.length - 1]!;
  const wallNs = Number(last.t - first.t);
  // Each heartbeat's busy fraction covers the time since the one before: weigh by that interval.
  let busyNs = 0;
  for (let i = 1; i < rows.length; i++) busyNs += Number(rows[i]!.busy) * Number(rows[i]!.t - rows[i - 1]!.t);
  const rss = rows.map((r) => Number(r.rss)).sort((a, b) => a - b);
  // Agent CPU % per heartbeat interval: shows whether a phase is steady or still settling.
  const series = rows.slice(1).map((r, i) => Math.round((1000 * Number(r.cpu - rows[i]!.cpu)) / Number(r.t - rows[i]!.t)) / 10);
  return {
    series,
    heartbeats: rows.length,
    seconds: wallNs / 1e9,
    rssMiB: rss[Math.floor(rss.length / 2)]! / MiB,
    rssMaxMiB: rss[rss.length - 1]! / MiB,
    agentCpuPct: (100 * Number(last.cpu - first.cpu)) / wallNs,
    guestCpuPct: (100 * busyNs) / wallNs,
  };
}

/** The agent's latest VmHWM the board's init printed (BPFLEET-RSS <rss> kB hwm=<hwm> kB). */
function consoleHwmMiB(consoleFile: string): number {
  const m = [...readFileSync(consoleFile, 'utf8').matchAll(/BPFLEET-RSS \d+ kB hwm=(\d+) kB/g)].pop();
  return m ? Number(m[1]) / 1024 : NaN;
}

async function runBoard(flags: string | undefined, n: number): Promise<Phase[]> {
  const base = portBase(4) + n * 2;
  const f = new Fleet({ name: 'board-footprint', grpcPort: base, adminPort: base + 1 });
  f.env['BPFLEET_BOARDS_DIR'] = path.join(f.dir, 'boards');
  const label = flags ?? 'runtime defaults';
  let ok = false;
  try {
    await f.startController();
    log(`[${label}] booting ${opt.profile}`);
    const up = JSON.parse(await cli(f, ['board', 'up', opt.profile!, '--controller', f.grpc, '--timeout', opt['enroll-timeout']!, '--json',
      ...(flags !== undefined ? [`--node-options=${flags}`] : [])])) as { name: string; enrolledAfterMs: number }[];
    const name = up[0]!.name;
    const board = (JSON.parse(await cli(f, ['board', 'list', '--json'])) as { name: string; deviceId?: string; console: string }[]).find((b) => b.name === name);
    if (!board?.deviceId) throw new Error(`board ${name}: no device id on its console`);
    log(`[${label}] ${name} enrolled ${(up[0]!.enrolledAfterMs / 1000).toFixed(0)} s after boot as ${board.deviceId}; settling ${settleS} s`);

    const out: Phase[] = [];
    const window = async (phase: string): Promise<void> => {
      await sleep(settleS);
      const from = Date.now();
      log(`[${label}] ${phase}: measuring ${windowS} s`);
      await sleep(windowS);
      const to = Date.now();
      // The console's VmHWM after the window: the peak so far, startup included.
      const row = { flags: label, phase, ...measure(f, board.deviceId!, from, to), hwmMiB: consoleHwmMiB(board.console), hostLoad1: os.loadavg()[0]! };
      out.push(row);
      // Each row as soon as it is known: a later board that fails must not lose it.
      log(`[${label}] ${phase}: ${JSON.stringify(row)}`);
    };
    await window('idle');
    log(`[${label}] deploying ${opt.probe}`);
    await cli(f, ['deploy', opt.probe!, '--to', name]);
    await window(`${opt.probe} running, quiet`);
    ok = true;
    return out;
  } finally {
    const r = await f.cli(['board', 'down', '--all', ...(ok ? [] : ['--keep-logs'])]);
    if (r.code !== 0) log(`board down: ${r.stderr}`);
    if (!ok) log(`logs kept in ${f.dir}`);
    await f.stop(!ok);
  }
}

const rows: Phase[] = [];
for (const [i, flags] of flagSets.entries()) rows.push(...(await runBoard(flags, i)));

if (opt.json) {
  process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
} else {
  const targetMiB = TARGET_RSS_BYTES / MiB;
  const head = ['node flags', 'phase', 'RSS MiB (median)', 'RSS MiB (max)', 'HWM MiB', 'agent CPU %', 'guest CPU %', 'agent / guest', 'heartbeats', 'host load1', 'target'];
  const lines = rows.map((r) => [r.flags, r.phase, r.rssMiB.toFixed(1), r.rssMaxMiB.toFixed(1), r.hwmMiB.toFixed(1), r.agentCpuPct.toFixed(2),
    r.guestCpuPct.toFixed(2), r.guestCpuPct > 0 ? `${((100 * r.agentCpuPct) / r.guestCpuPct).toFixed(0)}%` : '-', `${r.heartbeats} / ${r.seconds.toFixed(0)} s`,
    r.hostLoad1.toFixed(1),
    `RSS < ${targetMiB.toFixed(1)} MiB ${r.rssMaxMiB < targetMiB ? 'met' : 'MISSED'}, CPU < ${TARGET_CPU_PCT}% ${r.agentCpuPct < TARGET_CPU_PCT ? 'met' : 'MISSED'}`]);
  process.stdout.write(`Agent footprint on ${opt.profile} (settle ${settleS} s, window ${windowS} s; CPU % of emulated time)\n\n`);
  process.stdout.write([head, head.map(() => '---'), ...lines].map((l) => `| ${l.join(' | ')} |`).join('\n') + '\n');
}
