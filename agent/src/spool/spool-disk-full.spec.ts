// A full disk, for real: a 256 KiB tmpfs filled by the spool. Needs root (mount); fails saying
// so otherwise, never skips.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Spool, SpoolFullError, type SyncPolicy } from './index.js';
import { SentModel, bytesOnDisk, collect, makeBatch, recordBytes, tempDir } from './spool-fixtures.js';

const S = 'dev-1/tcpstates/r1';
let mnt = '';
const opened: Spool[] = [];

beforeAll(() => {
  mnt = tempDir('tmpfs');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`the disk-full test mounts a 256 KiB tmpfs and needs root: ${(err as Error).message}`, {
      cause: err,
    });
  }
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const name of fs.readdirSync(mnt)) fs.rmSync(path.join(mnt, name), { recursive: true });
});

afterAll(() => {
  if (mnt === '') return;
  execFileSync('umount', [mnt]);
  fs.rmdirSync(mnt);
});

describe.each<SyncPolicy>(['interval', 'always'])('spool on a full disk (sync: %s)', (sync) => {
  it('rejects with SpoolFullError, leaves no half record, replays what came before, resumes when space is freed', async () => {
    const dir = path.join(mnt, sync);
    const log: string[] = [];
    const opts = { dir, maxBytes: 64 * 1024 * 1024, segmentBytes: 64 * 1024, sync, log: (l: string) => log.push(l) };
    let spool = await Spool.open(opts);
    opened.push(spool);
    const model = new SentModel();
    let error: unknown;
    for (let i = 0; i < 100 && error === undefined; i++) {
      await model.append(spool, S, makeBatch(100)).catch((err: unknown) => (error = err));
    }
    expect(error).toBeInstanceOf(SpoolFullError);
    expect((error as Error).message).toBe(
      `spool: disk full at ${dir} (ENOSPC): 100 records of ${S} not spooled; free space or lower spool_max_bytes`,
    );
    expect(model.batches.length).toBeGreaterThan(20); // ~28 batches of 8.9 KB fit in 256 KiB
    const onDisk = (): number => model.batches.reduce((n, b) => n + recordBytes(S, b), 0);
    expect(bytesOnDisk(dir)).toBe(onDisk()); // no half record left behind
    expect(spool.stats()).toMatchObject({ bytes: onDisk(), appendErrors: 100 });

    // Fill the last bytes with one-record batches until even those are refused.
    error = undefined;
    for (let i = 0; i < 1000 && error === undefined; i++) {
      await model.append(spool, S, makeBatch(1)).catch((err: unknown) => (error = err));
    }
    expect((error as Error).message).toMatch(/disk full .*: 1 records of/);
    expect(bytesOnDisk(dir)).toBe(onDisk());
    expect(spool.stats().appendErrors).toBe(101);
    expect(await collect(spool.replay())).toEqual(model.batches);

    // A restart finds a clean log: nothing torn, nothing corrupt, the same batches.
    await spool.close();
    spool = await Spool.open(opts);
    opened.push(spool);
    expect(spool.stats()).toMatchObject({ corrupt: 0, tornBytes: 0, appendErrors: 101 });
    expect(await collect(spool.replay())).toEqual(model.batches);
    const next = model.batches.reduce((n, b) => n + BigInt(b.count), 1n);
    expect(spool.cursors()).toEqual([{ streamId: S, firstSeq: 1n, nextSeq: next }]);

    // Acknowledging frees the space. The state file must be written before a segment goes,
    // and the disk is full: the spool writes it with the space it kept in reserve for that,
    // then takes the reserve back once the segments are gone. Appends resume.
    log.length = 0;
    spool.ack(S, next - 1n);
    await spool.flush();
    expect(bytesOnDisk(dir)).toBe(0);
    expect(log).toEqual([`spool: disk full at ${dir}: writing the state file with the space kept in reserve for it`]);
    expect(fs.statSync(path.join(dir, 'spool-state.reserve')).size).toBeGreaterThanOrEqual(16 * 1024);
    expect((await spool.append(S, makeBatch(100))).firstSeq).toBe(next);
    await spool.close();
    spool = await Spool.open(opts);
    opened.push(spool);
    expect(spool.cursors()).toEqual([{ streamId: S, firstSeq: next, nextSeq: next + 100n }]);
  });
});
