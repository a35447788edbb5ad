// The PostgreSQL store against a real throwaway PostgreSQL (test/lib/postgres.ts; fails loudly,
// never skips, without Debian's postgresql package): the shared Store contract, then what only
// a shared database has to show: two controllers (two PgStores, two pools) ingesting the same
// stream at once, and migrations run by controllers starting together.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The throwaway cluster helper is test support shared with the integration tests, dependency-free;
// one copy of it (not a controller copy drifting from test/lib's) is worth this one exception.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { Postgres } from '../../../../test/lib/postgres.js';
import { StoreIoError } from '../errors.js';
import { storeContract } from '../store-contract.js';
import type { IngestItem, IngestOutcome } from '../store.js';
import { loadTcpstates, seqBatch } from '../tcpstates-fixture.js';
import { ingestInTx } from './pg-ingest.js';
import { PgManifests } from './pg-manifests.js';
import { PG_LATEST_VERSION, PG_MIGRATIONS } from './pg-migrations.js';
import { PgStore } from './pg-store.js';

let pg: Postgres;
let n = 0;
// Unix socket only (listen_addresses ''): no TCP port to collide with other specs or tests.
// fsync off: the cluster is thrown away; durability is PostgreSQL's, not under test here.
beforeAll(async () => {
  pg = await Postgres.start({ port: 5433, settings: { listen_addresses: '', fsync: 'off', synchronous_commit: 'off' } });
}, 120_000);
afterAll(async () => { await pg?.stop(); });
const freshDb = (): string => pg.createDatabase(`t${++n}`, 'socket');

storeContract('PgStore', async ({ now }) => PgStore.open(freshDb(), { now }));

const { schemaId, manifest } = loadTcpstates();
const DEV = 'd-00000000000000bb';
const streamOf = (i: number) => `${DEV}/tcpstates/r${i}`;

/** Deterministic PRNG (mulberry32): a failing interleaving can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('two controllers on one database', () => {
  let url: string;
  let a: PgStore, b: PgStore;
  beforeAll(async () => {
    url = freshDb();
    [a, b] = await Promise.all([PgStore.open(url, { poolSize: 4, applicationName: 'ctl-a' }),
      PgStore.open(url, { poolSize: 4, applicationName: 'ctl-b' })]);
    await a.putManifest(schemaId, manifest);
    await b.putManifest(schemaId, manifest);
  });
  afterAll(async () => { await a?.close(); await b?.close(); });

  it('store each seq of streams fed to both at once exactly once, in interleaved and overlapping batches', async () => {
    const STREAMS = 3, SEQS = 1500;
    const random = rng(8);
    // Per stream: batches covering 1..SEQS, each starting up to 10 seqs before the previous end
    // (overlaps: an agent's replay after a reconnect), plus 20% sent twice (a resend to the other controller).
    const all: IngestItem[] = [];
    for (let s = 1; s <= STREAMS; s++) {
      for (let next = 1; next <= SEQS;) {
        const first = Math.max(1, next - Math.floor(random() * 10));
        const count = Math.min(SEQS + 1 - first, 1 + Math.floor(random() * 40));
        const item = { deviceId: DEV, batch: seqBatch(schemaId, manifest, streamOf(s), first, count) };
        all.push(item);
        if (random() < 0.2) all.push(item);
        next = first + count;
      }
    }
    // Roughly in order (as agents send), but shuffled locally so gaps open and fill.
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.max(0, i - Math.floor(random() * 6));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    // Dealt to the two controllers at random, each committing groups of 1..8 batches from
    // three sessions at once: up to six transactions in flight on the same streams.
    const queues: { store: PgStore; items: IngestItem[] }[] = [];
    for (let q = 0; q < 6; q++) queues.push({ store: q % 2 === 0 ? a : b, items: [] });
    for (const it of all) queues[Math.floor(random() * queues.length)]!.items.push(it);
    const results: { store: PgStore; items: IngestItem[]; out: IngestOutcome[] }[] = [];
    await Promise.all(queues.map(async ({ store, items }) => {
      for (let i = 0; i < items.length;) {
        const group = items.slice(i, i + 1 + Math.floor(random() * 8));
        i += group.length;
        results.push({ store, items: group, out: await store.ingestMany(group) });
      }
    }));

    const storedBy = new Map<PgStore, number>([[a, 0], [b, 0]]);
    let stored = 0, duplicate = 0, sent = 0;
    for (const r of results) {
      for (const o of r.out) {
        expect(o.ok).toBe(true);
        if (!o.ok) continue;
        stored += o.stored;
        duplicate += o.duplicate;
        storedBy.set(r.store, storedBy.get(r.store)! + o.stored);
      }
      sent += r.items.reduce((k, it) => k + it.batch.count, 0);
    }
    // Every seq reported stored by exactly one of the controllers, the rest as duplicates.
    expect(stored).toBe(STREAMS * SEQS);
    expect(stored + duplicate).toBe(sent);
    expect(storedBy.get(a)).toBeGreaterThan(0);
    expect(storedBy.get(b)).toBeGreaterThan(0);

    for (let s = 1; s <= STREAMS; s++) {
      const seqs = (await a.events({ streamId: streamOf(s), limit: 100_000 })).map((e) => e.seq);
      expect(seqs).toEqual(Array.from({ length: SEQS }, (_, i) => i + 1));
      // Each record is the one of its seq (pieces cut at the right offsets).
      expect((await b.events({ streamId: streamOf(s), limit: 5, sinceUnixNs: 0n })).map((e) => e.fields['pid']))
        .toEqual([1001, 1002, 1003, 1004, 1005]);
      const ca = await a.cursor(streamOf(s)), cb = await b.cursor(streamOf(s));
      expect(ca).toEqual({ streamId: streamOf(s), ackedThrough: BigInt(SEQS), nextSeq: BigInt(SEQS + 1), gapRecords: 0 });
      expect(cb).toEqual(ca);
      expect(await b.gaps(streamOf(s))).toEqual([]);
    }
    // The database's own view: no seq in two stored pieces, counters equal to the rows.
    const overlap = pg.psql(`t${dbIndex(url)}`, `SELECT count(*) FROM batches x JOIN batches y ON x.stream = y.stream
      AND (x.first_seq, x.count) <> (y.first_seq, y.count) AND x.first_seq < y.first_seq + y.count AND y.first_seq < x.first_seq + x.count`);
    expect(overlap.trim()).toBe('0');
    const sums = pg.psql(`t${dbIndex(url)}`, `SELECT (SELECT sum(count) FROM batches) || ' ' || (SELECT sum(stored_records) FROM streams)`);
    expect(sums.trim()).toBe(`${STREAMS * SEQS} ${STREAMS * SEQS}`);
    // batches.stored_by names the controller that committed each piece.
    const by = pg.psql(`t${dbIndex(url)}`, `SELECT stored_by || '=' || sum(count) FROM batches GROUP BY stored_by ORDER BY stored_by`).trim().split('\n');
    expect(by).toEqual([`ctl-a=${storedBy.get(a)}`, `ctl-b=${storedBy.get(b)}`]);
    const finalAcks = results.flatMap((r) => r.out).filter((o) => o.ok).map((o) => (o.ok ? o.ackedThrough : 0n));
    expect(finalAcks.every((x) => x <= BigInt(SEQS))).toBe(true);
  }, 180_000);

  it('acks only contiguous data whichever controller stored the pieces', async () => {
    const s = streamOf(10);
    const [ra, rb] = await Promise.all([
      a.ingestBatch(DEV, seqBatch(schemaId, manifest, s, 1, 10)),
      b.ingestBatch(DEV, seqBatch(schemaId, manifest, s, 21, 10)),
    ]);
    expect(ra.stored + rb.stored).toBe(20);
    expect([ra.ackedThrough, rb.ackedThrough]).toContain(10n);
    expect(await b.cursor(s)).toMatchObject({ ackedThrough: 10n, nextSeq: 31n, gapRecords: 10 });
    const late = await b.ingestBatch(DEV, seqBatch(schemaId, manifest, s, 11, 10));
    expect(late).toMatchObject({ stored: 10, filled: 10, ackedThrough: 30n });
    expect(await a.cursor(s)).toMatchObject({ ackedThrough: 30n, gapRecords: 0 });
    // A loss declared through one controller moves the other's acks.
    await a.ingestBatch(DEV, seqBatch(schemaId, manifest, s, 41, 5));
    expect((await b.declareLost(DEV, s, 41n)).ackedThrough).toBe(45n);
    expect(await a.cursor(s)).toMatchObject({ ackedThrough: 45n, nextSeq: 46n });
  });

  it('follows commits, not inserts: a batch committed after a later-started one was read is neither lost nor repeated', async () => {
    const x = streamOf(20), y = streamOf(21);
    const head = await a.eventsHead();
    // X is inserted first, in a transaction of controller a left open; Y commits meanwhile through b.
    const c = await a.pool.connect();
    try {
      await c.query('BEGIN');
      await ingestInTx(c, new PgManifests(), [{ deviceId: DEV, batch: seqBatch(schemaId, manifest, x, 1, 5) }], Date.now());
      await b.ingestBatch(DEV, seqBatch(schemaId, manifest, y, 1, 3));
      const first = await a.eventsAfter(head);
      expect(first.events.map((e) => `${e.streamId}:${e.seq}`)).toEqual([1, 2, 3].map((i) => `${y}:${i}`));
      await c.query('COMMIT');
      const second = await b.eventsAfter(first.cursor);
      expect(second.events.map((e) => `${e.streamId}:${e.seq}`)).toEqual([1, 2, 3, 4, 5].map((i) => `${x}:${i}`));
      expect((await a.eventsAfter(second.cursor)).events).toEqual([]);
    } finally {
      c.release();
    }
    // X does sort before Y in the table: a cursor of "the highest position read" would skip it.
    const order = pg.psql(`t${dbIndex(url)}`, `SELECT (SELECT min(tx) FROM batches JOIN streams s ON s.id = stream WHERE s.stream_id = '${x}')
      < (SELECT min(tx) FROM batches JOIN streams s ON s.id = stream WHERE s.stream_id = '${y}')`);
    expect(order.trim()).toBe('t');
  });

  it('enrolls a token once when both controllers present it at the same time', async () => {
    const { token } = await a.createEnrollmentToken({ ttlMs: 60_000 });
    const tries = await Promise.allSettled([a.enroll({ token, deviceName: 'race-1' }), b.enroll({ token, deviceName: 'race-2' })]);
    expect(tries.filter((t) => t.status === 'fulfilled')).toHaveLength(1);
    const lost = tries.find((t) => t.status === 'rejected') as PromiseRejectedResult;
    expect(String(lost.reason)).toMatch(/already used/);
    const won = (tries.find((t) => t.status === 'fulfilled') as PromiseFulfilledResult<{ deviceId: string; credential: string }>).value;
    expect(await b.deviceByCredential(won.credential)).toMatchObject({ id: won.deviceId });
  });
});

function dbIndex(url: string): number {
  return Number(/\/t(\d+)\?/.exec(url)![1]);
}

describe('PostgreSQL migrations', () => {
  it('are applied once by controllers starting together, and are idempotent', async () => {
    const url = freshDb();
    const stores = await Promise.all([1, 2, 3, 4].map(() => PgStore.open(url, { poolSize: 1 })));
    await Promise.all(stores.map((s) => s.close()));
    const again = await PgStore.open(url, { poolSize: 1 });
    await again.close();
    const versions = pg.psql(`t${dbIndex(url)}`, 'SELECT string_agg(version::text, \',\' ORDER BY version) FROM schema_version').trim();
    expect(versions).toBe(PG_MIGRATIONS.map((m) => m.version).join(','));
    expect(PG_MIGRATIONS.map((m) => m.version)).toEqual(PG_MIGRATIONS.map((_, i) => i + 1));
  });

  it('refuses a database migrated by a newer controller, saying what to do', async () => {
    const url = freshDb();
    await (await PgStore.open(url)).close();
    pg.psql(`t${dbIndex(url)}`, "INSERT INTO schema_version (version, what, applied_at_ms) VALUES (99, 'future', 0)");
    await expect(PgStore.open(url)).rejects.toThrow(
      new RegExp(`schema version 99, this controller knows up to ${PG_LATEST_VERSION}: run a controller at least as new`));
  });
});

describe('PostgreSQL connection errors', () => {
  it('names the server and what to check when nothing listens there', async () => {
    const err = await PgStore.open('postgres://bpfleet:secret@127.0.0.1:1/fleet', { connectTimeoutMs: 5000 })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreIoError);
    expect((err as Error).message).toMatch(/^cannot reach PostgreSQL at 127\.0\.0\.1:1 \(--store postgres:\/\/bpfleet:\*\*\*@127\.0\.0\.1:1\/fleet\): is the server running/);
    expect((err as Error).message).not.toContain('secret');
  });

  it('says which database is missing and how to create it', async () => {
    await expect(PgStore.open(pg.socketUrl('nosuchdb'))).rejects.toThrow(/database "nosuchdb" does not exist on PostgreSQL at the Unix socket in .*: create it \(createdb -O bpfleet nosuchdb\)/);
  });

  it('explains a malformed URL', async () => {
    await expect(PgStore.open('postgres://host:5432')).rejects.toThrow(/names no database: add it as the path/);
    await expect(PgStore.open('postgres://[oops/db')).rejects.toThrow(/is not a valid URL/);
  });
});
