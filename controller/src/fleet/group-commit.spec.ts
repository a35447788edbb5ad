import { describe, expect, it } from 'vitest';
import type { EventBatch } from '@bpfleet/proto';
import type { IngestItem, IngestOutcome } from '../store/store.js';
import { GroupCommit, type CommitEntry } from './group-commit.js';

const batch = (stream: string, bytes: number): EventBatch => ({ streamId: stream, firstSeq: 1n, count: 1, records: Buffer.alloc(bytes),
  recordSize: bytes, schemaId: 's', clockOffsetNs: 0n, intervalIndex: [] });

/** A store whose ingestMany records what each transaction held; `gate` holds commits back. */
function fakeStore() {
  const commits: IngestItem[][] = [];
  let gate: Promise<void> = Promise.resolve();
  return {
    commits,
    hold() { let open!: () => void; gate = new Promise((r) => { open = r; }); return () => open(); },
    async ingestMany(items: IngestItem[]): Promise<IngestOutcome[]> {
      await gate;
      commits.push(items);
      return items.map(() => ({ ok: true, stored: 1, duplicate: 0, gapRecords: 0, filled: 0, ackedThrough: 1n }));
    },
  };
}

describe('GroupCommit', () => {
  it('commits batches of many sessions together within the interval', async () => {
    const store = fakeStore();
    const done: CommitEntry<string>[][] = [];
    const gc = new GroupCommit<string>(store, { committed: (e) => done.push(e), failed: () => undefined }, { intervalMs: 20 });
    for (let i = 0; i < 10; i++) await gc.add(`d${i % 3}`, batch(`d${i % 3}/p/r`, 100), `session-${i % 3}`);
    expect(store.commits).toHaveLength(0); // waiting for the interval
    await new Promise((r) => setTimeout(r, 40));
    expect(store.commits.map((c) => c.length)).toEqual([10]);
    expect(done[0]!.map((e) => e.context)).toEqual(Array.from({ length: 10 }, (_, i) => `session-${i % 3}`));
    expect(gc.counters).toMatchObject({ batches: 10, commits: 1, bytes: 10 * (100 + 64) });
  });

  it('measures how long each transaction took (a commit held 80 ms shows as the longest)', async () => {
    const store = fakeStore();
    const gc = new GroupCommit<null>(store, { committed: () => undefined, failed: () => undefined }, { intervalMs: 1 });
    expect(gc.commitSeconds()).toEqual({ p50: 0, p99: 0, max: 0 });
    await gc.add('d', batch('d/p/r', 10), null);
    await gc.flush();
    const open = store.hold();
    setTimeout(open, 80);
    await gc.add('d', batch('d/p/r', 10), null);
    await gc.flush();
    const t = gc.commitSeconds();
    expect(t.max).toBeGreaterThanOrEqual(0.075);
    expect(t.max).toBeLessThan(1);
    expect(t.p50).toBeLessThanOrEqual(t.max);
    await gc.close();
  });

  it('lets the event loop run between back-to-back commits of a synchronous store', async () => {
    // Like SQLite: each transaction holds the thread. The loop must get a turn between them.
    const order: string[] = [];
    const store = {
      ingestMany(items: IngestItem[]): Promise<IngestOutcome[]> {
        order.push('commit');
        const t = Date.now();
        while (Date.now() - t < 20) { /* the transaction */ }
        return Promise.resolve(items.map(() => ({ ok: true, stored: 1, duplicate: 0, gapRecords: 0, filled: 0, ackedThrough: 1n })));
      },
    };
    const gc = new GroupCommit<null>(store, { committed: () => undefined, failed: () => undefined }, { intervalMs: 10_000, maxBytes: 1000 });
    for (let i = 0; i < 4; i++) await gc.add('d', batch('d/p/r', 1000 - 64), null); // four full commits pending
    setImmediate(() => order.push('io'));
    const deadline = Date.now() + 5000;
    while (order.filter((x) => x === 'commit').length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(order.filter((x) => x === 'commit')).toHaveLength(4);
    // The loop ran before the last commit, not only after all of them.
    expect(order.indexOf('io')).toBeGreaterThan(-1);
    expect(order.indexOf('io')).toBeLessThan(order.lastIndexOf('commit'));
  });

  it('commits at once when the byte cap is reached, and caps each commit by bytes', async () => {
    const store = fakeStore();
    const gc = new GroupCommit<null>(store, { committed: () => undefined, failed: () => undefined }, { intervalMs: 10_000, maxBytes: 1000 });
    for (let i = 0; i < 5; i++) await gc.add('d', batch('d/p/r', 400 - 64), null); // 400 bytes each
    await new Promise((r) => setTimeout(r, 10));
    expect(store.commits.map((c) => c.length)).toEqual([2, 2]); // 800 bytes each; the fifth waits for the interval
    await gc.flush();
    expect(store.commits.map((c) => c.length)).toEqual([2, 2, 1]);
  });

  it('makes add() wait while too much is pending, and resumes after the commit', async () => {
    const store = fakeStore();
    const release = store.hold();
    const gc = new GroupCommit<null>(store, { committed: () => undefined, failed: () => undefined },
      { intervalMs: 1, maxBytes: 1000, maxPendingBytes: 2000 });
    let waited = false;
    for (let i = 0; i < 5; i++) await gc.add('d', batch('d/p/r', 336), null);
    const blocked = gc.add('d', batch('d/p/r', 336), null).then(() => { waited = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(waited).toBe(false);
    expect(gc.counters.waits).toBe(1);
    release();
    await blocked;
    await gc.close();
    expect(store.commits.flat()).toHaveLength(6);
  });

  it('hands a failed transaction back whole', async () => {
    const failed: [number, string][] = [];
    const gc = new GroupCommit<null>({ ingestMany: () => Promise.reject(new Error('database is locked')) },
      { committed: () => undefined, failed: (e, err) => failed.push([e.length, (err as Error).message]) }, { intervalMs: 1 });
    await gc.add('d', batch('d/p/r', 10), null);
    await gc.add('d', batch('d/p/r', 10), null);
    await gc.flush();
    expect(failed).toEqual([[2, 'database is locked']]);
    expect(gc.counters).toMatchObject({ commits: 0, failedCommits: 1, failedBatches: 2 });
  });
});
