import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  buildCProgram,
  fixturesBinDir,
  fixturesDir,
  kernelFeatures,
  probeBinary,
  requireKernelFeature,
  requireRoot,
  runProbe,
  snmpCounter,
  type JsonEvent,
} from '../lib/index.js';
import { loadManifest, pickPort, sumField } from './support.js';

const execFileP = promisify(execFile);

// The SNMP counters are per network namespace: the probe and the traffic run in one of our
// own, so every change in it is ours and the deltas are exact. nsenter, not `ip netns exec`:
// the latter mounts a fresh /sys without tracefs, where the eBPF hook could not be found.
const ns = `bpfleet-netstat-${process.pid}`;
const nsPath = `/run/netns/${ns}`;

function counter(events: readonly JsonEvent[], group: string, name: string): number {
  return sumField(events.filter((e) => e.group === group && e.name === name), 'delta');
}

describe('netstat', () => {
  let gen: string;

  beforeAll(async () => {
    requireRoot();
    requireKernelFeature('tracepoint sock/inet_sock_set_state', kernelFeatures.tracepoint('sock', 'inet_sock_set_state'));
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'dev', 'lo', 'up']);
    gen = await buildCProgram(path.join(fixturesDir, 'netstatgen.c'), path.join(fixturesBinDir, 'netstatgen'));
  });

  afterAll(() => {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // never created
    }
  });

  const inNs = (args: readonly string[]) =>
    runProbe('netstat', [`--net=${nsPath}`, probeBinary('netstat'), '--json', '--interval', '300', ...args], {
      bin: 'nsenter',
      waitReady: true,
    });
  const genInNs = async (mode: string, port: number, n: number) =>
    JSON.parse((await execFileP('nsenter', [`--net=${nsPath}`, gen, mode, String(port), String(n)], { timeout: 30_000 })).stdout) as {
      pid: number;
      refused?: number;
      connected?: number;
    };

  it('--manifest: counter records with group, name, delta, value and the per-process part', () => {
    const m = JSON.parse(execFileSync(probeBinary('netstat'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('netstat'));
    expect(m.kind).toBe('interval');
    expect(m.record).toMatchObject({ name: 'netstat_event', size: 96 });
    expect(m.record.fields.map((f: { name: string }) => f.name)).toEqual(['ts_ns', 'group', 'name', 'delta', 'value', 'pid', 'comm']);
    expect(m.hooks.map((h: { kind: string }) => h.kind)).toEqual(['tracepoint', 'kprobe']);
  });

  it('connects to a closed port: Tcp AttemptFails, OutRsts and ActiveOpens grow by exactly N, per-process SYN_SENT too', async () => {
    const run = inNs([]);
    await run.ready;
    const N = 7;
    const g = await genInNs('refused', pickPort(), N);
    expect(g.refused).toBe(N);
    await new Promise((r) => setTimeout(r, 700));
    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(counter(res.events, 'Tcp', 'AttemptFails')).toBe(N);
    expect(counter(res.events, 'Tcp', 'OutRsts')).toBe(N);
    expect(counter(res.events, 'Tcp', 'ActiveOpens')).toBe(N);
    expect(counter(res.events, 'Tcp', 'PassiveOpens')).toBe(0);
    // procfs rows carry no process; the eBPF rows do: N connect()s by netstatgen.
    expect(res.events.filter((e) => e.group !== 'TcpState').every((e) => e.pid === 0)).toBe(true);
    const mine = res.events.filter((e) => e.group === 'TcpState' && e.pid === g.pid);
    expect(counter(mine, 'TcpState', 'SYN_SENT')).toBe(N);
    expect(counter(mine, 'TcpState', 'CLOSE')).toBe(N);
    expect(mine.every((e) => e.comm === 'netstatgen')).toBe(true);
    // value is the running total of the deltas for the eBPF part.
    expect(mine.filter((e) => e.name === 'SYN_SENT').at(-1)!.value).toBe(N);
  });

  it('a listen backlog overflow shows in TcpExt ListenOverflows and ListenDrops', async () => {
    const run = inNs([]);
    await run.ready;
    const N = 10;
    const g = await genInNs('overflow', pickPort(), N);
    expect(g.connected).toBe(N);
    await new Promise((r) => setTimeout(r, 700));
    const res = await run.stop();
    expect(res.code).toBe(0);
    // backlog 0 keeps one connection in the accept queue: the others' ACKs overflow it (again
    // at each SYN-ACK retransmission, so possibly more than once each).
    const overflows = counter(res.events, 'TcpExt', 'ListenOverflows');
    expect(overflows).toBeGreaterThanOrEqual(N - 2);
    expect(counter(res.events, 'TcpExt', 'ListenDrops')).toBeGreaterThanOrEqual(overflows);
    // The namespace's own /proc agrees with the last value the probe reported.
    const last = res.events.filter((e) => e.group === 'TcpExt' && e.name === 'ListenOverflows').at(-1)!;
    const now = snmpCounter('TcpExt', 'ListenOverflows', execFileSync('nsenter', [`--net=${nsPath}`, 'cat', '/proc/net/snmp', '/proc/net/netstat']).toString());
    expect(last.value).toBe(now);
  });

  it('--all-counters adds counters beyond the table; without it only the table is reported', async () => {
    const run = inNs(['--all-counters']);
    await run.ready;
    await genInNs('refused', pickPort(), 3);
    await new Promise((r) => setTimeout(r, 700));
    const all = await run.stop();
    // Tcp OutSegs is in the table; Ip InReceives too; TcpExt TCPTimeWaitOverflow etc. are not,
    // but a refused connect moves Tcp InSegs/OutSegs and IpExt InOctets (not in the table).
    expect(counter(all.events, 'IpExt', 'InOctets')).toBeGreaterThan(0);
    const run2 = inNs([]);
    await run2.ready;
    await genInNs('refused', pickPort(), 3);
    await new Promise((r) => setTimeout(r, 700));
    const table = await run2.stop();
    expect(table.events.some((e) => e.group === 'IpExt' && e.name === 'InOctets')).toBe(false);
    expect(counter(table.events, 'Tcp', 'AttemptFails')).toBe(3);
  });
});
