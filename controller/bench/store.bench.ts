// Ingest throughput of the SQLite store against raw better-sqlite3 inserts of the same blobs.
//
//   npx tsx controller/bench/store.bench.ts [events per case, default 1000000]
//   BENCH_DIR=/dev/shm npx tsx ...   (RAM: SQLite's CPU cost alone, without the disk's noise)
//
// Each case writes the same pre-built batches of 88-byte tcpstates records, spread round-robin
// over 100 streams (100 devices), into a fresh database file with the store's pragmas (WAL,
// synchronous=NORMAL, same cache size). The baseline inserts each blob into a bare table with no lookup, no
// dedup and no cursor update: what SQLite itself costs. "single" = one transaction per batch,
// "group" = 50 batches per transaction (ingestMany). "replay" ingests everything once, then
// times ingesting it all again: every record a duplicate, nothing written but cursors.
//
// The PostgreSQL columns run the same store cases against PgStore on a throwaway local cluster
// (test/lib/postgres.ts, Unix socket, server defaults: fsync and synchronous_commit on, so each
// commit waits for a WAL flush, which SQLite's synchronous=NORMAL does not; BENCH_PG_SYNC=off
// sets synchronous_commit=off, the closer match). BENCH_PG=0 leaves PostgreSQL out.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventBatch } from '@bpfleet/proto';
import { PgStore, SqliteStore } from '../src/store/index.js';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the dependency-free throwaway cluster shared with the tests
import { Postgres } from '../../test/lib/postgres.js';
import { loadTcpstates, seqRecord } from '../src/store/tcpstates-fixture.js';

const TOTAL = Number(process.argv[2] ?? 1_000_000);
const STREAMS = 100;
const GROUP = 50;
const SIZES = [100, 1000, 10_000];
const REPEAT = 3;

const median = (rs: Run[]): Run => {
  const by = (k: keyof Run) => [...rs].sort((a, b) => a[k] - b[k])[Math.floor(rs.length / 2)]![k];
  return { seconds: by('seconds'), p99ms: by('p99ms') };
};

const { schemaId, manifest } = loadTcpstates();
const dir = mkdtempSync(join(process.env['BENCH_DIR'] ?? tmpdir(), 'bpfleet-store-bench-'));
let files = 0;
const freshFile = () => join(dir, `b${++files}.db`);

function makeBatches(batchSize: number): EventBatch[] {
  const template = seqRecord(manifest, 0);
  const count = Math.ceil(TOTAL / batchSize);
  const next = new Array<number>(STREAMS).fill(1); // streams number records from 1
  const out: EventBatch[] = [];
  for (let b = 0; b < count; b++) {
    const s = b % STREAMS;
    const records = Buffer.alloc(batchSize * template.length);
    for (let i = 0; i < batchSize; i++) {
      template.copy(records, i * template.length);
      records.writeBigUInt64LE(5_000_000_000n + BigInt(next[s]! + i) * 1000n, i * template.length);
    }
    out.push({ streamId: `d-${String(s).padStart(16, '0')}/tcpstates/r1`, firstSeq: BigInt(next[s]!), count: batchSize,
      records, recordSize: template.length, schemaId, clockOffsetNs: 1_700_000_000_000_000_000n, intervalIndex: [] });
    next[s]! += batchSize;
  }
  return out;
}

const deviceOf = (b: EventBatch) => b.streamId.slice(0, b.streamId.indexOf('/'));

interface Run { seconds: number; p99ms: number }

function timed(n: number, step: (i: number) => void): Run {
  const lat: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    step(i);
    lat.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((x, y) => x - y);
  return { seconds, p99ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! };
}

function rawDb(): Database.Database {
  const db = new Database(freshFile());
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('journal_size_limit = 67108864'); // as SqliteStore.open
  db.pragma('cache_size = -32768');
  db.exec('CREATE TABLE raw (stream TEXT NOT NULL, first_seq INTEGER NOT NULL, records BLOB NOT NULL)');
  return db;
}

function raw(batches: EventBatch[], group: number): Run {
  const db = rawDb();
  const ins = db.prepare('INSERT INTO raw (stream, first_seq, records) VALUES (?, ?, ?)');
  const tx = db.transaction((from: number) => {
    for (let i = from; i < Math.min(from + group, batches.length); i++) ins.run(batches[i]!.streamId, batches[i]!.firstSeq, batches[i]!.records);
  });
  const r = timed(Math.ceil(batches.length / group), (i) => tx.immediate(i * group));
  db.close();
  return r;
}

async function store(batches: EventBatch[], group: number, replay = false): Promise<Run> {
  const s = SqliteStore.open(freshFile());
  await s.putManifest(schemaId, manifest);
  if (replay) s.ingestManySync(batches.map((batch) => ({ deviceId: deviceOf(batch), batch })));
  const r = group === 1
    ? timed(batches.length, (i) => { s.ingestBatchSync(deviceOf(batches[i]!), batches[i]!); })
    : timed(Math.ceil(batches.length / group), (i) => {
      const items = batches.slice(i * group, (i + 1) * group).map((batch) => ({ deviceId: deviceOf(batch), batch }));
      for (const o of s.ingestManySync(items)) if (!o.ok) throw o.error;
    });
  const stored = (await s.streams()).reduce((n, st) => n + st.storedRecords, 0);
  if (stored !== batches.length * batches[0]!.count) throw new Error(`stored ${stored} records, expected ${batches.length * batches[0]!.count}`);
  await s.close();
  return r;
}

async function timedAsync(n: number, step: (i: number) => Promise<void>): Promise<Run> {
  const lat: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    await step(i);
    lat.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((x, y) => x - y);
  return { seconds, p99ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! };
}

const pgCluster = process.env['BENCH_PG'] === '0' ? undefined : await Postgres.start({ port: 5433,
  settings: { listen_addresses: '', ...(process.env['BENCH_PG_SYNC'] === 'off' ? { synchronous_commit: 'off' } : {}) } });
let pgDbs = 0;
// A failing case must not leave the postmaster running.
process.once('exit', () => { if (pgCluster?.pid !== undefined) try { process.kill(pgCluster.pid, 'SIGINT'); } catch { /* gone */ } });

async function pgStore(batches: EventBatch[], group: number, replay = false): Promise<Run> {
  const s = await PgStore.open(pgCluster!.createDatabase(`b${++pgDbs}`, 'socket'));
  await s.putManifest(schemaId, manifest);
  const items = (from: number, to: number) => batches.slice(from, to).map((batch) => ({ deviceId: deviceOf(batch), batch }));
  if (replay) for (let i = 0; i < batches.length; i += GROUP) await s.ingestMany(items(i, i + GROUP));
  const r = group === 1
    ? await timedAsync(batches.length, async (i) => { await s.ingestBatch(deviceOf(batches[i]!), batches[i]!); })
    : await timedAsync(Math.ceil(batches.length / group), async (i) => {
      for (const o of await s.ingestMany(items(i * group, (i + 1) * group))) if (!o.ok) throw o.error;
    });
  const stored = (await s.streams()).reduce((n, st) => n + st.storedRecords, 0);
  if (stored !== batches.length * batches[0]!.count) throw new Error(`PostgreSQL stored ${stored} records, expected ${batches.length * batches[0]!.count}`);
  await s.close();
  return r;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const rows: string[][] = [];
for (const size of SIZES) {
  const batches = makeBatches(size);
  const events = batches.length * size;
  // Disk and checkpoint timing vary from run to run: each case runs REPEAT times, interleaved, and
  // the median counts.
  const runs: Run[][] = [[], [], [], [], [], [], [], []];
  for (let rep = 0; rep < REPEAT; rep++) {
    runs[0]!.push(raw(batches, 1));
    runs[1]!.push(raw(batches, GROUP));
    runs[2]!.push(await store(batches, 1));
    runs[3]!.push(await store(batches, GROUP));
    runs[4]!.push(await store(batches, GROUP, true));
    if (pgCluster) {
      runs[5]!.push(await pgStore(batches, 1));
      runs[6]!.push(await pgStore(batches, GROUP));
      runs[7]!.push(await pgStore(batches, GROUP, true));
    }
  }
  const [rawSingle, rawGroup, single, group, replay] = runs.map((r) => (r.length ? median(r) : undefined)) as [Run, Run, Run, Run, Run];
  const [pgSingle, pgGroup, pgReplay] = runs.slice(5).map((r) => (r.length ? median(r) : undefined));
  const cases: [string, Run, Run, Run | undefined][] = [
    ['raw insert, single', rawSingle, rawSingle, undefined],
    ['raw insert, group', rawGroup, rawGroup, undefined],
    ['store ingestBatch, single', single, rawSingle, pgSingle],
    ['store ingestMany, group', group, rawGroup, pgGroup],
    ['store replay (all duplicates), group', replay, rawGroup, pgReplay],
  ];
  for (const [what, r, base, p] of cases) {
    rows.push([String(size), what, fmt(events / r.seconds), (base.seconds / r.seconds).toFixed(2),
      (rawSingle.seconds / r.seconds).toFixed(2), r.p99ms.toFixed(2),
      ...(pgCluster ? (p ? [fmt(batches.length / p.seconds), fmt(events / p.seconds), (r.seconds / p.seconds).toFixed(2), p.p99ms.toFixed(2)]
        : ['-', '-', '-', '-']) : [])]);
  }
}
rmSync(dir, { recursive: true, force: true });
await pgCluster?.stop();

const head = ['records/batch', 'case', 'events/s', 'x same-mode raw', 'x raw single', 'p99 ms/tx',
  ...(pgCluster ? ['PG batches/s', 'PG events/s', 'PG x SQLite', 'PG p99 ms/tx'] : [])];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => `| ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
console.log(`${dir}: ${fmt(TOTAL)} events of 88 bytes per case, ${STREAMS} streams, group = ${GROUP} batches/transaction, median of ${REPEAT}` +
  `${pgCluster ? `; PostgreSQL (${pgCluster.dir}, synchronous_commit ${process.env['BENCH_PG_SYNC'] === 'off' ? 'off' : 'on'}) in the same run` : ''}\n`);
console.log(line(head));
console.log(`|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const r of rows) console.log(line(r));
