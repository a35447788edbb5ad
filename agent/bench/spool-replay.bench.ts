// Micro-benchmark of the spool's read-back: how fast Spool.replay() (the catch-up after a
// reconnect, or after a backlog outgrew the sender's in-memory tail) returns what is spooled,
// for batches of 88-byte records from 20 per batch (a quiet board) to 1,000, as a ratio against
// reading the same segment files with fs.readFileSync in the same run (the floor: the bytes
// alone, nothing parsed or checked). Median of `rounds`, the cases taking turns.
//
//   npx tsx agent/bench/spool-replay.bench.ts [dir] [MiB per case] [rounds]
//
// dir defaults to the OS temp dir: point it at the board's spool file system to measure that.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Spool } from '../src/spool/index.js';

const RECORD_SIZE = 88;
const BATCH_SIZES = [20, 100, 1000];
const root = fs.mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), 'bpfleet-spool-replay-bench-'));
const mib = Number(process.argv[3] ?? 64);
const rounds = Number(process.argv[4] ?? 5);
if (!(mib > 0) || !(rounds >= 1)) throw new Error('spool-replay.bench: MiB per case and rounds must be positive');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;

/** A spool of about `mib` MiB of batches of `count` records, closed; returns its dir and batch count. */
async function fill(count: number): Promise<{ dir: string; batches: number }> {
  const dir = path.join(root, `spool-${count}`);
  const s = await Spool.open({ dir, maxBytes: 4 * mib * 1024 * 1024, sync: 'none', log: () => undefined });
  const batch = { count, recordSize: RECORD_SIZE, records: randomBytes(count * RECORD_SIZE), schemaId: 'tcpstates@1.0.0:0123456789abcdef', clockOffsetNs: 0n };
  const batches = Math.ceil((mib * 1024 * 1024) / batch.records.length);
  for (let i = 0; i < batches; i++) await s.append('bench/tcpstates/1', batch);
  await s.close();
  return { dir, batches };
}

async function replayMs(dir: string, want: number): Promise<number> {
  const s = await Spool.open({ dir, maxBytes: 4 * mib * 1024 * 1024, sync: 'none', log: () => undefined });
  const t0 = performance.now();
  let n = 0;
  for await (const b of s.replay()) n += b.count > 0 ? 1 : 0;
  const ms = performance.now() - t0;
  await s.close();
  if (n !== want) throw new Error(`spool-replay.bench: replayed ${n} batches of ${want}`);
  return ms;
}

function readFilesMs(dir: string): number {
  const t0 = performance.now();
  let bytes = 0;
  for (const f of fs.readdirSync(dir)) if (f.startsWith('seg-')) bytes += fs.readFileSync(path.join(dir, f)).length;
  if (bytes === 0) throw new Error('spool-replay.bench: no segment files');
  return performance.now() - t0;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const rows: string[][] = [['batch', 'batches', 'readFileSync ms', 'replay ms', 'vs readFileSync', 'batches/s', 'records/s']];
try {
  const cases = [];
  for (const count of BATCH_SIZES) cases.push({ count, ...(await fill(count)), base: [] as number[], replay: [] as number[] });
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      c.base.push(readFilesMs(c.dir));
      c.replay.push(await replayMs(c.dir, c.batches));
    }
  }
  for (const c of cases) {
    const base = median(c.base), rep = median(c.replay);
    rows.push([String(c.count), fmt(c.batches), base.toFixed(1), rep.toFixed(1), `${(rep / base).toFixed(1)}x`,
      fmt((c.batches * 1000) / rep), fmt((c.batches * c.count * 1000) / rep)]);
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}

const header = rows[0] ?? [];
const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
const line = (r: string[]): string => `| ${r.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`;
console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? '?'}, ${mib} MiB per case, median of ${rounds}, dir ${path.dirname(root)}`);
console.log(line(header));
console.log(`|${widths.map((w) => ` ${'-'.repeat(w - 1)}: `).join('|')}|`);
for (const r of rows.slice(1)) console.log(line(r));
