// The spool's contract: what the transport relies on after an outage, a cut or a restart.
import * as fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { Spool, SpoolInputError, type SyncPolicy } from './index.js';
import { RECORD_MAGIC_BYTES } from './record-format.js';
import {
  SentModel,
  bytesOnDisk,
  collect,
  makeBatch,
  recordBytes,
  removeTempDirs,
  segmentFiles,
  tempDir,
} from './spool-fixtures.js';

const open: Spool[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(removeTempDirs);

interface TestOptions {
  maxBytes?: number;
  segmentBytes?: number;
  sync?: SyncPolicy;
  log?: string[];
}

async function openSpool(dir: string, opts: TestOptions = {}): Promise<Spool> {
  const lines = opts.log;
  const spool = await Spool.open({
    dir,
    maxBytes: opts.maxBytes ?? 64 * 1024 * 1024,
    segmentBytes: opts.segmentBytes ?? 16 * 1024,
    sync: opts.sync ?? 'interval',
    log: (l) => lines?.push(l),
  });
  open.push(spool);
  return spool;
}

async function reopen(spool: Spool, dir: string, opts: TestOptions = {}): Promise<Spool> {
  await spool.close();
  return openSpool(dir, opts);
}

const S = 'dev-1/tcpstates/r1';

describe.each<SyncPolicy>(['none', 'interval', 'always'])('spool contract (sync: %s)', (sync) => {
  it('numbers batches per stream from 1, contiguous, and writes the documented header', async () => {
    const dir = tempDir('seq');
    const spool = await openSpool(dir, { sync });
    const model = new SentModel();
    const a = await model.append(spool, S, makeBatch(10));
    const b = await model.append(spool, S, makeBatch(5));
    const c = await model.append(spool, 'other', makeBatch(3));
    expect([a.firstSeq, b.firstSeq, c.firstSeq]).toEqual([1n, 11n, 1n]);
    expect(spool.cursors()).toEqual([
      { streamId: S, firstSeq: 1n, nextSeq: 16n },
      { streamId: 'other', firstSeq: 1n, nextSeq: 4n },
    ]);
    const file = fs.readFileSync(segmentFiles(dir)[0]!);
    expect(file.subarray(0, 4).equals(RECORD_MAGIC_BYTES)).toBe(true);
    expect(file.readUInt16LE(4)).toBe(1);
    expect(file.readUInt32LE(8)).toBe(recordBytes(S, makeBatch(10)) - 16);
    expect(file.readBigUInt64LE(16)).toBe(1n);
    expect(file.length).toBe(recordBytes(S, makeBatch(10)) + recordBytes(S, makeBatch(5)) + recordBytes('other', makeBatch(3)));
  });

  it('deletes a segment once every record in it is acknowledged, never before', async () => {
    const dir = tempDir('ack');
    const spool = await openSpool(dir, { sync, segmentBytes: 16 * 1024 });
    const model = new SentModel();
    for (let i = 0; i < 10; i++) await model.append(spool, S, makeBatch(50)); // 3 batches per segment
    const files = segmentFiles(dir);
    expect(files.length).toBe(4);
    expect(spool.stats()).toMatchObject({ segments: 4, bytes: bytesOnDisk(dir) });

    spool.ack(S, 149n); // one record short of the first segment (batches 1..3 = seqs 1..150)
    await spool.flush();
    expect(segmentFiles(dir)).toEqual(files);
    spool.ack(S, 150n);
    await spool.flush(); // files go after the state save that follows the ack
    expect(segmentFiles(dir)).toEqual(files.slice(1));
    spool.ack(S, 500n); // everything: closed segments go, the open one stays until it closes
    await spool.flush();
    expect(segmentFiles(dir)).toEqual(files.slice(3));
    expect(spool.cursors()).toEqual([]);
    expect(spool.stats().bytes).toBe(bytesOnDisk(dir));
    expect(await collect(spool.replay())).toEqual([]);

    const again = await reopen(spool, dir, { sync });
    expect(segmentFiles(dir)).toEqual([]);
    expect((await again.append(S, makeBatch(1))).firstSeq).toBe(501n); // numbers survive deletion
  });

  it('replays after a restart exactly the unacknowledged batches, same numbers, straddling batch whole', async () => {
    const dir = tempDir('restart');
    let spool = await openSpool(dir, { sync });
    const model = new SentModel();
    for (let i = 0; i < 6; i++) {
      await model.append(spool, S, makeBatch(20, { intervals: i % 2 === 1 }));
      await model.append(spool, 'dev-1/tcpbytes/r2', makeBatch(7, { schemaId: `tcpbytes@1.0.${i}:ffff` }));
    }
    spool.ack(S, 50n); // inside the third batch (41..60)
    spool.ack('dev-1/tcpbytes/r2', 14n); // exactly two batches
    const acked = new Map([[S, 50n], ['dev-1/tcpbytes/r2', 14n]]);
    expect(await collect(spool.replay())).toEqual(model.unacked(acked));

    spool = await reopen(spool, dir, { sync });
    const replayed = await collect(spool.replay());
    expect(replayed).toEqual(model.unacked(acked));
    expect(replayed[0]).toMatchObject({ streamId: S, firstSeq: 41n, count: 20 });
    expect(spool.cursors()).toEqual([
      { streamId: S, firstSeq: 51n, nextSeq: 121n },
      { streamId: 'dev-1/tcpbytes/r2', firstSeq: 15n, nextSeq: 43n },
    ]);
    expect(await collect(spool.replay({ streamId: S, fromSeq: 100n }))).toEqual(
      model.batches.filter((b) => b.streamId === S && b.firstSeq >= 81n),
    );
    expect((await model.append(spool, S, makeBatch(1))).firstSeq).toBe(121n);
    expect(spool.stats()).toMatchObject({ corrupt: 0, tornBytes: 0, evicted: 0, appendErrors: 0 });
  });
});

describe('spool recovery', () => {
  it('cuts a torn tail, counts a flipped byte as corrupt, keeps everything else intact', async () => {
    const dir = tempDir('crash');
    let spool = await openSpool(dir, { segmentBytes: 16 * 1024 });
    const model = new SentModel();
    for (let i = 0; i < 9; i++) await model.append(spool, S, makeBatch(40)); // 4 per segment
    await spool.close();
    const files = segmentFiles(dir);
    expect(files.length).toBe(3);
    const one = recordBytes(S, makeBatch(40));
    // A byte in the records of the second batch of the first segment.
    const f0 = fs.readFileSync(files[0]!);
    f0.writeUInt8(f0.readUInt8(one + 1000) ^ 0x01, one + 1000);
    fs.writeFileSync(files[0]!, f0);
    // The last segment holds batch 9 alone: cut it mid-record.
    expect(fs.statSync(files[2]!).size).toBe(one);
    fs.truncateSync(files[2]!, one - 100);

    const log: string[] = [];
    spool = await openSpool(dir, { log });
    const lost = new Set([model.batches[1], model.batches[8]]);
    expect(await collect(spool.replay())).toEqual(model.batches.filter((b) => !lost.has(b)));
    expect(spool.stats()).toMatchObject({ corrupt: 1, tornBytes: one - 100 });
    expect(spool.stats().streams[0]).toMatchObject({ streamId: S, corrupt: 80, firstSeq: 1n, nextSeq: 361n });
    expect(fs.existsSync(files[2]!)).toBe(false); // nothing valid left in it
    expect(log.some((l) => l.includes(files[0]!) && l.includes(`offset ${one}`) && l.includes('corrupt'))).toBe(true);
    expect(log.some((l) => l.includes(files[2]!) && l.includes('offset 0') && l.includes('cut off'))).toBe(true);
    expect((await spool.append(S, makeBatch(1))).firstSeq).toBe(361n); // the torn batch's numbers are not reused

    // Counted once: another restart finds the same damage but does not count it again.
    log.length = 0;
    spool = await reopen(spool, dir, { log });
    expect(spool.stats()).toMatchObject({ corrupt: 1, tornBytes: 0 });
    expect(spool.stats().streams[0]).toMatchObject({ corrupt: 80, nextSeq: 362n });
    expect(log).toEqual([]);
    expect(await collect(spool.replay())).toHaveLength(8);
  });

  it('cuts a torn tail inside a segment that has valid records before it', async () => {
    const dir = tempDir('torn');
    let spool = await openSpool(dir);
    const model = new SentModel();
    for (let i = 0; i < 3; i++) await model.append(spool, S, makeBatch(10));
    await spool.close();
    const [file] = segmentFiles(dir);
    const size = fs.statSync(file!).size;
    fs.truncateSync(file!, size - 7);
    spool = await openSpool(dir);
    expect(await collect(spool.replay())).toEqual(model.batches.slice(0, 2));
    expect(fs.statSync(file!).size).toBe(2 * recordBytes(S, makeBatch(10)));
    expect(spool.stats()).toMatchObject({ corrupt: 0, tornBytes: recordBytes(S, makeBatch(10)) - 7 });
  });
});

describe('spool size bound', () => {
  it('evicts the oldest segments, counts exactly the unacknowledged records lost, logs each', async () => {
    const dir = tempDir('evict');
    const log: string[] = [];
    const maxBytes = 64 * 1024; // segments of 16 KiB: 3 batches of 40 records each
    let spool = await openSpool(dir, { maxBytes, segmentBytes: 16 * 1024, log });
    const model = new SentModel();
    const A = 'dev-1/a/1';
    const B = 'dev-1/b/1';
    for (let i = 0; i < 30; i++) {
      await model.append(spool, i % 2 === 0 ? A : B, makeBatch(40));
      if (i === 9) spool.ack(A, 200n); // A's first five batches, all in the oldest segments
      expect(spool.stats().bytes).toBeLessThanOrEqual(maxBytes);
    }
    const evictions = log.filter((l) => l.includes('evicted'));
    expect(evictions.length).toBeGreaterThan(0);
    const st = new Map(spool.stats().streams.map((s) => [s.streamId, s]));
    const held = await collect(spool.replay());
    for (const [id, acked] of [[A, 200n], [B, 0n]] as const) {
      const heldRecords = held.filter((b) => b.streamId === id).reduce((n, b) => n + b.count, 0);
      // Every record is acknowledged, evicted or still held, exactly once.
      expect(Number(acked) + st.get(id)!.evicted + heldRecords).toBe(15 * 40);
      expect(st.get(id)!.firstSeq).toBe(held.find((b) => b.streamId === id)!.firstSeq);
    }
    // The log lines name exactly the counted records.
    const logged = (id: string): number =>
      evictions
        .flatMap((l) => [...l.matchAll(/(\d+) records of (\S+) /g)])
        .filter((m) => m[2] === id)
        .reduce((k, m) => k + Number(m[1]), 0);
    expect(logged(A)).toBe(st.get(A)!.evicted);
    expect(logged(B)).toBe(st.get(B)!.evicted);
    expect(st.get(B)!.evicted).toBeGreaterThan(st.get(A)!.evicted); // A's acknowledged records were not counted
    expect(spool.stats().evicted).toBe(st.get(A)!.evicted + st.get(B)!.evicted);

    spool = await reopen(spool, dir, { maxBytes, segmentBytes: 16 * 1024 });
    expect(spool.stats().streams.map((s) => s.evicted)).toEqual([st.get(A)!.evicted, st.get(B)!.evicted]);
    expect(await collect(spool.replay())).toEqual(held);
  });

  it('refuses a batch larger than the bound with a clear error and counts it', async () => {
    const spool = await openSpool(tempDir('huge'), { maxBytes: 16 * 1024 });
    await expect(spool.append(S, makeBatch(200))).rejects.toThrow(/larger than spool_max_bytes \(16384\)/);
    expect(spool.stats().appendErrors).toBe(200);
    expect((await spool.append(S, makeBatch(1))).firstSeq).toBe(1n);
  });
});

describe('spool with many streams', () => {
  it('keeps 20 interleaved streams apart through acks and a restart', async () => {
    const dir = tempDir('many');
    let spool = await openSpool(dir, { segmentBytes: 32 * 1024 });
    const model = new SentModel();
    const acked = new Map<string, bigint>();
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 400; i++) {
      const id = `dev-1/p${rand(20)}/r`;
      await model.append(spool, id, makeBatch(1 + rand(30), { intervals: rand(4) === 0 }));
      if (rand(10) === 0) {
        const mine = model.batches.filter((b) => b.streamId === id);
        const through = mine[rand(mine.length)]!.firstSeq; // sometimes mid-batch
        if (through > (acked.get(id) ?? 0n)) {
          spool.ack(id, through);
          acked.set(id, through);
        }
      }
    }
    for (const id of new Set(model.batches.map((b) => b.streamId))) {
      let next = 1n;
      for (const b of model.batches.filter((x) => x.streamId === id)) {
        expect(b.firstSeq).toBe(next);
        next += BigInt(b.count);
      }
    }
    expect(await collect(spool.replay())).toEqual(model.unacked(acked));
    spool = await reopen(spool, dir, { segmentBytes: 32 * 1024 });
    expect(await collect(spool.replay())).toEqual(model.unacked(acked));
    expect(spool.stats().bytes).toBe(bytesOnDisk(dir));
  });

  it('refuses a malformed batch, writes nothing and uses no sequence number', async () => {
    const dir = tempDir('bad');
    const spool = await openSpool(dir);
    const bad = { ...makeBatch(10), records: Buffer.alloc(88 * 9) };
    await expect(spool.append(S, bad)).rejects.toThrow(SpoolInputError);
    await expect(spool.append(S, bad)).rejects.toThrow(/records hold 792 bytes, count x recordSize is 880/);
    expect(spool.stats().appendErrors).toBe(20);
    expect(bytesOnDisk(dir)).toBe(0);
    expect((await spool.append(S, makeBatch(1))).firstSeq).toBe(1n);
  });

  it('moves past a controller that holds more than the spool numbered (state lost)', async () => {
    const spool = await openSpool(tempDir('ahead'));
    await spool.append(S, makeBatch(5));
    spool.ack(S, 900n);
    expect((await spool.append(S, makeBatch(1))).firstSeq).toBe(901n);
  });
});

describe('an idle spool', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('schedules no timer while idle, ticks while a batch waits for its sync and state save, then sleeps again', async () => {
    // A board's agent sits idle most of the time: a 200 ms tick that finds nothing to do was most
    // of its idle CPU.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const spool = await openSpool(tempDir('idle'), { sync: 'interval' });
    expect(vi.getTimerCount()).toBe(0);
    await spool.append(S, makeBatch(10));
    expect(vi.getTimerCount()).toBe(1);
    let ticks = 0;
    while (vi.getTimerCount() > 0 && ticks < 20) {
      await vi.advanceTimersByTimeAsync(200);
      await spool.flush();
      ticks++;
    }
    expect(ticks).toBeGreaterThan(0);
    expect(vi.getTimerCount()).toBe(0);
    spool.ack(S, 10n);
    expect(vi.getTimerCount()).toBe(1);
  });
});

describe('spool replay of large segments (read a chunk at a time)', () => {
  it('records across chunk boundaries, one larger than a chunk, damage past the first chunk: all else intact, in order', async () => {
    const dir = tempDir('chunks');
    let spool = await openSpool(dir, { segmentBytes: 4 << 20, sync: 'none' });
    const model = new SentModel();
    // Sizes from a few hundred bytes to 264 KiB (3,000 records of 88 bytes: more than the
    // reader's 256 KiB chunk), in an order that puts record edges everywhere in the chunks.
    const counts = [1, 7, 3000, 40, 2, 999, 5, 1500, 3, 3000, 11, 600, 1, 2500, 9];
    for (let round = 0; round < 3; round++) for (const c of counts) await model.append(spool, S, makeBatch(c));
    await spool.close();
    const files = segmentFiles(dir);
    expect(files).toHaveLength(1);
    // One flipped byte in a batch that starts past the first 1 MiB.
    let at = 0;
    let victim = -1;
    for (let i = 0; i < model.batches.length; i++) {
      const len = recordBytes(S, makeBatch(model.batches[i]!.count));
      if (at > 1 << 20 && model.batches[i]!.count >= 40) { victim = i; break; }
      at += len;
    }
    expect(victim).toBeGreaterThan(0);
    const f = fs.readFileSync(files[0]!);
    f.writeUInt8(f.readUInt8(at + 500) ^ 0x01, at + 500);
    fs.writeFileSync(files[0]!, f);

    const log: string[] = [];
    spool = await openSpool(dir, { segmentBytes: 4 << 20, log });
    const replayed = await collect(spool.replay());
    expect(replayed).toEqual(model.batches.filter((_, i) => i !== victim));
    expect(spool.stats()).toMatchObject({ corrupt: 1, tornBytes: 0 });
    expect(spool.stats().streams[0]!.corrupt).toBe(model.batches[victim]!.count);
    expect(log.some((l) => l.includes(`offset ${at}`) && l.includes('corrupt'))).toBe(true);
  });
});
