// Helpers for the spool specs: batches with recognisable bytes and a model of what was sent.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EventBatch } from '@bpfleet/proto';
import type { SpoolBatchInput } from './record-format.js';
import type { Spool } from './spool.js';

export const RECORD_SIZE = 88;

export function makeBatch(count: number, opts: { intervals?: boolean; schemaId?: string } = {}): SpoolBatchInput {
  return {
    count,
    recordSize: RECORD_SIZE,
    records: randomBytes(count * RECORD_SIZE),
    schemaId: opts.schemaId ?? 'tcpstates@1.0.0:0123456789abcdef',
    clockOffsetNs: -1_700_000_000_123_456_789n,
    intervalIndex: opts.intervals ? Array.from({ length: count }, (_, i) => 1000 + i) : [],
  };
}

/** Bytes one batch takes on disk (header 16 + meta 32 + ids + intervals + records). */
export function recordBytes(streamId: string, b: SpoolBatchInput): number {
  const ids = Buffer.byteLength(streamId) + Buffer.byteLength(b.schemaId);
  return 48 + ids + 4 * (b.intervalIndex?.length ?? 0) + b.records.byteLength;
}

/** What the test appended, to compare replays against. */
export class SentModel {
  readonly batches: EventBatch[] = [];

  async append(spool: Spool, streamId: string, b: SpoolBatchInput): Promise<EventBatch> {
    const { firstSeq } = await spool.append(streamId, b);
    const sent: EventBatch = {
      streamId,
      firstSeq,
      count: b.count,
      records: Buffer.from(b.records),
      recordSize: b.recordSize,
      schemaId: b.schemaId,
      clockOffsetNs: b.clockOffsetNs,
      intervalIndex: [...(b.intervalIndex ?? [])],
    };
    this.batches.push(sent);
    return sent;
  }

  /** Batches with at least one record after `acked` per stream (missing: 0), in append order. */
  unacked(acked: Map<string, bigint>): EventBatch[] {
    return this.batches.filter((b) => b.firstSeq + BigInt(b.count - 1) > (acked.get(b.streamId) ?? 0n));
  }
}

export async function collect(it: AsyncIterable<EventBatch>): Promise<EventBatch[]> {
  const out: EventBatch[] = [];
  for await (const b of it) out.push({ ...b, records: Buffer.from(b.records) });
  return out;
}

const made: string[] = [];

export function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bpfleet-spool-${tag}-`));
  made.push(dir);
  return dir;
}

/** Removes the directories tempDir made (call after unmounting anything in them). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith('seg-'))
    .sort()
    .map((n) => path.join(dir, n));
}

export function bytesOnDisk(dir: string): number {
  return segmentFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0);
}
