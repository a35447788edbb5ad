// xdpdrop vs iptables (issue 6, seed 004's experiment): the same UDP flood from a peer network
// namespace over a veth pair, dropped by
//   none              nothing: the stack takes every datagram (Udp NoPorts), the reference load
//   iptables-raw      iptables -t raw -A PREROUTING -s SRC -j DROP  (earliest netfilter hook)
//   iptables-filter   iptables -A INPUT -s SRC -j DROP              (the usual rule; the baseline)
//   xdp-generic       xdpdrop --xdp-mode generic --block SRC/32      (XDP after skb allocation)
//   xdp-native        xdpdrop --xdp-mode native --block SRC/32       (veth's XDP, before the skb)
// Each configuration runs --runs times, taking turns; medians are shown. Per run: datagrams the
// sender got out, datagrams dropped (the rule's own counter: iptables -v -x, xdpdrop's per-prefix
// count), and the machine's CPU in kernel mode (system + softirq jiffies of /proc/stat over the
// run, all CPUs) per million datagrams sent, and the sender's own CPU per datagram (getrusage;
// on veth the receiver's softirq work runs in the sender's context, so this is the cleaner
// figure on a shared machine). Ratios are against iptables-filter of the same
// invocation. On veth the receive side runs on the sender's CPU, so the CPU column is sender +
// receiver: the difference between rows is the drop path's cost.
//
//   npx tsx test/bench/xdpdrop-vs-iptables.bench.ts [--seconds 5] [--runs 3] [--payload 18] [--json]
//
// Needs root, iproute2, iptables, bpf/out/x86_64/xdpdrop (make -C bpf). Creates its own network
// namespaces (bpfleet-xbench-*), which it deletes at the end, also after a failure.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { buildCProgram, createVethPair, fixturesBinDir, fixturesDir, probeBinary, requireRoot, type VethPair } from '../lib/index.js';

const execFileP = promisify(execFile);

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    payload: { type: 'string', default: '18' },
    json: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(opt.seconds);
const RUNS = Number(opt.runs);
const PORT = 9; // discard: nothing listens in the target namespace

const CONFIGS = ['none', 'iptables-raw', 'iptables-filter', 'xdp-generic', 'xdp-native'] as const;
type Config = (typeof CONFIGS)[number];
const BASELINE: Config = 'iptables-filter';

interface Run {
  sent: number;
  dropped: number;
  seconds: number;
  kernelCpuS: number;
  senderCpuS: number;
}

/** system + softirq jiffies of all CPUs (/proc/stat line "cpu"), in seconds. */
function kernelCpu(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  // cpu user nice system idle iowait irq softirq ...
  return (Number(f[3]) + Number(f[6]) + Number(f[7])) / 100;
}

function iptables(pair: VethPair, args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', pair.targetNs, 'iptables', '-w', ...args], { encoding: 'utf8' });
}

/** Packet counter of the one rule in chain (table), from iptables -L -v -x. */
function ruleCount(pair: VethPair, table: string, chain: string): number {
  const out = iptables(pair, ['-t', table, '-L', chain, '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => /\bDROP\b/.test(l));
  if (!line) throw new Error(`no DROP rule in ${table}/${chain}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

async function runOnce(pair: VethPair, flood: string, cfg: Config): Promise<Run> {
  const src = pair.peerAddrs[0]!;
  let probe: ReturnType<typeof spawn> | undefined;
  let probeOut = '';
  let probeErr = '';
  if (cfg === 'iptables-raw') iptables(pair, ['-t', 'raw', '-A', 'PREROUTING', '-s', src, '-j', 'DROP']);
  if (cfg === 'iptables-filter') iptables(pair, ['-A', 'INPUT', '-s', src, '-j', 'DROP']);
  if (cfg.startsWith('xdp-')) {
    const mode = cfg === 'xdp-native' ? 'native' : 'generic';
    probe = spawn('ip', ['netns', 'exec', pair.targetNs, probeBinary('xdpdrop'), '--json', '--ifname', pair.targetIf, '--xdp-mode', mode, '--block', `${src}/32`, '--interval', '1000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    probe.stdout!.on('data', (d: Buffer) => (probeOut += d.toString()));
    probe.stderr!.on('data', (d: Buffer) => (probeErr += d.toString()));
    const t0 = Date.now();
    while (!/ready/.test(probeErr)) {
      if (probe.exitCode !== null || Date.now() - t0 > 20_000) throw new Error(`xdpdrop did not start:\n${probeErr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    const cpu0 = kernelCpu();
    const out = await execFileP('ip', ['netns', 'exec', pair.peerNs, flood, pair.targetAddr, String(PORT), String(SECONDS), opt.payload!, src], {
      timeout: (SECONDS + 30) * 1000,
    });
    const cpu1 = kernelCpu();
    const r = JSON.parse(out.stdout) as { sent: number; seconds: number; user_s: number; sys_s: number };
    let dropped = 0;
    if (cfg === 'iptables-raw') dropped = ruleCount(pair, 'raw', 'PREROUTING');
    if (cfg === 'iptables-filter') dropped = ruleCount(pair, 'filter', 'INPUT');
    if (probe) {
      await new Promise((r) => setTimeout(r, 1200)); // one interval past the flood
      probe.kill('SIGINT');
      await new Promise((r) => probe!.once('exit', r));
      for (const line of probeOut.split('\n').filter(Boolean)) {
        const e = JSON.parse(line) as { type: number; packets: number };
        if (e.type === 1) dropped += e.packets;
      }
    }
    return { sent: r.sent, seconds: r.seconds, dropped, kernelCpuS: cpu1 - cpu0, senderCpuS: r.user_s + r.sys_s };
  } finally {
    if (probe && probe.exitCode === null) probe.kill('SIGKILL');
    if (cfg === 'iptables-raw') iptables(pair, ['-t', 'raw', '-F', 'PREROUTING']);
    if (cfg === 'iptables-filter') iptables(pair, ['-F', 'INPUT']);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  requireRoot();
  const flood = await buildCProgram(path.join(fixturesDir, 'udpflood.c'), path.join(fixturesBinDir, 'udpflood'));
  const pair = createVethPair('xbench');
  // veth delivers native-XDP_TX/redirect only to a peer with XDP; drops need nothing there.
  const cleanup = () => pair.remove();
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const results = new Map<Config, Run[]>(CONFIGS.map((c) => [c, []]));
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const cfg of CONFIGS) {
        const r = await runOnce(pair, flood, cfg);
        results.get(cfg)!.push(r);
        process.stderr.write(`run ${i + 1}/${RUNS} ${cfg}: sent ${r.sent} dropped ${r.dropped} kernel CPU ${r.kernelCpuS.toFixed(2)} s\n`);
      }
    }
  } finally {
    cleanup();
  }
  const rows = CONFIGS.map((cfg) => {
    const rs = results.get(cfg)!;
    const sentPps = median(rs.map((r) => r.sent / r.seconds));
    const dropPps = median(rs.map((r) => r.dropped / r.seconds));
    const cpuPerM = median(rs.map((r) => (r.kernelCpuS / r.sent) * 1e6));
    const senderUs = median(rs.map((r) => (r.senderCpuS / r.sent) * 1e6));
    const dropPct = median(rs.map((r) => (100 * r.dropped) / r.sent));
    return { cfg, sentPps, dropPps, dropPct, cpuPerM, senderUs };
  });
  const base = rows.find((r) => r.cfg === BASELINE)!;
  if (opt.json) {
    console.log(JSON.stringify({ seconds: SECONDS, runs: RUNS, payload: Number(opt.payload), baseline: BASELINE, rows }));
    return;
  }
  console.log(`\nxdpdrop vs iptables: UDP flood (${opt.payload}-byte payload) over veth, ${SECONDS} s x ${RUNS} runs, medians; ratios vs ${BASELINE}\n`);
  console.log('config            sent kpps  dropped kpps  dropped %  sender us/pkt  machine kernel s/Mpkt  drop rate ratio  sender CPU ratio  kernel CPU ratio');
  for (const r of rows) {
    console.log(
      `${r.cfg.padEnd(16)} ${(r.sentPps / 1e3).toFixed(1).padStart(10)} ${(r.dropPps / 1e3).toFixed(1).padStart(13)} ${r.dropPct.toFixed(1).padStart(10)} ${r.senderUs.toFixed(2).padStart(14)} ${r.cpuPerM.toFixed(2).padStart(22)} ${(base.dropPps ? r.dropPps / base.dropPps : 0).toFixed(2).padStart(16)} ${(r.senderUs / base.senderUs).toFixed(2).padStart(17)} ${(r.cpuPerM / base.cpuPerM).toFixed(2).padStart(17)}`,
    );
  }
  console.log('\nsender us/pkt: the flooding process\'s own CPU per datagram (on veth it includes the receive path run in its context); machine kernel: system+softirq of all CPUs, includes other load on the machine.');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
