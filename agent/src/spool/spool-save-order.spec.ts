// The order of state saves and segment deletions, with saveState held at a gate: a segment's
// file goes only after a save that started after its removal completed, requests during a
// save coalesce into one more, close() waits for both.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Spool } from './index.js';
import { SentModel, makeBatch, removeTempDirs, segmentFiles, tempDir } from './spool-fixtures.js';
import type { SpoolState } from './spool-state.js';

const S = 'dev-1/tcpstates/r1';

const gate = vi.hoisted(() => ({
  held: false,
  waiting: [] as (() => void)[],
  /** firstSeq of S in the state each save captured, in call order. */
  calls: [] as bigint[],
  failNext: null as Error | null,
}));

vi.mock('./spool-state.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./spool-state.js')>();
  return {
    ...real,
    // Captures the state when called, like the real one, then waits at the gate.
    saveState: async (dir: string, state: SpoolState): Promise<void> => {
      const snap = structuredClone(state);
      gate.calls.push(snap.streams.get(S)?.firstSeq ?? 0n);
      if (gate.held) await new Promise<void>((resolve) => gate.waiting.push(resolve));
      const fail = gate.failNext;
      gate.failNext = null;
      if (fail) throw fail;
      await real.saveState(dir, snap);
    },
  };
});

const open: Spool[] = [];
beforeEach(() => {
  gate.held = false;
  gate.waiting.length = 0;
  gate.calls.length = 0;
});
afterEach(async () => {
  gate.held = false;
  for (const w of gate.waiting.splice(0)) w();
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(removeTempDirs);

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 5000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  expect(cond()).toBe(true);
}

function firstOnDisk(dir: string): string {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'spool-state.json'), 'utf8')) as { streams: Record<string, { first: string }> };
  return json.streams[S]!.first;
}

/** A spool with 10 batches of 50 records in 4 segments (3 batches each), no timer saves. */
async function fourSegments(log: string[] = []): Promise<{ spool: Spool; dir: string; files: string[] }> {
  const dir = tempDir('order');
  const spool = await Spool.open({ dir, maxBytes: 64 * 1024 * 1024, segmentBytes: 16 * 1024, sync: 'none', stateFlushMs: 600_000, log: (l) => log.push(l) });
  open.push(spool);
  const model = new SentModel();
  for (let i = 0; i < 10; i++) await model.append(spool, S, makeBatch(50));
  const files = segmentFiles(dir);
  expect(files.length).toBe(4);
  gate.calls.length = 0;
  return { spool, dir, files };
}

describe('spool state saves and segment deletion', () => {
  it('deletes acknowledged segments only after a save that started after the ack is durable; requests in flight coalesce', async () => {
    const { spool, dir, files } = await fourSegments();
    gate.held = true;
    const flushed = spool.flush(); // a save of the state before the acks, held in flight
    await until(() => gate.waiting.length === 1);
    spool.ack(S, 150n); // the first segment
    spool.ack(S, 300n); // and the second
    expect(spool.stats().segments).toBe(2); // gone from the spool at once...
    expect(gate.calls).toEqual([1n]); // ...but no second save while one is in flight

    gate.waiting.shift()!();
    await until(() => gate.waiting.length === 1); // the one save for both acks has started
    expect(gate.calls).toEqual([1n, 301n]);
    expect(firstOnDisk(dir)).toBe('1');
    expect(segmentFiles(dir)).toEqual(files); // the only completed save predates the acks

    gate.held = false;
    gate.waiting.shift()!();
    await flushed;
    expect(firstOnDisk(dir)).toBe('301');
    expect(segmentFiles(dir)).toEqual(files.slice(2));
    expect(gate.calls).toEqual([1n, 301n]);
  });

  it('close() waits for the save in flight and the one after it; a restart continues the numbers', async () => {
    const { spool, dir, files } = await fourSegments();
    gate.held = true;
    spool.ack(S, 450n); // the three closed segments
    await until(() => gate.waiting.length === 1);
    let closed = false;
    const closing = spool.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(false);
    expect(segmentFiles(dir)).toEqual(files);

    gate.held = false;
    gate.waiting.shift()!();
    await closing;
    expect(firstOnDisk(dir)).toBe('451');
    expect(segmentFiles(dir)).toEqual(files.slice(3));

    const again = await Spool.open({ dir, maxBytes: 64 * 1024 * 1024, segmentBytes: 16 * 1024, sync: 'none', log: () => undefined });
    open.push(again);
    expect(again.cursors()).toEqual([{ streamId: S, firstSeq: 451n, nextSeq: 501n }]);
    expect((await again.append(S, makeBatch(1))).firstSeq).toBe(501n);
  });

  it('deletes the segments anyway when the state cannot be written, then writes it again', async () => {
    const log: string[] = [];
    const { spool, dir, files } = await fourSegments(log);
    gate.failNext = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    spool.ack(S, 150n);
    await spool.flush();
    expect(log).toEqual([`spool: could not write the state file in ${dir}: EIO: i/o error, write`]);
    expect(segmentFiles(dir)).toEqual(files.slice(1));
    expect(firstOnDisk(dir)).toBe('151');
    expect(gate.calls).toEqual([151n, 151n]); // failed, then written again after the deletion
  });
});
