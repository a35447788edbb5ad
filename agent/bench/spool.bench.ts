// Micro-benchmark of the spool's append path: appends/s and records/s for batches of 88-byte
// records, per sync policy, as ratios against plain fs.writeSync of the same bytes to one file
// measured in the same run. Each case runs `rounds` times, the cases taking turns (page-cache
// writeback of one case slows whichever runs next); the table shows the median.
//
//   npx tsx agent/bench/spool.bench.ts [dir] [seconds per run] [rounds]
//
// dir defaults to the OS temp dir: point it at the board's spool file system to measure that.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Spool, type SyncPolicy } from '../src/spool/index.js';

const RECORD_SIZE = 88;
const BATCH_SIZES = [100, 1000, 10_000];
const POLICIES: SyncPolicy[] = ['none', 'interval', 'always'];
const root = fs.mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), 'bpfleet-spool-bench-'));
const seconds = Number(process.argv[3] ?? 0.5);
const rounds = Number(process.argv[4] ?? 5);
const CAP_BYTES = 768 * 1024 * 1024; // per case, so a fast disk does not fill up

interface Result {
  appends: number;
  elapsed: number;
}

function baseline(records: Buffer): Result {
  const file = path.join(root, 'baseline.bin');
  const fd = fs.openSync(file, 'w');
  let appends = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until && appends * records.length < CAP_BYTES) {
    fs.writeSync(fd, records);
    appends++;
  }
  const elapsed = (performance.now() - t0) / 1000;
  fs.closeSync(fd);
  fs.rmSync(file);
  return { appends, elapsed };
}

async function spool(records: Buffer, count: number, sync: SyncPolicy): Promise<Result> {
  const dir = path.join(root, `spool-${sync}`);
  const s = await Spool.open({ dir, maxBytes: 2 * CAP_BYTES, sync, log: () => undefined });
  const batch = { count, recordSize: RECORD_SIZE, records, schemaId: 'tcpstates@1.0.0:0123456789abcdef', clockOffsetNs: 0n };
  let appends = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until && appends * records.length < CAP_BYTES) {
    await s.append('bench/tcpstates/1', batch);
    appends++;
  }
  const elapsed = (performance.now() - t0) / 1000;
  await s.close();
  fs.rmSync(dir, { recursive: true });
  return { appends, elapsed };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const rows: string[][] = [['batch', 'writer', 'appends/s', 'records/s', 'MB/s', 'vs writeSync']];
try {
  for (const count of BATCH_SIZES) {
    const records = randomBytes(count * RECORD_SIZE);
    const names = ['fs.writeSync', ...POLICIES.map((p) => `spool ${p}`)];
    const runs = new Map<string, number[]>(names.map((n) => [n, []]));
    const note = (name: string, r: Result): void => void runs.get(name)?.push(r.appends / r.elapsed);
    for (let round = 0; round < rounds; round++) {
      note('fs.writeSync', baseline(records));
      for (const sync of POLICIES) note(`spool ${sync}`, await spool(records, count, sync));
    }
    const median = (xs: number[] = []): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
    const baseRate = median(runs.get('fs.writeSync'));
    for (const name of names) {
      const rate = median(runs.get(name));
      const mbps = ((rate * records.length) / 1e6).toFixed(1);
      rows.push([String(count), name, fmt(rate), fmt(rate * count), mbps, `${(rate / baseRate).toFixed(2)}x`]);
    }
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}

const header = rows[0] ?? [];
const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
const cell = (c: string, i: number): string => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0));
const line = (r: string[]): string => `| ${r.map(cell).join(' | ')} |`;
const cpu = os.cpus()[0]?.model ?? '?';
console.log(`node ${process.version}, ${cpu}, median of ${rounds} runs of ${seconds} s, dir ${path.dirname(root)}`);
console.log(line(header));
console.log(`|${widths.map((w, i) => (i < 2 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`);
for (const r of rows.slice(1)) console.log(line(r));
