import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreIoError } from './errors.js';
import { LATEST_VERSION, MIGRATIONS, migrate, schemaVersion } from './migrations.js';
import { eventsAfterSql } from './sqlite-events.js';
import { SqliteStore } from './sqlite-store.js';
import { storeContract } from './store-contract.js';
import { loadTcpstates, seqBatch } from './tcpstates-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'bpfleet-store-'));
let n = 0;
const freshPath = () => join(root, `t${++n}.db`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

storeContract('SqliteStore', async ({ now }) => SqliteStore.open(freshPath(), { now }));

const { schemaId, manifest } = loadTcpstates();
const DEV = 'd-00000000000000aa';
const STREAM = `${DEV}/tcpstates/r1`;
const batch = (first: number, count: number) => seqBatch(schemaId, manifest, STREAM, first, count);

describe('SqliteStore on disk', () => {
  let path: string;
  let store: SqliteStore;
  beforeEach(async () => {
    path = freshPath();
    store = SqliteStore.open(path);
    await store.putManifest(schemaId, manifest);
  });
  afterEach(async () => { await store.close(); });

  it('uses WAL with synchronous=NORMAL and a busy timeout', () => {
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(store.db.pragma('busy_timeout', { simple: true })).toBe(5000);
  });

  it('keeps cursors, gaps and records across close and reopen', async () => {
    await store.ingestBatch(DEV, batch(1, 9));
    await store.ingestBatch(DEV, batch(20, 10));
    await store.close();
    store = SqliteStore.open(path);
    expect(await store.cursor(STREAM)).toEqual({ streamId: STREAM, ackedThrough: 9n, nextSeq: 30n, gapRecords: 10 });
    expect(await store.gaps(STREAM)).toMatchObject([{ fromSeq: 10, toSeq: 20, state: 'open' }]);
    expect(await store.ingestBatch(DEV, batch(1, 9))).toMatchObject({ stored: 0, duplicate: 9 });
    expect(await store.ingestBatch(DEV, batch(10, 10))).toMatchObject({ stored: 10, ackedThrough: 29n });
    expect((await store.events({ streamId: STREAM, limit: 100 })).map((e) => e.fields['pid']))
      .toEqual(Array.from({ length: 29 }, (_, i) => 1001 + i));
  });

  it('reports a full disk naming the file, storing nothing of the batch', async () => {
    await store.ingestBatch(DEV, batch(1, 9));
    const pages = store.db.pragma('page_count', { simple: true }) as number;
    store.db.pragma(`max_page_count = ${pages + 2}`); // room for far less than 2000 x 88 bytes
    const err = await store.ingestBatch(DEV, batch(10, 2000)).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreIoError);
    expect(err).toMatchObject({ sqliteCode: 'SQLITE_FULL', path });
    expect((err as Error).message).toContain(`database ${path}: disk full`);
    expect(await store.cursor(STREAM)).toMatchObject({ ackedThrough: 9n, nextSeq: 10n });
  });

  it('reports a database locked by another writer, naming the file', async () => {
    await store.close();
    store = SqliteStore.open(path, { busyTimeoutMs: 50 });
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const err = await store.ingestBatch(DEV, batch(1, 1)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StoreIoError);
      expect((err as StoreIoError).sqliteCode).toMatch(/^SQLITE_BUSY/);
      expect((err as Error).message).toContain(`database ${path} stayed locked`);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(await store.ingestBatch(DEV, batch(1, 1))).toMatchObject({ stored: 1 });
  });

  it('says which path it cannot open', () => {
    const bad = join(root, 'no-such-dir', 'x.db');
    expect(() => SqliteStore.open(bad)).toThrow(new RegExp(`cannot open database ${bad}: directory .*no-such-dir does not exist`));
  });
});

describe('migrations', () => {
  it('numbers migrations 1..n in order', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  });

  it('opens a version 1 database and migrates it, keeping its data', async () => {
    const path = freshPath();
    const v1 = new Database(path);
    expect(migrate(v1, path, MIGRATIONS, 1)).toBe(1);
    v1.prepare(`INSERT INTO devices (id, name, labels_json, credential_hash, facts_json, first_seen_ms, last_seen_ms)
      VALUES ('${DEV}', 'old-board', '{"lab":"3"}', 'x', '{}', 1, 2)`).run();
    expect(v1.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'batches'").get()).toEqual({ n: 0 });
    v1.close();

    const store = SqliteStore.open(path);
    try {
      expect(schemaVersion(store.db)).toBe(LATEST_VERSION);
      expect(LATEST_VERSION).toBeGreaterThan(1);
      expect(await store.devices()).toMatchObject([{ id: DEV, name: 'old-board', labels: { lab: '3' } }]);
      await store.putManifest(schemaId, manifest);
      expect(await store.ingestBatch(DEV, batch(1, 3))).toMatchObject({ stored: 3 });
      await store.recordPipelineStats(DEV, { streamId: STREAM, records: 3n, kernelRingbufFull: 0n, kernelMapFull: 0n,
        kernelSampledOut: 0n, kernelReadFailed: 0n, loaderLost: 0n, agentQueueDropped: 0n, spoolEvicted: 0n, spoolCorrupt: 0n, timeUnixNs: 1n });
      expect(store.db.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all())
        .toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await store.close();
    }
  });

  it('refuses a database written by a newer controller', () => {
    const path = freshPath();
    const db = new Database(path);
    migrate(db, path);
    db.prepare("INSERT INTO schema_version (version, what, applied_at_ms) VALUES (99, 'future', 0)").run();
    db.close();
    expect(() => SqliteStore.open(path)).toThrow(/schema version 99, this controller knows up to \d+/);
  });
});

describe('SqliteStore eventsAfter at 1,000 streams', () => {
  it('walks only the new batches by rowid whichever filter is given (the query plan)', async () => {
    const store = SqliteStore.open(freshPath());
    try {
      await store.putManifest(schemaId, manifest);
      const dev = (i: number) => `d-${String(i).padStart(16, '0')}`;
      await store.ingestMany(Array.from({ length: 1000 }, (_, i) =>
        ({ deviceId: dev(i), batch: seqBatch(schemaId, manifest, `${dev(i)}/tcpstates/r1`, 1, 2) })));
      store.db.exec('ANALYZE');
      // Without the forced join order, a device filter makes SQLite read every batch of the
      // device's streams through batches_by_seq and sort them.
      for (const q of [{}, { probe: 'tcpstates' }, { deviceId: dev(5) }, { deviceId: dev(5), probe: 'tcpstates' }]) {
        const { sql, args } = eventsAfterSql(q);
        const plan = (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(990n, 1000n, ...args) as { detail: string }[]).map((r) => r.detail);
        expect(plan, JSON.stringify(q)).toEqual(['SEARCH b USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)',
          'SEARCH s USING INTEGER PRIMARY KEY (rowid=?)']);
      }
    } finally {
      await store.close();
    }
  });
});
