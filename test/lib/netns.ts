import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { EnvironmentError } from './require.js';

const execFileP = promisify(execFile);

/**
 * Two network namespaces joined by one veth pair, for XDP tests: the probe attaches to the
 * `target` end, traffic comes from the `peer` end. Names carry this process's pid and a
 * counter, so concurrent test processes never collide, and nothing of the host's own
 * interfaces or iptables is touched. Always call `remove()` (afterAll), even after a failure.
 */
export interface VethPair {
  /** Namespace holding the interface the probe attaches to. */
  targetNs: string;
  /** Namespace the traffic comes from. */
  peerNs: string;
  targetIf: string;
  peerIf: string;
  /** IPv4 address of the target end (a /24 shared with the peer's addresses). */
  targetAddr: string;
  /** IPv4 addresses of the peer end: the first is its primary, the others are extra sources. */
  peerAddrs: string[];
  /** Runs a command inside a namespace; resolves with stdout, rejects with stderr in the message. */
  exec(ns: string, cmd: string, args: readonly string[], timeoutMs?: number): Promise<string>;
  /** Same, synchronously. */
  execSync(ns: string, cmd: string, args: readonly string[]): string;
  /** Argv prefix running a command inside a namespace: ['netns', 'exec', ns] for `ip`. */
  nsArgs(ns: string): string[];
  /** Deletes both namespaces (the veth pair goes with them). Safe to call twice. */
  remove(): void;
}

let counter = 0;

function ip(args: readonly string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

/** Throws an EnvironmentError unless `ip netns` works (root, iproute2 installed). */
export function requireNetns(): void {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    throw new EnvironmentError('needs iproute2 (`ip`): apt-get install iproute2 (toolchains/setup.sh installs it)');
  }
  if (process.geteuid?.() !== 0) throw new EnvironmentError('network namespaces need root');
}

/**
 * Creates the two namespaces and the veth pair, addresses 10.<a>.<b>.1 (target) and
 * 10.<a>.<b>.2.. (peer, `extraPeerAddrs` more), both ends up, loopback up in both.
 * `tag` (a few letters) goes into the names, to tell them apart in `ip netns`.
 */
export function createVethPair(tag: string, extraPeerAddrs = 0): VethPair {
  requireNetns();
  const id = `${process.pid % 100000}${counter++}`;
  const short = `${tag.slice(0, 3)}${id}`.slice(0, 10);
  const targetNs = `bpfleet-${tag}-${id}-t`;
  const peerNs = `bpfleet-${tag}-${id}-p`;
  const targetIf = `${short}t`;
  const peerIf = `${short}p`;
  // A /24 per pair from the pid, inside 10.200.0.0 - 10.239.255.0 (private, unlikely in use).
  const n = (process.pid * 7 + counter * 13) % 10240;
  const net = `10.${200 + Math.floor(n / 256)}.${n % 256}`;
  const targetAddr = `${net}.1`;
  const peerAddrs = Array.from({ length: 1 + extraPeerAddrs }, (_, i) => `${net}.${2 + i}`);

  const pair: VethPair = {
    targetNs,
    peerNs,
    targetIf,
    peerIf,
    targetAddr,
    peerAddrs,
    nsArgs: (ns) => ['netns', 'exec', ns],
    async exec(ns, cmd, args, timeoutMs = 60_000) {
      try {
        const { stdout } = await execFileP('ip', ['netns', 'exec', ns, cmd, ...args], {
          timeout: timeoutMs,
          maxBuffer: 16 << 20,
        });
        return stdout;
      } catch (err) {
        const e = err as { stderr?: string; stdout?: string; message: string };
        throw new Error(`${cmd} ${args.join(' ')} in ${ns} failed: ${(e.stderr || e.message).trim()}\n${e.stdout ?? ''}`, { cause: err });
      }
    },
    execSync(ns, cmd, args) {
      return ip(['netns', 'exec', ns, cmd, ...args]);
    },
    remove() {
      for (const ns of [targetNs, peerNs]) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
        } catch {
          // not created, or already removed
        }
      }
    },
  };

  try {
    ip(['netns', 'add', targetNs]);
    ip(['netns', 'add', peerNs]);
    ip(['link', 'add', targetIf, 'netns', targetNs, 'type', 'veth', 'peer', 'name', peerIf, 'netns', peerNs]);
    for (const [ns, dev, addrs] of [
      [targetNs, targetIf, [targetAddr]],
      [peerNs, peerIf, peerAddrs],
    ] as const) {
      for (const a of addrs) ip(['-n', ns, 'addr', 'add', `${a}/24`, 'dev', dev]);
      ip(['-n', ns, 'link', 'set', 'dev', dev, 'up']);
      ip(['-n', ns, 'link', 'set', 'dev', 'lo', 'up']);
    }
  } catch (err) {
    pair.remove();
    throw err;
  }
  return pair;
}

/** One protocol's counters from /proc/net/snmp (or /proc/net/netstat) text: name -> value. */
export function parseSnmp(text: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const lines = text.split('\n').filter((l) => l.includes(':'));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [proto, names] = lines[i]!.split(/:\s*/, 2) as [string, string];
    const values = lines[i + 1]!.split(/:\s*/, 2)[1]!.trim().split(/\s+/);
    const m = new Map<string, number>();
    names
      .trim()
      .split(/\s+/)
      .forEach((nm, j) => m.set(nm, Number(values[j])));
    out.set(proto, m);
  }
  return out;
}

/** A counter of the host's (this process's namespace) /proc/net/snmp + /proc/net/netstat. */
export function snmpCounter(group: string, name: string, text?: string): number {
  const t = text ?? readFileSync('/proc/net/snmp', 'utf8') + readFileSync('/proc/net/netstat', 'utf8');
  const v = parseSnmp(t).get(group)?.get(name);
  if (v === undefined) throw new Error(`no counter ${group}.${name} in /proc/net/snmp or /proc/net/netstat`);
  return v;
}

/** A counter of a namespace's /proc/net/snmp + /proc/net/netstat. */
export function nsSnmpCounter(pair: VethPair, ns: string, group: string, name: string): number {
  const text = pair.execSync(ns, 'cat', ['/proc/net/snmp', '/proc/net/netstat']);
  return snmpCounter(group, name, text);
}

/** Parses `ping` output: packets transmitted/received and the rtt min/avg/max/mdev in ms. */
export function parsePing(out: string): { sent: number; received: number; avgMs?: number; minMs?: number; maxMs?: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  if (!m) throw new Error(`unexpected ping output:\n${out}`);
  const r = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  return {
    sent: Number(m[1]),
    received: Number(m[2]),
    minMs: r ? Number(r[1]) : undefined,
    avgMs: r ? Number(r[2]) : undefined,
    maxMs: r ? Number(r[3]) : undefined,
  };
}
