// Helpers for the probe specs: real loaders, real traffic, a recording sink. Not exported by
// the package.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProbeStatus_State, encodeFrame, type ProbeStatus } from '@bpfleet/proto';
import type { LoaderStats, ProbeBatch, ProbeSink } from './types.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
export const devDir = path.join(repoRoot, 'bpf', 'out', 'x86_64');

/** Loaders are loaded into the kernel for real: root or nothing (never a skip). */
export function requireRoot(): void {
  const uid = process.geteuid?.();
  if (uid !== 0) {
    throw new Error(`these tests load eBPF programs for real and need root; effective uid is ${uid ?? 'unknown'}`);
  }
}

/** Builds the x86_64 probes when tcpstates is missing. */
export function ensureProbesBuilt(): void {
  if (existsSync(path.join(devDir, 'tcpstates')) && existsSync(path.join(devDir, 'skbclone'))) return;
  execFileSync('make', ['-C', path.join(repoRoot, 'bpf')], { stdio: 'inherit', timeout: 600_000 });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `bpfleet-${prefix}-`));
}

/** Compiles test/fixtures/tcpgen.c into dir. */
export function buildTcpgen(dir: string): string {
  const bin = path.join(dir, 'tcpgen');
  execFileSync('cc', ['-O2', '-Wall', '-o', bin, path.join(repoRoot, 'test', 'fixtures', 'tcpgen.c')], { timeout: 60_000 });
  return bin;
}

export interface TcpgenRun {
  pid: number;
  conns: { pid: number; lport: number; rport: number }[];
}

/** `tcpgen PORT SEND RECV COUNT`: one JSON line per finished connection. */
export function runTcpgen(bin: string, port: number, send: number, recv: number, count: number): Promise<TcpgenRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [String(port), String(send), String(recv), String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`tcpgen exited ${code}: ${err}`));
      const conns = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as TcpgenRun['conns'][number]);
      if (conns.length !== count) return reject(new Error(`tcpgen printed ${conns.length} lines, expected ${count}`));
      resolve({ pid: child.pid ?? -1, conns });
    });
  });
}

// Below the ephemeral range (32768+): a storm leaves thousands of client ports in TIME_WAIT
// there, and tcpgen's listener cannot bind over those.
let nextPort = 10000 + (process.pid % 2000) * 11;
export function pickPort(): number {
  nextPort = nextPort >= 32000 ? 10000 + (nextPort % 11) : nextPort + 11;
  return nextPort;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Records everything a run delivers, with arrival times. */
export class RecordingSink implements ProbeSink {
  batches: ProbeBatch[] = [];
  statsSeen: LoaderStats[] = [];
  statuses: (ProbeStatus & { at: number })[] = [];
  /** Called before a batch is recorded; may delay (a slow consumer). */
  onBatch: ((b: ProbeBatch) => Promise<void>) | undefined;

  async batch(b: ProbeBatch): Promise<void> {
    await this.onBatch?.(b);
    this.batches.push(b);
  }

  stats(s: LoaderStats): void {
    this.statsSeen.push(s);
  }

  status(s: ProbeStatus): void {
    this.statuses.push({ ...s, at: Date.now() });
  }

  get records(): number {
    return this.batches.reduce((n, b) => n + b.count, 0);
  }

  states(): string[] {
    return this.statuses.map((s) => `${ProbeStatus_State[s.state]}/${s.restarts}`);
  }

  async waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; statuses: ${this.states().join(' ')}`);
      await sleep(20);
    }
  }

  waitForState(state: ProbeStatus_State, count = 1, timeoutMs = 10_000): Promise<void> {
    return this.waitFor(`${count} x ${ProbeStatus_State[state]}`, () => this.statuses.filter((s) => s.state === state).length >= count, timeoutMs);
  }
}

/** `printf` text that writes exactly these bytes from /bin/sh. */
function shBytes(buf: Buffer): string {
  return [...buf].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
}

export const FAKE_MANIFEST = JSON.stringify({
  schema: 'bpfleet.manifest/v1',
  probe: 'fake',
  version: '0.0.1',
  kind: 'stream',
  record: { name: 'fake_event', size: 8, endian: 'little', fields: [{ name: 'n', type: 'u64', offset: 0, size: 8, format: 'plain', unit: '', description: 'n' }] },
  hooks: [],
});

/**
 * A loader that says HELLO, writes one record and a STATS frame, reports ready, then dies
 * with exit 1: a crash every time. Installed under installDir as the registry expects.
 */
export function installCrashingLoader(installDir: string): string {
  // Written as text: the offset is past 2^53 and must arrive exact.
  const hello = encodeFrame(3, 0, '{"probe":"fake","version":"0.0.1","record_size":8,"clock_offset_ns":1700000000123456789,"programs":[]}');
  const rec = Buffer.alloc(8);
  rec.writeBigUInt64LE(42n);
  const event = encodeFrame(1, 0, rec);
  const stats = encodeFrame(2, 0, JSON.stringify({ ts_ns: 1, records: 1, intervals: 0, kernel: { ringbuf_full: 0, map_full: 0, sampled_out: 0, read_failed: 0 }, loader: { lost: 0 } }));
  const dir = path.join(installDir, 'fake', 'current');
  mkdirSync(dir, { recursive: true });
  const bin = path.join(dir, 'fake');
  writeFileSync(
    bin,
    `#!/bin/sh
if [ "$1" = "--manifest" ]; then printf '%s' '${FAKE_MANIFEST}'; exit 0; fi
printf '${shBytes(Buffer.concat([hello, event, stats]))}'
echo "fake: ready (hooks: none; btf: none)" >&2
echo "fake: segfault in the imaginary ring buffer" >&2
exit 1
`,
  );
  chmodSync(bin, 0o755);
  return bin;
}
