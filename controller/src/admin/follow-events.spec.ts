import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite-store.js';
import type { Store, StoredEvent } from '../store/store.js';
import { loadTcpstates, seqBatch } from '../store/tcpstates-fixture.js';
import { followEvents, type FollowOptions } from './follow-events.js';

const { schemaId, manifest } = loadTcpstates();
const DEV = 'd-0000000000000001';
const run = (i: number) => `${DEV}/tcpstates/r${i}`;
const seqsOf = (evs: StoredEvent[]) => evs.map((e) => e.seq);

/** The store, counting the calls of each method and the records its answers hand back. */
function counting(store: Store): { store: Store; calls: Record<string, number>; records: () => number; reset: () => void } {
  let calls: Record<string, number> = {};
  let records = 0;
  const proxy = new Proxy(store, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown;
      if (typeof v !== 'function' || typeof key !== 'string') return v;
      return async (...args: unknown[]) => {
        calls[key] = (calls[key] ?? 0) + 1;
        const out = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (key === 'events') records += (out as unknown[]).length;
        if (key === 'eventsAfter') records += (out as { events: unknown[] }).events.length;
        return out;
      };
    },
  });
  return { store: proxy, get calls() { return calls; }, records: () => records, reset: () => { calls = {}; records = 0; } };
}

describe('followEvents', () => {
  let store: SqliteStore;
  let ac: AbortController;
  let wakeCb: (() => void) | undefined;
  const wake = () => wakeCb?.();
  const ingest = (first: number, count: number, stream = run(1)) => store.ingestBatch(DEV, seqBatch(schemaId, manifest, stream, first, count));
  /** A follower that only looks when woken (the poll is an hour). */
  const follow = (s: Store, opts: FollowOptions = {}) =>
    followEvents(s, { pollMs: 3_600_000, signal: ac.signal, wake: (cb) => { wakeCb = cb; return () => { wakeCb = undefined; }; }, ...opts });
  const tick = () => new Promise((r) => setTimeout(r, 10));

  beforeEach(async () => {
    store = SqliteStore.open(':memory:');
    await store.putManifest(schemaId, manifest);
    ac = new AbortController();
  });
  afterEach(async () => { ac.abort(); await store.close(); });

  it('sends a late gap fill once, though its records are older than those already sent', async () => {
    await ingest(1, 5);
    const it = follow(store);
    const next = it.next();
    await tick(); // the follow has its cursor: 1..5 are not news
    await ingest(10, 3);
    wake();
    expect(seqsOf((await next).value!)).toEqual([10, 11, 12]);
    const fill = it.next();
    await ingest(4, 8); // 4, 5, 10, 11 stored already; 6..9 fill the gap
    wake();
    expect(seqsOf((await fill).value!)).toEqual([6, 7, 8, 9]);
    const after = it.next();
    await ingest(1, 12); // a replay: stores nothing
    wake();
    await tick();
    await ingest(13, 1);
    wake();
    expect(seqsOf((await after).value!)).toEqual([13]);
  });

  it('reads only the new records: 1,000 streams, one of them growing', async () => {
    await store.ingestMany(Array.from({ length: 1000 }, (_, i) => ({ deviceId: DEV, batch: seqBatch(schemaId, manifest, run(i), 1, 2) })));
    const c = counting(store);
    const it = follow(c.store, { probe: 'tcpstates' });
    const next = it.next();
    await tick();
    c.reset();
    await ingest(3, 3, run(7));
    wake();
    const got = (await next).value as StoredEvent[];
    expect(got.map((e) => `${e.streamId}:${e.seq}`)).toEqual([3, 4, 5].map((s) => `${run(7)}:${s}`));
    // One cursor read handing back the three records; no stream listed, no stream read whole.
    expect(c.calls).toEqual({ eventsAfter: 1 });
    expect(c.records()).toBe(3);
  });

  it('neither loses nor repeats records stored while the records since a time are read', async () => {
    await ingest(1, 5);
    let firstRead = true;
    // Before the read by time answers, 6..8 are stored (it sees them); after, 9..10 (it does not).
    const racing = new Proxy(store, {
      get(target, key, receiver) {
        if (key !== 'events') return Reflect.get(target, key, receiver) as unknown;
        return async (...args: Parameters<Store['events']>) => {
          if (!firstRead) return target.events(...args);
          firstRead = false;
          await ingest(6, 3);
          const out = await target.events(...args);
          await ingest(9, 2);
          return out;
        };
      },
    });
    const it = follow(racing, { sinceUnixNs: 0n });
    const got: number[] = [];
    while (got.length < 10) got.push(...seqsOf((await it.next()).value!));
    const next = it.next();
    await ingest(11, 1);
    wake();
    got.push(...seqsOf((await next).value!));
    expect(got).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
  });
});
